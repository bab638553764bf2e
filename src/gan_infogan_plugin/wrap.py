"""InfoGAN for a GAN you already have: a few changed lines in your own training loop.

    info = InfoGAN.wrap(netG, netD, spec, layer="main.10")   # Q joins netD: before .to() / fabric.setup / DDP
    optD = Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))  # D's parameters include Q's
    codes = info.sample(batch_size, device=device)
    fake = netG(info.inputs(codes))
    ...  errD = errD_real + errD_fake + info.mi(codes).loss   # after netD(fake.detach())
    ...  errG = bce(netD(fake), ones) + info.mi(codes).loss   # after netD(fake)

Q reads the features the hook captured during the discriminator pass just made, so the
discriminator runs once per batch for both its verdict and Q; ``info.mi`` checks that this pass
fits the codes (batch size, gradients). ``verdict, q = info.discriminate(fake)`` with
``info.mi(codes, q)`` is the explicit form: D's verdict and Q's output from one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

from .codes import LatentBatch, LatentCodeSpec
from .modes import evaluating
from .qhead import QHead, QOutput, unwrap_discriminator
from .regularizer import MIRegularizer, MIResult


def _load_old_layout(module: "DiscriminatorWithQ", state_dict, prefix, *_) -> None:
    """State dicts written while Q lived beside D (``q_head.*``) load into D's Q (``discriminator.<...>.infogan_q.*``)."""
    old = prefix + "q_head."
    inside = f"{prefix}discriminator.{module.q_path}."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[inside + key[len(old):]] = state_dict.pop(key)


class DiscriminatorWithQ(nn.Module):
    """D (holding Q) as one module whose forward gives D's verdict and Q's output from one pass.

    For optimizers, checkpoints, DDP and FSDP (Q then runs inside the wrapped forward). Its parameters
    and state dict are D's, Q's among them (``discriminator.infogan_q.*``), each once; state dicts
    written before Q lived on D (``discriminator.*`` and ``q_head.*``) load as well.
    """

    def __init__(self, discriminator: nn.Module, q_head: QHead) -> None:
        super().__init__()
        self.discriminator = unwrap_discriminator(discriminator)
        if not any(m is q_head for m in self.discriminator.modules()):
            raise ValueError("this Q head is not attached to the discriminator: use QHead.attach(D, layer, spec) or InfoGAN.wrap")
        object.__setattr__(self, "q_head", q_head)  # D holds it already; registered twice, it would be saved twice
        self.register_load_state_dict_pre_hook(_load_old_layout)

    @property
    def q_path(self) -> str:
        """Q's name inside the discriminator (``infogan_q``, or ``<layer>.infogan_q`` for a Sequential D)."""
        return next(name for name, m in self.discriminator.named_modules() if m is self.q_head)

    def forward(self, x: torch.Tensor, with_q: bool = True) -> tuple[torch.Tensor, QOutput | None]:
        """``with_q=False`` skips Q (D's pass over real images, where the MI term has no code to read)."""
        verdict = self.discriminator(x)
        return verdict, self.q_head() if with_q else None


