"""Metrics: their interface, the built-in metrics and FID extractors, and the names a run reports.

Declarations only (no torch import). A metric is registered in smart.registry.METRICS as

    METRICS.register(name, fn, reports={...} or reports(cfg) -> set, prepare=prepare(cfg),
                     prepared=prepared(cfg) -> bool, domains=("toy", "image"))

with `fn(ctx: EvalContext, samples) -> {name: value}` (smart.context.EvalContext: the generators,
D, the objective's loss terms, the dataset, the run config; samples: the EMA generator's
eval.num_samples), `reports` the names fn returns for a config (default {name}), `prepare` the
shared work done once before any run (reference statistics), `prepared` a cheap check (no torch)
that it is done already, and `domains` the data it applies to.
An FID extractor is registered in FID_EXTRACTORS as `setup(cfg, dataset) -> FidSetup`
(smart.metrics.frechet) with `domain=` the data it reads and `default_for=` the domain whose
`eval.fid_extractor: auto` it is.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from smart.phases import loss_names
from smart.registry import FID_EXTRACTORS, METRICS, resolve

if TYPE_CHECKING:
    import torch

    from smart.config import RunConfig
    from smart.context import EvalContext

TRAINER_STATS = ("kimg_per_s", "smart_share", "sec_per_eval")  # the trainer's own, beside kimg and the losses


class Metric(Protocol):
    """`fn(ctx, samples) -> {name: value}` for every name its registration `reports` for the run's
    config; `prepare(cfg)`, if registered, has already run once (reference statistics, extractors)."""

    def __call__(self, ctx: EvalContext, samples: torch.Tensor) -> dict[str, float]: ...


def default_cache_dir() -> str:
    """Where reference statistics and trained extractors are cached unless eval.cache_dir says."""
    return os.environ.get("SMART_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "smart")


def metric_names(name: str, cfg: RunConfig) -> set[str]:
    """The names metric `name` reports for `cfg`."""
    entry = METRICS.get(name)
    reports = entry.info.get("reports", {name})
    return set(reports(cfg) if callable(reports) else reports)


def reported_metrics(cfg: RunConfig) -> set[str]:
    """Every name an eval of a run of `cfg` reports: its metrics', the losses', the trainer's."""
    names = {"kimg", *TRAINER_STATS, *loss_names(cfg)}
    for name in cfg.eval.metrics:
        names |= metric_names(name, cfg)
    return names


def compute_metrics(names, ctx: EvalContext, samples) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        out.update(METRICS.get(name).load()(ctx, samples))
    return out


def prepare_metrics(cfg: RunConfig) -> None:
    """Each configured metric's shared, cached work (reference statistics, extractors), once, up
    front; skipped where the metric's `prepared` check says it is done."""
    for name in cfg.eval.metrics:
        info = METRICS.get(name).info
        prepare, prepared = info.get("prepare"), info.get("prepared")
        if prepare is not None and not (prepared is not None and resolve(prepared)(cfg)):
            resolve(prepare)(cfg)


def _fid_reports(cfg: RunConfig) -> set[str]:
    image = FID_EXTRACTORS.get(cfg.eval.extractor_for(cfg.data)).info["domain"] == "image"
    return {"fid", "fid_samples", "fid_extractor"} if image else {"fid"}


def _grad_reports(cfg: RunConfig) -> set[str]:
    if cfg.data.domain == "toy":  # toy kinds measure the distance to the manifold
        return {f"grad_{term}_{side}" for term in ("adv", "smart") for side in ("on", "off")}
    return {"grad_adv", "grad_smart"}


def _mode_reports(cfg: RunConfig) -> set[str]:
    names = {"modes_covered", "hq_ratio", "off_manifold_ratio"}
    if getattr(cfg.data, "ambient_dim", 2) > 2:  # a mixture embedded in R^d: its spread across the plane
        names |= {"normal_spread", "normal_spread_ratio"}
    return names


def _saturation_reports(cfg: RunConfig) -> set[str]:
    split = {"d_logit_on", "d_logit_off"} if cfg.data.domain == "toy" else {"d_logit_fake"}
    return {"d_logit_real", "d_saturated", *split}


METRICS.register("fid", "smart.metrics.frechet:fid", prepare="smart.metrics.frechet:prepare_fid",
                 prepared="smart.metrics.reference:toy_statistics_cached",
                 reports=_fid_reports)
METRICS.register("modes", "smart.metrics.modes:modes", domains=("toy",), reports=_mode_reports)
METRICS.register("grad_norms", "smart.metrics.gradients:grad_norms", reports=_grad_reports)
METRICS.register("saturation", "smart.metrics.saturation:saturation", reports=_saturation_reports)

FID_EXTRACTORS.register("toy-rbf", "smart.metrics.frechet:toy_rbf", domain="toy", default_for="toy")
FID_EXTRACTORS.register("classifier", "smart.metrics.frechet:classifier", domain="image", default_for="image")
FID_EXTRACTORS.register("inception-v3-compat", "smart.metrics.frechet:inception_v3_compat", domain="image")
FID_EXTRACTORS.register("inception-torchscript", "smart.metrics.frechet:inception_torchscript", domain="image")
