"""`gan-recipes sweep` end to end on tiny infogan-shapes runs: two seeds at once, trained, evaluated and ranked;
the same command again skips them; a stopped seed resumes; a failing seed is reported; the seed lists; bad
inputs refused in one line; the Slurm array script gives the sweep one machine gives."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import TINY, assert_user_error
from typer.testing import CliRunner

from gan_infogan_plugin.cli import app
from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.runs import FolderLock
from gan_infogan_plugin.sweep import parse_seeds

SBATCH = Path(__file__).resolve().parent.parent / "docs" / "slurm" / "sweep-array.sbatch"
# 2 steps of batch 8 on 64 shapes; a light evaluation and rank.
SETS = [*TINY, "trainer.max_steps=2", "trainer.sample_every=0", "trainer.log_every=1"]
LIGHT = ["--eval", "--generated 64 --points 100 --votes 4 --paper-groups 0", "--real", "64",
         "--groups", "10", "--group-size", "8", "--points", "200"]
CLI = [sys.executable, "-c", "from gan_infogan_plugin.cli import main; main()"]


def sets(*options: str) -> list[str]:
    return [arg for option in (*SETS, *options) for arg in ("--set", option)]


def sweep(*args: object):
    """``gan-recipes sweep ARGS`` in this process (the seeds' commands are processes of their own), 200 columns wide."""
    return CliRunner().invoke(app, ["sweep", *map(str, args)], env={"COLUMNS": "200"})


def flat(text: str) -> str:
    """``text`` without table borders (box-drawing characters), whitespace collapsed."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", text).split())


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Seeds 0 and 1 of infogan-shapes swept with --jobs 2: (the sweep folder, the CLI result)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("sweeps") / "shapes"
    return out, sweep("infogan-shapes", "--seeds", "0-1", "--jobs", 2, "--out", out, *sets(), *LIGHT)


def test_sweep_trains_evaluates_and_ranks_every_seed(swept):
    out, result = swept
    assert result.exit_code == 0, result.output
    report = json.loads((out / "sweep.json").read_text())
    assert report["recipe"]["name"] == "infogan-shapes" and report["jobs"] == 2
    assert report["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    for seed, entry in zip((0, 1), report["seeds"]):
        folder = out / f"seed-{seed}"
        assert entry["seed"] == seed and entry["status"] == "finished" and entry["step"] == 2
        assert entry["folder"] == str(folder) and entry["log"] == str(out / f"seed-{seed}.log")
        assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["step"] == 2
        assert tomllib.loads((folder / "recipe.toml").read_text())["trainer"]["seed"] == seed
        evaluation = json.loads((folder / "eval.json").read_text())
        assert evaluation["step"] == 2 and evaluation["real_images"]["scored"] == 64  # --real reaches eval
        code = evaluation["categorical"]["codes"]["c1"]  # shapes: a labelled 3-way code, and factors
        assert entry["scores"] == {"accuracy/c1": code["accuracy"], "nmi/c1": code["nmi"],
                                   "real_mi/c1": evaluation["real_mi"]["c1"], "mig": evaluation["disentanglement"]["mig"],
                                   "factorvae": evaluation["disentanglement"]["factorvae_eval"]}
        assert 0 < entry["wall_seconds"] == float((folder / "wall_seconds").read_text())
        log = (out / f"seed-{seed}.log").read_text()
        assert "gan-recipes run infogan-shapes" in log and "step 2/2" in log and "gan-recipes eval" in log
    rank = report["rank"]
    selection = rank["selection"]  # gan-recipes select's JSON, of the two seed folders
    assert [r["run"] for r in selection["runs"]] == [str(out / "seed-0"), str(out / "seed-1")]
    centrality = [r["centrality"] for r in selection["runs"]]
    assert centrality[0] == pytest.approx(centrality[1]) and sorted(rank["order"]) == [0, 1]  # two runs: one agreement
    assert rank["pick"] is None and selection["pick"] is None and selection["model_centrality"]["pick"] is None
    assert "compare three runs or more" in rank["no_pick"]
    mi = [r["real_mi"]["c1"] for r in selection["runs"]]
    assert rank["best_real_mi"] == max((0, 1), key=lambda i: mi[i])
    assert mi == pytest.approx([s["scores"]["real_mi/c1"] for s in report["seeds"]], abs=1e-6)  # eval and rank: the same images
    shown = flat(result.stdout)
    for line in ("seed 0: training to step 2", "seed 1: evaluating step 2", "seed 0: trained to step 2",
                 "seed 1: evaluated: accuracy/c1", "ranking 2 seeds"):
        assert line in shown, line
    assert "step 1/2" not in shown  # the runs' own output went to their logs
    assert "seed status step wall min accuracy/c1 nmi/c1 mig factorvae MI real c1 ModelCentrality rank" in shown
    assert "no pick by ModelCentrality: two runs always tie" in shown and "(pick)" not in shown
    assert f"results: {out / 'sweep.json'}" in shown


def test_the_same_command_again_skips_the_finished_seeds(swept):
    out, _ = swept
    files = [out / f"seed-{s}" / name for s in (0, 1) for name in ("checkpoints/last.ckpt", "eval.json", "metrics.csv")]
    before = {f: f.stat().st_mtime_ns for f in files}
    logs = {s: (out / f"seed-{s}.log").read_text() for s in (0, 1)}
    result = sweep("infogan-shapes", "--seeds", "0-1", "--jobs", 2, "--out", out, *sets(), *LIGHT)
    assert result.exit_code == 0, result.output
    assert {f: f.stat().st_mtime_ns for f in files} == before  # nothing trained or evaluated
    assert {s: (out / f"seed-{s}.log").read_text() for s in (0, 1)} == logs  # no command started
    shown = flat(result.stdout)
    assert "seed 0: skipped (finished before, step 2)" in shown and "rank: as in sweep.json" in shown
    assert [s["status"] for s in json.loads((out / "sweep.json").read_text())["seeds"]] == ["skipped", "skipped"]


def test_a_failing_seed_is_reported_and_the_others_finish(swept, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(swept[0], out)  # seeds 0 and 1 finished; seed 2's folder is held by another process
    (out / "seed-2").mkdir()
    lock = FolderLock.acquire(out / "seed-2", "a test holding it")
    try:
        result = sweep("infogan-shapes", "--seeds", "0-2", "--out", out, *sets(), *LIGHT)
    finally:
        lock.release()
    assert result.exit_code == 1, result.output
    report = json.loads((out / "sweep.json").read_text())
    assert [s["status"] for s in report["seeds"]] == ["skipped", "skipped", "failed"]
    error = report["seeds"][2]["error"]
    assert error.startswith("train exited with 2: error:") and "a test holding it" in error
    assert report["rank"]["seeds"] == [0, 1]  # the finished seeds are still ranked
    shown = flat(result.stdout)
    assert f"seed 2: failed (train, exit 2); see {out / 'seed-2.log'}" in shown
    assert f"seed 2 failed: train exited with 2" in shown and f"(log {out / 'seed-2.log'})" in shown
    assert "seeds not finished: 2" in result.stderr


def test_a_stopped_seed_saves_its_checkpoint_and_resumes(tmp_path):
    """SIGTERM to the sweep reaches the run (a plain GAN: nothing to evaluate); the same sweep with a
    nearer max_steps resumes from its checkpoint."""
    out = tmp_path / "sweep"
    args = ["sweep", "infogan-shapes", "--seeds", "3", "--out", str(out), *sets("regularizer.enabled=false")]
    proc = subprocess.Popen([*CLI, *args, "--set", "trainer.max_steps=100000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    deadline, log = time.monotonic() + 240, out / "seed-3.log"
    while time.monotonic() < deadline and proc.poll() is None and "step 2/" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)  # training is under way
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: sweep stopped by SIGTERM; seeds 3 saved their checkpoints; "
                                                      "continue with: gan-recipes sweep infogan-shapes --seeds 3 --out")
    step = torch.load(out / "seed-3" / "checkpoints" / "last.ckpt", weights_only=True)["step"]
    assert step >= 2 and f"seed 3: stopped at step {step} while training" in stdout
    assert "stopped at step" in log.read_text() and "SIGTERM" in log.read_text()  # the run's own message
    assert json.loads((out / "sweep.json").read_text())["seeds"][0]["status"] == "stopped"

    result = sweep(*args[1:], "--set", f"trainer.max_steps={step + 1}")
    assert result.exit_code == 0, result.output
    assert f"seed 3: resuming at step {step} to {step + 1}" in flat(result.stdout)
    assert torch.load(out / "seed-3" / "checkpoints" / "last.ckpt", weights_only=True)["step"] == step + 1
    assert f"run folder: {out / 'seed-3'} (resuming at step {step})" in log.read_text()
    report = json.loads((out / "sweep.json").read_text())
    assert report["seeds"][0]["status"] == "finished" and report["rank"] is None and "no Q" in report["rank_note"]
    assert not (out / "seed-3" / "eval.json").exists()


@pytest.mark.parametrize("text, seeds", [
    ("0-9", list(range(10))), ("0,2,5-7", [0, 2, 5, 6, 7]), ("3", [3]), ("7-7", [7]), (" 4 , 1-2 ", [4, 1, 2]),
    ("4294967295", [2**32 - 1]),
])
def test_seed_lists(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("", "expected seeds >= 0"), ("a", "got 'a'"), ("-1", "got '-1'"), ("1-", "got '1-'"), ("1,,2", "got ''"),
    ("3-1", "runs backwards; write 1-3"), ("0-3,2", "seed 2 given twice"), ("1.5", "got '1.5'"),
    ("4294967296", "at most 2^32 - 1"),
])
def test_bad_seed_lists(text, message):
    with pytest.raises(UserError, match=f"--seeds {re.escape(text)}: .*{re.escape(message)}"):
        parse_seeds(text)


def test_bad_input_is_one_line_and_changes_nothing(swept, tmp_path):
    fresh = tmp_path / "fresh"
    for args, fragments in [
        (["infogan-shapes", "--seeds", "2-1"], ["--seeds 2-1", "backwards"]),
        (["infogan-shapez", "--seeds", "0"], ["unknown recipe 'infogan-shapez'", "did you mean infogan-shapes"]),
        (["infogan-shapes", "--seeds", "0", "--jobs", "0"], ["--jobs 0: expected from 1 to"]),
        (["infogan-shapes", "--seeds", "0", "--jobs", "100000"], ["--jobs 100000: expected from 1 to"]),
        (["infogan-shapes", "--seeds", "0", "--set", "trainer.seed=4"], ["--set trainer.seed", "--seeds"]),
        (["infogan-shapes", "--seeds", "0", "--set", "trainer.bach_size=8"], ["did you mean trainer.batch_size"]),
        (["infogan-shapes", "--seeds", "0", "--eval", '"--real 5'], ["--eval", "quotation"]),
        (["infogan-shapes", "--seeds", "0", "--device", "nonsense"], ["--device nonsense"]),
    ]:
        assert_user_error(sweep(*args, "--out", fresh), *fragments)
        assert not fresh.exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_user_error(sweep("infogan-shapes", "--seeds", "0", "--out", a_file), f"--out {a_file}", "a file")

    out = tmp_path / "copy"
    shutil.copytree(swept[0], out)
    state = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert_user_error(sweep("infogan-mnist", "--seeds", "0-1", "--out", out), "holds a sweep of infogan-shapes", "not of infogan-mnist")
    assert_user_error(sweep("infogan-shapes", "--seeds", "0-1", "--out", out, *sets("trainer.batch_size=4")),
                      str(out / "seed-0" / "recipe.toml"), "other settings (trainer.batch_size)")
    (out / "sweep.json").unlink()  # without sweep.json, the seed folders still say which recipe they hold
    assert_user_error(sweep("infogan-mnist", "--seeds", "1", "--out", out), str(out / "seed-1" / "recipe.toml"), "other settings")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == {p: b for p, b in state.items() if p.name != "sweep.json"}


def test_the_slurm_array_script_gives_the_sweep_one_machine_gives(swept, tmp_path):
    """Two array tasks (SLURM_ARRAY_TASK_ID 0 and 1, at once) run the script, then the final job ranks;
    scores and rank equal those of the one-machine sweep (--jobs 2 there and here: the same threads)."""
    done = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out, options = tmp_path / "array", [*sets(), *LIGHT, "--jobs", "2"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    tasks = [subprocess.Popen(["bash", str(SBATCH), "infogan-shapes", str(out), *options], env={**env, "SLURM_ARRAY_TASK_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    for task in tasks:
        output = task.communicate(timeout=300)[0]
        assert task.returncode == 0, output
        assert "no rank: 1 finished seed; it takes two" in flat(output)
    final = sweep("infogan-shapes", "--out", out, *options, "--seeds", "0-1", "--no-train")
    assert final.exit_code == 0, final.output
    here, there = (json.loads((folder / "sweep.json").read_text()) for folder in (out, swept[0]))
    assert [s["status"] for s in here["seeds"]] == ["skipped", "skipped"]
    assert [(s["step"], s["scores"]) for s in here["seeds"]] == [(s["step"], s["scores"]) for s in there["seeds"]]
    for key in ("order", "pick", "best_real_mi"):
        assert here["rank"][key] == there["rank"][key], key
    assert here["rank"]["selection"]["model_centrality"] == there["rank"]["selection"]["model_centrality"]


def test_no_train_leaves_unfinished_seeds_alone(tmp_path):
    out = tmp_path / "none"
    result = sweep("infogan-shapes", "--seeds", "0,1", "--out", out, "--no-train", *sets())
    assert result.exit_code == 1, result.output
    assert "seed 0: unfinished (no checkpoint; not trained: --no-train)" in flat(result.stdout)
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]
    report = json.loads((out / "sweep.json").read_text())
    assert [s["status"] for s in report["seeds"]] == ["unfinished", "unfinished"] and report["rank"] is None
