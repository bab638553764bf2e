"""`gan-recipes run` end to end on tiny settings: the run folder, resume, refusals, failures, DDP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import TINY, gan_recipes, logged_steps, run_shapes as run_tiny, sets, tiny_run
from PIL import Image

from gan_infogan_plugin.export import load_generator
from gan_infogan_plugin.images import save_grid

EVERY_2 = ["trainer.log_every=2", "trainer.sample_every=2", "trainer.checkpoint_every=2", "trainer.sample_noise=4"]
CODES = ("c1", "c2", "c3", "c4", "c5")  # infogan-shapes: cat:3, then four continuous codes


def run_shapes(out: Path, steps: int, *extra: str, flags: tuple[str, ...] = ()):
    """A tiny run logging, sampling (4 noise columns) and checkpointing every 2 steps."""
    return run_tiny(out, steps, *EVERY_2, *extra, flags=flags)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory) -> Path:
    """A 4-step infogan-shapes run (samples and checkpoints every 2 steps)."""
    return tiny_run(tmp_path_factory, 4, *EVERY_2)


def test_run_folder_holds_metrics_grids_checkpoint_and_generator(shapes_run):
    assert {p.name for p in shapes_run.iterdir()} - {"metrics.png"} == {  # metrics.png: when matplotlib is installed
        "recipe.toml", "metrics.csv", "samples", "checkpoints", "generator.safetensors"
    }
    assert logged_steps(shapes_run) == [2, 4]
    header = (shapes_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss/d", "loss/g", "mi", "mi/c1", "acc/c1", "mse/c2", "images_per_s", "steps_per_s"} <= set(header)
    for step in (2, 4):
        for code in CODES:
            with Image.open(shapes_run / "samples" / f"step-{step:07d}-{code}.png") as png:
                png.load()
                rows = 3 if code == "c1" else 9  # categorical: every class; continuous: 9 values in [-2, 2]
                assert png.size == (4 * 30 + 2, rows * 30 + 2)  # 28 px images, 2 px gaps
    assert (shapes_run / "checkpoints" / "last.ckpt").is_file()
    assert 'codes = "noise:32,cat:3,cont:4"' in (shapes_run / "recipe.toml").read_text()


def test_off_a_terminal_each_log_is_a_plain_line_and_a_metrics_row(tmp_path, monkeypatch):
    import gan_infogan_plugin.train as train_module

    rows_seen = {}

    def step_and_look(fabric, gan, batch, *args):  # metrics.csv as the loop left it before this step
        metrics = tmp_path / "run" / "metrics.csv"
        rows_seen[batch.step] = logged_steps(tmp_path / "run") if metrics.exists() else []
        return real_step(fabric, gan, batch, *args)

    real_step = train_module.train_step
    monkeypatch.setattr(train_module, "train_step", step_and_look)
    options = sets("trainer.log_every=2", "trainer.sample_every=0", "trainer.checkpoint_every=0", "trainer.sample_noise=1")
    result = gan_recipes("run", "infogan-shapes", "--max-steps", 5, "--out", tmp_path / "run", *options)  # progress on
    assert result.exit_code == 0, result.output
    assert rows_seen[2] == [2] and rows_seen[4] == [2, 4]  # written as logged, long before the checkpoint at step 5
    assert logged_steps(tmp_path / "run") == [2, 4, 5]
    lines = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2/5", "4/5", "5/5"]
    for line in lines:  # every figure on one line, never cut at 80 columns
        assert len(line) > 80 and all(f in line for f in ("it/s", "img/s", " D ", " G ", "elapsed", "ETA"))
        assert re.search("MI " + " ".join(rf"{code} -?\d+\.\d\d" for code in CODES) + "  elapsed", line), line


def test_generator_file_reproduces_the_trained_generator(shapes_run, tmp_path):
    loaded = load_generator(shapes_run / "generator.safetensors")
    assert loaded.step == 4 and loaded.model_name == "mnist" and str(loaded.spec) == "noise:32,cat:3,cont:4"
    checkpoint = torch.load(shapes_run / "checkpoints" / "last.ckpt", weights_only=True)
    stored = weights(shapes_run / "generator.safetensors")
    assert stored.keys() == checkpoint["generator"].keys()
    assert all(torch.equal(stored[k], checkpoint["generator"][k]) for k in stored)  # BatchNorm buffers included
    # The last traversal grid was drawn by the trained generator; the file draws the same pixels.
    save_grid(loaded.traverse("c2", n_noise=4, seed=0), tmp_path / "c2.png", nrow=4)
    again = np.asarray(Image.open(tmp_path / "c2.png"))
    trained = np.asarray(Image.open(shapes_run / "samples" / "step-0000004-c2.png"))
    assert np.array_equal(again, trained)


def test_resume_reaches_the_weights_of_an_uninterrupted_run(shapes_run, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(shapes_run, resumed)
    result = run_shapes(resumed, 6, flags=("--resume",))
    assert result.exit_code == 0, result.output
    assert "resuming at step 4" in result.output
    full = tmp_path / "full"
    assert run_shapes(full, 6).exit_code == 0
    a, b = weights(resumed / "generator.safetensors"), weights(full / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    d_a = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    d_b = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    assert d_a["step"] == d_b["step"] == 6
    assert all(torch.equal(d_a["discriminator"][k], d_b["discriminator"][k]) for k in d_b["discriminator"])
    assert logged_steps(resumed) == [2, 4, 6]


@pytest.mark.parametrize("setting", ["augment.shift=1", "trainer.fresh_codes=true", "trainer.noise_warmup=6", "invariance.weight=1"])
def test_a_setting_that_draws_more_changes_training_and_resumes_exactly(shapes_run, tmp_path, setting):
    """D's inputs shifted, G's update on codes of its own, a smaller noise or the real images' rotated
    copies: training changes, and a resumed run draws the same shifts, codes and copies as an
    uninterrupted one (they come from (seed, rank, step) streams)."""
    changed = tmp_path / "changed"
    assert run_shapes(changed, 4, setting).exit_code == 0
    plain, other = weights(shapes_run / "generator.safetensors"), weights(changed / "generator.safetensors")
    assert not all(torch.equal(plain[k], other[k]) for k in plain)
    result = run_shapes(changed, 6, setting, flags=("--resume",))
    assert result.exit_code == 0, result.output
    full = tmp_path / "full"
    assert run_shapes(full, 6, setting).exit_code == 0
    a, b = weights(changed / "generator.safetensors"), weights(full / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_folder_holding_a_run_is_never_overwritten(shapes_run, tmp_path):
    before = (shapes_run / "generator.safetensors").read_bytes()
    result = run_shapes(shapes_run, 2)
    assert result.exit_code == 2
    assert "holds another run" in result.output and "--resume" in result.output and "--force" in result.output
    assert (shapes_run / "generator.safetensors").read_bytes() == before
    copy = tmp_path / "copy"
    shutil.copytree(shapes_run, copy)
    assert run_shapes(copy, 1, flags=("--force",)).exit_code == 0
    assert load_generator(copy / "generator.safetensors").step == 1
    assert sorted(p.name for p in (copy / "samples").iterdir()) == [f"step-0000001-{c}.png" for c in CODES]


def test_resume_refuses_other_settings(shapes_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(shapes_run, copy)
    result = run_shapes(copy, 6, "optim.g.lr=0.5", flags=("--resume",))
    assert result.exit_code == 2
    assert "trained with other settings (optim.g.lr)" in result.output
    nothing = run_shapes(tmp_path / "empty", 6, flags=("--resume",))
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.output


def test_non_finite_loss_stops_the_run_and_keeps_no_bad_checkpoint(tmp_path):
    """Step 1's update (lr 1e30) leaves G's weights at 1e30: finite, but step 2's losses are not, so the
    checkpoint of step 1 is never written (a resume from it would fail at once) and the failed start leaves no folder."""
    out = tmp_path / "nan"
    result = run_shapes(out, 8, "optim.g.lr=1e30", "trainer.checkpoint_every=1")
    assert result.exit_code == 2
    assert "non-finite loss at step 2" in result.output and "no checkpoint was written" in result.output
    assert "skip_nonfinite" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_skip_nonfinite_counts_skipped_updates(tmp_path, monkeypatch):
    """Step 2's first GAN loss (D on real images) is made NaN: D's update is skipped (G's is not), the run
    ends well and logs 1 skip."""
    import gan_infogan_plugin.step as step_module
    import gan_infogan_plugin.train as train_module

    poison, real_bce, real_step = [0], step_module._bce, train_module.train_step

    def bce(logits, target):
        loss = real_bce(logits, target)
        poison[0] -= 1
        return loss * float("nan") if poison[0] == 0 else loss

    def step(fabric, gan, batch, *args, **kwargs):
        poison[0] = 1 if batch.step == 1 else -1
        return real_step(fabric, gan, batch, *args, **kwargs)

    monkeypatch.setattr(step_module, "_bce", bce)
    monkeypatch.setattr(train_module, "train_step", step)
    out = tmp_path / "skip"
    result = run_shapes(out, 4, "trainer.skip_nonfinite=true", "trainer.log_every=1")
    assert result.exit_code == 0, result.output
    lines = (out / "metrics.csv").read_text().splitlines()
    skipped = [float(row.split(",")[lines[0].split(",").index("skipped")]) for row in lines[1:]]
    assert skipped == [0, 1, 1, 1]


def _script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_sigterm_saves_a_checkpoint_and_resume_continues(tmp_path):
    out = tmp_path / "term"
    cmd = [shutil.which("gan-recipes") or "gan-recipes", "run", "infogan-shapes", "--max-steps", "100000", "--out", str(out),
           "--no-progress", *sets(*EVERY_2, "trainer.checkpoint_every=100000")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    first_grid = out / "samples" / "step-0000002-c1.png"
    while not first_grid.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # training is under way once the first grid is written
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stderr
    assert "stopped at step" in stderr and "SIGTERM" in stderr and "--resume" in stderr
    step = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["step"]
    assert step >= 2
    result = run_shapes(out, step + 1, "trainer.checkpoint_every=100000", flags=("--resume",))
    assert result.exit_code == 0, result.output
    assert load_generator(out / "generator.safetensors").step == step + 1


def test_two_ddp_processes_hold_identical_weights(tmp_path):
    script = _script(tmp_path / "ddp_run.py", f"""
        import os, sys, torch
        from gan_infogan_plugin.recipes import load_recipe
        from gan_infogan_plugin.train import train
        sets = {TINY + EVERY_2!r} + ["trainer.max_steps=3", "trainer.devices=2", 'trainer.strategy="ddp"', 'trainer.accelerator="cpu"']
        run = train(load_recipe("infogan-shapes", sets), out=sys.argv[1], progress=False)
        state = {{f"g.{{k}}": v for k, v in run.generator.state_dict().items()}}
        state.update({{f"d.{{k}}": v for k, v in run.discriminator.state_dict().items()}})
        torch.save(state, os.path.join(sys.argv[1], f"rank{{os.environ.get('LOCAL_RANK', '0')}}.pt"))
    """)
    out = tmp_path / "ddp"
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 20
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert logged_steps(out) == [2, 3]
    assert "deprecated" not in done.stderr, done.stderr[-3000:]  # Fabric's all_gather warned once per rank and checkpoint
    rng = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["rng"]  # every rank's RNG state, gathered
    assert rng.shape[0] == 2 and not torch.equal(rng[0], rng[1])


def test_a_half_written_checkpoint_from_a_kill_is_ignored(shapes_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(shapes_run, copy)
    partial = copy / "checkpoints" / ".last.ckpt.tmp"  # what a kill -9 during fabric.save leaves
    partial.write_bytes(b"PK\x03\x04 half a zip")
    result = run_shapes(copy, 4, flags=("--resume",))  # already at step 4: nothing to train
    assert result.exit_code == 0, result.output
    assert not partial.exists()
    assert torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)["step"] == 4


def test_compiling_for_cuda_refuses_cuda_graph_modes_and_keeps_eager_layouts(monkeypatch):
    """On CUDA the modes that capture CUDA graphs are refused before anything compiles; the others
    compile with inductor's layout optimisation off (what ran on an H200). No GPU is needed:
    torch.compile compiles at the first call, which this test never makes."""
    import torch._inductor.config as inductor

    from gan_infogan_plugin.errors import UserError
    from gan_infogan_plugin.train import CUDA_GRAPH_MODES, compiled

    net = torch.nn.Linear(2, 2)
    for mode in CUDA_GRAPH_MODES:
        with pytest.raises(UserError, match=f"trainer.compile_mode = '{mode}' captures CUDA graphs"):
            compiled((net,), mode, torch.device("cuda"))
    monkeypatch.setattr(inductor, "layout_optimization", True)
    (on_gpu,) = compiled((net,), "default", torch.device("cuda"))
    assert on_gpu._orig_mod is net and inductor.layout_optimization is False
    monkeypatch.setattr(inductor, "layout_optimization", True)
    (on_cpu,) = compiled((net,), "reduce-overhead", torch.device("cpu"))  # no CUDA graphs on a CPU: nothing refused
    assert on_cpu._orig_mod is net and inductor.layout_optimization is True
