import math

import pytest
import torch
from conftest import HostReads

from gan_infogan_plugin import CategoricalCode, ContinuousCode, LatentCodeSpec


def test_mnist_spec_from_string():
    spec = LatentCodeSpec.parse("noise:62,cat:10,cont:2")
    assert spec.input_dim == 74
    assert spec.names == ("c1", "c2", "c3")
    assert [c.kind for c in spec.codes] == ["cat", "cont", "cont"]
    assert spec.entropy("c1") == pytest.approx(math.log(10))
    assert spec.entropy("c2") == pytest.approx(math.log(2))  # uniform(-1, 1)
    assert spec.noise_prior == "normal"


def test_svhn_spec_repeat_form():
    spec = LatentCodeSpec.parse("noise:124,cat:10x4,cont:4")
    assert len(spec.categorical) == 4 and len(spec.continuous) == 4
    assert spec.input_dim == 124 + 40 + 4
    assert str(spec) == "noise:124,cat:10x4,cont:4"


def test_names_priors_and_normal_entropy():
    spec = LatentCodeSpec.parse("noise:8:uniform,digit=cat:10,angle=cont:1:normal,cont:2")
    assert spec.names == ("digit", "angle", "c3", "c4")
    assert spec.noise_prior == "uniform"
    assert spec.code("angle") == ContinuousCode("angle", "normal")
    assert spec.entropy("angle") == pytest.approx(1.4189385, abs=1e-6)  # ln(2 pi e) / 2


@pytest.mark.parametrize(
    "text",
    [
        "noise:62,cat:10,cont:2",
        "noise:124,cat:10x4,cont:4",
        "noise:5:uniform,a=cat:3,cat:4,b=cont:1:normal,cont:2",
        "noise:62:uniform*0.2,cat:10,cont:2",
        "noise:3:normal*1.5",
    ],
)
def test_round_trips(text):
    spec = LatentCodeSpec.parse(text)
    assert LatentCodeSpec.parse(str(spec)) == spec
    assert LatentCodeSpec.from_dict(spec.to_dict()) == spec


def test_built_in_python_equals_parsed():
    built = LatentCodeSpec.build(62, categorical=[10], continuous=2)
    assert built == LatentCodeSpec.parse("noise:62,cat:10,cont:2")
    assert LatentCodeSpec(3, (CategoricalCode("d", 4),)).input_dim == 7


@pytest.mark.parametrize(
    "text, part",
    [
        ("noise:62,cat:ten", "cat:ten"),
        ("noise:62,kat:10", "kat:10"),
        ("noise:62,cont:2:gauss", "gauss"),
        ("noise:62,cat:1", "2 classes"),
        ("noise:62,noise:3", "noise is given twice"),
        ("", "empty"),
        ("noise:4,a=cat:3,a=cat:3", "used twice"),
        ("noise:4,cat:10x0", "cat:10x0"),
        ("noise:4,cont:1:uniform*0.5", "only the noise takes a scale"),
        ("noise:4:uniform*big", "scale must be a number"),
        ("noise:4:uniform*0", "positive number"),
        ("noise:4:normal*-1", "positive number"),
        ("noise:4:normal*nan", "positive number"),
    ],
)
def test_malformed_strings_name_the_part(text, part):
    with pytest.raises(ValueError, match=part):
        LatentCodeSpec.parse(text)


def test_bad_dict_and_bad_prior():
    with pytest.raises(ValueError, match="noise"):
        LatentCodeSpec.from_dict({"codes": []})
    with pytest.raises(ValueError, match="prior"):
        LatentCodeSpec(4, (ContinuousCode("c1", "cauchy"),))
    with pytest.raises(ValueError, match="unknown code 'zz'"):
        LatentCodeSpec.parse("noise:4,cat:3").code("zz")


def test_sample_layout_and_priors():
    spec = LatentCodeSpec.parse("noise:5,cat:3,cont:2")
    batch = spec.sample(4000, generator=torch.Generator().manual_seed(0))
    flat = batch.flat
    assert flat.shape == (4000, 10) and batch.image.shape == (4000, 10, 1, 1)
    assert torch.equal(flat[:, :5], batch.noise)
    assert torch.equal(flat[:, 5:8].argmax(1), batch.cat[0])
    assert torch.equal(flat[:, 5:8].sum(1), torch.ones(4000))
    assert torch.equal(flat[:, 8:], batch.cont)
    assert batch.cont.min() >= -1 and batch.cont.max() <= 1
    assert batch.cont.mean().abs() < 0.05 and batch.noise.std() == pytest.approx(1.0, abs=0.05)
    assert set(batch.cat[0].tolist()) == {0, 1, 2}


