"""The training loop: a recipe in, a run folder out, on Lightning Fabric.

:func:`train` reads top to bottom as Lightning Fabric's trainer example does (fit, loop, step):

1. Set-up: Fabric from the recipe's trainer settings, launched (``--devices 2 --strategy ddp`` starts
   the other processes here); the run folder, chosen by rank 0 (:class:`~.runs.RunDir`); G, D and Q
   (:mod:`.networks`; the same initial weights on every rank) and the data; Adam for G and for D+Q,
   set up by Fabric; with ``resume``, the checkpoint.
2. The loop: each step draws its batch, codes and shifts from generators seeded by (seed, rank,
   step), so each rank has its own stream and a resumed run draws exactly what an uninterrupted one
   would, and runs :func:`~.step.train_step`. Then the schedule: metrics every ``log_every`` steps
   (Fabric's CSVLogger, each row written to metrics.csv as it is logged; TensorBoard too when
   installed; on stderr a progress bar on a terminal, else a plain line), a traversal grid per code every
   ``sample_every``, :mod:`.evaluate`'s scores every ``eval_every`` (``eval/mi/<code>``,
   ``eval/accuracy/<code>``, ``eval/mig``, ...), a checkpoint every ``checkpoint_every``.
3. The end: BatchNorm's running statistics recomputed from generated batches (:mod:`.batchnorm`:
   they trail fast-changing weights, and whatever reads the networks later reads them in eval mode),
   a last grid and checkpoint, and the generator in ``generator.safetensors``.

Only rank 0 writes (the layout: :mod:`.runs`). There is no host sync in a step except at log,
sample and checkpoint steps (and with ``trainer.skip_nonfinite``). SIGTERM and Ctrl-C stop after the
current step with a checkpoint.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch
from torch import nn
from lightning_fabric import Fabric
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .codes import LatentBatch, LatentCodeSpec
from .cpu import cpu_settings
from .data.base import AUGMENT_STREAM, MORE_NOISE_STREAM, NOISE_STREAM, ImageData, batches, stream_generator
from .errors import RunInterrupted, UserError, one_line
from .evaluate import EvalConfig, evaluate_networks
from .export import save_run_generator
from .images import save_grid, traversal_grid
from .modes import evaluating
from .networks import Networks, build_networks, build_regularizers, load_data, settle_batchnorm
from .plots import plot_after_run
from .recipes import Recipe, TrainerConfig
from .runs import RunDir, snapshot
from .signals import stop_signals_to
from .step import GAN, Batch, Regularizer, StepResult, linear_ramp, train_step

T = TypeVar("T")
# With trainer.skip_nonfinite, a run that skipped more than this share of its updates (D's and G's, since
# it started or resumed) stops with an error at its next checkpoint instead of saving what is left.
MAX_SKIPPED = 0.25
# trainer.eval_every: fewer samples than `gan-recipes eval`, so a periodic evaluation stays short
# (disentanglement_lib's protocol only; `gan-recipes eval` adds the InfoGAN-CR paper's).
EVAL_IN_TRAINING = EvalConfig(generated=512, real=1000, points=1000, votes=100, paper_groups=0)


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
    fabric = _launch(recipe)
    # The run folder: rank 0 decides (and locks it); every rank gets the answer or the error. It is
    # written once the networks and the data are ready, and a start that fails before its first
    # checkpoint removes what it wrote, so a bad recipe or bad data leaves nothing behind.
    run = _rank_zero_first(fabric, lambda: RunDir.choose(recipe, out, resume, force), everywhere=False)
    try:
        return _fit(fabric, recipe, run, resume, force, progress)
    except UserError as exc:
        if fabric.is_global_zero and not resume and not isinstance(exc, RunInterrupted) and not run.has_checkpoint():
            run.discard()
        raise
    finally:
        if fabric.is_global_zero:
            run.release()


def _fit(fabric: Fabric, recipe: Recipe, run: RunDir, resume: bool, force: bool, progress: bool) -> TrainedRun:
    """Set-up, the loop and the end of :func:`train`, in a chosen run folder."""
    t = recipe.trainer
    fabric.seed_everything(t.seed, verbose=False)  # the same initial weights on every rank
    nets = build_networks(recipe)
    data = _rank_zero_first(fabric, lambda: load_data(recipe.data, nets), everywhere=True)
    _rank_zero_first(fabric, lambda: run.create(recipe, replace=force and not resume), everywhere=False)
    gan, regularizers = set_up_training(fabric, recipe, nets)
    if resume:
        start = _resume(fabric, run, gan, regularizers)
    else:
        start = 0
        torch.manual_seed(t.seed + fabric.global_rank)  # anything random beyond the seeded streams differs per rank
    loop = _Loop(fabric, recipe, run, nets, gan, regularizers, data, start, progress)
    loop.say(f"run folder: {run.path}" + (f" (resuming at step {start})" if resume else ""))

    with loop.bar, _stop_requests() as stop, cpu_settings(fabric.device):
        for step in range(start, t.max_steps):
            result = train_step(fabric, gan, loop.draw(step), regularizers, t.skip_nonfinite)
            done = loop.count(step, result)
            loop.confirm_checkpoint()  # the checkpoint held back at the step before: its weights gave finite losses
            if done % t.log_every == 0 or done == t.max_steps:
                loop.log(done, result)
            if done == t.max_steps:  # the last grids, checkpoint and generator are read in eval mode (batchnorm.py)
                settle_batchnorm(recipe, loop.generator, gan.discriminator.module)
            if t.sample_every and done % t.sample_every == 0:
                loop.sample(done)
            if t.eval_every and done % t.eval_every == 0:
                loop.evaluate(done)
            if t.checkpoint_every and done % t.checkpoint_every == 0:
                loop.checkpoint(done)
            if stop.agreed(fabric, every=1 if fabric.world_size == 1 else t.log_every, step=done):
                loop.checkpoint(done, now=True)
                raise RunInterrupted(
                    f"stopped at step {done} by {stop.signal_name}; checkpoint saved to {run.checkpoint}; "
                    f"continue with: gan-recipes run {_recipe_ref(recipe)} --resume --out {run.path}"
                )
    return loop.finish(max(start, t.max_steps))


# --------------------------------------------------------------------------- set-up
def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _launch(recipe: Recipe) -> Fabric:
    """Fabric for the recipe's trainer settings, launched; its refusals (and too many CPU processes) as UserErrors."""
    t = recipe.trainer
    try:
        fabric = Fabric(accelerator=t.accelerator, devices=t.devices, strategy=t.strategy, num_nodes=t.num_nodes, precision=t.precision)
    except Exception as exc:  # Fabric raises ValueError, RuntimeError or its MisconfigurationException
        raise UserError(f"trainer: Fabric refuses accelerator={t.accelerator!r} devices={t.devices} strategy={t.strategy!r} "
                        f"precision={t.precision!r}: {one_line(exc)}") from None
    # On CPU a device is a process: more processes than this machine's usable cores is refused (Fabric checks GPUs).
    cores = usable_cores()
    if fabric.device.type == "cpu" and t.devices > cores:
        raise UserError(f"trainer.devices = {t.devices}: on CPU each device is a training process and this machine has "
                        f"{cores} CPU cores; use --devices {cores} or fewer, or --accelerator gpu")
    fabric.launch()
    return fabric


