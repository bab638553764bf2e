"""A recipe over seeds as one command (``gan-recipes sweep``): train, evaluate and rank label-free.

Each seed is an ordinary run folder, trained by ``gan-recipes run`` in a process of its own, so it
resumes, evaluates and samples as any run does. A sweep folder (``--out DIR``)::

    seed-S/               gan-recipes run RECIPE --set trainer.seed=S --out DIR/seed-S (a run folder, runs.py)
    seed-S/eval.json      gan-recipes eval DIR/seed-S --json DIR/seed-S/eval.json, once the run is finished
    seed-S/wall_seconds   the seed's training wall time, summed over the sweep calls that trained it
    seed-S.log            the output of every command run for the seed, appended
    sweep.json            the plan, every seed's status, step, wall time and eval scores, and the rank

:func:`run_sweep` runs ``plan.jobs`` commands at once, each with ``max(1, cores // jobs)`` threads
(``OMP_NUM_THREADS``, which torch reads at start-up: the cores are split, never oversubscribed). A seed
whose checkpoint is at ``trainer.max_steps`` and whose ``eval.json`` scores that checkpoint is finished
and skipped; an unfinished one is resumed (``--resume``). Once every seed has ended, the finished ones
are ranked without labels by :func:`~.selection.select_runs` (ModelCentrality; MI real for categorical
codes), as ``gan-recipes select`` ranks them. SIGTERM or Ctrl-C is passed on to every running command
(each run saves its checkpoint), the sweep waits for them and stops with :class:`~.errors.RunInterrupted`.

Several sweep processes may share one folder if they train different seeds (a Slurm job array: one
seed a task); the last to end rewrites ``sweep.json``, and a final call with every seed (``train=False``:
nothing trained) evaluates and ranks what they left.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import RunInterrupted, UserError, one_line
from .recipes import Recipe, load_recipe
from .runs import RunDir, atomic_file, make_folder
from .signals import stop_signals_to
from .train import usable_cores

SWEEP_FILE = "sweep.json"
EVAL_FILE = "eval.json"
WALL_FILE = "wall_seconds"
# `gan-recipes`, run by this Python (the console script may not be on PATH, or be another install's).
CLI = [sys.executable, "-c", "from gan_infogan_plugin.cli import main; main()"]
POLL_SECONDS = 0.2
HEADER = "== "  # starts the line a seed's log gets before each command's output


def parse_seeds(text: str) -> list[int]:
    """``0-9`` -> [0, ..., 9]; ``0,2,5-7`` -> [0, 2, 5, 6, 7]; the order given, each seed once."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        first, dash, last = part.partition("-")
        if not (first.strip().isdigit() and (not dash or last.strip().isdigit())):
            raise UserError(f"--seeds {text}: expected seeds >= 0 and ranges like 0-9, separated by commas "
                            f"(0,2,5-7); got {part!r}")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise UserError(f"--seeds {text}: the range {part} runs backwards; write {high}-{low}")
        seeds += range(low, high + 1)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UserError(f"--seeds {text}: seed {', '.join(map(str, repeated))} given twice")
    if seeds[-1] > 2**32 - 1:
        raise UserError(f"--seeds {text}: a seed is at most 2^32 - 1 = {2**32 - 1}")
    return seeds


