"""Image grids: save a batch as one PNG, draw a code traversal from a generator, animate it as a GIF."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

import torch
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from .codes import CategoricalCode, LatentCodeSpec
from .modes import evaluating
from .runs import atomic_file


def grid_image(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> Image.Image:
    """Images (N, C, H, W) in [-1, 1] as one picture, ``nrow`` images per row, black between them;
    mode L for C = 1, RGB for C = 3."""
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, pad_value=-1.0)
    pixels = ((grid + 1.0) * 127.5).round().to(torch.uint8)  # (3, H', W'): make_grid repeats a grey channel
    return Image.fromarray(pixels[0].numpy() if images.shape[1] == 1 else pixels.permute(1, 2, 0).numpy())


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Write images (N, C, H, W) in [-1, 1] as one PNG, ``nrow`` images per row (C is 1 or 3).

    The file is written under a temporary name and renamed, so a reader never sees half a PNG.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        grid_image(images, nrow, padding).save(tmp, format="PNG")
    return path


def traversal_grid(
    generator: nn.Module,
    spec: LatentCodeSpec,
    code: str,
    n_noise: int = 8,
    seed: int = 0,
    device: torch.device | str | None = None,
    values: Iterable[float] | None = None,
) -> torch.Tensor:
    """G's images as one code varies: a batch (len(values) * n_noise, C, H, W), row-major (rows = code
    values, columns = noise), to lay out as one grid image with ``save_grid(images, path, nrow=n_noise)``.

    Categorical codes take every class, continuous ones 9 values in [-2, 2] unless ``values`` is
    given (see :meth:`LatentCodeSpec.traverse`); the noise and the other codes are drawn from ``seed``
    and fixed per column. The generator runs in eval mode (BatchNorm running statistics) and is left
    in the mode it was in.
    """
    if device is None:
        device = next(generator.parameters()).device
    batch, _ = spec.traverse(code, n_noise, values, generator=torch.Generator().manual_seed(seed))
    with evaluating(generator):
        return generator(batch.to(device).flat)


GIF_STEPS = 17  # values of a continuous code in [-2, 2] per sweep of an animation
GIF_SECONDS = 2.4  # one loop of a continuous code's animation (there and back)
GIF_CLASS_MS = 500  # how long an animation shows each class of a categorical code


def traversal_gif(
    generator: nn.Module,
    spec: LatentCodeSpec,
    code: str,
    n_noise: int = 8,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> bytes:
    """A traversal as a looping GIF: one row of ``n_noise`` images (noise and other codes fixed per
    column, drawn from ``seed``) while ``code`` changes from frame to frame.

    A continuous code sweeps GIF_STEPS values from -2 to 2 and back (2 * GIF_STEPS - 2 frames); a
    categorical code shows each class in turn (one frame per class).
    """
    categorical = isinstance(spec.code(code), CategoricalCode)
    values = spec.traverse_values(code, GIF_STEPS)
    images = traversal_grid(generator, spec, code, n_noise, seed, device, values)
    frames = images.reshape(len(values), n_noise, *images.shape[1:])
    if not categorical:
        frames = torch.cat([frames, frames.flip(0)[1:-1]])  # there and back: the loop has no jump
    duration = GIF_CLASS_MS if categorical else round(1000 * GIF_SECONDS / len(frames))
    pictures = [grid_image(frame, nrow=n_noise) for frame in frames]
    out = io.BytesIO()
    pictures[0].save(out, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    return out.getvalue()