def set_up_training(fabric: Fabric, recipe: Recipe, nets: Networks) -> tuple[GAN, list[Regularizer]]:
    """What :func:`~gan_infogan_plugin.step.train_step` takes besides a batch: G, D and their optimizers
    set up by Fabric (:func:`_setup`), and the recipe's regularizers, each set up on them."""
    gan = _setup(fabric, recipe, nets)
    regularizers = build_regularizers(recipe, nets)
    for regularizer in regularizers:
        regularizer.setup(fabric, gan)
    return gan, regularizers


def _setup(fabric: Fabric, recipe: Recipe, nets: Networks) -> GAN:
    """Adam for G and for D+Q, the recipe's memory format and compilation, and Fabric's set-up."""
    g_opt, d_opt = recipe.optim.g, recipe.optim.d
    generator, discriminator = nets.generator, nets.discriminator
    # Fused Adam: one kernel for all parameters (on this CPU the MNIST nets' step took 22 ms, against
    # 104 ms with foreach and 353 ms with the default per-parameter loop).
    fused = fabric.device.type in ("cpu", "cuda")
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=g_opt.lr, betas=tuple(g_opt.betas), weight_decay=g_opt.weight_decay, fused=fused)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=d_opt.lr, betas=tuple(d_opt.betas), weight_decay=d_opt.weight_decay, fused=fused)
    if recipe.trainer.channels_last:
        generator.to(memory_format=torch.channels_last)
        discriminator.to(memory_format=torch.channels_last)
    if recipe.trainer.compile:
        generator, discriminator = compiled((generator, discriminator), recipe.trainer.compile_mode, fabric.device)
    generator, optimizer_g = fabric.setup(generator, optimizer_g)
    discriminator, optimizer_d = fabric.setup(discriminator, optimizer_d)
    return GAN(generator, discriminator, optimizer_g, optimizer_d, has_q=nets.info is not None)


