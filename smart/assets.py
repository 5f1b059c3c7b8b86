"""Shared assets of a set of runs — image data checks, the pretrained score model, FID extractors
and reference statistics — prepared once up front so that runs only read them."""
from __future__ import annotations

import os

from smart.config import RunConfig
from smart.metrics import PREPARERS


def _check_image_inputs(cfg: RunConfig):
    """Fail fast, before any long computation, on missing data, score model or extractor weights."""
    from smart.data import build_dataset
    from smart.metrics.extractors import inception_weights, torchscript_weights
    from smart.score.unet import is_hub_id, missing_model_error

    dataset = build_dataset(cfg)
    extractor = cfg.eval.extractor_for(cfg.data)
    if "fid" in cfg.eval.metrics and extractor == "inception-v3-compat":
        inception_weights(cfg.eval.extractor_weights)
    elif "fid" in cfg.eval.metrics and extractor == "inception-torchscript":
        torchscript_weights(cfg.eval.extractor_weights)
    path = cfg.score.path
    if not os.path.exists(path) and not is_hub_id(path) and cfg.score.pretrain.steps == 0:
        raise missing_model_error(path)
    return dataset


def prepare_assets(cfg: RunConfig, log=print) -> None:
    """Idempotent: each step computes into its cache only what is not there yet. Raises ConfigError
    (naming the key) for missing inputs before doing any long work."""
    domain = "toy" if cfg.data.is_toy else "image"
    if domain == "image":
        dataset = _check_image_inputs(cfg)
        if not os.path.exists(cfg.score.path) and cfg.score.pretrain.steps > 0:
            from smart.score.pretrain import pretrain

            log(f"pretraining the score model into {cfg.score.path} ({cfg.score.pretrain.steps} steps)")
            pretrain(cfg, dataset, cfg.score.path, log=log)
        from smart.score import build_score_model

        build_score_model(cfg, dataset)  # the model loads and fits the data (ConfigError otherwise)
    for name in cfg.eval.metrics:
        if name in PREPARERS[domain]:
            PREPARERS[domain][name](cfg)
