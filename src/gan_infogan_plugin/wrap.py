"""InfoGAN for a GAN you already have: a few changed lines in your own training loop.

    info = InfoGAN.wrap(netG, netD, spec, layer="main.10")
    optD = Adam(info.discriminator_parameters(), lr=2e-4, betas=(0.5, 0.999))  # D and Q
    codes = info.sample(batch_size, device=device)
    fake = netG(info.inputs(codes))
    ...  errD = errD_real + errD_fake + info.mi(codes).loss   # after netD(fake.detach())
    ...  errG = bce(netD(fake), ones) + info.mi(codes).loss   # after netD(fake)

Q reads the features the hook captured during the discriminator pass just made, so the
discriminator runs once per batch for both its verdict and Q.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from .codes import LatentBatch, LatentCodeSpec
from .modes import evaluating
from .qhead import QHead, QOutput
from .regularizer import MIRegularizer, MIResult


class DiscriminatorWithQ(nn.Module):
    """D and Q as one module (for optimizers, checkpoints and DDP): x -> (D's output, Q's output)."""

    def __init__(self, discriminator: nn.Module, q_head: QHead) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.q_head = q_head

    def forward(self, x: torch.Tensor, with_q: bool = True) -> tuple[torch.Tensor, QOutput | None]:
        """``with_q=False`` skips Q (D's pass over real images, where the MI term has no code to read)."""
        verdict = self.discriminator(x)
        return verdict, self.q_head() if with_q else None


@dataclass
class InfoGAN:
    """What a user's own loop needs: the spec, Q attached to D, and the MI loss."""

    generator: nn.Module
    discriminator: nn.Module
    spec: LatentCodeSpec
    q_head: QHead
    regularizer: MIRegularizer
    image_input: bool = True

    @classmethod
    def wrap(
        cls,
        generator: nn.Module,
        discriminator: nn.Module,
        spec: LatentCodeSpec | str,
        layer: str,
        lambda_cat: float = 1.0,
        lambda_cont: float = 0.1,
        image_input: bool = True,
        **q_kwargs,
    ) -> "InfoGAN":
        """Attach Q to ``discriminator.<layer>`` and build the MI loss.

        ``image_input``: the generator takes (N, input_dim, 1, 1) (DCGAN style) rather than
        (N, input_dim). Q's parameters are created here by one eval-mode pass of G and D on two
        samples, so they can go into an optimizer at once. ``q_kwargs`` go to :class:`QHead`
        (``hidden``, ``fixed_std``, ``detach_trunk``).
        """
        spec = LatentCodeSpec.parse(spec) if isinstance(spec, str) else spec
        q_head = QHead.attach(discriminator, layer, spec, **q_kwargs)
        info = cls(generator, discriminator, spec, q_head, MIRegularizer(spec, lambda_cat, lambda_cont), image_input)
        device = next(itertools.chain(discriminator.parameters(), discriminator.buffers())).device
        q_head.to(device)
        with evaluating(generator):
            example = generator(info.inputs(spec.sample(2, device=device)))
        q_head.materialize(discriminator, example)
        return info

    def sample(self, n: int, device=None, generator: torch.Generator | None = None, **kwargs) -> LatentBatch:
        """Noise and codes for n images (see :meth:`LatentCodeSpec.sample`)."""
        return self.spec.sample(n, device=device, generator=generator, **kwargs)

    def inputs(self, codes: LatentBatch) -> torch.Tensor:
        """The generator input: (N, input_dim, 1, 1) or (N, input_dim)."""
        return codes.image if self.image_input else codes.flat

    def mi(self, codes: LatentBatch) -> MIResult:
        """The MI loss and statistics for the images D scored last (which must be G(codes))."""
        q = self.q_head()
        if q.cont_mean.shape[0] != len(codes):
            raise ValueError(
                f"the last discriminator pass saw {q.cont_mean.shape[0]} images but the codes are for {len(codes)}: "
                "call mi(codes) right after D scores G(codes)"
            )
        return self.regularizer(q, codes)

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """D's and Q's parameters, for the discriminator's optimizer."""
        return itertools.chain(self.discriminator.parameters(), self.q_head.parameters())

    def discriminator_with_q(self) -> DiscriminatorWithQ:
        """D and Q in one module whose forward returns both outputs."""
        return DiscriminatorWithQ(self.discriminator, self.q_head)

    def remove(self) -> None:
        """Detach Q's hook: the discriminator is left exactly as it was."""
        self.q_head.remove()
