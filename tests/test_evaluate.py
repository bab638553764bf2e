"""metrics.py and evaluate.py: label agreement, MIG / FactorVAE and Q's MI, on hand-built cases."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from gan_infogan_plugin import InfoGAN, LatentCodeSpec, QOutput, registry
from gan_infogan_plugin.data import shapes
from gan_infogan_plugin.data.base import ImageData
from gan_infogan_plugin.evaluate import (
    EvalConfig, RealImages, categorical_scores, disentanglement_scores, evaluate_networks, mi_on_generated, real_subset,
)
from gan_infogan_plugin.metrics import ari, class_overlap, factorvae_score, hungarian_accuracy, mig, nmi, real_code_mi

SIZES = (3, 5, 8)


def sample_factors(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.stack([torch.randint(s, (n,), generator=generator) for s in SIZES], 1)


# ----------------------------------------------------------------- label agreement


def test_a_permuted_code_scores_one():
    labels = np.repeat(np.arange(4), 5)
    pred = (labels + 1) % 4
    accuracy, mapping = hungarian_accuracy(pred, labels)
    assert accuracy == 1.0
    assert mapping == {1: 0, 2: 1, 3: 2, 0: 3}
    assert nmi(pred, labels) == pytest.approx(1.0)
    assert ari(pred, labels) == pytest.approx(1.0)


def test_a_random_code_scores_near_zero():
    rng = np.random.default_rng(0)
    labels, pred = rng.integers(0, 10, 5000), rng.integers(0, 10, 5000)
    accuracy, _ = hungarian_accuracy(pred, labels)
    assert accuracy < 0.15  # chance is 0.1; matching adds a little
    assert nmi(pred, labels) < 0.01
    assert abs(ari(pred, labels)) < 0.01


def test_hand_computed_contingency_table():
    # codes x classes: [[2, 0], [1, 2], [0, 1]], n = 6
    pred = [0, 0, 1, 1, 1, 2]
    labels = [0, 0, 0, 1, 1, 1]
    accuracy, mapping = hungarian_accuracy(pred, labels)
    assert accuracy == pytest.approx(4 / 6)  # 0->0 and 1->1; code 2 is left unmatched
    assert mapping == {0: 0, 1: 1}
    # I = 1/3 ln 2 + 1/6 ln(2/3) + 1/3 ln(4/3) + 1/6 ln 2; H(pred) from (2, 3, 1)/6, H(labels) = ln 2
    mi = math.log(2) / 3 + math.log(2 / 3) / 6 + math.log(4 / 3) / 3 + math.log(2) / 6
    h_pred = -(1 / 3 * math.log(1 / 3) + 1 / 2 * math.log(1 / 2) + 1 / 6 * math.log(1 / 6))
    assert nmi(pred, labels) == pytest.approx(mi / ((h_pred + math.log(2)) / 2))
    assert nmi(pred, labels) == pytest.approx(0.43987, abs=1e-5)
    # pairs together 2, row pairs 1+3+0 = 4, column pairs 3+3 = 6, all pairs 15: expected 4*6/15
    assert ari(pred, labels) == pytest.approx((2 - 1.6) / (5 - 1.6))


def test_more_classes_than_codes():
    accuracy, mapping = hungarian_accuracy([0, 0, 1, 1], [0, 1, 2, 2])
    assert accuracy == 0.75
    assert mapping in ({0: 0, 1: 2}, {0: 1, 1: 2})


def test_class_overlap_names_merged_classes_spare_and_unused_values():
    # values x classes 0..3 (5 values, value 4 never predicted):
    #   value 0: 8 of class 0;  value 1: 6 of class 1, 2 of class 0;  value 2: 5 of class 2, 7 of class 3
    #   value 3: 2 of class 1 (class 1's majority is value 1), 1 of class 2
    pred = [0] * 8 + [1] * 6 + [1] * 2 + [2] * 5 + [2] * 7 + [3] * 2 + [3]
    labels = [0] * 8 + [1] * 6 + [0] * 2 + [2] * 5 + [3] * 7 + [1] * 2 + [2]
    overlap = class_overlap(pred, labels, num_values=5)
    assert overlap.merged == {2: [2, 3]}  # classes 2 and 3 both put most of their images in value 2
    assert overlap.spare == {3: 1}  # value 3 is no class's majority; it holds class 1 most
    assert overlap.unused == [4]
    # values whose largest class holds under 90% of their images, with each class's share (>= 10%)
    assert overlap.mixed == {1: [(1, 0.75), (0, 0.25)], 2: [(3, 7 / 12), (2, 5 / 12)], 3: [(1, 2 / 3), (2, 1 / 3)]}
    assert class_overlap(pred, labels, num_values=5, pure=0.7).mixed.keys() == {2, 3}
    clean = class_overlap((np.arange(20) + 1) % 4, np.arange(20) % 4, num_values=4)
    assert clean.merged == {} and clean.spare == {} and clean.unused == [] and clean.mixed == {}


def test_two_classes_split_by_style_are_mixed_not_merged():
    """Classes 0 and 1 each spread over values 0 and 1 (60/40 and 40/60): each class has a value of its
    own, so nothing is merged or spare, but both values are mixed; classes under a tenth are left out."""
    pred = [0] * 6 + [1] * 4 + [0] * 4 + [1] * 6 + [0] + [2] * 10
    labels = [0] * 6 + [0] * 4 + [1] * 4 + [1] * 6 + [2] + [2] * 10
    overlap = class_overlap(pred, labels, num_values=3)
    assert overlap.merged == {} and overlap.spare == {} and overlap.unused == []
    assert overlap.mixed == {0: [(0, 6 / 11), (1, 4 / 11)], 1: [(1, 0.6), (0, 0.4)]}  # class 2's one image in value 0: 9%


# ----------------------------------------------------------------- MIG / FactorVAE


def test_mig_hand_computed():
    factor = np.array([[0], [0], [1], [1]])
    codes = np.array([[0, 0], [0, 0], [1, 0], [1, 1]], dtype=float)
    # I(code1; f) = ln 2 = H(f); I(code2; f) = 1/2 ln(4/3) + 1/4 ln(2/3) + 1/4 ln 2
    second = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    score = mig(codes, factor)
    assert score.mi[0][0] == pytest.approx(math.log(2))
    assert score.mi[1][0] == pytest.approx(second)
    assert score.score == pytest.approx((math.log(2) - second) / math.log(2))


def test_mig_perfect_and_random_codes():
    g = torch.Generator().manual_seed(0)
    factors = sample_factors(5000, g)
    assert mig(factors.float(), factors).score > 0.98
    assert mig(factors.float() * 0.3 + 1.0, factors).score > 0.98  # histograms ignore scale and shift
    assert mig(torch.randn(5000, 3, generator=g), factors).score < 0.02


def test_factorvae_perfect_and_random_codes():
    g = torch.Generator().manual_seed(0)
    kw = dict(batch_size=32, num_train=300, num_eval=300, num_variance_estimate=1000, generator=g)
    perfect = factorvae_score(lambda f: f.float() * torch.tensor([1.0, 10.0, 0.1]), sample_factors, **kw)
    assert (perfect.train_accuracy, perfect.eval_accuracy, perfect.num_active_dims) == (1.0, 1.0, 3)
    random = factorvae_score(lambda f: torch.randn(f.shape[0], 4, generator=g), sample_factors, **kw)
    assert random.eval_accuracy < 0.45  # chance is 1/3
    assert random.num_active_dims == 4


def test_factorvae_ignores_constant_codes():
    g = torch.Generator().manual_seed(0)
    kw = dict(batch_size=16, num_train=100, num_eval=100, num_variance_estimate=200, generator=g)
    score = factorvae_score(lambda f: torch.cat([torch.zeros(len(f), 1), f.float()], 1), sample_factors, **kw)
    assert score.num_active_dims == 3 and score.eval_accuracy == 1.0
    assert factorvae_score(lambda f: torch.zeros(len(f), 2), sample_factors, **kw).num_active_dims == 0


# ----------------------------------------------------------------- Q on generated / real images

SPEC = LatentCodeSpec.parse("noise:2,cat:3,cont:1")


class ExactQ(nn.Module):
    """D+Q for the identity 'generator': reads the one-hot and the continuous code back exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(100.0))
        self.bn = nn.BatchNorm1d(1)

    def forward(self, x):
        assert not self.training
        cont = x[:, 5:6]
        return x.sum(1), QOutput((x[:, 2:5] * self.scale,), cont, torch.zeros_like(cont))


