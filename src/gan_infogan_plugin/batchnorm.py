"""BatchNorm's running statistics for evaluation, recomputed from generated batches ("precise BN").

In training mode a BatchNorm layer normalises each batch by that batch's mean and variance; in eval
mode by its running statistics, a moving average (momentum 0.1) of the batch statistics of the last
few passes. A GAN's discriminator changes fast, and the average trails it: in an infogan-shapes run at
step 1,500 one training step moved the mean of D's BatchNorm inputs by 0.11 standard deviations per
channel, and the running means sat 0.15 (conv layer) and 0.23 (FC layer) sd from the batch statistics,
up to 1.2 sd. Q reads D's features through a linear layer into its own BatchNorm, which adds those
shifts up (0.48 sd on average at Q's BatchNorm): with D in eval mode Q's MI bound for the continuous
codes read -0.14 to 0.34 nats at step 2,000 where training mode read 0.86 to 1.14. It is not that the
average mixes D's real and fake batches: those statistics differ by 0.02-0.07 sd, and feeding the
average fake batches only left the gap as it was.

:func:`recalibrate` resets the running statistics of G's, D's and Q's BatchNorm layers and sets them to
the plain average over training-mode passes of generated batches with the weights as they are (Wu &
Johnson 2021, "Rethinking 'Batch' in BatchNorm", arXiv 2105.07576: precise BN). Unlike normalising
evaluation batches by their own statistics, Q's reading of an image then does not depend on the
other images of its batch. :func:`recalibrated` does it for the duration of a block and puts the old
statistics back, so a network still in training is left exactly as it was.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .codes import LatentCodeSpec


def batchnorm_layers(*modules: nn.Module | None) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``modules`` (None skipped) that keep running statistics."""
    return [
        m
        for module in modules
        if module is not None
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@torch.no_grad()
def recalibrate(
    generator: nn.Module,
    discriminator_with_q: nn.Module | None,
    spec: LatentCodeSpec,
    batches: int = 16,
    batch_size: int = 256,
    image_input: bool = False,
    seed: int = 0,
) -> None:
    """Set the running statistics of every BatchNorm layer in G and in D and Q to their averages over
    ``batches`` training-mode passes of ``batch_size`` generated images.

    ``discriminator_with_q`` maps images to (D's logits, Q's output), as
    :class:`~gan_infogan_plugin.wrap.DiscriminatorWithQ` does (its Q runs on every pass); None
    recalibrates G alone. ``image_input``: G takes (N, input_dim, 1, 1). The codes come from their own
    ``torch.Generator`` seeded with ``seed``, so the global random state is untouched. Weights and
    modes are as they were after the call; only the running statistics (and each layer's
    ``num_batches_tracked``) change.
    """
    layers = batchnorm_layers(generator, discriminator_with_q)
    if not layers:
        return
    networks = [n for n in (generator, discriminator_with_q) if n is not None]
    modes = [(m, m.training) for n in networks for m in n.modules()]
    momenta = [m.momentum for m in layers]
    parameter = next(iter(generator.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    rng = torch.Generator().manual_seed(seed)
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: every batch counts the same
        for n in networks:
            n.train()
        for _ in range(batches):
            codes = spec.sample(batch_size, generator=rng).to(device)
            images = generator(codes.image if image_input else codes.flat)
            if discriminator_with_q is not None:
                discriminator_with_q(images)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        for m, training in modes:
            m.training = training


@contextmanager
def recalibrated(
    generator: nn.Module, discriminator_with_q: nn.Module | None, spec: LatentCodeSpec, **kwargs
) -> Iterator[None]:
    """:func:`recalibrate` (``kwargs`` go to it) for the duration of the block; the old running
    statistics are put back after it."""
    layers = batchnorm_layers(generator, discriminator_with_q)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    try:
        recalibrate(generator, discriminator_with_q, spec, **kwargs)
        yield
    finally:
        for m, (mean, var, count) in zip(layers, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
