"""Latent codes: the noise z and the structured code c that InfoGAN feeds its generator.

A :class:`LatentCodeSpec` lists the noise size and the codes. The generator input is the
concatenation ``[z, one_hot(c_1), ..., one_hot(c_k), c_cont]`` in that order, so
``input_dim = noise_dim + sum(num_classes) + num_continuous``.

Compact string form (recipes, CLI, metadata)::

    noise:62,cat:10,cont:2              # the paper's MNIST spec (input_dim 74)
    noise:124,cat:10x4,cont:4           # SVHN: four 10-way codes, four continuous
    noise:128:uniform,digit=cat:10,cont:1:normal
    noise:62:uniform*0.2,cat:10,cont:2  # the noise drawn on [-0.2, 0.2]

Tokens are comma-separated ``[name=]kind:size[xrepeat][:prior]``; ``kind`` is ``noise``, ``cat``
or ``cont``; priors are ``uniform`` (on [-1, 1]) or ``normal`` (standard). Unnamed codes are
called c1, c2, ... in order. The noise's prior may carry a scale, ``uniform*s`` or ``normal*s``:
z = s * u with u from the prior. The codes' priors take none: a code's values are its meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal

import torch

Prior = Literal["uniform", "normal"]
PRIORS: tuple[str, ...] = ("uniform", "normal")


def _prior_entropy(prior: str) -> float:
    """Differential entropy in nats: uniform(-1, 1) gives ln 2, N(0, 1) gives ln(2*pi*e)/2."""
    return math.log(2.0) if prior == "uniform" else 0.5 * math.log(2.0 * math.pi * math.e)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _draw(prior: str, shape: tuple[int, ...], device, generator) -> torch.Tensor:
    if prior == "uniform":
        return torch.rand(shape, device=device, generator=generator) * 2.0 - 1.0
    return torch.randn(shape, device=device, generator=generator)


@dataclass(frozen=True)
class CategoricalCode:
    """A k-way code with a uniform prior over classes; H(c) = ln k."""

    name: str
    num_classes: int

    kind = "cat"

    @property
    def entropy(self) -> float:
        return math.log(self.num_classes)


@dataclass(frozen=True)
class ContinuousCode:
    """A scalar code with a uniform(-1, 1) or standard normal prior."""

    name: str
    prior: Prior = "uniform"

    kind = "cont"

    @property
    def entropy(self) -> float:
        return _prior_entropy(self.prior)


Code = CategoricalCode | ContinuousCode


@dataclass
class LatentBatch:
    """One draw of generator inputs.

    noise: (N, noise_dim); cat: one (N,) long tensor of class indices per categorical code;
    cont: (N, num_continuous).
    """

    spec: "LatentCodeSpec"
    noise: torch.Tensor
    cat: tuple[torch.Tensor, ...]
    cont: torch.Tensor

    def __len__(self) -> int:
        return self.noise.shape[0]

    @property
    def flat(self) -> torch.Tensor:
        """Generator input, (N, input_dim).

        The one-hot columns are a comparison with 0..K-1, not ``F.one_hot``, which reads the indices'
        range back to the host (two device syncs per training step on a GPU); the indices are checked
        where they are made (``LatentCodeSpec.sample``)."""
        parts = [self.noise]
        parts += [
            (c[:, None] == torch.arange(code.num_classes, device=c.device)).to(self.noise.dtype)
            for c, code in zip(self.cat, self.spec.categorical)
        ]
        parts.append(self.cont)
        return torch.cat(parts, dim=1)

    @property
    def image(self) -> torch.Tensor:
        """Generator input for DCGAN-style generators, (N, input_dim, 1, 1)."""
        return self.flat[:, :, None, None]

    def to(self, device) -> "LatentBatch":
        return LatentBatch(
            self.spec, self.noise.to(device), tuple(c.to(device) for c in self.cat), self.cont.to(device)
        )


@dataclass(frozen=True)
class LatentCodeSpec:
    """Noise size, noise prior and an ordered tuple of categorical and continuous codes.

    ``noise_scale`` multiplies the noise drawn from its prior (1: the prior itself). At 1, a generator
    whose first layer weighs every input alike starts with the one-hot code as a small part of its
    input: 62 uniform noise variables carry a variance of 62/3 against a 10-way one-hot's 0.9.
    """

    noise_dim: int
    codes: tuple[Code, ...] = ()
    noise_prior: Prior = "normal"
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", tuple(self.codes))
        if not _is_int(self.noise_dim) or self.noise_dim < 0:
            raise ValueError(f"noise size must be a non-negative integer, got {self.noise_dim!r}")
        if not isinstance(self.noise_prior, str) or self.noise_prior not in PRIORS:
            raise ValueError(f"unknown noise prior {self.noise_prior!r}: expected one of {', '.join(PRIORS)}")
        if isinstance(self.noise_scale, bool) or not isinstance(self.noise_scale, (int, float)) or not (
            math.isfinite(self.noise_scale) and self.noise_scale > 0
        ):
            raise ValueError(f"noise scale must be a positive number, got {self.noise_scale!r}")
        names: set[str] = set()
        for code in self.codes:
            if not isinstance(code.name, str) or not code.name.isidentifier():
                raise ValueError(f"code name {code.name!r} must be a Python identifier")
            if code.name in names:
                raise ValueError(f"code name {code.name!r} is used twice")
            names.add(code.name)
            if isinstance(code, CategoricalCode):
                if not _is_int(code.num_classes) or code.num_classes < 2:
                    raise ValueError(f"code {code.name!r}: a categorical code needs >= 2 classes, got {code.num_classes!r}")
            elif isinstance(code, ContinuousCode):
                if not isinstance(code.prior, str) or code.prior not in PRIORS:
                    raise ValueError(f"code {code.name!r}: unknown prior {code.prior!r}: expected one of {', '.join(PRIORS)}")
            else:
                raise ValueError(f"not a code: {code!r}")
        if self.input_dim == 0:
            raise ValueError("the spec has no noise and no codes")

    # ----------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        noise: int,
        categorical: Iterable[int] = (),
        continuous: int = 0,
        continuous_prior: Prior = "uniform",
        noise_prior: Prior = "normal",
        noise_scale: float = 1.0,
    ) -> "LatentCodeSpec":
        """Unnamed codes c1, c2, ...: categorical first, then continuous."""
        codes: list[Code] = [CategoricalCode(f"c{i + 1}", k) for i, k in enumerate(categorical)]
        codes += [ContinuousCode(f"c{len(codes) + i + 1}", continuous_prior) for i in range(continuous)]
        return cls(noise, tuple(codes), noise_prior, noise_scale)

    @classmethod
    def parse(cls, text: str) -> "LatentCodeSpec":
        """Parse the compact string form described in the module docstring."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty code spec: expected something like 'noise:62,cat:10,cont:2'")
        noise_dim: int | None = None
        noise_prior: str = "normal"
        noise_scale = 1.0
        pending: list[tuple[str | None, str, str | None]] = []  # (name, kind, class count or prior)
        for raw in text.split(","):
            token = raw.strip()
            name, sep, body = token.partition("=")
            if not sep:
                name, body = None, token
            else:
                name = name.strip()
            fields = body.strip().split(":")
            if len(fields) not in (2, 3) or fields[0] not in ("noise", "cat", "cont"):
                raise ValueError(f"bad code spec part {token!r}: expected [name=]noise|cat|cont:size[xrepeat][:prior]")
            kind, size_text = fields[0], fields[1]
            prior = fields[2] if len(fields) == 3 else None
            scale = None
            if prior is not None and "*" in prior:
                if kind != "noise":
                    raise ValueError(f"bad code spec part {token!r}: only the noise takes a scale (prior*scale)")
                prior, _, scale_text = prior.partition("*")
                try:
                    scale = float(scale_text)
                except ValueError:
                    raise ValueError(f"bad code spec part {token!r}: the noise scale must be a number, as in uniform*0.2") from None
            if prior is not None and prior not in PRIORS:
                raise ValueError(f"bad code spec part {token!r}: unknown prior {prior!r}, expected uniform or normal")
            size_text, _, repeat_text = size_text.partition("x")
            try:
                size = int(size_text)
                repeat = int(repeat_text) if repeat_text else 1
            except ValueError:
                raise ValueError(f"bad code spec part {token!r}: size must be an integer, optionally NxR") from None
            if size < 0 or repeat < 1:
                raise ValueError(f"bad code spec part {token!r}: sizes must be positive")
            if kind == "noise":
                if noise_dim is not None:
                    raise ValueError(f"bad code spec part {token!r}: noise is given twice")
                if repeat_text or name is not None:
                    raise ValueError(f"bad code spec part {token!r}: noise takes no name and no repeat")
                noise_dim, noise_prior = size, prior or "normal"
                noise_scale = 1.0 if scale is None else scale
            elif kind == "cat":
                if prior is not None:
                    raise ValueError(f"bad code spec part {token!r}: categorical codes have a uniform prior, no prior is taken")
                if name is not None and repeat > 1:
                    raise ValueError(f"bad code spec part {token!r}: a named code cannot repeat")
                pending += [(name, "cat", str(size))] * repeat
            else:
                if name is not None and size * repeat > 1:
                    raise ValueError(f"bad code spec part {token!r}: a named code must have size 1")
                pending += [(name, "cont", prior or "uniform")] * (size * repeat)
        codes: list[Code] = []
        for i, (name, kind, arg) in enumerate(pending):
            code_name = name or f"c{i + 1}"
            codes.append(CategoricalCode(code_name, int(arg)) if kind == "cat" else ContinuousCode(code_name, arg))  # type: ignore[arg-type]
        return cls(noise_dim or 0, tuple(codes), noise_prior, noise_scale)  # type: ignore[arg-type]

    def __str__(self) -> str:
        """The compact string; runs of unnamed alike codes are merged (cat:10x4, cont:2)."""
        noise = f"noise:{self.noise_dim}"
        if self.noise_scale != 1:
            noise += f":{self.noise_prior}*{self.noise_scale!r}"
        elif self.noise_prior == "uniform":
            noise += ":uniform"
        parts = [noise]
        run: list = []  # [token, count, named]
        for i, code in enumerate(self.codes):
            named = code.name != f"c{i + 1}"
            if isinstance(code, CategoricalCode):
                token = f"cat:{code.num_classes}"
            else:
                token = "cont:{}" + (":normal" if code.prior == "normal" else "")
            if run and not named and not run[2] and run[0] == token:
                run[1] += 1
                continue
            if run:
                parts.append(self._token(*run))
            run = [token, 1, named and code.name]
        if run:
            parts.append(self._token(*run))
        return ",".join(parts)

    @staticmethod
    def _token(token: str, count: int, name: str | bool) -> str:
        prefix = f"{name}=" if name else ""
        if token.startswith("cont"):
            return prefix + token.format(count)
        return prefix + token + (f"x{count}" if count > 1 else "")

    def to_dict(self) -> dict:
        """A plain dict (TOML / JSON friendly); :meth:`from_dict` inverts it."""
        return {
            "noise": self.noise_dim,
            "noise_prior": self.noise_prior,
            "noise_scale": self.noise_scale,
            "codes": [
                {"name": c.name, "kind": "cat", "classes": c.num_classes}
                if isinstance(c, CategoricalCode)
                else {"name": c.name, "kind": "cont", "prior": c.prior}
                for c in self.codes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LatentCodeSpec":
        if not isinstance(data, dict) or "noise" not in data:
            raise ValueError("a code spec dict needs a 'noise' key and a 'codes' list")
        entries = data.get("codes", [])
        if not isinstance(entries, list):
            raise ValueError(f"'codes' must be a list of tables, got {type(entries).__name__}")
        codes: list[Code] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry.get("kind") not in ("cat", "cont"):
                raise ValueError(f"codes[{i}]: expected a table with kind = 'cat' or 'cont'")
            name = entry.get("name", f"c{i + 1}")
            if entry["kind"] == "cat":
                if "classes" not in entry:
                    raise ValueError(f"codes[{i}]: a categorical code needs 'classes'")
                codes.append(CategoricalCode(name, entry["classes"]))
            else:
                codes.append(ContinuousCode(name, entry.get("prior", "uniform")))
        return cls(data["noise"], tuple(codes), data.get("noise_prior", "normal"), data.get("noise_scale", 1.0))

    # ----------------------------------------------------------------- properties
    @property
    def categorical(self) -> tuple[CategoricalCode, ...]:
        return tuple(c for c in self.codes if isinstance(c, CategoricalCode))

    @property
    def continuous(self) -> tuple[ContinuousCode, ...]:
        return tuple(c for c in self.codes if isinstance(c, ContinuousCode))

    @property
    def input_dim(self) -> int:
        return self.noise_dim + sum(c.num_classes for c in self.categorical) + len(self.continuous)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.codes)

    def code(self, name: str) -> Code:
        for c in self.codes:
            if c.name == name:
                return c
        raise ValueError(f"unknown code {name!r}: the spec has {', '.join(self.names) or 'no codes'}")

    def entropy(self, name: str) -> float:
        """H(c) in nats for one code."""
        return self.code(name).entropy

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        device=None,
        generator: torch.Generator | None = None,
        fixed: dict[str, float] | None = None,
    ) -> LatentBatch:
        """Draw n inputs from the priors; codes named in ``fixed`` take the given value instead."""
        noise = _draw(self.noise_prior, (n, self.noise_dim), device, generator)
        if self.noise_scale != 1:
            noise = noise * self.noise_scale
        cat = tuple(
            torch.randint(c.num_classes, (n,), device=device, generator=generator) for c in self.categorical
        )
        cont = torch.cat(
            [_draw(c.prior, (n, 1), device, generator) for c in self.continuous]
            or [torch.empty(n, 0, device=device)],
            dim=1,
        )
        for name, value in (fixed or {}).items():
            code = self.code(name)
            if isinstance(code, CategoricalCode):
                if int(value) != value or not 0 <= value < code.num_classes:
                    raise ValueError(f"code {name!r}: value must be a class 0..{code.num_classes - 1}, got {value!r}")
                cat[self.categorical.index(code)].fill_(int(value))
            else:
                cont[:, self.continuous.index(code)] = float(value)
        return LatentBatch(self, noise, cat, cont)

    def traverse_values(self, name: str, steps: int = 9) -> list[float]:
        """The values a traversal gives code ``name``: every class of a categorical code, or ``steps``
        evenly spaced values in [-2, 2] for a continuous one."""
        code = self.code(name)
        if isinstance(code, CategoricalCode):
            return list(range(code.num_classes))
        return torch.linspace(-2.0, 2.0, steps).tolist()

    def traverse(
        self,
        name: str,
        n_noise: int = 8,
        values: Iterable[float] | None = None,
        device=None,
        generator: torch.Generator | None = None,
    ) -> tuple[LatentBatch, list[float]]:
        """Vary one code over its range with the noise and the other codes fixed per column.

        Returns a batch of ``len(values) * n_noise`` inputs, row-major (rows = code values,
        columns = noise draws), and the values. Categorical codes take every class;
        continuous ones take 9 evenly spaced values in [-2, 2] unless ``values`` is given.
        """
        code = self.code(name)
        values = self.traverse_values(name) if values is None else list(values)
        base = self.sample(n_noise, device=device, generator=generator)
        rows = len(values)
        noise = base.noise.repeat(rows, 1)
        cat = [c.repeat(rows) for c in base.cat]
        cont = base.cont.repeat(rows, 1)
        column = torch.tensor(values, device=noise.device).repeat_interleave(n_noise)
        if isinstance(code, CategoricalCode):
            idx = self.categorical.index(code)
            if any(int(v) != v or not 0 <= v < code.num_classes for v in values):
                raise ValueError(f"code {name!r}: values must be classes 0..{code.num_classes - 1}")
            cat[idx] = column.long()
        else:
            cont[:, self.continuous.index(code)] = column.to(cont.dtype)
        return LatentBatch(self, noise, tuple(cat), cont), values
