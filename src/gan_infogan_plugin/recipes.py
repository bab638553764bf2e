"""Recipes: one TOML file holds everything a training run needs.

A recipe (every key optional except ``codes`` and ``model.name``; defaults below)::

    description = "InfoGAN on MNIST"
    codes = "noise:62,cat:10,cont:2"        # LatentCodeSpec string, or a [codes] table (its to_dict form)

    [data]        name = "mnist", root = "data", download = true, split = "train", limit = 0 (all),
                  crop = 0 (square centre), num_workers = 2, [data.options] (data set specific)
    [model]       name = "mnist", channels = 0 (the model's), [model.kwargs] (passed to both networks)
    [q_head]      hidden = 128, fixed_std = false, detach_trunk = false, layer = "" (the model's q_layer)
    [regularizer] enabled = true, lambda_cat = 1.0, lambda_cont = 0.1, cont_warmup = 0
    [augment]     shift = 0 (pixels; every image D sees, real and fake, moved at random: augment.random_shift)
    [contrastive] weight = 0.0 (off; InfoGAN-CR's term, contrastive_term.ContrastiveTerm), start = 0,
                  gap_start = 0.0, gap_decrease = 0.0, gap_every = 1, gap_times = 0,
                  share_categorical = false (pairs share their categorical codes), lr = 2e-3, betas = [0.5, 0.999] (the CR network's Adam)
    [invariance]  weight = 0.0 (off; IIC on Q's categorical heads over real images and rotated, zoomed
                  copies, invariance_term.InvarianceTerm), degrees = 15.0, zoom = 0.1
    [optim.g]     lr = 1e-3, betas = [0.5, 0.999], weight_decay = 0.0      (and [optim.d], lr = 2e-4)
    [trainer]     batch_size = 64 (per process), max_steps = 10000, seed = 0, log_every = 50,
                  sample_every = 1000, sample_noise = 8, checkpoint_every = 1000,
                  g_steps = 1 (G updates per step), fresh_codes = false (true: every G update draws codes
                  and fakes of its own instead of training on the fakes D scored), noise_warmup = 0
                  (steps over which the noise z of the training codes grows linearly from noise_start = 0.2
                  times its prior's draw to the full draw; 0: the prior throughout), compile = false,
                  compile_mode = "default" (torch.compile's mode with compile = true: "reduce-overhead"
                  and "max-autotune" capture CUDA graphs and are refused on CUDA,
                  "max-autotune-no-cudagraphs"),
                  channels_last = false, accelerator = "auto", devices = 1, strategy = "auto",
                  num_nodes = 1, precision = "32-true", skip_nonfinite = false,
                  bn_batches = 16 (generated batches of 256 whose statistics become BatchNorm's
                  running statistics at the end of the run, batchnorm.recalibrate; 0: none),
                  eval_every = 0 (off; else evaluate.evaluate_networks every N steps, logged as eval/...)

Recipes are found by registered name (entry-point group ``gan_recipes.recipes``; each entry names a
package or folder holding ``*.toml`` files) or by a path to a ``.toml`` file. ``--set a.b=value``
overrides are TOML values (``--set optim.g.lr=5e-4``, ``--set data.name=mnist``; a value that is not
TOML is taken as a string). Unknown keys and wrong types raise :class:`UserError` naming the key path,
the expected type and the file (or the ``--set`` option).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import tomli_w

from . import registry
from .errors import UserError, did_you_mean

if TYPE_CHECKING:  # codes imports torch: only parsing a recipe needs it, not `gan-recipes list` or --help
    from .codes import LatentCodeSpec


def _at_least(low: float, default: Any = dataclasses.MISSING, exclusive: bool = False, high: float | None = None, **kwargs) -> Any:
    """A dataclass field whose value must be >= low (> low when exclusive), and <= high when given."""
    return field(default=default, metadata={"min": low, "exclusive": exclusive, "max": high}, **kwargs)


@dataclass
class DataConfig:
    """Which images: a registered data set (``gan_recipes.datasets``) and where its files are."""

    name: str = "shapes"
    root: str = "data"
    download: bool = True
    split: str = "train"
    limit: int = _at_least(0, 0)
    crop: int = _at_least(0, 0)
    num_workers: int = _at_least(0, 2)
    options: dict = field(default_factory=dict)


@dataclass
class ModelConfig:
    """A registered model (``gan_recipes.models``); ``channels = 0`` keeps the model's own."""

    name: str = ""
    channels: int = _at_least(0, 0)
    kwargs: dict = field(default_factory=dict)


