import importlib
import math

import pytest
import torch
from torch import nn

import gan_infogan_plugin
from gan_infogan_plugin import InfoGAN, LatentCodeSpec
from gan_infogan_plugin.models.dcgan import Discriminator, Generator


def test_remove_leaves_the_discriminator_as_it_was():
    d = Discriminator(3, width=8)
    info = InfoGAN.wrap(Generator(16, 3, width=8), d, "noise:4,cat:10,cont:2", layer="main.10")
    assert any(m._forward_hooks for m in d.modules())
    info.remove()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in d.modules())


def test_mi_must_follow_the_pass_on_the_same_batch():
    g, d = Generator(16, 3, width=8), Discriminator(3, width=8)
    info = InfoGAN.wrap(g, d, "noise:4,cat:10,cont:2", layer="main.10")
    d(torch.randn(3, 3, 64, 64))
    with pytest.raises(ValueError, match="saw 3 images but the codes are for 5"):
        info.mi(info.sample(5))


def test_discriminator_with_q_is_one_module():
    g, d = Generator(16, 3, width=8), Discriminator(3, width=8)
    info = InfoGAN.wrap(g, d, "noise:4,cat:10,cont:2", layer="main.10")
    dq = info.discriminator_with_q()
    verdict, q = dq(torch.randn(4, 3, 64, 64))
    assert verdict.shape == (4,) and q.cat_logits[0].shape == (4, 10)
    assert {id(p) for p in dq.parameters()} == {id(p) for p in info.discriminator_parameters()}


class TinyG(nn.Module):
    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Linear(input_dim, 64), nn.ReLU(), nn.Linear(64, 16), nn.Tanh())

    def forward(self, x):
        return self.main(x)


class TinyD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Linear(16, 64), nn.LeakyReLU(0.2, inplace=True), nn.Linear(64, 1))

    def forward(self, x):
        return self.main(x).view(-1)


def test_tiny_infogan_learns_its_categorical_code():
    """A few hundred CPU steps on 10 synthetic clusters: the 10-way code's MI bound passes 90% of ln 10."""
    torch.manual_seed(0)
    spec = LatentCodeSpec.parse("noise:4,cat:10")
    centres = torch.randn(10, 16).sign() * 0.8
    data = (centres[torch.randint(10, (2000,))] + 0.1 * torch.randn(2000, 16)).clamp(-1, 1)
    g, d = TinyG(spec.input_dim), TinyD()
    info = InfoGAN.wrap(g, d, spec, layer="main.1", image_input=False)
    bce = nn.BCEWithLogitsLoss()
    opt_d = torch.optim.Adam(info.discriminator_parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(400):
        real = data[torch.randint(2000, (64,))]
        codes = info.sample(64)
        fake = g(info.inputs(codes))
        opt_d.zero_grad()
        loss_d = bce(d(real), torch.ones(64)) + bce(d(fake.detach()), torch.zeros(64))
        (loss_d + info.mi(codes).loss).backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = bce(d(fake), torch.ones(64))
        (loss_g + info.mi(codes).loss).backward()
        opt_g.step()
    g.eval(), d.eval(), info.q_head.eval()
    with torch.no_grad():
        codes = info.sample(1000)
        d(g(info.inputs(codes)))
        stats = info.mi(codes).stats
    assert stats["mi/c1"].item() > 0.9 * math.log(10)
    assert stats["acc/c1"].item() > 0.9


def test_every_public_name_is_the_object_of_its_module():
    """``gan_infogan_plugin.<name>`` (imported on first use) is the module's own object for every name in __all__."""
    for name in gan_infogan_plugin.__all__:
        module = importlib.import_module(f"gan_infogan_plugin.{gan_infogan_plugin._MODULE_OF[name]}")
        assert getattr(gan_infogan_plugin, name) is getattr(module, name), name
    assert sorted(gan_infogan_plugin.__all__) == sorted(gan_infogan_plugin._MODULE_OF)
