import pytest
import torch
from torch import nn

from gan_infogan_plugin import InfoGAN, LatentCodeSpec, QHead
from gan_infogan_plugin.models.dcgan import Discriminator, Generator

SPEC = LatentCodeSpec.parse("noise:8,cat:10,cont:2")


def test_output_shapes_learned_and_fixed_sigma():
    q = QHead(SPEC, in_features=20)
    out = q(torch.randn(6, 20))
    assert [t.shape for t in out.cat_logits] == [(6, 10)]
    assert out.cont_mean.shape == (6, 2) and out.cont_log_std.shape == (6, 2)
    fixed = QHead(SPEC, fixed_std=True)(torch.randn(6, 4, 2, 2))  # lazy size, conv maps flattened
    assert fixed.cont_log_std is None and fixed.cont_mean.shape == (6, 2)


def test_paper_shape():
    q = QHead(SPEC, in_features=1024)
    layers = list(q.net)
    assert isinstance(layers[0], nn.Linear) and layers[0].out_features == 128
    assert isinstance(layers[1], nn.BatchNorm1d)
    assert isinstance(layers[2], nn.LeakyReLU) and layers[2].negative_slope == 0.1
    assert layers[3].out_features == 10 + 2 * 2


def test_infogan_cr_shape_spectral_norm_without_batchnorm():
    """InfoGAN-CR's Q: FC 128 - LeakyReLU(0.2) - FC, spectral norm on both, no BatchNorm; sized lazily by
    wrap, whose Q then has a largest singular value of 1 in each layer (after the power iterations settle)."""
    q = QHead(SPEC, in_features=64, batchnorm=False, spectral_norm=True, negative_slope=0.2)
    first, act, last = q.net
    assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2
    assert all(nn.utils.parametrize.is_parametrized(layer, "weight") for layer in (first, last))
    g, d = Generator(SPEC.input_dim, 3, width=8), Discriminator(3, width=8)
    info = InfoGAN.wrap(g, d, SPEC, layer="main.10", batchnorm=False, spectral_norm=True)
    layers = [info.q_head.net[0], info.q_head.net[-1]]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in info.q_head.modules())
    assert all(nn.utils.parametrize.is_parametrized(layer, "weight") for layer in layers)
    names = {name for name, _ in d.named_parameters()}  # Q's weights, as parametrized, are D's parameters
    assert any(name.endswith("net.0.parametrizations.weight.original") for name in names)
    for _ in range(30):  # power iteration runs in training mode, one step a pass
        d(g(SPEC.sample(4).flat))
        info.q_head()
    for layer in layers:
        assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=0.02)
    state = d.state_dict()
    again = Discriminator(3, width=8)
    InfoGAN.wrap(Generator(SPEC.input_dim, 3, width=8), again, SPEC, layer="main.10", batchnorm=False, spectral_norm=True)
    again.load_state_dict(state)  # a checkpoint of D with this Q loads into D wrapped the same way


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError, match=r"no layer 'main.99'.*main\.10"):
        QHead.attach(Discriminator(3, width=8), "main.99", SPEC)


def test_hook_captures_once_per_pass_and_removes():
    d = Discriminator(3, width=8)
    calls = []
    d.register_forward_pre_hook(lambda m, i: calls.append(1))
    q = QHead.attach(d, "main.10", SPEC, example_input=torch.randn(2, 3, 64, 64))
    calls.clear()
    verdict = d(torch.randn(5, 3, 64, 64))
    out = q()
    assert verdict.shape == (5,) and out.cat_logits[0].shape == (5, 10) and len(calls) == 1
    q.remove()
    d(torch.randn(5, 3, 64, 64))
    assert q.features is None
    with pytest.raises(RuntimeError, match="no features"):
        q()


