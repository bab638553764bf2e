"""IIC's mutual information between two views (invariance.paired_cluster_mi) against hand-computed
values, and the invariance term in the training step (invariance_term.InvarianceTerm): Q on D's real
pass, a second view from the (seed, rank, step) stream, -weight * I added to D's loss, Q trained by it."""

from __future__ import annotations

import math

import pytest
import torch
from test_step import batch, fabric, tiny_gan  # noqa: F401 (fabric: the module-scoped fixture)
from torch import nn

from gan_infogan_plugin.augment import random_affine
from gan_infogan_plugin.data.base import INVARIANCE_STREAM, stream_generator
from gan_infogan_plugin.invariance import paired_cluster_mi
from gan_infogan_plugin.invariance_term import InvarianceTerm
from gan_infogan_plugin.qhead import QOutput
from gan_infogan_plugin.step import train_step

def test_mi_by_hand():
    """p = p' = [[3/4, 1/4], [1/4, 3/4]]: the joint is [[5/16, 3/16], [3/16, 5/16]], both marginals 1/2,
    so I = 2 (5/16) ln(5/4) + 2 (3/16) ln(3/4)."""
    p = torch.tensor([[0.75, 0.25], [0.25, 0.75]])
    assert paired_cluster_mi(p, p).item() == pytest.approx(0.625 * math.log(1.25) + 0.375 * math.log(0.75), abs=1e-6)


def test_mi_is_log_k_for_sure_balanced_clusters_and_zero_for_unsure_or_collapsed_ones():
    eye = torch.eye(4)  # (the clamp of the 12 empty cells at float32's eps costs about 2e-5)
    assert paired_cluster_mi(eye, eye).item() == pytest.approx(math.log(4), abs=1e-4)
    assert paired_cluster_mi(torch.full((5, 3), 1 / 3), torch.full((5, 3), 1 / 3)).item() == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.tensor([[1.0, 0.0]]).expand(6, 2)
    assert paired_cluster_mi(collapsed, collapsed).item() == pytest.approx(0.0, abs=1e-4)
    # views that disagree at random about balanced sure clusters: half the pairs agree, I = 0
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert paired_cluster_mi(a, b).item() == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="same shape"):
        paired_cluster_mi(eye, eye[:, :3])


class TinyDQ(nn.Module):
    """D and Q on the 4 pixels of a 2x2 image: D's logit and Q's two class logits, both linear."""

    def __init__(self) -> None:
        super().__init__()
        self.d, self.q = nn.Linear(4, 1), nn.Linear(4, 2)

    def forward(self, images: torch.Tensor, with_q: bool = True) -> tuple[torch.Tensor, QOutput | None]:
        flat = images.flatten(1)
        q = QOutput((self.q(flat),), flat.new_zeros(len(flat), 0), None) if with_q else None
        return self.d(flat).flatten(), q


def test_the_term_is_minus_weight_times_iic_on_two_views_of_the_reals_and_trains_q(fabric):
    gan, plain = tiny_gan(fabric, TinyDQ), tiny_gan(fabric, TinyDQ)
    q_before = [p.detach().clone() for p in gan.discriminator.q.parameters()]
    b = batch(5)
    # by hand, before the step: the second view from the term's stream, Q's softmax on both views
    other = random_affine(b.real, 20.0, 0.2, stream_generator(7, 0, 5, INVARIANCE_STREAM), max_shear=10.0)
    _, q_real = gan.discriminator(b.real)
    _, q_other = gan.discriminator(other)
    expected = paired_cluster_mi(q_real.cat_logits[0].softmax(1), q_other.cat_logits[0].softmax(1))

    term = InvarianceTerm(["c1"], weight=0.5, max_degrees=20.0, max_zoom=0.2, seed=7, max_shear=10.0)
    term.setup(fabric, gan)
    result = train_step(fabric, gan, b, [term])
    reference = train_step(fabric, plain, b)
    assert result.stats()["iic/c1"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert result.total_d.item() == pytest.approx(result.loss_d.item() - 0.5 * expected.item(), abs=1e-6)
    assert result.loss_d.item() == pytest.approx(reference.loss_d.item(), abs=1e-6)  # the same D before the step
    # Q learns from the real images alone here (no MI term): it moved, and without the term it does not
    assert not all(torch.equal(a, p) for a, p in zip(q_before, gan.discriminator.q.parameters()))
    assert all(torch.equal(a, p) for a, p in zip(q_before, plain.discriminator.q.parameters()))


def test_the_term_refuses_a_gan_without_q_or_codes(fabric):
    with pytest.raises(ValueError, match="categorical code"):
        InvarianceTerm([])
    gan = tiny_gan(fabric)  # D alone
    with pytest.raises(ValueError, match="needs Q"):
        InvarianceTerm(["c1"]).setup(fabric, gan)


def test_the_recipes_invariance_table_sets_the_term():
    """[invariance] degrees, zoom and shear reach the term the runner builds; shear is off unless set."""
    from gan_infogan_plugin.networks import build_networks, build_regularizers
    from gan_infogan_plugin.recipes import load_recipe

    def term(overrides: list[str]) -> InvarianceTerm:
        recipe = load_recipe("infogan-mnist", ["trainer.seed=3", *overrides])
        (found,) = [r for r in build_regularizers(recipe, build_networks(recipe)) if isinstance(r, InvarianceTerm)]
        return found

    shipped = term([])
    assert (shipped.weight, shipped.max_degrees, shipped.max_zoom, shipped.max_shear, shipped.seed) == (1.0, 25.0, 0.2, 0.0, 3)
    moved = term(["invariance.degrees=15", "invariance.zoom=0.1", "invariance.shear=12", "invariance.weight=2"])
    assert (moved.weight, moved.max_degrees, moved.max_zoom, moved.max_shear) == (2.0, 15.0, 0.1, 12.0)