# torch.compile's modes that capture CUDA graphs: their replays reuse the graphs' output memory, and on a
# GPU they overwrote the fakes a step still reads ("accessing tensor output of CUDAGraphs that has been
# overwritten by a subsequent run"; torch 2.11, H200, README "Performance").
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compiled(networks: tuple[nn.Module, ...], mode: str, device: torch.device) -> tuple[nn.Module, ...]:
    """``torch.compile`` of each network in ``mode`` for training on ``device``; on CUDA, the modes
    that capture CUDA graphs are refused (UserError) and inductor keeps the layouts eager gives."""
    if device.type == "cuda":
        if mode in CUDA_GRAPH_MODES:
            raise UserError(f"trainer.compile_mode = {mode!r} captures CUDA graphs, whose replays overwrite the fakes "
                            f"a training step still reads; use \"default\" or \"max-autotune-no-cudagraphs\"")
        import torch._inductor.config as inductor

        # Inductor's own choice of layouts failed a stride assertion in convolution_backward on the
        # MNIST nets (torch 2.11, H200); with the layouts of eager mode the compiled step ran.
        inductor.layout_optimization = False
    return tuple(torch.compile(network, mode=mode) for network in networks)


def _checkpoint_state(gan: GAN) -> dict[str, Any]:
    """The networks (unwrapped from Fabric) and optimizers, by their names in a checkpoint."""
    return {"generator": gan.generator.module, "discriminator": gan.discriminator.module,
            "optimizer_g": gan.optimizer_g, "optimizer_d": gan.optimizer_d}


def _resume(fabric: Fabric, run: RunDir, gan: GAN, regularizers: list[Regularizer]) -> int:
    """Load the run's checkpoint into the networks, optimizers and regularizers and this rank's RNG; its step."""
    state = run.load_checkpoint(_checkpoint_state(gan), resuming=True)
    for regularizer in regularizers:
        regularizer.load_state_dict(state.get("regularizers", {}).get(regularizer.name, {}))
    rng = state.get("rng")
    if rng is not None and rng.shape[0] == fabric.world_size:
        torch.set_rng_state(rng[fabric.global_rank].cpu())
    return int(state["step"])


