"""The model families, declared once; everything else iterates over ``families()``.

A family is one kind of model: its member name (the vote's key), its model-store
name, its runtimes (the first is the default for a model trained without a choice
table, see ``models.runtimes``; the last the native library), the
adapter that serves it (``models/``) and the trainer that fits, saves and exports it
(``train/``). Adapters and trainers are import paths, loaded only where they are
used, so a member process imports one family's runtime and the entry none.

Adding a family is one declaration: a line in ``BUILTIN``, or a module of your own
named in ``YIELD_ENSEMBLE_FAMILY_PLUGINS`` (``module:ATTRIBUTE`` of a ``Family``),
which training and serving both read. Nothing here imports a model library.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

#: Environment variable naming extra families, comma-separated ``module:ATTRIBUTE``.
PLUGINS_ENV = "YIELD_ENSEMBLE_FAMILY_PLUGINS"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class Family:
    """One model family; see the module docstring."""

    name: str
    store_name: str
    runtimes: tuple[str, ...]
    #: "module:Class", called (bentoml.Model, runtime) -> MemberAdapter; a
    #: ``models.runtimes.RuntimeAdapter`` also takes runtime None (the measured choice).
    adapter: str
    trainer: str  # "module:Class", called (TrainConfig) -> train.families.Trainer

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"family name {self.name!r}: 1-32 of a-z 0-9 _, starting a-z")
        if not self.runtimes:
            raise ValueError(f"family {self.name} needs at least one runtime")

    @property
    def default_runtime(self) -> str:
        return self.runtimes[0]

    def load_adapter(self) -> Any:
        return load(self.adapter)

    def load_trainer(self) -> Any:
        return load(self.trainer)


BUILTIN: tuple[Family, ...] = (
    Family(
        "random_forest",
        "yield-random-forest",
        ("onnx", "sklearn"),
        adapter="models.random_forest:RandomForestAdapter",
        trainer="train.families:RandomForestTrainer",
    ),
    Family(
        "xgboost",
        "yield-xgboost",
        ("onnx", "tl2cgen", "xgboost"),
        adapter="models.xgb:XGBoostAdapter",
        trainer="train.families:XGBoostTrainer",
    ),
    Family(
        "keras",
        "yield-keras",
        ("litert", "tensorflow"),
        adapter="models.keras_mlp:KerasAdapter",
        trainer="train.families:KerasTrainer",
    ),
)


def load(path: str) -> Any:
    """The object at ``module:attribute``."""
    module, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"{path!r} is not module:attribute")
    return getattr(importlib.import_module(module), attribute)


class PluginError(ValueError):
    """A family plugin named in ``YIELD_ENSEMBLE_FAMILY_PLUGINS`` cannot be used; the
    message is one line naming the variable and the module."""


def _load_plugin(path: str) -> Any:
    """``module:ATTRIBUTE``, importable from the working directory too (as ``bentoml
    serve`` imports ``service.py`` from it), whether run as ``yield-ensemble`` or not."""
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise PluginError(f"{PLUGINS_ENV}: {path!r} is not module:ATTRIBUTE")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)  # after the installed packages, so it shadows none of them
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise PluginError(
            f"{PLUGINS_ENV}: cannot import module {module!r} from {here} or the installed "
            f"packages ({type(exc).__name__}: {exc})"
        ) from None
    if not hasattr(found, attribute):
        raise PluginError(f"{PLUGINS_ENV}: module {module!r} has no {attribute!r}")
    return getattr(found, attribute)


@functools.cache
def _families(plugins: str) -> tuple[Family, ...]:
    found = list(BUILTIN)
    for path in filter(None, (p.strip() for p in plugins.split(","))):
        family = _load_plugin(path)
        if not isinstance(family, Family):
            raise PluginError(f"{PLUGINS_ENV}: {path} is a {type(family).__name__}, not a Family")
        found.append(family)
    names = [f.name for f in found]
    if len(set(names)) != len(names):
        raise PluginError(f"{PLUGINS_ENV}: a family name appears twice in {names}")
    return tuple(found)


def families() -> tuple[Family, ...]:
    """Every family: the built-in ones, then the plugins, in vote order."""
    return _families(os.environ.get(PLUGINS_ENV, ""))


def family(name: str) -> Family:
    """The family called ``name``; KeyError naming the known ones otherwise."""
    for f in families():
        if f.name == name:
            return f
    raise KeyError(f"no model family {name!r}; known: {[f.name for f in families()]}")


def member_names() -> tuple[str, ...]:
    return tuple(f.name for f in families())
