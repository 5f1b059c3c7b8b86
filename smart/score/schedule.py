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
        sched = DDPMScheduler(num_train_timesteps=num_timesteps, beta_schedule=DIFFUSERS_NAMES[name])
        return cls(sched.alphas_cumprod.to(torch.float64))

    @classmethod
    def from_scheduler(cls, scheduler) -> "Schedule":
        """Take the schedule of any diffusers scheduler that has `alphas_cumprod`."""
        return cls(torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64))

    def __len__(self) -> int:
        return self.alphas_cumprod.numel()

    def alpha_sigma(self, t: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """α_t, σ_t for integer timesteps t (any shape), on t's device."""
        acp = self.alphas_cumprod.to(t.device)[t.long()]
        return acp.sqrt().to(dtype), (1 - acp).sqrt().to(dtype)
