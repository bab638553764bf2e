"""Measuring trained networks: how well Q reads the codes back, on generated and on real images.

- :func:`mi_on_generated`: Q's lower bound of I(c; G(z, c)) per code, against H(c);
- :func:`categorical_scores`: Q's argmax on real labelled images against their labels (Hungarian
  accuracy, NMI, ARI from :mod:`.metrics`); :func:`~.metrics.real_code_mi` needs no labels;
- :func:`disentanglement_scores`: Q's codes on images drawn from known factors (a data set's
  :class:`~.data.base.Factors`): MIG and the FactorVAE score as disentanglement_lib computes them;
  :func:`paper_disentanglement`: the same two scores under the InfoGAN-CR paper's protocol
  (:func:`~.protocols.paper_scores`: FactorVAE scored on its own votes, its sample sizes).

:func:`evaluate_networks` gathers every measurement that applies into an :class:`Evaluation`
(``trainer.eval_every`` logs :meth:`Evaluation.flat`); :func:`load_run` rebuilds G and D+Q from a run
folder and :func:`evaluate_run` measures them on the run's data (``gan-recipes eval``). The results
are dataclasses; ``to_json`` gives the JSON that ``gan-recipes eval`` writes. All information
quantities are in nats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .batchnorm import recalibrated
from .codes import CategoricalCode, LatentCodeSpec
from .data.base import Factors, ImageData, to_unit_range
from .errors import UserError
from .metrics import (
    FactorVAEScore, MIGScore, Overlap, ari, class_overlap, factorvae_score, hungarian_accuracy, label_array, mig, nmi, real_code_mi,
)
from .modes import evaluating
from .networks import Networks, build_networks, load_data
from .protocols import PaperProtocol, PaperScores, paper_scores
from .qhead import QOutput
from .recipes import Recipe
from .regularizer import MIRegularizer
from .runs import RunDir

QPredict = Callable[[torch.Tensor], QOutput]


# --------------------------------------------------------------------- Q on generated images
@dataclass
class CodeMI:
    """Q's reading of one code on generated images: ``mi``, the lower bound H(c) - E[-log Q(c | x)],
    and ``entropy``, H(c); ``accuracy`` for a categorical code, ``mse`` for a continuous one."""

    mi: float
    entropy: float
    accuracy: float | None = None
    mse: float | None = None

    def to_json(self) -> dict[str, float]:
        quality = {"acc": self.accuracy} if self.accuracy is not None else {"mse": self.mse}
        return {"mi": self.mi, "entropy": self.entropy, **quality}


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
) -> dict[str, CodeMI]:
    """Q's lower bound of I(c; G(z, c)) per code on ``n`` generated images, both nets in eval mode.

    Eval mode reads BatchNorm's running statistics: of a network still training they trail its weights,
    so recompute them first (:mod:`.batchnorm`; :func:`evaluate_networks` does).

    ``discriminator_with_q`` maps images to (D's logits, :class:`QOutput`), as
    :class:`~gan_infogan_plugin.wrap.DiscriminatorWithQ` does; ``image_input``: G takes
    (N, input_dim, 1, 1). Each number is the mean over the images of :class:`MIRegularizer`'s statistics.
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
    result: dict[str, CodeMI] = {}
    for code in spec.codes:
        name = code.name
        if isinstance(code, CategoricalCode):
            result[name] = CodeMI(sums[f"mi/{name}"] / n, code.entropy, accuracy=sums[f"acc/{name}"] / n)
        else:
            result[name] = CodeMI(sums[f"mi/{name}"] / n, code.entropy, mse=sums[f"mse/{name}"] / n)
    return result


# --------------------------------------------------------------------- Q on real images
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
    """One categorical code's argmax on real images against their labels; ``mapping``: code value -> class
    (Hungarian-matched); ``overlap``: the classes that share a value, and the values no class holds."""

    accuracy: float
    nmi: float
    ari: float
    mapping: dict[int, int]
    overlap: Overlap


def categorical_scores(
    q_predict: QPredict,
    images: torch.Tensor,
    labels: Any,
    spec: LatentCodeSpec,
    batch_size: int = 256,
    device=None,
) -> dict[str, CategoricalScore]:
    """For each categorical code: Q's argmax on ``images`` (N, C, H, W) matched to ``labels`` (N,).

    ``q_predict`` maps an image batch to :class:`QOutput` (put the networks in eval mode first,
    e.g. with :func:`~gan_infogan_plugin.modes.evaluating`).
    """
    labels = label_array(labels, "labels")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    return _scores_of_logits(_q_outputs(q_predict, images, batch_size, device).cat_logits, labels, spec)


def _scores_of_logits(cat_logits: tuple[torch.Tensor, ...], labels: Any, spec: LatentCodeSpec) -> dict[str, CategoricalScore]:
    scores = {}
    for code, logits in zip(spec.categorical, cat_logits):
        pred = logits.argmax(1).numpy()
        accuracy, mapping = hungarian_accuracy(pred, labels)
        overlap = class_overlap(pred, labels, code.num_classes)
        scores[code.name] = CategoricalScore(accuracy, nmi(pred, labels), ari(pred, labels), mapping, overlap)
    return scores


@dataclass
class LabelScores:
    """The categorical codes against the labels of ``images`` real images of data set ``data``."""

    data: str
    images: int
    codes: dict[str, CategoricalScore]

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "images": self.images, "codes": {k: asdict(v) for k, v in self.codes.items()}}


