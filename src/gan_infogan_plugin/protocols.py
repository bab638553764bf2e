"""The InfoGAN-CR paper's disentanglement protocol and ModelCentrality (Lin et al., ICML 2020), beside
disentanglement_lib's (:func:`~gan_infogan_plugin.metrics.factorvae_score`, :func:`~gan_infogan_plugin.metrics.mig`).

As the authors' code does it (``InfoGAN-CR_dSprites/gan/load_data.py``, ``gan/metric.py`` and the
``mc`` scripts of github fjxmlzn/InfoGAN-CR):

- FactorVAE (:func:`paper_scores`): 500 groups of 100 images; group g holds factor g mod F at one
  value and draws the others. Each code is divided by its standard deviation over 73,728 images drawn
  from the data; a group votes for the code that varies least in it. Each code is mapped to the
  factor it got most votes for, and the score is the share of the groups whose vote agrees with that
  map, counted on the same votes (disentanglement_lib scores fresh votes instead). The authors' code
  also reports a "revised" score that counts the F codes with the most agreeing votes only.
- MIG (:func:`paper_scores` too): :func:`~gan_infogan_plugin.metrics.mig` with 20-bin histograms on 73,728
  images, which is their computation (the same bins as ``np.digitize`` on the histogram edges).
- ModelCentrality (:func:`model_centrality`), label-free model selection: N runs; run j's generator
  makes FactorVAE groups of its own (one of its codes held); every run i's Q is scored on them
  (S[i, j]); the agreement of two runs is (S[i, j] + S[j, i]) / 2 and the pick is the run with the
  highest mean agreement with the others (the medoid).

Codes are (n, K) floats in spec order, a categorical code as its class index (as
:func:`~gan_infogan_plugin.evaluate.q_codes` gives them). Everything here takes callables: images
come from ``observe(factors)``, codes from ``read(images)``; the scores they share with
disentanglement_lib's protocol come from :mod:`.metrics`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .codes import CategoricalCode, LatentBatch, LatentCodeSpec
from .metrics import MIGScore, mig

Observe = Callable[[torch.Tensor], torch.Tensor]  # factors (n, F) -> images (n, ...)
Read = Callable[[torch.Tensor], torch.Tensor]  # images (n, ...) -> codes (n, K)
SampleFactors = Callable[[int, torch.Generator | None], torch.Tensor]  # n, generator -> factors (n, F)
TIE = 1e-9  # centralities closer than this are equal (they are means of vote fractions)


@dataclass(frozen=True)
class PaperProtocol:
    """The sample sizes of the InfoGAN-CR paper (73,728 is a tenth of dSprites)."""

    groups: int = 500
    group_size: int = 100
    scale_points: int = 73_728  # images for each code's global standard deviation
    mig_points: int = 73_728
    bins: int = 20


@dataclass
class VoteScore:
    """``score``: majority-vote accuracy on the votes themselves; ``revised``: the same counting only
    the F codes with the most agreeing votes; ``votes``: (F, K) counts of (held factor, chosen code)."""

    score: float
    revised: float
    votes: list[list[int]]


def vote_score(votes: np.ndarray) -> VoteScore:
    """Majority vote on a (F, K) table of counts: each code is mapped to its most frequent factor."""
    votes = np.asarray(votes)
    total = votes.sum()
    if total == 0:
        return VoteScore(0.0, 0.0, votes.tolist())
    agreeing = votes.max(0)  # per code, the votes its factor got
    top = np.sort(agreeing)[::-1][: votes.shape[0]]
    return VoteScore(float(agreeing.sum() / total), float(top.sum() / total), votes.tolist())


def _read_all(observe: Observe, readers: Sequence[Read], factors: torch.Tensor, per_call: int) -> list[torch.Tensor]:
    """Each reader's codes (n, K) for the images of ``factors`` (n, F), ``per_call`` images at a time."""
    parts: list[list[torch.Tensor]] = [[] for _ in readers]
    for start in range(0, len(factors), per_call):
        images = observe(factors[start : start + per_call])
        for part, read in zip(parts, readers):
            part.append(read(images).detach().double().cpu())
    return [torch.cat(part) for part in parts]