# --------------------------------------------------------------------------- the loop's state
class _Loop:
    """What the loop keeps between steps, and the schedule's actions (rank 0 writes, every rank syncs)."""

    def __init__(self, fabric: Fabric, recipe: Recipe, run: RunDir, nets: Networks, gan: GAN,
                 regularizers: list[Regularizer], data: ImageData, start: int, progress: bool) -> None:
        self.fabric, self.recipe, self.run, self.nets, self.gan, self.data = fabric, recipe, run, nets, gan, data
        self.regularizers = regularizers
        t, device = recipe.trainer, fabric.device
        self.generator = gan.generator.module  # the unwrapped networks: rank 0 samples, evaluates and exports with them
        self.loggers = run.loggers(start) if fabric.is_global_zero else []
        self.real = batches(data, t.batch_size, t.seed, fabric.global_rank, start, device, recipe.data.num_workers)
        self.nonfinite = _NonFinite(start, device)
        self.start, self.skipped = start, 0
        self.last_sampled = self.last_saved = -1
        self.pending: tuple[int, dict[str, Any] | None] | None = None  # (step, state on rank 0) of a checkpoint held back
        self.clock, self.clock_step = time.perf_counter(), start
        self.started = self.clock
        self.console = Console(stderr=True, soft_wrap=True, highlight=False, markup=False, emoji=False)  # one line, as written
        # Not on a terminal (a log file, a scheduler), rich draws no bar until the end: a plain line per log instead.
        self.lines = progress and fabric.is_global_zero and not self.console.is_terminal
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"),
                   TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[stats]}")]
        self.bar = Progress(*columns, console=self.console, disable=not (progress and fabric.is_global_zero) or self.lines)
        self.task = self.bar.add_task(recipe.name, total=t.max_steps, completed=start, stats="")

    def say(self, message: str) -> None:
        if self.fabric.is_global_zero:
            self.console.print(message)

    def draw(self, step: int) -> Batch:
        """This rank's real images, codes and shifts for ``step``, from the (seed, rank, step) streams."""
        real = next(self.real)
        if self.recipe.trainer.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        return training_batch(self.recipe, real, self.fabric.global_rank, step, self.fabric.device)

    def count(self, step: int, result: StepResult) -> int:
        """Book one finished step (skipped updates, the first non-finite loss, the bar); the steps done."""
        self.skipped += result.skipped
        self.nonfinite.observe(result, tracked=not self.recipe.trainer.skip_nonfinite)
        self.bar.update(self.task, completed=step + 1)
        return step + 1

    def log(self, step: int, result: StepResult) -> None:
        """Metrics of the last step, throughput since the last log, and the bar's figures (one host sync)."""
        self.nonfinite.check(self.fabric, self.run, self.loggers)
        now = time.perf_counter()
        rate = (step - self.clock_step) / max(now - self.clock, 1e-9)
        self.clock, self.clock_step = now, step
        stats = result.stats()
        values = dict(zip(stats, torch.stack([v.float() for v in stats.values()]).tolist()))
        images_per_s = rate * self.recipe.trainer.batch_size * self.fabric.world_size
        values.update({"steps_per_s": rate, "images_per_s": images_per_s, "skipped": self.skipped})
        for logger in self.loggers:
            logger.log_metrics(values, step=step)
            logger.save()  # the row reaches metrics.csv now, not at the next checkpoint
        losses = f"{rate:.1f} it/s  {images_per_s:.0f} img/s  D {values['loss/d']:.3f}  G {values['loss/g']:.3f}"
        if self.lines:
            per_code = " ".join(f"{key[3:]} {value:.2f}" for key, value in values.items() if key.startswith("mi/"))
            left = (self.recipe.trainer.max_steps - step) / rate if rate > 0 else 0.0
            self.say(f"step {step}/{self.recipe.trainer.max_steps}  {losses}{f'  MI {per_code}' if per_code else ''}  "
                     f"elapsed {timedelta(seconds=round(now - self.started))}  ETA {timedelta(seconds=round(left))}")
        mi_text = f"  MI (sum over codes) {values['mi']:.2f}" if "mi" in values else ""
        self.bar.update(self.task, stats=f"{losses}{mi_text}")

    def sample(self, step: int) -> None:
        """Rank 0: a traversal grid per code (rows = code values, columns = noise), or 64 samples without codes."""
        t, spec, device = self.recipe.trainer, self.recipe.codes, self.fabric.device
        if self.fabric.is_global_zero and step != self.last_sampled:
            for code in spec.names:
                grid = traversal_grid(self.generator, spec, code, t.sample_noise, t.seed, device)
                save_grid(grid, self.run.sample_file(step, code), nrow=t.sample_noise)
            if not spec.names:
                with evaluating(self.generator):
                    images = self.generator(spec.sample(64, device, torch.Generator(device).manual_seed(t.seed)).flat)
                save_grid(images, self.run.sample_file(step, "samples"))
        self.last_sampled = step

    def evaluate(self, step: int) -> None:
        """Rank 0: :func:`~.evaluate.evaluate_networks` (fewer samples than ``gan-recipes eval``), logged as ``eval/...``."""
        if self.fabric.is_global_zero and self.nets.info is not None:
            result = evaluate_networks(self.generator, self.gan.discriminator.module, self.recipe.codes, self.data,
                                       EVAL_IN_TRAINING, self.fabric.device)
            for logger in self.loggers:
                logger.log_metrics(result.flat(), step=step)
                logger.save()

    def checkpoint(self, step: int, now: bool = False, background: bool = False) -> None:
        """A checkpoint of ``step``: held back (a CPU copy on rank 0) until the next step's losses show its
        weights are good (:meth:`confirm_checkpoint`), then written in the background; or with ``now`` (a
        stop, the end) written at once after a check that the weights are finite, every rank waiting for
        it unless ``background`` (the caller then waits with ``run.finish_writes``)."""
        if step == self.last_saved:
            return
        self.nonfinite.check(self.fabric, self.run, self.loggers)
        self._check_skipped(step)
        state = {**_checkpoint_state(self.gan), "regularizers": {r.name: r for r in self.regularizers},
                 "step": step, "rng": _rng_states(self.fabric)}
        copy = snapshot(state) if self.fabric.is_global_zero else None
        self.pending = None if now else (step, copy)
        if now:
            self._write(step, copy, background)

    def confirm_checkpoint(self) -> None:
        """Write the checkpoint held back, now that the step after it had finite losses (on every rank)."""
        if self.pending is None:
            return
        self.nonfinite.check(self.fabric, self.run, self.loggers)
        (step, state), self.pending = self.pending, None
        self._write(step, state, background=True)

    def _write(self, step: int, state: dict[str, Any] | None, background: bool) -> None:
        """Rank 0: the metrics, then the checkpoint, if its networks' weights are all finite; written in
        a background thread (training goes on), or else at once with every rank waiting for it."""
        if self.fabric.is_global_zero:
            bad = [name for name in ("generator", "discriminator") if not _finite(state[name])]
            if bad:
                for logger in self.loggers:
                    logger.save()
                raise UserError(f"the {' and '.join(bad)} weights are not finite at step {step}: nothing saved; "
                                f"{self.nonfinite.kept(self.run)}. {NONFINITE_ADVICE}")
            for logger in self.loggers:  # metrics first: a resume drops rows after the checkpoint's step
                logger.save()
            if background:
                self.run.save_checkpoint_later(state)
            else:
                self.run.save_checkpoint(state)
        if not background:
            self.fabric.barrier()
        self.last_saved = step

    def _check_skipped(self, step: int) -> None:
        """With trainer.skip_nonfinite: stop when more than MAX_SKIPPED of the updates since the start were skipped."""
        updates = 2 * (step - self.start)
        if updates and self.skipped > MAX_SKIPPED * updates:
            for logger in self.loggers:
                logger.save()
            raise UserError(f"trainer.skip_nonfinite: {self.skipped} of {updates} updates since step {self.start} were skipped "
                            f"for non-finite losses (more than {MAX_SKIPPED:.0%}); stopped at step {step}, "
                            f"{self.nonfinite.kept(self.run)}. {NONFINITE_ADVICE}")

    def finish(self, end: int) -> TrainedRun:
        """The last grid and checkpoint, then (rank 0) ``metrics.png`` and ``generator.safetensors``."""
        fabric, discriminator = self.fabric, self.gan.discriminator.module
        if fabric.world_size > 1:  # DDP sends rank 0's buffers (BatchNorm statistics) before each forward; once more at the end
            for buffer in (*self.generator.buffers(), *discriminator.buffers()):
                torch.distributed.broadcast(buffer, src=0)
        self.sample(end)
        self.checkpoint(end, now=True, background=True)  # written while metrics.png is drawn
        if fabric.is_global_zero:
            for logger in self.loggers:
                logger.finalize("success")
            plotted = plot_after_run(self.run.path)  # metrics.png, or how to get it (matplotlib is optional)
            self.run.finish_writes()  # the generator is exported only beside a whole checkpoint of its step
            weights = save_run_generator(self.run.generator_file, self.generator, self.recipe, self.nets.channels, end)
            self.say(plotted)
            self.say(f"done: {end} steps; generator: {weights}")
        fabric.barrier()
        return TrainedRun(self.run.path, end, self.generator, discriminator)