def test_mi_on_generated_for_an_exact_q():
    generator, dq = nn.Identity(), ExactQ()
    dq.train()
    result = mi_on_generated(generator, dq, SPEC, n=300, batch_size=128, rng=torch.Generator().manual_seed(1))
    assert dq.training  # mode restored
    assert result["c1"].mi == pytest.approx(math.log(3), abs=1e-6)
    assert result["c1"].entropy == pytest.approx(math.log(3))
    assert result["c1"].accuracy == 1.0 and result["c1"].mse is None
    # sigma = 1 and mu = c: -log Q = ln(2 pi) / 2, so the bound is ln 2 - ln(2 pi) / 2 (negative)
    assert result["c2"].mi == pytest.approx(math.log(2) - 0.5 * math.log(2 * math.pi), abs=1e-6)
    assert result["c2"].mse == 0.0 and result["c2"].accuracy is None
    assert result["c2"].to_json() == {"mi": result["c2"].mi, "entropy": math.log(2), "mse": 0.0}


def test_categorical_scores_on_labelled_images():
    spec = LatentCodeSpec.parse("noise:0,cat:4,cat:2")
    labels = torch.arange(40) % 4
    images = labels.float()[:, None, None, None]

    def q_predict(x):
        y = x.flatten().long()
        return QOutput((nn.functional.one_hot((y + 1) % 4, 4).float(), nn.functional.one_hot(y % 2, 2).float()), x[:, :0, 0, 0], None)

    scores = categorical_scores(q_predict, images, labels, spec, batch_size=16)
    assert scores["c1"].accuracy == 1.0 and scores["c1"].mapping == {1: 0, 2: 1, 3: 2, 0: 3}
    assert scores["c1"].nmi == pytest.approx(1.0) and scores["c1"].ari == pytest.approx(1.0)
    assert scores["c2"].accuracy == 0.5  # two code values can match only two of the four classes
    assert scores["c1"].overlap.merged == {} and scores["c2"].overlap.merged == {0: [0, 2], 1: [1, 3]}


