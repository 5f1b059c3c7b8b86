"""Frozen score models: a noise schedule plus ε(x_t, t, labels)."""
from __future__ import annotations

import torch
from torch import nn

from smart.score.schedule import Schedule


class ScoreModel(nn.Module):
    """Protocol: `schedule` and `eps(x_t, t, labels)`. Always frozen: eval mode, no parameter grads,
    but differentiable with respect to x_t (SMaRt's Jacobian mode backpropagates through it)."""

    schedule: Schedule

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def freeze(self) -> "ScoreModel":
        self.eval()
        self.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "ScoreModel":  # a frozen model never leaves eval mode
        return super().train(False)


class AnalyticMixtureScore(ScoreModel):
    """Ground-truth ε* of a Gaussian mixture under the schedule (the paper's toy example)."""

    def __init__(self, mixture, schedule: Schedule):
        super().__init__()
        self.mixture = mixture
        self.schedule = schedule

    def eps(self, x_t, t, labels=None):
        alpha, sigma = self.schedule.alpha_sigma(t, x_t.dtype)
        return self.mixture.eps(x_t, alpha, sigma)


def build_score_model(cfg, dataset) -> ScoreModel:
    """The frozen ε_θ named by `cfg.score`: the exact mixture score, or a diffusers UNet."""
    if cfg.score.kind == "diffusers":
        from smart.score.unet import build_diffusers_score

        return build_diffusers_score(cfg, dataset)
    schedule = Schedule.named(cfg.score.schedule, cfg.score.num_timesteps)
    return AnalyticMixtureScore(dataset, schedule).freeze()


__all__ = ["ScoreModel", "AnalyticMixtureScore", "Schedule", "build_score_model"]
