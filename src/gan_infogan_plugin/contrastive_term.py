"""InfoGAN-CR's contrastive term in the training step: :class:`ContrastiveTerm`, a
:class:`~gan_infogan_plugin.step.Regularizer` around :class:`~gan_infogan_plugin.contrastive.ContrastiveRegularizer`.

From step ``schedule.start`` on, each step

1. in D's update, after D's optimizer step (:meth:`ContrastiveTerm.update`): draws N pairs of inputs
   that share the noise and one continuous code k (:func:`~gan_infogan_plugin.contrastive.pair_codes`,
   from the (seed, rank, step) stream ``CONTRASTIVE_STREAM``, so a resumed run draws the same pairs),
   runs G on the 2N inputs once, and trains the CR network H on the detached pairs (its own Adam);
2. in G's update (:meth:`ContrastiveTerm.generator_term`): adds ``weight * CE(H(pair), k)`` on the
   same images, through G's graph, to G's loss (H as just updated, as D's verdict is).

H restarts (fresh weights drawn from the recipe's seed and the step, fresh optimizer state) where
:meth:`~gan_infogan_plugin.contrastive.ContrastiveSchedule.restart_at` says: at ``start`` when it is
after step 0, as the paper's dSprites schedule does at step 288,000, and at each lowering of the gap.
H and its optimizer are checkpointed (``regularizers/contrastive``) and resumed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import torch

from .contrastive import ContrastiveRegularizer, ContrastiveResult, ContrastiveSchedule
from .data.base import CONTRASTIVE_STREAM, stream_generator
from .step import GAN, Fakes, Regularizer

if TYPE_CHECKING:
    from lightning_fabric import Fabric


@dataclass
class ContrastiveTermResult:
    """G's contrastive term: ``loss`` = weight * H's cross-entropy (scalar); ``result``: H's reading
    of the pairs, whose ``stats`` (``cr/loss``, the unweighted cross-entropy, and ``cr/acc``, H's
    accuracy) are computed when read."""

    loss: torch.Tensor
    result: ContrastiveResult

    @property
    def stats(self) -> Mapping[str, torch.Tensor]:
        return self.result.stats


class ContrastiveTerm(Regularizer):
    """InfoGAN-CR's term: H (``cr``) trained in D's update, ``weight * CE`` added to G's loss.

    ``lr``, ``betas``: H's Adam; ``seed``: the run's seed (the pair stream and H's restarts).
    """

    name = "contrastive"

    def __init__(self, cr: ContrastiveRegularizer, schedule: ContrastiveSchedule, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.5, 0.999), seed: int = 0) -> None:
        self.cr, self.schedule, self.seed = cr, schedule, seed
        self.start = schedule.start
        self.lr, self.betas = lr, tuple(betas)
        self.adam = torch.optim.Adam(cr.parameters(), lr=lr, betas=self.betas)
        self.network, self.optimizer = cr, self.adam  # as Fabric sets them up
        self.generator: torch.nn.Module | None = None
        self.rank = 0
        self._pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def setup(self, fabric: "Fabric", gan: GAN) -> None:
        self.generator, self.rank = gan.generator, fabric.global_rank
        self.network, self.optimizer = fabric.setup(self.cr, self.adam)

    def restart(self, step: int) -> None:
        """Fresh weights for H (the same on every rank: drawn from the run's seed and ``step``) and a
        fresh optimizer state."""
        self.cr.restart(stream_generator(self.seed, 0, step, CONTRASTIVE_STREAM).initial_seed())
        self.adam.state.clear()

    def update(self, fabric: "Fabric", fakes: Fakes) -> None:
        """Generate this step's pairs with G (kept, with G's graph, for :meth:`generator_term`) and take
        one optimizer step of H on them, detached."""
        step, n = fakes.step, fakes.images.shape[0]
        if self.schedule.restart_at(step):
            self.restart(step)
        device = fakes.images.device
        codes_a, codes_b, k = self.cr.pair_codes(
            n, self.schedule.gap_at(step), device, stream_generator(self.seed, self.rank, step, CONTRASTIVE_STREAM, device)
        )
        images = self.generator(torch.cat([codes_a.flat, codes_b.flat]))
        images_a, images_b = images[:n], images[n:]
        self._pairs = (images_a, images_b, k)
        self.optimizer.zero_grad(set_to_none=True)
        fabric.backward(self.network(images_a.detach(), images_b.detach(), k).loss)
        self.optimizer.step()

    def generator_term(self, fakes: Fakes) -> ContrastiveTermResult:
        """``weight * CE`` of H on this step's pairs, through G. (G's backward also leaves gradients
        on H; :meth:`update` clears them before H's next step.)"""
        assert self._pairs is not None, "update runs before generator_term in a step"
        images_a, images_b, k = self._pairs
        self._pairs = None
        result = self.network(images_a, images_b, k)
        return ContrastiveTermResult(self.schedule.weight_at(fakes.step) * result.loss, result)

    def state_dict(self) -> dict[str, Any]:
        return {"network": self.cr.state_dict(), "optimizer": self.adam.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            self.cr.load_state_dict(state["network"])
            self.adam.load_state_dict(state["optimizer"])
