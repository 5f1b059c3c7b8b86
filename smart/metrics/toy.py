"""Toy-mixture metrics: FID in a fixed RBF feature space, mode coverage, and the paper's
on/off-manifold story (share of off-manifold mass; gradient norms on and off the manifold)."""
from __future__ import annotations

import math

import torch

from smart.metrics import register
from smart.metrics.fid import (SampleDataset, ToyRBFExtractor, cache_name, frechet_distance,
                               reference_statistics)

ON_MANIFOLD_STD = 3.0   # within 3 std of a mode: a high-quality sample
OFF_MANIFOLD_STD = 4.0  # farther than 4 std from every mode: off the real manifold
MIN_MODE_SHARE = 0.25   # a mode is covered when it gets ≥ 25% of its fair share of samples


_REF_SEED = 2**31 - 1  # fixed: the reference sample never depends on the run's seed


def _reference(cfg, mixture) -> tuple[SampleDataset, str]:
    """The exact-sampler reference set (lazy) and its statistics' cache name."""
    n = cfg.eval.num_samples
    name = cache_name(f"toy-{cfg.data.kind}", mixture.cache_key(cfg.data.kind), f"n{n}",
                      f"seed{_REF_SEED}", ToyRBFExtractor.weights_hash())
    return SampleDataset(lambda: mixture.sample(n, torch.Generator().manual_seed(_REF_SEED)), n), name


def prepare_toy_fid(cfg) -> None:
    from smart.data import build_dataset

    reference, name = _reference(cfg, build_dataset(cfg))
    reference_statistics(reference, extractor=ToyRBFExtractor.NAME, layer=ToyRBFExtractor.LAYER,
                         reference_cache=name, cache_dir=cfg.eval.cache_dir, cuda=False)


@register("fid", prepare=prepare_toy_fid)
def toy_fid(trainer, samples):
    reference, name = _reference(trainer.cfg, trainer.dataset)
    fid = frechet_distance(
        SampleDataset(samples.cpu(), samples.shape[0]), reference,
        extractor=ToyRBFExtractor.NAME, layer=ToyRBFExtractor.LAYER, reference_cache=name,
        cache_dir=trainer.cfg.eval.cache_dir, cuda=False,
    )
    return {"fid": max(fid, 0.0)}


def mode_stats(mixture, samples) -> dict[str, float]:
    dist, idx = mixture.distance_in_std(samples.cpu())
    near = dist <= ON_MANIFOLD_STD
    counts = torch.bincount(idx[near], minlength=mixture.num_modes)
    fair = samples.shape[0] / mixture.num_modes
    return {
        "modes_covered": float((counts >= MIN_MODE_SHARE * fair).sum()),
        "hq_ratio": float(near.float().mean()),
        "off_manifold_ratio": float((dist > OFF_MANIFOLD_STD).float().mean()),
    }


@register("modes")
def toy_modes(trainer, samples):
    return mode_stats(trainer.dataset, samples)


@register("grad_norms")
def gradient_norms(trainer, samples):
    """Per-sample ‖∇_x L_adv‖ and ‖∇_x L_score‖ (unweighted) at the current G's outputs, averaged
    over on-manifold and off-manifold samples. The paper's claim: the first vanishes off the
    manifold while the second keeps pushing."""
    gen = torch.Generator().manual_seed(trainer.cfg.seed + 7919)
    x = trainer.generate(trainer.cfg.eval.grad_samples, generator=gen, ema=False).requires_grad_(True)
    adv_out = torch.nn.functional.softplus(-trainer.D(x)).sum()
    (g_adv,) = torch.autograd.grad(adv_out, x)
    surrogate, _ = trainer.smart.per_sample(x, generator=gen)
    (g_smart,) = torch.autograd.grad(surrogate.sum(), x)
    dist, _ = trainer.dataset.distance_in_std(x.detach().cpu())
    on, off = dist <= ON_MANIFOLD_STD, dist > OFF_MANIFOLD_STD
    out = {}
    for name, g in (("adv", g_adv), ("smart", g_smart)):
        norms = g.flatten(1).norm(dim=1).cpu()
        out[f"grad_{name}_on"] = float(norms[on].mean()) if on.any() else math.nan
        out[f"grad_{name}_off"] = float(norms[off].mean()) if off.any() else math.nan
    return out