class _NonFinite:
    """The first step whose losses (regularizer terms included) were not finite, tracked on the
    device without a host sync; :meth:`check` reads it (at log and checkpoint steps)."""

    def __init__(self, start: int, device: torch.device) -> None:
        self.step_count = torch.tensor(start, device=device)
        self.first_bad = torch.tensor(-1, device=device)
        self.bad_losses = torch.zeros(2, device=device)

    def observe(self, result: StepResult, tracked: bool) -> None:
        self.step_count += 1
        if tracked:
            newly_bad = (self.first_bad < 0) & ~(torch.isfinite(result.total_d) & torch.isfinite(result.total_g))
            self.first_bad = torch.where(newly_bad, self.step_count, self.first_bad)
            self.bad_losses = torch.where(newly_bad, torch.stack([result.total_d, result.total_g]), self.bad_losses)

    def check(self, fabric: Fabric, run: RunDir, loggers: list) -> None:
        """Raise a UserError (after writing the metrics) if any rank saw a non-finite loss."""
        bad_step = fabric.all_reduce(self.first_bad, reduce_op="max") if fabric.world_size > 1 else self.first_bad
        if (bad := int(bad_step)) >= 0:
            for logger in loggers:
                logger.save()
            d, g = self.bad_losses.tolist()
            raise UserError(f"non-finite loss at step {bad} (D loss {d}, G loss {g}); {self.kept(run)}. {NONFINITE_ADVICE}"
                            ", or set trainer.skip_nonfinite = true")

    @staticmethod
    def kept(run: RunDir) -> str:
        """What a run stopped for non-finite values keeps."""
        return f"the last good checkpoint {run.checkpoint} is kept" if run.has_checkpoint() else "no checkpoint was written"


