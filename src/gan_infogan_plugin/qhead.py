"""Q: the head that predicts the code c from the discriminator's features.

Q shares the discriminator's trunk. :meth:`QHead.attach` puts a forward hook on one submodule
of the discriminator, so a single discriminator pass yields both D's verdict and the features Q
reads, and registers Q on D as the submodule ``infogan_q`` (as torch's spectral norm and
parametrizations live on the module they change): ``D.to()``, ``D.parameters()``,
``D.state_dict()``, ``D.zero_grad()``, ``fabric.setup(D)`` and DDP include Q, and
:meth:`QHead.remove` takes it away again. D's class and forward are not edited.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .codes import LatentCodeSpec
from .modes import evaluating

Q_NAME = "infogan_q"
# Modules whose forward runs (or whose owner iterates) every child: Q cannot be registered on them.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class QOutput(NamedTuple):
    """Q's prediction for a batch of N images.

    cat_logits: one (N, k) tensor of logits per categorical code (no softmax applied);
    cont_mean: (N, num_continuous); cont_log_std: (N, num_continuous), or None for a fixed sigma = 1.
    A named tuple: Fabric's wrapper walks a module's outputs on every call, and a dataclass it copies.
    """

    cat_logits: tuple[torch.Tensor, ...]
    cont_mean: torch.Tensor
    cont_log_std: torch.Tensor | None


def unwrap_discriminator(discriminator: nn.Module) -> nn.Module:
    """The user's own module inside a ``torch.compile`` wrapper (``_orig_mod``).

    Wrappers that have already taken D's parameters (Fabric's setup, DDP, FSDP, DataParallel) are
    refused in one line: Q must join D before them, or it would miss D's optimizer and gradient sync.
    """
    while isinstance(getattr(discriminator, "_orig_mod", None), nn.Module):
        discriminator = discriminator._orig_mod
    wrapper = _setup_wrapper(discriminator)
    if wrapper:
        raise ValueError(
            f"the discriminator is already wrapped by {wrapper}: attach Q first (InfoGAN.wrap(G, D, ...) before "
            "fabric.setup / DDP / FSDP), so Q's parameters go with D's to the device, the optimizer and the gradient sync"
        )
    return discriminator


def _setup_wrapper(module: nn.Module) -> str | None:
    """What wraps ``module`` for training, by duck typing (no lightning import), or None."""
    if isinstance(module._modules.get("_forward_module"), nn.Module):
        return f"Fabric ({type(module).__name__}, from fabric.setup)"
    if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel, *_fsdp_types())):
        return type(module).__name__
    return None


def _fsdp_types() -> tuple[type, ...]:
    """FSDP's wrapper classes (FSDP1's module and FSDP2's ``fully_shard`` base), where torch has them."""
    try:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    except ImportError:  # a torch built without distributed support
        return ()
    return FSDPModule, FullyShardedDataParallel


def _note_missing_q(module: "QHead", state_dict, prefix, *_) -> None:
    """Before Q loads: a state dict of D saved before Q was attached has no key under Q's prefix."""
    module._missing_prefix = prefix if prefix and not any(key.startswith(prefix) for key in state_dict) else None


def _explain_missing_q(module: "QHead", incompatible_keys) -> None:
    """After Q loads: its missing keys become one entry saying why, in ``load_state_dict``'s error or result."""
    prefix, module._missing_prefix = module._missing_prefix, None
    if prefix:
        missing = incompatible_keys.missing_keys
        missing[:] = [key for key in missing if not key.startswith(prefix)]
        missing.append(f"{prefix}* (InfoGAN's Q: this state dict was saved before Q was attached; load it into D "
                       "before InfoGAN.wrap, or load it with strict=False to keep Q as it is)")