def q_codes(q_predict: QPredict, images: torch.Tensor, spec: LatentCodeSpec, batch_size: int = 256, device=None) -> torch.Tensor:
    """Q's reading of every code, (N, len(spec.codes)) on the CPU in spec order: the argmax class for a
    categorical code, the mean for a continuous one."""
    q = _q_outputs(q_predict, images, batch_size, device)
    cat, cont = iter(q.cat_logits), iter(q.cont_mean.T)
    columns = [next(cat).argmax(1).float() if isinstance(c, CategoricalCode) else next(cont) for c in spec.codes]
    return torch.stack(columns, 1)


# --------------------------------------------------------------------- Q against known factors
@dataclass
class DisentanglementScores:
    """MIG and FactorVAE of Q's codes (``codes``, in that order) against a data set's ``factors``."""

    codes: list[str]
    factors: list[str]
    mig: MIGScore
    factorvae: FactorVAEScore

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": LIB_PROTOCOL,
            "codes": self.codes,
            "factors": self.factors,
            "mig": self.mig.score,
            "mig_gaps": dict(zip(self.factors, self.mig.gaps)),
            "mi": self.mig.mi,
            "factorvae_train": self.factorvae.train_accuracy,
            "factorvae_eval": self.factorvae.eval_accuracy,
            "num_active_dims": self.factorvae.num_active_dims,
        }


