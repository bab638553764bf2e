"""infogan-mnist on one GPU: one seed eager and compiled, then several seeds sharing the device.

    python benchmarks/gpu_throughput.py [--steps 5000] [--modes eager,default,max-autotune-no-cudagraphs]
        [--seeds 10] [--jobs 10 5] [--data ../shared/data/mnist] [--accelerator cuda] [--peak-tflops 67]

Issue 18, part 2 (GPU), in one call so that a lent device is used for minutes, not hours:

  (1) one seed per ``--modes`` entry: ``gan-recipes run infogan-mnist`` for ``--steps`` steps, eager
      (``eager``) or with ``trainer.compile = true`` and that ``trainer.compile_mode``; no samples,
      checkpoints or evaluation in between (the end of the run included). Wall time of the process
      (start-up, data loading and compilation included) and the run's steady images/s (metrics.csv);
  (2) for each ``--jobs`` J: ``--seeds`` seeds of the same run (the first mode of ``--modes``), J
      processes at a time sharing the device, as ``gan-recipes sweep --jobs J`` starts them (training
      only: nothing is evaluated). Wall time from the first start to the last exit.

Aims (issue 18): one seed's 5,000 steps in under 30 s; ten seeds in under 5 minutes on one H100. The
physical limit: the FLOPs of one step (torch's FLOP counter on the CPU, one step of the recipe as the
runner runs it, its regularizers included) times the steps per second, against
``--peak-tflops`` (the device's dense float32 peak; H100 SXM: 67, with TF32 tensor cores 495).
``--accelerator cpu --steps 20 --seeds 2 --jobs 2 --modes eager`` checks the script on a CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning_fabric import Fabric
from torch.utils.flop_counter import FlopCounterMode

from gan_infogan_plugin import networks
from gan_infogan_plugin.recipes import load_recipe
from gan_infogan_plugin.step import train_step
from gan_infogan_plugin.train import set_up_training, training_batch, usable_cores

from sweep_throughput import start, steady_rate, wait  # noqa: E402


def settings(args: argparse.Namespace, mode: str) -> list[str]:
    root = str(Path(args.data).resolve()).replace('"', '\\"')
    compiled = [] if mode == "eager" else ["trainer.compile=true", f'trainer.compile_mode="{mode}"']
    return [f'data.root="{root}"', 'data.split="test"', "data.download=false", f'trainer.accelerator="{args.accelerator}"',
            f"trainer.max_steps={args.steps}", f"trainer.log_every={max(1, min(250, args.steps // 4))}",
            "trainer.sample_every=0", "trainer.checkpoint_every=0", "trainer.eval_every=0", *compiled]


def step_flops(overrides: Sequence[str] = ()) -> float:
    """FLOPs of one training step of infogan-mnist with ``overrides`` (its networks, batch, fresh codes,
    shift and regularizers, the invariance term among them; D's update and G's, as the runner runs them)."""
    recipe = load_recipe("infogan-mnist", list(overrides))
    fabric = Fabric(accelerator="cpu", devices=1)
    nets = networks.build_networks(recipe)
    gan, regularizers = set_up_training(fabric, recipe, nets)
    real = torch.rand(recipe.trainer.batch_size, nets.channels, nets.size, nets.size) * 2 - 1
    batch = training_batch(recipe, real, 0, 0, torch.device("cpu"))  # step 0's draws, as the runner's loop makes them
    with FlopCounterMode(display=False) as counter:
        train_step(fabric, gan, batch, regularizers)
    return float(counter.get_total_flops())


def many(args: argparse.Namespace, mode: str, jobs: int, out: Path) -> float:
    """Wall seconds of ``--seeds`` runs, ``jobs`` at a time."""
    threads = max(1, usable_cores() // jobs)
    waiting, running = list(range(args.seeds)), []
    begin = time.perf_counter()
    while waiting or running:
        while waiting and len(running) < jobs:
            running.append(start(settings(args, mode), waiting.pop(0), out, threads))
        wait(running.pop(0))
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--modes", default="eager,default,max-autotune-no-cudagraphs",
                        help="eager, or torch.compile modes (trainer.compile_mode), comma-separated")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, nargs="*", default=[10, 5], help="processes sharing the device (none: skip part 2)")
    parser.add_argument("--data", default="../shared/data/mnist", help="the MNIST folder (torchvision raw layout)")
    parser.add_argument("--accelerator", default="cuda")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense float32 peak, TFLOP/s")
    args = parser.parse_args()
    modes = args.modes.split(",")
    batch = load_recipe("infogan-mnist", settings(args, "eager")).trainer.batch_size
    flops = step_flops(settings(args, "eager"))
    device = torch.cuda.get_device_name() if args.accelerator == "cuda" and torch.cuda.is_available() else args.accelerator
    print(f"infogan-mnist on {device}, torch {torch.__version__}, batch {batch}, {args.steps} steps; "
          f"one step: {flops / 1e9:.1f} GFLOP")

    def share(images_per_s: float) -> str:
        tflops = images_per_s / batch * flops / 1e12
        return f"{tflops:.2f} TFLOP/s" + (f", {100 * tflops / args.peak_tflops:.1f}% of peak" if args.peak_tflops else "")

    print("\n| one seed | wall s (whole run) | steady images/s | steady steps/s | achieved |")
    print("|---|---|---|---|---|")
    for mode in modes:
        with tempfile.TemporaryDirectory() as tmp:
            begin = time.perf_counter()
            try:
                wait(start(settings(args, mode), 0, Path(tmp), usable_cores()))
            except SystemExit as failure:  # a mode that fails is a row of the table, not the end of the call
                print(f"| {mode} | failed: {str(failure).strip().splitlines()[-1]} | | | |", flush=True)
                continue
            wall = time.perf_counter() - begin
            rate = steady_rate(Path(tmp) / "seed-0")
        print(f"| {mode} | {wall:.1f} | {rate:.0f} | {rate / batch:.1f} | {share(rate)} |", flush=True)

    if args.jobs:
        print(f"\n| {args.seeds} seeds ({modes[0]}) | wall s | images/s of the sweep | achieved |")
        print("|---|---|---|---|")
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            wall = many(args, modes[0], jobs, Path(tmp))
        rate = args.seeds * args.steps * batch / wall
        print(f"| {jobs} at a time | {wall:.1f} | {rate:.0f} | {share(rate)} |", flush=True)


if __name__ == "__main__":
    main()
