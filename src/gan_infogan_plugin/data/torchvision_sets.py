"""The torchvision data sets: MNIST, FashionMNIST, SVHN, CIFAR-10 (held in memory) and CelebA (files).

Files are looked for where torchvision puts them under ``data.root``, and read here (MNIST idx
files, SVHN .mat files), so a folder holding only the split in use works. When they are missing
and ``data.download`` is true, torchvision downloads them; when that fails (no network), one
:class:`UserError` says where the files are expected and how to get them.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import scipy.io
import torch
import torchvision

from ..errors import UserError, one_line
from ..recipes import DataConfig
from .base import ImageData, check_options, fit_images
from .folder import image_files

# What a failed download can raise: network errors are OSErrors; torchvision wraps others in RuntimeError;
# CelebA needs the optional gdown package (ImportError).
DOWNLOAD_ERRORS = (OSError, RuntimeError, ImportError)


def _missing(name: str, where: Path, expected: str, cfg: DataConfig, url: str, reason: str | None) -> UserError:
    got = f"the download failed ({reason})" if reason else "data.download is false"
    return UserError(
        f"{name}: {where} does not hold {expected}, and {got}; "
        f"download them from {url} into that folder, or set data.root to where they are"
    )


def _check_split(name: str, cfg: DataConfig, splits: tuple[str, ...]) -> None:
    if cfg.split not in splits:
        raise UserError(f"data.split: {name} has splits {', '.join(splits)}, got {cfg.split!r}")


def _download(name: str, where: Path, expected: str, cfg: DataConfig, url: str, fetch) -> None:
    """Run ``fetch()`` (a torchvision download) when allowed; failures become one UserError, and the
    folders the attempt created (``data/``, ``data/MNIST/raw/``, ...) are removed again when empty."""
    if not cfg.download:
        raise _missing(name, where, expected, cfg, url, None)
    new_folders = [folder for folder in (where, *where.parents) if not folder.exists()]  # deepest first
    try:
        fetch()
    except DOWNLOAD_ERRORS as exc:
        for folder in new_folders:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise _missing(name, where, expected, cfg, url, f"{type(exc).__name__}: {one_line(exc)}") from None


def _in_memory(name: str, cfg: DataConfig, images: torch.Tensor, labels: torch.Tensor, size: int, channels: int) -> ImageData:
    if cfg.limit:
        images, labels = images[: cfg.limit], labels[: cfg.limit]
    return ImageData(name, images=fit_images(images, size, channels, name), labels=labels)


# --------------------------------------------------------------------------- MNIST and FashionMNIST
def read_idx(path: Path) -> torch.Tensor:
    """An idx file of unsigned bytes (MNIST's format; gzip-compressed or not) as a uint8 tensor."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read the idx file: {exc}") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise UserError(f"{path}: not an idx file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(data) != header + math.prod(dims):
        raise UserError(f"{path}: truncated or padded idx file: dims {dims} need {math.prod(dims)} bytes of data")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).view(*dims)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_set(name: str, folder: str, dataset_cls, url: str, cfg: DataConfig, size: int, channels: int) -> ImageData:
    check_options(name, cfg.options, {})
    _check_split(name, cfg, ("train", "test"))
    prefix = "train" if cfg.split == "train" else "t10k"
    raw = Path(cfg.root) / folder / "raw"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    expected = " and ".join(f"{s}[.gz]" for s in stems)
    if any(_idx_file(raw, s) is None for s in stems):
        _download(name, raw, expected, cfg, url, lambda: dataset_cls(cfg.root, train=cfg.split == "train", download=True))
    images, labels = (read_idx(_idx_file(raw, s)) for s in stems)  # type: ignore[arg-type]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{name}: {raw}: expected (N, H, W) images and N labels, got {tuple(images.shape)} and {tuple(labels.shape)}")
    return _in_memory(name, cfg, images[:, None], labels.long(), size, channels)


def mnist(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """MNIST digits (28x28 grey), files in ``<root>/MNIST/raw``."""
    return _idx_set("mnist", "MNIST", torchvision.datasets.MNIST, "https://ossci-datasets.s3.amazonaws.com/mnist/", cfg, size, channels)


def fashion_mnist(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """Fashion-MNIST (28x28 grey), files in ``<root>/FashionMNIST/raw``."""
    url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    return _idx_set("fashion-mnist", "FashionMNIST", torchvision.datasets.FashionMNIST, url, cfg, size, channels)


# --------------------------------------------------------------------------- SVHN
def svhn(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """SVHN cropped digits (32x32 RGB), ``<root>/<split>_32x32.mat`` (MATLAB files, read with scipy)."""
    check_options("svhn", cfg.options, {})
    _check_split("svhn", cfg, ("train", "test", "extra"))
    path = Path(cfg.root) / f"{cfg.split}_32x32.mat"
    if not path.is_file():
        fetch = lambda: torchvision.datasets.SVHN(cfg.root, split=cfg.split, download=True)  # noqa: E731
        _download("svhn", path.parent, path.name, cfg, "http://ufldl.stanford.edu/housenumbers/", fetch)
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
        x, y = mat["X"], mat["y"]
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise UserError(f"{path}: not an SVHN .mat file with X (32, 32, 3, N) and y: {exc}") from None
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise UserError(f"{path}: expected X as uint8 (32, 32, 3, N), got {x.dtype} {x.shape}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    labels = torch.from_numpy(y.reshape(-1).astype(np.int64)) % 10  # SVHN stores the digit 0 as 10
    return _in_memory("svhn", cfg, images, labels, size, channels)


# --------------------------------------------------------------------------- CIFAR-10
def cifar10(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """CIFAR-10 (32x32 RGB), torchvision's python batches in ``<root>/cifar-10-batches-py``."""
    check_options("cifar10", cfg.options, {})
    _check_split("cifar10", cfg, ("train", "test"))
    where = Path(cfg.root) / "cifar-10-batches-py"

    def open_set(download: bool):
        return torchvision.datasets.CIFAR10(cfg.root, train=cfg.split == "train", download=download)

    url = "https://www.cs.toronto.edu/~kriz/cifar.html"
    try:
        data = open_set(False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        _download("cifar10", where, "data_batch_1..5 and test_batch", cfg, url, lambda: open_set(True))
        data = open_set(False)
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return _in_memory("cifar10", cfg, images, torch.tensor(data.targets), size, channels)


# --------------------------------------------------------------------------- CelebA
def celeba(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """CelebA aligned faces (178x218 JPEGs) in ``<root>/celeba/img_align_celeba``, read from disk.

    Every image is used (no split); ``data.crop`` centre-crops before resizing (140 keeps the face).
    """
    check_options("celeba", cfg.options, {})
    folder = Path(cfg.root) / "celeba" / "img_align_celeba"
    url = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (img_align_celeba.zip)"
    if not folder.is_dir():
        fetch = lambda: torchvision.datasets.CelebA(cfg.root, split="all", target_type=[], download=True)  # noqa: E731
        _download("celeba", folder, "the JPEG files", cfg, url, fetch)
    return image_files(cfg, folder, size, channels, "celeba", f"download them from {url}")