@dataclass
class InfoGAN:
    """What a user's own loop needs: the spec, Q attached to D, and the MI loss.

    ``discriminator`` is your own module (seen through a ``torch.compile`` wrapper); it holds Q.
    """

    generator: nn.Module
    discriminator: nn.Module
    spec: LatentCodeSpec
    q_head: QHead
    regularizer: MIRegularizer
    image_input: bool = True
    _with_q: DiscriminatorWithQ | None = field(default=None, init=False, repr=False)

    @classmethod
    def wrap(
        cls,
        generator: nn.Module,
        discriminator: nn.Module,
        spec: LatentCodeSpec | str,
        layer: str,
        lambda_cat: float = 1.0,
        lambda_cont: float = 0.1,
        image_input: bool = True,
        **q_kwargs,
    ) -> "InfoGAN":
        """Attach Q to ``discriminator.<layer>`` (Q becomes part of D) and build the MI loss.

        Wrap before ``fabric.setup`` / DDP / FSDP (refused after them) and before building D's
        optimizer; before or after ``.to(device)``. ``layer`` names a submodule of your own module,
        also when ``discriminator`` is ``torch.compile``'d. ``image_input``: the generator takes
        (N, input_dim, 1, 1) (DCGAN style) rather than (N, input_dim). One eval-mode pass of G and D
        on two samples checks G against the spec and creates Q's parameters on D's device and
        dtype. ``q_kwargs`` go to :class:`QHead` (``hidden``, ``fixed_std``, ``detach_trunk``,
        ``batchnorm``, ``spectral_norm``, ``negative_slope``).
        On any error D is left as it was.
        """
        spec = LatentCodeSpec.parse(spec) if isinstance(spec, str) else spec
        discriminator = unwrap_discriminator(discriminator)
        device, dtype = _device_dtype(discriminator)
        q_head = QHead.attach(discriminator, layer, spec, **q_kwargs).to(device)
        info = cls(generator, discriminator, spec, q_head, MIRegularizer(spec, lambda_cat, lambda_cont), image_input)
        try:
            example = info._check_generator(spec.sample(2, device=device))
            try:
                q_head.materialize(discriminator, example)
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                raise ValueError(f"D fails on G's output of shape {tuple(example.shape)}: {_first_line(exc)}") from None
        except BaseException:
            q_head.remove()
            raise
        q_head.to(dtype=dtype)
        return info

    def _check_generator(self, codes: LatentBatch) -> torch.Tensor:
        """G's output on ``codes`` (eval mode, no gradients), or a one-line error saying how G misfits the spec."""
        inputs = self._generator_inputs(codes)
        try:
            with evaluating(self.generator):
                return self.generator(inputs)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            takes = _input_size(self.generator)
            if takes is not None and takes != self.spec.input_dim:
                raise ValueError(
                    f'G takes {takes} inputs; the spec "{self.spec}" needs {self.spec.input_dim}: build G with spec.input_dim'
                ) from None
            other = "image_input=False if G takes (N, input_dim)" if self.image_input else "image_input=True if G takes (N, input_dim, 1, 1)"
            raise ValueError(f"G fails on the spec's input of shape {tuple(inputs.shape)}: {_first_line(exc)}; pass {other}") from None

    def sample(self, n: int, device=None, generator: torch.Generator | None = None, **kwargs) -> LatentBatch:
        """Noise and codes for n images (see :meth:`LatentCodeSpec.sample`)."""
        return self.spec.sample(n, device=device, generator=generator, **kwargs)

    def inputs(self, codes: LatentBatch) -> torch.Tensor:
        """The generator input: (N, input_dim, 1, 1) or (N, input_dim)."""
        return codes.image if self.image_input else codes.flat

    def _generator_inputs(self, codes: LatentBatch) -> torch.Tensor:
        """:meth:`inputs` in G's dtype (a G in half precision, as Fabric's "16-true" leaves it)."""
        return self.inputs(codes).to(_device_dtype(self.generator)[1])

    def mi(self, codes: LatentBatch, q: QOutput | None = None) -> MIResult:
        """The MI loss and statistics of ``codes`` against Q's output.

        Without ``q``, Q reads the features of the last discriminator pass, which must be D scoring
        G(codes): a pass on another batch size, or one made under ``torch.no_grad()`` while gradients
        are on now (the MI loss would not reach G), is refused in one line. With ``q`` (from
        :meth:`discriminate` or :class:`DiscriminatorWithQ`), that output is used. The checks read
        shapes and autograd flags only: no host sync.

        ``stats`` are measured on this batch, the one Q is being trained on, so they run ahead of
        Q on new codes: log :meth:`held_out_stats` for a held-out figure.
        """
        if q is None:
            if self.q_head.features is not None:
                self._check_pass(len(self.q_head.features), self.q_head.captured_with_grad, codes, "info.mi(codes)")
            q = self.q_head()
        else:
            self._check_pass(len(q.cont_mean), q.cont_mean.requires_grad, codes, "info.mi(codes, q)")
        return self.regularizer(q, codes)

    @staticmethod
    def _check_pass(n: int, with_grad: bool, codes: LatentBatch, call: str) -> None:
        """Refuse a pass of ``n`` images (recorded with or without autograd) that cannot be G(codes) for this loss."""
        if n != len(codes):
            raise ValueError(
                f"{call}: the last discriminator pass saw {n} images but the codes are for {len(codes)}: call it right "
                "after D scores G(codes), or use verdict, q = info.discriminate(fake) and info.mi(codes, q)"
            )
        if torch.is_grad_enabled() and not with_grad:
            raise ValueError(
                f"{call}: the discriminator pass ran under torch.no_grad(), so the MI loss cannot train G: score G(codes) "
                "with gradients before it, or call it inside torch.no_grad() to read its stats only"
            )

    def discriminate(self, images: torch.Tensor) -> tuple[torch.Tensor, QOutput]:
        """D's verdict and Q's output on ``images`` from one D pass: ``verdict, q = info.discriminate(fake)``.

        It calls your module directly: with ``fabric.setup``, DDP or FSDP, set up
        :meth:`discriminator_with_q` in D's place and call that instead.
        """
        return self.discriminator_with_q()(images)

    @torch.no_grad()
    def held_out_stats(self, n: int = 256, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``mi.stats`` on ``n`` fresh codes Q has not been trained on: a held-out MI bound to log.

        One G and one D pass, no gradients, G, D and Q in eval mode (BatchNorm running statistics,
        untouched); the modes and the features of the last training pass are restored after.
        Detached tensors: no host sync until they are read. ``generator``: a torch.Generator for the codes.
        """
        codes = self.sample(n, device=_device_dtype(self.discriminator)[0], generator=generator)
        modes = [(m, m.training) for m in (self.generator, self.discriminator, self.q_head)]
        captured = self.q_head.features, self.q_head.captured_with_grad
        try:
            for module, _ in modes:
                module.eval()
            _, q = self.discriminate(self.generator(self._generator_inputs(codes)))
            return self.regularizer(q, codes).stats
        finally:
            for module, training in modes:
                module.train(training)
            self.q_head.features, self.q_head.captured_with_grad = captured

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """D's parameters, Q's included (Q is part of D: ``D.parameters()`` is the same)."""
        return self.discriminator.parameters()

    def discriminator_with_q(self) -> DiscriminatorWithQ:
        """D and Q in one module whose forward returns both outputs (the same module on every call)."""
        if self._with_q is None:
            self._with_q = DiscriminatorWithQ(self.discriminator, self.q_head)
        return self._with_q

    def remove(self) -> None:
        """Detach Q's hook and take Q off D: the discriminator is left exactly as it was."""
        self.q_head.remove()
        self._with_q = None


def _device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of ``module``'s first floating parameter or buffer (CPU, float32 if none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _input_size(generator: nn.Module) -> int | None:
    """The input size of G's first Linear or convolution (None when it is lazy or there is none)."""
    for m in generator.modules():
        if isinstance(m, nn.Linear):
            return m.in_features or None
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels or None
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