def factorvae_votes(
    observe: Observe,
    readers: Sequence[Read],
    sample_factors: SampleFactors,
    protocol: PaperProtocol = PaperProtocol(),
    generator: torch.Generator | None = None,
    images_per_call: int = 8192,
) -> list[np.ndarray]:
    """The paper's FactorVAE votes, one (F, K) table per reader, every reader on the same images.

    ``sample_factors(n, generator)`` draws factors (n, F); group g holds factor g mod F at the value of
    its first row. ``observe`` sees at most ``images_per_call`` images at a time (whole groups). A
    code that does not vary over the global sample is never voted for.
    """
    scale_factors = sample_factors(protocol.scale_points, generator)
    scales = [codes.std(0, correction=0).numpy() for codes in _read_all(observe, readers, scale_factors, images_per_call)]
    num_factors = scale_factors.shape[1]
    tables = [np.zeros((num_factors, len(scale)), dtype=np.int64) for scale in scales]
    per_call = max(1, images_per_call // protocol.group_size)
    for first in range(0, protocol.groups, per_call):
        m = min(per_call, protocol.groups - first)
        factors = sample_factors(m * protocol.group_size, generator).reshape(m, protocol.group_size, num_factors)
        held = torch.arange(first, first + m) % num_factors
        rows = torch.arange(m)
        factors[rows, :, held] = factors[rows, 0, held][:, None]
        codes = _read_all(observe, readers, factors.reshape(-1, num_factors), m * protocol.group_size)
        for table, scale, read in zip(tables, scales, codes):
            active = np.flatnonzero(np.isfinite(scale) & (scale > 0))
            if active.size == 0:
                continue
            spread = read.numpy().reshape(m, protocol.group_size, -1).std(1)[:, active] / scale[active]
            np.add.at(table, (held.numpy(), active[np.argmin(spread, axis=1)]), 1)
    return tables


@dataclass
class PaperScores:
    """One representation's scores under the paper's protocol: FactorVAE and MIG."""

    factorvae: VoteScore
    mig: MIGScore


def paper_scores(
    observe: Observe,
    read: Read,
    sample_factors: SampleFactors,
    protocol: PaperProtocol = PaperProtocol(),
    generator: torch.Generator | None = None,
    images_per_call: int = 8192,
) -> PaperScores:
    """The InfoGAN-CR paper's FactorVAE (:func:`factorvae_votes`, :func:`vote_score`) and MIG
    (:func:`~gan_infogan_plugin.metrics.mig` with ``protocol.bins`` bins on ``protocol.mig_points``
    images) of the codes ``read`` finds in the images ``observe`` makes of ``sample_factors``' draws."""
    factors = sample_factors(protocol.mig_points, generator)  # MIG's sample first, then FactorVAE's
    codes = _read_all(observe, [read], factors, images_per_call)[0].numpy()
    votes = factorvae_votes(observe, [read], sample_factors, protocol, generator, images_per_call)[0]
    return PaperScores(vote_score(votes), mig(codes, factors, protocol.bins))


# --------------------------------------------------------------------- ModelCentrality


def spec_codes(spec: LatentCodeSpec, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, K) codes drawn from the spec's priors, in spec order, categorical codes as class indices."""
    batch = spec.sample(n, generator=generator)
    cat, cont = iter(batch.cat), iter(batch.cont.T)
    return torch.stack([next(cat).double() if isinstance(c, CategoricalCode) else next(cont).double() for c in spec.codes], 1)


def latent_batch(spec: LatentCodeSpec, codes: torch.Tensor, generator: torch.Generator | None = None) -> LatentBatch:
    """Generator inputs for (n, K) spec-order codes (see :func:`spec_codes`), with fresh noise."""
    batch = spec.sample(len(codes), device=codes.device, generator=generator)
    columns = dict(zip(spec.names, codes.T))
    cat = tuple(columns[c.name].round().long() for c in spec.categorical)
    cont = torch.stack([columns[c.name] for c in spec.continuous], 1).to(batch.cont.dtype) if spec.continuous else batch.cont
    return LatentBatch(spec, batch.noise, cat, cont)


@dataclass
class Centrality:
    """``scores[i][j]``: the paper's FactorVAE of run i's Q on run j's generated groups; ``agreement``:
    (S + S^T) / 2; ``centrality[i]``: run i's mean agreement with the other runs; ``pick``: the most
    central run, or None when several share the highest centrality (always with two runs: their one
    agreement is each one's centrality, so ModelCentrality cannot tell them apart)."""

    scores: list[list[float]]
    agreement: list[list[float]]
    centrality: list[float]
    pick: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def model_centrality(
    generate: Sequence[Observe],
    read: Sequence[Read],
    sample_codes: SampleFactors,
    protocol: PaperProtocol = PaperProtocol(),
    seed: int = 0,
    images_per_call: int = 8192,
) -> Centrality:
    """ModelCentrality of N runs (N >= 2) of one code spec.

    ``generate[j]``: codes (n, K) -> run j's images (noise drawn inside, e.g. with :func:`latent_batch`);
    ``read[i]``: images -> run i's codes (n, K); ``sample_codes(n, generator)``: codes from the prior
    (e.g. :func:`spec_codes`). Run j's groups and global sample are drawn from ``seed + j`` and read
    by every run's Q, so S[:, j] compares all runs on the same images.
    """
    n = len(generate)
    if n < 2 or len(read) != n:
        raise ValueError(f"ModelCentrality needs as many readers as generators, at least two; got {n} and {len(read)}")
    scores = np.zeros((n, n))
    for j, observe in enumerate(generate):
        tables = factorvae_votes(observe, read, sample_codes, protocol, torch.Generator().manual_seed(seed + j), images_per_call)
        scores[:, j] = [vote_score(table).score for table in tables]
    agreement = (scores + scores.T) / 2
    centrality = (agreement.sum(1) - np.diag(agreement)) / (n - 1)
    top = np.flatnonzero(np.isclose(centrality, centrality.max(), rtol=0, atol=TIE))
    return Centrality(scores.tolist(), agreement.tolist(), centrality.tolist(), int(top[0]) if len(top) == 1 else None)
