"""Nothing lost, round two: a locked run folder, a disk that fills mid-checkpoint, checkpoints that are
truly good, no junk folders, and the bad inputs that gave tracebacks, as one table through the CLI."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch
from conftest import assert_user_error, gan_recipes, logged_steps, run_shapes, sets, tiny_run
from PIL import Image

from gan_infogan_plugin import runs, train
from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.export import load_generator
from gan_infogan_plugin.runs import FolderLock, RunDir, snapshot

QUIET = ["trainer.sample_every=0", "trainer.sample_noise=2", "trainer.log_every=1"]
EVAL_SMALL = ["--real", 0, "--generated", 8, "--points", 20, "--votes", 4]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished 2-step infogan-shapes run."""
    return tiny_run(tmp_path_factory, 2, *QUIET)


def checkpoint_step(run: Path) -> int:
    return int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["step"])


# --------------------------------------------------------------------------- the lock
def test_a_second_writer_is_refused_naming_the_holder(run_dir, tmp_path):
    """While a process holds the run folder, run, resume, sample --out and eval --json into it are each refused
    in one line naming the holder's process id and host; nothing in the folder changes."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    lock = FolderLock.acquire(copy, "a test")
    try:
        for args in (["run", "infogan-shapes", "--max-steps", 3, "--out", copy, "--force", "--no-progress", *sets(*QUIET)],
                     ["run", "infogan-shapes", "--max-steps", 3, "--out", copy, "--resume", "--no-progress", *sets(*QUIET)],
                     ["sample", copy / "generator.safetensors", "--out", copy / "samples" / "more.png"],
                     ["eval", copy, *EVAL_SMALL]):
            assert_user_error(gan_recipes(*args), f"{copy} is in use by {holder}: a test")
    finally:
        lock.release()
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_a_stale_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    """A lock file nobody holds (its process was killed) does not block the next run, which removes it at the end."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("pid 999999 on elsewhere: gan-recipes run\n")
    assert run_shapes(out, 1, *QUIET).exit_code == 0
    assert not (out / ".lock").exists() and checkpoint_step(out) == 1


