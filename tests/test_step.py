"""step.train_step and the Regularizer interface: the terms a list of regularizers adds and where, the
hooks' order, a late start, and a regularizer with its own network and optimizer, trained, checkpointed
and resumed exactly by `train`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from conftest import HostReads, TINY
from lightning_fabric import Fabric
from torch import nn

from gan_infogan_plugin import LatentCodeSpec, networks
from gan_infogan_plugin import train as train_module
from gan_infogan_plugin.recipes import TrainerConfig, load_recipe
from gan_infogan_plugin.step import GAN, Batch, Fakes, MITerm, Regularizer, linear_ramp, train_step

SPEC = LatentCodeSpec.parse("noise:3,cat:2")  # input_dim 5


@pytest.fixture(scope="module")
def fabric() -> Fabric:
    return Fabric(accelerator="cpu", devices=1)


def tiny_gan(fabric: Fabric, discriminator_with_q: Callable[[], nn.Module] | None = None) -> GAN:
    """G: 5 inputs -> (N, 1, 2, 2) images; D: images -> (N,) logits, or the module
    ``discriminator_with_q()`` makes (D and Q, ``has_q``); plain Adam for each."""
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(SPEC.input_dim, 4), nn.Tanh(), nn.Unflatten(1, (1, 2, 2)))
    if discriminator_with_q is None:
        discriminator = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0))
    else:
        discriminator = discriminator_with_q()
    g, opt_g = fabric.setup(generator, torch.optim.Adam(generator.parameters(), lr=0.1))
    d, opt_d = fabric.setup(discriminator, torch.optim.Adam(discriminator.parameters(), lr=0.1))
    return GAN(g, d, opt_g, opt_d, has_q=discriminator_with_q is not None)


def batch(step: int) -> Batch:
    rng = torch.Generator().manual_seed(step)
    return Batch(step, torch.rand(6, 1, 2, 2, generator=rng) * 2 - 1, SPEC.sample(6, generator=rng))


@dataclass
class Constant:
    """A Term: a fixed loss and one statistic."""

    loss: torch.Tensor
    stats: dict = field(default_factory=dict)


class Recorder(Regularizer):
    """Adds 2 to D's loss and ``g_weight`` * mean(G's images) to G's; notes each hook it sees."""

    name = "recorder"

    def __init__(self, start: int = 0, g_weight: float = 0.0) -> None:
        self.start, self.g_weight, self.calls = start, g_weight, []

    def discriminator_term(self, fakes: Fakes) -> Constant:
        self.calls.append(("d", fakes.step, fakes.images.requires_grad))
        return Constant(torch.tensor(2.0))

    def update(self, fabric: Fabric, fakes: Fakes) -> None:
        self.calls.append(("update", fakes.step, fakes.images.requires_grad))

    def generator_term(self, fakes: Fakes) -> Constant:
        self.calls.append(("g", fakes.step, fakes.images.requires_grad))
        return Constant(3.0 + self.g_weight * fakes.images.mean(), {"recorder/seen": torch.tensor(float(len(fakes.images)))})


def test_the_plain_gan_is_the_step_with_no_regularizers(fabric):
    result = train_step(fabric, tiny_gan(fabric), batch(0))
    assert torch.equal(result.total_d, result.loss_d) and torch.equal(result.total_g, result.loss_g)
    assert set(result.stats()) == {"loss/d", "loss/g"} and result.skipped == 0
    # loss/d is real + fake: each at least 0, and ln 2 each for a D that cannot tell (logits near 0)
    assert 0 < result.loss_d.item() < 5


def test_regularizers_add_their_terms_to_each_update_in_order(fabric):
    recorder = Recorder()
    result = train_step(fabric, tiny_gan(fabric), batch(0), [recorder])
    assert recorder.calls == [("d", 0, False), ("update", 0, False), ("g", 0, True)]  # detached fakes in D's update only
    assert result.total_d.item() == pytest.approx(result.loss_d.item() + 2.0)
    assert result.total_g.item() == pytest.approx(result.loss_g.item() + 3.0)
    assert result.stats()["recorder/seen"].item() == 6.0


def test_a_generator_term_reaches_g_and_a_late_regularizer_waits(fabric):
    plain, pulled = tiny_gan(fabric), tiny_gan(fabric)
    late = Recorder(start=1, g_weight=1000.0)
    first = train_step(fabric, pulled, batch(0), [late])
    train_step(fabric, plain, batch(0))
    assert late.calls == [] and torch.equal(first.total_g, first.loss_g)  # not active at step 0
    assert all(torch.equal(a, b) for a, b in zip(plain.generator.parameters(), pulled.generator.parameters()))
    train_step(fabric, pulled, batch(1), [late])
    train_step(fabric, plain, batch(1))
    assert [c[0] for c in late.calls] == ["d", "update", "g"]
    assert not all(torch.equal(a, b) for a, b in zip(plain.generator.parameters(), pulled.generator.parameters()))