@dataclass
class QHeadConfig:
    """QHead settings; ``layer = ""`` hooks the model's ``q_layer``."""

    hidden: int = _at_least(1, 128)
    fixed_std: bool = False
    detach_trunk: bool = False
    layer: str = ""
    batchnorm: bool = True  # FC - BatchNorm - LeakyReLU - FC (the InfoGAN paper's); false: no BatchNorm
    spectral_norm: bool = False  # spectral norm on Q's two FC layers (InfoGAN-CR's Q)
    negative_slope: float = _at_least(0.0, 0.1)  # Q's LeakyReLU


@dataclass
class RegularizerConfig:
    """The MI term's weights; ``enabled = false`` makes the run a plain GAN (no Q is attached).
    ``cont_warmup``: steps over which lambda_cont ramps up from 0 (:class:`~.step.MITerm`; 0: none)."""

    enabled: bool = True
    lambda_cat: float = _at_least(0.0, 1.0)
    lambda_cont: float = _at_least(0.0, 0.1)
    cont_warmup: int = _at_least(0, 0)


@dataclass
class AugmentConfig:
    """Differentiable augmentation of D's inputs (:func:`.augment.random_shift`): real and fake images
    alike are moved by up to ``shift`` pixels, so D cannot memorise a small data set."""

    shift: int = _at_least(0, 0)


@dataclass
class ContrastiveConfig:
    """InfoGAN-CR's contrastive term (:class:`~.contrastive.ContrastiveSchedule`): G's weight on the CR
    network's loss from step ``start`` on (``weight = 0``: off), the progressive gap between unshared
    codes, whether a pair shares its categorical codes (``share_categorical``), and the CR network's
    Adam settings."""

    weight: float = _at_least(0.0, 0.0)
    start: int = _at_least(0, 0)
    gap_start: float = _at_least(0.0, 0.0)
    gap_decrease: float = _at_least(0.0, 0.0)
    gap_every: int = _at_least(1, 1)
    gap_times: int = _at_least(0, 0)
    share_categorical: bool = False
    lr: float = _at_least(0.0, 2e-3, exclusive=True)
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])

    @property
    def enabled(self) -> bool:
        return self.weight > 0


@dataclass
class InvarianceConfig:
    """IIC on Q's categorical heads (:class:`~.invariance_term.InvarianceTerm`): ``weight`` on the mutual
    information between Q's classes of the real images and of copies rotated by up to ``degrees``,
    zoomed by up to ``zoom`` (0.1: 0.9-1.1 times) and sheared by up to ``shear`` degrees; ``weight = 0``:
    off."""

    weight: float = _at_least(0.0, 0.0)
    degrees: float = _at_least(0.0, 15.0, high=180.0)
    zoom: float = _at_least(0.0, 0.1, high=0.5)
    shear: float = _at_least(0.0, 0.0, high=60.0)

    @property
    def enabled(self) -> bool:
        return self.weight > 0


@dataclass
class OptimizerConfig:
    """Adam settings for one network."""

    lr: float = _at_least(0.0, 2e-4, exclusive=True)
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = _at_least(0.0, 0.0)


@dataclass
class OptimConfig:
    """One optimizer per network: ``g`` for the generator, ``d`` for the discriminator and Q together."""

    g: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-3))
    d: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=2e-4))


