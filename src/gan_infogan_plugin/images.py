"""Image grids: save a batch as one PNG, and draw a code traversal from a generator."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from .codes import LatentCodeSpec
from .modes import evaluating
from .runs import atomic_file


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Write images (N, C, H, W) in [-1, 1] as one PNG, ``nrow`` images per row (C is 1 or 3).

    The file is written under a temporary name and renamed, so a reader never sees half a PNG.
    """
    path = Path(path)
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, pad_value=-1.0)
    pixels = ((grid + 1.0) * 127.5).round().to(torch.uint8)  # (3, H', W'): make_grid repeats a grey channel
    mode_pixels = pixels[0].numpy() if images.shape[1] == 1 else pixels.permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Image.fromarray(mode_pixels).save(tmp, format="PNG")
    return path


def traversal_grid(
    generator: nn.Module,
    spec: LatentCodeSpec,
    code: str,
    n_noise: int = 8,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """G's images as one code varies: a batch (len(values) * n_noise, C, H, W), row-major (rows = code
    values, columns = noise), to lay out as one grid image with ``save_grid(images, path, nrow=n_noise)``.

    Categorical codes take every class, continuous ones 9 values in [-2, 2] (see
    :meth:`LatentCodeSpec.traverse`); the noise and the other codes are drawn from ``seed`` and fixed
    per column. The generator runs in eval mode (BatchNorm running statistics) and is left in the
    mode it was in.
    """
    if device is None:
        device = next(generator.parameters()).device
    batch, _ = spec.traverse(code, n_noise, generator=torch.Generator().manual_seed(seed))
    with evaluating(generator):
        return generator(batch.to(device).flat)
