"""gan-infogan-plugin: the InfoGAN objective for any PyTorch GAN.

The core (``codes``, ``qhead``, ``regularizer``, ``wrap``, ``augment``, ``modes``) imports only torch.
"""

from .augment import random_shift
from .codes import CategoricalCode, ContinuousCode, LatentBatch, LatentCodeSpec
from .qhead import QHead, QOutput
from .regularizer import MIRegularizer, MIResult
from .wrap import DiscriminatorWithQ, InfoGAN

__version__ = "0.1.0"

__all__ = [
    "CategoricalCode",
    "ContinuousCode",
    "DiscriminatorWithQ",
    "InfoGAN",
    "LatentBatch",
    "LatentCodeSpec",
    "MIRegularizer",
    "MIResult",
    "QHead",
    "QOutput",
    "random_shift",
]
