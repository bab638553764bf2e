"""Two seeds at once with the cores split, or one after the other with every core: images/s of the sweep.

    python benchmarks/sweep_throughput.py [--steps 300] [--repeats 3] [--data ../shared/data/mnist]

Issue 18, part 2 (CPU): which `gan-recipes sweep --jobs` to default to. Each repeat trains two seeds of
infogan-mnist (the real MNIST test set, ``data.split = "test"``, no download) for ``--steps`` steps with
``gan-recipes run``, as the sweep starts them (a process a seed, the threads set by
:func:`gan_infogan_plugin.sweep.child_env`):

  (a) both seeds at the same time, cores // 2 threads each (``gan-recipes sweep --jobs 2``),
  (b) one seed after the other, every core each (``--jobs 1``),

alternating a, b, a, b... so that a change in the machine's load falls on both. The figure is the images/s
of the whole sweep: 2 x steps x batch over the wall time from the first start to the last exit (process
start-up, data loading and the final checkpoint included, as a sweep spends them). The runs' own
steady-state rate (``images_per_s`` in metrics.csv, rows after the first) is printed beside it.
Nothing is evaluated. Medians over the repeats, and their ratio a / b (> 1: two at once is faster).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from gan_infogan_plugin.recipes import load_recipe
from gan_infogan_plugin.sweep import CLI, child_env
from gan_infogan_plugin.train import usable_cores

SEEDS = (0, 1)


def settings(args: argparse.Namespace) -> list[str]:
    root = str(Path(args.data).resolve()).replace('"', '\\"')
    return [f'data.root="{root}"', 'data.split="test"', "data.download=false", f"trainer.max_steps={args.steps}",
            f"trainer.log_every={max(1, min(50, args.steps // 4))}", "trainer.sample_every=0", "trainer.checkpoint_every=0"]


def start(recipe_settings: list[str], seed: int, out: Path, threads: int) -> subprocess.Popen:
    """``gan-recipes run infogan-mnist`` of ``seed`` into ``out/seed-<seed>``, with ``threads`` CPU threads."""
    words = ["run", "infogan-mnist", "--out", str(out / f"seed-{seed}"), "--no-progress"]
    for setting in [*recipe_settings, f"trainer.seed={seed}"]:
        words += ["--set", setting]
    return subprocess.Popen([*CLI, *words], env=child_env(threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait(process: subprocess.Popen) -> None:
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"gan-recipes run failed (exit {process.returncode}):\n{stderr[-2000:]}")


def steady_rate(run: Path) -> float:
    """The run's mean images/s over its logged rows after the first (the first holds the warm-up)."""
    with open(run / "metrics.csv", newline="") as f:
        rates = [float(row["images_per_s"]) for row in csv.DictReader(f) if row.get("images_per_s")]
    return statistics.mean(rates[1:] or rates)


def sweep(args: argparse.Namespace, together: bool) -> tuple[float, list[float]]:
    """Wall seconds of the two seeds, (a) together or (b) one after the other; and each run's steady images/s."""
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        begin = time.perf_counter()
        if together:
            for process in [start(settings(args), seed, out, max(1, cores // len(SEEDS))) for seed in SEEDS]:
                wait(process)
        else:
            for seed in SEEDS:
                wait(start(settings(args), seed, out, cores))
        wall = time.perf_counter() - begin
        return wall, [steady_rate(out / f"seed-{seed}") for seed in SEEDS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="../shared/data/mnist", help="the MNIST folder (torchvision raw layout)")
    args = parser.parse_args()
    batch = load_recipe("infogan-mnist", settings(args)).trainer.batch_size
    images = len(SEEDS) * args.steps * batch
    cores = usable_cores()
    print(f"infogan-mnist, {len(SEEDS)} seeds x {args.steps} steps x batch {batch} = {images} images; {cores} cores; "
          f"(a) together, {max(1, cores // len(SEEDS))} threads each; (b) one after the other, {cores} threads")
    results: dict[str, list[tuple[float, list[float]]]] = {"a": [], "b": []}
    for repeat in range(args.repeats):
        for name in ("a", "b"):
            wall, rates = sweep(args, together=name == "a")
            results[name].append((wall, rates))
            print(f"repeat {repeat + 1} ({name}): {wall:6.1f} s wall, {images / wall:6.1f} images/s; "
                  f"the runs' steady images/s: {', '.join(f'{r:.1f}' for r in rates)}", flush=True)
    medians = {name: statistics.median(images / wall for wall, _ in runs) for name, runs in results.items()}
    steady = {name: statistics.median(sum(rates) if name == "a" else statistics.mean(rates) for _, rates in runs)
              for name, runs in results.items()}
    print(f"\n| | images/s of the sweep (median of {args.repeats}) | steady images/s (summed over the runs at once) |")
    print("|---|---|---|")
    print(f"| (a) 2 seeds at once, {max(1, cores // len(SEEDS))} threads each | {medians['a']:.1f} | {steady['a']:.1f} |")
    print(f"| (b) one after the other, {cores} threads | {medians['b']:.1f} | {steady['b']:.1f} |")
    print(f"\nratio a / b: {medians['a'] / medians['b']:.3f} (whole sweep), {steady['a'] / steady['b']:.3f} (steady)")


if __name__ == "__main__":
    main()
