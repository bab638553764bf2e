"""dsprites64: the InfoGAN-CR networks, layer by layer, with spectral norm and the [0, 1] <-> [-1, 1] mapping."""

import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_infogan_plugin import InfoGAN, LatentCodeSpec, registry
from gan_infogan_plugin.models.dsprites import CenteredSigmoid

SPEC = LatentCodeSpec.parse("noise:5:uniform,cont:5")  # the paper's dSprites codes


def test_layers_and_parameter_counts_by_hand():
    g, d = registry.load("models", "dsprites64").build(SPEC.input_dim)
    # G: FC 10->128 (1,408) BN (256), FC 128->1024 (132,096) BN (2,048), deconvs 64->64 (65,600) BN (128),
    # 64->32 (32,800) BN (64), 32->32 (16,416) BN (64), 32->1 (513).
    assert sum(p.numel() for p in g.parameters()) == 251_393
    assert sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in g.modules()) == 5
    assert isinstance(g[-1], CenteredSigmoid)
    # D: convs 1->32 (544), 32->32 (16,416), 32->64 (32,832), 64->64 (65,600), FC 1024->128 (131,200), FC 128->1 (129).
    assert sum(p.numel() for p in d.parameters()) == 246_721
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in d.modules())
    normed = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(normed) == 6 and all(parametrize.is_parametrized(m, "weight") for m in normed)


def test_spectral_norm_keeps_each_layer_at_norm_one():
    torch.manual_seed(0)
    _, d = registry.load("models", "dsprites64").build(SPEC.input_dim)
    for _ in range(100):  # power iteration: one step per forward pass in training mode (20 left 1.023 in some draws)
        d(torch.rand(2, 1, 64, 64) * 2 - 1)
    for m in d.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
            assert abs(sigma - 1.0) < 0.02


def test_image_range_maps_to_the_papers():
    g, d = registry.load("models", "dsprites64").build(SPEC.input_dim)
    x = g(SPEC.sample(6).flat)
    assert x.shape == (6, 1, 64, 64) and x.min() > -1 and x.max() < 1
    assert torch.allclose(CenteredSigmoid()(torch.tensor([0.0, 50.0, -50.0])), torch.tensor([0.0, 1.0, -1.0]))
    d.eval()  # no power iteration: two passes see the same weights
    real = torch.randint(0, 2, (3, 1, 64, 64)).float()  # a binary sprite in the paper's [0, 1]
    assert torch.allclose(d(real * 2 - 1), d.head(d.trunk(real)).view(-1))


def test_q_reads_the_trunk():
    model = registry.load("models", "dsprites64")
    g, d = model.build(SPEC.input_dim)
    info = InfoGAN.wrap(g, d, SPEC, layer=model.q_layer, hidden=128, fixed_std=True)
    codes = info.sample(4)
    d(g(codes.flat))
    assert info.q_head.features.shape == (4, 128)
    assert info.mi(codes).q.cont_mean.shape == (4, 5)


def test_the_dsprites_recipes_build_the_authors_q():
    """infogan-dsprites / infogan-cr-dsprites(-cpu): Q is FC 128 - LeakyReLU(0.2) - FC 5 on the trunk, with
    spectral norm on both layers and no BatchNorm, as in the authors' network.py."""
    from gan_infogan_plugin.networks import build_networks
    from gan_infogan_plugin.recipes import load_recipe

    for name in ("infogan-dsprites", "infogan-cr-dsprites", "infogan-cr-dsprites-cpu"):
        q = build_networks(load_recipe(name)).info.q_head
        first, act, last = q.net
        assert (first.in_features, first.out_features, last.out_features) == (128, 128, 5)
        assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2
        assert parametrize.is_parametrized(first, "weight") and parametrize.is_parametrized(last, "weight")
