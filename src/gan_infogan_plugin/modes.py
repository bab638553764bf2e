"""Train / eval mode of networks, switched for a block and always restored."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics) and no gradients inside the block; each module is
    put back in the mode it was in afterwards, also when the block raises."""
    modes = [(m, m.training) for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.train(training)
