"""What a registered model is: a generator builder, a discriminator builder and Q's layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv and linear weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Flat(nn.Module):
    """Accepts generator inputs as (N, input_dim) or (N, input_dim, 1, 1) and returns (N, input_dim)."""

    def forward(self, x):
        return x.flatten(1)


@dataclass(frozen=True)
class GANModel:
    """A registered pair of networks.

    ``generator(input_dim, channels, **kw)`` maps (N, input_dim) to images (N, channels, S, S) in
    [-1, 1]; ``discriminator(channels, **kw)`` maps images to logits (N,). ``q_layer`` names the
    discriminator submodule whose output Q reads (the last shared layer).
    """

    name: str
    image_size: int
    generator: Callable[..., nn.Module]
    discriminator: Callable[..., nn.Module]
    q_layer: str
    channels: int = 1

    def build(self, input_dim: int, channels: int | None = None, **kwargs) -> tuple[nn.Module, nn.Module]:
        """Both networks, initialised N(0, 0.02)."""
        c = channels or self.channels
        g, d = self.generator(input_dim, c, **kwargs), self.discriminator(c, **kwargs)
        init_weights(g)
        init_weights(d)
        return g, d
