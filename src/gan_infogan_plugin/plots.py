"""metrics.png: a run's metrics.csv over steps, drawn with matplotlib (the optional ``[plot]`` extra).

Panels (each only when the run logged its columns)::

    losses        loss/d and loss/g
    codes (nats)  the MI bound per code on the training batch (mi/<code>, a line), on generated and on
                  real images at the eval steps (eval/mi/<code> o, eval/real_mi/<code> x), the invariance
                  term's IIC on pairs of real images (iic/<code>, a faint line), and H(c) (dotted: the
                  ceiling of them all, read from the run's recipe.toml)
    eval scores   the scores in [0, 1]: eval/accuracy, nmi, ari per code, eval/mig, eval/factorvae and the
                  InfoGAN-CR paper's eval/paper/mig, eval/paper/factorvae (not eval/real_images, a count)

Several runs share the panels (the seeds of a sweep): a colour per curve, a line style per run.
"""

from __future__ import annotations

import csv
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .codes import LatentCodeSpec
from .errors import UserError, one_line
from .runs import RunDir, atomic_file

INSTALL_HINT = "pip install 'gan-infogan-plugin[plot]' (or pip install matplotlib)"
SCORES = ("accuracy", "nmi", "ari")  # eval/<score>/<code>, in [0, 1]
RUN_SCORES = ("mig", "factorvae")  # eval/<score> and eval/paper/<score>, in [0, 1]
CODE_SERIES = {"mi/": None, "iic/": None, "eval/mi/": "o", "eval/real_mi/": "x"}  # column prefix -> marker (None: a line)
FAINT = ("iic/",)  # drawn thinner and lighter than the training bound
RUN_STYLES = ("-", "--", ":", "-.")


@dataclass
class RunMetrics:
    """One run's logged columns: ``series[column] = (steps, values)``; ``entropy[code]`` = H(c) in nats."""

    name: str
    series: dict[str, tuple[list[int], list[float]]]
    entropy: dict[str, float]


def read_metrics(run_dir: Path) -> RunMetrics:
    """Read ``run_dir``/metrics.csv (cells left empty or cut short are skipped) and H(c) from its recipe.toml."""
    run = RunDir(run_dir)
    path = run.metrics_file
    if not path.is_file():
        raise UserError(f"{path}: no such file (give a run folder written by gan-recipes run)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read it as CSV ({one_line(exc)})") from None
    if not rows or "step" not in rows[0]:
        raise UserError(f"{path}: expected a header with a 'step' column and at least one row")
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        try:
            step = int(float(row["step"]))
        except (TypeError, ValueError):
            continue
        for column, text in row.items():
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue
            if column and column != "step" and math.isfinite(value):
                steps, values = series.setdefault(column, ([], []))
                steps.append(step)
                values.append(value)
    return RunMetrics(run.path.name or str(run.path), series, _entropies(run.recipe_file))


def _entropies(recipe: Path) -> dict[str, float]:
    """H(c) per code from the recipe's ``codes``; none when the recipe is missing or unreadable (no dotted lines)."""
    try:
        codes = tomllib.loads(recipe.read_text(encoding="utf-8"))["codes"]
        spec = LatentCodeSpec.parse(codes) if isinstance(codes, str) else LatentCodeSpec.from_dict(codes)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, ValueError):
        return {}
    return {code.name: code.entropy for code in spec.codes}


def is_score(column: str) -> bool:
    """Whether a metrics column is a score in [0, 1] (the "eval scores" panel): eval/<accuracy|nmi|ari>/<code>,
    eval/<mig|factorvae> or eval/paper/<mig|factorvae>."""
    parts = column.split("/")
    if parts[0] != "eval" or len(parts) < 2:
        return False
    return (len(parts) == 3 and parts[1] in SCORES) or (parts[-1] in RUN_SCORES and parts[1:-1] in ([], ["paper"]))


def default_target(run_dirs: list[Path]) -> Path:
    """RUN/metrics.png for one run; metrics.png in the runs' common folder for several."""
    if len(run_dirs) == 1:
        return RunDir(run_dirs[0]).plot_file
    return RunDir(Path(os.path.commonpath([p.resolve() for p in run_dirs]))).plot_file