def test_noise_scale_multiplies_the_prior_and_leaves_the_codes():
    """uniform*0.2 is 0.2 u with u ~ U(-1, 1): the same draws as the unscaled spec, times 0.2; the
    codes and the layout are unchanged, and the scale survives the dict (safetensors metadata) and the
    string; a dict written before the scale existed reads as scale 1."""
    plain = LatentCodeSpec.parse("noise:62:uniform,cat:10,cont:2")
    scaled = LatentCodeSpec.parse("noise:62:uniform*0.2,cat:10,cont:2")
    assert scaled.noise_scale == 0.2 and scaled.input_dim == plain.input_dim == 74
    a = plain.sample(500, generator=torch.Generator().manual_seed(3))
    b = scaled.sample(500, generator=torch.Generator().manual_seed(3))
    assert torch.equal(b.noise, a.noise * 0.2)
    assert torch.equal(b.cont, a.cont) and torch.equal(b.cat[0], a.cat[0])
    assert b.noise.abs().max() <= 0.2 and b.noise.std() == pytest.approx(0.2 / math.sqrt(3), rel=0.05)
    assert str(scaled) == "noise:62:uniform*0.2,cat:10,cont:2"
    assert LatentCodeSpec.from_dict(scaled.to_dict()) == scaled
    old = plain.to_dict()
    del old["noise_scale"]
    assert LatentCodeSpec.from_dict(old).noise_scale == 1.0
    assert LatentCodeSpec.build(62, [10], 2, noise_prior="uniform", noise_scale=0.2) == scaled


def test_generator_input_reads_nothing_back_from_the_device():
    """``flat`` is built without reading a value back to the host (F.one_hot reads its indices' range:
    a device sync on a GPU), and equals the one-hot layout: hand-made indices, hand-made rows."""
    spec = LatentCodeSpec.parse("noise:1,cat:3,cat:2,cont:1")
    batch = spec.sample(3)
    batch.cat[0][:] = torch.tensor([2, 0, 1])
    batch.cat[1][:] = torch.tensor([1, 1, 0])
    with HostReads() as reads:
        flat = batch.flat
    assert reads.count == 0
    expected = torch.tensor([[0, 0, 1, 0, 1], [1, 0, 0, 0, 1], [0, 1, 0, 1, 0]], dtype=flat.dtype)
    assert torch.equal(flat[:, 1:6], expected)


def test_sample_is_seeded_and_fixed_codes():
    spec = LatentCodeSpec.parse("noise:5,cat:3,cont:2")
    a = spec.sample(8, generator=torch.Generator().manual_seed(1)).flat
    b = spec.sample(8, generator=torch.Generator().manual_seed(1)).flat
    assert torch.equal(a, b)
    fixed = spec.sample(8, fixed={"c1": 2, "c3": 0.5})
    assert fixed.cat[0].eq(2).all() and fixed.cont[:, 1].eq(0.5).all()
    with pytest.raises(ValueError, match="c1"):
        spec.sample(2, fixed={"c1": 3})


def test_traversal_grid_layout():
    spec = LatentCodeSpec.parse("noise:5,cat:3,cont:2")
    batch, values = spec.traverse("c2", n_noise=4)
    assert values == pytest.approx(torch.linspace(-2, 2, 9).tolist())
    assert len(batch) == 36
    grid = batch.cont[:, 0].view(9, 4)
    assert torch.allclose(grid, torch.tensor(values)[:, None].expand(9, 4))
    noise = batch.noise.view(9, 4, 5)
    assert torch.equal(noise[0], noise[8])  # same noise in every row
    cat_batch, cat_values = spec.traverse("c1", n_noise=2)
    assert cat_values == [0, 1, 2] and cat_batch.cat[0].tolist() == [0, 0, 1, 1, 2, 2]
