"""Scores of codes against labels and factors: pure functions of arrays, numpy and scipy.

Label agreement (for a categorical code against real labels):

- :func:`hungarian_accuracy`: each code value is matched to at most one class so that the most
  images agree (``scipy.optimize.linear_sum_assignment`` on the contingency table);
- :func:`nmi`: mutual information over the arithmetic mean of the two entropies;
- :func:`ari`: the adjusted Rand index;
- :func:`real_code_mi`: Q's mutual information between images and a code, from Q's logits alone (no labels).

Disentanglement against ground-truth factors, defined as in disentanglement_lib
(Locatello et al. 2019):

- :func:`mig` (Chen et al. 2018): each code is cut into a 20-bin histogram; for every factor, the
  gap between the two codes with the highest discrete mutual information, over the factor's entropy,
  averaged over the factors;
- :func:`factorvae_score` (Kim & Mnih 2018): each vote draws a batch with one factor held fixed,
  divides each code's variance in the batch by its variance over a global sample and takes the code
  with the smallest ratio; a majority-vote classifier maps codes to factors; train and eval accuracy.

All information quantities are in nats. Measuring networks with these scores is :mod:`.evaluate`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

ArrayLike = np.ndarray | torch.Tensor


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def label_array(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a numpy array of one label per sample, (N,); a ValueError naming ``name`` otherwise."""
    array = _numpy(x)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one label per sample, shape (N,), got {array.shape}")
    return array


def contingency(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of each (a value, b value) pair: table (len(a_values), len(b_values)), a_values, b_values.

    Only values that occur are given rows and columns.
    """
    a, b = label_array(a, "a"), label_array(b, "b")
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equally long, non-empty label arrays, got {a.shape} and {b.shape}")
    a_values, a_index = np.unique(a, return_inverse=True)
    b_values, b_index = np.unique(b, return_inverse=True)
    table = np.zeros((len(a_values), len(b_values)), dtype=np.int64)
    np.add.at(table, (a_index, b_index), 1)
    return table, a_values, b_values


def _entropy_of_counts(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mi_of_table(table: np.ndarray) -> float:
    p = table / table.sum()
    outer = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    nonzero = p > 0
    return float((p[nonzero] * np.log(p[nonzero] / outer[nonzero])).sum())


def entropy(labels: ArrayLike) -> float:
    """H of the empirical distribution of ``labels`` (N,)."""
    _, counts = np.unique(label_array(labels, "labels"), return_counts=True)
    return _entropy_of_counts(counts)


def mutual_information(a: ArrayLike, b: ArrayLike) -> float:
    """Discrete I(a; b) of two label arrays (N,), from their contingency table."""
    return _mi_of_table(contingency(a, b)[0])


def hungarian_accuracy(pred: ArrayLike, labels: ArrayLike) -> tuple[float, dict[int, int]]:
    """Accuracy of ``pred`` (N,) after matching its values one-to-one to the ``labels`` (N,) values.

    Returns (accuracy, mapping code value -> class). With more code values than classes the
    unmatched values are absent from the mapping and their samples count as wrong; with fewer,
    some classes are never predicted.
    """
    table, codes, classes = contingency(pred, labels)
    rows, cols = linear_sum_assignment(table, maximize=True)
    accuracy = float(table[rows, cols].sum() / table.sum())
    return accuracy, {int(codes[r]): int(classes[c]) for r, c in zip(rows, cols)}


@dataclass
class Overlap:
    """Where a categorical code mixes or splits the classes, read from each class's majority code value.

    merged: code value -> the classes (two or more) whose images it takes most of (those classes have
    no value of their own); spare: code value -> the class it holds most of, for values that are no
    class's majority (typically a second style of a split class); unused: values never predicted;
    mixed: code value -> [class, share] of the classes holding at least a tenth of its images, largest
    first, for values whose largest class holds less than ``pure`` of them (two classes split between
    two values by style: each class has a value of its own, so nothing is merged, yet both are mixed).
    """

    merged: dict[int, list[int]]
    spare: dict[int, int]
    unused: list[int]
    mixed: dict[int, list[tuple[int, float]]]


def class_overlap(pred: ArrayLike, labels: ArrayLike, num_values: int, pure: float = 0.9) -> Overlap:
    """:class:`Overlap` of code values ``pred`` (N,) in ``range(num_values)`` with the ``labels`` (N,)."""
    table, values, classes = contingency(pred, labels)
    majority = table.argmax(0)  # for each class, the row of the value most of its images get
    merged = {int(values[r]): [int(c) for c in classes[majority == r]] for r in np.unique(majority) if (majority == r).sum() > 1}
    spare = {int(values[r]): int(classes[table[r].argmax()]) for r in range(len(values)) if r not in majority}
    shares = table / table.sum(1, keepdims=True)  # (values, classes): each value's images by class
    mixed = {
        int(values[r]): [(int(classes[c]), float(shares[r, c])) for c in np.argsort(-shares[r], kind="stable") if shares[r, c] >= 0.1]
        for r in range(len(values)) if shares[r].max() < pure
    }
    return Overlap(merged, spare, sorted(set(range(num_values)) - {int(v) for v in values}), mixed)


def nmi(pred: ArrayLike, labels: ArrayLike) -> float:
    """Normalised mutual information, I / ((H(pred) + H(labels)) / 2); 1 for two identical partitions."""
    table, _, _ = contingency(pred, labels)
    if table.shape == (1, 1):
        return 1.0
    mi = _mi_of_table(table)
    if mi <= 0.0:
        return 0.0
    return mi / (0.5 * (_entropy_of_counts(table.sum(1)) + _entropy_of_counts(table.sum(0))))


def ari(pred: ArrayLike, labels: ArrayLike) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions, about 0 for independent ones."""
    table, _, _ = contingency(pred, labels)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1)).sum() / 2)

    together = pairs(table)
    rows, cols, total = pairs(table.sum(1)), pairs(table.sum(0)), pairs(np.array([table.sum()]))
    expected = rows * cols / total if total else 0.0
    best = 0.5 * (rows + cols)
    if best == expected:  # both partitions trivial (one cluster, or all singletons)
        return 1.0
    return (together - expected) / (best - expected)


