"""InfoGAN-CR against plain InfoGAN on dSprites at the same budget, over seeds, both protocols (issue 14).

    python benchmarks/dsprites_seeds.py --out /tmp/dsprites --jobs 2        # the CPU recipe, 3 seeds per arm
    python benchmarks/dsprites_seeds.py infogan-cr-dsprites --seeds 0 1 2 3 4 --out /tmp/paper \
        --set 'trainer.accelerator="gpu"' --eval=--device=cuda              # the paper's schedule, on a GPU
    python benchmarks/dsprites_seeds.py --table /tmp/dsprites               # the table again

Two arms of one recipe (default ``infogan-cr-dsprites-cpu``): ``cr`` as the recipe says and ``no-cr``
with ``contrastive.weight=0``. Until ``contrastive.start`` the two are the same run bit for bit (the term
draws and trains nothing before it: tests/test_contrastive_term.py), so each seed trains that shared part
once, as the no-cr run stopped at the start step; the cr run is a copy of that run folder whose
recipe.toml turns the term on, and both are resumed to ``trainer.max_steps`` (``gan-recipes run
--resume``), then evaluated (``gan-recipes eval``: disentanglement_lib's and the InfoGAN-CR paper's
protocols). ``--jobs`` runs at once, the CPU cores split between them. ``gan-recipes select`` then picks
one run per arm by ModelCentrality. Re-running the command goes on where it stopped.

The table gives per seed both protocols' FactorVAE and MIG, the wall and CPU minutes of training (the
shared part counted in both arms, as if each had trained alone), then per arm the median, the worst and
the pick, beside the paper's rows (Lin et al. 2020, Table 1, their protocol): plain InfoGAN 0.59 / 0.05,
InfoGAN (modified) 0.82 / 0.22, InfoGAN-CR 0.88 / 0.37, InfoGAN-CR picked by ModelCentrality 0.92 / 0.45.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from threading import Lock

import tomli_w
import torch

from gan_infogan_plugin.recipes import load_recipe
from gan_infogan_plugin.sweep import CLI, child_env
from gan_infogan_plugin.train import usable_cores

ARMS = ("cr", "no-cr")
PAPER = {"InfoGAN": (0.59, 0.05), "InfoGAN (modified)": (0.82, 0.22), "InfoGAN-CR": (0.88, 0.37), "InfoGAN-CR, MC pick": (0.92, 0.45)}


def checkpoint_step(folder: Path) -> int:
    """The step of a run folder's checkpoint (-1 without one)."""
    path = folder / "checkpoints" / "last.ckpt"
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"]) if path.is_file() else -1


def add_time(folder: Path, wall: float, cpu: float) -> None:
    """Add a call's wall and CPU seconds to the run folder's wall_seconds / cpu_seconds."""
    for name, value in (("wall_seconds", wall), ("cpu_seconds", cpu)):
        path = folder / name
        path.write_text(f"{(float(path.read_text()) if path.is_file() else 0.0) + value:.1f}\n")


def call(command: list[str], log: Path, threads: int) -> tuple[int, float, float]:
    """Run ``command`` with ``threads`` CPU threads, output appended to ``log``: exit code, wall and CPU seconds."""
    start = time.time()
    with log.open("a") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env(threads))
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.time() - start, usage.ru_utime + usage.ru_stime


