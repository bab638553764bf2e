"""The training loop: a recipe in, a run folder out, on Lightning Fabric.

Read :func:`train` top to bottom; it follows Lightning Fabric's DCGAN example:

1. Fabric from the recipe's trainer settings, launched (``--devices 2 --strategy ddp`` starts the
   other processes here); rank 0 picks the run folder and writes ``recipe.toml``.
2. G and D built from the model registry (the same weights on every rank), Q hooked on D's
   ``q_layer`` through :meth:`InfoGAN.wrap`; D and Q form one module with one Adam optimizer.
3. Each step: a D+Q update (D on a real batch; D on ``fake.detach()``, whose captured features
   give Q's MI term), then a G update (one D pass on the fake batch: non-saturating GAN loss plus
   the MI term). With ``augment.shift``, every image D sees is first moved by a random shift
   (:mod:`.augment`). Batches, codes and shifts come from generators seeded by (seed, rank, step), so
   each rank has its own stream and a resumed run draws exactly what an uninterrupted one would.
4. rank 0 logs metrics (Fabric's CSVLogger; TensorBoard too when installed) every ``log_every``
   steps, writes a traversal grid per code every ``sample_every`` steps, and checkpoints every
   ``checkpoint_every`` steps and at the end (atomically); at the end the generator goes to
   ``generator.safetensors``. With ``eval_every``, rank 0 also logs :mod:`.evaluate`'s scores
   (``eval/mi/<code>``, ``eval/accuracy/<code>``, ``eval/mig``, ...) every ``eval_every`` steps.

The run folder::

    recipe.toml              the resolved recipe
    metrics.csv              one row per logged step
    samples/step-NNNNNNN-<code>.png   traversal grids (rows = code values, columns = noise)
    checkpoints/last.ckpt    models, optimizers, step, RNG states (fabric.save, weights-only loadable)
    generator.safetensors    the generator and its metadata (export.load_generator)

There is no host sync in a step except at log, sample and checkpoint steps (and with
``trainer.skip_nonfinite``). SIGTERM and Ctrl-C stop after the current step with a checkpoint.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import threading
import time
import tomllib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from lightning_fabric import Fabric
from lightning_fabric.loggers import CSVLogger, TensorBoardLogger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import registry
from .augment import random_shift
from .data.base import AUGMENT_STREAM, NOISE_STREAM, batches, stream_generator
from .errors import RunInterrupted, UserError
from .evaluate import EvalConfig, evaluate_networks, flat_metrics
from .export import checkpoint_load_error, save_generator
from .images import save_grid, traversal_grid
from .models import GANModel
from .recipes import Recipe
from .wrap import InfoGAN

CHECKPOINT = Path("checkpoints") / "last.ckpt"
RUN_FILES = ("recipe.toml", "metrics.csv", "samples", "checkpoints", "generator.safetensors")
# Recipe keys a resumed run may change; any other difference refuses the resume.
RESUMABLE = {
    "description",
    "data.root",
    "data.download",
    "data.num_workers",
    *(f"trainer.{k}" for k in ("max_steps", "log_every", "sample_every", "sample_noise", "checkpoint_every",
                               "eval_every", "skip_nonfinite", "accelerator", "devices", "strategy", "num_nodes")),
}

T = TypeVar("T")
# trainer.eval_every: fewer samples than `gan-recipes eval`, so a periodic evaluation stays short.
EVAL_IN_TRAINING = EvalConfig(generated=512, real=1000, points=1000, votes=100)


@dataclass
class TrainedRun:
    """What :func:`train` returns on every rank: the run folder, the last step and the trained networks
    (unwrapped from Fabric; ``discriminator`` is D, with Q as a DiscriminatorWithQ when the MI term is on)."""

    run_dir: Path
    step: int
    generator: nn.Module
    discriminator: nn.Module


def train(recipe: Recipe, out: str | Path | None = None, resume: bool = False, force: bool = False, progress: bool = True) -> TrainedRun:
    """Train ``recipe`` and write the run folder.

    ``out``: the run folder (default ``runs/<recipe>/<YYYYmmdd-HHMMSS>``). A folder holding another
    run is refused unless ``resume`` (continue from its last checkpoint; without ``out``, the
    newest run of this recipe) or ``force`` (replace it).
    """
    t, spec = recipe.trainer, recipe.codes
    console = Console(stderr=True, soft_wrap=True, highlight=False, markup=False, emoji=False)  # messages stay one line, as written
    try:
        fabric = Fabric(accelerator=t.accelerator, devices=t.devices, strategy=t.strategy, num_nodes=t.num_nodes, precision=t.precision)
    except Exception as exc:  # Fabric raises ValueError, RuntimeError or its MisconfigurationException
        raise UserError(f"trainer: Fabric refuses accelerator={t.accelerator!r} devices={t.devices} strategy={t.strategy!r} "
                        f"precision={t.precision!r}: {' '.join(str(exc).split())}") from None
    _check_cpu_devices(fabric, t.devices)
    fabric.launch()
    rank, world = fabric.global_rank, fabric.world_size

    # The run folder: rank 0 decides; every rank gets the answer or the error. It is written once the
    # networks and the data are ready, so a bad recipe or missing data leaves nothing behind.
    run_dir = _rank_zero_first(fabric, lambda: _choose_run_dir(recipe, out, resume, force), everywhere=False)
    checkpoint = run_dir / CHECKPOINT

    # Networks: the same initial weights on every rank.
    fabric.seed_everything(t.seed, verbose=False)
    model, channels, generator, discriminator, info = build_networks(recipe)
    d_module = info.discriminator_with_q() if info else discriminator

    data_cfg = recipe.data
    build_data = registry.load("datasets", data_cfg.name)
    data = _rank_zero_first(fabric, lambda: build_data(data_cfg, model.image_size, channels), everywhere=True)
    _rank_zero_first(fabric, lambda: _write_run_dir(run_dir, recipe, replace=force and not resume), everywhere=False)

    g_opt, d_opt = recipe.optim.g, recipe.optim.d
    # Fused Adam: one kernel for all parameters (on this CPU the MNIST nets' step took 22 ms, against
    # 104 ms with foreach and 353 ms with the default per-parameter loop).
    fused = fabric.device.type in ("cpu", "cuda")
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=g_opt.lr, betas=tuple(g_opt.betas), weight_decay=g_opt.weight_decay, fused=fused)
    optimizer_d = torch.optim.Adam(d_module.parameters(), lr=d_opt.lr, betas=tuple(d_opt.betas), weight_decay=d_opt.weight_decay, fused=fused)
    if t.channels_last:
        generator.to(memory_format=torch.channels_last)
        d_module.to(memory_format=torch.channels_last)
    if t.compile:
        generator, d_module = torch.compile(generator), torch.compile(d_module)
    generator, optimizer_g = fabric.setup(generator, optimizer_g)
    d_module, optimizer_d = fabric.setup(d_module, optimizer_d)
    g_plain = generator.module  # the unwrapped network: rank 0 samples and exports with it

    state: dict[str, Any] = {
        "generator": generator,
        "discriminator": d_module,
        "optimizer_g": optimizer_g,
        "optimizer_d": optimizer_d,
        "step": 0,
        "rng": _rng_states(fabric),
    }
    if resume:
        try:
            fabric.load(checkpoint, state, weights_only=True)
        except Exception as exc:  # unreadable, truncated, or from other networks
            raise UserError(f"{checkpoint}: cannot resume from it: {checkpoint_load_error(exc)}") from None
        if state["rng"].shape[0] == world:
            torch.set_rng_state(state["rng"][rank].cpu())
    else:
        torch.manual_seed(t.seed + rank)  # anything random beyond the seeded streams differs per rank
    start = state["step"]

    loggers = _loggers(run_dir, start) if fabric.is_global_zero else []
    device = fabric.device
    real_stream = batches(data, t.batch_size, t.seed, rank, start, device, data_cfg.num_workers)
    ones = torch.ones(t.batch_size, device=device)
    zeros = torch.zeros(t.batch_size, device=device)
    shift = recipe.augment.shift
    step_count = torch.tensor(start, device=device)
    first_bad = torch.tensor(-1, device=device)  # the first step with a non-finite loss, without a host sync
    bad_losses = torch.zeros(2, device=device)
    skipped = 0
    last_sampled = last_saved = -1

    def sample(step: int) -> None:
        nonlocal last_sampled
        if fabric.is_global_zero and step != last_sampled:
            for code in spec.names:
                grid = traversal_grid(g_plain, spec, code, t.sample_noise, t.seed, device)
                save_grid(grid, run_dir / "samples" / f"step-{step:07d}-{code}.png", nrow=t.sample_noise)
            if not spec.names:
                with torch.no_grad():
                    g_plain.eval()
                    images = g_plain(spec.sample(64, device, torch.Generator(device).manual_seed(t.seed)).flat)
                    g_plain.train()
                save_grid(images, run_dir / "samples" / f"step-{step:07d}-samples.png")
        last_sampled = step

    def evaluate(step: int) -> None:
        if fabric.is_global_zero and info is not None:
            result = evaluate_networks(g_plain, d_module.module, spec, model.image_size, channels, data,
                                       data_cfg.name == "shapes", EVAL_IN_TRAINING, device)
            for logger in loggers:
                logger.log_metrics(flat_metrics(result), step=step)

    def check_finite() -> None:
        bad_step = fabric.all_reduce(first_bad, reduce_op="max") if world > 1 else first_bad
        if (bad := int(bad_step)) >= 0:
            for logger in loggers:
                logger.save()
            d, g = bad_losses.tolist()
            kept = f"the last good checkpoint {checkpoint} is kept" if checkpoint.is_file() else "no checkpoint was written"
            raise UserError(
                f"non-finite loss at step {bad} (D loss {d}, G loss {g}); {kept}. Lower the learning rates "
                "(optim.g.lr, optim.d.lr), use trainer.precision = \"32-true\", or set trainer.skip_nonfinite = true"
            )

    def save_checkpoint(step: int) -> None:
        nonlocal last_saved
        check_finite()
        state["step"], state["rng"] = step, _rng_states(fabric)
        for logger in loggers:  # metrics first: a resume drops rows after the checkpoint's step
            logger.save()
        _save_atomic(fabric, checkpoint, state)
        last_saved = step

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[stats]}")]
    bar = Progress(*columns, console=console, disable=not (progress and fabric.is_global_zero))
    task = bar.add_task(recipe.name, total=t.max_steps, completed=start, stats="")
    if fabric.is_global_zero:
        console.print(f"run folder: {run_dir}" + (f" (resuming at step {start})" if resume else ""))
    clock, clock_step = time.perf_counter(), start

    with bar, _stop_requests() as stop, _flush_denormals(device):
        for step in range(start, t.max_steps):
            real = next(real_stream)
            if t.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
            codes = spec.sample(t.batch_size, device, generator=stream_generator(t.seed, rank, step, NOISE_STREAM, device))
            fake = generator(codes.flat)
            # recipe.augment: D sees every image, real or fake, moved by a random shift (none at 0).
            moves = stream_generator(t.seed, rank, step, AUGMENT_STREAM, device) if shift else None

            # D and Q: real images, then the detached fakes; Q reads the features D computed on the fakes.
            optimizer_d.zero_grad(set_to_none=True)
            with fabric.no_backward_sync(d_module, enabled=world > 1):  # gradients sync once, after the fake pass
                seen = random_shift(real, shift, moves)
                verdict = _verdict(d_module(seen, with_q=False) if info else d_module(seen))
                loss_real = F.binary_cross_entropy_with_logits(verdict.float(), ones)
                fabric.backward(loss_real)
            out = d_module(random_shift(fake.detach(), shift, moves))
            loss_fake = F.binary_cross_entropy_with_logits(_verdict(out).float(), zeros)
            mi_d = info.regularizer(out[1], codes) if info else None
            fabric.backward(loss_fake + mi_d.loss if mi_d else loss_fake)
            loss_d = (loss_real + loss_fake).detach()
            if _finite_or_skip(fabric, t.skip_nonfinite, loss_d, mi_d):
                optimizer_d.step()
            else:
                skipped += 1

            # G: one D pass on the fakes gives both the GAN loss and Q's MI term.
            optimizer_g.zero_grad(set_to_none=True)
            out = d_module(random_shift(fake, shift, moves))
            loss_g = F.binary_cross_entropy_with_logits(_verdict(out).float(), ones)
            mi_g = info.regularizer(out[1], codes) if info else None
            fabric.backward(loss_g + mi_g.loss if mi_g else loss_g)
            if _finite_or_skip(fabric, t.skip_nonfinite, loss_g.detach(), mi_g):
                optimizer_g.step()
            else:
                skipped += 1

            step_count += 1
            if not t.skip_nonfinite:
                total_d = loss_d + (mi_d.loss.detach() if mi_d else 0)
                total_g = loss_g.detach() + (mi_g.loss.detach() if mi_g else 0)
                newly_bad = (first_bad < 0) & ~(torch.isfinite(total_d) & torch.isfinite(total_g))
                first_bad = torch.where(newly_bad, step_count, first_bad)
                bad_losses = torch.where(newly_bad, torch.stack([total_d, total_g]), bad_losses)
            done = step + 1
            bar.update(task, completed=done)

            if done % t.log_every == 0 or done == t.max_steps:
                check_finite()
                now = time.perf_counter()
                rate = (done - clock_step) / max(now - clock, 1e-9)
                clock, clock_step = now, done
                named = {"loss/d": loss_d, "loss/g": loss_g.detach()}
                named.update({k: v for k, v in (mi_g.stats if mi_g else {}).items()})
                values = dict(zip(named, torch.stack([v.float() for v in named.values()]).tolist()))
                values.update({"steps_per_s": rate, "images_per_s": rate * t.batch_size * world, "skipped": skipped})
                for logger in loggers:
                    logger.log_metrics(values, step=done)
                mi_text = f"  MI {values['mi']:.2f}" if "mi" in values else ""
                bar.update(task, stats=f"{rate:.1f} it/s  {values['images_per_s']:.0f} img/s  "
                                       f"D {values['loss/d']:.3f}  G {values['loss/g']:.3f}{mi_text}")
            if t.sample_every and done % t.sample_every == 0:
                sample(done)
            if t.eval_every and done % t.eval_every == 0:
                evaluate(done)
            if t.checkpoint_every and done % t.checkpoint_every == 0:
                save_checkpoint(done)
            if stop.agreed(fabric, every=1 if world == 1 else t.log_every, step=done):
                if last_saved != done:
                    save_checkpoint(done)
                raise RunInterrupted(
                    f"stopped at step {done} by {stop.signal_name}; checkpoint saved to {checkpoint}; "
                    f"continue with: gan-recipes run {_recipe_ref(recipe)} --resume --out {run_dir}"
                )

    end = max(start, t.max_steps)
    if world > 1:  # DDP sends rank 0's buffers (BatchNorm statistics) before each forward; once more at the end
        for buffer in (*g_plain.buffers(), *d_module.module.buffers()):
            torch.distributed.broadcast(buffer, src=0)
    sample(end)
    if last_saved != end:
        save_checkpoint(end)
    if fabric.is_global_zero:
        weights = save_generator(
            run_dir / "generator.safetensors", g_plain, spec, recipe.model.name,
            {"channels": channels, **recipe.model.kwargs}, recipe.to_toml(), end,
        )
        for logger in loggers:
            logger.finalize("success")
        console.print(f"done: {end} steps; generator: {weights}")
    fabric.barrier()
    return TrainedRun(run_dir, end, g_plain, d_module.module)


def build_networks(recipe: Recipe) -> tuple[GANModel, int, torch.nn.Module, torch.nn.Module, InfoGAN | None]:
    """The recipe's registered model, its channel count, G and D initialised, and Q hooked on D
    (None when the regularizer is disabled). Errors in the recipe's model settings are UserErrors."""
    spec = recipe.codes
    model = registry.load("models", recipe.model.name)
    channels = recipe.model.channels or model.channels
    try:
        generator, discriminator = model.build(spec.input_dim, channels, **recipe.model.kwargs)
    except TypeError as exc:
        raise UserError(f"{recipe.origin}: model.kwargs: model {recipe.model.name!r} refuses them: {exc}") from None
    info = None
    if recipe.regularizer.enabled:
        q = recipe.q_head
        try:
            info = InfoGAN.wrap(
                generator, discriminator, spec, q.layer or model.q_layer, recipe.regularizer.lambda_cat,
                recipe.regularizer.lambda_cont, image_input=False, hidden=q.hidden, fixed_std=q.fixed_std,
                detach_trunk=q.detach_trunk,
            )
        except ValueError as exc:
            raise UserError(f"{recipe.origin}: q_head.layer: {exc}") from None
    return model, channels, generator, discriminator, info


