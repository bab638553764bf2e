"""The one registry: components, models, data sets and recipes found through entry points.

Any installed distribution can add to a group in its pyproject.toml::

    [project.entry-points."gan_recipes.models"]
    my_gan = "my_package.nets:MY_GAN"

Groups are read with the standard library's importlib.metadata.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import did_you_mean

GROUPS: dict[str, str] = {
    "components": "gan_recipes.components",
    "models": "gan_recipes.models",
    "datasets": "gan_recipes.datasets",
    "recipes": "gan_recipes.recipes",
}


@dataclass(frozen=True)
class Entry:
    """One registered name: its kind (a key of GROUPS), the entry point and the distribution providing it."""

    kind: str
    name: str
    entry_point: EntryPoint

    @property
    def distribution(self) -> str:
        dist = self.entry_point.dist
        return dist.metadata["Name"] if dist is not None else "?"


def entries(kind: str) -> dict[str, Entry]:
    """Every name registered in the group for ``kind`` (nothing is imported)."""
    if kind not in GROUPS:
        raise ValueError(f"unknown registry kind {kind!r}: expected one of {', '.join(GROUPS)}")
    return {ep.name: Entry(kind, ep.name, ep) for ep in entry_points(group=GROUPS[kind])}


def load(kind: str, name: str) -> Any:
    """The object registered as ``name``; an unknown name lists close matches."""
    found = entries(kind)
    if name not in found:
        hint = did_you_mean(name, sorted(found), "known:")
        raise LookupError(f"unknown {kind[:-1] if kind.endswith('s') else kind} {name!r}: {hint}")
    return found[name].entry_point.load()


def load_all(kind: str) -> dict[str, Any]:
    """Every loadable object of a group; a broken entry point is skipped with a warning naming it."""
    loaded = {}
    for name, entry in entries(kind).items():
        try:
            loaded[name] = entry.entry_point.load()
        except Exception as exc:  # a third party's import error must not break ours
            warnings.warn(
                f"skipping {GROUPS[kind]} entry point {name!r} = {entry.entry_point.value!r} "
                f"from {entry.distribution}: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
    return loaded
