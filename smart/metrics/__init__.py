"""Metrics registry: each metric is a function (trainer, samples) -> dict of named floats, with an
optional `prepare(cfg)` that computes what every run shares (reference statistics) once, up front."""
from __future__ import annotations

from typing import Callable

METRICS: dict[str, Callable] = {}
PREPARERS: dict[str, Callable] = {}


def register(name: str, prepare: Callable | None = None):
    def wrap(fn):
        METRICS[name] = fn
        if prepare is not None:
            PREPARERS[name] = prepare
        return fn
    return wrap


def compute_metrics(names, trainer, samples) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        out.update(METRICS[name](trainer, samples))
    return out


from smart.metrics import toy  # noqa: E402,F401  (registers the toy metrics)
