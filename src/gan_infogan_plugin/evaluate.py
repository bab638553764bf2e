"""How well the codes line up with what they should control.

Label agreement (for a categorical code against real labels):

- :func:`hungarian_accuracy`: each code value is matched to at most one class so that the most
  images agree (``scipy.optimize.linear_sum_assignment`` on the contingency table);
- :func:`nmi`: mutual information over the arithmetic mean of the two entropies;
- :func:`ari`: the adjusted Rand index.

Disentanglement against ground-truth factors, defined as in disentanglement_lib
(Locatello et al. 2019):

- :func:`mig` (Chen et al. 2018): each code is cut into a 20-bin histogram; for every factor, the
  gap between the two codes with the highest discrete mutual information, over the factor's entropy,
  averaged over the factors;
- :func:`factorvae_score` (Kim & Mnih 2018): each vote draws a batch with one factor held fixed,
  divides each code's variance in the batch by its variance over a global sample and takes the code
  with the smallest ratio; a majority-vote classifier maps codes to factors; train and eval accuracy.

And the InfoGAN view: :func:`mi_on_generated` (Q's lower bound of I(c; G(z, c)) per code, against
H(c)), :func:`categorical_scores` (Q on real labelled images) and :func:`disentanglement_scores`
(Q's codes on procedurally rendered shapes). All information quantities are in nats.

For a trained run: :func:`load_run` rebuilds G and D+Q from a run folder's checkpoint and recipe,
:func:`evaluate_run` / :func:`evaluate_networks` gather every measurement that applies into a
JSON-ready dict (``gan-recipes eval``; ``trainer.eval_every`` logs :func:`flat_metrics` of it).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from . import registry
from .codes import CategoricalCode, LatentCodeSpec
from .data import shapes
from .data.base import ImageData, fit_images, to_unit_range
from .errors import UserError
from .export import checkpoint_load_error
from .qhead import QOutput
from .recipes import Recipe, load_recipe
from .regularizer import MIRegularizer

ArrayLike = np.ndarray | torch.Tensor
QPredict = Callable[[torch.Tensor], QOutput]


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _labels(x: ArrayLike, name: str) -> np.ndarray:
    array = _numpy(x)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one label per sample, shape (N,), got {array.shape}")
    return array


def contingency(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of each (a value, b value) pair: table (len(a_values), len(b_values)), a_values, b_values.

    Only values that occur are given rows and columns.
    """
    a, b = _labels(a, "a"), _labels(b, "b")
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
    _, counts = np.unique(_labels(labels, "labels"), return_counts=True)
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


