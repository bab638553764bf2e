"""Recipes: the shipped files, writing them back as TOML, --set overrides, and one clear error per bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gan_infogan_plugin.cli import app
from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.recipes import Recipe, available_recipes, load_recipe, parse_recipe, parse_value

SHIPPED = {
    "infogan-shapes", "infogan-mnist", "infogan-fashion-mnist", "dcgan-mnist",
    "infogan-svhn", "infogan-celeba", "infogan-chairs", "infogan-faces", "infogan-dsprites",
}
MINIMAL = 'codes = "noise:4,cat:2"\n[model]\nname = "mnist"\n'


def test_every_shipped_recipe_loads_and_round_trips():
    assert SHIPPED <= set(available_recipes())
    for name in SHIPPED:
        recipe = load_recipe(name)
        assert recipe.name == name and recipe.description
        again = parse_recipe(recipe.to_toml(), name, "dumped")
        assert again.to_dict() == recipe.to_dict()


def test_paper_settings():
    mnist = load_recipe("infogan-mnist")
    assert str(mnist.codes) == "noise:62:uniform,cat:10,cont:2"
    assert (mnist.optim.d.lr, mnist.optim.g.lr, mnist.optim.g.betas[0]) == (2e-4, 1e-3, 0.5)
    # the authors' MNIST launcher: batch 128, sigma fixed at 1 for the continuous codes
    assert mnist.trainer.batch_size == 128 and mnist.q_head.fixed_std
    # D's inputs moved by up to 2 pixels (benchmarks/MNIST_SWEEP.md); shapes must not: x and y are factors
    assert mnist.augment.shift == 2 and load_recipe("infogan-shapes").augment.shift == 0
    assert str(load_recipe("infogan-svhn").codes) == "noise:124,cat:10x4,cont:4"
    assert str(load_recipe("infogan-celeba").codes) == "noise:128,cat:10x10"
    assert str(load_recipe("infogan-faces").codes) == "noise:128,cont:5"
    assert not load_recipe("dcgan-mnist").regularizer.enabled
    baseline, info = load_recipe("dcgan-mnist").to_dict(), load_recipe("infogan-mnist").to_dict()
    same = ("model", "codes", "data", "augment", "optim", "trainer")  # the baseline is infogan-mnist without Q
    assert {key: baseline[key] for key in same} == {key: info[key] for key in same}
    # every G update on fresh codes, 5,000 steps, Q's classes invariant to rotations of 25 degrees and zooms of 0.8-1.2 (issue 13)
    assert mnist.trainer.fresh_codes and mnist.trainer.max_steps == 5000
    assert (mnist.invariance.weight, mnist.invariance.degrees, mnist.invariance.zoom, mnist.invariance.shear) == (1.0, 25.0, 0.2, 0.0)


def test_defaults_and_overrides():
    recipe = parse_recipe(MINIMAL, "mini", "mini.toml", ["optim.g.lr=5e-4", "trainer.precision=bf16-mixed", 'data.name="mnist"',
                                                        "optim.d.betas=[0.0, 0.9]", "data.options.count=5"])
    assert recipe.optim.g.lr == 5e-4 and recipe.optim.d.lr == 2e-4
    assert recipe.trainer.precision == "bf16-mixed"  # not TOML: taken as a string
    assert recipe.trainer.compile_mode == "default"
    assert load_recipe("infogan-mnist", ["trainer.compile_mode=reduce-overhead"]).trainer.compile_mode == "reduce-overhead"
    assert recipe.data.name == "mnist" and recipe.optim.d.betas == [0.0, 0.9] and recipe.data.options == {"count": 5}
    assert recipe.trainer.batch_size == 64 and recipe.q_head.hidden == 128 and recipe.regularizer.lambda_cont == 0.1
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("a b") == "a b"


def test_codes_as_a_table():
    text = '[codes]\nnoise = 5\ncodes = [{kind = "cat", classes = 3}, {kind = "cont", name = "tilt"}]\n[model]\nname = "mnist"\n'
    assert str(parse_recipe(text, "t", "t.toml").codes) == "noise:5,cat:3,tilt=cont:1"


def test_to_toml_round_trips_awkward_values():
    awkward = 'quote " backslash \\ tab \t newline \n bell \x07 del \x7f é 😀'
    recipe = parse_recipe(MINIMAL, "mini", "mini.toml", ["data.options.count=5", "model.kwargs.width=3"])
    recipe.description = awkward
    recipe.data.options = {"text": awkward, "key with space": [1e-300, float("inf")]}
    text = recipe.to_toml()
    assert tomllib.loads(text)["description"] == awkward
    again = parse_recipe(text, "mini", "written.toml")
    assert again.to_dict() == recipe.to_dict() and again.model.kwargs == {"width": 3}


BAD = [
    ("[trainer\n", "recipe.toml: not valid TOML"),
    (MINIMAL + "[trainer]\nbach_size = 3\n", "unknown key trainer.bach_size: did you mean trainer.batch_size?"),
    (MINIMAL + "[trainr]\n", "unknown key trainr: did you mean trainer?"),
    (MINIMAL + "[trainer]\nbatch_size = \"64\"\n", "trainer.batch_size: expected an integer, got a string '64'"),
    (MINIMAL + "[trainer]\nbatch_size = true\n", "trainer.batch_size: expected an integer, got a boolean True"),
    (MINIMAL + "[trainer]\nbatch_size = 0\n", "trainer.batch_size: expected a number >= 1, got 0"),
    (MINIMAL + "[optim.g]\nlr = 0\n", "optim.g.lr: expected a number > 0.0, got 0.0"),
    (MINIMAL + "[optim.g]\nbetas = [0.5]\n", "optim.g.betas: expected an array of two numbers"),
    (MINIMAL + "[augment]\nshift = -1\n", "augment.shift: expected a number >= 0, got -1"),
    (MINIMAL + "[regularizer]\ncont_warmup = -5\n", "regularizer.cont_warmup: expected a number >= 0, got -5"),
    (MINIMAL + "[trainer]\nnoise_start = 0.0\n", "trainer.noise_start: expected a number > 0.0, got 0.0"),
    (MINIMAL + "[trainer]\nnoise_start = 1.5\n", "trainer.noise_start: expected a number from 0.0 to 1.0, got 1.5"),
    (MINIMAL + "[regularizer]\nenabled = 1\n", "regularizer.enabled: expected a boolean (true/false), got an integer 1"),
    ('codes = "noise:4"\ntrainer = 3\n[model]\nname = "mnist"\n', "trainer: expected a table, got an integer 3"),
    ('[model]\nname = "mnist"\n', "missing key codes"),
    ('codes = "noise:4"\n', "missing key model.name"),
    ('codes = "noise:x"\n[model]\nname = "mnist"\n', "codes: bad code spec part 'noise:x'"),
    ('codes = 5\n[model]\nname = "mnist"\n', "codes: expected a spec string"),
    ('codes = "noise:4"\n[model]\nname = "mnsit"\n', "model.name: unknown model 'mnsit': did you mean mnist?"),
    (MINIMAL + '[data]\nname = "shape"\n', "data.name: unknown data set 'shape': did you mean shapes?"),
    (MINIMAL + '[trainer]\ncompile_mode = "reduce_overhead"\n',
     "trainer.compile_mode: unknown torch.compile mode 'reduce_overhead': did you mean reduce-overhead?"),
    (MINIMAL + "[contrastive]\nweight = -1\n", "contrastive.weight: expected a number >= 0.0, got -1.0"),
    (MINIMAL + "[contrastive]\nwieght = 1\n", "unknown key contrastive.wieght: did you mean contrastive.weight?"),
    (MINIMAL + "[contrastive]\ngap_every = 0\n", "contrastive.gap_every: expected a number >= 1, got 0"),
    (MINIMAL + "[contrastive]\ngap_start = 2.5\n", "contrastive.gap_start: expected a number in [0, 2]"),
    (MINIMAL + "[contrastive]\nweight = 2.0\n", "contrastive.weight: the contrastive term needs at least two continuous codes"),
    ('codes = "noise:4,cont:2:normal"\n[model]\nname = "mnist"\n[contrastive]\nweight = 1\ngap_start = 0.5\n',
     "contrastive.gap_start: a gap needs uniform continuous codes"),
    ('codes = "noise:4,cont:2"\n[model]\nname = "mnist"\n[invariance]\nweight = 1.0\n',
     "invariance.weight: the invariance term needs a categorical code"),
    ('codes = "noise:4,cat:3"\n[model]\nname = "mnist"\n[regularizer]\nenabled = false\n[invariance]\nweight = 1\n',
     "invariance.weight: the invariance term trains Q's categorical heads: it needs regularizer.enabled = true"),
    (MINIMAL + "[invariance]\nzoom = 0.6\n", "invariance.zoom: expected a number from 0.0 to 0.5, got 0.6"),
    (MINIMAL + "[invariance]\ndegrees = -5\n", "invariance.degrees: expected a number >= 0.0, got -5.0"),
    (MINIMAL + "[invariance]\nshear = 75\n", "invariance.shear: expected a number from 0.0 to 60.0, got 75.0"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_recipes_name_the_file_and_key(text, message, tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_recipe(str(path))
    assert message in str(info.value) and str(path) in str(info.value)
    result = CliRunner().invoke(app, ["show", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and message in result.output and "Traceback" not in result.output


def test_bad_overrides_name_the_option():
    with pytest.raises(UserError, match=r"--set trainer\.batch_size=abc: trainer\.batch_size: expected an integer"):
        load_recipe("infogan-shapes", ["trainer.batch_size=abc"])
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        load_recipe("infogan-shapes", ["batch_size"])
    with pytest.raises(UserError, match=r"codes is not a table"):
        load_recipe("infogan-shapes", ["codes.noise.x=1"])


def test_unknown_recipe_and_missing_file():
    with pytest.raises(UserError, match="unknown recipe 'infogan-mnst': did you mean infogan-mnist"):
        load_recipe("infogan-mnst")
    with pytest.raises(UserError, match="no-such.toml: no such recipe file"):
        load_recipe("no-such.toml")


def test_cli_show_list_and_debug():
    runner = CliRunner()
    shown = runner.invoke(app, ["show", "infogan-mnist", "--set", "trainer.seed=7"])
    assert shown.exit_code == 0 and "seed = 7" in shown.output
    assert tomllib.loads(shown.output)["codes"] == "noise:62:uniform,cat:10,cont:2"
    listed = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    for name in (*SHIPPED, "mnist", "svhn", "shapes", "image-folder", "QHead"):
        assert name in listed.output
    assert "gan-infogan-plugin" in listed.output
    debug = runner.invoke(app, ["--debug", "show", "nope"])
    assert debug.exit_code != 0 and isinstance(debug.exception, UserError)
    help_text = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "gan-recipes run infogan-shapes" in help_text


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["codes", "description", "model", "data", "trainer", "optim", "q_head", "regularizer", "zzz"]),
        st.one_of(
            st.text(max_size=20),
            st.integers(-5, 5),
            st.booleans(),
            st.floats(allow_nan=False),
            st.dictionaries(st.sampled_from(["name", "batch_size", "lr", "g", "enabled", "noise", "x"]),
                            st.one_of(st.text(max_size=8), st.integers(-3, 3), st.booleans(), st.lists(st.integers(0, 2), max_size=3))),
        ),
    )
)
def test_random_tables_parse_or_raise_user_error(table):
    """Whatever the TOML holds, the loader returns a Recipe or raises the documented UserError."""
    try:
        recipe = parse_recipe(tomli_w.dumps(table), "random", "random.toml")
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(recipe, Recipe)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_random_text_parses_or_raises_user_error(text):
    try:
        parse_recipe(text, "random", "random.toml")
    except UserError:
        pass


def test_recipe_files_are_in_the_package_folder():
    import gan_infogan_plugin.recipe_files as folder

    assert Path(folder.__file__).parent.name in ("recipes", "recipe_files")
