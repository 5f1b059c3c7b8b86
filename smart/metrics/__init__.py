"""Metrics registry: each metric is a function (trainer, samples) -> dict of named values, with an
optional `prepare(cfg)` that computes what every run shares (reference statistics, extractors)
once, up front. Toy and image data register their own implementations under the same names."""
from __future__ import annotations

from typing import Callable

METRICS: dict[str, dict[str, Callable]] = {"toy": {}, "image": {}}
PREPARERS: dict[str, dict[str, Callable]] = {"toy": {}, "image": {}}


def register(name: str, prepare: Callable | None = None, domain: str = "toy"):
    def wrap(fn):
        METRICS[domain][name] = fn
        if prepare is not None:
            PREPARERS[domain][name] = prepare
        return fn
    return wrap


def compute_metrics(names, trainer, samples) -> dict[str, float]:
    registry = METRICS[trainer.dataset.domain]
    out: dict[str, float] = {}
    for name in names:
        out.update(registry[name](trainer, samples))
    return out


from smart.metrics import image, toy  # noqa: E402,F401  (register the metrics)