def test_g_update_leaves_d_weights_without_gradient(fabric):
    """After a step, D's gradients are those of D's own update: G's update computes none for D's weights
    (and gives every weight its requires_grad back)."""
    gan, by_hand = tiny_gan(fabric), tiny_gan(fabric)
    b = batch(0)
    train_step(fabric, gan, b)
    d = by_hand.discriminator
    fake = by_hand.generator(b.codes.flat).detach()
    loss = F.binary_cross_entropy_with_logits(d(b.real), torch.ones(6)) + F.binary_cross_entropy_with_logits(d(fake), torch.zeros(6))
    expected = torch.autograd.grad(loss, list(d.parameters()))
    assert all(p.requires_grad for p in gan.discriminator.parameters())
    assert all(torch.allclose(p.grad, g) for p, g in zip(gan.discriminator.parameters(), expected))
    assert all(p.grad is not None for p in gan.generator.parameters())


def test_more_codes_give_g_further_updates_on_fresh_fakes(fabric):
    """trainer.g_steps: the first G update trains on the fakes D scored, each further one on G(more codes);
    with Adam, two G updates move G as two one-update steps with the same images would."""
    once, twice = tiny_gan(fabric), tiny_gan(fabric)
    extra = SPEC.sample(6, generator=torch.Generator().manual_seed(99))
    recorder = Recorder()
    first = batch(0)
    result = train_step(fabric, twice, Batch(0, first.real, first.codes, g_codes=(extra,)), [recorder])
    assert recorder.calls == [("d", 0, False), ("update", 0, False), ("g", 0, True), ("g", 0, True)]
    train_step(fabric, once, first)
    assert twice.optimizer_g.state[next(iter(twice.generator.parameters()))]["step"].item() == 2
    assert once.optimizer_d.state_dict()["state"][0]["step"].item() == 1 == twice.optimizer_d.state_dict()["state"][0]["step"].item()
    # the second update, by hand: G's loss on G(extra) with D as it is after its update
    gan = once
    gan.optimizer_g.zero_grad(set_to_none=True)
    images = gan.generator(extra.flat)
    loss = F.binary_cross_entropy_with_logits(gan.discriminator(images), torch.ones(6))
    fabric.backward(loss + 3.0)
    gan.optimizer_g.step()
    assert result.loss_g.item() == pytest.approx(loss.item(), rel=1e-6)  # the stats are the last update's
    assert all(torch.allclose(a, b) for a, b in zip(once.generator.parameters(), twice.generator.parameters()))


def test_without_reuse_every_g_update_draws_its_own_fakes(fabric):
    """trainer.fresh_codes: D's update is the same as with reuse (its fakes made without G's graph), and
    G's one update trains on G(g_codes[0]), not on the fakes D scored; the same step, by hand."""
    fresh, reused = tiny_gan(fabric), tiny_gan(fabric)
    extra = SPEC.sample(6, generator=torch.Generator().manual_seed(99))
    recorder = Recorder()
    first = batch(0)
    result = train_step(fabric, fresh, Batch(0, first.real, first.codes, g_codes=(extra,), reuse_fakes=False), [recorder])
    assert recorder.calls == [("d", 0, False), ("update", 0, False), ("g", 0, True)]
    assert fresh.optimizer_g.state[next(iter(fresh.generator.parameters()))]["step"].item() == 1
    train_step(fabric, reused, first)
    assert all(torch.equal(a, b) for a, b in zip(fresh.discriminator.parameters(), reused.discriminator.parameters()))
    # G's update by hand, from G as it was, against D after its update
    by_hand = tiny_gan(fabric)
    for p, q in zip(by_hand.discriminator.parameters(), fresh.discriminator.parameters()):
        p.data.copy_(q)
    loss = F.binary_cross_entropy_with_logits(by_hand.discriminator(by_hand.generator(extra.flat)), torch.ones(6))
    fabric.backward(loss + 3.0)
    by_hand.optimizer_g.step()
    assert result.loss_g.item() == pytest.approx(loss.item(), rel=1e-6)
    assert all(torch.allclose(a, b) for a, b in zip(by_hand.generator.parameters(), fresh.generator.parameters()))
    assert not all(torch.allclose(a, b) for a, b in zip(reused.generator.parameters(), fresh.generator.parameters()))
    with pytest.raises(ValueError, match="g_codes"):
        Batch(0, first.real, first.codes, reuse_fakes=False)


class CodeReader(Regularizer):
    """A term with a network and optimizer of its own (as InfoGAN-CR's contrastive discriminator): it
    learns to read the first code from the detached fakes in D's update, and G is pulled to make the
    code readable to it. Active from step 1 (the second step)."""

    name = "reader"
    start = 1

    def __init__(self, pixels: int, classes: int) -> None:
        self.net = nn.Linear(pixels, classes)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=0.01)

    def setup(self, fabric: Fabric, gan: GAN) -> None:
        self.net, self.optimizer = fabric.setup(self.net, self.optimizer)

    def _loss(self, fakes: Fakes) -> torch.Tensor:
        return F.cross_entropy(self.net(fakes.images.flatten(1)), fakes.codes.cat[0])

    def update(self, fabric: Fabric, fakes: Fakes) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        fabric.backward(self._loss(fakes))
        self.optimizer.step()

    def generator_term(self, fakes: Fakes) -> Constant:
        loss = 0.5 * self._loss(fakes)
        return Constant(loss, {"reader/loss": loss.detach()})

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


