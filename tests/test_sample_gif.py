"""`gan-recipes sample --traverse CODE --gif`: the traversal as a looping animation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageSequence
from conftest import assert_user_error, gan_recipes, saved_generator

from gan_infogan_plugin import LatentCodeSpec
from gan_infogan_plugin.export import load_generator
from gan_infogan_plugin.images import GIF_STEPS, grid_image, traversal_grid

SPEC = LatentCodeSpec.parse("noise:4,cat:3,cont:1")  # c1: 3 classes, c2 continuous


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return saved_generator(tmp_path_factory.mktemp("gif") / "generator.safetensors", str(SPEC))


def invoke(*args):
    return gan_recipes("sample", *args)


def frames(path) -> list[Image.Image]:
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.info["loop"] == 0  # loops for ever
        return [frame.convert("L") for frame in ImageSequence.Iterator(gif)]


def test_continuous_code_sweeps_there_and_back(weights, tmp_path):
    out = tmp_path / "c2.gif"
    result = invoke(weights, "--traverse", "c2", "--gif", out, "--n", 3, "--seed", 4)
    assert result.exit_code == 0, result.output
    shown = frames(out)
    assert len(shown) == 2 * GIF_STEPS - 2 == 32  # -2 .. 2 in 17 values, then back without repeating the ends
    assert all(frame.size == (3 * 30 + 2, 30 + 2) for frame in shown)  # one row of 3 images, 2 pixels padding
    values = torch.linspace(-2, 2, GIF_STEPS).tolist()
    grid = traversal_grid(load_generator(weights).generator, SPEC, "c2", 3, 4, values=values)
    first, last = grid_image(grid[:3], nrow=3), grid_image(grid[-3:], nrow=3)
    assert shown[0].tobytes() == first.tobytes()  # frame 0: c2 = -2
    assert shown[GIF_STEPS - 1].tobytes() == last.tobytes()  # frame 16: c2 = 2
    assert shown[GIF_STEPS].tobytes() != last.tobytes()  # then on the way back


def test_categorical_code_shows_each_class(weights, tmp_path):
    out = tmp_path / "c1.gif"
    assert invoke(weights, "--traverse", "c1", "--gif", out).exit_code == 0
    shown = frames(out)
    assert len(shown) == 3 and shown[0].size == (8 * 30 + 2, 32)  # 8 columns by default


@pytest.mark.parametrize("args, fragment", [
    (["--traverse", "all", "--gif", "x.gif"], "--gif takes --traverse CODE"),
    (["--gif", "x.gif"], "--gif takes --traverse CODE"),
    (["--traverse", "c2", "--gif", "x.png"], "expected a .gif file name"),
    (["--traverse", "c9", "--gif", "x.gif"], "--traverse c9: "),
    (["--traverse", "c2"], "give --out FILE.png"),
])
def test_gif_mistakes_are_one_line_errors(weights, tmp_path, args, fragment):
    assert_user_error(invoke(weights, *[tmp_path / a if a.endswith((".gif", ".png")) else a for a in args]), fragment)
    assert not list(tmp_path.iterdir())


def test_gif_is_not_overwritten_without_force(weights, tmp_path):
    out = tmp_path / "c2.gif"
    out.write_bytes(b"keep")
    assert_user_error(invoke(weights, "--traverse", "c2", "--gif", out, "--n", 2), "already exists")
    assert out.read_bytes() == b"keep"
    assert invoke(weights, "--traverse", "c2", "--gif", out, "--n", 2, "--force").exit_code == 0
    assert len(frames(out)) == 32
