"""Shared test settings and helpers: tiny infogan-shapes runs through the CLI, and its one-line errors.

Test modules import these names (``from conftest import run_shapes``); pytest puts this folder on
the import path.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from typer.testing import CliRunner

from gan_infogan_plugin.cli import app

# 28x28 shapes on the MNIST nets, batch 8: a few steps take seconds. Each test module adds its schedule.
# One generated batch (not 16) sets BatchNorm's statistics at the end: the same code, a sixteenth of the time.
TINY = ["data.options.count=64", "trainer.batch_size=8", "trainer.bn_batches=1"]


def sets(*options: str) -> list[str]:
    """``--set`` arguments for TINY and then ``options``."""
    return [arg for option in (*TINY, *options) for arg in ("--set", option)]


def gan_recipes(*args: object):
    """``gan-recipes ARGS`` in this process; the result has ``exit_code``, ``output`` and ``stderr``."""
    return CliRunner().invoke(app, [str(a) for a in args])


def run_shapes(out: Path, steps: int, *options: str, flags: tuple[str, ...] = ()):
    """``gan-recipes run infogan-shapes`` for ``steps`` steps into ``out``, with TINY, ``options`` and ``flags``."""
    return gan_recipes("run", "infogan-shapes", "--max-steps", steps, "--out", out, "--no-progress", *flags, *sets(*options))


def tiny_run(tmp_path_factory, steps: int, *options: str) -> Path:
    """A finished infogan-shapes run of ``steps`` steps (for a module-scoped fixture), on one thread."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "shapes"
    result = run_shapes(out, steps, *options)
    assert result.exit_code == 0, result.output
    return out


def assert_user_error(result, *fragments: str) -> str:
    """Exit 2 and one ``error:`` line (the last on stderr) holding every fragment; the CLI caught it, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # any other exception would be a bug
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def logged_steps(run_dir: Path) -> list[int]:
    """The step of every row of the run's metrics.csv, in order."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def saved_generator(path: Path, spec: str, step: int = 0, seed: int = 0) -> Path:
    """A generator of the MNIST nets for ``spec`` saved at ``path`` (save_generator), with PyTorch's
    default initialisation rather than N(0, 0.02): its 28x28 images differ visibly from code to code."""
    from gan_infogan_plugin import LatentCodeSpec, registry
    from gan_infogan_plugin.export import save_generator

    codes = LatentCodeSpec.parse(spec)
    torch.manual_seed(seed)
    generator = registry.load("models", "mnist").generator(codes.input_dim, 1).eval()
    return save_generator(path, generator, codes, "mnist", {"channels": 1}, step=step)


class HostReads(TorchDispatchMode):
    """Counts the host reads of a tensor's value (``.item()``, ``bool()``, ``int()``: aten's
    ``_local_scalar_dense``) made inside ``with HostReads() as reads:``, in ``reads.count``. On a GPU
    each is a device sync."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))