# --------------------------------------------------------------------------- a full disk
class _SmallDisk:
    """A fake writer: the ``nth`` checkpoint file opened takes ``room`` bytes, then fails with ENOSPC."""

    def __init__(self, nth: int, room: int) -> None:
        self.nth, self.room, self.opened = nth, room, 0

    def open(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if Path(path).name == ".last.ckpt.tmp":
            self.opened += 1
            if self.opened == self.nth:
                room, write = [self.room], f.write

                def limited(data) -> int:
                    if len(data) > room[0]:
                        write(bytes(memoryview(data)[: room[0]]))
                        room[0] = 0
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    room[0] -= len(data)
                    return write(data)

                f.write = limited
        return f


def test_a_disk_filling_mid_checkpoint_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """The disk fills while the second checkpoint is written: one line (exit 2) with the space needed and
    free and where; the first checkpoint is whole, no temporary file is left, and --resume goes on from it."""
    out = tmp_path / "run"
    monkeypatch.setattr(runs, "open", _SmallDisk(nth=2, room=100_000).open, raising=False)
    result = run_shapes(out, 4, *QUIET, "trainer.checkpoint_every=2")
    ckpt = out / "checkpoints" / "last.ckpt"
    message = assert_user_error(result, f"cannot write {ckpt}: No space left on device (about ", " MB needed, ",
                                f" MB free in {ckpt.parent}); the previous {ckpt} is intact")
    needed = float(message.split("(about ")[1].split(" MB")[0])
    assert abs(needed * 1e6 - ckpt.stat().st_size) < 0.01 * ckpt.stat().st_size  # the tensors' bytes: the checkpoint's size
    assert checkpoint_step(out) == 2
    assert not list(ckpt.parent.glob(".*.tmp")) and not (out / ".lock").exists()
    monkeypatch.undo()
    assert run_shapes(out, 4, *QUIET, "trainer.checkpoint_every=2", flags=("--resume",)).exit_code == 0
    assert checkpoint_step(out) == 4 and logged_steps(out) == [1, 2, 3, 4]


def test_checkpoints_go_straight_to_the_run_folder(tmp_path, monkeypatch):
    """Nothing passes through the system temporary folder (no double space, nothing left there by a kill)."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    for name in ("mkstemp", "NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, lambda *a, **k: pytest.fail("a checkpoint went through the system temp folder"))
    run = RunDir(tmp_path / "run")
    run.checkpoint.parent.mkdir(parents=True)
    run.save_checkpoint({"generator": torch.nn.Linear(3, 2), "discriminator": {}, "step": 5})
    assert int(torch.load(run.checkpoint, weights_only=True)["step"]) == 5
    assert not list(system_tmp.iterdir()) and os.listdir(run.checkpoint.parent) == ["last.ckpt"]


def test_a_checkpoint_written_in_the_background_reports_its_error_when_waited_for(tmp_path, monkeypatch):
    """save_checkpoint_later returns at once; finish_writes (or the next write) raises a failed write's one
    line, the previous checkpoint stays whole; release after a failure does not hide the first error."""
    run = RunDir(tmp_path / "run")
    run.checkpoint.parent.mkdir(parents=True)
    run.save_checkpoint_later(snapshot({"generator": torch.nn.Linear(3, 2), "discriminator": {}, "step": 5}))
    run.finish_writes()
    assert int(torch.load(run.checkpoint, weights_only=True)["step"]) == 5
    monkeypatch.setattr(runs, "open", _SmallDisk(nth=1, room=10).open, raising=False)
    run.save_checkpoint_later(snapshot({"generator": torch.nn.Linear(3, 2), "discriminator": {}, "step": 6}))
    with pytest.raises(runs.UserError, match=f"cannot write {run.checkpoint}: No space left on device"):
        run.finish_writes()
    assert int(torch.load(run.checkpoint, weights_only=True)["step"]) == 5
    monkeypatch.setattr(runs, "open", _SmallDisk(nth=1, room=10).open, raising=False)  # full again
    run.save_checkpoint_later(snapshot({"generator": torch.nn.Linear(3, 2), "discriminator": {}, "step": 7}))
    run.release()  # waits for the write; its error is not raised here
    assert int(torch.load(run.checkpoint, weights_only=True)["step"]) == 5 and not list(run.checkpoint.parent.glob(".*.tmp"))


# --------------------------------------------------------------------------- non-finite weights
def _poison_generator_at(step: int, monkeypatch) -> None:
    """Fault injection: right after the update of ``step`` (counted from 1), G's weights become infinite."""
    real_step = train.train_step

    def step_then_poison(fabric, gan, batch, *args, **kwargs):
        result = real_step(fabric, gan, batch, *args, **kwargs)
        if batch.step + 1 == step:
            with torch.no_grad():
                for p in gan.generator.parameters():
                    p.fill_(float("inf"))
        return result

    monkeypatch.setattr(train, "train_step", step_then_poison)


def test_the_kept_checkpoint_is_truly_good(tmp_path, monkeypatch):
    """G's weights go bad in step 3's update: the checkpoint of step 3 (whose losses were still finite) is never
    written, as step 4's are not; the kept checkpoint of step 2 resumes to the end."""
    out = tmp_path / "run"
    _poison_generator_at(3, monkeypatch)
    result = run_shapes(out, 6, *QUIET, "trainer.checkpoint_every=1")
    assert_user_error(result, "non-finite loss at step 4", f"the last good checkpoint {out / 'checkpoints' / 'last.ckpt'} is kept")
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["generator"].values())
    monkeypatch.undo()
    assert run_shapes(out, 6, *QUIET, "trainer.checkpoint_every=1", flags=("--resume",)).exit_code == 0
    assert logged_steps(out) == [1, 2, 3, 4, 5, 6]


def test_skip_nonfinite_that_skips_too_much_fails_and_exports_nothing(tmp_path, monkeypatch):
    """With trainer.skip_nonfinite every update after the fault is skipped: more than MAX_SKIPPED of them
    stops the run with a clear line, and no generator.safetensors (NaN weights) is written."""
    out = tmp_path / "run"
    _poison_generator_at(2, monkeypatch)
    result = run_shapes(out, 8, *QUIET, "trainer.checkpoint_every=4", "trainer.skip_nonfinite=true")
    assert_user_error(result, "trainer.skip_nonfinite: ", "updates since step 0 were skipped for non-finite losses (more than 25%)")
    assert not (out / "generator.safetensors").exists()


def _slow_checkpoint_writes(monkeypatch, seconds: float = 0.5) -> None:
    """Checkpoints written in the background reach the disk only after ``seconds`` (a slow disk)."""
    real_write = RunDir._write_checkpoint

    def slow_write(self, state):
        time.sleep(seconds)
        real_write(self, state)

    monkeypatch.setattr(RunDir, "_write_checkpoint", slow_write)


def test_non_finite_weights_are_never_exported(tmp_path, monkeypatch):
    """G's weights go bad in the last update: the final checkpoint and the export are refused, and the
    message names the checkpoint of step 2 even while its background write is still going on."""
    out = tmp_path / "run"
    _poison_generator_at(3, monkeypatch)
    _slow_checkpoint_writes(monkeypatch)
    result = run_shapes(out, 3, *QUIET, "trainer.checkpoint_every=2")
    # (D's BatchNorm statistics, recomputed from G's images at the last step, are not finite either)
    assert_user_error(result, "error: the generator", "weights are not finite at step 3: nothing saved",
                      f"the last good checkpoint {out / 'checkpoints' / 'last.ckpt'} is kept")
    assert checkpoint_step(out) == 2 and not (out / "generator.safetensors").exists()