@dataclass
class TrainerConfig:
    """Loop and Fabric settings. Intervals are in steps; 0 turns periodic samples / checkpoints off
    (one is still written at the end)."""

    batch_size: int = _at_least(1, 64)
    max_steps: int = _at_least(1, 10_000)
    seed: int = _at_least(0, 0, high=2**32 - 1)  # the range Fabric's seed_everything takes
    log_every: int = _at_least(1, 50)
    sample_every: int = _at_least(0, 1000)
    sample_noise: int = _at_least(1, 8)
    eval_every: int = _at_least(0, 0)
    checkpoint_every: int = _at_least(0, 1000)
    g_steps: int = _at_least(1, 1)  # G updates per step: the first on the fakes D scored, the others on fresh codes
    fresh_codes: bool = False  # every G update on codes and fakes of its own, the first too (D's fakes are not reused)
    noise_warmup: int = _at_least(0, 0)  # steps over which the noise drawn for training grows from noise_start to its prior
    noise_start: float = _at_least(0.0, 0.2, exclusive=True, high=1.0)  # the noise's factor at step 0 of the warm-up
    skip_nonfinite: bool = False
    bn_batches: int = _at_least(0, 16)  # generated batches of 256 that set BatchNorm's statistics at the end (0: keep the moving averages)
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode (one of COMPILE_MODES) when compile is on
    channels_last: bool = False
    accelerator: str = "auto"
    devices: int = _at_least(1, 1)
    strategy: str = "auto"
    num_nodes: int = _at_least(1, 1)
    precision: str = "32-true"


