"""Losses as small callables: the adversarial game (with lazy R1) and SMaRt."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AdversarialLoss:
    """Non-saturating logistic loss; R1 penalty γ/2·E‖∇_x D(x_real)‖² for D."""

    r1_gamma: float

    @staticmethod
    def generator(d_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-d_fake).mean()

    @staticmethod
    def discriminator(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(d_fake).mean() + F.softplus(-d_real).mean()

    def r1(self, D, real: torch.Tensor, labels=None) -> torch.Tensor:
        real = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(real, labels).sum(), real, create_graph=True)
        return 0.5 * self.r1_gamma * grad.square().flatten(1).sum(1).mean()


class ScoreMatchingRegularity:
    """SMaRt: λ·E_{t,ε}‖ε_θ(α_t x + σ_t ε, t, c) − ε‖² on generated x (mean over elements).

    `jacobian` (paper): the gradient flows through the frozen score network into x.
    `sds` (a cheaper variant of ours, not the paper's): the score network's Jacobian is dropped,
    ∂L/∂x = 2·α_t·(ε_θ − ε)/N per element (N = elements averaged), i.e. the jacobian-mode gradient
    with J = I, so λ keeps the same scale in both modes.
    """

    def __init__(self, score_model, weight: float, interval: int, t_min: int, t_max: int,
                 mode: str = "jacobian", scale_by_interval: bool = False, start_kimg: float = 0.0):
        self.score_model = score_model
        self.weight, self.interval = float(weight), int(interval)
        self.t_min, self.t_max = int(t_min), int(t_max)
        self.mode, self.start_kimg = mode, float(start_kimg)
        self.effective_weight = self.weight * (self.interval if scale_by_interval else 1)

    @classmethod
    def from_config(cls, score_model, reg) -> "ScoreMatchingRegularity":
        return cls(score_model, reg.weight, reg.interval, reg.t_min, reg.t_max, reg.mode,
                   reg.scale_by_interval, reg.start_kimg)

    def active(self, g_step: int, kimg: float) -> bool:
        """Lazy strategy: on every k-th generator step (counting from 0), after the warm-up."""
        return self.weight > 0 and kimg >= self.start_kimg and g_step % self.interval == 0

    def per_sample(self, x: torch.Tensor, labels=None, generator: torch.Generator | None = None):
        """(surrogate, value): per-sample losses whose gradient w.r.t. x is the mode's gradient,
        and the score-matching error itself (for logging). Unweighted."""
        n = x.shape[0]
        t = torch.randint(self.t_min, self.t_max + 1, (n,), generator=generator).to(x.device)
        noise = torch.randn(x.shape, generator=generator).to(x)
        alpha, sigma = self.score_model.schedule.alpha_sigma(t, x.dtype)
        bshape = (n,) + (1,) * (x.dim() - 1)
        x_t = alpha.view(bshape) * x + sigma.view(bshape) * noise
        if self.mode == "jacobian":
            err = (self.score_model.eps(x_t, t, labels) - noise).square().flatten(1).mean(1)
            return err, err.detach()
        with torch.no_grad():
            resid = self.score_model.eps(x_t.detach(), t, labels) - noise
        numel = x[0].numel()
        surrogate = (2 * alpha.view(bshape) * resid * x).flatten(1).sum(1) / numel
        return surrogate, resid.square().flatten(1).mean(1)

    def __call__(self, x, labels=None, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss to add to L_G, unweighted score-matching error for logging)."""
        surrogate, value = self.per_sample(x, labels, generator)
        return self.effective_weight * surrogate.mean(), value.mean()
