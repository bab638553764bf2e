import pytest
import torch

from gan_infogan_plugin import InfoGAN, LatentCodeSpec, registry

SPEC = LatentCodeSpec.parse("noise:62,cat:10,cont:2")


@pytest.mark.parametrize(
    "name, size, channels, features",
    [("mnist", 28, 1, 1024), ("svhn", 32, 3, 4096), ("celeba", 32, 3, 4096), ("chairs", 64, 1, 1024), ("dcgan64", 64, 3, 8192),
     ("dsprites64", 64, 1, 128)],
)
def test_paper_models_shapes_and_q_layer(name, size, channels, features):
    model = registry.load("models", name)
    g, d = model.build(SPEC.input_dim)
    info = InfoGAN.wrap(g, d, SPEC, layer=model.q_layer)
    codes = info.sample(3)
    x = g(codes.flat)
    assert x.shape == (3, channels, size, size)
    assert torch.equal(x, g(codes.image))  # flat and (N, input_dim, 1, 1) inputs are the same
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)
    assert info.q_head.features.flatten(1).shape[1] == features


def test_weights_initialised_like_the_paper():
    g, d = registry.load("models", "mnist").build(74)
    w = d.trunk[2].weight
    assert w.std().item() == pytest.approx(0.02, rel=0.1)
    assert g[1].weight.std().item() == pytest.approx(0.02, rel=0.1)