def child_env(threads: int) -> dict[str, str]:
    """This process's environment for a command given ``threads`` CPU threads (torch and MKL read these at start)."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


@dataclass
class RankOptions:
    """How the finished seeds are ranked (the options of ``gan-recipes select``; ``real`` is also
    passed to each seed's ``gan-recipes eval``, and ``device`` to both)."""

    groups: int = 500
    group_size: int = 100
    points: int = 73728
    real: int = 10000
    device: str = "cpu"


@dataclass
class SweepPlan:
    """A checked sweep: the recipe (a registered name or a .toml path) and its ``settings`` (``--set``),
    the seeds, the folder, how many commands at once (``jobs``) and threads each, whether to train
    (``train=False``: only evaluate and rank what exists), extra ``gan-recipes eval`` options and the rank's."""

    recipe: str
    seeds: list[int]
    seeds_text: str
    out: Path
    settings: list[str]
    jobs: int
    threads: int
    train: bool
    eval_options: list[str]
    rank: RankOptions
    name: str  # the recipe's name
    max_steps: int
    scored: bool  # the recipe has Q (the MI term is on): seeds are evaluated and ranked

    @classmethod
    def make(cls, recipe: str, seeds: str, out: Path | None = None, settings: list[str] = (), jobs: int | None = None,
             train: bool = True, eval_options: str = "", rank: RankOptions = RankOptions()) -> "SweepPlan":
        """Check everything before anything is written; a bad input is a UserError. ``jobs`` None: as many
        seeds at once as there are cores, one thread each (on the 2-core CPU, two seeds at once with one
        thread each trained 1.15x the images/s of one after the other with two: benchmarks/sweep_throughput.py)."""
        seed_list = parse_seeds(seeds)
        cores = usable_cores()
        jobs = min(len(seed_list), cores) if jobs is None else jobs
        if not 1 <= jobs <= cores:
            raise UserError(f"--jobs {jobs}: expected from 1 to {cores} (the CPU cores this process may use; "
                            "each job needs at least one)")
        if any(s.partition("=")[0].strip() == "trainer.seed" for s in settings):
            raise UserError("--set trainer.seed: the sweep sets each run's trainer.seed; give the seeds with --seeds")
        try:
            options = shlex.split(eval_options)
        except ValueError as exc:
            raise UserError(f"--eval {eval_options}: {exc}") from None
        resolved = load_recipe(recipe, list(settings))
        plan = cls(recipe, seed_list, seeds, Path(out) if out is not None else Path("runs") / resolved.name / "sweep",
                   list(settings), jobs, max(1, cores // jobs), train, options, rank, resolved.name,
                   resolved.trainer.max_steps, resolved.regularizer.enabled and bool(resolved.codes.codes))
        plan._check_folder()
        return plan

    def seed_recipe(self, seed: int) -> Recipe:
        return load_recipe(self.recipe, [*self.settings, f"trainer.seed={seed}"])

    def folder(self, seed: int) -> Path:
        return self.out / f"seed-{seed}"

    def log(self, seed: int) -> Path:
        return self.out / f"seed-{seed}.log"

    @property
    def sweep_file(self) -> Path:
        return self.out / SWEEP_FILE

    def command(self) -> str:
        """The ``gan-recipes sweep`` command of this plan (what to run again to continue it)."""
        words = ["gan-recipes", "sweep", self.recipe, "--seeds", self.seeds_text, "--out", str(self.out)]
        for setting in self.settings:
            words += ["--set", setting]
        words += ["--jobs", str(self.jobs)]
        if not self.train:
            words.append("--no-train")
        if self.eval_options:
            words += ["--eval", shlex.join(self.eval_options)]
        default = RankOptions()
        for key, value in asdict(self.rank).items():
            if value != getattr(default, key):
                words += [f"--{key.replace('_', '-')}", str(value)]
        return shlex.join(words)

    def _check_folder(self) -> None:
        """Refuse a folder holding another recipe's sweep, or seed folders trained with other settings."""
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out}: a file of that name exists; give a folder")
        previous = _read_json(self.sweep_file)
        recipe = (previous or {}).get("recipe")
        other = recipe.get("name") if isinstance(recipe, dict) else None
        if previous is not None and other != self.name:
            raise UserError(f"{self.out} holds a sweep of {other} ({self.sweep_file}), not of {self.name}; "
                            "choose another --out")
        for seed in self.seeds:
            run = RunDir(self.folder(seed))
            if run.recipe_file.is_file():
                run.check_same_recipe(self.seed_recipe(seed))


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, None when there is none; a UserError when it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({one_line(exc)}); move it away or choose another --out") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object")
    return value


