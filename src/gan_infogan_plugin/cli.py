"""``gan-recipes``: list, show and run training recipes, sample trained generators, evaluate runs and pick the
best of several (typer + rich).

Every command runs inside :func:`user_errors`: a :class:`UserError` (or a registry LookupError)
prints ``error: <message>`` on one line and exits with status 2 (130 for an interrupted run);
``gan-recipes --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import math
import os
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import registry
from .errors import UserError

if TYPE_CHECKING:
    from .evaluate import RunEvaluation
    from .metrics import Overlap

HELP = """Train InfoGAN (and plain GAN) recipes with Lightning Fabric.

[bold]Examples[/bold] (a recipe is a registered name or a .toml file)

  [dim]# recipes, models and data sets; one recipe, resolved, as TOML[/dim]
  gan-recipes list
  gan-recipes show infogan-mnist --set optim.g.lr=5e-4

  [dim]# train on procedural shapes (no download); then MNIST with changes[/dim]
  gan-recipes run infogan-shapes
  gan-recipes run infogan-mnist --set optim.g.lr=5e-4 --max-steps 2000
  gan-recipes run my-recipe.toml --out runs/try1
  gan-recipes run infogan-mnist --resume --out runs/try1

  [dim]# several processes or GPUs[/dim]
  gan-recipes run infogan-shapes --accelerator cpu --devices 2 --strategy ddp
  gan-recipes run infogan-svhn --accelerator gpu --devices 4 --strategy ddp
      --precision bf16-mixed

  [dim]# use a trained generator; score a run[/dim]
  gan-recipes sample runs/try1/generator.safetensors --out c1.png --traverse c1
  gan-recipes eval runs/try1 --data split=test
  gan-recipes export runs/try1    [dim]# a stopped run's generator[/dim]
  gan-recipes select runs/seed-0 runs/seed-1 runs/seed-2

  [dim]# a recipe over seeds: trained, evaluated and ranked; run it again to resume[/dim]
  gan-recipes sweep infogan-shapes --seeds 0-4 --jobs 2
"""

app = typer.Typer(
    name="gan-recipes",
    help=HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # ":x:" in a message stays text
_options = {"debug": False}
# A flag takes no value; without an empty metavar typer's help shows it as "--force <bool>".
FLAG = ""


@app.callback()
def _global(debug: bool = typer.Option(False, "--debug", metavar=FLAG, help="Show the full traceback of errors.")) -> None:
    _options["debug"] = debug


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a UserError / LookupError into ``error: <message>`` and a non-zero exit (unless --debug)."""
    try:
        yield
    except (UserError, LookupError) as exc:
        if _options["debug"]:
            raise
        message = str(exc).strip().strip("'\"") if isinstance(exc, LookupError) else str(exc)
        err_console.print(f"[bold red]error:[/bold red] {escape(message)}")
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None


SET_HELP = "Override a recipe key: --set optim.g.lr=5e-4 (a TOML value; repeat for more keys)."


@app.command("list")
def list_command() -> None:
    """List the recipes and the registered models, data sets and components, with the package providing each."""
    from .recipes import available_recipes  # here, not at the top: --help and list load no torch

    with user_errors():
        table = Table(title="gan-recipes registry")
        for column in ("name", "kind", "distribution", "description"):
            table.add_column(column, no_wrap=column != "description", overflow="fold")
        for source in available_recipes().values():
            try:
                description = tomllib.loads(source.read()).get("description", "")
            except (OSError, tomllib.TOMLDecodeError) as exc:
                description = f"(unreadable: {exc})"
            table.add_row(source.name, "recipe", source.distribution, str(description))
        for kind in ("models", "datasets", "components"):
            for name, entry in sorted(registry.entries(kind).items()):
                table.add_row(name, kind[:-1].replace("dataset", "data set"), entry.distribution, entry.entry_point.value)
        Console().print(table)


