"""Discrete diffusion noise schedules: α_t = sqrt(ᾱ_t), σ_t = sqrt(1 − ᾱ_t) for integer t."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

# diffusers' names for the schedules we expose; `cosine` is ADM's (Nichol & Dhariwal) schedule.
DIFFUSERS_NAMES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


@dataclass(frozen=True)
class Schedule:
    alphas_cumprod: torch.Tensor  # (T,), float64

    @classmethod
    def named(cls, name: str, num_timesteps: int = 1000) -> "Schedule":
        """The analytic toy score is exact under whatever ᾱ it is given, so the toy keeps diffusers'
        float32 ᾱ here (the published toy figures were computed with it)."""
        sched = DDPMScheduler(num_train_timesteps=num_timesteps, beta_schedule=DIFFUSERS_NAMES[name])
        return cls(sched.alphas_cumprod.to(torch.float64))

    @classmethod
    def from_scheduler(cls, scheduler) -> "Schedule":
        """The schedule of any diffusers scheduler with `betas` (or `alphas_cumprod`). ᾱ is the float64
        product of its betas: diffusers' own float32 cumprod is off by up to 3e-7, which puts σ_t off by
        1e-5 (relative) in SMaRt's low-noise band and 3e-4 at t = 0."""
        betas = getattr(scheduler, "betas", None)
        if betas is None:
            return cls(torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64))
        return cls(torch.cumprod(1 - torch.as_tensor(betas, dtype=torch.float64), 0))

    def __len__(self) -> int:
        return self.alphas_cumprod.numel()

    def alpha_sigma(self, t: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """α_t, σ_t for integer timesteps t (any shape), on t's device."""
        acp = self.alphas_cumprod.to(t.device)[t.long()]
        return acp.sqrt().to(dtype), (1 - acp).sqrt().to(dtype)
