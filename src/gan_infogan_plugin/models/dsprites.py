"""The InfoGAN-CR networks for 64x64 dSprites (Lin et al., ICML 2020; the authors' code,
``InfoGAN-CR_dSprites``, ``gan/network.py``), registered as ``dsprites64``.

- G: FC 128 - FC 4x4x64 - three 4x4 stride-2 transposed convolutions (64, 32, 32) - one to C
  channels; ReLU after the FC layers and LeakyReLU(0.2) after the convolutions, each followed by
  BatchNorm (the authors' order: activation, then BatchNorm); sigmoid out.
- D: the trunk of :func:`~gan_infogan_plugin.contrastive.cr_trunk` (4x4 stride-2 convolutions 32,
  32, 64, 64 and FC 128, LeakyReLU(0.2), spectral norm on every layer, no BatchNorm), then FC 1 with
  spectral norm. Q reads the trunk's output, ``trunk.10`` (N, 128); the authors' Q is FC 128 -
  LeakyReLU(0.2) - FC on it with spectral norm and no BatchNorm (the dSprites recipes' ``[q_head]``:
  ``hidden = 128``, ``batchnorm = false``, ``spectral_norm = true``, ``negative_slope = 0.2``).

Image range: the paper's images are in [0, 1], the runner's in [-1, 1]. G ends in 2 sigmoid(x) - 1
and D first maps its input back with (x + 1) / 2, so both networks compute the paper's functions of
the paper's [0, 1] images while the runner sees [-1, 1] throughout.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..contrastive import cr_trunk
from .base import Flat, GANModel, init_weights


class CenteredSigmoid(nn.Module):
    """2 sigmoid(x) - 1: the paper's sigmoid output moved from [0, 1] to [-1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(x) - 1.0


def _upconv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2), nn.BatchNorm2d(cout)]


def generator(input_dim: int, channels: int = 1) -> nn.Module:
    """(N, input_dim) or (N, input_dim, 1, 1) -> (N, channels, 64, 64) in [-1, 1]."""
    return nn.Sequential(
        Flat(),
        nn.Linear(input_dim, 128), nn.ReLU(), nn.BatchNorm1d(128),
        nn.Linear(128, 4 * 4 * 64), nn.ReLU(), nn.BatchNorm1d(4 * 4 * 64),
        nn.Unflatten(1, (64, 4, 4)),
        *_upconv(64, 64), *_upconv(64, 32), *_upconv(32, 32),
        nn.ConvTranspose2d(32, channels, 4, 2, 1), CenteredSigmoid(),
    )


class Discriminator(nn.Module):
    """(N, C, 64, 64) in [-1, 1] -> logits (N,); ``trunk`` sees (x + 1) / 2 and gives (N, 128)."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.trunk = cr_trunk(channels, 64)
        head = nn.Linear(128, 1)
        init_weights(head)  # before spectral norm, which leaves later initialisations no effect
        self.head = spectral_norm(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk((x + 1.0) / 2.0)).view(-1)


dsprites64 = GANModel("dsprites64", 64, generator, Discriminator, q_layer="trunk.10", channels=1)