# --------------------------------------------------------------------------- the step's helpers
def _verdict(output: Any) -> torch.Tensor:
    """D's logits (N,) from D alone or from DiscriminatorWithQ's (logits, QOutput)."""
    return output[0] if isinstance(output, tuple) else output


def _finite_or_skip(fabric: Fabric, enabled: bool, loss: torch.Tensor, mi: Any) -> bool:
    """With ``skip_nonfinite``: whether this update's loss is finite on every rank (one host sync)."""
    if not enabled:
        return True
    total = loss + (mi.loss.detach() if mi else 0)
    ok = torch.isfinite(total).float()
    if fabric.world_size > 1:
        ok = fabric.all_reduce(ok, reduce_op="sum") / fabric.world_size
    return bool(ok == 1)


def _check_cpu_devices(fabric: Fabric, devices: int) -> None:
    """On CPU a device is a process: more processes than this machine's usable cores is refused.
    (Fabric checks GPU counts itself.)"""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if fabric.device.type == "cpu" and devices > cores:
        raise UserError(f"trainer.devices = {devices}: on CPU each device is a training process and this machine has "
                        f"{cores} CPU cores; use --devices {cores} or fewer, or --accelerator gpu")


def _rng_states(fabric: Fabric) -> torch.Tensor:
    """Every rank's global CPU RNG state, (world_size, state_bytes) uint8."""
    local = torch.get_rng_state()
    if fabric.world_size == 1:
        return local[None]
    return fabric.all_gather(local.to(fabric.device)).reshape(fabric.world_size, -1).cpu()