class QHead(nn.Module):
    """Features (N, ...) in, :class:`QOutput` out.

    The paper's shape by default: FC ``hidden`` - BatchNorm - LeakyReLU(0.1) - FC. Conv feature
    maps are flattened. ``in_features=None`` infers the input size at the first call.
    ``fixed_std=True`` predicts only the Gaussian means (sigma = 1). ``batchnorm=False`` drops the
    BatchNorm and ``spectral_norm=True`` puts spectral norm on both FC layers (InfoGAN-CR's Q: FC 128 -
    LeakyReLU(0.2) - FC, spectral norm, no BatchNorm); with ``in_features=None`` the norm is added
    once the first layer is sized (:meth:`materialize`, which :meth:`InfoGAN.wrap` runs).

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
        batchnorm: bool = True,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.fixed_std = fixed_std
        self.detach_trunk = detach_trunk
        self.spectral_norm = spectral_norm
        self._sizes = [c.num_classes for c in spec.categorical]
        n_cont = len(spec.continuous)
        out = sum(self._sizes) + n_cont * (1 if fixed_std else 2)
        first = nn.Linear(in_features, hidden) if in_features else nn.LazyLinear(hidden)
        norm = [nn.BatchNorm1d(hidden)] if batchnorm else []
        self.net = nn.Sequential(first, *norm, nn.LeakyReLU(negative_slope), nn.Linear(hidden, out))
        if in_features:
            self._add_spectral_norm()
        self.features: torch.Tensor | None = None
        self.captured_with_grad = False  # whether autograd recorded the pass that produced ``features``
        self._input_needs_grad = False
        self._mode = True  # D's training flag in the current pass
        # Whether Q must read a copy of the hooked output, per D mode (training or not): None until a
        # pass has shown whether D changes that output in place after the hook (see _capture).
        self._copy: dict[bool, bool | None] = {True: None, False: None}
        self._raw: tuple[torch.Tensor, int] | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        object.__setattr__(self, "_owner", None)  # the module Q is registered on (not a child of Q)
        self._missing_prefix: str | None = None
        self.register_load_state_dict_pre_hook(_note_missing_q)
        self.register_load_state_dict_post_hook(_explain_missing_q)

    def forward(self, features: torch.Tensor | None = None) -> QOutput:
        """Q's output for ``features``, or for those the hook captured in the last D pass."""
        if features is None:
            if self.features is None:
                raise RuntimeError("QHead has no features: run the discriminator first, or pass features")
            features = self.features
        if self.detach_trunk and not (self._handles and self._input_needs_grad):
            features = features.detach()
        # Q's dtype: a no-op unless D ran under autocast (features in half precision, Q in float32).
        out = self.net(features.flatten(1).to(self.net[-1].bias.dtype))
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
        """A new QHead fed by a forward hook on ``discriminator``'s submodule ``layer`` and registered on it.

        ``layer`` is a dotted name as in ``named_modules()`` ("main.10", "trunk.conv2") of your own
        module, also when ``discriminator`` is a ``torch.compile`` wrapper of it. With
        ``example_input`` (a small image batch) the discriminator runs once in eval mode without
        gradients to size Q's first layer, so Q's parameters exist before an optimizer is built.
        """
        discriminator = unwrap_discriminator(discriminator)
        head = cls(spec, **kwargs)
        head.hook(discriminator, layer)
        if example_input is not None:
            head.materialize(discriminator, example_input)
        return head

    def hook(self, discriminator: nn.Module, layer: str) -> None:
        """Capture the output of ``discriminator.<layer>`` on every forward pass; register Q on D.

        Q is registered as ``infogan_q`` on D itself, or, when D is an ``nn.Sequential`` (whose
        forward runs every child), on the hooked layer (or D's first module that is not a container).
        """
        discriminator = unwrap_discriminator(discriminator)
        mine = set(self.modules())  # when this Q is hooked on D already, it is re-hooked
        modules = {name: m for name, m in discriminator.named_modules() if m not in mine}
        if any(isinstance(m, QHead) for m in modules.values()):
            raise ValueError(f"{type(discriminator).__name__} already holds a Q head: remove it first (info.remove())")
        if layer not in modules or layer == "":
            valid = ", ".join(name for name in modules if name)
            raise ValueError(f"{type(discriminator).__name__} has no layer {layer!r}; valid layers: {valid}")
        owners = (discriminator, modules[layer], *modules.values())
        owner = next((m for m in owners if not isinstance(m, _CONTAINERS)), None)
        if owner is None:
            raise ValueError(f"{type(discriminator).__name__} holds only containers: no module can hold Q")
        if getattr(owner, Q_NAME, self) is not self:
            raise ValueError(f"{type(owner).__name__} already has an attribute {Q_NAME!r}: Q cannot be registered there")
        self.remove()
        owner.add_module(Q_NAME, self)
        object.__setattr__(self, "_owner", owner)
        self._layer = layer
        self._handles = [
            discriminator.register_forward_pre_hook(self._note_input),
            modules[layer].register_forward_hook(self._capture),
            discriminator.register_forward_hook(self._check_in_place),
        ]

    def _note_input(self, module: nn.Module, inputs) -> None:
        self._input_needs_grad = any(torch.is_tensor(x) and x.requires_grad for x in inputs)
        self._mode = module.training

    def _capture(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        """Keep the hooked layer's output (N, ...) for Q, which reads it after D's pass has finished.

        An in-place activation later in D's forward would change it under Q, so the first pass in each
        mode reads a copy, and :meth:`_check_in_place` learns from the tensor's version counter whether
        copies are needed; when they are not (the built-in models), Q reads the output itself: with the
        SVHN nets' 4,096 features a copy and its backward took 1.5 ms of Q's 4.4 ms per pass on one CPU
        thread, about 1% of a training step. Inference tensors and compiled
        graphs keep no usable version counter: there Q always reads a copy.
        """
        self.captured_with_grad = torch.is_grad_enabled()
        self._raw = None
        if output.is_inference() or torch.compiler.is_compiling():
            self.features = output.clone()
            return
        self._raw = (output, output._version)
        self.features = output if self._copy[self._mode] is False else output.clone()

    def _check_in_place(self, module: nn.Module, inputs, output) -> None:
        """After D's pass: did it change the hooked output in place? Learn it once per mode; a pass that
        changes it when earlier passes did not (a forward whose in-place ops vary) is refused."""
        if self._raw is None:
            return
        (raw, version), self._raw = self._raw, None
        changed = raw._version != version
        if self._copy[self._mode] is None:
            self._copy[self._mode] = changed
        elif changed and not self._copy[self._mode]:
            self._copy[self._mode], self.features = True, None
            raise RuntimeError(
                f"{type(module).__name__}.{self._layer}: its output was changed in place later in this pass, which "
                "earlier passes did not do, so Q would read changed features; Q copies them from the next pass on"
            )

    def remove(self) -> None:
        """Remove the hook and take Q off the discriminator: D is as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._owner is not None:
            del self._owner._modules[Q_NAME]
            object.__setattr__(self, "_owner", None)
        self.features = None

    def materialize(self, discriminator: nn.Module, example_input: torch.Tensor) -> None:
        """Run D and Q once in eval mode on ``example_input`` to create lazy parameters."""
        discriminator = unwrap_discriminator(discriminator)
        try:
            with evaluating(discriminator, self):
                discriminator(example_input)
                self()
        finally:
            self.features = None
        self._add_spectral_norm()

    def _add_spectral_norm(self) -> None:
        """With ``spectral_norm``, torch's spectral norm on both FC layers, once they are sized (once)."""
        if not self.spectral_norm:
            return
        for layer in (self.net[0], self.net[-1]):
            sized = not isinstance(layer, nn.modules.lazy.LazyModuleMixin)  # a LazyLinear becomes a Linear once sized
            if sized and not nn.utils.parametrize.is_parametrized(layer, "weight"):
                nn.utils.parametrizations.spectral_norm(layer)
