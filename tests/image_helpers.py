"""Shared pieces of the image tests: a tiny score model pretrained once per session, and run
configs at minimal size. Nothing is downloaded."""
from __future__ import annotations

from smart.config import RunConfig

TINY_PRETRAIN = {"steps": 20, "batch_size": 16, "channels": [8, 16], "layers_per_block": 1}


def image_config(score_path: str, cache_dir: str, **sections) -> RunConfig:
    raw = {
        "data": {"kind": "digits"},
        "score": {"kind": "diffusers", "path": score_path, "pretrain": TINY_PRETRAIN},
        "regularizer": {"weight": 0.1, "interval": 2, "t_min": 25, "t_max": 35},
        "training": {"kimg": 0.128, "batch_size": 32, "eval_every_kimg": 0.064},
        "eval": {"metrics": ["fid", "grad_norms"], "num_samples": 200, "grad_samples": 32, "cache_dir": cache_dir},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return RunConfig.from_dict(raw)
