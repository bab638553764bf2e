"""save_generator / load_generator: round trips with BatchNorm buffers, and every bad file refused by name."""

from __future__ import annotations

import json
import pickle

import pytest
import safetensors.torch
import torch

from gan_infogan_plugin import LatentCodeSpec, registry
from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.export import load_generator, save_generator

SPEC = LatentCodeSpec.parse("noise:8,cat:3,cont:2")


@pytest.fixture()
def trained_like():
    """A MNIST generator whose BatchNorm buffers are not the defaults (as after training)."""
    torch.manual_seed(0)
    generator, _ = registry.load("models", "mnist").build(SPEC.input_dim)
    generator.train()
    with torch.no_grad():
        for _ in range(3):
            generator(SPEC.sample(16).flat * 3 + 1)  # moves the running statistics
    return generator.eval()


def test_round_trip_reproduces_images_and_keeps_buffers(trained_like, tmp_path):
    path = save_generator(tmp_path / "g.safetensors", trained_like, SPEC, "mnist", {"channels": 1}, "codes = 'x'", 7)
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary file, renamed
    loaded = load_generator(path)
    assert loaded.step == 7 and loaded.model_name == "mnist" and loaded.spec == SPEC
    assert loaded.metadata["recipe"] == "codes = 'x'"
    assert json.loads(loaded.metadata["versions"])["torch"] == torch.__version__
    assert not loaded.generator.training
    original = trained_like.state_dict()
    assert any("running_mean" in k for k in original)
    for name, tensor in loaded.generator.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    images = loaded.generate(5, seed=3)
    expected = trained_like(SPEC.sample(5, generator=torch.Generator().manual_seed(3)).flat)
    assert images.shape == (5, 1, 28, 28) and torch.equal(images, expected)
    fixed = loaded.generate(4, fixed={"c1": 2}, seed=1)
    assert fixed.shape == (4, 1, 28, 28)
    traversal = loaded.traverse("c1", n_noise=2, seed=4)  # a batch, row-major: image 2 * value + noise draw
    assert traversal.shape == (3 * 2, 1, 28, 28)
    batch, values = SPEC.traverse("c1", n_noise=2, generator=torch.Generator().manual_seed(4))
    assert values == [0, 1, 2] and batch.cat[0].tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(traversal, trained_like(batch.flat))


def test_a_scaled_noise_is_drawn_scaled_by_the_file_alone(trained_like, tmp_path):
    """The noise scale travels in the file's spec: the rebuilt generator draws z at that scale."""
    scaled = LatentCodeSpec.parse("noise:8:normal*0.1,cat:3,cont:2")
    loaded = load_generator(save_generator(tmp_path / "g.safetensors", trained_like, scaled, "mnist", {"channels": 1}))
    assert loaded.spec.noise_scale == 0.1
    expected = trained_like(scaled.sample(5, generator=torch.Generator().manual_seed(3)).flat)
    unscaled = trained_like(SPEC.sample(5, generator=torch.Generator().manual_seed(3)).flat)
    images = loaded.generate(5, seed=3)
    assert torch.equal(images, expected) and not torch.equal(images, unscaled)


def test_load_in_another_dtype(trained_like, tmp_path):
    path = save_generator(tmp_path / "g.safetensors", trained_like, SPEC, "mnist", {"channels": 1})
    loaded = load_generator(path, dtype=torch.float64)
    assert loaded.generate(2, seed=0).dtype == torch.float64


def _expect_error(path, *fragments):
    with pytest.raises(UserError) as info:
        load_generator(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_a_header_length_starting_with_0x80_is_not_taken_for_a_pickle(trained_like, tmp_path):
    # A safetensors file starts with its header's length (8 bytes, little-endian): 0x80 is a pickle's
    # first byte too. Pad the recipe until the length's first byte is 0x80; the file must still load.
    for pad in range(0, 256 * 8, 8):
        path = save_generator(tmp_path / "g.safetensors", trained_like, SPEC, "mnist", {"channels": 1}, "#" * pad, 3)
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length whose first byte is 0x80")
    assert load_generator(path).step == 3


def test_bad_files_are_refused_by_name(trained_like, tmp_path):
    good = save_generator(tmp_path / "good.safetensors", trained_like, SPEC, "mnist", {"channels": 1})
    data = good.read_bytes()

    _expect_error(tmp_path / "absent.safetensors", "no such file")
    (tmp_path / "random.bin").write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy().tobytes())
    _expect_error(tmp_path / "random.bin", "not a valid safetensors file")
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    _expect_error(tmp_path / "truncated.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    _expect_error(tmp_path / "empty.safetensors")

    torch.save(trained_like.state_dict(), tmp_path / "weights.pt")  # a zip of pickles
    _expect_error(tmp_path / "weights.pt", "pickle", "never unpickled")
    marker = tmp_path / "unpickled"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Touch(str(marker))))
    _expect_error(tmp_path / "evil.pkl", "pickle")
    assert not marker.exists()

    safetensors.torch.save_file({"w": torch.zeros(2)}, tmp_path / "bare.safetensors")
    _expect_error(tmp_path / "bare.safetensors", "without metadata")
    safetensors.torch.save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors", metadata={"format": "x"})
    _expect_error(tmp_path / "other.safetensors", "missing metadata")


def test_tensors_from_another_spec_or_model_are_refused(trained_like, tmp_path):
    other_spec = LatentCodeSpec.parse("noise:20,cat:10")
    path = save_generator(tmp_path / "spec.safetensors", trained_like, other_spec, "mnist", {"channels": 1})
    _expect_error(path, "do not fit model 'mnist'", "noise:20,cat:10")
    path = save_generator(tmp_path / "model.safetensors", trained_like, SPEC, "svhn", {"channels": 1})
    _expect_error(path, "do not fit model 'svhn'")
    path = save_generator(tmp_path / "unknown.safetensors", trained_like, SPEC, "no-such-model", {})
    _expect_error(path, "unknown model 'no-such-model'")
    path = save_generator(tmp_path / "kwargs.safetensors", trained_like, SPEC, "mnist", {"width": 3})
    _expect_error(path, "does not take these kwargs")


class _Touch:
    """Unpickling this would create a file: the loader must never unpickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
