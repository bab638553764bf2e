"""The invariance term in the training step: :class:`InvarianceTerm`, a
:class:`~gan_infogan_plugin.step.Regularizer` around :func:`~gan_infogan_plugin.invariance.paired_cluster_mi`.

In D's update, on the real images (as D saw them, shifted), each step

1. rotates, zooms and shears every image at random (:func:`~gan_infogan_plugin.augment.random_affine`, from the
   (seed, rank, step) stream ``INVARIANCE_STREAM``, so a resumed run draws the same views),
2. runs D's trunk and Q on the copies, and
3. adds ``-weight * sum over categorical codes of I(z; z')`` (IIC) between Q's class probabilities on
   the images and on their copies to D's and Q's loss.

Q learns to cluster the real images into k equally used groups that a rotation or zoom does not change;
InfoGAN's term, unchanged, ties each value of G's code to one of them. The term holds no state of its
own and trains no network of its own (Q is part of D's module and optimizer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import torch

from .augment import random_affine
from .data.base import INVARIANCE_STREAM, stream_generator
from .invariance import paired_cluster_mi
from .step import GAN, Reals, Regularizer

if TYPE_CHECKING:
    from lightning_fabric import Fabric


@dataclass
class InvarianceResult:
    """The term on one real batch: ``loss`` = -weight * the sum of ``mi`` (scalar); ``mi``: IIC's
    I(z; z') per categorical code (detached, nats; at most log k)."""

    loss: torch.Tensor
    mi: dict[str, torch.Tensor]

    @property
    def stats(self) -> Mapping[str, torch.Tensor]:
        return {f"iic/{name}": value for name, value in self.mi.items()}


class InvarianceTerm(Regularizer):
    """IIC on Q's categorical heads over pairs of views of the real images.

    ``names``: the categorical codes' names, in Q's order (``LatentCodeSpec.categorical``); ``weight``:
    the term's weight against the GAN loss; ``max_degrees``, ``max_zoom``, ``max_shear``: the second
    view's rotation, zoom and shear (:func:`~gan_infogan_plugin.augment.random_affine`); ``seed``: the
    run's seed.
    """

    name = "invariance"
    reads_real = True

    def __init__(self, names: list[str], weight: float = 1.0, max_degrees: float = 15.0, max_zoom: float = 0.1,
                 seed: int = 0, max_shear: float = 0.0) -> None:
        if not names:
            raise ValueError("the invariance term needs a categorical code")
        self.names, self.weight, self.seed = names, weight, seed
        self.max_degrees, self.max_zoom, self.max_shear = max_degrees, max_zoom, max_shear
        self.gan: GAN | None = None
        self.rank = 0

    def setup(self, fabric: "Fabric", gan: GAN) -> None:
        if not gan.has_q:
            raise ValueError("the invariance term needs Q on D (InfoGAN's regularizer enabled)")
        self.gan, self.rank = gan, fabric.global_rank

    def real_term(self, reals: Reals) -> InvarianceResult:
        assert self.gan is not None, "setup runs before the first step"
        images = reals.images
        moves = stream_generator(self.seed, self.rank, reals.step, INVARIANCE_STREAM, images.device)
        _, q_other = self.gan.discriminator(random_affine(images, self.max_degrees, self.max_zoom, moves, self.max_shear), with_q=True)
        mi = [paired_cluster_mi(a.float().softmax(1), b.float().softmax(1)) for a, b in zip(reals.q.cat_logits, q_other.cat_logits)]
        return InvarianceResult(-self.weight * sum(mi), {name: m.detach() for name, m in zip(self.names, mi)})
