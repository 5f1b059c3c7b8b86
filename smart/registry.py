"""The extension points: one registry per kind of part a run config names by value.

    DATASETS        data.kind           GENERATORS      generator.arch
    DISCRIMINATORS  discriminator.arch  SCORE_MODELS    score.kind
    METRICS         eval.metrics        FID_EXTRACTORS  eval.fid_extractor

An entry binds a name to its builder and, for datasets, nets and score models, to the pydantic class
of its config section (a subclass of the section's base in smart.config); the config checks every
value against the registered names, so registering a kind is the only step to add one:

    from smart.registry import GENERATORS
    @GENERATORS.register("mine", config=MyGeneratorConfig)
    def build(section, sample_shape, num_classes): ...

A user's module does this at import and is named in the run config's `plugins:`, which are imported
before the rest of the config is validated (in `python -m smart.train`, a study's Ray workers, ...).
A builder may be given as "module:attr", imported on first use: the built-in kinds are declared that
way in light modules (smart.data, smart.nets, smart.score, smart.metrics, each imported on the first
lookup of its registry), so validating a config never imports torch. Imports run under one lock:
some libraries' lazy modules (diffusers) are not safe to import from two threads at once.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from smart.errors import ConfigError

_IMPORT_LOCK = threading.RLock()


def resolve(ref: Any) -> Any:
    """`ref` itself, or the object a "package.module:attr.attr" string names (imported now, under the
    lock: a lazy module's attribute access may import too)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    with _IMPORT_LOCK:
        obj = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    return obj


def import_plugin(name: str) -> None:
    """Import a user's module that registers kinds (the run config's `plugins:`)."""
    try:
        with _IMPORT_LOCK:
            importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - whatever the module raises, the user gets one line
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        shown = why if isinstance(exc, ImportError) and why else f"{type(exc).__name__}: {why}".rstrip(": ")
        raise ConfigError("plugins", f"cannot import {name!r}: {shown}") from None


def _identity(target: Any) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


@dataclass(frozen=True)
class Entry:
    """One registered kind: its builder (`load()` imports a "module:attr" one), its config section
    class (None where the kind has no options) and whatever else the registry's users read (`info`)."""

    name: str
    target: Any
    config: type | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        return resolve(self.target)


class Registry:
    """Names -> entries for one extension point; `key` is the dotted config key whose values it holds."""

    def __init__(self, what: str, key: str, declared_in: str):
        self.what, self.key, self.declared_in = what, key, declared_in
        self._entries: dict[str, Entry] = {}
        self._builtins_loaded = False

    def _builtins(self) -> None:
        if not self._builtins_loaded:
            resolve(self.declared_in + ":")  # under the import lock: other threads wait for it
            self._builtins_loaded = True

    def register(self, name: str, target: Any = None, *, config: type | None = None,
                 **info: Any) -> Callable | Any:
        """Register `target` under `name`; without a target, a decorator that registers what it wraps.
        Registering the same target again is a no-op (a module imported twice); another one is an error."""
        if target is None:
            return lambda obj: self.register(name, obj, config=config, **info)
        old = self._entries.get(name)
        if old is not None and _identity(old.target) != _identity(target):
            raise ValueError(f"{self.what} {name!r} is already registered ({_identity(old.target)})")
        self._entries[name] = Entry(name, target, config, dict(info))
        return target

    def get(self, name: Any, key: str | None = None) -> Entry:
        """The entry of `name`; an unknown name is a ConfigError on `key` (default: the registry's)."""
        self._builtins()
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise ConfigError(key or self.key, f"unknown {self.what} {name!r} (known: {', '.join(self.names())})")
        return entry

    def names(self) -> list[str]:
        self._builtins()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._builtins()
        return name in self._entries


DATASETS = Registry("dataset", "data.kind", "smart.data")
GENERATORS = Registry("generator", "generator.arch", "smart.nets")
DISCRIMINATORS = Registry("discriminator", "discriminator.arch", "smart.nets")
SCORE_MODELS = Registry("score model", "score.kind", "smart.score")
METRICS = Registry("metric", "eval.metrics", "smart.metrics")
FID_EXTRACTORS = Registry("FID extractor", "eval.fid_extractor", "smart.metrics")