# --------------------------------------------------------------------------- ranks, folders, files
def _rank_zero_first(fabric: Fabric, fn: Callable[[], T], everywhere: bool) -> T:
    """``fn()`` on rank 0, then (``everywhere``) on the other ranks, or else rank 0's result is broadcast.

    A UserError on any rank is raised on every rank, so no process is left waiting for the others.
    """
    result, message = None, None
    if fabric.is_global_zero:
        try:
            result = fn()
        except UserError as exc:
            message = str(exc)
    message = fabric.broadcast(message, src=0)
    if message is None and fabric.world_size > 1:
        if everywhere:
            if not fabric.is_global_zero:
                try:
                    result = fn()
                except UserError as exc:
                    message = str(exc)
            messages = [None] * fabric.world_size
            torch.distributed.all_gather_object(messages, message)
            message = next((m for m in messages if m), None)
        else:
            result = fabric.broadcast(result, src=0)
    if message is not None:
        raise UserError(message)
    return result  # type: ignore[return-value]


def _choose_run_dir(recipe: Recipe, out: str | Path | None, resume: bool, force: bool) -> Path:
    """Pick the run folder and check that it may be used (a run in it is only continued or replaced on request)."""
    if out is None:
        base = Path("runs") / recipe.name
        if resume:
            runs = sorted(p for p in base.glob("*") if (p / CHECKPOINT).is_file())
            if not runs:
                raise UserError(f"no run of {recipe.name} to resume under {base}/ (none has {CHECKPOINT}); pass --out RUN_DIR")
            run_dir = runs[-1]
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir, i = base / stamp, 1
            while run_dir.exists():
                run_dir, i = base / f"{stamp}-{i}", i + 1
    else:
        run_dir = Path(out)
        held = [name for name in RUN_FILES if (run_dir / name).exists()]
        if resume and not (run_dir / CHECKPOINT).is_file():
            raise UserError(f"{run_dir}: nothing to resume: {run_dir / CHECKPOINT} does not exist")
        if held and not resume and not force:
            raise UserError(f"{run_dir} holds another run ({', '.join(held)}): pass --resume to continue it, "
                            "--force to replace it, or choose another --out")
    if resume:
        _check_same_recipe(run_dir / "recipe.toml", recipe)
    return run_dir


