"""The InfoGAN-CR paper's protocol: FactorVAE on the same votes, MIG's bins, ModelCentrality, by hand."""

import numpy as np
import pytest
import torch

from gan_infogan_plugin import LatentCodeSpec
from gan_infogan_plugin.metrics import entropy, histogram_discretize, mutual_information
from gan_infogan_plugin.protocols import (
    PaperProtocol,
    factorvae_votes,
    latent_batch,
    model_centrality,
    paper_scores,
    spec_codes,
    vote_score,
)

SMALL = PaperProtocol(groups=500, group_size=20, scale_points=2000, mig_points=3000)


def grid_factors(sizes):
    """sample_factors for a grid of ``sizes`` values per factor, drawn uniformly."""

    def sample(n, generator=None):
        return torch.stack([torch.randint(s, (n,), generator=generator) for s in sizes], 1)

    return sample


def identity(x):
    return x.double()


def test_vote_score_by_hand():
    # Codes 0, 1, 2 get 3, 2 and 1 agreeing votes of 9: 6 / 9. Revised: the best F = 2 codes, 5 / 9.
    score = vote_score(np.array([[3, 1, 1], [2, 2, 0]]))
    assert score.score == pytest.approx(6 / 9) and score.revised == pytest.approx(5 / 9)
    assert score.votes == [[3, 1, 1], [2, 2, 0]]
    assert vote_score(np.zeros((2, 3))).score == 0.0


def test_groups_cycle_through_the_factors_and_a_perfect_code_scores_one():
    sample = grid_factors((4, 5, 6))
    votes = factorvae_votes(identity, [identity, lambda x: x.flip(1).double()], sample, SMALL, torch.Generator().manual_seed(0))
    # 500 groups: factor g mod 3 held, 167, 167 and 166 of them; every group votes for its factor's code.
    assert np.array_equal(votes[0], np.diag([167, 167, 166]))
    assert np.array_equal(votes[1], np.fliplr(np.diag([167, 167, 166])))
    assert paper_scores(identity, lambda x: x.flip(1).double(), sample, SMALL).factorvae.score == 1.0


def test_a_factor_no_code_carries_loses_its_groups():
    # Codes = factors 0 and 1; factor 2 is in no code. Groups holding factor 2 vote for either code but
    # are outvoted (at most 166 against 167), so exactly the 334 groups of factors 0 and 1 agree.
    sample = grid_factors((4, 5, 6))
    score = paper_scores(identity, lambda x: x[:, :2].double(), sample, SMALL, torch.Generator().manual_seed(1)).factorvae
    assert score.score == pytest.approx(334 / 500)
    assert [sum(row) for row in score.votes] == [167, 167, 166]


def test_codes_are_compared_after_division_by_their_global_spread():
    # Code 0 = 1000 (f0 + noise / 10), code 1 = f1 + noise / 10. Holding f0 leaves code 0 a spread of
    # 1000 / 10 in raw units, more than code 1's, but a tenth of its global spread: it gets the vote.
    sample = grid_factors((10, 10))
    rng = torch.Generator().manual_seed(2)

    def read(x):
        noise = torch.rand(x.shape, generator=rng, dtype=torch.float64) / 10
        return (x.double() + noise) * torch.tensor([1000.0, 1.0], dtype=torch.float64)

    assert paper_scores(identity, read, sample, SMALL, torch.Generator().manual_seed(3)).factorvae.score == 1.0


def test_a_code_that_never_varies_gets_no_votes():
    sample = grid_factors((4, 5))
    score = paper_scores(identity, lambda x: torch.stack([x[:, 0].double(), torch.zeros(len(x))], 1), sample, SMALL).factorvae
    assert score.votes == [[250, 0], [250, 0]] and score.score == 0.5


def test_paper_mig_uses_the_authors_bins():
    # The authors' code bins with np.digitize(x, np.histogram(x, 20)[1][:-1]) (1..20): the same partition.
    x = np.random.default_rng(0).normal(size=(5000, 3))
    theirs = np.stack([np.digitize(x[:, k], np.histogram(x[:, k], 20)[1][:-1]) for k in range(3)], 1)
    assert np.array_equal(histogram_discretize(x, 20) + 1, theirs)
    # Codes copying factors 0 and 1 (8 values each, so 8 of the 20 bins), a third constant. Factor 0's gap
    # is 1 - I(f0; f1) / H(f0), with I(f0; f1) the sample's small chance dependence of the factors;
    # factor 2's is |I(f0; f2) - I(f1; f2)| / H(f2), both chance values.
    sample = grid_factors((8, 8, 8))
    rng = torch.Generator().manual_seed(7)
    scores = paper_scores(identity, lambda f: torch.stack([f[:, 0], f[:, 1], torch.zeros(len(f))], 1).double(), sample, SMALL, rng)
    f = sample(SMALL.mig_points, torch.Generator().manual_seed(7))  # paper_scores draws MIG's sample first
    score = scores.mig
    mi = {(a, b): mutual_information(f[:, a], f[:, b]) for a, b in ((0, 1), (0, 2), (1, 2))}
    expected = [1 - mi[0, 1] / entropy(f[:, 0]), 1 - mi[0, 1] / entropy(f[:, 1]), abs(mi[0, 2] - mi[1, 2]) / entropy(f[:, 2])]
    assert score.gaps == pytest.approx(expected)
    assert 0.99 < expected[0] < 1.0 and expected[2] < 0.01