# --------------------------------------------------------------------- disentanglement


def histogram_discretize(codes: ArrayLike, bins: int = 20) -> np.ndarray:
    """Each column of ``codes`` (N, K) cut into ``bins`` equal-width bins over its range; (N, K) ints."""
    codes = _numpy(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (N, K), got {codes.shape}")
    out = np.empty(codes.shape, dtype=np.int64)
    for k in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, k], bins)
        out[:, k] = np.digitize(codes[:, k], edges[1:-1])
    return out


@dataclass
class MIGScore:
    """``score``: the mean over factors of ``gaps`` (one normalised gap per factor);
    ``mi``: discrete mutual information (K codes, F factors) in nats."""

    score: float
    gaps: list[float]
    mi: list[list[float]]


def mig(codes: ArrayLike, factors: ArrayLike, bins: int = 20) -> MIGScore:
    """Mutual information gap of ``codes`` (N, K) float against ``factors`` (N, F) int, K >= 2."""
    discrete = histogram_discretize(codes, bins)
    factors = _numpy(factors)
    if factors.ndim != 2 or factors.shape[0] != discrete.shape[0]:
        raise ValueError(f"factors must have shape (N, F) with N = {discrete.shape[0]}, got {factors.shape}")
    if discrete.shape[1] < 2:
        raise ValueError("MIG needs at least two codes")
    mi = np.array(
        [[mutual_information(discrete[:, k], factors[:, f]) for f in range(factors.shape[1])] for k in range(discrete.shape[1])]
    )
    top = np.sort(mi, axis=0)[::-1]
    gaps = [
        float((top[0, f] - top[1, f]) / h) if (h := entropy(factors[:, f])) > 0 else 0.0
        for f in range(factors.shape[1])
    ]
    return MIGScore(float(np.mean(gaps)), gaps, mi.tolist())


