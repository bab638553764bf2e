"""The dsprites data set: the factor grid, the binary sprites, the cache on disk, the declared factors."""


import pytest
import torch

from gan_infogan_plugin import registry
from gan_infogan_plugin.data import dsprites, shapes
from gan_infogan_plugin.data.base import to_unit_range
from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.recipes import DataConfig


def config(root, **options) -> DataConfig:
    return DataConfig(name="dsprites", root=str(root), options=options)


def test_grid_is_every_combination_once_in_dsprites_order():
    full = dsprites.Grid.strided(1)
    assert len(full) == 3 * 6 * 40 * 32 * 32 == 737_280
    assert len(dsprites.Grid.strided(2)) == 3 * 6 * 20 * 16 * 16 == 92_160
    grid = dsprites.Grid.strided(8)
    assert grid.shape == (3, 6, 5, 4, 4) and grid.kept[3] == (0, 8, 16, 24)
    factors = grid.factors()
    assert factors.shape == (1440, 5) and len({tuple(row) for row in factors.tolist()}) == 1440
    assert factors[0].tolist() == [0, 0, 0, 0, 0] and factors[1].tolist() == [0, 0, 0, 0, 8]  # y fastest
    assert factors[4].tolist() == [0, 0, 0, 8, 0] and factors[-1].tolist() == [2, 5, 32, 24, 24]
    assert torch.equal(grid.index(factors), torch.arange(1440))
    with pytest.raises(ValueError, match="outside the grid"):
        grid.index(torch.tensor([[0, 0, 0, 1, 0]]))
    with pytest.raises(ValueError, match="out of range"):
        grid.index(torch.tensor([[3, 0, 0, 0, 0]]))


def test_sprites_are_binary_and_a_square_has_its_hand_counted_pixels(tmp_path):
    data = registry.load("datasets", "dsprites")(config(tmp_path, stride=8), 64, 1)
    assert data.images.shape == (1440, 1, 64, 64) and data.images.dtype == torch.uint8
    assert set(data.images.unique().tolist()) == {0, 255}
    grid = dsprites.Grid.strided(8).factors()
    assert data.factors.names == ("shape", "scale", "rotation", "x", "y")
    assert torch.equal(data.labels, grid[:, 0])
    # The largest square (radius 0.4, half-side 0.32 of the half-width) upright, centred at x = y =
    # -0.5 + 16/31 = 0.0161: pixel centres -0.984375 + 0.03125 i lie within 0.32 of it for i = 22..42,
    # 21 pixels a side.
    square = data.factors.images(torch.tensor([[0, 5, 0, 16, 16]]))
    assert (square > 0).sum().item() == 21 * 21
    rows = (square[0, 0] > 0).any(1).nonzero().view(-1)
    assert rows.min().item() == 22 and rows.max().item() == 42
    # Every sprite is the binary version of the shapes renderer's.
    some = grid[::97]
    assert torch.allclose(data.factors.images(some), shapes.render(some, 64, binary=True))


def test_render_looks_up_the_grid_and_limit_keeps_a_fixed_random_subset(tmp_path):
    build = registry.load("datasets", "dsprites")
    data = build(config(tmp_path, stride=8), 16, 1)
    grid = dsprites.Grid.strided(8).factors()
    assert torch.allclose(data.factors.images(grid[:50]), to_unit_range(data.images[:50]))
    cfg = config(tmp_path, stride=8)
    cfg.limit = 100
    small, again = build(cfg, 16, 1), build(cfg, 16, 1)
    assert len(small) == 100 and torch.equal(small.images, again.images) and torch.equal(small.labels, again.labels)
    assert not torch.equal(small.images, data.images[:100])  # drawn from the whole grid, not its start
    held = small.factors.sample(64, torch.Generator().manual_seed(0))
    held[:, 2] = held[0, 2]  # a FactorVAE group: one factor held, the others drawn
    assert small.factors.images(held).shape == (64, 1, 16, 16)
    colour = build(config(tmp_path, stride=8), 16, 3)
    assert colour.images.shape == (1440, 3, 16, 16) and torch.equal(colour.images[:, 1], data.images[:, 0])


