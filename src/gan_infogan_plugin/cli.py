"""``gan-recipes``: list, show and run training recipes (typer + rich).

Every command runs inside :func:`user_errors`: a :class:`UserError` (or a registry LookupError)
prints ``error: <message>`` on one line and exits with status 2 (130 for an interrupted run);
``gan-recipes --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import registry
from .errors import UserError
from .recipes import available_recipes, load_recipe, override

HELP = """Train InfoGAN (and plain GAN) recipes with Lightning Fabric.

[bold]Examples[/bold]

  gan-recipes list                                   [dim]# recipes, models, data sets[/dim]
  gan-recipes show infogan-mnist                     [dim]# the resolved recipe as TOML[/dim]
  gan-recipes run infogan-shapes                     [dim]# train on procedural shapes, no download[/dim]
  gan-recipes run infogan-mnist --set optim.g.lr=5e-4 --max-steps 2000
  gan-recipes run my-recipe.toml --out runs/try1     [dim]# your own recipe file[/dim]
  gan-recipes run infogan-mnist --resume --out runs/try1
  gan-recipes run infogan-svhn --accelerator gpu --devices 4 --strategy ddp --precision bf16-mixed
"""

app = typer.Typer(
    name="gan-recipes",
    help=HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
_options = {"debug": False}


@app.callback()
def _global(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of errors.")) -> None:
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
    with user_errors():
        table = Table(title="gan-recipes registry")
        for column in ("name", "kind", "distribution", "description"):
            table.add_column(column, no_wrap=column != "description")
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
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print the fully resolved recipe (defaults filled in, --set applied) as TOML."""
    with user_errors():
        typer.echo(load_recipe(recipe, set_).to_toml(), nl=False)


@app.command()
def run(
    recipe: str = typer.Argument(..., help="A registered recipe name or a path to a .toml file."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/<recipe>/<YYYYmmdd-HHMMSS>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out (default: this recipe's newest run)."),
    force: bool = typer.Option(False, "--force", help="Replace the run already in --out."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Sets trainer.max_steps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sets trainer.seed."),
    accelerator: Optional[str] = typer.Option(None, "--accelerator", help="cpu, gpu, mps or auto (trainer.accelerator)."),
    devices: Optional[int] = typer.Option(None, "--devices", help="Devices (processes) per node (trainer.devices)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="auto, ddp, ... (trainer.strategy)."),
    num_nodes: Optional[int] = typer.Option(None, "--num-nodes", help="Machines (trainer.num_nodes)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="32-true, bf16-mixed, 16-mixed (trainer.precision)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Train a recipe: metrics, sample grids, checkpoints and the generator go to the run folder.

    Ctrl-C or SIGTERM saves a checkpoint and exits; --resume continues from it.
    """
    from .train import train  # torch and Fabric load only for commands that need them

    with user_errors():
        options = {"max_steps": max_steps, "seed": seed, "accelerator": accelerator, "devices": devices,
                   "strategy": strategy, "num_nodes": num_nodes, "precision": precision}
        cli_sets = [override(f"trainer.{key}", value) for key, value in options.items() if value is not None]
        train(load_recipe(recipe, [*set_, *cli_sets]), out=out, resume=resume, force=force, progress=progress)


def main() -> None:
    """The ``gan-recipes`` console entry point."""
    app()