class Sweep:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.lock = args, Lock()
        recipe = load_recipe(args.recipe, args.settings)
        self.start, self.weight, self.steps = recipe.contrastive.start, recipe.contrastive.weight, recipe.trainer.max_steps
        if not 0 < self.start < self.steps or self.weight <= 0:
            raise SystemExit(f"{args.recipe}: needs 0 < contrastive.start < trainer.max_steps and contrastive.weight > 0")
        self.threads = max(1, usable_cores() // args.jobs)
        self.pool = ThreadPoolExecutor(args.jobs)
        self.pending: list[Future] = []

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def submit(self, fn, *args) -> None:
        with self.lock:
            self.pending.append(self.pool.submit(fn, *args))

    def train(self, folder: Path, seed: int, settings: list[str], steps: int) -> bool:
        """Train (or resume) one run folder to ``steps``; its time is added to the folder's files."""
        done = checkpoint_step(folder)
        if done >= steps:
            return True
        overrides = [*self.args.settings, *settings, f"trainer.seed={seed}", f"trainer.max_steps={steps}"]  # the last wins
        command = [*CLI, "run", self.args.recipe, "--out", str(folder), "--no-progress", *[x for s in overrides for x in ("--set", s)]]
        if done >= 0:
            command.append("--resume")
        code, wall, cpu = call(command, folder.parent / f"{folder.name}.log", self.threads)
        add_time(folder, wall, cpu)
        self.say(f"{folder}: steps {max(done, 0)}-{steps} {'done' if code == 0 else f'failed (exit {code})'} "
                 f"in {wall / 60:.1f} min ({cpu / 60:.1f} CPU-min)")
        return code == 0

    def evaluate(self, folder: Path) -> None:
        if (folder / "eval.json").is_file():
            return
        code, wall, _ = call([*CLI, "eval", str(folder), "--json", str(folder / "eval.json"), "--force", *self.args.evaluate],
                             folder.parent / f"{folder.name}.log", self.threads)
        self.say(f"{folder}: eval {'done' if code == 0 else f'failed (exit {code})'} in {wall / 60:.1f} min")

    def shared(self, seed: int) -> None:
        """The part both arms share (no-cr to the start step), then the cr copy and both arms' rest."""
        plain, cr = self.args.out / "no-cr" / f"seed-{seed}", self.args.out / "cr" / f"seed-{seed}"
        plain.parent.mkdir(parents=True, exist_ok=True)
        cr.parent.mkdir(parents=True, exist_ok=True)
        if not cr.exists():
            if not self.train(plain, seed, ["contrastive.weight=0"], self.start):
                return
            copy = cr.with_name(cr.name + ".copy")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(plain, copy, ignore=shutil.ignore_patterns(".lock", "eval*"))
            recipe = tomllib.loads((copy / "recipe.toml").read_text())
            recipe["contrastive"]["weight"] = self.weight  # the same run from here on, with the term on
            (copy / "recipe.toml").write_text(tomli_w.dumps(recipe))
            copy.rename(cr)
        self.submit(self.rest, plain, seed, ["contrastive.weight=0"])
        self.submit(self.rest, cr, seed, [])

    def rest(self, folder: Path, seed: int, settings: list[str]) -> None:
        if self.train(folder, seed, settings, self.steps):
            self.evaluate(folder)

    def run(self) -> None:
        for seed in self.args.seeds:
            self.submit(self.shared, seed)
        while True:  # the rest of each seed is submitted by its shared part
            with self.lock:
                pending = [f for f in self.pending if not f.done()]
                failed = [f.exception() for f in self.pending if f.done() and f.exception()]
            if failed:
                raise failed[0]
            if not pending:
                break
            time.sleep(1)
        self.pool.shutdown()


def scores(folder: Path) -> dict[str, float] | None:
    """The paper protocol's and disentanglement_lib's FactorVAE and MIG of one evaluated run."""
    path = folder / "eval.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    paper, lib = result.get("disentanglement_paper", {}), result["disentanglement"]
    minutes = {name: float((folder / f"{name}_seconds").read_text()) / 60 if (folder / f"{name}_seconds").is_file()
               else float("nan") for name in ("wall", "cpu")}
    gaps = " / ".join(f"{gap:.2f}" for gap in paper.get("mig_gaps", {}).values())
    return {"step": result["step"], "fvae": paper.get("factorvae", float("nan")), "mig": paper.get("mig", float("nan")),
            "lib_fvae": lib["factorvae_eval"], "lib_mig": lib["mig"], "gaps": gaps, **minutes}


def select(folder: Path, options: list[str]) -> str | None:
    """``gan-recipes select`` over the arm's evaluated runs; the picked run folder (None under three
    runs: two runs' symmetrised agreement is one number, so ModelCentrality ties and picks nothing)."""
    runs = sorted(str(p) for p in folder.glob("seed-*") if (p / "eval.json").is_file())
    if len(runs) < 3:
        return None
    target = folder / "select.json"
    subprocess.run([*CLI, "select", *runs, "--json", str(target), "--force", *options], check=True, stdout=subprocess.DEVNULL)
    return json.loads(target.read_text())["pick"]


def table(out: Path, select_options: list[str]) -> str:
    rows = ["| arm | seed | steps | FactorVAE (paper) | MIG (paper) | MIG gaps (paper): shape / scale / rotation / x / y "
            "| FactorVAE (dlib) | MIG (dlib) | wall min | CPU min |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for arm in ARMS:
        folder = out / arm
        results = {p: s for p in sorted(folder.glob("seed-*")) if (s := scores(p))}
        for path, s in results.items():
            rows.append(f"| {arm} | {path.name.split('-')[1]} | {s['step']} | {s['fvae']:.3f} | {s['mig']:.3f} | {s['gaps']} | "
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
    p.add_argument("--jobs", type=int, default=1, help="runs at once (the CPU cores are split between them)")
    p.add_argument("--out", type=Path, default=Path("runs/dsprites-seeds"))
    p.add_argument("--set", dest="settings", action="append", default=[], help="a recipe override for every run")
    p.add_argument("--eval", dest="evaluate", action="append", default=[], help="an option for gan-recipes eval")
    p.add_argument("--select", dest="select_options", action="append", default=[], help="an option for gan-recipes select")
    p.add_argument("--table", type=Path, help="only print the table of the runs in this folder")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table, args.select_options))
        return
    Sweep(args).run()
    print(table(args.out, args.select_options))


if __name__ == "__main__":
    main()
