"""Mode coverage of toy data and where samples sit relative to the real manifold."""
from __future__ import annotations

import torch

ON_MANIFOLD_STD = 3.0   # within 3 std of a mode: a high-quality sample
OFF_MANIFOLD_STD = 4.0  # farther than 4 std from every mode: off the real manifold
MIN_MODE_SHARE = 0.25   # a mode is covered when it gets ≥ 25% of its fair share of samples


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


def modes(ctx, samples) -> dict[str, float]:
    """The registered `modes` metric."""
    return mode_stats(ctx.dataset, samples)
