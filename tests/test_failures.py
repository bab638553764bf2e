"""Nothing lost: kill -9 while checkpointing, bad input through the CLI (one line, exit 2, files untouched),
--devices beyond the machine, errors from DataLoader workers, and checkpoints that would run code."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_user_error, gan_recipes, logged_steps, sets, tiny_run
from PIL import Image

from gan_infogan_plugin.export import load_generator

GAN_RECIPES = shutil.which("gan-recipes") or "gan-recipes"
EVERY_STEP = ["trainer.checkpoint_every=1", "trainer.log_every=1", "trainer.sample_every=0", "trainer.sample_noise=2"]


def start_run(out: Path, steps: int, *flags: str) -> subprocess.Popen:
    cmd = [GAN_RECIPES, "run", "infogan-shapes", "--max-steps", str(steps), "--out", str(out), "--no-progress", *flags, *sets(*EVERY_STEP)]
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

    result = gan_recipes("run", "infogan-shapes", "--max-steps", last + 1, "--out", out, "--no-progress", "--resume", *sets(*EVERY_STEP))
    assert result.exit_code == 0, result.output
    assert f"resuming at step {last}" in result.output
    assert not partial.exists() and not list(out.glob(".*.tmp"))
    assert checkpoint_step(out) == last + 1 and load_generator(out / "generator.safetensors").step == last + 1
    assert logged_steps(out) == list(range(1, last + 2))  # every step logged once: none lost to a kill


# --------------------------------------------------------------------------- bad input through the CLI
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished 2-step infogan-shapes run."""
    return tiny_run(tmp_path_factory, 2, *EVERY_STEP)


def test_devices_beyond_the_machine_are_refused(tmp_path):
    """On CPU a device is a process: more than the usable cores is refused (not 64 processes started).
    GPUs that are absent, or fewer than asked, are refused by Fabric; both as one line, before any folder."""
    out = tmp_path / "run"
    cores = len(os.sched_getaffinity(0))
    message = assert_user_error(gan_recipes("run", "infogan-shapes", "--accelerator", "cpu", "--devices", 64, "--out", out),
                                "trainer.devices = 64", f"this machine has {cores} CPU cores", f"--devices {cores} or fewer")
    assert message.startswith("error: trainer.devices")
    assert_user_error(gan_recipes("run", "infogan-shapes", "--accelerator", "cuda", "--devices", 64, "--out", out),
                      "trainer: Fabric refuses accelerator='cuda' devices=64")
    assert not out.exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["infogan-mnst"], ["unknown recipe 'infogan-mnst': did you mean infogan-mnist"]),
        (["{bad_toml}"], ["not valid TOML", "broken.toml"]),
        (["infogan-shapes", "--set", "trainer.bach_size=8"], ["unknown key trainer.bach_size: did you mean trainer.batch_size?"]),
        (["infogan-shapes", "--set", "trainr.seed=1"], ["unknown key trainr: did you mean trainer?"]),
        (["infogan-shapes", "--set", "trainer.batch_size=abc"], ["--set trainer.batch_size=abc", "expected an integer, got a string 'abc'"]),
        (["infogan-shapes", "--set", "codes=noise:x"], ["--set codes=noise:x: codes: bad code spec part 'noise:x'"]),
        (["infogan-shapes", "--set", "model.name=mnsit"], ["unknown model 'mnsit': did you mean mnist?"]),
        (["infogan-shapes", "--set", "data.name=shape"], ["unknown data set 'shape': did you mean shapes?"]),
        (["infogan-shapes", "--max-steps", "-1"], ["--max-steps -1: trainer.max_steps: expected a number >= 1, got -1"]),
        (["infogan-shapes", "--max-steps", "0"], ["--max-steps 0: trainer.max_steps: expected a number >= 1, got 0"]),
        (["infogan-shapes", "--set", "trainer.devices=2", "--devices", "0"], ["--devices 0: trainer.devices: expected a number >= 1"]),
    ],
)
def test_bad_recipes_stop_run_before_anything_is_written(args, fragments, tmp_path):
    bad_toml = tmp_path / "broken.toml"
    bad_toml.write_text('codes = "noise:4"\n[model\nname = "mnist"\n')
    out = tmp_path / "run"
    args = [a.format(bad_toml=bad_toml) for a in args]
    assert_user_error(gan_recipes("run", *args, "--out", out), *fragments)
    assert not out.exists()


