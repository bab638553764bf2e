"""Issue 12: wrapping a DCGAN shaped like the PyTorch examples' (``self.main = nn.Sequential``,
LeakyReLU(inplace=True)): Q is part of D, wrappers are seen through or refused, and misuse is loud."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from dcgan_like import Q_LAYER, Discriminator, Generator
from lightning_fabric import Fabric
from torch import nn

from gan_infogan_plugin import InfoGAN, LatentCodeSpec

SPEC = "noise:4,cat:10,cont:2"  # G takes 16 inputs
DATA = Path(__file__).parent / "data"


def wrapped(**q_kwargs):
    torch.manual_seed(0)
    g, d = Generator(16), Discriminator()
    return g, d, InfoGAN.wrap(g, d, SPEC, layer=Q_LAYER, **q_kwargs)


def images(n: int) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16) * 2 - 1


# ----------------------------------------------------------------- 1. Q is part of D
def test_q_travels_with_d_and_remove_takes_it_away():
    g, d = Generator(16), Discriminator()
    before = set(d.state_dict())
    info = InfoGAN.wrap(g, d, SPEC, layer=Q_LAYER)
    q_params = set(info.q_head.parameters())
    assert q_params and q_params <= set(d.parameters())
    assert {k for k in d.state_dict() if k not in before} == {f"infogan_q.{k}" for k in info.q_head.state_dict()}

    codes = info.sample(4)
    d(g(info.inputs(codes)))
    info.mi(codes).loss.backward()
    assert info.q_head.net[0].weight.grad.abs().sum() > 0
    d.zero_grad()  # the scripts' own netD.zero_grad() clears Q's gradients too
    assert all(p.grad is None for p in q_params)

    g.double(), d.double()  # moving D after wrapping moves Q
    assert info.q_head.net[0].weight.dtype == torch.float64
    d(g(info.inputs(codes).double()))
    assert torch.isfinite(info.mi(codes).loss)

    info.remove()
    assert set(d.state_dict()) == before and not q_params & set(d.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in d.modules())


def test_a_second_q_is_refused_and_rehooking_keeps_one():
    g, d, info = wrapped()
    with pytest.raises(ValueError, match="already holds a Q head: remove it first"):
        InfoGAN.wrap(g, d, SPEC, layer=Q_LAYER)
    info.q_head.hook(d, "main.1")  # the same Q moved to another layer
    assert [name for name, m in d.named_modules() if m is info.q_head] == ["infogan_q"]
    assert len(d.main[1]._forward_hooks) == 1 and not d.main[4]._forward_hooks


def test_optimizers_and_state_dicts_get_each_parameter_once():
    g, d, info = wrapped()
    dq = info.discriminator_with_q()
    opt = torch.optim.Adam(info.discriminator_parameters())  # would raise on a duplicate parameter
    assert len(opt.param_groups[0]["params"]) == len(list(d.parameters())) == len(list(dq.parameters()))
    state = dq.state_dict()
    assert set(state) == {f"discriminator.{k}" for k in d.state_dict()}
    pointers = [t.data_ptr() for t in state.values() if t.numel()]
    assert len(pointers) == len(set(pointers))


def test_a_discriminator_with_q_checkpoint_from_before_loads():
    """tests/data/discriminator_with_q_031106f.pt: ``DiscriminatorWithQ.state_dict()`` (keys ``discriminator.*``,
    ``q_head.*``) written at commit 031106f, when Q lived beside D, for these nets (seed 0, hidden=8, three
    training-mode passes), with the eval-mode outputs on the saved images."""
    saved = torch.load(DATA / "discriminator_with_q_031106f.pt", weights_only=True)
    assert any(k.startswith("q_head.") for k in saved["state_dict"])
    torch.manual_seed(1)  # other initial weights: everything must come from the file
    _, _, info = wrapped(hidden=8)
    dq = info.discriminator_with_q()
    dq.load_state_dict(saved["state_dict"])
    dq.eval()
    with torch.no_grad():
        verdict, q = dq(saved["images"])
    # to float32 rounding: the file was written on another CPU, whose matrix kernels round differently
    # (bit-equal on the Intel machine, 1 ulp off on an AMD one); weights from anywhere else differ by far more
    close = dict(rtol=1e-5, atol=1e-6)
    assert torch.allclose(verdict, saved["verdict"], **close)
    assert torch.allclose(q.cat_logits[0], saved["cat_logits"], **close) and torch.allclose(q.cont_mean, saved["cont_mean"], **close)
    assert torch.allclose(q.cont_log_std, saved["cont_log_std"], **close)


def test_load_state_dict_carries_q_and_a_state_dict_without_q_says_why():
    _, d1, info1 = wrapped()
    nn.init.normal_(info1.q_head.net[0].weight)
    _, d2, info2 = wrapped()
    d2.load_state_dict(d1.state_dict())
    assert torch.equal(info2.q_head.net[0].weight, info1.q_head.net[0].weight)

    plain = Discriminator().state_dict()  # saved before wrapping
    with pytest.raises(RuntimeError, match=r"infogan_q\.\* \(InfoGAN's Q: this state dict was saved before Q was attached; "
                       r"load it into D before InfoGAN.wrap, or load it with strict=False") as err:
        d2.load_state_dict(plain)
    assert "infogan_q.net" not in str(err.value)  # one entry for Q, not a list of its keys
    result = d2.load_state_dict(plain, strict=False)  # D's weights, Q kept
    assert len(result.missing_keys) == 1 and not result.unexpected_keys
    assert torch.equal(d2.main[0].weight, plain["main.0.weight"])


def test_fabric_setup_after_wrap_trains_and_checkpoints_q(tmp_path):
    fabric = Fabric(accelerator="cpu", devices=1)
    g, d, info = wrapped()
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)  # the script's own line: Q's parameters are in it
    d_setup, opt = fabric.setup(d, opt)
    codes = info.sample(4)
    fake = g(info.inputs(codes))
    before = info.q_head.net[0].weight.detach().clone()
    fabric.backward(nn.functional.binary_cross_entropy(d_setup(fake.detach()), torch.zeros(4)) + info.mi(codes).loss)
    opt.step()
    assert not torch.equal(info.q_head.net[0].weight, before)
    fabric.save(tmp_path / "ckpt", {"discriminator": d_setup})

    _, d2, info2 = wrapped()
    d2_setup = fabric.setup(d2)
    fabric.load(tmp_path / "ckpt", {"discriminator": d2_setup})
    assert torch.equal(info2.q_head.net[0].weight, info.q_head.net[0].weight)


def test_a_sequential_discriminator_holds_q_on_the_hooked_layer():
    d = nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.LeakyReLU(0.2, inplace=True), nn.Linear(32, 1))
    x = torch.rand(5, 3, 4, 4)
    expected = d(x)
    g = nn.Sequential(nn.Flatten(), nn.Linear(16, 48), nn.Unflatten(1, (3, 4, 4)))
    info = InfoGAN.wrap(g, d, SPEC, layer="2")
    assert info.q_head is d[2].infogan_q and len(d) == 4  # Sequential's forward does not run Q
    assert torch.equal(d(x), expected)
    assert "2.infogan_q.net.0.weight" in d.state_dict()


@pytest.fixture
def process_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_ddp_syncs_q_with_d_and_wrapping_after_ddp_is_refused(process_group):
    g, d, info = wrapped()
    ddp = nn.parallel.DistributedDataParallel(d)
    assert set(info.q_head.parameters()) <= set(ddp.parameters())
    bce = nn.BCELoss()
    for _ in range(2):  # the README's DDP pattern: D's real pass adds no backward of its own
        codes = info.sample(4)
        fake = g(info.inputs(codes))
        with ddp.no_sync():
            bce(ddp(images(4)), torch.ones(4)).backward()
        (bce(ddp(fake.detach()), torch.zeros(4)) + info.mi(codes).loss).backward()
        (bce(ddp(fake), torch.ones(4)) + info.mi(codes).loss).backward()
    assert info.q_head.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="already wrapped by DistributedDataParallel: attach Q first"):
        InfoGAN.wrap(g, ddp, SPEC, layer=Q_LAYER)


# ----------------------------------------------------------------- 2. wrappers
def test_wrapping_after_fabric_setup_is_refused_in_one_line():
    fabric = Fabric(accelerator="cpu", devices=1)
    g, d = Generator(16), Discriminator()
    d_setup = fabric.setup(d)
    with pytest.raises(ValueError, match=r"already wrapped by Fabric .*InfoGAN.wrap\(G, D, \.\.\.\) before fabric.setup") as err:
        InfoGAN.wrap(g, d_setup, SPEC, layer=Q_LAYER)
    assert "\n" not in str(err.value)
    assert not hasattr(d, "infogan_q") and not any(m._forward_hooks for m in d.modules())


def test_wrap_sees_through_torch_compile():
    g, d = Generator(16), Discriminator()
    compiled = torch.compile(d)  # an OptimizedModule holding d as _orig_mod; nothing is compiled here
    info = InfoGAN.wrap(g, compiled, SPEC, layer=Q_LAYER)  # the layer as d names it
    assert info.discriminator is d and d.infogan_q is info.q_head
    assert set(info.q_head.parameters()) <= set(compiled.parameters())
    assert "_orig_mod.infogan_q.net.0.weight" in compiled.state_dict()


# ----------------------------------------------------------------- 3. the pass Q reads
def test_discriminate_gives_verdict_and_q_from_one_pass():
    g, d, info = wrapped()
    calls = []
    d.register_forward_pre_hook(lambda m, i: calls.append(1))
    codes = info.sample(4)
    fake = g(info.inputs(codes))
    verdict, q = info.discriminate(fake)
    assert len(calls) == 1 and verdict.shape == (4,) and q.cat_logits[0].shape == (4, 10)
    d(images(4))  # a later pass does not change what was already read
    info.mi(codes, q).loss.backward()
    assert g.main[0].weight.grad.abs().sum() > 0


def test_mi_refuses_a_pass_without_gradients_or_on_another_batch():
    g, d, info = wrapped()
    codes = info.sample(4)
    fake = g(info.inputs(codes))
    with torch.no_grad():
        d(fake)  # G's update with the fake pass under no_grad: G would get no MI gradient
    with pytest.raises(ValueError, match=r"ran under torch.no_grad\(\), so the MI loss cannot train G") as err:
        info.mi(codes)
    assert "\n" not in str(err.value)
    with torch.no_grad():
        assert "mi" in info.mi(codes).stats  # reading stats without gradients is fine

    d(fake)
    with torch.no_grad():
        d(images(4))  # the wrong order: a later real pass under no_grad
    with pytest.raises(ValueError, match="torch.no_grad"):
        info.mi(codes)
    d(images(3))
    with pytest.raises(ValueError, match="saw 3 images but the codes are for 4"):
        info.mi(codes)
    with torch.no_grad():
        _, q = info.discriminate(fake)
    with pytest.raises(ValueError, match=r"info.mi\(codes, q\): the discriminator pass ran under torch.no_grad"):
        info.mi(codes, q)


# ----------------------------------------------------------------- 4. G against the spec
def test_wrap_checks_g_against_the_spec_and_leaves_d_as_it_was():
    spec = LatentCodeSpec.parse("noise:100,cat:10,cont:2")
    d = Discriminator()
    with pytest.raises(ValueError) as err:
        InfoGAN.wrap(Generator(100), d, spec, layer=Q_LAYER)
    assert str(err.value) == 'G takes 100 inputs; the spec "noise:100,cat:10,cont:2" needs 112: build G with spec.input_dim'
    assert not hasattr(d, "infogan_q") and not any(m._forward_hooks or m._forward_pre_hooks for m in d.modules())
    with pytest.raises(ValueError, match=r"G fails on the spec's input of shape \(2, 112\): .*pass image_input=True"):
        InfoGAN.wrap(Generator(spec.input_dim), d, spec, layer=Q_LAYER, image_input=False)
    assert InfoGAN.wrap(Generator(spec.input_dim), d, spec, layer=Q_LAYER).spec == spec


# ----------------------------------------------------------------- 5. held-out statistics
def test_training_stats_run_ahead_of_held_out_stats():
    """Q trained on one batch: its ``mi.stats`` there say it knows the code; the held-out form says it does not."""
    g, d, info = wrapped()
    opt = torch.optim.Adam(info.q_head.parameters(), lr=1e-2)
    codes = info.sample(16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        d(g(info.inputs(codes)))  # fixed G and D: only Q learns, so the pass can be reused
    for _ in range(60):
        opt.zero_grad()
        mi = info.regularizer(info.q_head(), codes)
        mi.loss.backward()
        opt.step()
    with torch.no_grad():
        train_acc = info.mi(codes).stats["acc/c1"]
    d_stats = {k: v.clone() for k, v in d.state_dict().items() if "running" in k}
    features = info.q_head.features
    held = info.held_out_stats(512, generator=torch.Generator().manual_seed(1))
    assert set(held) == {"mi/c1", "acc/c1", "mi/c2", "mse/c2", "mi/c3", "mse/c3", "mi"}
    assert train_acc > 0.9 and held["acc/c1"] < 0.5 and not held["mi"].requires_grad
    assert all(torch.equal(d.state_dict()[k], v) for k, v in d_stats.items())  # eval mode: statistics untouched
    assert d.training and g.training and info.q_head.training and info.q_head.features is features
