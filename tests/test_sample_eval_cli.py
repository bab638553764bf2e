"""`gan-recipes sample` and `gan-recipes eval` on a two-step infogan-shapes run (28x28, MNIST nets)."""

import csv
import json
import pickle

import pytest
import safetensors
import safetensors.torch
import torch
from conftest import assert_user_error, gan_recipes as invoke, tiny_run
from PIL import Image


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 2-step run, evaluated at step 2 (trainer.eval_every)."""
    return tiny_run(tmp_path_factory, 2, "trainer.sample_every=0", "trainer.checkpoint_every=0", "trainer.log_every=1",
                    "trainer.eval_every=2")


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()  # decodes every pixel
        return image.size


# 28x28 images with 2 pixels of padding: a grid of c columns and r rows is (30c + 2) x (30r + 2).


def test_trainer_eval_every_logs_the_scores(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("eval/mig")]
    assert [row["step"] for row in rows] == ["2"]
    row = rows[0]
    assert -10 < float(row["eval/mi/c1"]) <= 1.0987  # H(c1) = ln 3
    assert 1 / 3 <= float(row["eval/accuracy/c1"]) <= 1 and 0 <= float(row["eval/factorvae"]) <= 1
    assert 0 <= float(row["eval/real_mi/c1"]) <= 1.0987


def test_sample_writes_a_grid(run_dir, tmp_path):
    out = tmp_path / "samples.png"
    result = invoke("sample", run_dir / "generator.safetensors", "--out", out, "--n", 6, "--fix", "c1=2,c2=0.5")
    assert result.exit_code == 0, result.output
    assert png_size(out) == (3 * 30 + 2, 2 * 30 + 2)  # 6 images, 3 per row


def test_sample_traversals(run_dir, tmp_path):
    weights = run_dir / "generator.safetensors"
    result = invoke("sample", weights, "--out", tmp_path / "c1.png", "--traverse", "c1", "--n", 4)
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "c1.png") == (4 * 30 + 2, 3 * 30 + 2)  # rows: the 3 classes of c1
    result = invoke("sample", weights, "--out", tmp_path / "t.png", "--traverse", "all", "--n", 2)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("t-*.png")) == [f"t-c{i}.png" for i in range(1, 6)]
    assert png_size(tmp_path / "t-c2.png") == (2 * 30 + 2, 9 * 30 + 2)  # a continuous code: 9 values


def test_sample_never_overwrites_without_force(run_dir, tmp_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"mine")
    assert_user_error(invoke("sample", run_dir / "generator.safetensors", "--out", out), str(out), "--force")
    assert out.read_bytes() == b"mine"
    assert invoke("sample", run_dir / "generator.safetensors", "--out", out, "--force").exit_code == 0
    assert png_size(out) == (8 * 30 + 2, 8 * 30 + 2)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--fix", "c1=7"], "c1"),
        (["--fix", "c9=1"], "c9"),
        (["--fix", "c1"], "CODE=VALUE"),
        (["--traverse", "c7"], "c7"),
        (["--traverse", "c1", "--fix", "c1=1"], "--fix"),
    ],
)
def test_sample_option_errors(run_dir, tmp_path, args, fragment):
    out = tmp_path / "x.png"
    assert_user_error(invoke("sample", run_dir / "generator.safetensors", "--out", out, *args), fragment)
    assert not out.exists()


def bad_files(run_dir, folder) -> dict[str, object]:
    good = (run_dir / "generator.safetensors").read_bytes()
    files = {
        "truncated.safetensors": good[: len(good) // 2],
        "random.safetensors": torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    tensors = safetensors.torch.load_file(run_dir / "generator.safetensors")
    torch.save(tensors, folder / "pickled.safetensors")
    (folder / "plain.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with safetensors.safe_open(run_dir / "generator.safetensors", framework="pt") as f:
        metadata = f.metadata()
    metadata["spec"] = json.dumps({"noise": 32, "codes": [{"name": "c1", "kind": "cat", "classes": 10}]})
    safetensors.torch.save_file(tensors, folder / "other-spec.safetensors", metadata=metadata)
    return sorted(folder.glob("*"))


def test_sample_rejects_bad_weight_files(run_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in bad_files(run_dir, inputs):
        out = tmp_path / f"{path.stem}.png"
        assert_user_error(invoke("sample", path, "--out", out), str(path))
        assert not out.exists()
    assert_user_error(invoke("sample", tmp_path / "missing.safetensors", "--out", tmp_path / "m.png"), "missing.safetensors")


def test_eval_prints_a_table_and_writes_json(run_dir, tmp_path):
    out = tmp_path / "eval.json"
    args = ["--real", 64, "--generated", 64, "--points", 200, "--votes", 20, "--paper-groups", 20, "--paper-group-size", 10,
            "--paper-points", 300]
    result = invoke("eval", run_dir, "--json", out, *args)
    assert result.exit_code == 0, result.output
    assert "MI bound" in result.stdout and "FactorVAE" in result.stdout and "MIG" in result.stdout
    assert "disentanglement_lib's protocol" in result.stdout and "InfoGAN-CR paper's protocol" in result.stdout
    report = json.loads(out.read_text())
    assert {"run", "checkpoint", "step", "mi", "categorical", "disentanglement", "settings"} <= report.keys()
    assert report["step"] == 2
    assert set(report["mi"]) == {"c1", "c2", "c3", "c4", "c5"}
    assert {"mi", "entropy", "acc"} <= report["mi"]["c1"].keys() and "mse" in report["mi"]["c2"]
    assert report["categorical"]["data"] == "shapes" and report["categorical"]["images"] == 64
    c1 = report["categorical"]["codes"]["c1"]
    assert {"accuracy", "nmi", "ari", "mapping", "overlap"} <= c1.keys() and 1 / 3 <= c1["accuracy"] <= 1
    overlap = c1["overlap"]  # a 2-step Q: values shared, spare or unused, each value in one list at most
    named = [int(v) for v in overlap["merged"]] + [int(v) for v in overlap["spare"]] + overlap["unused"]
    assert len(named) == len(set(named)) and set(named) <= {0, 1, 2}
    printed = " ".join(result.stdout.split())  # the caption may wrap
    for value, shares in overlap["mixed"].items():  # values under 90% one class, each class share >= 10%
        assert shares[0][1] < 0.9 and all(share >= 0.1 for _, share in shares) and sum(s for _, s in shares) <= 1 + 1e-9
        assert (f"value {value} mixes {shares[0][0]} {shares[0][1]:.0%}" in printed) == (value not in overlap["merged"])
    assert set(report["real_mi"]) == {"c1"} and 0 <= report["real_mi"]["c1"] <= 1.0987  # label-free, <= ln 3
    assert "MI real" in result.stdout
    d = report["disentanglement"]
    assert d["factors"] == ["shape", "scale", "rotation", "x", "y"] and set(d["mig_gaps"]) == set(d["factors"])
    assert 0 <= d["mig"] <= 1 and 0 <= d["factorvae_eval"] <= 1
    assert report["settings"]["votes"] == 20
    paper = report["disentanglement_paper"]
    assert d["protocol"] == "disentanglement_lib" and paper["protocol"] == "InfoGAN-CR paper (Lin et al. 2020)"
    assert paper["factors"] == d["factors"] and 0 <= paper["mig"] <= 1 and 0 <= paper["factorvae_revised"] <= paper["factorvae"] <= 1
    assert (paper["groups"], paper["group_size"], paper["mig_points"]) == (20, 10, 300)
    assert sum(map(sum, paper["votes"])) == 20 and len(paper["votes"]) == 5  # one vote per group; rows: the factors

    # the same again: refused, the file kept; from the checkpoint file, without the data, to the default path
    assert_user_error(invoke("eval", run_dir, "--json", out, *args), str(out))
    result = invoke("eval", run_dir / "checkpoints" / "last.ckpt", "--real", 0, "--generated", 16, "--points", 50, "--votes", 4,
                    "--paper-groups", 0)
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "eval" / "step-0000002.json").read_text())
    assert "categorical" not in report and "disentanglement_paper" not in report and "disentanglement" in report


def test_eval_errors(run_dir, tmp_path):
    assert_user_error(invoke("eval", tmp_path), str(tmp_path), "checkpoint")
    broken = tmp_path / "run"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "recipe.toml").write_text((run_dir / "recipe.toml").read_text())
    ckpt = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    (broken / "checkpoints" / "last.ckpt").write_bytes(ckpt[: len(ckpt) // 3])
    assert_user_error(invoke("eval", broken), "last.ckpt")
    assert_user_error(invoke("eval", run_dir, "--data", "nope=1"), "nope")
    assert not (broken / "eval").exists()
