"""What a run config builds — the dataset, the networks (G, D and G's EMA copy) and the frozen score
model — for training (smart.loop) and for evaluating a checkpoint (smart.evaluate, smart.generate)
alike; and drawing a generator's inputs."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from smart.data import build_dataset
from smart.nets import build_networks
from smart.score import build_score_model

__all__ = ["Models", "build_models", "draw_inputs", "generate", "generation_chunk"]


@dataclass
class Models:
    dataset: Any
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    score_model: nn.Module


def build_models(cfg, device: torch.device) -> Models:
    """The run's parts, the nets initialised from cfg.seed without touching torch's global stream."""
    dataset = build_dataset(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        G, D = build_networks(cfg, dataset.shape, dataset.num_classes)
    G, D = G.to(device), D.to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    return Models(dataset, G, D, G_ema, build_score_model(cfg, dataset).to(device))


def generation_chunk(dataset) -> int:
    """Samples per generator call when producing many."""
    return 4096 if dataset.domain == "toy" else 256


def draw_inputs(n: int, z_dim: int, dataset, generator: torch.Generator, device):
    """Latents and (conditional data only) class labels drawn from the data's label distribution."""
    z = torch.randn(n, z_dim, generator=generator).to(device)
    labels = dataset.sample_labels(n, generator)
    return z, None if labels is None else labels.to(device)


@torch.no_grad()
def generate(net, dataset, n: int, generator: torch.Generator, device, labels: torch.Tensor | None = None):
    """(samples, labels) of `net`, in chunks; labels drawn from the data unless given (then (n,))."""
    xs, cs = [], []
    chunk = generation_chunk(dataset)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        if labels is None:
            z, c = draw_inputs(m, net.z_dim, dataset, generator, device)
        else:
            z, c = torch.randn(m, net.z_dim, generator=generator).to(device), labels[i:i + m].to(device)
        xs.append(net(z, c))
        cs.append(c)
    return torch.cat(xs), None if cs[0] is None else torch.cat(cs)