def plot_runs(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Draw the runs' metrics into one PNG (``out``, or :func:`default_target`), replacing it; returns its path."""
    if not run_dirs:
        raise UserError("give at least one run folder")
    if out is not None and out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: expected a .png file name")
    try:
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise UserError(f"plots need matplotlib, which is not installed: {INSTALL_HINT}") from None
    runs = [read_metrics(path) for path in run_dirs]
    target = out or default_target(run_dirs)
    columns = {column for run in runs for column in run.series}
    codes = sorted({c[len(prefix):] for c in columns for prefix in CODE_SERIES if c.startswith(prefix)})
    scores = sorted(c for c in columns if is_score(c))
    panels = [name for name, present in (("losses", {"loss/d", "loss/g"} & columns), ("codes", codes),
                                         ("scores", scores)) if present]
    if not panels:
        raise UserError(f"{', '.join(str(RunDir(p).metrics_file) for p in run_dirs)}: no loss, MI or eval columns to plot")

    figure = Figure(figsize=(5.2 * len(panels), 4.2), layout="constrained")
    axes = dict(zip(panels, figure.subplots(1, len(panels), squeeze=False)[0]))
    colours = {name: f"C{i % 10}" for i, name in enumerate([*("loss/d", "loss/g"), *codes, *scores])}
    for r, run in enumerate(runs):
        style = RUN_STYLES[r % len(RUN_STYLES)]
        for column, (steps, values) in sorted(run.series.items()):
            if "losses" in axes and column in ("loss/d", "loss/g"):
                axes["losses"].plot(steps, values, style, color=colours[column], lw=1.2)
            elif "scores" in axes and column in scores:
                axes["scores"].plot(steps, values, style, marker=".", color=colours[column], lw=1.2)
            else:
                for prefix, marker in CODE_SERIES.items():
                    if column.startswith(prefix):
                        faint = prefix in FAINT
                        axes["codes"].plot(steps, values, color=colours[column[len(prefix):]], lw=0.8 if faint else 1.2,
                                           alpha=0.45 if faint else 1.0, marker=marker, ms=4, ls=style if marker is None else "none")
    if "losses" in axes:
        axes["losses"].set(title="losses", xlabel="step")
        axes["losses"].legend([Line2D([], [], color=colours[c]) for c in ("loss/d", "loss/g")], ["D", "G"], fontsize=8)
    if "codes" in axes:
        ax = axes["codes"]
        entropy = {code: h for run in runs for code, h in run.entropy.items() if code in codes}
        for code, h in entropy.items():
            ax.axhline(h, color=colours[code], ls=(0, (1, 2)), lw=1)
        ax.set(title="MI bound per code (nats); dotted: H(c)", xlabel="step")
        handles = [Line2D([], [], color=colours[c]) for c in codes]
        handles += [Line2D([], [], color="grey", ls="-"), Line2D([], [], color="grey", marker="o", ls="none"),
                    Line2D([], [], color="grey", marker="x", ls="none")]
        labels = [*codes, "training batch", "eval: generated", "eval: real images"]
        if any(c.startswith(FAINT) for c in columns):
            handles.append(Line2D([], [], color="grey", lw=0.8, alpha=0.45))
            labels.append("IIC, real image pairs")
        ax.legend(handles, labels, fontsize=8)
    if "scores" in axes:
        axes["scores"].set(title="eval scores", xlabel="step", ylim=(-0.02, 1.02))
        axes["scores"].legend([Line2D([], [], color=colours[c], marker=".") for c in scores],
                              [c[len("eval/"):] for c in scores], fontsize=8)
    if len(runs) > 1:
        figure.legend([Line2D([], [], color="black", ls=RUN_STYLES[r % len(RUN_STYLES)]) for r in range(len(runs))],
                      [run.name for run in runs], loc="outside lower center", ncols=min(len(runs), 6), fontsize=8)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return target


def plot_after_run(run_dir: Path) -> str:
    """For the end of a training run: draw RUN/metrics.png, or say why not and how; never raises a UserError."""
    try:
        return f"plot: {plot_runs([run_dir])}"
    except UserError as exc:
        return f"no {RunDir(run_dir).plot_file.name}: {exc}; then: gan-recipes plot {run_dir}"
