"""The runner's CPU settings: what makes a training loop on a CPU as fast as the hardware allows.

:func:`cpu_settings` is the block :func:`~gan_infogan_plugin.train.train` runs its loop in; the
benchmarks give their bare loops the same two settings, so that both sides of a comparison get them.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager
from typing import Iterator

import torch

# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit systems.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20
_TRIM_THRESHOLD = 1 << 30


@contextmanager
def cpu_settings(device: torch.device) -> Iterator[None]:
    """On CPU: denormal floats count as zero inside the block (tiny Adam moments made steps up to 3x
    slower; torch's default, off, is restored after), and the process keeps the memory it frees
    (:func:`keep_freed_memory`, for the rest of the process). Other devices: nothing changes."""
    if device.type != "cpu":
        yield
        return
    keep_freed_memory()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def keep_freed_memory() -> bool:
    """Ask the C library to reuse freed blocks of up to 32 MiB instead of returning them to the system.

    glibc's defaults hand a large freed block (a 1024 x 6272 weight gradient of the MNIST nets is
    25 MiB) back to the kernel and map fresh zeroed pages at the next step: about 6,300 page faults a
    step on the MNIST nets, 5-10% of a CPU step. PyTorch's CPU tuning guide suggests jemalloc or
    tcmalloc for this; glibc's own ``mallopt`` does the same here without a preload. The resident
    memory stays at its peak instead of shrinking between steps. Returns whether the C library took
    both settings (False on macOS, Windows and C libraries without ``mallopt``).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) & bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