@dataclass
class Recipe:
    """A resolved recipe. ``name`` names the run folder; ``origin`` is where it was read from."""

    name: str
    codes: LatentCodeSpec
    model: ModelConfig
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    q_head: QHeadConfig = field(default_factory=QHeadConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    invariance: InvarianceConfig = field(default_factory=InvarianceConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    origin: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The TOML-ready form (what :meth:`to_toml` writes and :func:`parse_recipe` reads back)."""
        out: dict[str, Any] = {"description": self.description, "codes": str(self.codes)}
        out.update({section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS})
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "q_head": QHeadConfig,
    "regularizer": RegularizerConfig,
    "augment": AugmentConfig,
    "contrastive": ContrastiveConfig,
    "invariance": InvarianceConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
}
TOP_LEVEL = ("description", "codes", *SECTIONS)
# torch.compile's modes (its ``mode`` argument; "default" is what ``mode=None`` means).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


# --------------------------------------------------------------------------- validation
class _Context:
    """Where values came from: the file, or the option that gave a key (``--set k=v``, ``--max-steps 5``)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.options: dict[str, str] = {}  # key path -> the option that set it, as typed

    def where(self, path: str) -> str:
        for key, option in self.options.items():
            if path == key or path.startswith(key + "."):
                return option
        return self.origin

    def fail(self, path: str, message: str) -> UserError:
        return UserError(f"{self.where(path)}: {path}: {message}")


def _describe(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", dict: "a table", list: "an array"}
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 40 else type(value).__name__
    return f"{names.get(type(value), type(value).__name__)} {shown}"


def _unknown(ctx: _Context, path: str, key: str, known: list[str]) -> UserError:
    prefix = path.rsplit(".", 1)[0] + "." if "." in path else ""
    return UserError(f"{ctx.where(path)}: unknown key {path}: {did_you_mean(key, known, 'expected one of', prefix, cutoff=0.6)}")


def _convert(ctx: _Context, path: str, hint: Any, value: Any, meta: typing.Mapping) -> Any:
    """Check one TOML value against a field's type hint (and its minimum)."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ctx.fail(path, f"expected a table, got {_describe(value)}")
        return _build(ctx, path, hint, value)
    origin = typing.get_origin(hint)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is dict:
        ok = isinstance(value, dict)
    elif origin is list:
        ok = isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        if not ok:
            raise ctx.fail(path, f"expected an array of two numbers, got {_describe(value)}")
        value = [float(v) for v in value]
        if not all(0.0 <= v < 1.0 for v in value):
            raise ctx.fail(path, f"expected two numbers in [0, 1), got {value}")
        return value
    else:  # pragma: no cover - a field type this module does not handle is a bug
        raise TypeError(f"unsupported field type {hint!r} at {path}")
    if not ok:
        names = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string", dict: "a table"}
        raise ctx.fail(path, f"expected {names[hint]}, got {_describe(value)}")
    if "min" in meta and isinstance(value, (int, float)):
        low, exclusive = meta["min"], meta["exclusive"]
        if value < low or (exclusive and value == low) or (isinstance(value, float) and not math.isfinite(value)):
            raise ctx.fail(path, f"expected a number {'>' if exclusive else '>='} {low}, got {value!r}")
        if meta["max"] is not None and value > meta["max"]:
            raise ctx.fail(path, f"expected a number from {low} to {meta['max']}, got {value!r}")
    return value


def _build(ctx: _Context, path: str, cls: type, raw: dict) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise _unknown(ctx, f"{path}.{key}", key, list(fields))
        values[key] = _convert(ctx, f"{path}.{key}", hints[key], value, fields[key].metadata)
    return cls(**values)


def _codes(ctx: _Context, value: Any) -> LatentCodeSpec:
    from .codes import LatentCodeSpec

    try:
        if isinstance(value, str):
            return LatentCodeSpec.parse(value)
        if isinstance(value, dict):
            return LatentCodeSpec.from_dict(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise ctx.fail("codes", str(exc)) from None
    raise ctx.fail("codes", f"expected a spec string like 'noise:62,cat:10,cont:2' or a table, got {_describe(value)}")


def _check_registered(ctx: _Context, path: str, kind: str, name: str) -> None:
    known = registry.entries(kind)
    if name not in known:
        hint = did_you_mean(name, sorted(known), "registered:")
        raise ctx.fail(path, f"unknown {kind[:-1].replace('data', 'data ')} {name!r}: {hint}")


def _check_trainer(ctx: _Context, recipe: Recipe) -> None:
    """The trainer's string settings that have a fixed set of values torch does not check early."""
    mode = recipe.trainer.compile_mode
    if mode not in COMPILE_MODES:
        raise ctx.fail("trainer.compile_mode", f"unknown torch.compile mode {mode!r}: {did_you_mean(mode, COMPILE_MODES, 'expected one of')}")


def _check_contrastive(ctx: _Context, recipe: Recipe) -> None:
    """What InfoGAN-CR's term needs of the codes, and its gap's range (codes are uniform on [-1, 1])."""
    cr, continuous = recipe.contrastive, recipe.codes.continuous
    if cr.gap_start > 2.0:
        raise ctx.fail("contrastive.gap_start", f"expected a number in [0, 2] (codes are uniform on [-1, 1]), got {cr.gap_start!r}")
    if not cr.enabled:
        return
    if len(continuous) < 2:
        raise ctx.fail("contrastive.weight", f"the contrastive term needs at least two continuous codes, codes {recipe.codes} has {len(continuous)}")
    if cr.gap_start > 0 and any(code.prior != "uniform" for code in continuous):
        raise ctx.fail("contrastive.gap_start", f"a gap needs uniform continuous codes (cont:N:uniform), codes {recipe.codes} has normal ones")


def _check_invariance(ctx: _Context, recipe: Recipe) -> None:
    """What the invariance term needs: Q (the MI regularizer on) and a categorical code to cluster with."""
    if not recipe.invariance.enabled:
        return
    if not recipe.regularizer.enabled:
        raise ctx.fail("invariance.weight", "the invariance term trains Q's categorical heads: it needs regularizer.enabled = true")
    if not recipe.codes.categorical:
        raise ctx.fail("invariance.weight", f"the invariance term needs a categorical code, codes {recipe.codes} has none")


def parse_recipe(
    text: str, name: str, origin: str, overrides: list[str] = (), flags: Mapping[str, tuple[str, Any]] | None = None
) -> Recipe:
    """A TOML document (plus ``key=value`` overrides, then ``flags``) to a checked :class:`Recipe`.

    ``origin`` (a file path or a registered name) is used in error messages. ``flags`` maps a key
    path to (the option as typed, its value): ``{"trainer.max_steps": ("--max-steps -1", -1)}``; an
    error in that value names the option.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{origin}: not valid TOML: {exc}") from None
    ctx = _Context(origin)
    for option in overrides:
        key = apply_override(raw, option)
        ctx.options[key] = f"--set {option}"
    for key, (option, value) in (flags or {}).items():
        _set_key(raw, key, value, option)
        ctx.options[key] = option
    for key in raw:
        if key not in TOP_LEVEL:
            raise _unknown(ctx, key, key, list(TOP_LEVEL))
    if "codes" not in raw:
        raise UserError(f"{origin}: missing key codes: expected a spec string like 'noise:62,cat:10,cont:2'")
    model = raw.get("model", {})
    if not isinstance(model, dict) or "name" not in model:
        raise UserError(f"{ctx.where('model.name')}: missing key model.name: expected a registered model name")
    values: dict[str, Any] = {"codes": _codes(ctx, raw["codes"])}
    if "description" in raw:
        values["description"] = _convert(ctx, "description", str, raw["description"], {})
    for section, cls in SECTIONS.items():
        if section in raw:
            values[section] = _convert(ctx, section, cls, raw[section], {})
    recipe = Recipe(name=name, origin=origin, **values)
    _check_trainer(ctx, recipe)
    _check_contrastive(ctx, recipe)
    _check_invariance(ctx, recipe)
    _check_registered(ctx, "model.name", "models", recipe.model.name)
    _check_registered(ctx, "data.name", "datasets", recipe.data.name)
    return recipe


# --------------------------------------------------------------------------- --set overrides
_OVERRIDE = re.compile(r"^\s*([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*=(.*)$", re.S)


def parse_value(text: str) -> Any:
    """A TOML value (``5e-4``, ``true``, ``[0.5, 0.99]``, ``"x"``); anything else is taken as a string."""
    try:
        return tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def apply_override(raw: dict, option: str) -> str:
    """Set ``a.b.c=value`` in the nested dict ``raw``; returns the key path."""
    match = _OVERRIDE.match(option)
    if not match:
        raise UserError(f"--set {option}: expected KEY=VALUE with a dotted key, like optim.g.lr=5e-4")
    key = match.group(1)
    _set_key(raw, key, parse_value(match.group(2)), f"--set {option}")
    return key


def _set_key(raw: dict, key: str, value: Any, option: str) -> None:
    """``raw[a][b][c] = value`` for ``key = "a.b.c"``, creating tables; ``option`` names the source in errors."""
    *parents, last = key.split(".")
    table = raw
    for i, part in enumerate(parents):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise UserError(f"{option}: {'.'.join(parents[: i + 1])} is not a table")
    table[last] = value


# --------------------------------------------------------------------------- finding recipes
@dataclass(frozen=True)
class RecipeSource:
    """A registered recipe file: its name (the file stem), the providing distribution and the file."""

    name: str
    distribution: str
    file: Traversable

    def read(self) -> str:
        return self.file.read_text(encoding="utf-8")


def _recipe_files(target: Any) -> list[Traversable]:
    """The ``*.toml`` files an entry point names: a package (its folder), a folder or one file."""
    if isinstance(target, types.ModuleType):
        folder = resources.files(target)
    elif isinstance(target, (str, Path)):
        folder = Path(target)
        if folder.is_file():
            return [folder]
    else:
        raise TypeError(f"expected a package, a folder or a file, got {type(target).__name__}")
    return sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)


def available_recipes() -> dict[str, RecipeSource]:
    """Every registered recipe by name (first registration wins; broken entry points are skipped with a warning)."""
    found: dict[str, RecipeSource] = {}
    loaded = registry.load_all("recipes")
    for entry_name, entry in registry.entries("recipes").items():
        if entry_name not in loaded:
            continue
        for file in _recipe_files(loaded[entry_name]):
            stem = file.name[: -len(".toml")]
            found.setdefault(stem, RecipeSource(stem, entry.distribution, file))
    return found


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or "/" in text or "\\" in text


def load_recipe(name_or_path: str, overrides: list[str] = (), flags: Mapping[str, tuple[str, Any]] | None = None) -> Recipe:
    """A recipe by registered name or by path to a ``.toml`` file, with ``key=value`` overrides and
    ``flags`` applied (see :func:`parse_recipe`)."""
    if _looks_like_path(name_or_path) or Path(name_or_path).is_file():
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError(f"{path}: no such recipe file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read the recipe: {exc}") from None
        return parse_recipe(text, path.stem, str(path), overrides, flags)
    known = available_recipes()
    if name_or_path not in known:
        hint = did_you_mean(name_or_path, sorted(known), "known:")
        raise UserError(f"unknown recipe {name_or_path!r}: {hint} (or give a path to a .toml file)")
    source = known[name_or_path]
    return parse_recipe(source.read(), name_or_path, f"recipe {name_or_path}", overrides, flags)