def _write_run_dir(run_dir: Path, recipe: Recipe, replace: bool) -> None:
    """Delete the run there (``replace``: --force), write recipe.toml, create samples/ and checkpoints/."""
    for name in RUN_FILES if replace else ():
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    for leftover in (*run_dir.glob(".*.tmp"), *(run_dir / "checkpoints").glob(".*.tmp")):  # from a run killed while saving
        leftover.unlink()
    tmp = run_dir / ".recipe.toml.tmp"
    tmp.write_text(recipe.to_toml(), encoding="utf-8")
    os.replace(tmp, run_dir / "recipe.toml")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_same_recipe(saved: Path, recipe: Recipe) -> None:
    """A resume must train what the run trained: only the RESUMABLE keys may differ."""
    try:
        before = _flatten(tomllib.loads(saved.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{saved}: cannot read the run's recipe: {exc}") from None
    now = _flatten(tomllib.loads(recipe.to_toml()))
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k) and k not in RESUMABLE)
    if changed:
        raise UserError(f"{saved}: the run was trained with other settings ({', '.join(changed)}); "
                        "resume with the same recipe (only trainer.max_steps, intervals and devices may change)")


def _recipe_ref(recipe: Recipe) -> str:
    return recipe.name if recipe.origin.startswith("recipe ") else recipe.origin


