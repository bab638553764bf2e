"""gan-infogan-plugin: the InfoGAN objective for any PyTorch GAN.

The core (``codes``, ``qhead``, ``regularizer``, ``contrastive``, ``invariance``, ``wrap``, ``augment``, ``modes``)
imports only torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .augment import random_affine, random_shift
    from .codes import CategoricalCode, ContinuousCode, LatentBatch, LatentCodeSpec
    from .contrastive import ContrastiveRegularizer, ContrastiveResult, ContrastiveSchedule
    from .invariance import paired_cluster_mi
    from .qhead import QHead, QOutput
    from .regularizer import MIRegularizer, MIResult
    from .wrap import DiscriminatorWithQ, InfoGAN

__version__ = "0.1.0"

# The public names, imported on first use (PEP 562): `gan-recipes --help` and `list` then load no torch.
_MODULE_OF = {
    **dict.fromkeys(("random_affine", "random_shift"), "augment"),
    "paired_cluster_mi": "invariance",
    **dict.fromkeys(("CategoricalCode", "ContinuousCode", "LatentBatch", "LatentCodeSpec"), "codes"),
    **dict.fromkeys(("ContrastiveRegularizer", "ContrastiveResult", "ContrastiveSchedule"), "contrastive"),
    **dict.fromkeys(("QHead", "QOutput"), "qhead"),
    **dict.fromkeys(("MIRegularizer", "MIResult"), "regularizer"),
    **dict.fromkeys(("DiscriminatorWithQ", "InfoGAN"), "wrap"),
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])

__all__ = [
    "CategoricalCode",
    "ContinuousCode",
    "ContrastiveRegularizer",
    "ContrastiveResult",
    "ContrastiveSchedule",
    "DiscriminatorWithQ",
    "InfoGAN",
    "LatentBatch",
    "LatentCodeSpec",
    "MIRegularizer",
    "MIResult",
    "QHead",
    "QOutput",
    "paired_cluster_mi",
    "random_affine",
    "random_shift",
]
