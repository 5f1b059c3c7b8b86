"""The evaluation context (stylegan2-ada's MetricOptions): what a metric, a snapshot or a sample CLI
may read of a run — never the Trainer itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from smart.errors import ConfigError
from smart.losses import Objective
from smart.devices import config_device
from smart.models import build_models, generate, generation_chunk

EVAL_SEED_OFFSET = 1_000_003  # eval samples use their own stream, never the training one


@dataclass(frozen=True)
class EvalContext:
    cfg: Any             # the RunConfig (eval options in cfg.eval)
    dataset: Any         # the real distribution (smart.data.Dataset)
    G_ema: nn.Module     # what is evaluated
    G: nn.Module         # the generator being trained (gradient diagnostics)
    D: nn.Module
    objective: Any       # smart.losses.Objective: the loss terms, incl. SMaRt's per-sample surrogate
    device: torch.device
    kimg: float = 0.0

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def chunk(self) -> int:
        """Samples per generator call."""
        return generation_chunk(self.dataset)

    def generate(self, n: int, generator: torch.Generator | None = None, ema: bool = True,
                 with_labels: bool = False, labels: torch.Tensor | None = None):
        """n samples of G_ema (or the current G) without gradients, from the eval stream unless a
        generator is given; with their labels (None for unconditional data) when `with_labels`.
        `labels` fixes the classes instead of drawing them from the data."""
        generator = generator or torch.Generator().manual_seed(self.cfg.seed + EVAL_SEED_OFFSET)
        x, drawn = generate(self.G_ema if ema else self.G, self.dataset, n, generator, self.device, labels)
        return (x, drawn) if with_labels else x


def load_context(state: dict, cfg) -> EvalContext:
    """An evaluation context of a checkpoint's nets (read with smart.checkpoint.read_checkpoint)
    under `cfg`: no optimizers are built. Weights that do not fit `cfg` are a ConfigError; nets
    the state lacks (a kept generator holds G_ema only) keep their initial weights."""
    device = config_device(cfg.device)
    models = build_models(cfg, device)
    for name in (n for n in ("G", "D", "G_ema") if n in state):
        try:
            getattr(models, name).load_state_dict(state[name])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError("checkpoint", f"its {name} weights do not fit the config ({first})") from None
    objective = Objective(cfg, models.G, models.D, models.score_model)
    return EvalContext(cfg, models.dataset, models.G_ema, models.G, models.D, objective, device,
                       state["progress"]["cur_nimg"] / 1000)
