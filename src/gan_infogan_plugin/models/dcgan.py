"""The classic DCGAN 64x64 pair (Radford et al. 2016), as in Lightning Fabric's DCGAN example.

Both keep their layers in ``self.main = nn.Sequential(...)``; the discriminator ends in a 4x4 conv
to one logit per image. Q reads ``main.10``, the last LeakyReLU's output (N, 8w, 4, 4).
"""

from __future__ import annotations

from torch import nn

from .base import GANModel


class Generator(nn.Module):
    """(N, input_dim, 1, 1) or (N, input_dim) -> (N, C, 64, 64) in [-1, 1]."""

    def __init__(self, input_dim: int, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        w = width
        self.main = nn.Sequential(
            nn.ConvTranspose2d(input_dim, w * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(w * 8), nn.ReLU(True),
            nn.ConvTranspose2d(w * 8, w * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 4), nn.ReLU(True),
            nn.ConvTranspose2d(w * 4, w * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 2), nn.ReLU(True),
            nn.ConvTranspose2d(w * 2, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
            nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, x):
        return self.main(x.reshape(x.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    """(N, C, 64, 64) -> logits (N,)."""

    def __init__(self, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        w = width
        self.main = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, w * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w * 2, w * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w * 4, w * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w * 8, 1, 4, 1, 0, bias=False),
        )

    def forward(self, x):
        return self.main(x).view(-1)


dcgan64 = GANModel("dcgan64", 64, Generator, Discriminator, q_layer="main.10", channels=3)