def test_hook_before_inplace_activation_keeps_the_layer_output():
    d = Discriminator(3, width=8)  # main.9 is a BatchNorm followed by LeakyReLU(inplace=True)
    q = QHead.attach(d, "main.9", SPEC)
    seen = {}

    def record(module, inputs, output):  # returns None, so the output is not replaced
        seen["bn"] = output.detach().clone()

    d.main[9].register_forward_hook(record)
    for mode in ("train", "train", "eval", "eval"):  # the first pass of a mode learns that copies are needed
        d.train(mode == "train")
        d(torch.randn(4, 3, 64, 64))
        assert (seen["bn"] < 0).any()  # the activation would have changed these values in place
        assert torch.equal(q.features, seen["bn"])


def test_q_reads_the_layer_output_itself_when_nothing_changes_it_later():
    d = Discriminator(3, width=8)  # main.10, the last LeakyReLU: nothing after it works in place
    q = QHead.attach(d, "main.10", SPEC)
    seen = {}
    d.main[10].register_forward_hook(lambda m, i, out: seen.update(out=out))
    d(torch.randn(4, 3, 64, 64))
    assert q.features is not seen["out"] and torch.equal(q.features, seen["out"])  # a first pass copies
    d(torch.randn(4, 3, 64, 64))
    assert q.features is seen["out"]  # then no copy
    with torch.inference_mode():
        d(torch.randn(4, 3, 64, 64))
    assert q.features is not seen["out"] and torch.equal(q.features, seen["out"])


class _SometimesInPlace(nn.Module):
    """A D whose forward changes the hooked layer's output in place only when ``relu_in_place`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.features, self.head = nn.Linear(6, 8), nn.Linear(8, 1)
        self.relu_in_place = False

    def forward(self, x):
        h = self.features(x)
        h = torch.relu_(h) if self.relu_in_place else torch.relu(h)
        return self.head(h).squeeze(1)


def test_a_pass_that_changes_the_features_unlike_earlier_ones_is_refused():
    d = _SometimesInPlace()
    q = QHead.attach(d, "features", SPEC, example_input=torch.randn(2, 6))  # an eval-mode pass
    d(torch.randn(3, 6))
    d(torch.randn(3, 6))  # learned in training mode: no copy needed
    d.relu_in_place = True
    with pytest.raises(RuntimeError, match=r"_SometimesInPlace\.features: its output was changed in place"):
        d(torch.randn(3, 6))
    x = torch.randn(3, 6)
    d(x)  # copies from now on: Q reads the layer's output, negative values included
    assert torch.equal(q.features, d.features(x))


def test_mi_gradient_reaches_generator_q_and_trunk():
    g, d = Generator(16, 3, width=8), Discriminator(3, width=8)
    info = InfoGAN.wrap(g, d, "noise:4,cat:10,cont:2", layer="main.10")
    codes = info.sample(4)
    d(g(info.inputs(codes)))
    info.mi(codes).loss.backward()
    assert g.main[0].weight.grad.abs().sum() > 0
    assert info.q_head.net[0].weight.grad.abs().sum() > 0
    assert d.main[0].weight.grad.abs().sum() > 0  # the shared trunk
    assert d.main[11].weight.grad is None  # D's own output layer is not in Q's path


def test_detach_trunk_keeps_the_mi_gradient_out_of_d():
    g, d = Generator(16, 3, width=8), Discriminator(3, width=8)
    info = InfoGAN.wrap(g, d, "noise:4,cat:10,cont:2", layer="main.10", detach_trunk=True)
    codes = info.sample(4)
    fake = g(info.inputs(codes))
    d(fake.detach())  # D's update: only Q learns from the MI term
    info.mi(codes).loss.backward()
    assert info.q_head.net[0].weight.grad.abs().sum() > 0
    q_params = set(info.q_head.parameters())
    assert all(p.grad is None for p in d.parameters() if p not in q_params)  # D's own layers (Q lives on D)
    d(fake)  # G's update: the MI gradient still reaches G through the trunk
    info.mi(codes).loss.backward()
    assert g.main[0].weight.grad.abs().sum() > 0