@dataclass
class FactorVAEScore:
    """Majority-vote accuracy on the votes that built the classifier and on fresh votes;
    ``num_active_dims``: codes whose global variance is not zero (only those can be voted for)."""

    train_accuracy: float
    eval_accuracy: float
    num_active_dims: int


def factorvae_score(
    represent: Callable[[torch.Tensor], torch.Tensor],
    sample_factors: Callable[[int, torch.Generator | None], torch.Tensor],
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    generator: torch.Generator | None = None,
    images_per_call: int = 8192,
) -> FactorVAEScore:
    """The FactorVAE disentanglement score (disentanglement_lib's defaults).

    ``sample_factors(n, generator)`` draws ground-truth factors (n, F) long; ``represent(factors)``
    maps them (through images) to codes (n, K) float. Each vote holds one factor, chosen
    uniformly, at the value of the batch's first sample. ``represent`` sees at most
    ``images_per_call`` samples at a time (whole vote batches), except for the global sample.
    """
    per_call = max(1, images_per_call // batch_size)
    global_var = _numpy(represent(sample_factors(num_variance_estimate, generator))).astype(np.float64).var(0, ddof=1)
    active = np.flatnonzero(global_var > 0)
    if active.size == 0:
        return FactorVAEScore(0.0, 0.0, 0)

    def votes(n: int) -> np.ndarray:
        """(F, K) counts of (held factor, chosen code) over n votes, ``per_call`` votes per represent call."""
        table: np.ndarray | None = None
        for start in range(0, n, per_call):
            m = min(per_call, n - start)
            factors = sample_factors(m * batch_size, generator).reshape(m, batch_size, -1)
            held = torch.randint(factors.shape[2], (m,), generator=generator)
            rows = torch.arange(m)
            factors[rows, :, held] = factors[rows, 0, held][:, None]
            codes = _numpy(represent(factors.reshape(m * batch_size, -1))).astype(np.float64)
            local_var = codes.reshape(m, batch_size, -1).var(1, ddof=1)
            chosen = active[np.argmin(local_var[:, active] / global_var[active], axis=1)]
            if table is None:
                table = np.zeros((factors.shape[2], global_var.size), dtype=np.int64)
            np.add.at(table, (held.numpy(), chosen), 1)
        return table

    train, evaluation = votes(num_train), votes(num_eval)
    classifier = np.argmax(train, axis=0)  # the factor each code votes for most
    columns = np.arange(train.shape[1])
    return FactorVAEScore(
        float(train[classifier, columns].sum() / train.sum()),
        float(evaluation[classifier, columns].sum() / evaluation.sum()),
        int(active.size),
    )


# --------------------------------------------------------------------- Q's logits, without labels


def real_code_mi(logits: torch.Tensor) -> float:
    """Q's mutual information between real images and a categorical code, in nats, without labels.

    logits: (N, K), Q's output on N real images. With p_i = softmax(logits_i):
    MI = H(mean_i p_i) - mean_i H(p_i), at most ln K; it is high when Q sorts the real images into
    K equally used classes and is sure of each image. A label-free way to compare runs (seeds) of
    one recipe on one data set: on MNIST it ranks runs as their digit accuracy does
    (benchmarks/MNIST_SWEEP.md).
    """
    log_p = logits.double().log_softmax(1)
    p = log_p.exp()
    mean_p = p.mean(0)
    h_marginal = -(mean_p * mean_p.clamp_min(1e-300).log()).sum()
    h_conditional = -(p * log_p).sum(1).mean()
    return float(h_marginal - h_conditional)