def eval_scores(report: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of an eval.json, named as in metrics.csv without ``eval/``: ``accuracy/<code>``
    and ``nmi/<code>`` (categorical codes against labels), ``real_mi/<code>``, ``mig`` and ``factorvae``
    (disentanglement_lib's protocol) and ``paper/mig``, ``paper/factorvae`` (the InfoGAN-CR paper's),
    for whichever the data allowed."""
    scores: dict[str, float] = {}
    for code, score in report.get("categorical", {}).get("codes", {}).items():
        scores.update({f"accuracy/{code}": score["accuracy"], f"nmi/{code}": score["nmi"]})
    scores.update({f"real_mi/{code}": value for code, value in report.get("real_mi", {}).items()})
    if "disentanglement" in report:
        scores.update({"mig": report["disentanglement"]["mig"], "factorvae": report["disentanglement"]["factorvae_eval"]})
    if "disentanglement_paper" in report:
        paper = report["disentanglement_paper"]
        scores.update({"paper/mig": paper["mig"], "paper/factorvae": paper["factorvae"]})
    return scores


@dataclass
class SeedResult:
    """One seed after a sweep call. ``status``: ``finished`` (trained and evaluated by this call),
    ``skipped`` (finished before), ``failed`` (``error`` and the log say why), ``stopped`` (by a signal,
    its checkpoint saved), ``unfinished`` (not trained to the end: with ``train=False``, or never started)."""

    seed: int
    folder: str
    log: str
    status: str = "unfinished"
    step: int | None = None
    wall_seconds: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SweepResult:
    """:func:`run_sweep`'s result, as ``sweep.json`` holds it: ``rank`` is the label-free ranking of the
    finished seeds (:class:`~.selection.Selection`'s JSON with ``seeds``, ``pick`` and ``best_real_mi``
    as seeds), or None with ``rank_note`` saying why."""

    plan: SweepPlan
    seeds: list[SeedResult]
    rank: dict[str, Any] | None = None
    rank_note: str = ""
    stopped_by: str | None = None

    @property
    def failed(self) -> list[SeedResult]:
        return [s for s in self.seeds if s.status == "failed"]

    @property
    def finished(self) -> list[SeedResult]:
        return [s for s in self.seeds if s.status in ("finished", "skipped")]

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "recipe": {"name": plan.name, "given": plan.recipe, "settings": plan.settings, "max_steps": plan.max_steps},
            "command": plan.command(),
            "jobs": plan.jobs,
            "threads": plan.threads,
            "seeds": [asdict(s) for s in self.seeds],
            "rank": self.rank,
            "rank_note": self.rank_note,
            "stopped_by": self.stopped_by,
        }

    def write(self) -> None:
        with atomic_file(self.plan.sweep_file, unique=True) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- one seed's state on disk
def _checkpoint_step(run: RunDir) -> int | None:
    """The step of the run's checkpoint; None without one, -1 when it cannot be read (a resume reports why)."""
    if not run.checkpoint.is_file():
        return None
    try:
        return int(run.load_checkpoint({})["step"])
    except UserError:
        return -1


def _evaluated_step(folder: Path) -> int | None:
    """The step eval.json scored, None without a readable one."""
    try:
        return int(json.loads((folder / EVAL_FILE).read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wall(folder: Path) -> float | None:
    try:
        return float((folder / WALL_FILE).read_text())
    except (OSError, ValueError):
        return None


def _add_wall(folder: Path, seconds: float) -> float | None:
    """Add ``seconds`` to the seed's wall_seconds (when it has a checkpoint: it trained); the new total."""
    if not RunDir(folder).checkpoint.is_file():
        return _wall(folder)
    total = (_wall(folder) or 0.0) + seconds
    with atomic_file(folder / WALL_FILE) as tmp:
        tmp.write_text(f"{total:.1f}\n")
    return total


def _last_error(log: Path) -> str:
    """The last command's last ``error:`` line in a log, else its last line (a traceback's exception)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no log"
    last = text[text.rfind(f"\n{HEADER}") + 1:]  # the output of the last command started
    lines = [line.strip(" │\t") for line in last.splitlines()[1:]]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["no output"])[-1][:300]


# --------------------------------------------------------------------------- the commands
@dataclass
class _Job:
    """A running command of one seed: ``phase`` is train or eval."""

    seed: SeedResult
    phase: str
    process: subprocess.Popen
    started: float


class _Stop:
    """SIGTERM / SIGINT: remember it and pass the same signal on to every running command (in its own
    process group, so a terminal's Ctrl-C reaches it only through here)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.jobs: list[_Job] = []

    def handle(self, signum: int, frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        for job in self.jobs:
            if job.process.poll() is None:
                job.process.send_signal(signum)


@contextmanager
def _stop_requests() -> Iterator[_Stop]:
    """The signal handlers (in the main thread: only there can Python set them) for the block. If the
    block raises, the running commands are stopped as by SIGTERM and waited for: none is left behind."""
    stop = _Stop()
    with stop_signals_to(stop.handle):
        try:
            yield stop
        except BaseException:
            stop.handle(signal.SIGTERM, None)
            for job in stop.jobs:
                job.process.wait()
            raise


def _start(plan: SweepPlan, seed: SeedResult, phase: str, words: list[str]) -> _Job:
    log = plan.log(seed.seed)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"\n{HEADER}{time.strftime('%Y-%m-%d %H:%M:%S')}  gan-recipes {shlex.join(words)}  "
                f"(OMP_NUM_THREADS={plan.threads})\n")
        f.flush()
        process = subprocess.Popen([*CLI, *words], stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=child_env(plan.threads), start_new_session=True)
    return _Job(seed, phase, process, time.monotonic())


def _train_words(plan: SweepPlan, seed: int, resume: bool, force: bool) -> list[str]:
    words = ["run", plan.recipe, "--out", str(plan.folder(seed))]
    for setting in [*plan.settings, f"trainer.seed={seed}"]:
        words += ["--set", setting]
    return words + (["--resume"] if resume else []) + (["--force"] if force else [])


def _eval_words(plan: SweepPlan, seed: int) -> list[str]:
    folder = plan.folder(seed)
    return ["eval", str(folder), "--json", str(folder / EVAL_FILE), "--force", "--real", str(plan.rank.real),
            "--device", plan.rank.device, *plan.eval_options]


def _next_phase(plan: SweepPlan, seed: SeedResult) -> tuple[str, list[str], str]:
    """What a seed needs now, read from its folder: ``train`` or ``eval`` with the command's words and a
    line saying so, ``done`` (trained and evaluated) or ``unfinished`` (not trained to the end, and
    ``plan.train`` is off)."""
    run, log = RunDir(plan.folder(seed.seed)), escape(str(plan.log(seed.seed)))
    step = _checkpoint_step(run)
    seed.step = step if step is not None and step >= 0 else None
    seed.wall_seconds = _wall(run.path)
    if step is None or step < plan.max_steps:
        if not plan.train:
            where = "no checkpoint" if seed.step is None else f"step {seed.step} of {plan.max_steps}"
            return "unfinished", [], f"seed {seed.seed}: unfinished ({where}; not trained: --no-train)"
        if step is None:  # a fresh start; a run folder without a checkpoint (killed before its first) has nothing to keep
            (run.path / WALL_FILE).unlink(missing_ok=True)
            words = _train_words(plan, seed.seed, resume=False, force=run.recipe_file.is_file())
            return "train", words, f"seed {seed.seed}: training to step {plan.max_steps}  (log {log})"
        where = f"at step {step}" if step >= 0 else "from its checkpoint"
        return "train", _train_words(plan, seed.seed, resume=True, force=False), \
            f"seed {seed.seed}: resuming {where} to {plan.max_steps}  (log {log})"
    if plan.scored and _evaluated_step(run.path) != step:
        return "eval", _eval_words(plan, seed.seed), f"seed {seed.seed}: evaluating step {step}  (log {log})"
    return "done", [], ""


def _headline(scores: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.3f}" for k, v in scores.items() if not k.startswith("real_mi/"))


def run_sweep(plan: SweepPlan, console: Console) -> SweepResult:
    """Train, evaluate and rank the plan's seeds (see the module's docstring); one line per seed's start
    and end on ``console``. Writes ``sweep.json`` as seeds end and at the end. Raises
    :class:`RunInterrupted` after a signal, once every command has stopped."""
    make_folder(plan.out, "sweep folder")
    previous = (_read_json(plan.sweep_file) or {}).get("rank")  # reused if its checkpoints are unchanged
    result = SweepResult(plan, [SeedResult(s, str(plan.folder(s)), str(plan.log(s))) for s in plan.seeds])
    waiting = list(result.seeds)
    with _stop_requests() as stop:
        while waiting or stop.jobs:
            while waiting and len(stop.jobs) < plan.jobs and stop.signal_name is None:
                _advance(plan, waiting.pop(0), stop, console, after=None)
            for job in [j for j in stop.jobs if j.process.poll() is not None]:
                stop.jobs.remove(job)
                if _ended(plan, job, stop, console) and (stop.signal_name is None or job.phase == "eval"):
                    _advance(plan, job.seed, stop, console, after=job.phase)
                result.write()
            if stop.signal_name is not None:
                waiting.clear()
            time.sleep(POLL_SECONDS if stop.jobs else 0)
    if stop.signal_name is not None:
        result.stopped_by = stop.signal_name
        result.write()
        saved = [str(s.seed) for s in result.seeds if s.status == "stopped"]
        raise RunInterrupted(f"sweep stopped by {stop.signal_name}" + (f"; seeds {', '.join(saved)} saved their checkpoints"
                             if saved else "") + f"; continue with: {plan.command()}")
    result.write()
    _rank(result, console, previous)
    result.write()
    return result


def _advance(plan: SweepPlan, seed: SeedResult, stop: _Stop, console: Console, after: str | None) -> None:
    """Start the seed's next command, or settle its status when it needs none. ``after``: the phase
    that just succeeded (None: the seed's first look); a phase that would run again has failed."""
    try:
        phase, words, line = _next_phase(plan, seed)
    except UserError as exc:
        phase, words, line = "failed", [], str(exc)
    if phase == after:
        line = f"{phase} ended without finishing (step {seed.step} of {plan.max_steps}, {EVAL_FILE} at step {_evaluated_step(Path(seed.folder))})"
        phase = "failed"
    if phase == "failed":
        seed.status, seed.error = "failed", line
        console.print(f"seed {seed.seed}: [red]failed[/red]: {escape(line)}")
    elif phase == "unfinished":
        seed.status = "unfinished"
        console.print(line)
    elif phase == "done":
        seed.status = "skipped" if after is None else "finished"
        seed.scores = eval_scores(_read_json(plan.folder(seed.seed) / EVAL_FILE) or {}) if plan.scored else {}
        if after is None:
            console.print(f"seed {seed.seed}: skipped (finished before, step {seed.step})")
    else:
        seed.status = "running"
        console.print(line)
        stop.jobs.append(_start(plan, seed, phase, words))


def _ended(plan: SweepPlan, job: _Job, stop: _Stop, console: Console) -> bool:
    """Book a command that ended (the training's wall time and step); whether it succeeded. The seed is
    ``stopped`` when a signal stopped it, ``failed`` otherwise."""
    seed, code, seconds = job.seed, job.process.returncode, time.monotonic() - job.started
    if job.phase == "train":
        seed.wall_seconds = _add_wall(plan.folder(seed.seed), seconds)
        step = _checkpoint_step(RunDir(plan.folder(seed.seed)))
        seed.step = step if step is not None and step >= 0 else seed.step
    if code == 0:
        if job.phase == "train":
            console.print(f"seed {seed.seed}: trained to step {seed.step} in {seconds / 60:.1f} min")
        else:
            scores = eval_scores(_read_json(plan.folder(seed.seed) / EVAL_FILE) or {})
            console.print(f"seed {seed.seed}: evaluated: {escape(_headline(scores)) or 'no scores'}")
        if stop.signal_name is not None and job.phase == "train":
            seed.status = "stopped"
        return True
    if stop.signal_name is not None and (code in (130, -signal.SIGTERM, -signal.SIGINT) or job.phase == "eval"):
        seed.status = "stopped"
        console.print(f"seed {seed.seed}: stopped at step {seed.step} while {'training' if job.phase == 'train' else 'evaluating'}")
        return False
    seed.status, seed.error = "failed", f"{job.phase} exited with {code}: {_last_error(plan.log(seed.seed))}"
    console.print(f"seed {seed.seed}: [red]failed[/red] ({job.phase}, exit {code}); see {escape(str(plan.log(seed.seed)))}")
    return False


# --------------------------------------------------------------------------- the rank
def _rank(result: SweepResult, console: Console, previous: dict[str, Any] | None) -> None:
    """Rank the finished seeds with :func:`~.selection.select_runs`, or reuse ``previous`` (the rank
    sweep.json held) when it was made of the same checkpoints with the same options."""
    plan, finished = result.plan, result.finished
    if not plan.scored:
        result.rank_note = "no rank: the recipe has no Q (regularizer.enabled = false) or no codes"
        return
    if len(finished) < 2:
        result.rank_note = f"no rank: {len(finished)} finished seed{'s' if len(finished) != 1 else ''}; it takes two"
        return
    # (step, modification time) of each checkpoint: a rank made of them is reused while these hold
    checkpoints = [[s.step, RunDir(Path(s.folder)).checkpoint.stat().st_mtime_ns] for s in finished]
    key = {"seeds": [s.seed for s in finished], "checkpoints": checkpoints, "options": asdict(plan.rank)}
    if previous is not None and previous.get("key") == key:
        result.rank = previous
        console.print("rank: as in sweep.json (the same checkpoints)")
        return
    from .protocols import PaperProtocol
    from .selection import select_runs

    rank = plan.rank
    console.print(f"ranking {len(finished)} seeds (ModelCentrality{', MI real' if rank.real else ''}) ...")
    protocol = PaperProtocol(groups=rank.groups, group_size=rank.group_size, scale_points=rank.points, mig_points=rank.points)
    try:
        selection = select_runs([s.folder for s in finished], protocol, rank.real, device=rank.device)
    except UserError as exc:
        result.rank_note = f"no rank: {exc}"
        return
    except KeyboardInterrupt:
        raise RunInterrupted(f"stopped while ranking; every seed is saved; rank with: {plan.command()}") from None
    seeds = [s.seed for s in finished]
    result.rank = {
        "key": key,
        "seeds": seeds,
        "order": [seeds[i] for i in selection.ranking()],
        "pick": None if selection.pick is None else seeds[selection.pick],
        "no_pick": selection.no_pick_reason() if selection.pick is None else None,
        "best_real_mi": None if selection.best_real_mi is None else seeds[selection.best_real_mi],
        "selection": selection.to_json(),
    }


# --------------------------------------------------------------------------- the summary
def summary_table(result: SweepResult) -> Table:
    """Per seed: status, step, wall time, every eval score that exists, MI real and ModelCentrality with
    the label-free rank; the pick marked, failures with their logs in the caption."""
    plan, rank = result.plan, result.rank
    names = list(dict.fromkeys(k for s in result.seeds for k in s.scores if not k.startswith("real_mi/")))
    runs = {}
    if rank is not None:
        runs = {seed: run for seed, run in zip(rank["seeds"], rank["selection"]["runs"])}
    real_codes = list(dict.fromkeys(c for run in runs.values() for c in (run["real_mi"] or {})))
    table = Table(title=f"sweep of {plan.name} over seeds {plan.seeds_text}: {plan.out}")
    columns = ["seed", "status", "step", "wall min", *names, *(f"MI real {c}" for c in real_codes)]
    if rank is not None:
        columns += ["ModelCentrality", "rank"]
    for column in columns:
        table.add_column(column, justify="left" if column == "status" else "right", overflow="fold")
    order = {seed: i + 1 for i, seed in enumerate(rank["order"])} if rank else {}
    for seed in result.seeds:
        wall = f"{seed.wall_seconds / 60:.1f}" if seed.wall_seconds is not None else ""
        row = [str(seed.seed), seed.status, "" if seed.step is None else str(seed.step), wall,
               *(f"{seed.scores[n]:.3f}" if n in seed.scores else "" for n in names)]
        run = runs.get(seed.seed)
        row += [f"{run['real_mi'][c]:.3f}" if run and c in (run["real_mi"] or {}) else "" for c in real_codes]
        if rank is not None:
            mark = " (pick)" if seed.seed == rank["pick"] else ""
            row += [f"{run['centrality']:.3f}" if run else "", f"{order[seed.seed]}{mark}" if run else ""]
        table.add_row(*row)
    lines = []
    if rank is not None:
        if rank["pick"] is None:
            lines.append(f"no pick by ModelCentrality: {rank['no_pick']}")
        else:
            lines.append(f"pick (ModelCentrality): seed {rank['pick']}")
        if rank["best_real_mi"] is not None:
            lines.append(f"highest MI real ({rank['selection']['real_images']} real images): seed {rank['best_real_mi']}")
    elif result.rank_note:
        lines.append(result.rank_note)
    for seed in result.failed:
        lines.append(f"seed {seed.seed} failed: {seed.error} (log {seed.log})")
    lines.append(f"results: {plan.sweep_file}")
    table.caption = escape("\n".join(lines))
    return table
