"""Small networks shaped like the DCGAN examples' (PyTorch examples' dcgan/main.py, Lightning's Fabric
DCGAN): layers in ``self.main = nn.Sequential(...)``, LeakyReLU(0.2, inplace=True), a Sigmoid verdict.

16x16 images instead of 64x64 so tests stay fast. Q reads ``main.4``: the last LeakyReLU, (N, 2 ndf, 4, 4).
"""

from torch import nn

Q_LAYER = "main.4"


class Generator(nn.Module):
    """(N, nz, 1, 1) -> (N, nc, 16, 16) in [-1, 1]."""

    def __init__(self, nz: int, ngf: int = 4, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    """(N, nc, 16, 16) -> probabilities (N,)."""

    def __init__(self, ndf: int = 4, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1)
