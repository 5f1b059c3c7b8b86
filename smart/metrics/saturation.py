"""The `saturation` metric: the discriminator's logits on the current G's samples, and the share of
them where D is saturated — the premise of SMaRt (Arjovsky & Bottou 2017's vanishing gradient): a
generated sample that D separates with confidence gets almost no adversarial gradient under the
original minimax loss. Saturated: D(x) = sigmoid(logit) < SATURATED_PROB, so that the minimax
generator loss's derivative with respect to the logit, sigmoid(logit), is below it. Where the dataset
measures the distance to its manifold (toy kinds) the logits are also averaged on it and off it."""
from __future__ import annotations

import math

import torch

from smart.metrics.modes import on_off_means

SATURATED_PROB = 0.01
SATURATED_LOGIT = math.log(SATURATED_PROB / (1 - SATURATED_PROB))  # ≈ −4.6
_SEED_OFFSET = 104_729  # its own stream of latents and real samples


@torch.no_grad()
def saturation(ctx, samples) -> dict[str, float]:
    gen = torch.Generator().manual_seed(ctx.seed + _SEED_OFFSET)
    n = ctx.cfg.eval.grad_samples
    split = hasattr(ctx.dataset, "distance_in_std")
    logits, real_logits, distances = [], [], []
    for start in range(0, n, ctx.chunk):
        m = min(ctx.chunk, n - start)
        x, labels = ctx.generate(m, generator=gen, ema=False, with_labels=True)
        logits.append(ctx.D(x, labels).float().cpu())
        real, real_labels = ctx.dataset.batch(m, gen)
        real_labels = None if real_labels is None else real_labels.to(ctx.device)
        real_logits.append(ctx.D(real.to(ctx.device), real_labels).float().cpu())
        if split:
            distances.append(ctx.dataset.distance_in_std(x.cpu())[0])
    fake = torch.cat(logits)
    out = {"d_logit_real": float(torch.cat(real_logits).mean()),
           "d_saturated": float((fake < SATURATED_LOGIT).float().mean())}
    if split:
        out.update(on_off_means(fake, torch.cat(distances), "d_logit"))
    else:
        out["d_logit_fake"] = float(fake.mean())
    return out
