"""InfoGAN-CR's term in the training step (contrastive_term.ContrastiveTerm): H trained in D's update,
restarted at its start step, its term reaching G; checkpointed and resumed exactly through the CLI."""

from __future__ import annotations

import csv

import safetensors.torch
import torch
from conftest import run_shapes
from lightning_fabric import Fabric
from test_step import fabric, tiny_gan  # noqa: F401 (fabric: the module-scoped fixture)
from torch import nn

from gan_infogan_plugin import LatentCodeSpec
from gan_infogan_plugin.contrastive import ContrastiveRegularizer, ContrastiveSchedule
from gan_infogan_plugin.contrastive_term import ContrastiveTerm
from gan_infogan_plugin.step import GAN, Batch, train_step

SPEC = LatentCodeSpec.parse("noise:2,cont:3")  # input_dim 5, as test_step's tiny G takes


def batch(step: int) -> Batch:
    rng = torch.Generator().manual_seed(step)
    return Batch(step, torch.rand(6, 1, 2, 2, generator=rng) * 2 - 1, SPEC.sample(6, generator=rng))


def term(fabric: Fabric, gan: GAN, init_seed: int, weight: float = 1.0, start: int = 2) -> ContrastiveTerm:
    """A term whose H is a linear layer on the pair's 8 pixels, initialised from ``init_seed``."""
    torch.manual_seed(init_seed)
    cr = ContrastiveRegularizer(SPEC, 1, 2, network=lambda channels, k: nn.Sequential(nn.Flatten(), nn.Linear(4 * channels, k)))
    regularizer = ContrastiveTerm(cr, ContrastiveSchedule(weight, start), lr=0.05, seed=7)
    regularizer.setup(fabric, gan)
    return regularizer


def h_weights(regularizer: ContrastiveTerm) -> list[torch.Tensor]:
    return [p.detach().clone() for p in regularizer.cr.parameters()]


def test_h_waits_for_its_start_then_restarts_and_trains(fabric):
    runs = []
    for init_seed in (1, 2):  # two H that start from different weights
        gan = tiny_gan(fabric)
        regularizer = term(fabric, gan, init_seed)
        initial = h_weights(regularizer)
        for step in (0, 1):
            result = train_step(fabric, gan, batch(step), [regularizer])
            assert result.g_terms == []  # not active before step 2
        assert all(torch.equal(a, b) for a, b in zip(initial, h_weights(regularizer)))
        result = train_step(fabric, gan, batch(2), [regularizer])
        assert set(result.stats()) == {"loss/d", "loss/g", "cr/loss", "cr/acc"}
        assert not all(torch.equal(a, b) for a, b in zip(initial, h_weights(regularizer)))
        assert len(regularizer.adam.state) == 2  # one optimizer step since the restart
        runs.append(h_weights(regularizer))
    # restarted at step 2 from the run's seed: the initial weights no longer matter
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_the_term_is_weight_times_cross_entropy_and_reaches_g(fabric):
    weights = {}
    for weight in (0.5, 2.0):
        gan = tiny_gan(fabric)
        result = train_step(fabric, gan, batch(0), [term(fabric, gan, 1, weight, start=0)])
        (g_term,) = result.g_terms
        assert torch.allclose(g_term.loss, weight * g_term.stats["cr/loss"])
        assert torch.allclose(result.total_g, result.loss_g + g_term.loss.detach())
        weights[weight] = [p.detach().clone() for p in gan.generator.parameters()]
    plain = tiny_gan(fabric)
    train_step(fabric, plain, batch(0))
    for pulled in weights.values():
        assert not all(torch.equal(a, b) for a, b in zip(pulled, plain.generator.parameters()))


def rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


CR = ["contrastive.weight=2.0", "contrastive.start=1", "trainer.log_every=1", "trainer.sample_every=0",
      "trainer.checkpoint_every=2"]