NONFINITE_ADVICE = "Lower the learning rates (optim.g.lr, optim.d.lr) or use trainer.precision = \"32-true\""


def training_batch(recipe: Recipe, real: torch.Tensor, rank: int, step: int, device) -> Batch:
    """The :class:`~.step.Batch` of ``step`` on ``rank`` around the real images ``real`` (N, C, H, W):
    its codes (:func:`training_codes`) and D's shifts, from the (seed, rank, step) streams."""
    t = recipe.trainer
    codes, g_codes = training_codes(recipe.codes, t, rank, step, device)
    shift = recipe.augment.shift  # D sees every image, real or fake, moved by a random shift (none at 0)
    moves = stream_generator(t.seed, rank, step, AUGMENT_STREAM, device) if shift else None
    return Batch(step, real, codes, shift, moves, g_codes, reuse_fakes=not t.fresh_codes)


def training_codes(spec: LatentCodeSpec, t: TrainerConfig, rank: int, step: int, device) -> tuple[LatentBatch, tuple[LatentBatch, ...]]:
    """The codes of ``step`` on ``rank``, (batch_size, ...) each, from the (seed, rank, step) streams: D's
    fakes' codes, and one set per G update that draws codes of its own (``g_steps``, less the one that
    reuses D's fakes unless ``fresh_codes``). During ``noise_warmup`` the noise is the prior's draw times a
    factor growing linearly from ``noise_start`` to 1, so that the categorical codes, not the noise,
    draw G's first clusters: the spec's own noise scale, times that factor, for this step's draws."""
    if step < t.noise_warmup:
        spec = replace(spec, noise_scale=spec.noise_scale * linear_ramp(step, t.noise_warmup, t.noise_start))
    codes = spec.sample(t.batch_size, device, generator=stream_generator(t.seed, rank, step, NOISE_STREAM, device))
    fresh = t.g_steps if t.fresh_codes else t.g_steps - 1
    g_codes = tuple(spec.sample(t.batch_size, device, generator=stream_generator(t.seed, rank, step, MORE_NOISE_STREAM + i, device))
                    for i in range(fresh))
    return codes, g_codes


def _finite(state: dict[str, torch.Tensor]) -> bool:
    """Whether every floating-point tensor of a state dict is finite (one host sync)."""
    checks = [torch.isfinite(v).all() for v in state.values() if v.is_floating_point()]
    return bool(torch.stack(checks).all()) if checks else True


def _rng_states(fabric: Fabric) -> torch.Tensor:
    """Every rank's global CPU RNG state, (world_size, state_bytes) uint8."""
    local = torch.get_rng_state()
    if fabric.world_size == 1:
        return local[None]
    # torch.distributed's own all_gather: Fabric's goes through the deprecated torch.distributed.nn.functional one.
    gathered = [torch.empty_like(local, device=fabric.device) for _ in range(fabric.world_size)]
    torch.distributed.all_gather(gathered, local.to(fabric.device))
    return torch.stack(gathered).cpu()


def _recipe_ref(recipe: Recipe) -> str:
    return recipe.name if recipe.origin.startswith("recipe ") else recipe.origin


# --------------------------------------------------------------------------- ranks, signals, denormals
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
def _stop_requests() -> Iterator[_StopRequests]:
    stop = _StopRequests()
    with stop_signals_to(stop.handle):
        yield stop
