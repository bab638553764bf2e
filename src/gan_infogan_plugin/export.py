"""Trained generators as safetensors files that rebuild themselves from their metadata.

A file holds the generator's full state dict (parameters and buffers, BatchNorm running
statistics included) and string metadata::

    format          "gan-infogan-plugin/generator"      format_version  "1"
    spec            the LatentCodeSpec as JSON (to_dict)
    model           the registered model name           model_kwargs    JSON, channels included
    recipe          the resolved recipe (TOML)          step            training step
    versions        JSON: gan-infogan-plugin and torch versions

:func:`load_generator` rebuilds the network through the model registry from the metadata alone.
Nothing in the file is ever executed or unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from . import __version__, registry
from .codes import LatentCodeSpec
from .errors import UserError, one_line
from .images import traversal_grid
from .runs import atomic_file

if TYPE_CHECKING:
    from .recipes import Recipe

FORMAT = "gan-infogan-plugin/generator"
FORMAT_VERSION = "1"
REQUIRED = ("format", "format_version", "spec", "model", "model_kwargs", "step")


def save_generator(
    path: str | Path,
    generator: nn.Module,
    spec: LatentCodeSpec,
    model_name: str,
    model_kwargs: dict[str, Any],
    recipe: str = "",
    step: int = 0,
) -> Path:
    """Write ``generator``'s state dict and the metadata above to ``path`` (atomically).

    ``model_kwargs`` are the keyword arguments of the registered model's ``generator`` builder
    (``channels`` and any ``model.kwargs``); ``recipe`` is the recipe text.
    """
    path = Path(path)
    generator = getattr(generator, "_orig_mod", generator)  # torch.compile wrapper
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in generator.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": json.dumps(spec.to_dict()),
        "model": model_name,
        "model_kwargs": json.dumps(model_kwargs),
        "recipe": recipe,
        "step": str(step),
        "versions": json.dumps({"gan-infogan-plugin": __version__, "torch": torch.__version__}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    return path


def save_run_generator(path: str | Path, generator: nn.Module, recipe: "Recipe", channels: int, step: int) -> Path:
    """:func:`save_generator` with what a run of ``recipe`` records: its codes, model (name,
    ``channels``, kwargs) and text; the end of a run and ``gan-recipes export`` write through it."""
    return save_generator(path, generator, recipe.codes, recipe.model.name, {"channels": channels, **recipe.model.kwargs},
                          recipe.to_toml(), step)


@dataclass
class LoadedGenerator:
    """A generator rebuilt from a file: in eval mode, on ``device``; ``metadata`` as stored (strings)."""

    generator: nn.Module
    spec: LatentCodeSpec
    metadata: dict[str, str]
    device: torch.device

    @property
    def model_name(self) -> str:
        return self.metadata["model"]

    @property
    def step(self) -> int:
        return int(self.metadata["step"])

    @torch.no_grad()
    def generate(self, n: int, fixed: dict[str, float] | None = None, seed: int | None = None) -> torch.Tensor:
        """n images (n, C, H, W) in [-1, 1]; codes named in ``fixed`` take the given value (see LatentCodeSpec.sample)."""
        rng = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        codes = self.spec.sample(n, device=self.device, generator=rng, fixed=fixed)
        return self.generator(codes.flat.to(next(self.generator.parameters()).dtype))

    def traverse(self, code: str, n_noise: int = 8, seed: int = 0) -> torch.Tensor:
        """A traversal of ``code`` as a batch of images, not one grid image: (values * n_noise, C, H, W),
        row-major (image ``i * n_noise + j``: value i, noise draw j), as :func:`.images.traversal_grid`
        gives it; ``images.save_grid(images, path, nrow=n_noise)`` lays it out as the Figure 2 grid."""
        return traversal_grid(self.generator, self.spec, code, n_noise, seed, self.device)


def _read_metadata(path: Path) -> dict[str, str]:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
    except Exception as exc:  # safetensors raises its own error types for every malformed file
        if head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise UserError(f"{path}: a pickle / torch.save file, not safetensors; it is never unpickled (export with save_generator)") from None
        raise UserError(f"{path}: not a valid safetensors file ({one_line(exc)})") from None
    if not metadata:
        raise UserError(f"{path}: a safetensors file without metadata; expected one written by save_generator")
    missing = [key for key in REQUIRED if key not in metadata]
    if missing or metadata["format"] != FORMAT:
        what = f"missing metadata {', '.join(missing)}" if missing else f"format {metadata['format']!r}"
        raise UserError(f"{path}: not a generator file from gan-infogan-plugin ({what})")
    if metadata["format_version"] != FORMAT_VERSION:
        raise UserError(f"{path}: format version {metadata['format_version']} (this package reads {FORMAT_VERSION}); upgrade gan-infogan-plugin")
    return metadata


def _check_sizes(path: Path, build: Any, what: str) -> None:
    """The network ``build()`` makes, built on the meta device (no memory), must have exactly the
    tensors and shapes stored in the file: metadata asking for a huge or impossible network is
    refused before anything is allocated, since what is built then is no bigger than the file."""
    try:
        with torch.device("meta"):
            skeleton = build()
    except TypeError as exc:
        raise UserError(f"{path}: {what} does not take these kwargs: {one_line(exc, 200)}") from None
    except Exception as exc:  # negative or absurd sizes: torch raises RuntimeError / ValueError
        raise UserError(f"{path}: bad metadata: {what} cannot be built from it: {one_line(exc, 200)}") from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    with safetensors.safe_open(str(path), framework="pt") as f:
        stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    if expected != stored:
        names = sorted(expected.keys() ^ stored.keys()) or sorted(k for k in expected if expected[k] != stored[k])
        first = names[0]
        raise UserError(f"{path}: the tensors do not fit {what}: {first} is {stored.get(first, 'missing')} in the file, "
                        f"{expected.get(first, 'not in the model')} in the model ({len(names)} differ)")


def load_generator(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> LoadedGenerator:
    """Rebuild the generator saved at ``path``; any problem with the file is a :class:`UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    metadata = _read_metadata(path)
    try:
        spec = LatentCodeSpec.from_dict(json.loads(metadata["spec"]))
        kwargs = json.loads(metadata["model_kwargs"])
        int(metadata["step"])
    except (ValueError, TypeError, KeyError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise UserError(f"{path}: bad metadata: {one_line(exc, 200)}") from None
    if not isinstance(kwargs, dict):
        raise UserError(f"{path}: bad metadata: model_kwargs must be a JSON object")
    try:
        model = registry.load("models", metadata["model"])
    except LookupError as exc:
        raise UserError(f"{path}: {exc}") from None
    _check_sizes(path, lambda: model.generator(spec.input_dim, **kwargs), f"model {metadata['model']!r} with spec {spec}")
    generator = model.generator(spec.input_dim, **kwargs)
    try:
        tensors = safetensors.torch.load_file(str(path))
        generator.load_state_dict(tensors, strict=True)
    except Exception as exc:  # size mismatch, missing or unexpected keys, unreadable tensor data
        raise UserError(f"{path}: the tensors do not fit model {metadata['model']!r} with spec {spec}: {one_line(exc)}") from None
    device = torch.device(device)
    generator.to(device=device, dtype=dtype) if dtype is not None else generator.to(device)
    generator.eval()
    return LoadedGenerator(generator, spec, dict(metadata), device)
