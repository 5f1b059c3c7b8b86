"""Shared assets of a set of runs — image data checks, the pretrained score model, FID extractors
and reference statistics — prepared once up front so that runs only read them."""
from __future__ import annotations

import logging
import os

from smart.config import RunConfig
from smart.data import build_dataset
from smart.errors import ConfigError
from smart.metrics import prepare_metrics
from smart.registry import resolve
from smart.score import build_score_model, is_hub_id, missing_model_error

log = logging.getLogger(__name__)
PATH_KEYS = (("data", "path"), ("score", "path"), ("eval", "extractor_weights"), ("eval", "cache_dir"))


def absolute_paths(raw: dict) -> dict:
    """A run-config mapping with its local paths made absolute (and ~ expanded), so that workers
    with another working directory read what the driver prepared. Hub ids stay as they are."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, key in PATH_KEYS:
        value = out.get(section, {}).get(key)
        if not value:
            continue
        local = os.path.expanduser(value)
        if section == "score" and not os.path.exists(local) and is_hub_id(value) and out["score"].get(
                "pretrain", {}).get("steps", 0) == 0:
            continue
        out[section][key] = os.path.abspath(local)
    return out


def _check_image_inputs(cfg: RunConfig):
    """Fail fast, before any long computation, on missing data, score model or extractor weights;
    one error that names the first missing input and lists the others."""
    from smart.metrics.extractors import inception_weights, torchscript_weights

    def score_model():
        path = cfg.score.path
        if not os.path.exists(path) and not is_hub_id(path) and cfg.score.pretrain.steps == 0:
            raise missing_model_error(path, cfg.data.kind)

    def extractor():
        name = cfg.eval.extractor_for(cfg.data)
        if "fid" in cfg.eval.metrics and name == "inception-v3-compat":
            inception_weights(cfg.eval.extractor_weights)
        elif "fid" in cfg.eval.metrics and name == "inception-torchscript":
            torchscript_weights(cfg.eval.extractor_weights)

    found, missing = {}, []
    for name, check in (("data", lambda: build_dataset(cfg)), ("score", score_model), ("extractor", extractor)):
        try:
            found[name] = check()
        except ConfigError as exc:
            missing.append(exc)
    if missing:
        first, *others = missing
        also = f" (also missing: {', '.join(e.key for e in others)})" if others else ""
        raise ConfigError(first.key, first.why + also)
    return found["data"]


def check_assets(cfg: RunConfig) -> None:
    """Everything about the shared assets that can refuse a run, first: missing image data, score
    model or extractor weights, a score model that does not fit the data (pretrained first when
    `score.pretrain` asks). Raises ConfigError naming the key. Toy kinds have nothing to refuse."""
    if cfg.score.kind == "diffusers":
        dataset = _check_image_inputs(cfg)
        if not os.path.exists(cfg.score.path) and cfg.score.pretrain.steps > 0:
            log.info("pretraining the score model into %s (%d steps)", cfg.score.path, cfg.score.pretrain.steps)
            resolve("smart.score.pretrain:pretrain")(cfg, dataset, cfg.score.path)
        build_score_model(cfg, dataset)  # the model loads and fits the data (ConfigError otherwise)


def prepare_assets(cfg: RunConfig) -> None:
    """Idempotent: each step computes into its cache only what is not there yet. `check_assets`
    first, then the metrics' reference statistics and extractors."""
    check_assets(cfg)
    prepare_metrics(cfg)
