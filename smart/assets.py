"""Shared assets of a set of runs (reference statistics, and with images pretrained score models
and extractors), prepared once up front so that runs only read them."""
from __future__ import annotations

from smart.config import RunConfig
from smart.metrics import PREPARERS


def prepare_assets(cfg: RunConfig) -> None:
    """Idempotent: each preparer computes into its cache only what is not there yet."""
    for name in cfg.eval.metrics:
        if name in PREPARERS:
            PREPARERS[name](cfg)
