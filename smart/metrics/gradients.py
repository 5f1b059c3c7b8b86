"""The `grad_norms` metric: per-sample ‖∇_x L_adv‖ and ‖∇_x L_score‖ (unweighted) at the current G's
outputs, from the objective's own loss terms. Where the dataset measures the distance to its
manifold (toy kinds) they are averaged on it and off it — the paper's claim: the adversarial
gradient vanishes off the manifold while the score term keeps pushing — else over all samples."""
from __future__ import annotations

import torch

from smart.metrics.modes import on_off_means

_SEED_OFFSET = 7919  # its own stream of latents, t and ε


def grad_norms(ctx, samples) -> dict[str, float]:
    gen = torch.Generator().manual_seed(ctx.seed + _SEED_OFFSET)
    n = ctx.cfg.eval.grad_samples
    split = hasattr(ctx.dataset, "distance_in_std")
    norms: dict[str, list[torch.Tensor]] = {"adv": [], "smart": []}
    distances = []
    for start in range(0, n, ctx.chunk):
        x, labels = ctx.generate(min(ctx.chunk, n - start), generator=gen, ema=False, with_labels=True)
        x.requires_grad_(True)
        adversarial = ctx.objective.adversarial.generator_per_sample(ctx.D(x, labels))
        (g_adv,) = torch.autograd.grad(adversarial.sum(), x)
        surrogate, _ = ctx.objective.smart.per_sample(x, labels, generator=gen)
        (g_smart,) = torch.autograd.grad(surrogate.sum(), x)
        for name, g in (("adv", g_adv), ("smart", g_smart)):
            norms[name].append(g.flatten(1).norm(dim=1).cpu())
        if split:
            distances.append(ctx.dataset.distance_in_std(x.detach().cpu())[0])
    out = {}
    for name, chunks in norms.items():
        if not split:
            out[f"grad_{name}"] = sum(float(c.sum()) for c in chunks) / n
            continue
        out.update(on_off_means(torch.cat(chunks), torch.cat(distances), f"grad_{name}"))
    return out
