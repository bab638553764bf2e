"""ContrastiveRegularizer (InfoGAN-CR): the pairs, the loss by hand, the gradients, a CR network that learns."""

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from gan_infogan_plugin import LatentCodeSpec, registry
from gan_infogan_plugin.contrastive import ContrastiveRegularizer, ContrastiveSchedule, cr_network, pair_codes

SPEC = LatentCodeSpec.parse("noise:5:uniform,cat:3,cont:4")


def test_pairs_share_the_noise_and_exactly_code_k():
    a, b, k = pair_codes(SPEC, 4000, generator=torch.Generator().manual_seed(0))
    assert a.cont.shape == b.cont.shape == (4000, 4) and k.shape == (4000,) and k.dtype == torch.long
    assert torch.equal(a.noise, b.noise)
    shared = a.cont == b.cont
    assert torch.equal(shared, nn.functional.one_hot(k, 4).bool())  # code k equal, every other code differs
    assert torch.bincount(k, minlength=4).min() > 900  # k uniform over the four codes
    assert (a.cat[0] != b.cat[0]).float().mean().item() == pytest.approx(2 / 3, abs=0.03)  # drawn apart
    assert a.cont.abs().max() <= 1 and b.cont.abs().max() <= 1
    again = pair_codes(SPEC, 4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0].flat, a.flat) and torch.equal(again[1].flat, b.flat) and torch.equal(again[2], k)


def test_pairs_may_share_their_categorical_codes_with_the_same_draws():
    a, b, k = pair_codes(SPEC, 4000, generator=torch.Generator().manual_seed(0), share_categorical=True)
    assert all(map(torch.equal, a.cat, b.cat)) and torch.equal(a.noise, b.noise)  # one class and one noise per pair
    assert torch.equal(a.cont == b.cont, nn.functional.one_hot(k, 4).bool())  # still only code k shared
    apart = pair_codes(SPEC, 4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(apart[0].flat, a.flat) and torch.equal(apart[1].cont, b.cont) and torch.equal(apart[2], k)
    assert not all(map(torch.equal, apart[1].cat, b.cat))
    cr = ContrastiveRegularizer(SPEC, 1, 8, network=lambda c, n: nn.Linear(1, n), share_categorical=True)
    a, b, _ = cr.pair_codes(64, generator=torch.Generator().manual_seed(3))
    assert all(map(torch.equal, a.cat, b.cat))


def test_a_gap_keeps_the_unshared_codes_apart():
    a, b, k = pair_codes(SPEC, 4000, gap=0.5, generator=torch.Generator().manual_seed(1))
    difference = (a.cont - b.cont).abs()
    others = ~nn.functional.one_hot(k, 4).bool()
    assert difference[others].min() >= 0.5 - 1e-6 and (difference[~others] == 0).all()
    assert a.cont.abs().max() <= 1 and b.cont.abs().max() <= 1
    # the shared code keeps its U(-1, 1) prior: mean of |c| is 1/2
    assert a.cont[~others].abs().mean().item() == pytest.approx(0.5, abs=0.03)


def test_bad_specs_and_gaps_are_refused():
    with pytest.raises(ValueError, match="at least two continuous codes"):
        pair_codes(LatentCodeSpec.parse("noise:4,cat:10,cont:1"), 8)
    with pytest.raises(ValueError, match="at least two continuous codes"):
        ContrastiveRegularizer(LatentCodeSpec.parse("noise:4,cat:10"))
    with pytest.raises(ValueError, match=r"gap must be in \[0, 2\]"):
        pair_codes(SPEC, 8, gap=2.5)
    with pytest.raises(ValueError, match="uniform continuous codes"):
        pair_codes(LatentCodeSpec.parse("noise:4,cont:2:normal"), 8, gap=0.1)


class FixedLogits(nn.Module):
    """Logits [0, ln 3] for every pair: softmax [1/4, 3/4]."""

    def forward(self, pairs):
        return torch.tensor([0.0, math.log(3.0)]).expand(len(pairs), 2) + 0 * pairs.sum()


def test_cross_entropy_and_accuracy_by_hand():
    cr = ContrastiveRegularizer(LatentCodeSpec.parse("noise:2,cont:2"), network=lambda c, n: FixedLogits())
    k = torch.tensor([1, 1, 1, 0])
    result = cr(torch.zeros(4, 1, 4, 4), torch.zeros(4, 1, 4, 4), k)
    # -ln(3/4) three times and -ln(1/4) once, averaged
    assert result.loss.item() == pytest.approx((3 * -math.log(0.75) - math.log(0.25)) / 4, rel=1e-6)
    assert result.stats["cr/acc"].item() == 0.75  # argmax is code 1 every time
    assert cr.loss(torch.zeros(4, 1, 4, 4), torch.zeros(4, 1, 4, 4), k).item() == pytest.approx(result.loss.item())


def test_default_network_shapes_and_gradients_reach_g_and_h():
    spec = LatentCodeSpec.parse("noise:3,cont:3")
    assert cr_network(2, 3)(torch.zeros(2, 2, 64, 64)).shape == (2, 3)
    generator = nn.Sequential(nn.Linear(spec.input_dim, 16 * 16), nn.Tanh(), nn.Unflatten(1, (1, 16, 16)))
    cr = ContrastiveRegularizer(spec, channels=1, size=16)
    a, b, k = cr.pair_codes(8, generator=torch.Generator().manual_seed(0))
    loss = cr(generator(a.flat), generator(b.flat), k).loss
    loss.backward()
    assert generator[0].weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cr.parameters())
    generator.zero_grad()
    cr(generator(a.flat).detach(), generator(b.flat).detach(), k).loss.backward()  # H's update: G untouched
    assert generator[0].weight.grad is None


