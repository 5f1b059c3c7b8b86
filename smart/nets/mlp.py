"""Small MLP generator and discriminator for toy data (any sample shape, flattened)."""
from __future__ import annotations

import math

import torch
from torch import nn


def _mlp(d_in: int, hidden: int, layers: int, d_out: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.LeakyReLU(0.2)]
    mods.append(nn.Linear(hidden, d_out))
    return nn.Sequential(*mods)


class MLPGenerator(nn.Module):
    conditional = False

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: int = 128, layers: int = 3):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        self.net = _mlp(z_dim, hidden, layers, math.prod(self.out_shape))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], hidden: int = 128, layers: int = 3):
        super().__init__()
        self.net = _mlp(math.prod(in_shape), hidden, layers, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


def generator(cfg, sample_shape, num_classes: int = 0) -> MLPGenerator:
    """The registered builder of generator.arch mlp."""
    return MLPGenerator(cfg.z_dim, sample_shape, cfg.hidden, cfg.layers)


def discriminator(cfg, sample_shape, num_classes: int = 0) -> MLPDiscriminator:
    """The registered builder of discriminator.arch mlp."""
    return MLPDiscriminator(sample_shape, cfg.hidden, cfg.layers)
