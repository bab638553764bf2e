"""batchnorm.py: running statistics recomputed from generated batches, and Q read in eval mode on a trained run."""

import copy
import csv
import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gan_infogan_plugin import LatentCodeSpec
from gan_infogan_plugin.batchnorm import recalibrate, recalibrated
from gan_infogan_plugin.cli import app
from gan_infogan_plugin.evaluate import load_run
from gan_infogan_plugin.export import load_generator
from gan_infogan_plugin.regularizer import MIRegularizer
from gan_infogan_plugin.train import EVAL_IN_TRAINING

from conftest import run_shapes


def test_recalibrate_averages_the_batch_statistics_of_generated_batches():
    torch.manual_seed(0)
    spec = LatentCodeSpec.parse("noise:3,cat:2")
    linear, norm = nn.Linear(spec.input_dim, 4), nn.BatchNorm1d(4)
    generator = nn.Sequential(linear, norm).eval()
    weight = linear.weight.clone()
    recalibrate(generator, None, spec, batches=3, batch_size=5, seed=7)
    # By hand: the same codes, the layer's input per batch, its mean, and its unbiased variance per batch.
    rng = torch.Generator().manual_seed(7)
    with torch.no_grad():
        inputs = [linear(spec.sample(5, generator=rng).flat) for _ in range(3)]
    assert torch.allclose(norm.running_mean, torch.cat(inputs).mean(0), atol=1e-6)
    assert torch.allclose(norm.running_var, torch.stack([x.var(0) for x in inputs]).mean(0), atol=1e-6)
    assert int(norm.num_batches_tracked) == 3 and norm.momentum == 0.1 and not generator.training
    assert torch.equal(linear.weight, weight)


def test_recalibrated_puts_the_old_statistics_back():
    spec = LatentCodeSpec.parse("noise:2,cont:1")
    generator = nn.Sequential(nn.Linear(spec.input_dim, 3), nn.BatchNorm1d(3))
    discriminator = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).train()
    before = copy.deepcopy({**generator.state_dict(), **discriminator.state_dict()})
    with recalibrated(generator, discriminator, spec, batches=2, batch_size=4):
        assert not torch.equal(discriminator[1].running_mean, before["1.running_mean"])
        assert int(discriminator[1].num_batches_tracked) == 2
    after = {**generator.state_dict(), **discriminator.state_dict()}
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert generator.training and discriminator.training


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """infogan-shapes for 60 steps of 16 sprites, evaluated at the last step: enough for D's running
    statistics to trail its weights."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "shapes"
    settings = ["data.options.count=256", "trainer.batch_size=16", "trainer.sample_every=0", "trainer.checkpoint_every=0",
                "trainer.eval_every=60"]
    result = CliRunner().invoke(app, ["run", "infogan-shapes", "--max-steps", "60", "--out", str(out), "--no-progress",
                                      *(arg for s in settings for arg in ("--set", s))])
    assert result.exit_code == 0, result.output
    return out


def mi_in_training_mode(run_dir, n: int) -> dict[str, float]:
    """Q's MI bound per code with G, D and Q in training mode (batch statistics), on the codes the
    evaluation draws: seed 0, batches of 256."""
    run = load_run(run_dir)
    spec, regularizer = run.recipe.codes, MIRegularizer(run.recipe.codes)
    generator, dq = run.networks.generator.train(), run.networks.discriminator.train()
    rng, sums = torch.Generator().manual_seed(0), {}
    with torch.no_grad():
        for _ in range(n // 256):
            codes = spec.sample(256, generator=rng)
            for key, value in regularizer(dq(generator(codes.flat))[1], codes).stats.items():
                sums[key] = sums.get(key, 0.0) + float(value) * 256 / n
    return {code: sums[f"mi/{code}"] for code in spec.names}


def assert_close(in_eval_mode: dict[str, float], in_training_mode: dict[str, float]) -> None:
    assert in_eval_mode.keys() == in_training_mode.keys()
    for code, mi in in_training_mode.items():
        assert in_eval_mode[code] == pytest.approx(mi, abs=0.06), code


def test_trainer_eval_every_reads_q_as_training_does(trained_run):
    """trainer.eval_every scores the live networks, whose running statistics trail the weights: before they
    were recomputed, eval mode read the codes 0.1-0.4 nats lower than training mode on this run."""
    with open(trained_run / "metrics.csv", newline="") as f:
        row = next(row for row in csv.DictReader(f) if row.get("eval/mi/c1"))
    assert row["step"] == "60"
    in_eval_mode = {key.removeprefix("eval/mi/"): float(value) for key, value in row.items() if key.startswith("eval/mi/")}
    assert_close(in_eval_mode, mi_in_training_mode(trained_run, EVAL_IN_TRAINING.generated))


def test_eval_reads_q_as_training_does(trained_run, tmp_path):
    """`gan-recipes eval`'s MI bound per code (G, D and Q in eval mode) against training mode on the same codes."""
    report = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", str(trained_run), "--real", "0", "--generated", "1024", "--points", "64",
                                      "--votes", "2", "--paper-groups", "0", "--json", str(report)])
    assert result.exit_code == 0, result.output
    in_eval_mode = {code: v["mi"] for code, v in json.loads(report.read_text())["mi"].items()}
    assert_close(in_eval_mode, mi_in_training_mode(trained_run, 1024))


@pytest.mark.parametrize("bn_batches", [3, 0])
def test_a_finished_run_sets_batchnorm_from_bn_batches_generated_batches(bn_batches, tmp_path):
    """trainer.bn_batches = N: the checkpoint's and the exported G's BatchNorm statistics are the plain average
    of N generated batches (N batches tracked); 0 keeps the moving averages of training (2 steps: G's layers
    saw one pass per step, D's layers more)."""
    torch.set_num_threads(1)
    result = run_shapes(tmp_path / "run", 2, "trainer.sample_every=0", "trainer.checkpoint_every=0",
                        f"trainer.bn_batches={bn_batches}")
    assert result.exit_code == 0, result.output
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    tracked = {f"{net}.{key}": int(value) for net in ("generator", "discriminator")
               for key, value in checkpoint[net].items() if key.endswith("num_batches_tracked")}
    assert any(key.startswith("generator.") for key in tracked) and any(key.startswith("discriminator.") for key in tracked)
    if bn_batches:
        assert set(tracked.values()) == {bn_batches}, tracked
    else:
        assert all(n == 2 for key, n in tracked.items() if key.startswith("generator.")), tracked
        assert all(n > 2 for key, n in tracked.items() if key.startswith("discriminator.")), tracked  # real and fake passes
    exported = load_generator(tmp_path / "run" / "generator.safetensors").generator.state_dict()
    assert all(torch.equal(exported[k], checkpoint["generator"][k].to(exported[k].dtype)) for k in exported if "running" in k)
