"""One training step: a D+Q update, then one or more G updates, and the regularizers every update sums.

:func:`train_step` is a plain function of the networks and optimizers (:class:`GAN`), one
:class:`Batch` and a list of :class:`Regularizer`; it returns a :class:`StepResult`. The plain GAN is
the same step with no regularizers; InfoGAN's MI term is :class:`MITerm`.

A regularizer sees D's pass over the generated images (:class:`Fakes`: the images, their codes and
Q's reading of them) once in each update and may

- add a loss to D's update on the real images (:meth:`Regularizer.real_term`, with Q's reading of them,
  :class:`Reals`, when it sets ``reads_real``),
- add a loss to D's update (:meth:`Regularizer.discriminator_term`; Q is trained with D),
- train networks of its own after D's optimizer step (:meth:`Regularizer.update`),
- add a loss to G's update (:meth:`Regularizer.generator_term`; its ``stats`` are logged),
- keep state for checkpoints (``state_dict`` / ``load_state_dict``), and start at a later step (``start``).

D runs once per image batch for its verdict and Q. Nothing here waits for the device (no host sync)
except with ``skip_nonfinite``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .augment import random_shift
from .codes import LatentBatch
from .qhead import QOutput
from .regularizer import MIRegularizer

if TYPE_CHECKING:
    from lightning_fabric import Fabric


@dataclass
class GAN:
    """The networks a step trains, as Fabric set them up, and their optimizers.

    ``discriminator``: D alone, or D and Q as one module (``has_q``) whose forward returns
    (D's logits (N,), Q's :class:`QOutput`) and takes ``with_q=False`` to skip Q.
    """

    generator: nn.Module
    discriminator: nn.Module
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    has_q: bool


@dataclass
class Batch:
    """One step's inputs, drawn from the (seed, rank, step) streams.

    real: (N, C, H, W) in [-1, 1]; codes: the noise and codes for N generated images; every image D
    sees is moved by up to ``shift`` pixels, the offsets drawn from ``moves`` (None: no shift).
    g_codes: codes for G's updates that draw images of their own, one G(z, c) per entry. With
    ``reuse_fakes`` (DCGAN's loop) G's first update trains on the fakes D has just scored and
    ``g_codes`` serve the further ones (``trainer.g_steps`` > 1); without it every G update draws
    its own (``trainer.fresh_codes``), and D's fakes are made without G's graph.
    """

    step: int
    real: torch.Tensor
    codes: LatentBatch
    shift: int = 0
    moves: torch.Generator | None = None
    g_codes: tuple[LatentBatch, ...] = ()
    reuse_fakes: bool = True

    def __post_init__(self) -> None:
        if not (self.reuse_fakes or self.g_codes):
            raise ValueError("Batch: without reuse_fakes, G's updates need codes of their own (g_codes)")


@dataclass
class Fakes:
    """D's pass over the generated images, as a regularizer sees it.

    images: (N, C, H, W) G(z, c), detached in D's update, carrying G's graph in G's update;
    codes: what they were generated from; q: Q's reading of them (None when D carries no Q).
    """

    step: int
    images: torch.Tensor
    codes: LatentBatch
    q: QOutput | None


@dataclass
class Reals:
    """D's pass over the real images, as a regularizer that ``reads_real`` sees it.

    images: (N, C, H, W) the real batch as D saw it (shifted); q: Q's reading of them.
    """

    step: int
    images: torch.Tensor
    q: QOutput


class Term(Protocol):
    """A regularizer's contribution to one update (:class:`~gan_infogan_plugin.regularizer.MIResult` is one)."""

    loss: torch.Tensor  # scalar, added to the update's loss

    @property
    def stats(self) -> Mapping[str, torch.Tensor]:
        """Detached scalars to log (computed when read, at log steps only)."""


class Regularizer:
    """A term of the objective besides the GAN loss. Every method is optional: the defaults add
    nothing, train nothing and hold no state."""

    name: str = "regularizer"  # its key in checkpoints
    start: int = 0  # the first step (counted from 0) it is active in
    reads_real: bool = False  # True: D's pass over the real images runs Q too, for real_term

    def setup(self, fabric: "Fabric", gan: GAN) -> None:
        """Once before training (and before a resume loads its state): set up networks and optimizers
        of its own with ``fabric.setup``; ``gan`` holds G and D as the step runs them."""

    def real_term(self, reals: Reals) -> Term | None:
        """In D's update, after D's pass over the real images (with ``reads_real``): a loss added to D's
        and Q's real-image loss."""
        return None

    def discriminator_term(self, fakes: Fakes) -> Term | None:
        """In D's update, after D's pass over the detached fakes: a loss added to D's and Q's."""
        return None

    def update(self, fabric: "Fabric", fakes: Fakes) -> None:
        """In D's update, after D's optimizer step: train its own networks (its own backward and step)."""

    def generator_term(self, fakes: Fakes) -> Term | None:
        """In G's update, after D's pass over the fakes: a loss added to G's; its stats are logged."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (``{}`` from a checkpoint written before this regularizer existed)."""


def linear_ramp(step: int, steps: int, start: float = 0.0) -> float:
    """A factor that grows linearly from ``start`` at step 0 to 1 at step ``steps``, then stays 1
    (1 throughout when ``steps`` is 0)."""
    return 1.0 if step >= steps else start + (1.0 - start) * step / steps


class MITerm(Regularizer):
    """InfoGAN's MI term (:class:`~gan_infogan_plugin.regularizer.MIRegularizer`) on Q's reading of
    the fakes in both updates: Q (with D's trunk, unless detached) learns from it in D's update, G in
    G's. It holds no state of its own: Q is part of D's module and optimizer.

    ``cont_warmup``: the continuous codes' weight grows linearly from 0 at step 0 to ``lambda_cont`` at
    step ``cont_warmup`` (0: full weight from the start), so that the categorical code claims the
    large differences between images before a continuous code can morph one class into another.
    """

    name = "mi"

    def __init__(self, mi: MIRegularizer, cont_warmup: int = 0) -> None:
        self.mi = mi
        self.cont_warmup = cont_warmup

    def cont_scale(self, step: int) -> float:
        """The factor on ``lambda_cont`` at ``step``: step / cont_warmup, then 1."""
        return linear_ramp(step, self.cont_warmup)

    def discriminator_term(self, fakes: Fakes) -> Term:
        return self.mi(fakes.q, fakes.codes, self.cont_scale(fakes.step))

    def generator_term(self, fakes: Fakes) -> Term:
        return self.mi(fakes.q, fakes.codes, self.cont_scale(fakes.step))


@dataclass
class StepResult:
    """What one step did. Losses are detached scalar tensors, still on the device.

    loss_d: D's GAN loss (real + fake); loss_g: G's GAN loss; total_d / total_g: with the
    regularizers' terms added (what the non-finite check reads); g_terms: the regularizers' terms of
    G's update (of its last one, with more than one); skipped: updates skipped for a non-finite loss
    (``skip_nonfinite`` only); real_terms: the terms on the real images in D's update.
    """

    loss_d: torch.Tensor
    loss_g: torch.Tensor
    total_d: torch.Tensor
    total_g: torch.Tensor
    g_terms: list[Term]
    skipped: int
    real_terms: list[Term] = field(default_factory=list)

    def stats(self) -> dict[str, torch.Tensor]:
        """The numbers to log: ``loss/d``, ``loss/g`` and each G term's and real term's stats (``mi``,
        ``mi/<code>``, ``iic``, ...)."""
        named = {"loss/d": self.loss_d, "loss/g": self.loss_g}
        for term in [*self.g_terms, *self.real_terms]:
            named.update(term.stats)
        return named


def train_step(
    fabric: "Fabric", gan: GAN, batch: Batch, regularizers: Sequence[Regularizer] = (), skip_nonfinite: bool = False
) -> StepResult:
    """One D+Q update and ``batch.reuse_fakes + len(batch.g_codes)`` G updates on ``batch``; ``regularizers``
    active at ``batch.step`` add their terms to each."""
    active = [r for r in regularizers if batch.step >= r.start]
    with torch.set_grad_enabled(batch.reuse_fakes):  # G's graph only where G's update will use these fakes
        fake = gan.generator(batch.codes.flat)

    def seen(images: torch.Tensor) -> torch.Tensor:  # what D sees; the order of calls draws the shifts
        return random_shift(images, batch.shift, batch.moves)

    # D and Q: the real images, then the detached fakes; Q reads the features D computed on the fakes.
    gan.optimizer_d.zero_grad(set_to_none=True)
    with fabric.no_backward_sync(gan.discriminator, enabled=fabric.world_size > 1):  # gradients sync once, after the fake pass
        readers = [r for r in active if r.reads_real]
        real = seen(batch.real)
        verdict, q_real = _judge(gan, real, with_q=bool(readers))
        loss_real = _bce(verdict, 1.0)
        real_terms = [term for r in readers if (term := r.real_term(Reals(batch.step, real, q_real))) is not None]
        fabric.backward(sum((term.loss for term in real_terms), loss_real))
    detached = fake.detach()
    verdict, q = _judge(gan, seen(detached))
    fakes = Fakes(batch.step, detached, batch.codes, q)
    loss_fake = _bce(verdict, 0.0)
    d_terms = [term for r in active if (term := r.discriminator_term(fakes)) is not None]
    fabric.backward(sum((term.loss for term in d_terms), loss_fake))
    loss_d = (loss_real + loss_fake).detach()
    total_d = sum((term.loss.detach() for term in [*real_terms, *d_terms]), loss_d)
    skipped = _step_if_finite(fabric, gan.optimizer_d, total_d, skip_nonfinite)
    for r in active:
        r.update(fabric, fakes)

    # G: one D pass over the fakes gives both the GAN loss and Q's reading for the regularizers.
    with _fixed(fabric, gan.discriminator):
        for codes in ((batch.codes,) if batch.reuse_fakes else ()) + batch.g_codes:
            images = fake if codes is batch.codes else gan.generator(codes.flat)
            gan.optimizer_g.zero_grad(set_to_none=True)
            verdict, q = _judge(gan, seen(images))
            fakes = Fakes(batch.step, images, codes, q)
            loss_g = _bce(verdict, 1.0)
            g_terms = [term for r in active if (term := r.generator_term(fakes)) is not None]
            fabric.backward(sum((term.loss for term in g_terms), loss_g))
            total_g = sum((term.loss.detach() for term in g_terms), loss_g.detach())
            skipped += _step_if_finite(fabric, gan.optimizer_g, total_g, skip_nonfinite)
    return StepResult(loss_d, loss_g.detach(), total_d, total_g, g_terms, skipped, real_terms)


@contextmanager
def _fixed(fabric: "Fabric", discriminator: nn.Module) -> Iterator[None]:
    """D (with Q) as a fixed function during G's update: the gradient reaches G through D's layers, but
    D's weights get none (its optimizer would discard them at its next update) and, across processes,
    none is synchronised. This saves the weight-gradient half of D's backward pass in G's update."""
    weights = [p for p in discriminator.parameters() if p.requires_grad]
    for p in weights:
        p.requires_grad_(False)
    try:
        with fabric.no_backward_sync(discriminator, enabled=fabric.world_size > 1):
            yield
    finally:
        for p in weights:
            p.requires_grad_(True)


def _judge(gan: GAN, images: torch.Tensor, with_q: bool = True) -> tuple[torch.Tensor, QOutput | None]:
    """D's logits (N,) on ``images`` and Q's output (None without Q, or with ``with_q=False``)."""
    if not gan.has_q:
        return gan.discriminator(images), None
    return gan.discriminator(images, with_q=with_q)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """The GAN loss: binary cross-entropy of D's logits (N,) against an all-``target`` label, in float32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _step_if_finite(fabric: "Fabric", optimizer: torch.optim.Optimizer, total: torch.Tensor, skip_nonfinite: bool) -> int:
    """``optimizer.step()``; with ``skip_nonfinite``, only if ``total`` is finite on every rank (one
    host sync). Returns the number of updates skipped (0 or 1)."""
    if skip_nonfinite:
        ok = torch.isfinite(total).float()
        if fabric.world_size > 1:
            ok = fabric.all_reduce(ok, reduce_op="sum") / fabric.world_size
        if not bool(ok == 1):
            return 1
    optimizer.step()
    return 0
