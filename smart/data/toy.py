"""2-D Gaussian mixtures with exact sampling, density and noised score (the paper's toy example)."""
from __future__ import annotations

import math

import torch


class GaussianMixture2D:
    """Σ_k π_k N(μ_k, s²I) with equal weights. Under x_t = α x + σ ε the marginal stays a mixture,
    Σ_k π_k N(α μ_k, (α² s² + σ²) I), so the noise-prediction target ε*(x_t) = −σ ∇log p_t is exact."""

    domain = "toy"
    conditional = False
    num_classes = 0

    def __init__(self, means: torch.Tensor, std: float, name: str = "mixture"):
        self.means = means.to(torch.float32)
        self.std = float(std)
        self.name = name

    @property
    def num_modes(self) -> int:
        return self.means.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return (2,)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(self.num_modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        return self.means[idx] + self.std * noise

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, None]:
        """The dataset protocol shared with image data: (samples, labels); mixtures have no labels."""
        return self.sample(n, generator), None

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> None:
        return None

    def _components(self, x: torch.Tensor, alpha, var):
        """Per-component log densities of the noised mixture, shape (B, K); alpha, var: scalars or (B,)."""
        alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        var = torch.as_tensor(var, dtype=x.dtype, device=x.device).reshape(-1, 1)
        diff = x[:, None, :] - alpha * self.means.to(x)
        return -(diff**2).sum(-1) / (2 * var) - torch.log(2 * math.pi * var) - math.log(self.num_modes)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._components(x, 1.0, self.std**2), dim=-1)

    def noised_log_prob(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._components(x_t, alpha, alpha**2 * self.std**2 + sigma**2), dim=-1)

    def eps(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact ε*(x_t, t) = σ Σ_k r_k (x_t − α μ_k) / v, differentiable in x_t."""
        var = alpha**2 * self.std**2 + sigma**2  # (B,)
        resp = torch.softmax(self._components(x_t, alpha, var), dim=-1)  # (B, K)
        centre = resp @ self.means.to(x_t)  # Σ r_k μ_k
        return (sigma / var)[:, None] * (x_t - alpha[:, None] * centre)

    def distance_in_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance to the nearest mode in units of the mode std, and that mode's index."""
        d = torch.cdist(x.to(torch.float32), self.means.to(x.device))
        dist, idx = d.min(dim=1)
        return dist / self.std, idx

    def cache_key(self) -> str:
        return f"{self.name}-std{self.std:g}"


def ring8(std: float) -> GaussianMixture2D:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return GaussianMixture2D(torch.stack([angles.cos(), angles.sin()], dim=1), std, "ring8")


def grid25(std: float) -> GaussianMixture2D:
    ticks = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return GaussianMixture2D(torch.stack([gx.flatten(), gy.flatten()], dim=1), std, "grid25")


TOY_MIXTURES = {"ring8": ring8, "grid25": grid25}


def from_config(cfg) -> GaussianMixture2D:
    """The registered builder of the `ring8` and `grid25` kinds."""
    return TOY_MIXTURES[cfg.data.kind](cfg.data.std)
