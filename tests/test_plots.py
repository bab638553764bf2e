"""`gan-recipes plot`: metrics.png from a run's metrics.csv (needs the [plot] extra: matplotlib)."""

from __future__ import annotations

import sys

import pytest
from PIL import Image
from conftest import assert_user_error, gan_recipes

from gan_infogan_plugin.plots import is_score, plot_after_run, read_metrics

pytest.importorskip("matplotlib", reason="matplotlib is not installed: pip install -e '.[test]' (or '.[plot]')")

HEADER = "acc/c1,eval/accuracy/c1,eval/mi/c1,eval/real_mi/c1,eval/mig,loss/d,loss/g,mi,mi/c1,mi/c2,step\n"
ROWS = [
    "0.5,,,,,1.30,0.80,0.7,0.5,0.2,50\n",
    "0.9,0.62,1.9,1.7,0.1,1.10,0.95,1.8,1.6,0.3,100\n",
    "1.0,,,,,1.00,1.05,2.1,1.9,0.35,150\n",
    "1.0,0.81,2.0,2.1,0.2,0.9",  # cut short by a kill before its step: skipped
]


def make_run(path, rows=ROWS, header=HEADER):
    path.mkdir(parents=True)
    (path / "metrics.csv").write_text(header + "".join(rows))
    (path / "recipe.toml").write_text('codes = "noise:8,cat:10,cont:1"\n')
    return path


def size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


def invoke(*args):
    return gan_recipes("plot", *args)


def test_read_metrics_keeps_the_logged_cells(tmp_path):
    run = read_metrics(make_run(tmp_path / "a"))
    assert run.series["loss/d"] == ([50, 100, 150], [1.3, 1.1, 1.0])
    assert run.series["eval/accuracy/c1"] == ([100], [0.62])  # empty cells: not logged at that step
    assert run.series["mi/c2"] == ([50, 100, 150], [0.2, 0.3, 0.35])
    assert run.entropy == pytest.approx({"c1": 2.302585, "c2": 0.693147})  # ln 10, and ln 2 for uniform(-1, 1)


def test_the_scores_panel_takes_scores_only():
    """Scores in [0, 1] per code and per run, both protocols'; not counts, MI values or losses."""
    scores = ["eval/accuracy/c1", "eval/nmi/c1", "eval/ari/c2", "eval/mig", "eval/factorvae", "eval/paper/mig", "eval/paper/factorvae"]
    others = ["eval/real_images", "eval/mi/c1", "eval/real_mi/c1", "eval/paper/real_images", "eval/mig/c1", "iic/c1", "mi", "loss/d", "acc/c1"]
    assert [is_score(c) for c in scores + others] == [True] * len(scores) + [False] * len(others)


def test_one_run_gets_three_panels(tmp_path):
    run = make_run(tmp_path / "a")
    result = invoke(run)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run / "metrics.png")
    assert size(run / "metrics.png") == (1560, 420)  # losses, codes, eval scores: 5.2 x 4.2 inches each at 100 dpi


def test_panels_follow_the_logged_columns(tmp_path):
    run = make_run(tmp_path / "plain", ["1.3,0.8,50\n", "1.1,0.9,100\n"], "loss/d,loss/g,step\n")
    assert invoke(run).exit_code == 0
    assert size(run / "metrics.png") == (520, 420)  # a plain GAN: the losses alone


def test_several_runs_overlaid_in_their_common_folder(tmp_path):
    runs = [make_run(tmp_path / "sweep" / f"seed{i}") for i in range(3)]
    result = invoke(*runs)
    assert result.exit_code == 0, result.output
    assert size(tmp_path / "sweep" / "metrics.png")[0] == 1560
    assert invoke(*runs, "--out", tmp_path / "all.png").exit_code == 0 and (tmp_path / "all.png").is_file()


def test_mistakes_are_one_line_errors(tmp_path):
    run = make_run(tmp_path / "a")
    for args, fragment in (([tmp_path / "absent"], "metrics.csv: no such file"),
                           ([run, "--out", tmp_path / "x.jpg"], "expected a .png file name")):
        assert_user_error(invoke(*args), fragment)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.csv").write_text("")
    assert_user_error(invoke(tmp_path / "empty"), "a 'step' column")


def test_without_matplotlib_the_run_says_how_to_get_the_plot(tmp_path, monkeypatch):
    run = make_run(tmp_path / "a")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    message = plot_after_run(run)
    assert message.startswith("no metrics.png: plots need matplotlib") and "gan-infogan-plugin[plot]" in message
    assert message.endswith(f"gan-recipes plot {run}") and not (run / "metrics.png").exists()
    assert_user_error(invoke(run), "pip install 'gan-infogan-plugin[plot]'")
    monkeypatch.undo()
    assert plot_after_run(run) == f"plot: {run / 'metrics.png'}"