def test_real_code_mi_hand_computed():
    # p1 = (1/2, 1/2), p2 = (1, 0): H(mean) = H(3/4, 1/4), mean H = ln 2 / 2
    logits = torch.tensor([[0.0, 0.0], [0.0, -1e4]])
    h_mean = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert real_code_mi(logits) == pytest.approx(h_mean - math.log(2) / 2, abs=1e-9)
    sure = torch.eye(10).repeat(3, 1) * 50  # confident, every class used equally often
    assert real_code_mi(sure) == pytest.approx(math.log(10), abs=1e-6)
    assert real_code_mi(torch.zeros(30, 10)) == pytest.approx(0.0, abs=1e-12)  # unsure
    assert real_code_mi(sure[:1].expand(30, 10)) == pytest.approx(0.0, abs=1e-12)  # one class only


def test_evaluate_networks_gives_the_label_free_mi_with_or_without_labels():
    torch.manual_seed(0)
    spec = LatentCodeSpec.parse("noise:4,cat:3")
    model = registry.load("models", "mnist")
    g, d = model.build(spec.input_dim)
    dq = InfoGAN.wrap(g, d, spec, model.q_layer, image_input=False).discriminator_with_q()
    images = torch.rand(12, 1, 28, 28) * 2 - 1
    config = EvalConfig(generated=16, real=12, batch_size=8)
    unlabelled = ImageData("folder", dataset=[(image, 0) for image in images])  # a file-backed set, no labels
    result = evaluate_networks(g, dq, spec, unlabelled, config=config)
    assert result.categorical is None and result.disentanglement is None and set(result.real_mi) == {"c1"}
    assert 0 <= result.real_mi["c1"] <= math.log(3) + 1e-9
    assert "categorical" not in result.to_json() and "eval/accuracy/c1" not in result.flat()
    labelled = ImageData("mnist", images=images, labels=torch.arange(12) % 3)
    again = evaluate_networks(g, dq, spec, labelled, config=config)
    assert again.real_mi["c1"] == pytest.approx(result.real_mi["c1"], abs=1e-6)  # the same images
    assert again.categorical.images == 12 and 1 / 3 <= again.categorical.codes["c1"].accuracy <= 1
    flat = again.flat()
    assert flat["eval/accuracy/c1"] == again.categorical.codes["c1"].accuracy and flat["eval/real_mi/c1"] == again.real_mi["c1"]
    assert again.to_json()["categorical"]["codes"]["c1"]["accuracy"] == flat["eval/accuracy/c1"]


class SaysZero(nn.Module):
    """G draws blank 4x4 images; "Q" reads code value 0 of its one categorical code (4 values) in every image."""

    def forward(self, x: torch.Tensor):
        if x.dim() == 2:  # G: codes (N, input_dim) -> images (N, 1, 4, 4)
            return x.new_zeros(len(x), 1, 4, 4)
        sure = torch.full((len(x), 4), -10.0)
        sure[:, 0] = 10.0
        return x.new_zeros(len(x), 1), QOutput((sure,), x.new_zeros(len(x), 0), None)


