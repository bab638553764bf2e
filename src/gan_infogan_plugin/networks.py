"""A recipe's networks, regularizers and data, built one way for training and for evaluation.

:func:`build_networks` makes G and D from the registered model and hooks Q on D (through
:meth:`InfoGAN.wrap`) when the recipe has the MI term; :func:`build_regularizers` lists the terms
the training step sums (the MI term, InfoGAN-CR's contrastive term); :func:`load_data` builds the
recipe's data set at the model's size; :func:`settle_batchnorm` sets the BatchNorm statistics a run's
generator file is written with.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import registry
from .batchnorm import recalibrate
from .data.base import ImageData
from .errors import UserError
from .contrastive import ContrastiveRegularizer, ContrastiveSchedule
from .contrastive_term import ContrastiveTerm
from .invariance_term import InvarianceTerm
from .models import GANModel
from .recipes import DataConfig, Recipe
from .step import MITerm, Regularizer
from .wrap import InfoGAN


@dataclass
class Networks:
    """G and D of a recipe, initialised, on the CPU.

    ``discriminator`` is D alone for a plain GAN, else D and Q as one module
    (:class:`~gan_infogan_plugin.wrap.DiscriminatorWithQ`: one optimizer, one checkpoint entry);
    ``info`` holds Q and the MI term (None for a plain GAN).
    """

    model: GANModel
    channels: int
    generator: nn.Module
    discriminator: nn.Module
    info: InfoGAN | None

    @property
    def size(self) -> int:
        """The side of the model's square images, in pixels."""
        return self.model.image_size


def build_networks(recipe: Recipe) -> Networks:
    """The recipe's registered model, built with its settings; errors in them are UserErrors naming the key."""
    spec = recipe.codes
    model = registry.load("models", recipe.model.name)
    channels = recipe.model.channels or model.channels
    if recipe.augment.shift > (model.image_size - 1) // 2:
        raise UserError(f"{recipe.origin}: augment.shift = {recipe.augment.shift}: model {recipe.model.name!r} makes "
                        f"{model.image_size}-pixel images; a shift must stay under half their side "
                        f"(at most {(model.image_size - 1) // 2} pixels)")
    try:
        generator, discriminator = model.build(spec.input_dim, channels, **recipe.model.kwargs)
    except TypeError as exc:
        raise UserError(f"{recipe.origin}: model.kwargs: model {recipe.model.name!r} refuses them: {exc}") from None
    if not recipe.regularizer.enabled:
        return Networks(model, channels, generator, discriminator, None)
    q = recipe.q_head
    try:
        info = InfoGAN.wrap(
            generator, discriminator, spec, q.layer or model.q_layer, recipe.regularizer.lambda_cat,
            recipe.regularizer.lambda_cont, image_input=False, hidden=q.hidden, fixed_std=q.fixed_std,
            detach_trunk=q.detach_trunk, batchnorm=q.batchnorm, spectral_norm=q.spectral_norm,
            negative_slope=q.negative_slope,
        )
    except ValueError as exc:
        raise UserError(f"{recipe.origin}: q_head.layer: {exc}") from None
    return Networks(model, channels, generator, info.discriminator_with_q(), info)


def build_regularizers(recipe: Recipe, networks: Networks) -> list[Regularizer]:
    """The terms the training step adds to the GAN loss: InfoGAN's MI term when the recipe enables it,
    then InfoGAN-CR's contrastive term when ``contrastive.weight > 0`` (its CR network initialised
    from the global RNG, after G and D), then the invariance term when ``invariance.weight > 0``."""
    terms: list[Regularizer] = []
    if networks.info is not None:
        terms.append(MITerm(networks.info.regularizer, recipe.regularizer.cont_warmup))
    cr = recipe.contrastive
    if cr.enabled:
        schedule = ContrastiveSchedule(cr.weight, cr.start, cr.gap_start, cr.gap_decrease, cr.gap_every, cr.gap_times)
        regularizer = ContrastiveRegularizer(recipe.codes, networks.channels, networks.size, share_categorical=cr.share_categorical)
        terms.append(ContrastiveTerm(regularizer, schedule, cr.lr, tuple(cr.betas), recipe.trainer.seed))
    inv = recipe.invariance
    if inv.enabled:
        names = [code.name for code in recipe.codes.categorical]
        terms.append(InvarianceTerm(names, inv.weight, inv.degrees, inv.zoom, recipe.trainer.seed, inv.shear))
    return terms


def settle_batchnorm(recipe: Recipe, generator: nn.Module, discriminator: nn.Module) -> None:
    """G's and D+Q's BatchNorm statistics recomputed from ``trainer.bn_batches`` generated batches
    (seeded with ``trainer.seed``), as at the end of a run and in ``gan-recipes export``; nothing at 0."""
    t = recipe.trainer
    if t.bn_batches:
        recalibrate(generator, discriminator, recipe.codes, batches=t.bn_batches, seed=t.seed)


def load_data(cfg: DataConfig, networks: Networks) -> ImageData:
    """The registered data set ``cfg.name``, its images at the networks' size and channel count."""
    return registry.load("datasets", cfg.name)(cfg, networks.size, networks.channels)
