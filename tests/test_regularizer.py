import math

import pytest
import torch

from gan_infogan_plugin import LatentCodeSpec, MIRegularizer, QOutput
from gan_infogan_plugin.regularizer import gaussian_nll
from gan_infogan_plugin.step import Fakes, MITerm

SPEC = LatentCodeSpec.parse("noise:4,cat:10,cont:1")


def _q(cat_logits, mean, log_std=None):
    return QOutput((cat_logits,), mean, log_std)


def test_perfect_q_gives_ln10_and_uniform_q_gives_zero():
    codes = SPEC.sample(64, generator=torch.Generator().manual_seed(0))
    mean = codes.cont.clone()
    perfect = torch.nn.functional.one_hot(codes.cat[0], 10).float() * 100.0
    stats = MIRegularizer(SPEC)(_q(perfect, mean), codes).stats
    assert stats["mi/c1"].item() == pytest.approx(math.log(10), abs=1e-6)
    assert stats["acc/c1"].item() == 1.0
    uniform = torch.zeros(64, 10)
    stats = MIRegularizer(SPEC)(_q(uniform, mean), codes).stats
    assert stats["mi/c1"].item() == pytest.approx(0.0, abs=1e-6)


def test_cross_entropy_is_on_logits_not_probabilities():
    codes = SPEC.sample(3)
    logits = torch.randn(3, 10)
    loss_logits = MIRegularizer(SPEC, lambda_cont=0.0)(_q(logits, codes.cont), codes).loss
    by_hand = -torch.log_softmax(logits, 1)[torch.arange(3), codes.cat[0]].mean()
    assert loss_logits.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_gaussian_nll_closed_form():
    x, mean = torch.tensor([0.5]), torch.tensor([0.0])
    # sigma = 1: ln(2 pi) / 2 + 0.5^2 / 2 = 0.918939 + 0.125
    assert gaussian_nll(x, mean, None).item() == pytest.approx(1.0439385, abs=1e-6)
    # sigma = 2: ln 2 + ln(2 pi) / 2 + (0.5 / 2)^2 / 2 = 0.693147 + 0.918939 + 0.03125
    log_std = torch.tensor([math.log(2.0)])
    assert gaussian_nll(x, mean, log_std).item() == pytest.approx(1.6433361, abs=1e-6)
    normal = torch.distributions.Normal(mean, torch.exp(log_std))
    assert gaussian_nll(x, mean, log_std).item() == pytest.approx(-normal.log_prob(x).item(), abs=1e-6)


def test_loss_composition_and_continuous_stats():
    codes = SPEC.sample(5, generator=torch.Generator().manual_seed(3))
    logits, mean, log_std = torch.randn(5, 10), torch.zeros(5, 1), torch.full((5, 1), 0.3)
    result = MIRegularizer(SPEC, lambda_cat=2.0, lambda_cont=0.5)(_q(logits, mean, log_std), codes)
    ce = torch.nn.functional.cross_entropy(logits, codes.cat[0])
    nll = gaussian_nll(codes.cont, mean, log_std).mean()
    assert result.loss.item() == pytest.approx((2.0 * ce + 0.5 * nll).item(), rel=1e-6)
    assert result.stats["mi/c2"].item() == pytest.approx(math.log(2) - nll.item(), rel=1e-6)
    assert result.stats["mse/c2"].item() == pytest.approx((codes.cont**2).mean().item(), rel=1e-6)
    total = result.stats["mi/c1"] + result.stats["mi/c2"]
    assert result.stats["mi"].item() == pytest.approx(total.item(), rel=1e-6)
    assert all(not v.requires_grad for v in result.stats.values())


def test_paper_default_lambdas():
    reg = MIRegularizer(SPEC)
    assert reg.lambda_cat == 1.0 and reg.lambda_cont < 1.0


def test_cont_scale_multiplies_only_the_continuous_weight():
    codes = SPEC.sample(5, generator=torch.Generator().manual_seed(4))
    logits, mean = torch.randn(5, 10), torch.zeros(5, 1)
    ce = torch.nn.functional.cross_entropy(logits, codes.cat[0])
    nll = gaussian_nll(codes.cont, mean, None).mean()
    reg = MIRegularizer(SPEC, lambda_cat=1.0, lambda_cont=0.1)
    for scale in (0.0, 0.25, 1.0):
        loss = reg(_q(logits, mean), codes, cont_scale=scale).loss
        assert loss.item() == pytest.approx((ce + 0.1 * scale * nll).item(), rel=1e-6)
    # the statistics do not depend on the weight: the bound is still measured at scale 0
    off = reg(_q(logits, mean), codes, cont_scale=0.0).stats
    assert off["mi/c2"].item() == pytest.approx(math.log(2) - nll.item(), rel=1e-6)


def test_mi_term_ramps_the_continuous_weight_over_the_warmup():
    term = MITerm(MIRegularizer(SPEC), cont_warmup=2000)
    assert [term.cont_scale(step) for step in (0, 500, 1000, 2000, 4999)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert MITerm(MIRegularizer(SPEC)).cont_scale(0) == 1.0  # no warm-up: full weight at step 0
    codes = SPEC.sample(4, generator=torch.Generator().manual_seed(5))
    logits, mean = torch.randn(4, 10), torch.zeros(4, 1)
    ce = torch.nn.functional.cross_entropy(logits, codes.cat[0])
    nll = gaussian_nll(codes.cont, mean, None).mean()
    for step, scale in ((0, 0.0), (500, 0.25), (3000, 1.0)):
        fakes = Fakes(step, torch.zeros(4, 1, 2, 2), codes, _q(logits, mean))
        for term_loss in (term.discriminator_term(fakes).loss, term.generator_term(fakes).loss):
            assert term_loss.item() == pytest.approx((ce + 0.1 * scale * nll).item(), rel=1e-6)
