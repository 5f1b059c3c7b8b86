"""Metrics registry: each metric is a function (trainer, samples) -> dict of named floats."""
from __future__ import annotations

from typing import Callable

METRICS: dict[str, Callable] = {}


def register(name: str):
    def wrap(fn):
        METRICS[name] = fn
        return fn
    return wrap


def compute_metrics(names, trainer, samples) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        out.update(METRICS[name](trainer, samples))
    return out


from smart.metrics import toy  # noqa: E402,F401  (registers the toy metrics)