def test_a_failed_download_gives_one_line(tmp_path, monkeypatch):
    """Missing MNIST files and a download that fails with a multi-line error (as torchvision's does offline)."""
    import torchvision

    def offline(self):
        Path(self.raw_folder).mkdir(parents=True, exist_ok=True)  # as torchvision's download does first
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror/, got:\n<urlopen error>\n")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    root = tmp_path / "data"
    result = gan_recipes("run", "infogan-mnist", "--set", f'data.root="{root}"', "--out", tmp_path / "run")
    assert_user_error(result, f"{root / 'MNIST' / 'raw'} does not hold train-images-idx3-ubyte",
                      "the download failed (RuntimeError: Error downloading train-images-idx3-ubyte.gz: Tried https://mirror/, got: <urlopen error>)",
                      "set data.root")
    assert not (tmp_path / "run").exists()  # nothing written: the same command works once the files are there
    assert not root.exists()  # the download's empty data/MNIST/raw/ is removed again
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    assert_user_error(gan_recipes("run", "infogan-mnist", "--set", f'data.root="{root}"', "--out", tmp_path / "run"), "download failed")
    assert [p.name for p in root.iterdir()] == ["notes.txt"]  # a folder that was there is kept


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_a_folder_holding_another_run_is_left_untouched(run_dir, tmp_path):
    before = snapshot(run_dir)
    for recipe in ("infogan-shapes", "infogan-mnist"):  # the same recipe again, or another one
        assert_user_error(gan_recipes("run", recipe, "--out", run_dir, *sets(*EVERY_STEP)),
                          f"{run_dir} holds another run", "--resume", "--force")
    assert snapshot(run_dir) == before  # every file: same bytes, never rewritten; none added


def test_sample_refuses_weights_of_another_model(run_dir, tmp_path):
    import safetensors
    import safetensors.torch

    with safetensors.safe_open(run_dir / "generator.safetensors", framework="pt") as f:
        metadata = f.metadata()
    other = tmp_path / "svhn.safetensors"  # the MNIST generator's tensors, labelled as the SVHN model
    safetensors.torch.save_file(safetensors.torch.load_file(run_dir / "generator.safetensors"), other,
                                metadata={**metadata, "model": "svhn"})
    out = tmp_path / "x.png"
    assert_user_error(gan_recipes("sample", other, "--out", out), str(other), "do not fit model 'svhn'")
    assert not out.exists()


def test_an_unreadable_image_in_a_dataloader_worker_gives_one_line(tmp_path):
    """The worker's UserError reaches the CLI as its own message, not torch's wrapped worker traceback."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("L", (28, 28), 128).save(images / "good.png")
    (images / "bad.png").write_bytes(b"not a png")
    recipe = tmp_path / "folder.toml"
    recipe.write_text(f'codes = "noise:8,cat:2"\n[model]\nname = "mnist"\n'
                      f'[data]\nname = "image-folder"\nroot = "{images}"\nnum_workers = 1\n')
    result = gan_recipes("run", recipe, "--max-steps", 5, "--out", tmp_path / "run", "--no-progress",
                         "--set", "trainer.batch_size=4", "--set", "trainer.sample_every=0", "--set", "trainer.checkpoint_every=0")
    message = assert_user_error(result, f"{images / 'bad.png'}: cannot read the image")
    assert "DataLoader worker" not in result.output and "worker" not in message


# --------------------------------------------------------------------------- checkpoints never run code
class _WritesMarker:
    """Unpickling this opens ``path`` for writing, creating the file: proof that the pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_holding_code_is_refused_unread(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    ckpt, marker = copy / "checkpoints" / "last.ckpt", tmp_path / "marker"
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "step": _WritesMarker(marker)}, ckpt)
    planted = ckpt.read_bytes()

    refusal = "it holds a Python object (io.open) besides tensors and plain values"
    resumed = gan_recipes("run", "infogan-shapes", "--max-steps", 3, "--out", copy, "--resume", "--no-progress", *sets(*EVERY_STEP))
    assert_user_error(resumed, f"{ckpt}: cannot resume from it: {refusal}")
    assert_user_error(gan_recipes("eval", copy, "--real", 0, "--generated", 8, "--points", 20, "--votes", 4),
                      f"{ckpt}: not a readable checkpoint ({refusal}")
    assert not marker.exists() and ckpt.read_bytes() == planted and not (copy / "eval").exists()

    torch.load(ckpt, weights_only=False)  # the plain unpickler does run it: the refusals above were real
    assert marker.exists()

    ckpt.write_bytes(planted[: len(planted) // 2])  # cut short, as by a copy that failed
    resumed = gan_recipes("run", "infogan-shapes", "--max-steps", 3, "--out", copy, "--resume", "--no-progress", *sets(*EVERY_STEP))
    assert_user_error(resumed, f"{ckpt}: cannot resume from it: ")