def test_restart_gives_fresh_weights_in_the_same_tensors():
    cr = ContrastiveRegularizer(LatentCodeSpec.parse("noise:2,cont:2"), size=16)
    params = list(cr.parameters())
    with torch.no_grad():
        for p in params:
            p.add_(1.0)
    cr.restart(seed=3)
    first = {name: t.clone() for name, t in cr.state_dict().items()}
    assert all(a is b for a, b in zip(params, cr.parameters()))
    assert all(p.abs().max() < 0.5 for p in params)  # N(0, 0.02) weights and zero biases again
    cr.restart(seed=3)
    assert all(torch.equal(first[name], t) for name, t in cr.state_dict().items())


def band_generator(spec: LatentCodeSpec):
    """A toy G: continuous code j sets the brightness of band j of a 1x16x16 image (3 rows each), the
    noise shifts every pixel alike."""

    def generate(codes) -> torch.Tensor:
        images = codes.noise[:, :1, None, None].expand(-1, 1, 16, 16).clone()
        for j in range(len(spec.continuous)):
            images[:, 0, 3 * j : 3 * j + 3, :] += codes.cont[:, j, None, None]
        return images

    return generate


def mlp(in_channels: int, num_codes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 256, 64), nn.LeakyReLU(0.2), nn.Linear(64, num_codes))


@pytest.mark.parametrize("gap, better_than", [(0.3, 0.95), (0.0, 0.6)])
def test_a_small_cr_network_learns_which_code_was_shared(gap, better_than):
    # With gap 0 some unshared codes are nearly equal by chance, so that not every pair can be told.
    torch.manual_seed(0)
    spec = LatentCodeSpec.parse("noise:1:uniform,cont:5")
    generate = band_generator(spec)
    cr = ContrastiveRegularizer(spec, channels=1, size=16, network=mlp)
    optimizer = torch.optim.Adam(cr.parameters(), lr=2e-3, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(1)
    a, b, k = cr.pair_codes(1000, gap=gap, generator=rng)
    with torch.no_grad():
        assert cr(generate(a), generate(b), k).stats["cr/acc"].item() < 0.4  # chance: 0.2
    for _ in range(300):
        a, b, k = cr.pair_codes(64, gap=gap, generator=rng)
        optimizer.zero_grad()
        cr(generate(a), generate(b), k).loss.backward()
        optimizer.step()
    a, b, k = cr.pair_codes(1000, gap=gap, generator=rng)
    with torch.no_grad():
        result = cr(generate(a), generate(b), k)
    assert result.stats["cr/acc"].item() > better_than
    assert result.loss.item() < 0.7 * math.log(5)


def test_schedule_by_hand():
    paper = ContrastiveSchedule(weight=2.0, start=288_000)
    assert paper.weight_at(287_999) == 0.0 and paper.weight_at(288_000) == 2.0
    assert [paper.restart_at(s) for s in (0, 1, 287_999, 288_000, 288_001)] == [False, False, False, True, False]
    assert paper.gap_at(0) == paper.gap_at(10**6) == 0.0
    progressive = ContrastiveSchedule(weight=1.0, gap_start=0.5, gap_decrease=0.1, gap_every=100, gap_times=3)
    assert [round(progressive.gap_at(s), 6) for s in (0, 99, 100, 250, 300, 10_000)] == [0.5, 0.5, 0.4, 0.3, 0.2, 0.2]
    assert [s for s in range(0, 1000, 50) if progressive.restart_at(s)] == [100, 200, 300]
    with pytest.raises(ValueError, match="gap_every >= 1"):
        ContrastiveSchedule(gap_every=0)
    with pytest.raises(ValueError, match=r"gap_start must be in \[0, 2\]"):
        ContrastiveSchedule(gap_start=3.0)


def test_registered_as_a_component_and_imports_only_torch():
    assert registry.load("components", "ContrastiveRegularizer") is ContrastiveRegularizer
    code = (
        "import sys, gan_infogan_plugin.contrastive; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'lightning_fabric', 'typer', 'rich'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
