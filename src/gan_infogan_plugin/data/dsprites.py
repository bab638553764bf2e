"""dSprites (Matthey et al. 2017) rendered by the package: every combination of five factors once.

The factors and their values are those of :mod:`.shapes`: shape 3 (square, ellipse, heart) x scale 6
(0.5 to 1) x rotation 40 x x 32 x y 32 = 737,280 sprites, drawn as dSprites draws them: binary, one
white sprite on black, here at the model's image size. Image ``i`` has the ``i``-th factor row of
:meth:`Grid.factors`, dSprites' order: the shape varies slowest, y fastest. Nothing is downloaded.

Where this differs from the published dSprites files: the outlines and the position range are
:mod:`.shapes`' (sprite centres span the middle half of the image), and the 40 angles are
k 2 pi / 40, k = 0..39 (dSprites' 40 angles run from 0 to 2 pi inclusive, so its first and last
draw the same picture).

Options (``data.options``):

- ``stride`` (int, default 1): keep every stride-th angle and x and y position, with every shape and
  scale: 1 is the full grid, 2 gives 92,160 sprites, 4 gives 11,520, 8 gives 1,440.
- ``cache`` (bool, default true): keep the rendered grid in ``<data.root>/dsprites/`` so that a second
  build reads it instead of rendering again.

``data.limit`` keeps that many sprites drawn at random from the grid (always the same ones); the
data set's ``render`` still reaches the whole grid.

The cache file holds the pixels bit-packed (S * S / 8 bytes a sprite: 377 MB for the full grid at
64x64) after a header with the format version, the settings and a BLAKE2b digest of the pixels. It is
written to a temporary file and renamed, so an interrupted write leaves no cache; a file whose
header, length or digest is wrong is rendered again and replaced, with a warning. In memory the
images are uint8, 0 or 255 (3.0 GB for the full grid at 64x64).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..recipes import DataConfig
from ..runs import atomic_file, make_folder
from . import shapes
from .base import Factors, ImageData, check_options, fit_images, to_unit_range

FACTORS = shapes.FACTORS
STRIDED = ("rotation", "x", "y")  # the factors ``stride`` thins out
MAGIC = b"gan-infogan-plugin dsprites cache\n"
FORMAT = 1  # bump when the pixels rendered for a grid change: older caches are then rendered again
_HEADER_LIMIT = 4096


@dataclass(frozen=True)
class Grid:
    """The factor values kept: for each factor of :data:`FACTORS`, ascending indices into its values."""

    kept: tuple[tuple[int, ...], ...]

    @classmethod
    def strided(cls, stride: int = 1) -> "Grid":
        """Every ``stride``-th value of the rotation, x and y; every shape and scale."""
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        return cls(tuple(
            tuple(range(0, size, stride if name in STRIDED else 1)) for name, size in zip(FACTORS, shapes.FACTOR_SIZES)
        ))

    @property
    def shape(self) -> tuple[int, ...]:
        """How many values of each factor are kept."""
        return tuple(len(k) for k in self.kept)

    def __len__(self) -> int:
        return math.prod(self.shape)

    def factors(self) -> torch.Tensor:
        """(N, 5) long: every combination once, the first factor varying slowest."""
        return torch.cartesian_prod(*(torch.tensor(k) for k in self.kept))

    def index(self, factors: torch.Tensor) -> torch.Tensor:
        """Rows of :meth:`factors` holding the factor rows ``factors`` (n, 5) long: (n,) long."""
        if factors.ndim != 2 or factors.shape[1] != len(FACTORS):
            raise ValueError(f"factors must be (n, {len(FACTORS)}) indices, got shape {tuple(factors.shape)}")
        factors = factors.cpu()
        if (factors < 0).any() or (factors >= torch.tensor(shapes.FACTOR_SIZES)).any():
            raise ValueError(f"factor indices out of range: sizes are {shapes.FACTOR_SIZES}")
        position = torch.full((len(FACTORS), max(shapes.FACTOR_SIZES)), -1)  # factor, value -> place in kept
        for f, kept in enumerate(self.kept):
            position[f, torch.tensor(kept)] = torch.arange(len(kept))
        places = position[torch.arange(len(FACTORS)), factors]
        if (places < 0).any():
            raise ValueError(f"factor values outside the grid (kept values: {self.kept})")
        radix = torch.tensor([math.prod(self.shape[f + 1 :]) for f in range(len(FACTORS))])
        return (places * radix).sum(1)


def render_grid(grid: Grid, size: int, chunk: int = 4096) -> np.ndarray:
    """The grid's sprites, bit-packed: (N, ceil(size^2 / 8)) uint8, ``np.packbits`` of each image's
    pixels in row-major order (1: sprite)."""
    factors = grid.factors()
    packed = np.empty((len(factors), (size * size + 7) // 8), dtype=np.uint8)
    for start in range(0, len(factors), chunk):
        images = shapes.render(factors[start : start + chunk], size, binary=True)
        packed[start : start + chunk] = np.packbits((images > 0).flatten(1).numpy(), axis=1)
    return packed


def unpack(packed: np.ndarray, size: int, chunk: int = 16384) -> torch.Tensor:
    """Bit-packed sprites (N, ceil(size^2 / 8)) to images (N, 1, size, size) uint8, 0 or 255."""
    out = torch.empty((len(packed), 1, size, size), dtype=torch.uint8)
    for start in range(0, len(packed), chunk):
        bits = np.unpackbits(packed[start : start + chunk], axis=1, count=size * size)
        out[start : start + chunk] = torch.from_numpy(bits).view(-1, 1, size, size) * 255
    return out


def cache_path(root: str | Path, size: int, stride: int) -> Path:
    """Where the grid for ``size`` and ``stride`` is kept."""
    return Path(root) / "dsprites" / f"dsprites-{size}px-stride{stride}.bits"


def _settings(size: int, stride: int, count: int) -> dict:
    return {"format": FORMAT, "size": size, "stride": stride, "count": count, "bytes_per_image": (size * size + 7) // 8}


def read_cache(path: Path, size: int, stride: int, count: int) -> tuple[np.ndarray | None, str | None]:
    """(packed sprites, None) from a valid cache file; (None, None) when there is none; (None, why)
    when the file is not a valid cache for these settings."""
    if not path.is_file():
        return None, None
    expected = _settings(size, stride, count)
    try:
        with open(path, "rb") as f:
            if f.readline(_HEADER_LIMIT) != MAGIC:
                return None, "not a dsprites cache file"
            header = json.loads(f.readline(_HEADER_LIMIT))
            payload = f.read()
    except (OSError, ValueError) as exc:
        return None, f"unreadable: {exc}"
    if not isinstance(header, dict) or {k: header.get(k) for k in expected} != expected:
        return None, f"made for other settings ({header})"
    if len(payload) != count * expected["bytes_per_image"]:
        return None, f"{len(payload)} bytes of pixels, expected {count * expected['bytes_per_image']}"
    if hashlib.blake2b(payload, digest_size=32).hexdigest() != header.get("blake2b"):
        return None, "the pixels do not match their digest"
    return np.frombuffer(payload, dtype=np.uint8).reshape(count, -1), None


def write_cache(path: Path, packed: np.ndarray, size: int, stride: int) -> None:
    """Write the cache through a temporary file in the same folder and an atomic rename."""
    header = {**_settings(size, stride, len(packed)), "blake2b": hashlib.blake2b(packed.data, digest_size=32).hexdigest()}
    make_folder(path.parent)
    with atomic_file(path, needed=packed.nbytes, unique=True) as tmp, open(tmp, "xb") as f:  # unique: no clash with another process
        f.write(MAGIC)
        f.write(json.dumps(header).encode() + b"\n")
        f.write(packed.data)


def load_grid(grid: Grid, size: int, stride: int, root: str | Path | None) -> np.ndarray:
    """The grid's packed sprites from the cache under ``root``, rendered (and cached) when the cache is
    missing or invalid; ``root=None``: always render, cache nothing."""
    if root is None:
        return render_grid(grid, size)
    path = cache_path(root, size, stride)
    packed, problem = read_cache(path, size, stride, len(grid))
    if packed is not None:
        return packed
    if problem is not None:
        warnings.warn(f"dsprites: {path} is not a valid cache ({problem}); rendering the sprites again", RuntimeWarning, stacklevel=2)
    packed = render_grid(grid, size)
    try:
        write_cache(path, packed, size, stride)
    except OSError as exc:
        warnings.warn(f"dsprites: cannot write the cache {path} ({exc}); the sprites will be rendered again next time", RuntimeWarning, stacklevel=2)
    return packed


def build(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """The ``dsprites`` data set: options ``stride`` (default 1) and ``cache`` (default true); see the module."""
    options = check_options("dsprites", cfg.options, {"stride": int, "cache": bool})
    stride = options.get("stride", 1)
    if stride < 1:
        raise UserError(f"data.options.stride: expected an integer >= 1, got {stride}")
    grid = Grid.strided(stride)
    packed = load_grid(grid, size, stride, cfg.root if options.get("cache", True) else None)
    everything = fit_images(unpack(packed, size), size, channels, "dsprites")
    factors = grid_factors = grid.factors()

    def render(rows: torch.Tensor) -> torch.Tensor:
        """Factor rows (n, 5) long -> the grid's images (n, channels, size, size) float in [-1, 1]."""
        return to_unit_range(everything[grid.index(rows)])

    def sample(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 5) long: factor rows of the grid drawn uniformly, with replacement."""
        return grid_factors[torch.randint(len(grid_factors), (n,), generator=generator)]

    images = everything
    if cfg.limit and cfg.limit < len(grid):
        pick = torch.randperm(len(grid), generator=torch.Generator().manual_seed(0))[: cfg.limit]
        images, factors = everything[pick], factors[pick]
    return ImageData("dsprites", images=images, labels=factors[:, 0], factors=Factors(FACTORS, sample, render))