def disentanglement_scores(
    q_predict: QPredict,
    spec: LatentCodeSpec,
    factors: Factors,
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
    """Q's codes (see :func:`q_codes`) on images drawn from known ``factors`` (e.g. :func:`.data.shapes.factors`).

    MIG uses ``num_points`` random images; FactorVAE takes ``batch_size`` images per vote (defaults
    as in disentanglement_lib). ``q_predict`` as in :func:`categorical_scores`.
    """
    if len(spec.codes) < 2:
        raise ValueError(f"MIG needs at least two codes, the spec {spec} has {len(spec.codes)}")

    def represent(drawn: torch.Tensor) -> torch.Tensor:
        return q_codes(q_predict, factors.images(drawn), spec, chunk, device)

    drawn = factors.sample(num_points, rng)
    return DisentanglementScores(
        list(spec.names),
        list(factors.names),
        mig(represent(drawn), drawn, bins),
        factorvae_score(represent, factors.sample, batch_size, num_train, num_eval, num_variance_estimate, rng),
    )


@dataclass
class PaperDisentanglement:
    """The InfoGAN-CR paper's FactorVAE and MIG (:func:`~.protocols.paper_scores`) of Q's codes
    (``codes``) against a data set's ``factors``, with the ``protocol``'s sample sizes."""

    codes: list[str]
    factors: list[str]
    protocol: PaperProtocol
    scores: PaperScores

    def to_json(self) -> dict[str, Any]:
        mig_score, votes = self.scores.mig, self.scores.factorvae
        return {
            "protocol": PAPER_PROTOCOL,
            "codes": self.codes,
            "factors": self.factors,
            "mig": mig_score.score,
            "mig_gaps": dict(zip(self.factors, mig_score.gaps)),
            "factorvae": votes.score,
            "factorvae_revised": votes.revised,
            "votes": votes.votes,
            **asdict(self.protocol),
        }


PAPER_PROTOCOL = "InfoGAN-CR paper (Lin et al. 2020)"
LIB_PROTOCOL = "disentanglement_lib"


def paper_disentanglement(
    q_predict: QPredict,
    spec: LatentCodeSpec,
    factors: Factors,
    protocol: PaperProtocol = PaperProtocol(),
    chunk: int = 512,
    device=None,
    rng: torch.Generator | None = None,
) -> PaperDisentanglement:
    """Q's codes (see :func:`q_codes`) scored as the InfoGAN-CR paper scores them, on images drawn
    from known ``factors``; ``q_predict`` as in :func:`categorical_scores`."""

    def read(images: torch.Tensor) -> torch.Tensor:
        return q_codes(q_predict, images, spec, chunk, device)

    scores = paper_scores(factors.images, read, factors.sample, protocol, rng)
    return PaperDisentanglement(list(spec.names), list(factors.names), protocol, scores)


# --------------------------------------------------------------------- everything that applies
@dataclass
class EvalConfig:
    """How many samples each measurement uses (disentanglement_lib uses points = 10000, votes = 10000;
    the InfoGAN-CR paper 500 groups of 100 and 73,728 points)."""

    generated: int = 2048  # generated images for Q's MI bound
    real: int = 10000  # real images for Q's label-free MI and the categorical codes (0: none), drawn at random with seed
    points: int = 10000  # images for MIG and for FactorVAE's global variances
    votes: int = 500  # FactorVAE training votes; half as many eval votes
    vote_batch: int = 64  # images per FactorVAE vote
    paper_groups: int = 500  # the InfoGAN-CR paper's protocol: FactorVAE groups (0: not measured)
    paper_group_size: int = 100  # images per group
    paper_points: int = 73_728  # images for MIG and for each code's scale
    batch_size: int = 256
    seed: int = 0


@dataclass
class RealImages:
    """Which real images were scored: ``scored`` of the ``of`` images of data set ``data``, drawn at
    random with ``seed`` (all of them when ``scored == of``)."""

    data: str
    scored: int
    of: int
    seed: int


@dataclass
class Evaluation:
    """Every measurement :func:`evaluate_networks` made; None where it did not apply.

    mi: :func:`mi_on_generated` per code; real_mi: :func:`~.metrics.real_code_mi` per categorical
    code on real images; categorical: those codes against the real images' labels; disentanglement:
    MIG and FactorVAE against the data set's factors, disentanglement_lib's protocol; paper: the same
    under the InfoGAN-CR paper's protocol; settings: the sample counts used; real_images: how many
    real images real_mi and categorical scored.
    """

    mi: dict[str, CodeMI]
    settings: EvalConfig
    real_images: RealImages | None = None
    real_mi: dict[str, float] | None = None
    categorical: LabelScores | None = None
    disentanglement: DisentanglementScores | None = None
    paper: PaperDisentanglement | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mi": {code: score.to_json() for code, score in self.mi.items()}}
        if self.real_images is not None:
            out["real_images"] = asdict(self.real_images)
        if self.real_mi is not None:
            out["real_mi"] = dict(self.real_mi)
        if self.categorical is not None:
            out["categorical"] = self.categorical.to_json()
        if self.disentanglement is not None:
            out["disentanglement"] = self.disentanglement.to_json()
        if self.paper is not None:
            out["disentanglement_paper"] = self.paper.to_json()
        out["settings"] = asdict(self.settings)
        return out

    def flat(self, prefix: str = "eval/") -> dict[str, float]:
        """The scalar numbers, for a metrics logger: ``eval/mi/<code>``, ``eval/real_mi/<code>``,
        ``eval/accuracy/<code>``, ``eval/nmi/<code>``, ``eval/ari/<code>``, ``eval/mig``, ``eval/factorvae``
        (disentanglement_lib's), ``eval/paper/mig``, ``eval/paper/factorvae`` (the InfoGAN-CR paper's),
        and ``eval/real_images`` (how many real images those scores saw)."""
        flat = {f"{prefix}mi/{code}": score.mi for code, score in self.mi.items()}
        if self.real_images is not None:
            flat[f"{prefix}real_images"] = float(self.real_images.scored)
        flat.update({f"{prefix}real_mi/{code}": v for code, v in (self.real_mi or {}).items()})
        for code, score in (self.categorical.codes if self.categorical else {}).items():
            flat.update({f"{prefix}accuracy/{code}": score.accuracy, f"{prefix}nmi/{code}": score.nmi, f"{prefix}ari/{code}": score.ari})
        if self.disentanglement is not None:
            flat.update({f"{prefix}mig": self.disentanglement.mig.score, f"{prefix}factorvae": self.disentanglement.factorvae.eval_accuracy})
        if self.paper is not None:
            flat.update({f"{prefix}paper/mig": self.paper.scores.mig.score, f"{prefix}paper/factorvae": self.paper.scores.factorvae.score})
        return flat


def real_subset(size: int, n: int, seed: int) -> torch.Tensor:
    """(min(n, size),) sorted indices of ``n`` items drawn at random without replacement from ``size``
    (all of them when ``n >= size``); the same for the same seed, so every evaluation of a run scores
    the same images, and a data set stored in label order is sampled across its labels."""
    if n >= size:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def _real_images(data: ImageData, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The images at ``index`` (float in [-1, 1]) of a data set and their labels (None without labels)."""
    labels = None if data.labels is None else data.labels[index]
    if data.images is not None:
        return to_unit_range(data.images[index]), labels
    return torch.stack([data.dataset[i][0] for i in index.tolist()]), labels


def evaluate_networks(
    generator: nn.Module,
    discriminator_with_q: nn.Module,
    spec: LatentCodeSpec,
    data: ImageData | None = None,
    config: EvalConfig = EvalConfig(),
    device=None,
) -> Evaluation:
    """Every measurement that applies: the MI bound always; with ``data`` and categorical codes, the
    label-free MI on ``config.real`` real images (drawn at random with ``config.seed``: see
    :func:`real_subset`), and the label scores when ``data`` has labels; when ``data`` has factors and
    the spec two codes or more, MIG and FactorVAE under both protocols (disentanglement_lib's, then the
    InfoGAN-CR paper's unless ``config.paper_groups = 0``). Both networks run in eval mode, with their
    BatchNorm running statistics recomputed from generated batches (:func:`.batchnorm.recalibrated`:
    of networks still training they trail the weights), and are left with the modes and statistics
    they had.
    """
    rng = torch.Generator().manual_seed(config.seed)

    def q_predict(images: torch.Tensor) -> QOutput:
        return discriminator_with_q(images)[1]

    # Other codes than the scored ones calibrate the statistics; the old ones are put back after.
    calibration = recalibrated(generator, discriminator_with_q, spec, batch_size=config.batch_size, seed=config.seed + 1)
    with calibration, evaluating(generator, discriminator_with_q):
        result = Evaluation(mi_on_generated(generator, discriminator_with_q, spec, config.generated, config.batch_size, rng=rng), config)
        if data is not None and spec.categorical and config.real > 0:
            images, labels = _real_images(data, real_subset(len(data), config.real, config.seed))
            result.real_images = RealImages(data.name, len(images), len(data), config.seed)
            cat_logits = _q_outputs(q_predict, images, config.batch_size, device).cat_logits
            result.real_mi = {code.name: real_code_mi(logits) for code, logits in zip(spec.categorical, cat_logits)}
            if labels is not None:
                scores = _scores_of_logits(cat_logits, label_array(labels, "labels"), spec)
                result.categorical = LabelScores(data.name, len(labels), scores)
        if data is not None and data.factors is not None and len(spec.codes) >= 2:
            result.disentanglement = disentanglement_scores(
                q_predict, spec, data.factors, config.points, batch_size=config.vote_batch, num_train=config.votes,
                num_eval=max(1, config.votes // 2), num_variance_estimate=config.points, chunk=config.batch_size,
                device=device, rng=rng,
            )
            if config.paper_groups > 0:
                protocol = PaperProtocol(config.paper_groups, config.paper_group_size, config.paper_points, config.paper_points)
                result.paper = paper_disentanglement(q_predict, spec, data.factors, protocol, config.batch_size, device, rng)
    return result


# --------------------------------------------------------------------- a trained run
@dataclass
class LoadedRun:
    """A run folder's recipe and networks as its checkpoint left them (in eval mode)."""

    run: RunDir
    recipe: Recipe
    step: int
    networks: Networks


def load_run(
    path: str | Path, data_overrides: list[str] = (), device: torch.device | str = "cpu", need_q: bool = True
) -> LoadedRun:
    """Rebuild G and D+Q from a run folder (or a checkpoint file in one) and its ``recipe.toml``.

    The checkpoint is read with ``torch.load(weights_only=True)``: nothing in it is executed.
    ``data_overrides`` are ``KEY=VALUE`` settings of the recipe's ``[data]`` table (``split=test``).
    ``need_q``: a plain GAN's run (no Q) is refused; without it, its D is loaded alone.
    """
    run = RunDir.of(path)
    recipe = run.read_recipe([f"data.{item}" for item in data_overrides])
    networks = build_networks(recipe)
    if need_q and networks.info is None:
        raise UserError(f"{run.recipe_file}: regularizer.enabled is false: a plain GAN has no Q to evaluate")
    state = run.load_checkpoint({"generator": networks.generator, "discriminator": networks.discriminator})
    networks.generator.to(device).eval()
    networks.discriminator.to(device).eval()
    return LoadedRun(run, recipe, int(state["step"]), networks)


@dataclass
class RunEvaluation:
    """:func:`evaluate_run`'s result: which checkpoint was measured, and the scores."""

    run: Path
    checkpoint: Path
    step: int
    scores: Evaluation

    def to_json(self) -> dict[str, Any]:
        return {"run": str(self.run), "checkpoint": str(self.checkpoint), "step": self.step, **self.scores.to_json()}


def evaluate_run(loaded: LoadedRun, config: EvalConfig = EvalConfig(), device: torch.device | str = "cpu") -> RunEvaluation:
    """:func:`evaluate_networks` for a loaded run, on its recipe's data set (``config.real`` of its
    images drawn at random; the data set is read even with ``config.real = 0``, for its factors)."""
    data = load_data(loaded.recipe.data, loaded.networks)
    nets = loaded.networks
    scores = evaluate_networks(nets.generator, nets.discriminator, loaded.recipe.codes, data, config, device)
    return RunEvaluation(loaded.run.path, loaded.run.checkpoint, loaded.step, scores)
