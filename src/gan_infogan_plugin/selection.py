"""Label-free model selection across finished runs (``gan-recipes select``).

:func:`select_runs` loads N >= 2 runs of one code spec on one data set and ranks them by
ModelCentrality (:func:`~.protocols.model_centrality`, Lin et al. 2020): each run's generator makes
the paper's FactorVAE groups, every run's Q votes on them, and the run that agrees most with the
others is the pick. It needs no data and no labels, and works for continuous and categorical codes
(a categorical code is read as its argmax class). For categorical codes it also gives each run's
``MI real`` (:func:`~.metrics.real_code_mi`: Q's label-free MI on real images of the data set), the
score that ranks MNIST runs as their digit accuracy does (benchmarks/MNIST_SWEEP.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .batchnorm import recalibrate
from .errors import UserError
from .evaluate import LoadedRun, _q_outputs, _real_images, load_run, q_codes, real_subset
from .metrics import real_code_mi
from .modes import evaluating
from .networks import load_data
from .protocols import Centrality, PaperProtocol, latent_batch, model_centrality, spec_codes
from .recipes import Recipe
from .runs import RunDir

# The [data] keys that make two runs' data sets the same (where the files are does not matter).
SAME_DATA = ("name", "split", "limit", "crop", "options")


@dataclass
class RunScore:
    """One run: its folder, its checkpoint's step, its ModelCentrality and (categorical codes) MI real per code."""

    run: str
    step: int
    centrality: float
    real_mi: dict[str, float] | None


@dataclass
class Selection:
    """The runs in the order given, the ModelCentrality matrices, the pick (an index into ``runs``; None
    when the most central runs tie, as two runs always do) and, for categorical codes, the run with the
    highest mean MI real (``best_real_mi``)."""

    runs: list[RunScore]
    centrality: Centrality
    pick: int | None
    best_real_mi: int | None
    protocol: PaperProtocol
    real_images: int

    def no_pick_reason(self) -> str:
        """Why there is no pick (read only when ``pick`` is None)."""
        if len(self.runs) == 2:
            return "two runs always tie (their one agreement is each one's centrality): compare three runs or more"
        return "the most central runs tie"

    def ranking(self) -> list[int]:
        """Indices into ``runs``, most central first."""
        return sorted(range(len(self.runs)), key=lambda i: -self.runs[i].centrality)

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [asdict(run) for run in self.runs],
            "pick": None if self.pick is None else self.runs[self.pick].run,
            "best_real_mi": None if self.best_real_mi is None else self.runs[self.best_real_mi].run,
            "model_centrality": self.centrality.to_dict(),
            "protocol": asdict(self.protocol),
            "real_images": self.real_images,
        }


def _same_runs(runs: Sequence[RunDir], recipes: Sequence[Recipe]) -> None:
    """Refuse a run given twice, and runs of other code specs or data sets than the first one's."""
    seen: dict[Path, RunDir] = {}
    for run in runs:
        key = run.path.resolve()
        if key in seen:
            raise UserError(f"{run.path}: the same run is given twice")
        seen[key] = run
    first, reference = runs[0], recipes[0]
    data = {key: getattr(reference.data, key) for key in SAME_DATA}
    for run, recipe in zip(runs[1:], recipes[1:]):
        if str(recipe.codes) != str(reference.codes):
            raise UserError(f"{run.recipe_file}: codes {recipe.codes} differ from {first.recipe_file}'s "
                            f"{reference.codes}; select compares runs of one code spec")
        other = {key: getattr(recipe.data, key) for key in SAME_DATA}
        if other != data:
            changed = ", ".join(f"data.{key}" for key in SAME_DATA if other[key] != data[key])
            raise UserError(f"{run.recipe_file}: {changed} differ from {first.recipe_file}'s; select compares runs on one data set")


def _generate(loaded: LoadedRun, seed: int, batch_size: int, device) -> Any:
    """codes (n, K) in spec order -> the run's images (n, C, S, S) on the CPU, fresh noise from ``seed``."""
    spec, generator = loaded.recipe.codes, loaded.networks.generator
    noise = torch.Generator().manual_seed(seed)

    def generate(codes: torch.Tensor) -> torch.Tensor:
        parts = []
        with evaluating(generator):
            for start in range(0, len(codes), batch_size):
                batch = latent_batch(spec, codes[start : start + batch_size], noise)
                parts.append(generator(batch.flat.to(device)).cpu())
        return torch.cat(parts)

    return generate


def _read(loaded: LoadedRun, batch_size: int, device) -> Any:
    """images -> the run's Q's codes (n, K) in spec order (:func:`~.evaluate.q_codes`)."""
    discriminator = loaded.networks.discriminator

    def read(images: torch.Tensor) -> torch.Tensor:
        with evaluating(discriminator):
            return q_codes(lambda x: discriminator(x)[1], images, loaded.recipe.codes, batch_size, device)

    return read


def _real_mi(loaded: Sequence[LoadedRun], n: int, seed: int, batch_size: int, device) -> tuple[list[dict[str, float]], int]:
    """Each run's MI real per categorical code on ``n`` images of the (common) data set drawn at random
    with ``seed`` (:func:`~.evaluate.real_subset`, as ``gan-recipes eval`` draws them), and how many
    images that was."""
    recipe = loaded[0].recipe
    data = load_data(recipe.data, loaded[0].networks)
    images, _ = _real_images(data, real_subset(len(data), n, seed))
    out = []
    for run in loaded:
        discriminator = run.networks.discriminator
        with evaluating(discriminator):
            logits = _q_outputs(lambda x: discriminator(x)[1], images, batch_size, device).cat_logits
        out.append({code.name: real_code_mi(value) for code, value in zip(recipe.codes.categorical, logits)})
    return out, len(images)


def select_runs(
    paths: Sequence[str | Path],
    protocol: PaperProtocol = PaperProtocol(),
    real: int = 10000,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Selection:
    """Rank the runs in ``paths`` (run folders or checkpoint files in them) by ModelCentrality with the
    ``protocol``'s group count and sizes, and (categorical codes, ``real > 0``) by MI real on ``real``
    images of their data set. Bad inputs raise :class:`UserError`."""
    if len(paths) < 2:
        raise UserError(f"select needs at least two run folders to compare, got {len(paths)}")
    runs = [RunDir.of(path) for path in paths]
    recipes = [run.read_recipe() for run in runs]
    _same_runs(runs, recipes)
    loaded = [load_run(path, device=device) for path in paths]
    spec = recipes[0].codes
    for run in loaded:  # Q and G are read in eval mode: their BatchNorm statistics as the weights are now (batchnorm.py)
        recalibrate(run.networks.generator, run.networks.discriminator, spec, batch_size=batch_size, seed=seed + 1)
    if not spec.codes:
        raise UserError(f"{runs[0].recipe_file}: codes {spec} has no codes to compare runs by")
    centrality = model_centrality(
        [_generate(run, seed + j, batch_size, device) for j, run in enumerate(loaded)],
        [_read(run, batch_size, device) for run in loaded],
        lambda n, generator: spec_codes(spec, n, generator),
        protocol,
        seed,
    )
    real_mi, real_images = _real_mi(loaded, real, seed, batch_size, device) if spec.categorical and real > 0 else (None, 0)
    scores = [
        RunScore(str(run.run.path), run.step, centrality.centrality[i], real_mi[i] if real_mi else None)
        for i, run in enumerate(loaded)
    ]
    best = max(range(len(scores)), key=lambda i: sum(real_mi[i].values())) if real_mi else None
    return Selection(scores, centrality, centrality.pick, best, protocol, real_images)
