"""A recipe over several seeds through the CLI, every run evaluated, and the label-free seed pick (issue 7).

    python benchmarks/seeds.py infogan-mnist --seeds 0 1 2 3 4 --out /tmp/seeds \
        --set 'data.root="../shared/data/mnist"' --set 'data.split="test"' --set data.download=false
    python benchmarks/seeds.py --table /tmp/seeds             # the table again, from the run folders

Each seed runs ``gan-recipes run RECIPE --set trainer.seed=S --out OUT/seed-S`` (``--jobs`` at once;
an interrupted seed is resumed), then ``gan-recipes eval OUT/seed-S --json OUT/seed-S/eval.json``.
The table gives, per seed, the Hungarian accuracy of the first categorical code on the real images,
Q's label-free MI on the same images (``real_mi``, :func:`gan_infogan_plugin.evaluate.real_code_mi`),
the run's wall minutes and the accuracy at each ``trainer.eval_every`` step from metrics.csv; then the
median, the worst seed, how many seeds reached 95%, and the seed that the highest ``real_mi`` picks
against the best seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CLI = [sys.executable, "-c", "from gan_infogan_plugin.cli import main; main()"]  # gan-recipes, with this Python


def run_seed(recipe: str, seed: int, out: Path, settings: list[str], evaluate: list[str], limit: float | None) -> str:
    """Train (or resume) one seed and evaluate it; a one-line status. After ``limit`` seconds the run
    is stopped as Ctrl-C would stop it (checkpoint saved) and its last checkpoint is evaluated.
    ``wall_seconds`` in the run folder adds up the training time of every call."""
    folder = out / f"seed-{seed}"
    start = time.time()
    train = [*CLI, "run", recipe, "--out", str(folder), "--no-progress", "--set", f"trainer.seed={seed}"]
    for option in settings:
        train += ["--set", option]
    if (folder / "checkpoints" / "last.ckpt").is_file():
        train.append("--resume")
    with (out / f"seed-{seed}.log").open("a") as log:
        process = subprocess.Popen(train, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            code = process.wait()
        if code not in (0, 130):  # 130: stopped with a checkpoint
            return f"seed {seed}: training failed (exit {code}), see {log.name}"
        spent = folder / "wall_seconds"
        before = float(spent.read_text()) if spent.is_file() else 0.0
        spent.write_text(f"{before + time.time() - start:.1f}\n")
        check = subprocess.run([*CLI, "eval", str(folder), "--json", str(folder / "eval.json"), "--force", *evaluate],
                               stdout=log, stderr=subprocess.STDOUT)
    status = "ok" if check.returncode == 0 else f"eval failed (exit {check.returncode})"
    return f"seed {seed}: {status} ({time.time() - start:.0f} s)"


def curve(folder: Path) -> list[tuple[int, float]]:
    """(step, accuracy) of the in-training evaluations (eval/accuracy/c1 in metrics.csv)."""
    path = folder / "metrics.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return [(int(r["step"]), float(r["eval/accuracy/c1"])) for r in csv.DictReader(f) if r.get("eval/accuracy/c1")]


def table(out: Path) -> str:
    rows, results = ["| seed | steps | accuracy | real_mi | NMI | wall min | accuracy during training |", "|---|---|---|---|---|---|---|"], {}
    for folder in sorted((p for p in out.glob("seed-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1])):
        if not (folder / "eval.json").is_file():
            continue
        result = json.loads((folder / "eval.json").read_text())
        seed, code = int(folder.name.split("-")[1]), next(iter(result["categorical"]["codes"]))
        score = result["categorical"]["codes"][code]
        results[seed] = (score["accuracy"], result["real_mi"][code])
        wall = float((folder / "wall_seconds").read_text()) / 60 if (folder / "wall_seconds").is_file() else float("nan")
        during = ", ".join(f"{100 * a:.0f}@{s}" for s, a in curve(folder))
        rows.append(f"| {seed} | {result['step']} | {100 * score['accuracy']:.1f}% | {result['real_mi'][code]:.3f} | "
                    f"{score['nmi']:.3f} | {wall:.1f} | {during} |")
    if not results:
        return "no evaluated runs in " + str(out)
    accs = [a for a, _ in results.values()]
    picked = max(results, key=lambda s: results[s][1])
    best = max(results, key=lambda s: results[s][0])
    rows += ["", f"seeds: {len(accs)}; median {100 * statistics.median(accs):.1f}%, worst {100 * min(accs):.1f}%, "
                 f"best {100 * max(accs):.1f}%; >= 95%: {sum(a >= 0.95 for a in accs)} of {len(accs)}",
             f"label-free pick (highest real_mi): seed {picked} at {100 * results[picked][0]:.1f}%; "
             f"best seed {best} at {100 * results[best][0]:.1f}%"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", help="a registered recipe or a .toml file")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at once")
    p.add_argument("--out", type=Path, default=Path("runs/seeds"))
    p.add_argument("--set", dest="settings", action="append", default=[], help="a recipe override for every seed")
    p.add_argument("--eval", dest="evaluate", action="append", default=[], help="an option for gan-recipes eval, e.g. --eval=--device=cuda")
    p.add_argument("--time-limit", type=float, help="seconds per seed; then the run stops and its checkpoint is evaluated")
    p.add_argument("--table", type=Path, help="only print the table of the runs in this folder")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    if not args.recipe:
        p.error("a recipe is needed (or --table FOLDER)")
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for status in pool.map(lambda s: run_seed(args.recipe, s, args.out, args.settings, args.evaluate, args.time_limit), args.seeds):
            print(status, flush=True)
    print(table(args.out))


if __name__ == "__main__":
    main()
