"""Augmenting images: a random shift of every image D sees, real and generated alike, and a random
rotation, zoom and shear (the second view of a real image for :mod:`~gan_infogan_plugin.invariance`).

Differentiable augmentation (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training", arXiv 2006.10738): the same random transform is applied to real and fake images before D,
and gradients flow through it to G, so D cannot memorise a small data set pixel for pixel while G
still learns the un-shifted images. For InfoGAN on the 10,000 MNIST test digits, a shift of up to 2
pixels took the 10-way code from 83-88% to 96-98% digit accuracy in most seeds
(benchmarks/MNIST_SWEEP.md).

Q reads D's features of the shifted fakes, so a code that *is* a position (the sprites' x and y in
infogan-shapes) is blurred by the shift: leave it at 0 there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(
    images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None, fill: float | None = None
) -> torch.Tensor:
    """Each image moved by its own whole-pixel offset in [-max_shift, max_shift] along x and y.

    images: (N, C, H, W). The border is extended by replication (so a black MNIST background stays
    black), or by the value ``fill`` when given; the shifted window is cut out. The result has the
    input's shape and is differentiable with respect to ``images``. ``generator`` (on the images'
    device) makes the offsets reproducible. ``max_shift`` 0 returns ``images`` itself.
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return images
    n, c, h, w = images.shape
    device = images.device
    border = {"mode": "replicate"} if fill is None else {"mode": "constant", "value": fill}
    padded = F.pad(images, (max_shift,) * 4, **border)  # (N, C, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), device=device, generator=generator)  # top, left corners
    rows = (offsets[0, :, None] + torch.arange(h, device=device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (offsets[1, :, None] + torch.arange(w, device=device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def affine(images: torch.Tensor, degrees: torch.Tensor, scales: torch.Tensor, shears: torch.Tensor | None = None) -> torch.Tensor:
    """Each image rotated about its centre by its angle (in degrees, counter-clockwise as displayed,
    row 0 at the top) and zoomed by its scale (> 1 enlarges), then sheared horizontally by its shear
    angle (in degrees, > 0 leans the image to the right: each row moves right by tan(shear) times its
    height above the centre).

    images: (N, C, H, W); degrees, scales, shears: (N,); ``shears=None``: no shear. Bilinear
    sampling; outside the image the border pixels are repeated (a black background stays black).
    Differentiable with respect to ``images``.
    """
    radians = torch.deg2rad(degrees.to(images.dtype))
    cos, sin = torch.cos(radians) / scales, torch.sin(radians) / scales
    tan = torch.zeros_like(cos) if shears is None else torch.tan(torch.deg2rad(shears.to(images.dtype)))
    zero = torch.zeros_like(cos)
    # affine_grid maps each output pixel (x, y; y down) to where it samples the input: the inverse of
    # the shear, x_in = x_out + tan * y_out, followed by the inverse of the rotation and zoom
    theta = torch.stack([torch.stack([cos, cos * tan - sin, zero], 1), torch.stack([sin, sin * tan + cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affine(
    images: torch.Tensor, max_degrees: float, max_zoom: float, generator: torch.Generator | None = None,
    max_shear: float = 0.0,
) -> torch.Tensor:
    """:func:`affine` with each image's angle drawn from U(-max_degrees, max_degrees), its scale from
    U(1 - max_zoom, 1 + max_zoom) and its shear angle from U(-max_shear, max_shear) (torchvision's
    ``RandomAffine(degrees, scale=..., shear=...)`` draws the same three). images: (N, C, H, W);
    ``generator`` (on the images' device) makes the draws reproducible; the shears are drawn after the
    angles and scales, and only when ``max_shear`` > 0, so without shear the draws are as before.
    All 0 returns ``images`` itself."""
    if max_degrees < 0 or not 0 <= max_zoom < 1 or not 0 <= max_shear < 90:
        raise ValueError(
            f"expected max_degrees >= 0, 0 <= max_zoom < 1 and 0 <= max_shear < 90, got {max_degrees}, {max_zoom} and {max_shear}"
        )
    if max_degrees == 0 and max_zoom == 0 and max_shear == 0:
        return images
    u = torch.rand(2, images.shape[0], device=images.device, generator=generator) * 2 - 1  # U(-1, 1)
    shears = None
    if max_shear > 0:
        shears = (torch.rand(images.shape[0], device=images.device, generator=generator) * 2 - 1) * max_shear
    return affine(images, u[0] * max_degrees, 1 + u[1] * max_zoom, shears)