def test_a_cr_run_is_checkpointed_and_resumed_exactly(tmp_path):
    torch.set_num_threads(1)
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert run_shapes(full, 4, *CR).exit_code == 0
    logged = rows(full)
    assert logged[0]["cr/loss"] == "" and all(float(row["cr/loss"]) > 0 for row in logged[1:])  # on from step 1
    assert run_shapes(resumed, 2, *CR).exit_code == 0
    result = run_shapes(resumed, 4, *CR, flags=("--resume",))
    assert result.exit_code == 0, result.output
    a = safetensors.torch.load_file(str(full / "generator.safetensors"))
    b = safetensors.torch.load_file(str(resumed / "generator.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    state_a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["regularizers"]["contrastive"]
    state_b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["regularizers"]["contrastive"]
    assert state_a["network"].keys() == state_b["network"].keys()
    assert all(torch.equal(state_a["network"][k], state_b["network"][k]) for k in state_a["network"])
    moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in state_a["optimizer"]["state"].values()]
    again = [(s["exp_avg"], s["exp_avg_sq"]) for s in state_b["optimizer"]["state"].values()]
    assert moments and all(torch.equal(x, y) for pair in zip(moments, again) for x, y in zip(*pair))
    assert [row["cr/loss"] for row in rows(resumed)] == [row["cr/loss"] for row in logged]


def test_a_run_from_before_the_contrastive_table_resumes_as_cr_off(tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "old"
    assert run_shapes(run, 2, "trainer.sample_every=0").exit_code == 0
    recipe = run / "recipe.toml"
    kept, skipping = [], False
    for line in recipe.read_text().splitlines():  # the recipe.toml as runs wrote it before [contrastive] existed
        skipping = line.strip() == "[contrastive]" if line.startswith("[") else skipping
        kept.append("" if skipping else line)
    recipe.write_text("\n".join(kept) + "\n")
    assert "contrastive" not in recipe.read_text()
    turned_on = run_shapes(run, 3, "trainer.sample_every=0", "contrastive.weight=1", "contrastive.start=2", flags=("--resume",))
    assert turned_on.exit_code == 2 and "other settings (contrastive.start, contrastive.weight)" in turned_on.output
    resumed = run_shapes(run, 3, "trainer.sample_every=0", flags=("--resume",))
    assert resumed.exit_code == 0, resumed.output


def test_a_cr_run_is_the_plain_run_until_its_start_step(tmp_path):
    """Before contrastive.start the term draws nothing and trains nothing: G, D and Q are bit for bit the plain
    run's (benchmarks/dsprites_seeds.py starts the CR arm from the plain run's checkpoint at that step)."""
    torch.set_num_threads(1)
    plain, cr = tmp_path / "plain", tmp_path / "cr"
    assert run_shapes(plain, 2, "trainer.sample_every=0").exit_code == 0
    assert run_shapes(cr, 2, "trainer.sample_every=0", "contrastive.weight=2.0", "contrastive.start=2").exit_code == 0
    a, b = (torch.load(run / "checkpoints" / "last.ckpt", weights_only=True) for run in (plain, cr))
    for name in ("generator", "discriminator"):
        assert a[name].keys() == b[name].keys() and all(torch.equal(a[name][k], b[name][k]) for k in a[name])


def test_the_recipes_contrastive_table_sets_the_shared_categorical_codes():
    """[contrastive] share_categorical reaches the regularizer the runner builds; off unless set."""
    from gan_infogan_plugin.networks import build_networks, build_regularizers
    from gan_infogan_plugin.recipes import load_recipe

    def built(overrides: list[str]) -> ContrastiveTerm:
        recipe = load_recipe("infogan-mnist", ["contrastive.weight=1", *overrides])
        (found,) = [r for r in build_regularizers(recipe, build_networks(recipe)) if isinstance(r, ContrastiveTerm)]
        return found

    assert not built([]).cr.share_categorical
    shared = built(["contrastive.share_categorical=true"]).cr
    a, b, _ = shared.pair_codes(32, generator=torch.Generator().manual_seed(0))
    assert shared.share_categorical and all(map(torch.equal, a.cat, b.cat)) and not torch.equal(a.cont, b.cont)