@app.command()
def show(
    recipe: str = typer.Argument(..., help="A registered recipe name or a path to a .toml file."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Print the fully resolved recipe (defaults filled in, --set applied) as TOML."""
    from .recipes import load_recipe

    with user_errors():
        typer.echo(load_recipe(recipe, set_).to_toml(), nl=False)


@app.command()
def run(
    recipe: str = typer.Argument(..., help="A registered recipe name or a path to a .toml file."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/<recipe>/<YYYYmmdd-HHMMSS>)."),
    resume: bool = typer.Option(False, "--resume", metavar=FLAG, help="Continue the run in --out (default: this recipe's newest run)."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Replace the run already in --out."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Sets trainer.max_steps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sets trainer.seed."),
    accelerator: Optional[str] = typer.Option(None, "--accelerator", help="cpu, gpu, mps or auto (trainer.accelerator)."),
    devices: Optional[int] = typer.Option(None, "--devices", help="Devices (processes) per node (trainer.devices)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="auto, ddp, ... (trainer.strategy)."),
    num_nodes: Optional[int] = typer.Option(None, "--num-nodes", help="Machines (trainer.num_nodes)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="32-true, bf16-mixed, 16-mixed (trainer.precision)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", metavar=FLAG, help="Show progress: a bar on a terminal, else a line every trainer.log_every steps."),
) -> None:
    """Train a recipe: metrics, sample grids, checkpoints and the generator go to the run folder.

    Ctrl-C or SIGTERM saves a checkpoint and exits; --resume continues from it.
    """
    from .recipes import load_recipe
    from .train import train  # torch and Lightning Fabric load only for the commands that use them

    with user_errors():
        options = {"max_steps": max_steps, "seed": seed, "accelerator": accelerator, "devices": devices,
                   "strategy": strategy, "num_nodes": num_nodes, "precision": precision}
        # Each flag sets the trainer key of its name; a bad value is reported as the flag typed (--max-steps -1).
        flags = {f"trainer.{key}": (f"--{key.replace('_', '-')} {value}", value) for key, value in options.items() if value is not None}
        train(load_recipe(recipe, set_, flags), out=out, resume=resume, force=force, progress=progress)


# --------------------------------------------------------------------------- sample and eval
def _parse_fix(text: str) -> dict[str, float]:
    """``c1=3,c2=0.5`` -> {"c1": 3.0, "c2": 0.5}."""
    fixed: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            fixed[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UserError(f"--fix {text}: expected CODE=VALUE pairs separated by commas, like c1=3,c2=0.5; got {part!r}")
        if not math.isfinite(fixed[name.strip()]):
            raise UserError(f"--fix {text}: code {name.strip()} needs a finite number, got {value.strip()}")
    return fixed


# sample: at most this many images in one grid (100 x 100), drawn in one batch.
MAX_SAMPLES = 10_000


def _device(text: str):
    """``--device`` as a torch.device this machine has; a UserError otherwise."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserError(f"--device {text}: expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        found = f"{torch.cuda.device_count()} CUDA GPUs" if torch.cuda.is_available() else "no CUDA GPU"
        raise UserError(f"--device {text}: this machine has {found}; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {text}: MPS is not available on this machine; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {text}: expected cpu, cuda, cuda:N or mps")
    return device


def _fresh(paths: list[Path], force: bool) -> None:
    """Refuse to overwrite existing files unless --force."""
    taken = [str(p) for p in paths if p.exists()]
    if taken and not force:
        raise UserError(f"{', '.join(taken)} already exists: pass --force to overwrite, or choose another path")


@app.command()
def sample(
    weights: Path = typer.Argument(..., help="A generator file, or a finished run's folder (its generator.safetensors)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The PNG to write (with --traverse all: one FILE-<code>.png per code)."),
    traverse: Optional[str] = typer.Option(None, "--traverse", help="A code to vary (rows = its values, columns = noise), or all."),
    gif: Optional[Path] = typer.Option(None, "--gif", help="With --traverse CODE: the traversal as an animated GIF (the code sweeps, columns = noise)."),
    fix: Optional[str] = typer.Option(None, "--fix", help="Codes held at a value in plain samples: c1=3,c2=0.5."),
    n: Optional[int] = typer.Option(None, "--n", help=f"Images (default 64, at most {MAX_SAMPLES}), or noise columns of a traversal (default 8)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise and of the codes not given."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Overwrite existing PNG files."),
) -> None:
    """Draw images from a trained generator: plain samples, or Figure 2 style traversals of its codes."""
    from .export import load_generator
    from .images import save_grid
    from .runs import generator_file_of, writing_into

    with user_errors():
        weights = generator_file_of(weights)
        if gif is not None:
            return _sample_gif(weights, gif, out, traverse, n, seed, device, force)
        if out is None:
            raise UserError("give --out FILE.png (or --gif FILE.gif with --traverse CODE)")
        if out.suffix.lower() != ".png":
            raise UserError(f"--out {out}: expected a .png file name")
        if traverse is not None and fix is not None:
            raise UserError("--fix applies to plain samples; a traversal varies one code and draws the others per column")
        if n is not None and not 1 <= n <= MAX_SAMPLES:
            raise UserError(f"--n {n}: expected from 1 to {MAX_SAMPLES} images")
        fixed = _parse_fix(fix) if fix is not None else None
        loaded = load_generator(weights, device=_device(device))
        spec = loaded.spec
        if traverse is None:
            _fresh([out], force)
            with writing_into(out, "gan-recipes sample"):
                try:
                    images = loaded.generate(n or 64, fixed=fixed, seed=seed)
                except ValueError as exc:
                    raise UserError(f"--fix: {exc}") from None
                save_grid(images, out, nrow=math.ceil(math.sqrt(len(images))))
            typer.echo(out)
            return
        if traverse != "all" and traverse not in spec.names:
            raise UserError(f"--traverse {traverse}: {weights} has codes {', '.join(spec.names) or 'none'} (or give all)")
        codes = spec.names if traverse == "all" else (traverse,)
        if not codes:
            raise UserError(f"--traverse all: {weights} has no codes (spec {spec})")
        rows = max(getattr(spec.code(code), "num_classes", 9) for code in codes)  # a continuous code takes 9 values
        if rows * (n or 8) > MAX_SAMPLES:
            raise UserError(f"--n {n}: a traversal of {rows} values by {n} noise columns exceeds {MAX_SAMPLES} images; "
                            f"use --n {MAX_SAMPLES // rows} or fewer")
        targets = [out.with_name(f"{out.stem}-{code}{out.suffix}") for code in codes] if traverse == "all" else [out]
        _fresh(targets, force)
        with writing_into(out, "gan-recipes sample"):
            for code, target in zip(codes, targets):
                save_grid(loaded.traverse(code, n or 8, seed), target, nrow=n or 8)
                typer.echo(target)


def _overlap_text(overlap: Overlap) -> str:
    """``; classes 4+9 share value 3; value 6 holds no class of its own (mostly 1); value 2 mixes 4 58%,
    9 41%``, or "" for a clean code."""
    parts = [f"classes {'+'.join(map(str, classes))} share value {value}" for value, classes in overlap.merged.items()]
    parts += [f"value {value} holds no class of its own (mostly {cls})" for value, cls in overlap.spare.items()]
    parts += [f"value {value} is never predicted" for value in overlap.unused]
    parts += [f"value {value} mixes " + ", ".join(f"{cls} {share:.0%}" for cls, share in shares)
              for value, shares in overlap.mixed.items() if value not in overlap.merged]
    return "".join(f"; {part}" for part in parts)


def _eval_tables(result: RunEvaluation) -> list[Table]:
    """The codes (MI on generated images; Q's MI on real images; accuracy, NMI, ARI on real labels)
    and MIG / FactorVAE under disentanglement_lib's protocol and the InfoGAN-CR paper's."""
    scores = result.scores
    real = scores.categorical.codes if scores.categorical else {}
    real_mi = scores.real_mi or {}
    codes = Table(title=f"step {result.step}: {result.run}")
    for column in ("code", "H(c)", "MI bound", "Q on G(z,c)", "MI real", "real acc", "NMI", "ARI"):
        codes.add_column(column, justify="left" if column == "code" else "right")
    mappings = []
    for name, mi in scores.mi.items():
        quality = f"acc {mi.accuracy:.3f}" if mi.accuracy is not None else f"mse {mi.mse:.3f}"
        row = [name, f"{mi.entropy:.3f}", f"{mi.mi:.3f}", quality, f"{real_mi[name]:.3f}" if name in real_mi else ""]
        if name in real:
            score = real[name]
            mappings.append(f"{name}: " + " ".join(f"{k}->{v}" for k, v in sorted(score.mapping.items())) + _overlap_text(score.overlap))
            row += [f"{score.accuracy:.3f}", f"{score.nmi:.3f}", f"{score.ari:.3f}"]
        codes.add_row(*row)
    if scores.real_images:
        sample = scores.real_images
        drawn = "all" if sample.scored == sample.of else f"drawn at random (seed {sample.seed}) from {sample.of}"
        codes.caption = "\n".join([f"real images: {sample.scored} of {sample.data}, {drawn}; "
                                    "MI in nats; code value -> class", *mappings])
    tables = [codes]
    if scores.disentanglement:
        d = scores.disentanglement
        table = Table(title=f"disentanglement_lib's protocol, against the data's factors ({', '.join(d.factors)})")
        settings = result.scores.settings
        table.caption = (f"MIG: {settings.points} images, 20 bins; FactorVAE: majority vote learnt on {settings.votes} "
                         f"votes of {settings.vote_batch} images, scored on {max(1, settings.votes // 2)} fresh votes")
        table.add_column("score")
        table.add_column("value", justify="right")
        table.add_row("MIG", f"{d.mig.score:.3f}")
        for factor, gap in zip(d.factors, d.mig.gaps):
            table.add_row(f"  gap for {factor}", f"{gap:.3f}")
        table.add_row("FactorVAE (train votes)", f"{d.factorvae.train_accuracy:.3f}")
        table.add_row("FactorVAE (eval votes)", f"{d.factorvae.eval_accuracy:.3f}")
        tables.append(table)
    if scores.paper:
        paper, protocol = scores.paper.scores, scores.paper.protocol
        table = Table(title=f"InfoGAN-CR paper's protocol (Lin et al. 2020), against the data's factors ({', '.join(scores.paper.factors)})")
        table.caption = (f"MIG: {protocol.mig_points} images, {protocol.bins} bins; FactorVAE: {protocol.groups} groups "
                         f"of {protocol.group_size}, scored on the same votes; codes scaled on {protocol.scale_points} images")
        table.add_column("score")
        table.add_column("value", justify="right")
        table.add_row("MIG", f"{paper.mig.score:.3f}")
        for factor, gap in zip(scores.paper.factors, paper.mig.gaps):
            table.add_row(f"  gap for {factor}", f"{gap:.3f}")
        table.add_row("FactorVAE", f"{paper.factorvae.score:.3f}")
        table.add_row("FactorVAE (revised)", f"{paper.factorvae.revised:.3f}")
        tables.append(table)
    return tables


@app.command("eval")
def eval_command(
    run: Path = typer.Argument(..., help="A run folder, or a checkpoint file inside one."),
    data: list[str] = typer.Option([], "--data", metavar="KEY=VALUE", help="Set a key of the run's \\[data] table: --data split=test (repeatable)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Where to write the results (default RUN/eval/step-NNNNNNN.json)."),
    real: int = typer.Option(10000, "--real", min=0, help="Real images for Q's label-free MI and the categorical codes (0: none)."),
    generated: int = typer.Option(2048, "--generated", min=1, help="Generated images for Q's MI bound."),
    points: int = typer.Option(10000, "--points", min=2, help="Data with factors, disentanglement_lib's protocol: images for MIG and FactorVAE's variances."),
    votes: int = typer.Option(500, "--votes", min=2, help="Data with factors, disentanglement_lib's protocol: FactorVAE training votes (half as many eval votes)."),
    paper_groups: int = typer.Option(500, "--paper-groups", min=0, help="Data with factors, the InfoGAN-CR paper's protocol: FactorVAE groups (0: skip this protocol)."),
    paper_group_size: int = typer.Option(100, "--paper-group-size", min=2, help="The paper's protocol: images per FactorVAE group."),
    paper_points: int = typer.Option(73728, "--paper-points", min=2, help="The paper's protocol: images for MIG and for each code's scale."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Overwrite an existing JSON file."),
) -> None:
    """Score a run's codes: Q's MI bound per code against H(c), the categorical codes against the data's
    labels (Hungarian accuracy, NMI, ARI) and, for data with known factors (dsprites, shapes), MIG and the
    FactorVAE score under two protocols: disentanglement_lib's and the InfoGAN-CR paper's."""
    import json

    from .evaluate import EvalConfig, evaluate_run, load_run
    from .runs import atomic_file, writing_into

    with user_errors():
        device = _device(device)
        loaded = load_run(run, data, device)
        target = json_out or loaded.run.eval_file(loaded.step)
        _fresh([target], force)
        with writing_into(target, "gan-recipes eval"):  # before the evaluation: a folder that cannot be written fails now
            config = EvalConfig(generated=generated, real=real, points=points, votes=votes, seed=seed,
                                paper_groups=paper_groups, paper_group_size=paper_group_size, paper_points=paper_points)
            result = evaluate_run(loaded, config, device)
            console = Console()
            for table in _eval_tables(result):
                console.print(table)
            with atomic_file(target) as tmp:
                tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        console.print(f"results: {target}")


@app.command()
def export(
    run: Path = typer.Argument(..., help="A run folder (stopped, crashed or finished), or a checkpoint file inside one."),
    out: Optional[Path] = typer.Option(None, "--out", help="The file to write (default RUN/generator-step-NNNNNNN.safetensors)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps: where BatchNorm's statistics are recomputed."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Overwrite an existing file."),
) -> None:
    """Write a generator file from a run's last checkpoint, as the end of a run writes generator.safetensors:
    a run that was stopped or crashed (or one still training, with --out outside its folder, which it
    holds) can then be sampled, explored and loaded with load_generator. BatchNorm's statistics are
    first recomputed from generated images, as at the end of a run (trainer.bn_batches)."""
    from .evaluate import load_run
    from .export import save_run_generator
    from .networks import settle_batchnorm
    from .runs import writing_into

    with user_errors():
        loaded = load_run(run, device=_device(device), need_q=False)
        recipe, nets = loaded.recipe, loaded.networks
        target = out or loaded.run.exported_generator_file(loaded.step)
        if target.suffix != ".safetensors":
            raise UserError(f"--out {target}: expected a .safetensors file name")
        _fresh([target], force)
        with writing_into(target, "gan-recipes export"):
            settle_batchnorm(recipe, nets.generator, nets.discriminator)
            save_run_generator(target, nets.generator, recipe, nets.channels, loaded.step)
        typer.echo(f"step {loaded.step}: {target}")


@app.command("select")
def select_command(
    runs: list[Path] = typer.Argument(..., help="Two or more finished run folders of one code spec and data set."),
    groups: int = typer.Option(500, "--groups", min=1, help="FactorVAE groups each run's generator makes (the paper: 500)."),
    group_size: int = typer.Option(100, "--group-size", min=2, help="Images per group (the paper: 100)."),
    points: int = typer.Option(73728, "--points", min=2, help="Generated images for each code's scale (the paper: 73,728)."),
    real: int = typer.Option(10000, "--real", min=0, help="Categorical codes: real images for MI real (0: skip)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the ranking and the matrices to this JSON file."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Overwrite an existing JSON file."),
) -> None:
    """Pick the best of several runs without labels: rank them by ModelCentrality (InfoGAN-CR paper:
    every run's Q votes on every other run's generated FactorVAE groups; the most agreed-with run wins)
    and, for categorical codes, by MI real (Q's label-free MI on real images)."""
    import json

    from .protocols import PaperProtocol
    from .runs import atomic_file
    from .selection import select_runs

    with user_errors():
        if json_out is not None:
            _fresh([json_out], force)
        protocol = PaperProtocol(groups=groups, group_size=group_size, scale_points=points, mig_points=points)
        selection = select_runs(runs, protocol, real, seed, device=device)
        table = Table(title=f"ModelCentrality of {len(selection.runs)} runs")
        table.caption = (f"each run's Q on each run's {groups} groups of {group_size} generated images (codes scaled on "
                         f"{points}); centrality: mean agreement with the other runs")
        for column in ("rank", "run", "step", "ModelCentrality"):
            table.add_column(column, justify="left" if column == "run" else "right", overflow="fold")
        names = list(selection.runs[0].real_mi or {})
        for name in names:
            table.add_column(f"MI real {name}", justify="right")
        for rank, i in enumerate(selection.ranking(), 1):
            run = selection.runs[i]
            mark = " (pick)" if i == selection.pick else ""
            table.add_row(str(rank), escape(run.run) + mark, str(run.step), f"{run.centrality:.3f}",
                          *(f"{run.real_mi[name]:.3f}" for name in names))
        console = Console()
        console.print(table)
        if selection.pick is None:
            console.print(f"no pick by ModelCentrality: {selection.no_pick_reason()}")
        else:
            console.print(f"pick (ModelCentrality): {escape(selection.runs[selection.pick].run)}")
        if selection.best_real_mi is not None:
            console.print(f"highest MI real ({selection.real_images} real images): {escape(selection.runs[selection.best_real_mi].run)}")
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(json_out) as tmp:
                tmp.write_text(json.dumps(selection.to_json(), indent=2) + "\n", encoding="utf-8")
            console.print(f"results: {json_out}")


SWEEP_HELP = """Train a recipe over seeds, evaluate every run and rank them without labels.

Each seed S is an ordinary run folder DIR/seed-S, trained by [bold]gan-recipes run RECIPE --set trainer.seed=S[/bold]
in a process of its own (--jobs at once, the CPU cores split between them: each gets cores // jobs threads),
then scored by [bold]gan-recipes eval DIR/seed-S --json DIR/seed-S/eval.json[/bold]. The finished seeds are ranked as
[bold]gan-recipes select[/bold] ranks runs: ModelCentrality, and MI real for categorical codes.

[bold]Examples[/bold]

  [dim]# five seeds of MNIST, two at a time; the same command again resumes and skips what is done[/dim]
  gan-recipes sweep infogan-mnist --seeds 0-4 --jobs 2 --out runs/mnist-seeds
      --set 'data.root="../shared/data/mnist"' --set data.download=false

  [dim]# a few seeds, a shorter run, a lighter evaluation[/dim]
  gan-recipes sweep infogan-shapes --seeds 0,2,5-7 --set trainer.max_steps=500
      --eval "--paper-groups 0 --points 2000"

  [dim]# only evaluate and rank what exists (after a Slurm job array trained the seeds)[/dim]
  gan-recipes sweep infogan-mnist --seeds 0-9 --out runs/mnist-seeds --no-train

[bold]Written[/bold]: DIR/seed-S/ (a run folder, with eval.json and wall_seconds), DIR/seed-S.log (everything the
seed's commands printed), DIR/sweep.json (every seed's status, step, wall time, scores and the rank).
Ctrl-C or SIGTERM stops every seed with its checkpoint (exit 130); exit status 1 when a seed failed or is unfinished.
"""


@app.command(help=SWEEP_HELP)
def sweep(
    recipe: str = typer.Argument(..., help="A registered recipe name or a path to a .toml file."),
    seeds: str = typer.Option(..., "--seeds", help="Seeds: 0-9, or a list like 0,2,5-7."),
    jobs: Optional[int] = typer.Option(None, "--jobs", show_default="as many as the cores, one thread each",
                                       help="Seeds trained (or evaluated) at once; each gets cores // jobs CPU threads."),
    out: Optional[Path] = typer.Option(None, "--out", help="The sweep folder (default runs/<recipe>/sweep)."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP + " Applies to every seed."),
    train: bool = typer.Option(True, "--train/--no-train", metavar=FLAG, help="--no-train: train nothing; evaluate and rank the seeds already trained."),
    eval_options: str = typer.Option("", "--eval", metavar="OPTIONS", help="More options for each seed's gan-recipes eval, in one string: --eval \"--paper-groups 0\"."),
    device: str = typer.Option("cpu", "--device", help="Where eval and the rank run: cpu, cuda, cuda:1, mps."),
    real: int = typer.Option(10000, "--real", min=0, help="Categorical codes: real images for MI real, in eval and the rank (0: none)."),
    groups: int = typer.Option(500, "--groups", min=1, help="ModelCentrality: FactorVAE groups each seed's generator makes."),
    group_size: int = typer.Option(100, "--group-size", min=2, help="ModelCentrality: images per group."),
    points: int = typer.Option(73728, "--points", min=2, help="ModelCentrality: generated images for each code's scale."),
) -> None:
    from .sweep import RankOptions, SweepPlan, run_sweep, summary_table

    with user_errors():
        _device(device)
        rank = RankOptions(groups=groups, group_size=group_size, points=points, real=real, device=device)
        plan = SweepPlan.make(recipe, seeds, out, set_, jobs, train, eval_options, rank)
        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = 200  # a log file gets the whole table, not cells cut to 80 columns
        result = run_sweep(plan, console)
        console.print(summary_table(result))
        unfinished = [s.seed for s in result.seeds if s.status not in ("finished", "skipped")]
        if unfinished:
            err_console.print(f"seeds not finished: {', '.join(map(str, unfinished))}; their logs: {escape(str(plan.out))}/seed-S.log")
            raise typer.Exit(1)


def _sample_gif(weights: Path, gif: Path, out: Optional[Path], traverse: Optional[str], n: Optional[int],
                seed: int, device: str, force: bool) -> None:
    """``sample --traverse CODE --gif FILE.gif``: one row of ``n`` images (default 8) while CODE sweeps its values."""
    from .export import load_generator
    from .images import traversal_gif
    from .runs import atomic_file, writing_into

    if gif.suffix.lower() != ".gif":
        raise UserError(f"--gif {gif}: expected a .gif file name")
    if out is not None or traverse in (None, "all"):
        raise UserError("--gif takes --traverse CODE (one code) and no --out")
    if n is not None and not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"--n {n}: expected from 1 to {MAX_SAMPLES} images")
    loaded = load_generator(weights, device=_device(device))
    if traverse not in loaded.spec.names:
        raise UserError(f"--traverse {traverse}: {weights} has codes {', '.join(loaded.spec.names) or 'none'}")
    _fresh([gif], force)
    with writing_into(gif, "gan-recipes sample"):
        animation = traversal_gif(loaded.generator, loaded.spec, traverse, n or 8, seed)
        with atomic_file(gif) as tmp:
            tmp.write_bytes(animation)
    typer.echo(gif)


@app.command()
def explore(
    runs: list[Path] = typer.Argument(..., help="Run folders or generator.safetensors files (several: a selector switches)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="The port (default: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (default: this machine only)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps."),
) -> None:
    """Turn the codes in the browser: a local page with a slider per continuous code, a button per class of
    each categorical code, the noise seed, and each code's traversal. Ctrl-C stops it."""
    from .explore import serve

    with user_errors():
        serve(runs, host, port, device)


@app.command()
def plot(
    runs: list[Path] = typer.Argument(..., help="Run folders (several are overlaid: the seeds of a sweep)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The PNG (default RUN/metrics.png; several runs: metrics.png in their common folder)."),
) -> None:
    """Plot metrics.csv: the two losses, the MI bound per code against H(c), and the eval scores over steps.

    Needs matplotlib (the package's plot extra, or pip install matplotlib). The PNG is replaced if it exists."""
    from .plots import plot_runs

    with user_errors():
        typer.echo(plot_runs(runs, out))


def main() -> None:
    """The ``gan-recipes`` console entry point."""
    app()
