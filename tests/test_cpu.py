"""cpu.py: the runner's CPU settings do what they say (denormals flushed inside the block and restored
after; freed memory reused instead of faulted in again from the kernel)."""

from __future__ import annotations

import platform
import resource

import pytest
import torch
from torch import nn

from gan_infogan_plugin.cpu import cpu_settings, keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
DENORMAL = 1e-40  # below float32's smallest normal number (1.18e-38), above its smallest denormal


def test_denormals_count_as_zero_inside_the_block_and_not_after():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    with cpu_settings(torch.device("cpu")):
        assert torch.tensor(DENORMAL).item() == 0.0
    assert torch.tensor(DENORMAL).item() == pytest.approx(DENORMAL, rel=1e-2)


def test_other_devices_change_nothing():
    with cpu_settings(torch.device("meta")):
        assert torch.tensor(DENORMAL).item() != 0.0


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in():
    # A layer the size of the MNIST nets' largest (its weight gradient: 25 MiB, freed at every zero_grad).
    # With glibc's defaults four steps cost about 44,000 page faults (measured in a fresh process).
    assert keep_freed_memory()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 6272), nn.ReLU(), nn.Linear(6272, 1))
    optimizer = torch.optim.Adam(net.parameters())
    x = torch.randn(8, 64)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        net(x).sum().backward()
        optimizer.step()

    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        step()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 1000
