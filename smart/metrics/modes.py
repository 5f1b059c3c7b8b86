"""Mode coverage of toy data and where samples sit relative to the real manifold."""
from __future__ import annotations

import math

import torch

ON_MANIFOLD_STD = 3.0   # within 3 std of a mode: a high-quality sample
OFF_MANIFOLD_STD = 4.0  # farther than 4 std from every mode: off the real manifold
MIN_MODE_SHARE = 0.25   # a mode is covered when it gets ≥ 25% of its fair share of samples


def mode_stats(mixture, samples) -> dict[str, float]:
    """Modes covered and the high-quality share read the in-plane coordinates (which mode, how
    close within the plane); the off-manifold share reads the distance in the whole space, across
    the plane too. A mixture embedded in R^d also reports its normal spread: the RMS of the normal
    coordinates, and its ratio to the data's (NaN for data with normal_std 0)."""
    samples = samples.cpu()
    plane = getattr(mixture, "plane_distance_in_std", mixture.distance_in_std)
    near_dist, idx = plane(samples)
    dist, _ = mixture.distance_in_std(samples)
    near = near_dist <= ON_MANIFOLD_STD
    counts = torch.bincount(idx[near], minlength=mixture.num_modes)
    fair = samples.shape[0] / mixture.num_modes
    out = {
        "modes_covered": float((counts >= MIN_MODE_SHARE * fair).sum()),
        "hq_ratio": float(near.float().mean()),
        "off_manifold_ratio": float((dist > OFF_MANIFOLD_STD).float().mean()),
    }
    if getattr(mixture, "ambient_dim", 2) > 2:
        spread = mixture.normal_spread(samples)
        out["normal_spread"] = spread
        out["normal_spread_ratio"] = spread / mixture.normal_std if mixture.normal_std > 0 else math.nan
    return out


def on_off_means(values: torch.Tensor, dist: torch.Tensor, name: str) -> dict[str, float]:
    """Means of per-sample `values` on the manifold (≤ ON_MANIFOLD_STD) and off it (> OFF_MANIFOLD_STD),
    as {name}_on / {name}_off (NaN when no sample is there)."""
    out = {}
    for side, mask in (("on", dist <= ON_MANIFOLD_STD), ("off", dist > OFF_MANIFOLD_STD)):
        out[f"{name}_{side}"] = float(values[mask].mean()) if mask.any() else math.nan
    return out


def modes(ctx, samples) -> dict[str, float]:
    """The registered `modes` metric."""
    return mode_stats(ctx.dataset, samples)
