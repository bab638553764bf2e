"""InfoGAN-CR against plain InfoGAN on dSprites at the same budget, over seeds, both protocols (issue 14).

    python benchmarks/dsprites_seeds.py --out /tmp/dsprites                   # the CPU recipe, 3 seeds per arm
    python benchmarks/dsprites_seeds.py infogan-cr-dsprites --seeds 0 1 2 3 4 --out /tmp/paper \
        --set trainer.accelerator=gpu --eval=--device=cuda                    # the paper's schedule, on a GPU
    python benchmarks/dsprites_seeds.py --table /tmp/dsprites                 # the table again

Two arms of one recipe (default ``infogan-cr-dsprites-cpu``): ``cr`` as the recipe says and ``no-cr``
with ``contrastive.weight=0``, so both train the same networks for the same steps. Each seed is trained
and evaluated by ``benchmarks/seeds.py``'s ``run_seed`` (``gan-recipes run``, then ``gan-recipes eval``:
disentanglement_lib's and the InfoGAN-CR paper's protocols); then ``gan-recipes select`` picks one run
per arm by ModelCentrality. The table gives per seed both protocols' FactorVAE and MIG, the wall and CPU
minutes of training, then per arm the median, the worst and the pick, beside the paper's rows (Lin et
al. 2020, Table 1, their protocol): plain InfoGAN 0.59 / 0.05, InfoGAN (modified) 0.82 / 0.22,
InfoGAN-CR 0.88 / 0.37, InfoGAN-CR picked by ModelCentrality 0.92 / 0.45.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from seeds import CLI, run_seed  # noqa: E402

ARMS = {"cr": [], "no-cr": ["contrastive.weight=0"]}
PAPER = {"InfoGAN": (0.59, 0.05), "InfoGAN (modified)": (0.82, 0.22), "InfoGAN-CR": (0.88, 0.37), "InfoGAN-CR, MC pick": (0.92, 0.45)}


def scores(folder: Path) -> dict[str, float] | None:
    """The paper protocol's and disentanglement_lib's FactorVAE and MIG of one evaluated run."""
    path = folder / "eval.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    paper, lib = result.get("disentanglement_paper", {}), result["disentanglement"]
    wall = float((folder / "wall_seconds").read_text()) / 60 if (folder / "wall_seconds").is_file() else float("nan")
    cpu = float((folder / "cpu_seconds").read_text()) / 60 if (folder / "cpu_seconds").is_file() else float("nan")
    return {"step": result["step"], "fvae": paper.get("factorvae", float("nan")), "mig": paper.get("mig", float("nan")),
            "lib_fvae": lib["factorvae_eval"], "lib_mig": lib["mig"], "wall": wall, "cpu": cpu}


def select(folder: Path, options: list[str]) -> str | None:
    """``gan-recipes select`` over the arm's evaluated runs; the picked run folder."""
    runs = sorted(str(p) for p in folder.glob("seed-*") if (p / "eval.json").is_file())
    if len(runs) < 2:
        return None
    target = folder / "select.json"
    subprocess.run([*CLI, "select", *runs, "--json", str(target), "--force", *options], check=True, stdout=subprocess.DEVNULL)
    return json.loads(target.read_text())["pick"]


def table(out: Path, select_options: list[str]) -> str:
    rows = ["| arm | seed | steps | FactorVAE (paper) | MIG (paper) | FactorVAE (dlib) | MIG (dlib) | wall min | CPU min |",
            "|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for arm in ARMS:
        folder = out / arm
        results = {p: s for p in sorted(folder.glob("seed-*")) if (s := scores(p))}
        for path, s in results.items():
            rows.append(f"| {arm} | {path.name.split('-')[1]} | {s['step']} | {s['fvae']:.3f} | {s['mig']:.3f} | "
                        f"{s['lib_fvae']:.3f} | {s['lib_mig']:.3f} | {s['wall']:.1f} | {s['cpu']:.1f} |")
        if not results:
            continue
        fvae, mig = [s["fvae"] for s in results.values()], [s["mig"] for s in results.values()]
        line = (f"{arm}: {len(results)} seeds; paper protocol FactorVAE median {statistics.median(fvae):.3f} worst {min(fvae):.3f}, "
                f"MIG median {statistics.median(mig):.3f} worst {min(mig):.3f}")
        pick = select(folder, select_options)
        if pick is not None:
            picked = results[Path(pick)]
            line += f"; ModelCentrality pick {Path(pick).name}: {picked['fvae']:.3f} / {picked['mig']:.3f}"
        summary.append(line)
    paper = "paper (FactorVAE / MIG): " + ", ".join(f"{name} {f:.2f} / {m:.2f}" for name, (f, m) in PAPER.items())
    return "\n".join([*rows, "", *summary, paper])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default="infogan-cr-dsprites-cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("runs/dsprites-seeds"))
    p.add_argument("--set", dest="settings", action="append", default=[], help="a recipe override for every run")
    p.add_argument("--eval", dest="evaluate", action="append", default=[], help="an option for gan-recipes eval")
    p.add_argument("--select", dest="select_options", action="append", default=[], help="an option for gan-recipes select")
    p.add_argument("--time-limit", type=float, help="wall seconds per run; then it stops and its checkpoint is evaluated")
    p.add_argument("--table", type=Path, help="only print the table of the runs in this folder")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table, args.select_options))
        return
    for seed in args.seeds:  # one run at a time: the arms alternate, so a stopped sweep has seeds of both
        for arm, settings in ARMS.items():
            folder = args.out / arm
            folder.mkdir(parents=True, exist_ok=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            print(run_seed(args.recipe, seed, folder, [*args.settings, *settings], args.evaluate, args.time_limit), flush=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            spent = folder / f"seed-{seed}" / "cpu_seconds"  # training and evaluation
            total = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            previous = float(spent.read_text()) if spent.is_file() else 0.0
            if spent.parent.is_dir():
                spent.write_text(f"{previous + total:.1f}\n")
    print(table(args.out, args.select_options))


if __name__ == "__main__":
    main()
