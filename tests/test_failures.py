"""Nothing lost: kill -9 while checkpointing, bad input through the CLI (one line, exit 2, files untouched),
--devices beyond the machine, errors from DataLoader workers, and checkpoints that would run code."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gan_infogan_plugin.cli import app
from gan_infogan_plugin.export import load_generator

GAN_RECIPES = shutil.which("gan-recipes") or "gan-recipes"
# 28x28 shapes on the MNIST nets, batch 8; every step is logged and checkpointed.
TINY = ["data.options.count=256", "trainer.batch_size=8", "trainer.checkpoint_every=1", "trainer.log_every=1",
        "trainer.sample_every=0", "trainer.sample_noise=2"]


def sets(*options: str) -> list[str]:
    return [arg for option in (*TINY, *options) for arg in ("--set", option)]


def start_run(out: Path, steps: int, *flags: str) -> subprocess.Popen:
    cmd = [GAN_RECIPES, "run", "infogan-shapes", "--max-steps", str(steps), "--out", str(out), "--no-progress", *flags, *sets()]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll ``condition()`` every 2 ms until it holds; fail if the run ends or the timeout passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before the moment to kill it: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the moment to kill the run")
        time.sleep(0.002)


def checkpoint_step(run_dir: Path) -> int:
    """The step of the run's last checkpoint, loaded as a resume would (weights only)."""
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert {"generator", "discriminator", "optimizer_g", "optimizer_d", "step", "rng"} <= state.keys()
    return int(state["step"])


def logged_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


# When to kill: once the checkpoint's temporary file appears (mid write), once the new checkpoint has
# been renamed into place (the next step starting), or 50 ms after that (mid step).
MOMENTS = {"while writing the checkpoint": (True, 0.0), "just after the rename": (False, 0.0), "mid step": (False, 0.05)}


def test_kill_9_leaves_a_checkpoint_that_resumes(tmp_path):
    """kill -9 at each moment in turn (one process each, resuming the last); each time the last
    checkpoint loads, and --resume finishes the run with every step logged exactly once (about 20 s)."""
    torch.set_num_threads(1)
    out = tmp_path / "run"
    ckpt, partial = out / "checkpoints" / "last.ckpt", out / "checkpoints" / ".last.ckpt.tmp"

    def inode() -> int | None:
        try:
            return ckpt.stat().st_ino
        except FileNotFoundError:
            return None

    last = 0
    for i, moment in enumerate(MOMENTS):
        proc = start_run(out, 10_000, *(("--resume",) if i else ()))
        if i == 0:
            wait_for(lambda: inode() is not None, proc)  # a first checkpoint, so there is something to resume
        before = inode()
        mid_write, delay = MOMENTS[moment]
        wait_for(partial.exists if mid_write else lambda: inode() not in (None, before), proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, moment
        step = checkpoint_step(out)
        assert step >= max(last, 1), moment
        last = step

    result = CliRunner().invoke(app, ["run", "infogan-shapes", "--max-steps", str(last + 1), "--out", str(out),
                                      "--no-progress", "--resume", *sets()])
    assert result.exit_code == 0, result.output
    assert f"resuming at step {last}" in result.output
    assert not partial.exists() and not list(out.glob(".*.tmp"))
    assert checkpoint_step(out) == last + 1 and load_generator(out / "generator.safetensors").step == last + 1
    assert logged_steps(out) == list(range(1, last + 2))  # every step logged once: none lost to a kill
