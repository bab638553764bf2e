"""Data sets: the shapes renderer, the batch streams, and each torchvision-backed recipe on tiny files
written in the data set's real format (MNIST idx .gz, SVHN .mat, image folders)."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from typer.testing import CliRunner

from gan_infogan_plugin.cli import app
from gan_infogan_plugin.data import shapes
from gan_infogan_plugin.data.base import batch_indices, fit_images
from gan_infogan_plugin.data.torchvision_sets import read_idx
from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.export import load_generator


# --------------------------------------------------------------------------- shapes
def test_shapes_interface():
    assert shapes.FACTORS == ("shape", "scale", "rotation", "x", "y")
    assert shapes.FACTOR_SIZES == (3, 6, 40, 32, 32)
    factors = shapes.sample_factors(500, torch.Generator().manual_seed(1))
    assert factors.shape == (500, 5) and factors.dtype == torch.long
    assert (factors.min(0).values >= 0).all() and (factors.max(0).values < torch.tensor(shapes.FACTOR_SIZES)).all()
    images = shapes.render(factors[:10], size=32)
    assert images.shape == (10, 1, 32, 32) and images.min() >= -1 and images.max() <= 1
    data = shapes.ShapesDataset(20, size=16, seed=3)
    assert data.images.shape == (20, 1, 16, 16) and data.factors.shape == (20, 5)
    again = shapes.ShapesDataset(20, size=16, seed=3)
    assert torch.equal(data.images, again.images) and torch.equal(data.factors, again.factors)


def test_square_area_and_symmetry_by_hand():
    # Square, largest scale: radius 0.4, half-side 0.8 * 0.4 = 0.32 of the half-width. At 32 px a pixel is
    # 2/32 = 0.0625 wide, so the side is 0.64 / 0.0625 = 10.24 px and the area 104.86 px^2 (edges
    # anti-aliased: partial pixels count in proportion).
    upright = torch.tensor([[0, 5, 0, 16, 16]])
    coverage = (shapes.render(upright, 32) + 1) / 2
    assert coverage.sum().item() == pytest.approx(10.24**2, abs=1.0)
    # A quarter turn (rotation index 10 of 40) leaves a square unchanged; the ellipse turns into its transpose.
    assert torch.allclose(shapes.render(torch.tensor([[0, 5, 10, 16, 16]]), 32), shapes.render(upright, 32), atol=1e-4)
    ellipse = shapes.render(torch.tensor([[1, 5, 0, 16, 16]]), 33)
    turned = shapes.render(torch.tensor([[1, 5, 10, 16, 16]]), 33)
    assert not torch.allclose(ellipse, turned, atol=0.1)
    # Ellipse semi-axes 0.4 and 0.22: area pi * 0.4 * 0.22 in units where the image is 2 x 2.
    area = (ellipse + 1).sum().item() / 2 * (2 / 33) ** 2
    assert area == pytest.approx(math.pi * 0.4 * 0.22, rel=0.03)


def test_render_rejects_bad_factors():
    with pytest.raises(ValueError, match="out of range"):
        shapes.render(torch.tensor([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        shapes.render(torch.zeros(2, 4, dtype=torch.long))


# --------------------------------------------------------------------------- batches and conversions
def test_batch_streams_are_seeded_per_rank_and_step():
    a = batch_indices(1000, 16, seed=0, rank=0, step=5)
    assert torch.equal(a, batch_indices(1000, 16, seed=0, rank=0, step=5))
    assert not torch.equal(a, batch_indices(1000, 16, seed=0, rank=1, step=5))
    assert not torch.equal(a, batch_indices(1000, 16, seed=0, rank=0, step=6))
    assert not torch.equal(a, batch_indices(1000, 16, seed=1, rank=0, step=5))


def test_fit_images_converts_channels_and_size():
    rgb = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    rgb[:, 0] = 100  # pure red at 100: luma 0.299 * 100 = 29.9 -> 30
    grey = fit_images(rgb, 8, 1, "t")
    assert grey.dtype == torch.uint8 and grey.shape == (2, 1, 8, 8) and (grey == 30).all()
    up = fit_images(torch.full((1, 1, 4, 4), 7, dtype=torch.uint8), 8, 3, "t")
    assert up.shape == (1, 3, 8, 8) and (up == 7).all()
    with pytest.raises(UserError, match="has 2 channels"):
        fit_images(torch.zeros(1, 2, 4, 4), 4, 1, "t")


# --------------------------------------------------------------------------- tiny data sets in real formats
def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: 0, 0, type 0x08 (ubyte), ndim, big-endian dims, then the bytes; gzipped."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def mnist_like(root: Path, folder: str, n: int = 16, prefix: str = "train") -> np.ndarray:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return images


def image_folder(root: Path, n: int, size: tuple[int, int], mode: str = "RGB", nested: bool = True) -> None:
    rng = np.random.default_rng(1)
    for i in range(n):
        folder = root / f"class{i % 2}" if nested else root
        folder.mkdir(parents=True, exist_ok=True)
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")


def run(recipe: str, tmp_path: Path, *sets: str, steps: int = 2):
    options = ["trainer.batch_size=4", "trainer.sample_noise=1", "trainer.sample_every=0", "trainer.log_every=1",
               "trainer.checkpoint_every=0", "trainer.bn_batches=1", "data.download=false", "data.num_workers=0", *sets]
    args = ["run", recipe, "--max-steps", str(steps), "--out", str(tmp_path / "run"), "--no-progress"]
    return CliRunner().invoke(app, args + [a for s in options for a in ("--set", s)])


def assert_trained(result, tmp_path: Path, steps: int) -> None:
    assert result.exit_code == 0, result.output
    assert load_generator(tmp_path / "run" / "generator.safetensors").step == steps
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + steps


def test_read_idx_reads_and_checks(tmp_path):
    images = mnist_like(tmp_path, "MNIST", n=5)
    assert torch.equal(read_idx(tmp_path / "MNIST/raw/train-images-idx3-ubyte.gz"), torch.from_numpy(images))
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(UserError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(UserError, match="bad magic"):
        read_idx(tmp_path / "junk")


@pytest.mark.parametrize("recipe, folder", [("infogan-mnist", "MNIST"), ("dcgan-mnist", "MNIST"), ("infogan-fashion-mnist", "FashionMNIST")])
def test_mnist_recipes_train_on_idx_files(recipe, folder, tmp_path):
    mnist_like(tmp_path / "data", folder)
    assert_trained(run(recipe, tmp_path, f'data.root="{tmp_path / "data"}"'), tmp_path, 2)


def test_mnist_test_split_and_limit(tmp_path):
    mnist_like(tmp_path / "data", "MNIST", n=12, prefix="t10k")  # only the test split, as in shared/data/mnist
    result = run("infogan-mnist", tmp_path, f'data.root="{tmp_path / "data"}"', 'data.split="test"', "data.limit=6", steps=1)
    assert_trained(result, tmp_path, 1)


def test_evaluation_samples_a_label_sorted_set_at_random(tmp_path):
    # 40 digits stored in label order (four of each), as many data sets are: scores on the first N would see 0s and 1s only.
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte.gz", np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.repeat(np.arange(10), 4))
    result = run("infogan-mnist", tmp_path, f'data.root="{tmp_path / "data"}"', "trainer.eval_every=2")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        scored = [row["eval/real_images"] for row in csv.DictReader(f) if row.get("eval/real_images")]
    assert scored == ["40.0"]  # in training: 1,000 asked, all 40 scored, and the count is logged
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "run"), "--real", "8", "--generated", "8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "real images: 8 of mnist, drawn at random (seed 0) from 40" in " ".join(result.output.split())
    scores = json.loads(out.read_text())
    assert scores["real_images"] == {"data": "mnist", "scored": 8, "of": 40, "seed": 0}
    assert scores["categorical"]["images"] == 8


def test_svhn_recipe_trains_on_a_mat_file(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (32, 32, 3, 8), dtype=np.uint8)  # SVHN's layout: H, W, C, N; digit 0 stored as 10
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": (np.arange(8) % 10 + 1).reshape(-1, 1)})
    assert_trained(run("infogan-svhn", tmp_path, f'data.root="{tmp_path}"', steps=1), tmp_path, 1)


def test_celeba_recipe_trains_on_its_jpeg_folder(tmp_path):
    image_folder(tmp_path / "celeba" / "img_align_celeba", 6, (178, 218), nested=False)
    assert_trained(run("infogan-celeba", tmp_path, f'data.root="{tmp_path}"', steps=1), tmp_path, 1)


@pytest.mark.parametrize("recipe, size, mode", [("infogan-faces", (40, 40), "L"), ("infogan-chairs", (80, 80), "RGB")])
def test_image_folder_recipes_train(recipe, size, mode, tmp_path):
    image_folder(tmp_path / "images", 6, size, mode)
    assert_trained(run(recipe, tmp_path, f'data.root="{tmp_path / "images"}"', steps=1), tmp_path, 1)


@pytest.mark.parametrize(
    "recipe, expected",
    [
        ("infogan-mnist", "MNIST/raw does not hold train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]"),
        ("infogan-svhn", "does not hold train_32x32.mat"),
        ("infogan-celeba", "celeba/img_align_celeba does not hold the JPEG files"),
        ("infogan-chairs", "does not exist"),
    ],
)
def test_missing_files_give_one_line_saying_where_and_how(recipe, expected, tmp_path):
    result = run(recipe, tmp_path, f'data.root="{tmp_path / "nothing"}"')
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    error = lines[-1]
    assert error.startswith("error: ") and expected in error and str(tmp_path / "nothing") in error
    assert "Traceback" not in result.output
    assert "download" in error or "put the images there" in error
    assert not (tmp_path / "run" / "generator.safetensors").exists()
