"""InfoGAN-CR's contrastive regularizer (Lin, Thekumparampil, Fanti & Oh, ICML 2020).

A pair of generated images shares the noise z and exactly one continuous code c_k, k drawn
uniformly from the K continuous codes; every other code is drawn for each image on its own. A
separate network H (the CR network) sees the pair with the channels concatenated and classifies k:

    L_c = E_{k, (c, c') sharing c_k} [ -log softmax(H(G(z, c) (+) G(z, c')))_k ]

H minimises L_c, and so does G, with a weight alpha, beside its GAN and InfoGAN terms:
``min_G V_GAN - lambda L_I + alpha L_c``. G is pushed to make each code change the image in its own
recognisable way, which is what disentanglement means.

Progressive training (the paper's "gap"): the codes that are not shared are drawn at least ``gap``
apart (uniform codes on [-1, 1] only), which makes H's task easier; the gap is lowered step by step
(:class:`ContrastiveSchedule`) and H restarts at each change. The paper's dSprites recipe (authors'
code, github fjxmlzn/InfoGAN-CR, ``InfoGAN-CR_dSprites/config.py``) uses gap 0 throughout and
alpha = 0 until step 288,000, then 2.0, with H restarted there.

The default H (:func:`cr_network`) is the one of the authors' code: four 4x4 stride-2 convolutions
(32, 32, 64, 64) and FC 128, each followed by LeakyReLU(0.2) and spectrally normalised, then an FC
layer to K logits; weights N(0, 0.02), biases 0. Categorical codes of the spec (the paper has none)
are drawn independently for the two images, like the unshared continuous codes, or, with
``share_categorical``, shared by the pair like the noise: then the two images differ only in their
continuous codes, and H need not see through a change of class (on MNIST, a change of digit).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .codes import LatentBatch, LatentCodeSpec


def _init(module: nn.Module) -> nn.Module:
    """Weights N(0, 0.02) and biases 0, as the authors' code initialises its layers."""
    nn.init.normal_(module.weight, 0.0, 0.02)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def cr_trunk(
    in_channels: int,
    size: int = 64,
    widths: Sequence[int] = (32, 32, 64, 64),
    hidden: int = 128,
    negative_slope: float = 0.2,
) -> nn.Sequential:
    """The InfoGAN-CR convolutional trunk, shared by H and the ``dsprites64`` discriminator:
    (N, in_channels, size, size) -> (N, hidden).

    4x4 stride-2 convolutions (padding 1) of ``widths`` channels, flatten, FC ``hidden``; each layer
    spectrally normalised (``torch.nn.utils.parametrizations.spectral_norm``) and followed by
    LeakyReLU(negative_slope). No BatchNorm.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for width in widths:
        layers += [spectral_norm(_init(nn.Conv2d(channels, width, 4, 2, 1))), nn.LeakyReLU(negative_slope)]
        channels = width
    convs = nn.Sequential(*layers, nn.Flatten())
    with torch.no_grad():
        features = convs(torch.zeros(1, in_channels, size, size)).shape[1]
    return nn.Sequential(*convs, spectral_norm(_init(nn.Linear(features, hidden))), nn.LeakyReLU(negative_slope))


def cr_network(in_channels: int, num_codes: int, size: int = 64) -> nn.Module:
    """The default H: :func:`cr_trunk` then FC ``num_codes`` (not normalised, as in the authors' code).
    Image pairs (N, in_channels, size, size) -> logits (N, num_codes)."""
    return nn.Sequential(*cr_trunk(in_channels, size), _init(nn.Linear(128, num_codes)))


def _uniform(shape: tuple[int, ...], low: float, high: float, device, generator) -> torch.Tensor:
    return torch.rand(shape, device=device, generator=generator) * (high - low) + low


def pair_codes(
    spec: LatentCodeSpec,
    n: int,
    gap: float = 0.0,
    device=None,
    generator: torch.Generator | None = None,
    share_categorical: bool = False,
) -> tuple[LatentBatch, LatentBatch, torch.Tensor]:
    """n pairs of generator inputs: (codes_a, codes_b, k).

    Both share the noise and the continuous code ``k`` (n,) long (an index into ``spec.continuous``),
    equal in both; the other continuous codes are drawn for each on its own, and so are the
    categorical codes unless ``share_categorical`` (then both images have codes_a's). The draws from
    ``generator`` are the same either way.
    ``gap > 0``: each unshared continuous code is drawn so that |c_a - c_b| >= gap (both values
    uniform on [-1 + gap/2, 1 - gap/2], then moved gap/2 apart), as in the authors' code; needs
    uniform codes and gap <= 2.
    """
    count = len(spec.continuous)
    if count < 2:
        raise ValueError(f"the contrastive regularizer needs at least two continuous codes, the spec {spec} has {count}")
    if not 0.0 <= gap <= 2.0:
        raise ValueError(f"gap must be in [0, 2] (codes are uniform on [-1, 1]), got {gap}")
    if gap > 0 and any(code.prior != "uniform" for code in spec.continuous):
        raise ValueError("a gap needs uniform continuous codes: normal codes have no range to keep them apart in")
    a = spec.sample(n, device=device, generator=generator)
    drawn = spec.sample(n, device=device, generator=generator)
    k = torch.randint(count, (n,), device=a.noise.device, generator=generator)
    cont_a, cont_b = a.cont, drawn.cont
    if gap > 0:
        low, high = -1.0 + gap / 2, 1.0 - gap / 2
        u = _uniform((n, count), low, high, cont_a.device, generator)
        v = _uniform((n, count), low, high, cont_a.device, generator)
        apart = torch.where(u > v, gap / 2, -gap / 2)
        cont_a, cont_b = u + apart, v - apart
        cont_a[torch.arange(n), k] = a.cont[torch.arange(n), k]  # the shared code keeps its prior
    cont_b = cont_b.clone()
    cont_b[torch.arange(n), k] = cont_a[torch.arange(n), k]
    cat_b = a.cat if share_categorical else drawn.cat
    return LatentBatch(spec, a.noise, a.cat, cont_a), LatentBatch(spec, a.noise, cat_b, cont_b), k


@dataclass
class ContrastiveResult:
    """``loss``: H's mean cross-entropy on the pairs, scalar; H minimises it on detached images, G
    minimises ``weight * loss`` on the same pairs, not detached. ``logits``: (N, K); ``k``: (N,) long.
    ``stats`` (computed on first access, detached scalars): ``cr/loss`` and ``cr/acc``, H's accuracy."""

    loss: torch.Tensor
    logits: torch.Tensor
    k: torch.Tensor

    @cached_property
    def stats(self) -> dict[str, torch.Tensor]:
        return {
            "cr/loss": self.loss.detach(),
            "cr/acc": (self.logits.detach().argmax(1) == self.k).float().mean(),
        }


class ContrastiveRegularizer(nn.Module):
    """The CR network H and its loss, for images (N, channels, size, size).

    ``network``: a function ``(in_channels, num_codes) -> nn.Module`` mapping image pairs
    (N, 2 * channels, size, size) to logits (N, num_codes); default :func:`cr_network`.
    ``share_categorical``: the pairs of :meth:`pair_codes` share their categorical codes. Use:

        a, b, k = cr.pair_codes(n)                      # LatentBatch, LatentBatch, (n,) long
        x_a, x_b = G(a.flat), G(b.flat)
        cr(x_a.detach(), x_b.detach(), k).loss          # H's loss (its own optimizer)
        weight * cr(x_a, x_b, k).loss                   # added to G's loss
    """

    def __init__(
        self,
        spec: LatentCodeSpec,
        channels: int = 1,
        size: int = 64,
        network: Callable[[int, int], nn.Module] | None = None,
        share_categorical: bool = False,
    ) -> None:
        super().__init__()
        if len(spec.continuous) < 2:
            raise ValueError(f"the contrastive regularizer needs at least two continuous codes, the spec {spec} has {len(spec.continuous)}")
        self.spec, self.share_categorical = spec, share_categorical
        self._build = network or (lambda in_channels, num_codes: cr_network(in_channels, num_codes, size))
        self._in_channels = 2 * channels
        self.network = self._build(self._in_channels, len(spec.continuous))

    def pair_codes(
        self, n: int, gap: float = 0.0, device=None, generator: torch.Generator | None = None
    ) -> tuple[LatentBatch, LatentBatch, torch.Tensor]:
        """:func:`pair_codes` for this regularizer's spec (and its ``share_categorical``)."""
        return pair_codes(self.spec, n, gap, device, generator, self.share_categorical)

    def logits(self, images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
        """H on the pairs: two (N, C, S, S) batches -> (N, K) logits."""
        return self.network(torch.cat([images_a, images_b], dim=1))

    def forward(self, images_a: torch.Tensor, images_b: torch.Tensor, k: torch.Tensor) -> ContrastiveResult:
        logits = self.logits(images_a, images_b)
        return ContrastiveResult(F.cross_entropy(logits.float(), k), logits, k)

    def loss(self, images_a: torch.Tensor, images_b: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """H's mean cross-entropy on the pairs (scalar)."""
        return self(images_a, images_b, k).loss

    def restart(self, seed: int | None = None) -> None:
        """Give H fresh initial weights in place (the same parameter tensors; reset its optimizer's
        state too). ``seed``: draw them from that seed (a resumed run restarts H as the first did)."""
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            fresh = self._build(self._in_channels, len(self.spec.continuous))
        self.network.load_state_dict(fresh.state_dict())


@dataclass(frozen=True)
class ContrastiveSchedule:
    """When the CR term is on, and the gap of progressive training, by training step.

    G's weight on H's loss is ``weight`` from step ``start`` on, 0 before. The gap is ``gap_start``,
    lowered by ``gap_decrease`` every ``gap_every`` steps, ``gap_times`` times, never below 0. H
    restarts (fresh weights and optimizer state) when the weight turns on after step 0 and at each
    lowering of the gap, as in the authors' code (which trains H from step 0; a loop may as well skip
    H while the weight is 0). Their dSprites setting: ``ContrastiveSchedule(weight=2.0, start=288_000)``.
    """

    weight: float = 2.0
    start: int = 0
    gap_start: float = 0.0
    gap_decrease: float = 0.0
    gap_every: int = 1
    gap_times: int = 0

    def __post_init__(self) -> None:
        if self.weight < 0 or self.start < 0 or self.gap_decrease < 0 or self.gap_times < 0 or self.gap_every < 1:
            raise ValueError(f"bad contrastive schedule {self}: weight, start, gap_decrease and gap_times must be >= 0, gap_every >= 1")
        if not 0.0 <= self.gap_start <= 2.0:
            raise ValueError(f"gap_start must be in [0, 2], got {self.gap_start}")

    def weight_at(self, step: int) -> float:
        """G's weight on H's loss at ``step``."""
        return self.weight if step >= self.start else 0.0

    def gap_at(self, step: int) -> float:
        """The gap between unshared codes at ``step``."""
        return max(0.0, self.gap_start - self.gap_decrease * min(self.gap_times, step // self.gap_every))

    def restart_at(self, step: int) -> bool:
        """Whether H restarts before ``step``."""
        lowered = step % self.gap_every == 0 and 0 < step // self.gap_every <= self.gap_times
        return step > 0 and (step == self.start or lowered)
