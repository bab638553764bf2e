"""Q: the head that predicts the code c from the discriminator's features.

Q shares the discriminator's trunk. :meth:`QHead.attach` puts a forward hook on one submodule
of an unmodified discriminator, so a single discriminator pass yields both D's verdict and the
features Q reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .codes import LatentCodeSpec
from .modes import evaluating


@dataclass
class QOutput:
    """Q's prediction for a batch of N images.

    cat_logits: one (N, k) tensor of logits per categorical code (no softmax applied);
    cont_mean: (N, num_continuous); cont_log_std: (N, num_continuous), or None for a fixed sigma = 1.
    """

    cat_logits: tuple[torch.Tensor, ...]
    cont_mean: torch.Tensor
    cont_log_std: torch.Tensor | None


class QHead(nn.Module):
    """Features (N, ...) in, :class:`QOutput` out.

    The paper's shape by default: FC ``hidden`` - BatchNorm - LeakyReLU(0.1) - FC. Conv feature
    maps are flattened. ``in_features=None`` infers the input size at the first call.
    ``fixed_std=True`` predicts only the Gaussian means (sigma = 1).

    ``detach_trunk=True`` keeps the MI term from training the shared discriminator layers: when the
    discriminator's input needs no gradient (D's update, on real or ``fake.detach()``), Q reads
    detached features, so only Q learns; when it does (G's update), the gradient still flows
    through the trunk to G. Without an attached discriminator, features are always detached.
    """

    def __init__(
        self,
        spec: LatentCodeSpec,
        hidden: int = 128,
        fixed_std: bool = False,
        in_features: int | None = None,
        negative_slope: float = 0.1,
        detach_trunk: bool = False,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.fixed_std = fixed_std
        self.detach_trunk = detach_trunk
        self._sizes = [c.num_classes for c in spec.categorical]
        n_cont = len(spec.continuous)
        out = sum(self._sizes) + n_cont * (1 if fixed_std else 2)
        first = nn.Linear(in_features, hidden) if in_features else nn.LazyLinear(hidden)
        self.net = nn.Sequential(first, nn.BatchNorm1d(hidden), nn.LeakyReLU(negative_slope), nn.Linear(hidden, out))
        self.features: torch.Tensor | None = None
        self._input_needs_grad = False
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def forward(self, features: torch.Tensor | None = None) -> QOutput:
        """Q's output for ``features``, or for those the hook captured in the last D pass."""
        if features is None:
            if self.features is None:
                raise RuntimeError("QHead has no features: run the discriminator first, or pass features")
            features = self.features
        if self.detach_trunk and not (self._handles and self._input_needs_grad):
            features = features.detach()
        out = self.net(features.flatten(1))
        n_cat = sum(self._sizes)
        n_cont = len(self.spec.continuous)
        cat_logits = tuple(torch.split(out[:, :n_cat], self._sizes, dim=1)) if self._sizes else ()
        mean = out[:, n_cat : n_cat + n_cont]
        log_std = None if self.fixed_std else out[:, n_cat + n_cont :]
        return QOutput(cat_logits, mean, log_std)

    # ----------------------------------------------------------------- the hook
    @classmethod
    def attach(
        cls,
        discriminator: nn.Module,
        layer: str,
        spec: LatentCodeSpec,
        example_input: torch.Tensor | None = None,
        **kwargs,
    ) -> "QHead":
        """A new QHead fed by a forward hook on ``discriminator``'s submodule ``layer``.

        ``layer`` is a dotted name as in ``named_modules()`` ("main.10", "trunk.conv2").
        With ``example_input`` (a small image batch) the discriminator runs once in eval mode
        without gradients to size Q's first layer, so Q's parameters exist before an optimizer
        is built.
        """
        head = cls(spec, **kwargs)
        head.hook(discriminator, layer)
        if example_input is not None:
            head.materialize(discriminator, example_input)
        return head

    def hook(self, discriminator: nn.Module, layer: str) -> None:
        """Capture the output of ``discriminator.<layer>`` on every forward pass."""
        modules = dict(discriminator.named_modules())
        if layer not in modules or layer == "":
            valid = ", ".join(name for name in modules if name)
            raise ValueError(f"{type(discriminator).__name__} has no layer {layer!r}; valid layers: {valid}")
        self.remove()
        self._handles = [
            discriminator.register_forward_pre_hook(self._note_input),
            modules[layer].register_forward_hook(self._capture),
        ]

    def _note_input(self, module: nn.Module, inputs) -> None:
        self._input_needs_grad = any(torch.is_tensor(x) and x.requires_grad for x in inputs)

    def _capture(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        # A clone, so an in-place activation after the hooked layer cannot change what Q reads.
        self.features = output.clone()

    def remove(self) -> None:
        """Remove the hook; the discriminator is as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.features = None

    def materialize(self, discriminator: nn.Module, example_input: torch.Tensor) -> None:
        """Run D and Q once in eval mode on ``example_input`` to create lazy parameters."""
        try:
            with evaluating(discriminator, self):
                discriminator(example_input)
                self()
        finally:
            self.features = None