def test_a_failure_while_a_checkpoint_is_being_written_keeps_the_run(tmp_path, monkeypatch):
    """A user error at step 4, while step 2's checkpoint is still on its way to a slow disk: the fresh run's
    folder is not discarded as if it had no checkpoint; it holds step 2's, and resumes from it."""
    out = tmp_path / "run"
    real_step = train.train_step

    def fail_at_step_4(fabric, gan, batch, *args, **kwargs):
        if batch.step + 1 == 4:
            raise UserError("the data went away")
        return real_step(fabric, gan, batch, *args, **kwargs)

    monkeypatch.setattr(train, "train_step", fail_at_step_4)
    _slow_checkpoint_writes(monkeypatch)
    assert_user_error(run_shapes(out, 6, *QUIET, "trainer.checkpoint_every=2"), "error: the data went away")
    assert checkpoint_step(out) == 2
    monkeypatch.undo()
    assert run_shapes(out, 6, *QUIET, "trainer.checkpoint_every=2", flags=("--resume",)).exit_code == 0


# --------------------------------------------------------------------------- paths
def test_a_run_folder_named_like_a_url_resumes(tmp_path, monkeypatch):
    """``--out httpruns/r`` is a local folder: it resumes, and nothing is downloaded into torch's hub cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    assert run_shapes(Path("httpruns/r"), 1, *QUIET).exit_code == 0
    assert run_shapes(Path("httpruns/r"), 2, *QUIET, flags=("--resume",)).exit_code == 0
    assert checkpoint_step(tmp_path / "httpruns" / "r") == 2 and not (tmp_path / "torch-home").exists()


# --------------------------------------------------------------------------- bad input, one table
def _generator_file(run: Path, tmp: Path, **metadata: str) -> Path:
    """The run's generator file with ``metadata`` changed (a hostile file: same tensors, other sizes)."""
    with safetensors.safe_open(str(run / "generator.safetensors"), framework="pt") as f:
        stored, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    path = tmp / "hostile.safetensors"
    safetensors.torch.save_file(tensors, str(path), metadata={**stored, **metadata})
    return path


def _spec(run: Path, **change) -> str:
    with safetensors.safe_open(str(run / "generator.safetensors"), framework="pt") as f:
        return json.dumps({**json.loads(f.metadata()["spec"]), **change})


def _image_folder_recipe(tmp: Path) -> Path:
    images = tmp / "images"
    images.mkdir()
    Image.new("L", (28, 28), 128).save(images / "good.png")
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n corrupt")
    recipe = tmp / "folder.toml"
    recipe.write_text(f'codes = "noise:8,cat:2"\n[model]\nname = "mnist"\n[data]\nname = "image-folder"\nroot = "{images}"\nnum_workers = 0\n')
    return recipe