# --------------------------------------------------------------------- InfoGAN's codes


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside the block; each module's mode is restored after."""
    modes = [(m, m.training) for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.train(training)


def _device(module: nn.Module) -> torch.device:
    tensor = next(iter(module.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def mi_on_generated(
    generator: nn.Module,
    discriminator_with_q: nn.Module,
    spec: LatentCodeSpec,
    n: int = 2048,
    batch_size: int = 256,
    image_input: bool = False,
    rng: torch.Generator | None = None,
) -> dict[str, dict[str, float]]:
    """Q's lower bound of I(c; G(z, c)) per code on ``n`` generated images, both nets in eval mode.

    ``discriminator_with_q`` maps images to (D's logits, :class:`QOutput`), as
    :class:`~gan_infogan_plugin.wrap.DiscriminatorWithQ` does; ``image_input``: G takes
    (N, input_dim, 1, 1). Returns ``{code: {"mi", "entropy", "acc" or "mse"}}`` in nats, each the
    mean over the images of :class:`MIRegularizer`'s statistics.
    """
    regularizer = MIRegularizer(spec)
    device = _device(generator)
    sums: dict[str, float] = {}
    with evaluating(generator, discriminator_with_q):
        for start in range(0, n, batch_size):
            codes = spec.sample(min(batch_size, n - start), generator=rng).to(device)
            _, q = discriminator_with_q(generator(codes.image if image_input else codes.flat))
            for key, value in regularizer(q, codes).stats.items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(codes)
    result: dict[str, dict[str, float]] = {}
    for code in spec.codes:
        quality = "acc" if isinstance(code, CategoricalCode) else "mse"
        result[code.name] = {
            "mi": sums[f"mi/{code.name}"] / n,
            "entropy": code.entropy,
            quality: sums[f"{quality}/{code.name}"] / n,
        }
    return result


def _q_outputs(q_predict: QPredict, images: torch.Tensor, batch_size: int, device) -> QOutput:
    """Q on ``images`` (N, C, H, W) in batches, concatenated on the CPU."""
    outs = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            outs.append(q_predict(images[start : start + batch_size].to(device)))
    return QOutput(
        tuple(torch.cat([o.cat_logits[i] for o in outs]).cpu() for i in range(len(outs[0].cat_logits))),
        torch.cat([o.cont_mean for o in outs]).cpu(),
        None,
    )


@dataclass
class CategoricalScore:
    """One categorical code's argmax on real images against their labels."""

    accuracy: float
    nmi: float
    ari: float
    mapping: dict[int, int]


def categorical_scores(
    q_predict: QPredict,
    images: torch.Tensor,
    labels: ArrayLike,
    spec: LatentCodeSpec,
    batch_size: int = 256,
    device=None,
) -> dict[str, CategoricalScore]:
    """For each categorical code: Q's argmax on ``images`` (N, C, H, W) matched to ``labels`` (N,).

    ``q_predict`` maps an image batch to :class:`QOutput` (put the networks in eval mode first,
    e.g. with :func:`evaluating`).
    """
    labels = _labels(labels, "labels")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    return _scores_of_logits(_q_outputs(q_predict, images, batch_size, device).cat_logits, labels, spec)


def _scores_of_logits(cat_logits: tuple[torch.Tensor, ...], labels: np.ndarray, spec: LatentCodeSpec) -> dict[str, CategoricalScore]:
    scores = {}
    for code, logits in zip(spec.categorical, cat_logits):
        pred = logits.argmax(1).numpy()
        accuracy, mapping = hungarian_accuracy(pred, labels)
        scores[code.name] = CategoricalScore(accuracy, nmi(pred, labels), ari(pred, labels), mapping)
    return scores


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


def q_codes(q_predict: QPredict, images: torch.Tensor, spec: LatentCodeSpec, batch_size: int = 256, device=None) -> torch.Tensor:
    """Q's reading of every code, (N, len(spec.codes)) on the CPU in spec order: the argmax class for a
    categorical code, the mean for a continuous one."""
    q = _q_outputs(q_predict, images, batch_size, device)
    cat, cont = iter(q.cat_logits), iter(q.cont_mean.T)
    columns = [next(cat).argmax(1).float() if isinstance(c, CategoricalCode) else next(cont) for c in spec.codes]
    return torch.stack(columns, 1)


@dataclass
class DisentanglementScores:
    """MIG and FactorVAE of Q's codes (``codes``, in that order) against the shapes factors."""

    codes: list[str]
    factors: list[str]
    mig: MIGScore
    factorvae: FactorVAEScore


def disentanglement_scores(
    q_predict: QPredict,
    spec: LatentCodeSpec,
    size: int = 32,
    channels: int = 1,
    num_points: int = 10000,
    bins: int = 20,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    chunk: int = 512,
    device=None,
    rng: torch.Generator | None = None,
) -> DisentanglementScores:
    """Q's codes (see :func:`q_codes`) on sprites rendered from known factors (:mod:`.data.shapes`).

    Images are rendered at ``size`` and given ``channels`` as the training data are. MIG uses
    ``num_points`` random sprites; FactorVAE takes ``batch_size`` sprites per vote (defaults as in
    disentanglement_lib). ``q_predict`` as in :func:`categorical_scores`.
    """
    if len(spec.codes) < 2:
        raise ValueError(f"MIG needs at least two codes, the spec {spec} has {len(spec.codes)}")

    def represent(factors: torch.Tensor) -> torch.Tensor:
        images = fit_images(shapes.render(factors, size), size, channels, "shapes")
        return q_codes(q_predict, images, spec, chunk, device)

    factors = shapes.sample_factors(num_points, rng)
    return DisentanglementScores(
        list(spec.names),
        list(shapes.FACTORS),
        mig(represent(factors), factors, bins),
        factorvae_score(represent, shapes.sample_factors, batch_size, num_train, num_eval, num_variance_estimate, rng),
    )


# --------------------------------------------------------------------- a trained run


@dataclass
class EvalConfig:
    """How many samples each measurement uses (disentanglement_lib uses points = 10000, votes = 10000)."""

    generated: int = 2048  # generated images for Q's MI bound
    real: int = 10000  # labelled real images for the categorical codes (0: skip)
    points: int = 10000  # sprites for MIG and for FactorVAE's global variances
    votes: int = 500  # FactorVAE training votes; half as many eval votes
    vote_batch: int = 64  # sprites per FactorVAE vote
    batch_size: int = 256
    seed: int = 0


def _real_images(data: ImageData, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first n images (float in [-1, 1]) of a data set and their labels (None without labels)."""
    n = min(n, len(data))
    labels = None if data.labels is None else data.labels[:n]
    if data.images is not None:
        return to_unit_range(data.images[:n]), labels
    return torch.stack([data.dataset[i][0] for i in range(n)]), labels


def evaluate_networks(
    generator: nn.Module,
    discriminator_with_q: nn.Module,
    spec: LatentCodeSpec,
    size: int,
    channels: int,
    data: ImageData | None = None,
    shapes_factors: bool = False,
    config: EvalConfig = EvalConfig(),
    device=None,
) -> dict[str, Any]:
    """Every measurement that applies, as a JSON-ready dict.

    ``mi``: :func:`mi_on_generated`; ``real_mi`` (when ``data`` is given and the spec has
    categorical codes): per code :func:`real_code_mi` on ``config.real`` images, label-free;
    ``categorical`` (when ``data`` also has labels): ``data``, ``images`` and per code the
    :func:`categorical_scores` on those images; ``disentanglement``
    (``shapes_factors``: the data are :mod:`.data.shapes` sprites): MIG and FactorVAE. Both networks
    run in eval mode and are left in the mode they were in.
    """
    rng = torch.Generator().manual_seed(config.seed)
    result: dict[str, Any] = {
        "mi": mi_on_generated(generator, discriminator_with_q, spec, config.generated, config.batch_size, rng=rng)
    }

    def q_predict(images: torch.Tensor) -> QOutput:
        return discriminator_with_q(images)[1]

    with evaluating(generator, discriminator_with_q):
        if data is not None and spec.categorical and config.real > 0:
            images, labels = _real_images(data, config.real)
            cat_logits = _q_outputs(q_predict, images, config.batch_size, device).cat_logits
            result["real_mi"] = {code.name: real_code_mi(logits) for code, logits in zip(spec.categorical, cat_logits)}
            if labels is not None:
                scores = _scores_of_logits(cat_logits, _labels(labels, "labels"), spec)
                result["categorical"] = {"data": data.name, "images": len(labels), "codes": {k: asdict(v) for k, v in scores.items()}}
        if shapes_factors and len(spec.codes) >= 2:
            found = disentanglement_scores(
                q_predict, spec, size, channels, config.points, batch_size=config.vote_batch, num_train=config.votes,
                num_eval=max(1, config.votes // 2), num_variance_estimate=config.points, chunk=config.batch_size,
                device=device, rng=rng,
            )
            result["disentanglement"] = {
                "codes": found.codes,
                "factors": found.factors,
                "mig": found.mig.score,
                "mig_gaps": dict(zip(found.factors, found.mig.gaps)),
                "mi": found.mig.mi,
                "factorvae_train": found.factorvae.train_accuracy,
                "factorvae_eval": found.factorvae.eval_accuracy,
                "num_active_dims": found.factorvae.num_active_dims,
            }
    result["settings"] = asdict(config)
    return result


def flat_metrics(result: dict[str, Any], prefix: str = "eval/") -> dict[str, float]:
    """The scalar numbers of an :func:`evaluate_networks` result, for a metrics logger."""
    flat = {f"{prefix}mi/{code}": v["mi"] for code, v in result["mi"].items()}
    flat.update({f"{prefix}real_mi/{code}": v for code, v in result.get("real_mi", {}).items()})
    for code, score in result.get("categorical", {}).get("codes", {}).items():
        flat.update({f"{prefix}{key}/{code}": score[key] for key in ("accuracy", "nmi", "ari")})
    if "disentanglement" in result:
        d = result["disentanglement"]
        flat.update({f"{prefix}mig": d["mig"], f"{prefix}factorvae": d["factorvae_eval"]})
    return flat


@dataclass
class LoadedRun:
    """A run folder's recipe and networks as its checkpoint left them (D and Q as one module)."""

    run_dir: Path
    checkpoint: Path
    recipe: Recipe
    step: int
    size: int
    channels: int
    generator: nn.Module
    discriminator_with_q: nn.Module


def _run_paths(path: Path) -> tuple[Path, Path]:
    """(run folder, checkpoint) from a run folder or a checkpoint file inside one."""
    if path.is_dir():
        run_dir, checkpoint = path, path / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            raise UserError(f"{path}: not a finished run folder: expected a checkpoint at {checkpoint}")
    elif path.is_file():
        checkpoint = path
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    else:
        raise UserError(f"{path}: no such run folder or checkpoint file")
    if not (run_dir / "recipe.toml").is_file():
        raise UserError(f"{checkpoint}: the run's recipe is not at {run_dir / 'recipe.toml'}; eval needs the run folder")
    return run_dir, checkpoint


def load_run(path: str | Path, data_overrides: list[str] = (), device: torch.device | str = "cpu") -> LoadedRun:
    """Rebuild G and D+Q from a run folder (or its checkpoint) and ``recipe.toml``.

    The checkpoint is read with ``torch.load(weights_only=True)``: nothing in it is executed.
    ``data_overrides`` are ``KEY=VALUE`` settings of the recipe's ``[data]`` table (``split=test``).
    """
    from .train import build_networks  # train imports this module for trainer.eval_every

    run_dir, checkpoint = _run_paths(Path(path))
    recipe = load_recipe(str(run_dir / "recipe.toml"), [f"data.{item}" for item in data_overrides])
    model, channels, generator, discriminator, info = build_networks(recipe)
    if info is None:
        raise UserError(f"{run_dir / 'recipe.toml'}: regularizer.enabled is false: a plain GAN has no Q to evaluate")
    dq = info.discriminator_with_q()
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a zip/pickle, or holding objects weights_only refuses
        raise UserError(f"{checkpoint}: not a readable checkpoint ({checkpoint_load_error(exc)})") from None
    if not isinstance(state, dict) or not {"generator", "discriminator", "step"} <= state.keys():
        raise UserError(f"{checkpoint}: expected a gan-recipes checkpoint with generator, discriminator and step")
    try:
        generator.load_state_dict(state["generator"])
        dq.load_state_dict(state["discriminator"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        reason = " ".join(line.strip() for line in str(exc).strip().splitlines())[:300]
        raise UserError(f"{checkpoint}: its weights do not fit the networks of {run_dir / 'recipe.toml'}: {reason}") from None
    generator.to(device).eval()
    dq.to(device).eval()
    return LoadedRun(run_dir, checkpoint, recipe, int(state["step"]), model.image_size, channels, generator, dq)


def evaluate_run(run: LoadedRun, config: EvalConfig = EvalConfig(), device: torch.device | str = "cpu") -> dict[str, Any]:
    """:func:`evaluate_networks` for a loaded run, on its recipe's data (``config.real`` images)."""
    data = None
    if config.real > 0:
        cfg = run.recipe.data
        cfg = dataclasses.replace(cfg, limit=min(cfg.limit or config.real, config.real))
        data = registry.load("datasets", cfg.name)(cfg, run.size, run.channels)
    result = evaluate_networks(
        run.generator, run.discriminator_with_q, run.recipe.codes, run.size, run.channels, data,
        run.recipe.data.name == "shapes", config, device,
    )
    return {"run": str(run.run_dir), "checkpoint": str(run.checkpoint), "step": run.step, **result}