def test_a_regularizer_with_its_own_network_is_trained_checkpointed_and_resumed_exactly(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    readers: list[CodeReader] = []

    def with_reader(recipe, nets):
        readers.append(CodeReader(nets.size * nets.size * nets.channels, recipe.codes.categorical[0].num_classes))
        return [*networks.build_regularizers(recipe, nets), readers[-1]]

    monkeypatch.setattr(train_module, "build_regularizers", with_reader)
    sets = [*TINY, "trainer.log_every=1", "trainer.sample_every=0", "trainer.checkpoint_every=2"]

    def run(out, steps, resume=False):
        recipe = load_recipe("infogan-shapes", [*sets, f"trainer.max_steps={steps}"])
        return train_module.train(recipe, out=out, resume=resume, progress=False)

    run(tmp_path / "full", 4)
    state = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    assert set(state["regularizers"]) == {"mi", "reader"}
    saved = state["regularizers"]["reader"]["net"]
    assert all(torch.equal(saved[k], v) for k, v in readers[-1].net.state_dict().items())
    header = (tmp_path / "full" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "reader/loss" in header and "mi" in header

    run(tmp_path / "resumed", 2)
    before = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["regularizers"]["reader"]["net"]
    run(tmp_path / "resumed", 4, resume=True)
    again = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.equal(again["regularizers"]["reader"]["net"][k], saved[k]) for k in saved)
    assert not torch.equal(before["weight"], saved["weight"])  # trained once before the checkpoint at step 2, twice after it
    a = safetensors.torch.load_file(str(tmp_path / "full" / "generator.safetensors"))
    b = safetensors.torch.load_file(str(tmp_path / "resumed" / "generator.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_training_step_reads_nothing_back_from_the_device(fabric):
    """The runner's step on infogan-mnist's networks (fused Adam, the shift, fresh codes, the MI term, the
    invariance term) makes no host read of a tensor (``.item()``, ``bool()``): on a GPU each would stall
    the host until the device has caught up. Counted at the dispatcher, on the CPU."""
    recipe = load_recipe("infogan-mnist", ["trainer.batch_size=4"])
    nets = networks.build_networks(recipe)
    gan, regularizers = train_module.set_up_training(fabric, recipe, nets)
    rng = torch.Generator().manual_seed(0)
    spec = recipe.codes
    step = Batch(0, torch.rand(4, 1, 28, 28, generator=rng) * 2 - 1, spec.sample(4, generator=rng), shift=2,
                 moves=torch.Generator().manual_seed(1), g_codes=(spec.sample(4, generator=rng),), reuse_fakes=False)
    with HostReads() as reads:
        result = train_step(fabric, gan, step, regularizers)
    assert reads.count == 0
    assert torch.isfinite(result.total_g) and gan.optimizer_g.state  # the step ran and updated G


def test_the_recipes_warmup_reaches_the_mi_term():
    recipe = load_recipe("infogan-mnist", ["regularizer.cont_warmup=300"])
    term = networks.build_regularizers(recipe, networks.build_networks(recipe))[0]
    assert isinstance(term, MITerm) and term.cont_warmup == 300 and term.cont_scale(150) == 0.5


def test_linear_ramp_by_hand():
    assert [linear_ramp(step, 2000) for step in (0, 500, 2000, 9000)] == [0.0, 0.25, 1.0, 1.0]
    assert [linear_ramp(step, 100, start=0.2) for step in (0, 25, 50, 100)] == pytest.approx([0.2, 0.4, 0.6, 1.0])
    assert linear_ramp(0, 0) == 1.0 and linear_ramp(0, 0, start=0.2) == 1.0  # no ramp: 1 from the start


def test_the_noise_warmup_scales_the_noise_of_every_training_draw_and_nothing_else():
    """trainer.noise_warmup: the noise of D's codes and of G's own codes is the unscaled draw times
    noise_start + (1 - noise_start) * step / noise_warmup; the codes themselves are the same draws."""
    spec = LatentCodeSpec.parse("noise:6:uniform,cat:4,cont:2")
    plain = TrainerConfig(batch_size=8, seed=3, g_steps=2, fresh_codes=True)
    warm = TrainerConfig(batch_size=8, seed=3, g_steps=2, fresh_codes=True, noise_warmup=100, noise_start=0.2)
    for step, factor in ((0, 0.2), (50, 0.6), (99, 0.992), (100, 1.0), (400, 1.0)):
        base, base_g = train_module.training_codes(spec, plain, 0, step, "cpu")
        codes, g_codes = train_module.training_codes(spec, warm, 0, step, "cpu")
        assert len(g_codes) == len(base_g) == 2
        for a, b in zip((codes, *g_codes), (base, *base_g)):
            assert torch.allclose(a.noise, b.noise * factor, rtol=0, atol=1e-7), step
            assert torch.equal(a.cat[0], b.cat[0]) and torch.equal(a.cont, b.cont)