RUN = ["run", "infogan-shapes", "--max-steps", 2, "--no-progress", "--out", "{out}"]
SAMPLE = ["sample", "{weights}", "--out", "{tmp}/s.png"]
# (arguments, fragments of the one error line); {out} is a run folder that must not be left behind,
# {weights} the module run's generator, {tmp} the test's folder, {hostile:...} a hostile generator file.
BAD_INPUTS = {
    "--seed -1": (RUN + ["--seed", -1], ["--seed -1: trainer.seed: expected a number >= 0, got -1"]),
    "--seed 2**40": (RUN + ["--seed", 2**40], ["--seed 1099511627776: trainer.seed: expected a number from 0 to 4294967295"]),
    "count -5": (RUN + sets("data.options.count=-5"), ["data.options.count: expected an integer >= 1", "got -5"]),
    "count 0": (RUN + sets("data.options.count=0"), ["data.options.count: expected an integer >= 1", "got 0"]),
    "corrupt PNG": (["run", "{folder_recipe}", "--max-steps", 2, "--no-progress", "--out", "{out}", "--set", "trainer.batch_size=4"],
                    ["bad.png: cannot read the image"]),
    "shift 100 on 28 px": (RUN + sets("augment.shift=100"), ["augment.shift = 100", "28-pixel images", "at most 13 pixels"]),
    "--out a regular file": (["run", "infogan-shapes", "--out", "{a_file}"], ["cannot use it as a run folder: a file of that name exists"]),
    "--out under /proc": (["run", "infogan-shapes", "--out", "/proc/gan-recipes-test/run"], ["/proc/gan-recipes-test/run: cannot create the run folder"]),
    "sample --n 0": (SAMPLE + ["--n", 0], ["--n 0: expected from 1 to 10000 images"]),
    "sample --n 10**8": (SAMPLE + ["--n", 10**8], ["--n 100000000: expected from 1 to 10000 images"]),
    "sample huge traversal": (SAMPLE + ["--traverse", "c2", "--n", 5000], ["a traversal of 9 values by 5000 noise columns"]),
    "sample --device cuda": (SAMPLE + ["--device", "cuda:999"], ["--device cuda:999: this machine has", "use --device cpu"]),
    "sample --device nonsense": (SAMPLE + ["--device", "nonsense"], ["--device nonsense: expected cpu, cuda, cuda:N or mps"]),
    "sample --gif --n 10**8": (["sample", "{weights}", "--gif", "{tmp}/t.gif", "--traverse", "c2", "--n", 10**8], ["--n 100000000: expected from 1"]),
    "sample --gif --device nonsense": (["sample", "{weights}", "--gif", "{tmp}/t.gif", "--traverse", "c2", "--device", "nonsense"],
                                       ["--device nonsense: expected cpu"]),
    "--fix c2=inf": (SAMPLE + ["--fix", "c2=inf"], ["--fix c2=inf: code c2 needs a finite number, got inf"]),
    "--fix c1=nan": (SAMPLE + ["--fix", "c1=nan"], ["--fix c1=nan: code c1 needs a finite number, got nan"]),
    "eval --json under /proc": (["eval", "{run}", "--json", "/proc/gan-recipes-test/x.json", *EVAL_SMALL],
                                ["/proc/gan-recipes-test: cannot create the folder"]),
    "eval --device nonsense": (["eval", "{run}", "--device", "nonsense"], ["--device nonsense: expected cpu"]),
    "huge noise in metadata": (["sample", "{hostile:huge_noise}", "--out", "{tmp}/s.png"],
                               ["the tensors do not fit model 'mnist' with spec noise:100000000"]),
    "huge channels in metadata": (["sample", "{hostile:huge_channels}", "--out", "{tmp}/s.png"], ["the tensors do not fit model 'mnist'", "(1000000000,) in the model"]),
    "negative channels in metadata": (["sample", "{hostile:negative_channels}", "--out", "{tmp}/s.png"], ["bad metadata", "cannot be built from it", "negative dimension"]),
    "negative noise in metadata": (["sample", "{hostile:negative_noise}", "--out", "{tmp}/s.png"], ["bad metadata: noise size must be a non-negative integer"]),
    "nested JSON in metadata": (["sample", "{hostile:nested}", "--out", "{tmp}/s.png"], ["bad metadata: maximum recursion depth exceeded"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_nothing(case, run_dir, tmp_path):
    """Each input gives exit 2 and one ``error:`` line (no traceback), leaves no run folder and writes no file."""
    args, fragments = BAD_INPUTS[case]
    hostile = {"huge_noise": {"spec": _spec(run_dir, noise=100_000_000)},
               "negative_noise": {"spec": _spec(run_dir, noise=-100)},
               "huge_channels": {"model_kwargs": json.dumps({"channels": 10**9})},
               "negative_channels": {"model_kwargs": json.dumps({"channels": -3})},
               "nested": {"spec": "[" * 100_000 + "]" * 100_000}}
    (tmp_path / "a-file").write_text("not a folder")
    values = {"out": tmp_path / "run", "run": run_dir, "weights": run_dir / "generator.safetensors", "tmp": tmp_path,
              "a_file": tmp_path / "a-file"}
    if "{folder_recipe}" in args:
        values["folder_recipe"] = _image_folder_recipe(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    filled = []
    for arg in map(str, args):
        if arg.startswith("{hostile:"):
            filled.append(str(_generator_file(run_dir, tmp_path, **hostile[arg[9:-1]])))
        else:
            filled.append(arg.format(**values))
    if any(a.startswith("{hostile:") for a in map(str, args)):
        before = sorted(tmp_path.rglob("*"))
    assert_user_error(gan_recipes(*filled), *fragments)
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, PNG or JSON left behind


def test_atomic_file_per_process_names_and_write_errors(tmp_path):
    """``unique`` temporary names differ per writer yet match the leftover cleanup (``.*.tmp``); an OSError
    while writing is one line naming the file, and the old file stays."""
    target = tmp_path / "cache.bin"
    with runs.atomic_file(target, unique=True) as a, runs.atomic_file(target, unique=True) as b:
        assert a != b and a in set(tmp_path.glob(".*.tmp")) | {a} and a.name.startswith(".cache.bin.") and a.name.endswith(".tmp")
        a.write_bytes(b"a")
        b.write_bytes(b"b")
        assert set(tmp_path.glob(".*.tmp")) == {a, b}
    assert target.read_bytes() in (b"a", b"b") and not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(runs.UserError, match=f"cannot write {target}: No space left on device .*; the previous {target} is intact"):
        with runs.atomic_file(target, needed=2_000_000) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_bytes() in (b"a", b"b") and not list(tmp_path.glob(".*.tmp"))