def test_real_images_are_a_seeded_random_subset_of_a_label_sorted_set():
    spec = LatentCodeSpec.parse("noise:2,cat:4")
    labels = torch.arange(4).repeat_interleave(100)  # stored in label order: 100 zeros, then 100 ones, ...
    data = ImageData("sorted", images=torch.zeros(400, 1, 4, 4, dtype=torch.uint8), labels=labels)
    config = EvalConfig(generated=8, real=40, batch_size=16)
    result = evaluate_networks(SaysZero(), SaysZero(), spec, data, config=config)
    # A code that always says 0 matches the most frequent class: the first 40 images (all zeros) would give
    # accuracy 1; 40 drawn at random from four equal classes give about 1/4 (at most 0.6 by far).
    assert result.categorical.images == 40 and result.categorical.codes["c1"].accuracy < 0.6
    assert result.real_images == RealImages("sorted", 40, 400, 0)
    assert result.to_json()["real_images"] == {"data": "sorted", "scored": 40, "of": 400, "seed": 0}
    assert result.flat()["eval/real_images"] == 40
    index = real_subset(400, 40, seed=0)
    assert torch.equal(index, real_subset(400, 40, seed=0)) and not torch.equal(index, real_subset(400, 40, seed=1))
    assert len(set(index.tolist())) == 40 and set(labels[index].tolist()) == {0, 1, 2, 3}
    assert torch.equal(real_subset(30, 40, seed=0), torch.arange(30))  # fewer images than asked: all of them
    everything = evaluate_networks(SaysZero(), SaysZero(), spec, data, config=EvalConfig(generated=8, real=1000))
    assert everything.real_images.scored == 400 and everything.categorical.codes["c1"].accuracy == 0.25


# ----------------------------------------------------------------- shapes


def centroid_q(images: torch.Tensor) -> QOutput:
    """An oracle 'Q' for sprites: the continuous codes read the sprite's centre (x, y) and its area."""
    mass = (images[:, 0] + 1) / 2  # (N, S, S) in [0, 1]
    grid = torch.arange(images.shape[-1], dtype=torch.float32)
    area = mass.sum((1, 2)).clamp(min=1e-6)
    cx = (mass.sum(1) * grid).sum(1) / area
    cy = (mass.sum(2) * grid).sum(1) / area
    return QOutput((), torch.stack([cx, cy, area], 1), None)


def test_disentanglement_scores_reward_the_factor_reading_codes():
    spec = LatentCodeSpec.parse("noise:1,cont:3")
    kw = dict(num_points=2000, batch_size=16, num_train=150, num_eval=150, num_variance_estimate=1000)
    sprites = shapes.factors(size=16, channels=1)
    oracle = disentanglement_scores(centroid_q, spec, sprites, rng=torch.Generator().manual_seed(0), **kw)
    assert oracle.factors == ["shape", "scale", "rotation", "x", "y"] and oracle.codes == ["c1", "c2", "c3"]
    gaps = dict(zip(oracle.factors, oracle.mig.gaps))
    assert gaps["x"] > 0.4 and gaps["y"] > 0.4 and gaps["rotation"] < 0.1
    assert oracle.factorvae.eval_accuracy > 0.45  # at most about 3/5: three codes for five factors

    g = torch.Generator().manual_seed(1)
    noise = disentanglement_scores(
        lambda x: QOutput((), torch.randn(len(x), 3, generator=g), None), spec, sprites, rng=torch.Generator().manual_seed(0), **kw
    )
    assert noise.mig.score < 0.05
    assert noise.factorvae.eval_accuracy < 0.35  # chance is 1/5


def test_the_eval_caption_names_merged_spare_unused_and_mixed_values():
    from gan_infogan_plugin.cli import _overlap_text
    from gan_infogan_plugin.metrics import Overlap

    overlap = Overlap({3: [4, 9]}, {6: 1}, [7], {3: [(4, 0.55), (9, 0.45)], 2: [(4, 0.584), (9, 0.411)]})
    assert _overlap_text(overlap) == ("; classes 4+9 share value 3; value 6 holds no class of its own (mostly 1); "
                                      "value 7 is never predicted; value 2 mixes 4 58%, 9 41%")
    assert _overlap_text(Overlap({}, {}, [], {})) == ""