def test_a_second_build_reads_the_cache(tmp_path, monkeypatch):
    first = dsprites.build(config(tmp_path, stride=8), 16, 1)
    path = dsprites.cache_path(tmp_path, 16, 8)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    assert path.stat().st_size < 1440 * 32 + 1000  # bit-packed: 16 * 16 / 8 = 32 bytes a sprite

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(dsprites, "render_grid", no_render)
    assert torch.equal(dsprites.build(config(tmp_path, stride=8), 16, 1).images, first.images)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[:-7], "bytes of pixels"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "digest"),
        (lambda b: b"junk" + b, "not a dsprites cache"),
        (lambda b: b.replace(b'"stride": 8', b'"stride": 9'), "other settings"),
    ],
)
def test_a_damaged_cache_is_rendered_again_and_replaced(tmp_path, damage, reason):
    first = dsprites.build(config(tmp_path, stride=8), 16, 1)
    path = dsprites.cache_path(tmp_path, 16, 8)
    good = path.read_bytes()
    path.write_bytes(damage(good))
    with pytest.warns(RuntimeWarning, match=f"not a valid cache.*{reason}"):
        again = dsprites.build(config(tmp_path, stride=8), 16, 1)
    assert torch.equal(again.images, first.images)
    assert path.read_bytes() == good


def test_cache_false_writes_nothing_and_bad_options_are_one_line_errors(tmp_path):
    data = dsprites.build(config(tmp_path, stride=8, cache=False), 8, 1)
    assert len(data) == 1440 and not (tmp_path / "dsprites").exists()
    with pytest.raises(UserError, match=r"data.options.stride: expected an integer >= 1, got 0"):
        dsprites.build(config(tmp_path, stride=0), 8, 1)
    with pytest.raises(UserError, match=r"data.options.count: data set 'dsprites' takes no option"):
        dsprites.build(config(tmp_path, count=10), 8, 1)
    with pytest.raises(UserError, match=r"data.options.stride: expected int"):
        dsprites.build(config(tmp_path, stride="2"), 8, 1)


def test_shapes_declares_its_factors_too():
    data = registry.load("datasets", "shapes")(DataConfig(name="shapes", options={"count": 30}), 16, 1)
    assert data.factors.names == shapes.FACTORS
    drawn = data.factors.sample(7, torch.Generator().manual_seed(0))
    assert drawn.shape == (7, 5)
    assert torch.allclose(data.factors.images(drawn), shapes.render(drawn, 16))


def test_infogan_dsprites_recipe_runs_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from gan_infogan_plugin.cli import app
    from gan_infogan_plugin.export import load_generator
    from gan_infogan_plugin.recipes import load_recipe

    recipe = load_recipe("infogan-dsprites")
    assert (recipe.data.name, recipe.model.name, str(recipe.codes)) == ("dsprites", "dsprites64", "noise:5:uniform,cont:5")
    assert (recipe.optim.g.lr, recipe.optim.d.lr, recipe.regularizer.lambda_cont, recipe.q_head.fixed_std) == (1e-3, 2e-3, 0.05, True)
    options = ["data.options.stride=8", f"data.root={tmp_path}", "trainer.batch_size=4", "trainer.sample_noise=2"]
    args = ["run", "infogan-dsprites", "--max-steps", "2", "--out", str(tmp_path / "run"), "--no-progress"]
    result = CliRunner().invoke(app, args + [a for o in options for a in ("--set", o)])
    assert result.exit_code == 0, result.output
    assert dsprites.cache_path(tmp_path, 64, 8).is_file()
    assert load_generator(tmp_path / "run" / "generator.safetensors").generate(2, seed=0).shape == (2, 1, 64, 64)
