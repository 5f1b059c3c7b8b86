"""Gaussian mixtures on a plane, in R^2 or embedded in R^d, with exact sampling, density and noised
score (the paper's toy example, and the thin-manifold version of it that its premise is about)."""
from __future__ import annotations

import math

import torch

from smart.data import EMBED_SEED, mixture_key


def embedding(ambient_dim: int) -> torch.Tensor:
    """A fixed (d, d) orthonormal matrix, float64: its first two columns span the data plane, the
    others the normal directions. Seeded, so every run of a given d sees the same manifold."""
    gen = torch.Generator().manual_seed(EMBED_SEED + ambient_dim)
    q, r = torch.linalg.qr(torch.randn(ambient_dim, ambient_dim, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # the unique Q with a positive-diagonal R


class GaussianMixture2D:
    """Σ_k π_k N(μ_k, s²I) with equal weights on a plane. Under x_t = α x + σ ε the marginal stays a
    mixture, Σ_k π_k N(α μ_k, (α² s² + σ²) I), so the noise-prediction target ε*(x_t) = −σ ∇log p_t is
    exact.

    With `ambient_dim` d > 2 the plane is carried into R^d by the fixed orthonormal map `embedding(d)`
    and each sample gets N(0, s_n² I) in the d − 2 normal directions (s_n = `normal_std`, 0 allowed):
    each mode is a Gaussian whose covariance is diagonal in the plane/normal basis, so the noised
    density factorises into the planar mixture times N(0, (α² s_n² + σ²) I) across the plane, and the
    score stays closed form wherever σ > 0 (every t of a DDPM schedule). d = 2 is the planar mixture,
    numerically unchanged."""

    domain = "toy"
    conditional = False
    num_classes = 0

    def __init__(self, means: torch.Tensor, std: float, name: str = "mixture", ambient_dim: int = 2,
                 normal_std: float = 0.0):
        self.means = means.to(torch.float32)
        self.std = float(std)
        self.name = name
        self.ambient_dim = int(ambient_dim)
        self.normal_std = float(normal_std)
        self.basis = embedding(self.ambient_dim) if self.ambient_dim > 2 else None

    @property
    def num_modes(self) -> int:
        return self.means.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.ambient_dim,)

    # ---- the plane/normal basis ---------------------------------------------------------------
    def to_plane(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(in-plane coordinates (B, 2), normal coordinates (B, d − 2)) of points of R^d."""
        if self.basis is None:
            return x, x.new_zeros(x.shape[0], 0)
        y = x @ self.basis.to(x)
        return y[:, :2], y[:, 2:]

    def from_plane(self, plane: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Points of R^d from their in-plane and normal coordinates."""
        if self.basis is None:
            return plane
        return torch.cat([plane, normal], dim=1) @ self.basis.to(plane).T

    # ---- sampling -----------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(self.num_modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        plane = self.means[idx] + self.std * noise
        if self.basis is None:
            return plane
        normal = self.normal_std * torch.randn(n, self.ambient_dim - 2, generator=generator)
        return self.from_plane(plane, normal)

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, None]:
        """The dataset protocol shared with image data: (samples, labels); mixtures have no labels."""
        return self.sample(n, generator), None

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> None:
        return None

    # ---- density and score --------------------------------------------------------------------
    def _components(self, x: torch.Tensor, alpha, var):
        """Per-component log densities of the noised planar mixture at in-plane points x, shape (B, K);
        alpha, var: scalars or (B,)."""
        alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        var = torch.as_tensor(var, dtype=x.dtype, device=x.device).reshape(-1, 1)
        diff = x[:, None, :] - alpha * self.means.to(x)
        return -(diff**2).sum(-1) / (2 * var) - torch.log(2 * math.pi * var) - math.log(self.num_modes)

    def _normal_log_prob(self, normal: torch.Tensor, var) -> torch.Tensor:
        """log N(normal; 0, var·I) in the d − 2 normal directions (0 in the plane)."""
        if normal.shape[1] == 0:
            return normal.new_zeros(normal.shape[0])
        var = torch.as_tensor(var, dtype=normal.dtype, device=normal.device).reshape(-1)
        return -normal.square().sum(1) / (2 * var) - 0.5 * normal.shape[1] * torch.log(2 * math.pi * var)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self.basis is not None and self.normal_std == 0:
            raise ValueError("the clean density of a mixture with normal_std 0 is degenerate; use noised_log_prob")
        plane, normal = self.to_plane(x)
        return torch.logsumexp(self._components(plane, 1.0, self.std**2), dim=-1) + \
            self._normal_log_prob(normal, self.normal_std**2)

    def noised_log_prob(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        plane, normal = self.to_plane(x_t)
        planar = torch.logsumexp(self._components(plane, alpha, alpha**2 * self.std**2 + sigma**2), dim=-1)
        return planar + self._normal_log_prob(normal, alpha**2 * self.normal_std**2 + sigma**2)

    def eps(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact ε*(x_t, t): in the plane σ Σ_k r_k (x_t − α μ_k) / v, in the normal directions
        σ n / (α² s_n² + σ²); differentiable in x_t."""
        plane, normal = self.to_plane(x_t)
        var = alpha**2 * self.std**2 + sigma**2  # (B,)
        resp = torch.softmax(self._components(plane, alpha, var), dim=-1)  # (B, K)
        centre = resp @ self.means.to(x_t)  # Σ r_k μ_k
        eps_plane = (sigma / var)[:, None] * (plane - alpha[:, None] * centre)
        if self.basis is None:
            return eps_plane
        var_normal = alpha**2 * self.normal_std**2 + sigma**2
        return self.from_plane(eps_plane, (sigma / var_normal)[:, None] * normal)

    # ---- where samples sit --------------------------------------------------------------------
    def plane_distance_in_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """In-plane distance to the nearest mode in units of the mode std, and that mode's index
        (the normal coordinates are ignored: which mode a sample belongs to)."""
        plane, _ = self.to_plane(x.to(torch.float32))
        d = torch.cdist(plane, self.means.to(x.device))
        dist, idx = d.min(dim=1)
        return dist / self.std, idx

    def distance_in_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Euclidean distance in R^d to the nearest mode centre (in the plane and across it) in units
        of the in-plane mode std, and that mode's index; in R^2 the in-plane distance."""
        dist, idx = self.plane_distance_in_std(x)
        if self.basis is None:
            return dist, idx
        _, normal = self.to_plane(x.to(torch.float32))
        return torch.sqrt(dist.square() + normal.square().sum(1) / self.std**2), idx

    def normal_spread(self, x: torch.Tensor) -> float:
        """RMS of the normal coordinates per normal direction (the data's is normal_std); 0 in R^2."""
        _, normal = self.to_plane(x.to(torch.float32))
        return float(normal.square().mean().sqrt()) if normal.shape[1] else 0.0

    def fid_coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """What the toy FID features read: the points themselves in R^2; in R^d the in-plane
        coordinates and the distance from the plane, (B, 3) (features invariant to rotations about it)."""
        if self.basis is None:
            return x
        plane, normal = self.to_plane(x.to(torch.float32))
        return torch.cat([plane, normal.norm(dim=1, keepdim=True)], dim=1)

    def cache_key(self) -> str:
        return mixture_key(self.name, self.std, self.ambient_dim, self.normal_std)


def ring8(std: float, ambient_dim: int = 2, normal_std: float = 0.0) -> GaussianMixture2D:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return GaussianMixture2D(torch.stack([angles.cos(), angles.sin()], dim=1), std, "ring8", ambient_dim, normal_std)


def grid25(std: float, ambient_dim: int = 2, normal_std: float = 0.0) -> GaussianMixture2D:
    ticks = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return GaussianMixture2D(torch.stack([gx.flatten(), gy.flatten()], dim=1), std, "grid25", ambient_dim,
                             normal_std)


TOY_MIXTURES = {"ring8": ring8, "grid25": grid25}


def from_config(cfg) -> GaussianMixture2D:
    """The registered builder of the `ring8` and `grid25` kinds."""
    d = cfg.data
    return TOY_MIXTURES[d.kind](d.std, d.ambient_dim, d.normal_std)
