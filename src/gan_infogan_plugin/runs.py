"""The run folder: its layout, choosing or resuming one, its files and its checkpoints.

A run folder (``runs/<recipe>/<YYYYmmdd-HHMMSS>`` or ``--out``)::

    recipe.toml              the resolved recipe
    metrics.csv              one row per logged step (Fabric's CSVLogger; tensorboard/ too when installed)
    samples/step-NNNNNNN-<code>.png   traversal grids (rows = code values, columns = noise)
    checkpoints/last.ckpt    G, D+Q, both optimizers, the regularizers' own state, step, every rank's RNG
                             state: a torch.save of state dicts, read back with weights_only=True
    generator.safetensors    the generator and its metadata (export.load_generator)
    generator-step-NNNNNNN.safetensors   ``gan-recipes export``: the same from a checkpoint (a run stopped or training)
    metrics.png              ``gan-recipes plot``: the losses, MI per code and eval scores (plots.plot_runs)
    eval/step-NNNNNNN.json   ``gan-recipes eval`` results

Every file is written through :func:`atomic_file` (a temporary file in the same folder, synced,
renamed over the old one), so a kill at any moment leaves the previous version whole, and a full disk
or an unwritable folder is one line saying how much space was needed and where. Training and
``gan-recipes eval`` read checkpoints the same way, with :meth:`RunDir.load_checkpoint`.

One process at a time writes a run folder: ``gan-recipes run`` (and ``--resume``), ``sample --out``,
``eval --json`` and ``export`` hold its lock file (:class:`FolderLock`, ``.lock``: process id, host and command) while
they write, and a second one is refused naming the holder. The lock is an ``flock`` the system drops
when its process dies, so the file a killed process leaves behind is stale and simply taken over.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import os
import re
import secrets
import shutil
import socket
import time
import tomllib
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from .errors import UserError, one_line
from .recipes import Recipe, load_recipe

CHECKPOINT = Path("checkpoints") / "last.ckpt"
RUN_FILES = ("recipe.toml", "metrics.csv", "samples", "checkpoints", "generator.safetensors")
LOCK_FILE = ".lock"
# Recipe keys a resumed run may change; any other difference refuses the resume.
RESUMABLE = {
    "description",
    "data.root",
    "data.download",
    "data.num_workers",
    *(f"trainer.{k}" for k in ("max_steps", "log_every", "sample_every", "sample_noise", "checkpoint_every",
                               "eval_every", "skip_nonfinite", "bn_batches", "accelerator", "devices", "strategy", "num_nodes")),
}
# What a checkpoint must hold for gan-recipes to read it.
CHECKPOINT_KEYS = ("generator", "discriminator", "step")


@contextmanager
def atomic_file(path: Path, needed: int | None = None, unique: bool = False) -> Iterator[Path]:
    """A temporary path next to ``path`` (``.<name>.tmp``) for the block to write, by any means.

    When the block ends, the file is synced to disk and renamed over ``path``: a reader, or a run
    killed at any moment, sees the old file or the new one, never half of one. If the block raises,
    the temporary file is removed and ``path`` is left as it was. ``unique``: the temporary name also
    holds the process id and a random part (``.<name>.<pid>-<hex>.tmp``), for files that several
    processes may write at once (a shared cache). An OSError (a full disk, a folder that cannot be
    written) becomes a UserError naming ``path``, the space ``needed`` (bytes, when known) and the
    space free there.
    """
    suffix = f".{os.getpid()}-{secrets.token_hex(4)}.tmp" if unique else ".tmp"
    tmp = path.with_name(f".{path.name}{suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UserError(write_error(path, exc, needed)) from None
        raise


def write_error(path: Path, exc: OSError, needed: int | None = None) -> str:
    """One line for an OSError writing ``path``: the reason, on a full disk the space needed and free
    there, and what was kept."""
    reason = exc.strerror or one_line(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        free = _free_bytes(path.parent)
        need = f"about {_megabytes(needed)} needed, " if needed else ""
        reason += f" ({need}{_megabytes(free) if free is not None else 'unknown'} free in {path.parent})"
    kept = f"the previous {path} is intact" if path.is_file() else f"nothing was written to {path}"
    return f"cannot write {path}: {reason}; {kept}"


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def make_folder(folder: Path, what: str = "folder") -> bool:
    """Create ``folder`` (and its parents); whether it was created. An OSError (a regular file in the
    way, a read-only place) is a UserError naming it."""
    if folder.is_dir():
        return False
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        if not folder.is_dir():
            raise UserError(f"{folder}: cannot use it as a {what}: a file of that name exists") from None
        return False
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the {what}: {exc.strerror or one_line(exc)}") from None
    return True


@dataclass
class FolderLock:
    """An exclusive lock on a folder: ``<folder>/.lock``, flock'ed, holding ``pid <pid> on <host>: <command>``.

    The system releases an flock when its process ends, however it ends: a lock file left by a killed
    process is stale, and the next :meth:`acquire` takes it over."""

    folder: Path
    fd: int

    @classmethod
    def acquire(cls, folder: Path, command: str) -> "FolderLock":
        """Lock ``folder`` (it must exist) for ``command``; a UserError naming the holder if another process has it."""
        path = folder / LOCK_FILE
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UserError(f"{folder}: cannot write there (the lock file {path}: {exc.strerror or one_line(exc)})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 300).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise UserError(f"{folder} is in use by {holder} (lock file {path}); wait for it to end, "
                                "or stop it, or choose another folder") from None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:  # the holder removed it as we opened it: lock the new file instead
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}: {command}\n".encode())
        return cls(folder, fd)

    def release(self) -> None:
        """Remove the lock file and unlock (in that order, so no one locks a file about to vanish)."""
        if self.fd < 0:
            return
        (self.folder / LOCK_FILE).unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


@contextmanager
def writing_into(target: Path, command: str) -> Iterator[None]:
    """For a command writing the file ``target`` (``sample --out``, ``eval --json``): its folder,
    created when missing (and removed again if it stays empty), and the lock of the run folder it
    is in (that folder or the one above it holds a recipe.toml) or else of the folder itself, held
    for the block. A folder that cannot be created or written fails here, before any work."""
    folder = target.parent
    made = make_folder(folder)
    owner = next((p for p in (folder, folder.parent) if (p / "recipe.toml").is_file()), folder)
    lock = None
    try:
        lock = FolderLock.acquire(owner, command)
        yield
    finally:
        if lock is not None:
            lock.release()
        if made:
            try:
                folder.rmdir()
            except OSError:  # the command wrote its file there
                pass


def generator_file_of(path: Path) -> Path:
    """A generator file given as itself or as the run folder that holds one (``generator.safetensors``);
    a run folder without one is a UserError saying how to write one from its checkpoint."""
    if not path.is_dir():
        return path
    file = RunDir(path).generator_file
    if not file.is_file():
        raise UserError(f"{path}: no {file.name} in this run folder (it is written when training ends); "
                        f"write one from its last checkpoint with: gan-recipes export {path}")
    return file


def checkpoint_load_error(exc: Exception) -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` failed on a checkpoint.

    weights_only refuses any pickled object beyond tensors and plain containers: such a file is never
    unpickled, so nothing in it runs."""
    text = one_line(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if found:
        return f"it holds a Python object ({found.group(1)}) besides tensors and plain values; refused, as unpickling it could run code"
    if "Weights only load failed" in text:
        return "not a checkpoint written by gan-recipes (torch's weights-only loader refused its contents)"
    return text


@dataclass
class RunDir:
    """One run folder; ``checkpoint`` is ``checkpoints/last.ckpt`` in it unless given. ``lock``: held
    from :meth:`choose` until :meth:`release`; ``made``: whether :meth:`choose` created the folder."""

    path: Path
    checkpoint: Path = field(default=None)  # type: ignore[assignment]
    lock: FolderLock | None = field(default=None, repr=False, compare=False)
    made: bool = False
    _writer: ThreadPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)
    _writing: Future | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.checkpoint = Path(self.checkpoint) if self.checkpoint is not None else self.path / CHECKPOINT

    # ------------------------------------------------------------------ finding one
    @classmethod
    def choose(cls, recipe: Recipe, out: str | Path | None, resume: bool, force: bool) -> "RunDir":
        """The folder to train ``recipe`` in, created and locked (:class:`FolderLock`), checked: a run
        in it is only continued (``resume``, with the same recipe) or replaced (``force``) on request.
        Without ``out``: a new ``runs/<recipe>/<stamp>``, or with ``resume`` the newest run of that recipe."""
        if out is None:
            base = Path("runs") / recipe.name
            if resume:
                found = sorted(p for p in base.glob("*") if (p / CHECKPOINT).is_file())
                if not found:
                    raise UserError(f"no run of {recipe.name} to resume under {base}/ (none has {CHECKPOINT}); pass --out RUN_DIR")
                run = cls(found[-1])
            else:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                path, i = base / stamp, 1
                while path.exists():
                    path, i = base / f"{stamp}-{i}", i + 1
                run = cls(path)
        else:
            run = cls(Path(out))
        if resume and not run.checkpoint.is_file():
            raise UserError(f"{run.path}: nothing to resume: {run.checkpoint} does not exist")
        run.made = make_folder(run.path, "run folder")
        try:  # checked under the lock: no other process can start a run here meanwhile
            run.lock = FolderLock.acquire(run.path, "gan-recipes run" + (" --resume" if resume else ""))
            held = [name for name in RUN_FILES if (run.path / name).exists()]
            if held and not resume and not force:
                raise UserError(f"{run.path} holds another run ({', '.join(held)}): pass --resume to continue it, "
                                "--force to replace it, or choose another --out")
            if resume:
                run.check_same_recipe(recipe)
        except BaseException:
            run.release()
            raise
        return run

    def release(self) -> None:
        """Give the folder's lock back; a folder :meth:`choose` created and nothing was written to is removed.

        A checkpoint still being written in the background is finished first; its error is not raised
        here (this runs after a failure, which is the one to report: the normal end of a run writes its
        last checkpoint with :meth:`save_checkpoint`, after :meth:`finish_writes`)."""
        with suppress(UserError):
            self.finish_writes()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.made:
            try:
                self.path.rmdir()
            except OSError:  # not empty: it holds a run
                pass

    def discard(self) -> None:
        """Remove what :meth:`create` and the loop wrote (a start that failed before its first
        checkpoint: nothing to resume), then :meth:`release`: the corrected command finds the folder free."""
        with suppress(UserError):
            self.finish_writes()
        for name in (*RUN_FILES, "tensorboard"):
            path = self.path / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.release()

    @classmethod
    def of(cls, path: str | Path) -> "RunDir":
        """A run from its folder or from a checkpoint file inside one (``gan-recipes eval``, ``export``)."""
        path = Path(path)
        if path.is_dir():
            run = cls(path)
            if not run.checkpoint.is_file():
                raise UserError(f"{path}: not a run folder with a checkpoint: expected one at {run.checkpoint}")
        elif path.is_file():
            run = cls(path.parent.parent if path.parent.name == "checkpoints" else path.parent, path)
        else:
            raise UserError(f"{path}: no such run folder or checkpoint file")
        if not run.recipe_file.is_file():
            raise UserError(f"{run.checkpoint}: the run's recipe is not at {run.recipe_file}; the whole run folder is needed")
        return run

    # ------------------------------------------------------------------ the layout
    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.toml"

    @property
    def generator_file(self) -> Path:
        return self.path / "generator.safetensors"

    def exported_generator_file(self, step: int) -> Path:
        """Where ``gan-recipes export`` writes the generator of the checkpoint at ``step``."""
        return self.path / f"generator-step-{step:07d}.safetensors"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def plot_file(self) -> Path:
        """metrics.png, drawn from metrics.csv by :mod:`.plots`."""
        return self.path / "metrics.png"

    def sample_file(self, step: int, name: str) -> Path:
        """The grid of one code (or ``samples``) at ``step``."""
        return self.path / "samples" / f"step-{step:07d}-{name}.png"

    def eval_file(self, step: int) -> Path:
        return self.path / "eval" / f"step-{step:07d}.json"

    # ------------------------------------------------------------------ the recipe
    def create(self, recipe: Recipe, replace: bool) -> None:
        """Delete the run there (``replace``: --force), write recipe.toml, create samples/ and
        checkpoints/, and remove the temporary files of a run killed while saving."""
        for name in RUN_FILES if replace else ():
            path = self.path / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for folder in (self.path / "samples", self.checkpoint.parent):
            make_folder(folder)
        for leftover in (*self.path.glob(".*.tmp"), *self.checkpoint.parent.glob(".*.tmp")):
            leftover.unlink()
        with atomic_file(self.recipe_file) as tmp:
            tmp.write_text(recipe.to_toml(), encoding="utf-8")

    def read_recipe(self, overrides: list[str] = ()) -> Recipe:
        """The run's recipe.toml, with ``--set``-style ``overrides``."""
        return load_recipe(str(self.recipe_file), overrides)

    def check_same_recipe(self, recipe: Recipe) -> None:
        """A resume must train what the run trained: only the RESUMABLE keys may differ."""
        try:
            before = _flatten(tomllib.loads(self.recipe_file.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"{self.recipe_file}: cannot read the run's recipe: {exc}") from None
        now = _flatten(tomllib.loads(recipe.to_toml()))
        # keys added to recipes since the run was written (absent from its recipe.toml) held their defaults
        defaults = _flatten(tomllib.loads(Recipe(name=recipe.name, codes=recipe.codes, model=recipe.model).to_toml()))
        missing = {k: v for k, v in defaults.items() if k not in before and not any(b.startswith(k + ".") for b in before)}
        before = {**missing, **before}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k) and k not in RESUMABLE)
        if changed:
            raise UserError(f"{self.recipe_file}: the run was trained with other settings ({', '.join(changed)}); "
                            "resume with the same recipe (only trainer.max_steps, intervals and devices may change)")

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """Write ``state`` atomically: objects with a ``state_dict()`` (networks, optimizers,
        regularizers; also inside dicts) as their state dicts, other values (step, tensors) as they are.

        torch.save writes into the run folder's temporary file (``checkpoints/.last.ckpt.tmp``) through
        a file object of ours: nothing goes through the system's temporary folder. A checkpoint being
        written in the background is finished first (one writer per file)."""
        self.finish_writes()
        self._write_checkpoint(state)

    def _write_checkpoint(self, state: Mapping[str, Any]) -> None:
        state = _state_dicts(state)
        with atomic_file(self.checkpoint, needed=_tensor_bytes(state)) as tmp, open(tmp, "wb") as f:
            writer = _Writer(f)
            try:
                torch.save(state, writer)
            except RuntimeError:  # torch's zip writer reports a failed write (a full disk) as its own error
                if writer.error is not None:
                    raise writer.error from None
                raise

    def save_checkpoint_later(self, state: Mapping[str, Any]) -> None:
        """:meth:`save_checkpoint` in a background thread: training goes on while the file reaches the
        disk (the MNIST nets' 160 MB checkpoint took 0.4-1.6 s with its fsync on a 2-core CI machine).
        ``state`` must not change meanwhile: pass a :func:`snapshot`. One write at a time: an earlier
        one is finished first, and its error is raised here or by :meth:`finish_writes`."""
        self.finish_writes()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
        self._writing = self._writer.submit(self._write_checkpoint, state)

    def finish_writes(self) -> None:
        """Wait for the checkpoint :meth:`save_checkpoint_later` is writing; raise its error (a UserError)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def has_checkpoint(self) -> bool:
        """Whether a checkpoint is on disk, asked after the one being written in the background has
        finished (a run that fails must neither miss it nor delete the folder under it). A failed
        write leaves the earlier checkpoint, if any, in place; its error is not raised here."""
        try:
            self.finish_writes()
        except UserError:
            pass
        return self.checkpoint.is_file()

    def load_checkpoint(self, into: Mapping[str, Any], resuming: bool = False) -> dict[str, Any]:
        """Read the checkpoint (``weights_only``: nothing in it is executed) and load each object of
        ``into`` (networks, optimizers) from the entry of the same name; returns the whole checkpoint.

        Any problem is a UserError naming the file: unreadable (``resuming``: "cannot resume from
        it"), not a gan-recipes checkpoint, or weights that do not fit the networks.
        """
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, not a zip/pickle, or holding objects weights_only refuses
            reason = checkpoint_load_error(exc)
            raise UserError(f"{self.checkpoint}: cannot resume from it: {reason}" if resuming
                            else f"{self.checkpoint}: not a readable checkpoint ({reason})") from None
        if not isinstance(state, dict) or not set(CHECKPOINT_KEYS) <= state.keys():
            raise UserError(f"{self.checkpoint}: expected a gan-recipes checkpoint with {', '.join(CHECKPOINT_KEYS)}")
        try:
            for name, target in into.items():
                target.load_state_dict(state[name])
        except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{self.checkpoint}: its weights do not fit the networks of {self.recipe_file}: {one_line(exc)}") from None
        return state

    # ------------------------------------------------------------------ metrics
    def loggers(self, start: int) -> list:
        """A CSVLogger writing metrics.csv, and a TensorBoardLogger in tensorboard/ when tensorboard is
        installed.

        On a resume the rows up to ``start`` are kept and written back at once, atomically (the
        CSVLogger deletes the file it finds); rows after ``start``, or cut short by a kill, are dropped.
        """
        from lightning_fabric.loggers import CSVLogger, TensorBoardLogger

        metrics = self.metrics_file
        fields, kept = _complete_rows(metrics, start)
        csv_logger = CSVLogger(self.path, name="", version="")
        with atomic_file(metrics) if kept else nullcontext(None) as tmp:
            if tmp is not None:
                with open(tmp, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=fields)
                    writer.writeheader()
                    writer.writerows(kept)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "log directory not empty": recipe.toml is there; old rows are kept
                experiment = csv_logger.experiment  # deletes metrics.csv; leaving the block puts the kept rows back
        if kept:
            experiment.metrics_keys = fields  # later rows are appended under the same header
        loggers: list = [csv_logger]
        try:
            loggers.append(TensorBoardLogger(self.path, name="", version="tensorboard"))
        except ModuleNotFoundError:
            pass
        return loggers


def _state_dicts(value: Any) -> Any:
    if hasattr(value, "state_dict"):
        return value.state_dict()
    if isinstance(value, Mapping):
        return {k: _state_dicts(v) for k, v in value.items()}
    return value


class _Writer:
    """The binary file torch.save writes a checkpoint through, keeping the OSError of a failed write."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def snapshot(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` as :meth:`RunDir.save_checkpoint` writes it (state dicts), its tensors copied to the
    CPU: a checkpoint held in memory while training goes on, written later."""
    return _copied(_state_dicts(state))


def _copied(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


def _tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in ``value`` (nested dicts and lists): about the size of its checkpoint."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _complete_rows(metrics: Path, start: int) -> tuple[list[str], list[dict[str, str]]]:
    """The header of ``metrics`` and its rows for steps up to ``start``, without a last line cut short by a kill."""
    try:
        text = metrics.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    reader = csv.DictReader(text[: text.rfind("\n") + 1].splitlines())
    rows = [row for row in reader if None not in row.values() and (row.get("step") or "").isdigit() and int(row["step"]) <= start]
    return list(reader.fieldnames or []), rows
