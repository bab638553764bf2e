"""The architectures of the InfoGAN paper's appendix C (Tables 1-4).

Each discriminator keeps its shared layers in ``trunk`` (an nn.Sequential) and its GAN output in
``head``; Q attaches to the trunk's last layer, so Q shares every conv layer with D.
Generators end in tanh: images are in [-1, 1].
"""

from __future__ import annotations

from torch import nn

from .base import Flat, GANModel


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1, inplace=True)


class Discriminator(nn.Module):
    """trunk: images (N, C, S, S) -> features (N, F); head: features -> logits (N,)."""

    def __init__(self, trunk: nn.Sequential, features: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(features, 1)

    def forward(self, x):
        return self.head(self.trunk(x)).view(-1)


def _upconv(cin: int, cout: int, stride: int = 2) -> list[nn.Module]:
    """4x4 transposed conv doubling the size (stride 2) or a 3x3 conv keeping it (stride 1)."""
    conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False) if stride == 2 else nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
    return [conv, nn.BatchNorm2d(cout), nn.ReLU(True)]


def mnist_generator(input_dim: int, channels: int = 1) -> nn.Module:
    """Table 1: FC 1024 - FC 7x7x128 - upconv 64 - upconv C; (N, input_dim) -> (N, C, 28, 28)."""
    return nn.Sequential(
        Flat(),
        nn.Linear(input_dim, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU(True),
        nn.Linear(1024, 7 * 7 * 128, bias=False), nn.BatchNorm1d(7 * 7 * 128), nn.ReLU(True),
        nn.Unflatten(1, (128, 7, 7)),
        *_upconv(128, 64),
        nn.ConvTranspose2d(64, channels, 4, 2, 1), nn.Tanh(),
    )


def mnist_discriminator(channels: int = 1) -> nn.Module:
    """Table 1: conv 64 - conv 128 - FC 1024 - FC 1; (N, C, 28, 28) -> (N,). Q reads trunk.8 (N, 1024)."""
    trunk = nn.Sequential(
        nn.Conv2d(channels, 64, 4, 2, 1), _lrelu(),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), _lrelu(),
        nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1024, bias=False), nn.BatchNorm1d(1024), _lrelu(),
    )
    return Discriminator(trunk, 1024)


def svhn_generator(input_dim: int, channels: int = 3) -> nn.Module:
    """Tables 2-3: FC 2x2x448 - upconv 256 - 128 - 64 - C; (N, input_dim) -> (N, C, 32, 32)."""
    return nn.Sequential(
        Flat(),
        nn.Linear(input_dim, 2 * 2 * 448, bias=False), nn.BatchNorm1d(2 * 2 * 448), nn.ReLU(True),
        nn.Unflatten(1, (448, 2, 2)),
        *_upconv(448, 256), *_upconv(256, 128), *_upconv(128, 64),
        nn.ConvTranspose2d(64, channels, 4, 2, 1), nn.Tanh(),
    )


def svhn_discriminator(channels: int = 3) -> nn.Module:
    """Tables 2-3: conv 64 - 128 - 256 - FC 1; (N, C, 32, 32) -> (N,). Q reads trunk.8 (N, 256*4*4)."""
    trunk = nn.Sequential(
        nn.Conv2d(channels, 64, 4, 2, 1), _lrelu(),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), _lrelu(),
        nn.Conv2d(128, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), _lrelu(),
        nn.Flatten(),
    )
    return Discriminator(trunk, 256 * 4 * 4)


def chairs_generator(input_dim: int, channels: int = 1) -> nn.Module:
    """After Table 4: FC 1024 - FC 8x8x256 - conv 256 - upconv 256 - 128 - 64 - conv C; -> (N, C, 64, 64)."""
    return nn.Sequential(
        Flat(),
        nn.Linear(input_dim, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU(True),
        nn.Linear(1024, 8 * 8 * 256, bias=False), nn.BatchNorm1d(8 * 8 * 256), nn.ReLU(True),
        nn.Unflatten(1, (256, 8, 8)),
        *_upconv(256, 256, stride=1), *_upconv(256, 256), *_upconv(256, 128), *_upconv(128, 64),
        nn.Conv2d(64, channels, 3, 1, 1), nn.Tanh(),
    )


def chairs_discriminator(channels: int = 1) -> nn.Module:
    """After Table 4: conv 64 - 128 - 256 - 256 - 256 - FC 1024 - FC 1; (N, C, 64, 64) -> (N,). Q reads trunk.17."""
    trunk = nn.Sequential(
        nn.Conv2d(channels, 64, 4, 2, 1), _lrelu(),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), _lrelu(),
        nn.Conv2d(128, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), _lrelu(),
        nn.Conv2d(256, 256, 3, 1, 1, bias=False), nn.BatchNorm2d(256), _lrelu(),
        nn.Conv2d(256, 256, 3, 1, 1, bias=False), nn.BatchNorm2d(256), _lrelu(),
        nn.Flatten(),
        nn.Linear(256 * 8 * 8, 1024, bias=False), nn.BatchNorm1d(1024), _lrelu(),
    )
    return Discriminator(trunk, 1024)


mnist = GANModel("mnist", 28, mnist_generator, mnist_discriminator, q_layer="trunk.8", channels=1)
svhn32 = GANModel("svhn32", 32, svhn_generator, svhn_discriminator, q_layer="trunk.8", channels=3)
chairs64 = GANModel("chairs64", 64, chairs_generator, chairs_discriminator, q_layer="trunk.17", channels=1)
