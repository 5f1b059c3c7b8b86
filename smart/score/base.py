"""The interface of a frozen score model ε_θ."""
from __future__ import annotations

import torch
from torch import nn

from smart.score.schedule import Schedule


class ScoreModel(nn.Module):
    """`schedule` and `eps(x_t, t, labels)`: the noise prediction at integer timesteps t. Always
    frozen: eval mode, no parameter grads, but differentiable with respect to x_t (SMaRt's Jacobian
    mode backpropagates through it)."""

    schedule: Schedule

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def freeze(self) -> "ScoreModel":
        self.eval()
        self.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "ScoreModel":  # a frozen model never leaves eval mode
        return super().train(False)