def _save_atomic(fabric: Fabric, path: Path, state: dict[str, Any]) -> None:
    """fabric.save to a temporary file, fsync it, and rename it over ``path`` (rank 0), then wait for all ranks."""
    tmp = path.with_name(f".{path.name}.tmp")
    fabric.save(tmp, state)
    if fabric.is_global_zero:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    fabric.barrier()


def _loggers(run_dir: Path, start: int) -> list:
    """CSVLogger writing run_dir/metrics.csv, and a TensorBoardLogger in run_dir/tensorboard when
    tensorboard is installed.

    On a resume the rows up to ``start`` are kept and written back at once, atomically (the CSVLogger
    deletes the file it finds); rows after ``start``, or cut short by a kill, are dropped.
    """
    metrics, tmp = run_dir / "metrics.csv", run_dir / ".metrics.csv.tmp"
    fields, kept = _complete_rows(metrics, start)
    if kept:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)
            f.flush()
            os.fsync(f.fileno())
    csv_logger = CSVLogger(run_dir, name="", version="")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "log directory not empty": recipe.toml is there; old rows are kept above
        experiment = csv_logger.experiment
    if kept:
        os.replace(tmp, metrics)
        experiment.metrics_keys = fields  # later rows are appended under the same header
    loggers: list = [csv_logger]
    try:
        loggers.append(TensorBoardLogger(run_dir, name="", version="tensorboard"))
    except ModuleNotFoundError:
        pass
    return loggers


