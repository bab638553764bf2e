"""The InfoGAN mutual-information term (Chen et al. 2016, arXiv 1606.03657, section 5).

    L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)} [log Q(c | x)] + H(c)  <=  I(c; G(z, c))      (eq. 4)
    min_{G, Q} max_D  V_GAN(D, G) - lambda * L_I(G, Q)                                   (eq. 6)

For each code this module computes the negative log-likelihood -log Q(c | x) on the generated
batch; H(c) is a constant, so minimising ``loss`` = sum_codes lambda_code * NLL_code maximises L_I.

- categorical code with k classes: -log Q(c | x) = cross_entropy(logits, c); H(c) = ln k.
  Q outputs logits; softmax is applied once, inside cross_entropy.
- continuous code: Q(c | x) = N(c; mu, sigma), so
  -log Q(c | x) = log sigma + log(2 pi) / 2 + (c - mu)^2 / (2 sigma^2);
  sigma = exp(log_std) when Q predicts it, else 1. H(c) = ln 2 for uniform(-1, 1).
- the lower bound reported per code is H(c) - mean NLL (nats); it reaches H(c) when Q is exact
  (categorical codes only: a continuous code's bound grows without limit as sigma shrinks).

Defaults: lambda_cat = 1 (paper, section 7) and lambda_cont = 0.1 (the paper uses "a smaller
lambda" for continuous codes so the differential entropy stays on the same scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from .codes import LatentBatch, LatentCodeSpec
from .qhead import QOutput

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor | None) -> torch.Tensor:
    """-log N(x; mean, exp(log_std)) elementwise; log_std=None means sigma = 1."""
    if log_std is None:
        return HALF_LOG_2PI + 0.5 * (x - mean) ** 2
    return log_std + HALF_LOG_2PI + 0.5 * ((x - mean) * torch.exp(-log_std)) ** 2


@dataclass
class MIResult:
    """``loss``: scalar to add to the D/Q and G losses (= -sum lambda * L_I + constant).

    ``nll``: each code's mean negative log-likelihood -log Q(c | x), detached. ``stats``, computed
    on first access only (a training step that does not log pays nothing for it): detached scalar
    tensors (no host sync), ``mi/<code>`` the lower bound H(c) - nll in nats, ``acc/<code>`` Q's
    accuracy for categorical codes, ``mse/<code>`` for continuous ones, and ``mi`` the sum over codes.
    In a training step they are measured on the batch Q is being trained on, so they run ahead of Q
    on new codes; :meth:`InfoGAN.held_out_stats <gan_infogan_plugin.wrap.InfoGAN.held_out_stats>`
    gives the same statistics on fresh codes.
    """

    loss: torch.Tensor
    nll: dict[str, torch.Tensor]
    q: QOutput
    codes: LatentBatch

    @cached_property
    def stats(self) -> dict[str, torch.Tensor]:
        spec = self.codes.spec
        stats: dict[str, torch.Tensor] = {}
        for code, logits, target in zip(spec.categorical, self.q.cat_logits, self.codes.cat):
            stats[f"mi/{code.name}"] = code.entropy - self.nll[code.name]
            stats[f"acc/{code.name}"] = (logits.detach().argmax(1) == target).float().mean()
        if spec.continuous:
            sq_err = ((self.codes.cont - self.q.cont_mean.detach().float()) ** 2).mean(0)
            for i, code in enumerate(spec.continuous):
                stats[f"mi/{code.name}"] = code.entropy - self.nll[code.name]
                stats[f"mse/{code.name}"] = sq_err[i]
        stats["mi"] = sum((stats[f"mi/{name}"] for name in spec.names), self.loss.new_zeros(()).detach())
        return stats


class MIRegularizer(nn.Module):
    """Turns Q's output on G(z, c) and the sampled c into the InfoGAN loss term."""

    def __init__(self, spec: LatentCodeSpec, lambda_cat: float = 1.0, lambda_cont: float = 0.1) -> None:
        super().__init__()
        self.spec = spec
        self.lambda_cat = lambda_cat
        self.lambda_cont = lambda_cont

    def forward(self, q: QOutput, codes: LatentBatch, cont_scale: float = 1.0) -> MIResult:
        """``cont_scale`` multiplies ``lambda_cont`` for this call (a warm-up's ramp, :class:`~.step.MITerm`)."""
        nll: dict[str, torch.Tensor] = {}
        loss = q.cont_mean.new_zeros((), dtype=torch.float32)
        for code, logits, target in zip(self.spec.categorical, q.cat_logits, codes.cat):
            ce = F.cross_entropy(logits.float(), target)  # -log Q(c | x); softmax once, inside
            loss = loss + self.lambda_cat * ce
            nll[code.name] = ce.detach()
        if self.spec.continuous:
            log_std = None if q.cont_log_std is None else q.cont_log_std.float()
            per_code = gaussian_nll(codes.cont, q.cont_mean.float(), log_std).mean(0)  # (num_continuous,)
            loss = loss + self.lambda_cont * cont_scale * per_code.sum()
            nll.update({code.name: per_code[i].detach() for i, code in enumerate(self.spec.continuous)})
        return MIResult(loss, nll, q, codes)
