"""Procedural 2D sprites with known factors of variation, rendered by torch alone.

Like dSprites (Matthey et al. 2017), each image shows one white sprite on black, set by five
factors, each an index into a grid of values:

- shape: 0 square, 1 ellipse, 2 heart;
- scale: 6 values from 0.5 to 1 (times a base radius of 0.4 of the half-width);
- rotation: 40 angles, k * 2 pi / 40;
- x, y: 32 positions each, from -0.5 to 0.5 (image coordinates run from -1 to 1, y downwards).

Edges are anti-aliased (coverage from the signed distance to the outline) and images scaled to [-1, 1] (-1 background, 1 sprite).
The same factors always give the same pixels, so a data set is fixed by its size and seed.
"""

from __future__ import annotations

import math

import torch

from ..recipes import DataConfig
from .base import Factors, ImageData, check_options, fit_images

FACTORS: tuple[str, ...] = ("shape", "scale", "rotation", "x", "y")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")

BASE_RADIUS = 0.4
POSITION_RANGE = 0.5


def factor_values() -> dict[str, torch.Tensor]:
    """The value each factor index stands for: scale multipliers, angles in radians, centre coordinates."""
    return {
        "shape": torch.arange(FACTOR_SIZES[0], dtype=torch.float32),
        "scale": torch.linspace(0.5, 1.0, FACTOR_SIZES[1]),
        "rotation": torch.arange(FACTOR_SIZES[2], dtype=torch.float32) * (2 * math.pi / FACTOR_SIZES[2]),
        "x": torch.linspace(-POSITION_RANGE, POSITION_RANGE, FACTOR_SIZES[3]),
        "y": torch.linspace(-POSITION_RANGE, POSITION_RANGE, FACTOR_SIZES[4]),
    }


def sample_factors(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 5) long: each factor drawn uniformly from its grid."""
    return torch.stack([torch.randint(size, (n,), generator=generator) for size in FACTOR_SIZES], dim=1)


def _distance(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) from sprite-frame points (u, v) to each shape's outline.

    Units are the sprite radius. shape: (N, 1, 1) long; u, v: (N, H, W). The square's distance is
    exact; the ellipse's and the heart's are first order, f / |grad f| of their implicit equations.
    """
    qx, qy = u.abs() - 0.8, v.abs() - 0.8  # square of half-side 0.8
    square = torch.hypot(qx.clamp(min=0), qy.clamp(min=0)) + torch.maximum(qx, qy).clamp(max=0)
    b = 0.55  # ellipse semi-axes 1 and b
    f = u**2 + (v / b) ** 2 - 1.0
    ellipse = f / torch.hypot(2 * u, 2 * v / b**2).clamp(min=1e-3)
    # The heart curve (x^2 + y^2 - 1)^3 = x^2 y^3, shrunk by k, point down (image y runs down).
    k = 0.85
    x, y = u / k, -v / k + 0.1
    r = x**2 + y**2 - 1.0
    f = r**3 - x**2 * y**3
    grad = torch.hypot(6 * x * r**2 - 2 * x * y**3, 6 * y * r**2 - 3 * x**2 * y**2) / k
    heart = f / grad.clamp(min=1e-3)
    return torch.where(shape == 0, square, torch.where(shape == 1, ellipse, heart))


def render(factors: torch.Tensor, size: int = 32, chunk: int = 4096) -> torch.Tensor:
    """Images for factor indices: (N, 5) long -> (N, 1, size, size) float in [-1, 1]."""
    if factors.ndim != 2 or factors.shape[1] != len(FACTORS):
        raise ValueError(f"factors must be (N, {len(FACTORS)}) indices, got shape {tuple(factors.shape)}")
    sizes = torch.tensor(FACTOR_SIZES, device=factors.device)
    if (factors < 0).any() or (factors >= sizes).any():
        raise ValueError(f"factor indices out of range: sizes are {FACTOR_SIZES}")
    values = factor_values()
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0  # pixel centres
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")  # (size, size)
    pixel = 2.0 / size  # pixel width in image units
    out = torch.empty(len(factors), 1, size, size)
    for start in range(0, len(factors), chunk):
        f = factors[start : start + chunk].cpu()
        shape = f[:, 0].view(-1, 1, 1)
        radius = (values["scale"][f[:, 1]] * BASE_RADIUS).view(-1, 1, 1)
        angle = values["rotation"][f[:, 2]].view(-1, 1, 1)
        dx = xs - values["x"][f[:, 3]].view(-1, 1, 1)
        dy = ys - values["y"][f[:, 4]].view(-1, 1, 1)
        cos, sin = torch.cos(angle), torch.sin(angle)
        u = (cos * dx + sin * dy) / radius  # rotate the frame by -angle: the sprite turns by +angle
        v = (-sin * dx + cos * dy) / radius
        # Anti-aliasing: a pixel is covered in proportion to how far inside the outline its centre is.
        cover = (0.5 - _distance(shape, u, v) * radius / pixel).clamp(0.0, 1.0)
        out[start : start + chunk, 0] = cover * 2.0 - 1.0
    return out.to(factors.device)


class ShapesDataset:
    """``count`` sprites with factors drawn from ``seed``: ``.images`` (N, 1, S, S) in [-1, 1], ``.factors`` (N, 5)."""

    def __init__(self, count: int = 20_000, size: int = 32, seed: int = 0) -> None:
        self.factors = sample_factors(count, torch.Generator().manual_seed(seed))
        self.images = render(self.factors, size)

    def __len__(self) -> int:
        return len(self.factors)


def build(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """The ``shapes`` data set: options ``count`` (default 20000) and ``seed`` (default 0); no files."""
    options = check_options("shapes", cfg.options, {"count": int, "seed": int})
    count = cfg.limit or options.get("count", 20_000)
    shapes = ShapesDataset(count, size, options.get("seed", 0))
    images = fit_images(shapes.images, size, channels, "shapes")
    return ImageData("shapes", images=images, labels=shapes.factors[:, 0], factors=factors(size, channels))


def factors(size: int, channels: int) -> Factors:
    """The sprites' factors (:data:`FACTORS`), drawn at ``size`` with ``channels`` as the training images are."""
    return Factors(FACTORS, sample_factors, lambda f: fit_images(render(f, size), size, channels, "shapes"))
