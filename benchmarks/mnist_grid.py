"""Run a grid of ``mnist_sweep.py`` settings over several seeds at once, then tabulate them (issue 7).

    python benchmarks/mnist_grid.py benchmarks/grids/round1.txt --seeds 0 1 2 --jobs 12 --device cuda \
        --out /tmp/grid -- --steps 5000 --eval-every 500
    python benchmarks/mnist_grid.py --table /tmp/grid          # the table again, from the logs

A grid file holds one setting per line, ``name: options for mnist_sweep.py`` ('#' starts a comment).
Everything after ``--`` goes to every run. Each run logs to ``OUT/<name>_s<seed>.jsonl``; the table gives,
per setting, Hungarian accuracy of every seed at its last evaluation, the median, the worst and how many
seeds reached 95%, with the label-free ``mi_real`` of each seed next to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SWEEP = Path(__file__).with_name("mnist_sweep.py")


def read_grid(path: Path) -> list[tuple[str, list[str]]]:
    """``name: options`` lines as (name, option list)."""
    grid = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, options = line.partition(":")
            grid.append((name.strip(), options.split()))
    return grid


def read_log(path: Path) -> list[dict]:
    """The evaluation records of one run's JSON-lines log (the args and final lines left out)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if "step" in r]


def table(out: Path) -> str:
    """A Markdown table: one row per setting, accuracy per seed at the last evaluation."""
    runs: dict[str, dict[int, list[dict]]] = {}
    for log in sorted(out.glob("*_s*.jsonl")):
        name, _, seed = log.stem.rpartition("_s")
        runs.setdefault(name, {})[int(seed)] = read_log(log)
    rows = ["| setting | last step | accuracy per seed (mi_real) | median | worst | >= 95% | wall min |",
            "|---|---|---|---|---|---|---|"]
    for name, seeds in runs.items():
        last = {s: recs[-1] for s, recs in sorted(seeds.items()) if recs}
        if not last:
            continue
        accs = [r["acc_eval"] for r in last.values()]
        cells = ", ".join(f"s{s} {100 * r['acc_eval']:.1f} ({r['mi_real']:.2f})" for s, r in last.items())
        steps = sorted({r["step"] for r in last.values()})
        wall = max(r["wall_min"] for r in last.values())
        rows.append(f"| {name} | {'/'.join(map(str, steps))} | {cells} | {100 * statistics.median(accs):.1f} | "
                    f"{100 * min(accs):.1f} | {sum(a >= 0.95 for a in accs)}/{len(accs)} | {wall:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    common: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, common = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", nargs="?", type=Path, help="the grid file")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--jobs", type=int, default=1, help="runs at once")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("/tmp/mnist_grid"))
    p.add_argument("--table", type=Path, help="only print the table of the logs in this folder")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    if args.grid is None:
        p.error("a grid file is needed (or --table FOLDER)")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, seed, options) for name, options in read_grid(args.grid) for seed in args.seeds]

    def run(job: tuple[str, int, list[str]]) -> None:
        name, seed, options = job
        log = args.out / f"{name}_s{seed}.jsonl"
        command = [sys.executable, str(SWEEP), "--name", name, "--seed", str(seed), "--device", args.device,
                   "--log", str(log), *options, *common]
        start = time.time()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
        print(f"{name} s{seed}: {status} ({time.time() - start:.0f} s)", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run, jobs))
    print(table(args.out))


if __name__ == "__main__":
    main()
