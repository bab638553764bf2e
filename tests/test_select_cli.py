"""`gan-recipes select` end to end: three tiny infogan-shapes runs ranked by ModelCentrality and MI real,
the table, the pick and the JSON; one-line refusals of bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import assert_user_error, gan_recipes, tiny_run

from gan_infogan_plugin.protocols import TIE

SMALL = ["--groups", 10, "--group-size", 8, "--points", 200, "--real", 64]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three 2-step infogan-shapes runs (cat:3 and four continuous codes), seeds 0, 1, 2."""
    return [tiny_run(tmp_path_factory, 2, "trainer.sample_every=0", f"trainer.seed={seed}") for seed in range(3)]


def test_select_ranks_the_runs_and_names_the_pick(runs, tmp_path):
    out = tmp_path / "select.json"
    result = gan_recipes("select", *runs, "--json", out, *SMALL)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    matrix = report["model_centrality"]
    scores, agreement = np.array(matrix["scores"]), np.array(matrix["agreement"])
    assert scores.shape == (3, 3) and ((0 <= scores) & (scores <= 1)).all()
    assert np.allclose(agreement, (scores + scores.T) / 2)
    centrality = [(agreement[i].sum() - agreement[i, i]) / 2 for i in range(3)]
    assert np.allclose(centrality, matrix["centrality"]) and [r["centrality"] for r in report["runs"]] == pytest.approx(centrality)
    top = [i for i, c in enumerate(centrality) if np.isclose(c, max(centrality), rtol=0, atol=TIE)]
    # With 10 groups the scores are tenths, so these tiny runs can tie (they did on one CPU, not on another):
    # a unique most central run is the pick, a tie names none and says why.
    pick = top[0] if len(top) == 1 else None
    if pick is None:
        assert report["pick"] is None and matrix["pick"] is None
    else:
        assert report["pick"] == str(runs[pick]) == report["runs"][matrix["pick"]]["run"]
    assert [r["run"] for r in report["runs"]] == [str(r) for r in runs] and all(r["step"] == 2 for r in report["runs"])
    mi = [r["real_mi"]["c1"] for r in report["runs"]]  # the categorical code, label-free, <= ln 3
    assert all(0 <= v <= 1.0987 for v in mi) and report["best_real_mi"] == str(runs[int(np.argmax(mi))])
    assert report["real_images"] == 64 and report["protocol"]["groups"] == 10
    stdout = " ".join(result.stdout.split())
    assert "ModelCentrality" in stdout and "MI real c1" in stdout and "highest MI real (64 real images)" in stdout
    if pick is None:
        assert "no pick by ModelCentrality: the most central runs tie" in stdout and "(pick)" not in stdout
    else:
        assert "(pick)" in stdout and f"pick (ModelCentrality): {runs[pick]}" in stdout

    again = gan_recipes("select", *runs, "--json", out, *SMALL)  # the JSON is not overwritten without --force
    assert_user_error(again, str(out), "--force")
    same = gan_recipes("select", *reversed(runs), "--real", 0, *SMALL[:6])
    assert same.exit_code == 0 and "MI real" not in same.stdout  # --real 0: ModelCentrality only


def test_two_runs_tie_and_select_names_no_pick(runs, tmp_path):
    out = tmp_path / "two.json"
    result = gan_recipes("select", *runs[:2], "--json", out, *SMALL)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["pick"] is None and report["model_centrality"]["pick"] is None
    assert report["runs"][0]["centrality"] == pytest.approx(report["runs"][1]["centrality"])
    stdout = " ".join(result.stdout.split())
    assert "no pick by ModelCentrality: two runs always tie" in stdout and "(pick)" not in stdout
    assert "highest MI real" in stdout  # MI real still ranks a categorical code


def test_select_refuses_bad_inputs(runs, tmp_path):
    assert_user_error(gan_recipes("select", runs[0], *SMALL), "at least two run folders")
    assert_user_error(gan_recipes("select", runs[0], tmp_path, *SMALL), str(tmp_path), "not a run folder with a checkpoint")
    assert_user_error(gan_recipes("select", runs[0], runs[0], *SMALL), "given twice")
    other_codes, other_data = tmp_path / "codes", tmp_path / "data"
    for copy, old, new in [(other_codes, 'codes = "noise:32,cat:3,cont:4"', 'codes = "noise:32,cat:3,cont:3"'),
                           (other_data, "count = 64", "count = 32")]:
        shutil.copytree(runs[1], copy)
        recipe = copy / "recipe.toml"
        assert old in recipe.read_text()
        recipe.write_text(recipe.read_text().replace(old, new))
    assert_user_error(gan_recipes("select", runs[0], other_codes, *SMALL), "codes noise:32,cat:3,cont:3 differ", "one code spec")
    assert_user_error(gan_recipes("select", runs[0], other_data, *SMALL), "data.options differ", "one data set")
