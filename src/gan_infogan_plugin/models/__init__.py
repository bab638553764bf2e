"""The paper's networks, registered under the ``gan_recipes.models`` entry-point group."""

from .base import GANModel, init_weights

__all__ = ["GANModel", "init_weights"]