def _complete_rows(metrics: Path, start: int) -> tuple[list[str], list[dict[str, str]]]:
    """The header of ``metrics`` and its rows for steps up to ``start``, without a last line cut short by a kill."""
    try:
        text = metrics.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    reader = csv.DictReader(text[: text.rfind("\n") + 1].splitlines())
    rows = [row for row in reader if None not in row.values() and (row.get("step") or "").isdigit() and int(row["step"]) <= start]
    return list(reader.fieldnames or []), rows


class _StopRequests:
    """SIGTERM / SIGINT set a flag; the loop stops after the step it is in. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def agreed(self, fabric: Fabric, every: int, step: int) -> bool:
        """Whether to stop now; with several processes all ranks decide together every ``every`` steps."""
        if fabric.world_size == 1:
            return self.signal_name is not None
        if step % every:
            return False
        flag = fabric.all_reduce(torch.tensor(float(self.signal_name is not None), device=fabric.device), reduce_op="sum")
        if flag.item() > 0 and self.signal_name is None:
            self.signal_name = "a signal to another process"
        return flag.item() > 0


@contextmanager
def _flush_denormals(device: torch.device) -> Iterator[None]:
    """On CPU, denormal floats count as zero inside the block (tiny Adam moments made steps up to 3x
    slower); torch's default, off, is restored after."""
    if device.type != "cpu":
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextmanager
def _stop_requests() -> Iterator[_StopRequests]:
    stop = _StopRequests()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, stop.handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