def test_model_centrality_by_hand():
    # Three runs with the same generator (codes -> images = codes). Q of runs 0 and 1 read both codes
    # (run 1 in swapped order): FactorVAE 1 on any run's groups. Q of run 2 reads code 0 only: 0.5.
    # Agreement: (0, 1) = 1, (0, 2) = (1, 2) = (1 + 0.5) / 2 = 0.75; centrality 0.875, 0.875, 0.75.
    spec = LatentCodeSpec.parse("noise:2:uniform,cont:2")
    readers = [identity, lambda x: x.flip(1).double(), lambda x: torch.stack([x[:, 0], 0 * x[:, 1]], 1).double()]
    found = model_centrality([identity] * 3, readers, lambda n, g: spec_codes(spec, n, g), SMALL)
    assert np.allclose(found.scores, [[1, 1, 1], [1, 1, 1], [0.5, 0.5, 0.5]])
    assert np.allclose(found.agreement, [[1, 1, 0.75], [1, 1, 0.75], [0.75, 0.75, 0.5]])
    assert found.centrality == pytest.approx([0.875, 0.875, 0.75]) and found.pick is None  # runs 0 and 1 tie
    # Runs 1 and 2 both read code 0 only: agreement (0, 1) = (0, 2) = 0.75, (1, 2) = 0.5; run 0 is the pick.
    half = readers[2]
    found = model_centrality([identity] * 3, [identity, half, half], lambda n, g: spec_codes(spec, n, g), SMALL)
    assert found.centrality == pytest.approx([0.75, 0.625, 0.625]) and found.pick == 0
    # Two runs: each one's centrality is their one agreement, so they always tie.
    found = model_centrality([identity] * 2, [identity, half], lambda n, g: spec_codes(spec, n, g), SMALL)
    assert found.centrality == pytest.approx([0.75, 0.75]) and found.pick is None
    with pytest.raises(ValueError, match="at least two"):
        model_centrality([identity], [identity], lambda n, g: spec_codes(spec, n, g), SMALL)


def test_model_centrality_on_tiny_generators_prefers_the_runs_that_agree():
    # Generators map codes to "images" (n, 4); two runs put code c at pixel c, a third mixes the codes.
    # Every Q inverts its own generator exactly, so each run is perfect on its own groups (diagonal 1),
    # but the mixing run's Q reads mixtures on the others' groups.
    spec = LatentCodeSpec.parse("noise:1:uniform,cont:2")
    mix = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)

    def plain(codes):
        return torch.cat([codes, torch.zeros(len(codes), 2, dtype=codes.dtype)], 1)

    def mixed(codes):
        return torch.cat([codes @ mix, torch.zeros(len(codes), 2, dtype=codes.dtype)], 1)

    readers = [lambda x: x[:, :2], lambda x: x[:, :2], lambda x: x[:, :2] @ torch.linalg.inv(mix)]
    found = model_centrality([plain, plain, mixed], readers, lambda n, g: spec_codes(spec, n, g), SMALL, seed=5)
    assert np.allclose(np.diag(found.scores), 1.0)
    assert found.scores[2][0] < 0.8 and found.scores[0][2] < 0.8
    assert found.centrality[0] == pytest.approx(found.centrality[1]) and found.centrality[2] < found.centrality[0]
    assert found.pick is None  # runs 0 and 1 are the same run: the top ties


def test_spec_codes_round_trip_through_latent_batch():
    spec = LatentCodeSpec.parse("noise:3,cat:4,cont:2")
    codes = spec_codes(spec, 50, torch.Generator().manual_seed(0))
    assert codes.shape == (50, 3) and set(codes[:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0}
    batch = latent_batch(spec, codes, torch.Generator().manual_seed(1))
    assert torch.equal(batch.cat[0], codes[:, 0].long()) and torch.allclose(batch.cont.double(), codes[:, 1:])
    assert batch.noise.shape == (50, 3) and batch.flat.shape == (50, spec.input_dim)


def test_the_paper_protocol_on_dsprites_with_a_hand_made_representation(tmp_path):
    # Three codes computed from the pixels: the sprite's centroid column and row and its area. Groups
    # holding x, y or the scale vote for them (the 300 of 500 groups of those factors); groups holding
    # the shape or the rotation are outvoted wherever they go, so the score is 300 / 500.
    from gan_infogan_plugin.data import dsprites
    from gan_infogan_plugin.recipes import DataConfig

    data = dsprites.build(DataConfig(name="dsprites", root=str(tmp_path), options={"stride": 8}), 64, 1)
    assert data.factors is not None

    def read(images):
        white = (images[:, 0] > 0).double()
        area = white.sum((1, 2))
        index = torch.arange(64, dtype=torch.float64)
        return torch.stack([(white.sum(1) * index).sum(1) / area, (white.sum(2) * index).sum(1) / area, area], 1)

    protocol = PaperProtocol(groups=500, group_size=50, scale_points=5000, mig_points=5000)
    scores = paper_scores(data.factors.images, read, data.factors.sample, protocol, torch.Generator().manual_seed(0))
    score = scores.factorvae
    assert score.score == pytest.approx(0.6)
    votes = np.array(score.votes)  # rows: shape, scale, rotation, x, y
    assert votes[[1, 3, 4]].tolist() == [[0, 0, 100], [100, 0, 0], [0, 100, 0]]
    assert scores.mig.gaps[3] > 0.5 and scores.mig.gaps[4] > 0.5  # x and y each in one code
