"""Frozen score models ε_θ: the `score` config sections of the built-in kinds and building one.

Declarations only (no torch import); the interface is `smart.score.base.ScoreModel`, the builders,
`builder(cfg: RunConfig, dataset) -> ScoreModel`, live in analytic.py and unet.py. A new kind is one
registration: `SCORE_MODELS.register("mine", build, config=MyScoreConfig)` (a ScoreConfig subclass).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from smart.config import ConfigError, ScoreConfig, Section
from smart.registry import SCORE_MODELS

if TYPE_CHECKING:
    from smart.config import RunConfig
    from smart.score.base import ScoreModel


class AnalyticScoreConfig(ScoreConfig):
    """The exact ε* of a toy dataset under `schedule`."""

    domains: ClassVar[tuple[str, ...]] = ("toy",)


class PretrainConfig(Section):
    """A small class-conditional DDPM that `prepare_assets` (or `python -m smart.score.pretrain`)
    trains into score.path when it is missing."""

    steps: int = Field(0, ge=0, description="training steps; 0: never pretrain (a missing score model is an error)")
    batch_size: int = Field(64, ge=1, description="images per pretraining step")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (cosine schedule with warm-up)")
    channels: list[int] = Field([32, 64, 64], description="UNet block widths, one per resolution level "
                                "(multiples of 8)")
    layers_per_block: int = Field(1, ge=1, description="resnet layers per UNet block")
    seed: int = Field(0, ge=0, description="seed of the pretraining run")
    autocast: Literal["none", "bf16"] = Field("none", description="pretraining mixed precision on CUDA "
                                              "(bf16 autocast of the UNet; its weights and optimizer stay fp32)")
    checkpoint_every: int = Field(500, ge=1, description="steps between resumable checkpoints (DIR.partial.pt, "
                                  "removed when the model is saved)")

    @field_validator("channels")
    @classmethod
    def _multiples_of_8(cls, widths: list[int]) -> list[int]:
        if not widths or any(c < 8 or c % 8 for c in widths):
            raise ValueError("multiples of 8 expected")
        return widths


class DiffusersScoreConfig(ScoreConfig):
    """A frozen diffusers UNet2DModel and its scheduler (smart/score/unet.py)."""

    domains: ClassVar[tuple[str, ...]] = ("image",)
    path: str | None = Field(None, description="local save_pretrained dir (unet/ + scheduler/, or the dir "
                             "itself) or a hub id when online")
    prediction: Literal["auto", "epsilon", "v_prediction"] = Field(
        "auto", description="what the UNet predicts; auto: the scheduler config's prediction_type")
    learned_variance: bool | None = Field(None, description="UNet outputs 2C channels (ε first); "
                                          "None: when out_channels == 2·in_channels")
    autocast: Literal["none", "bf16", "fp16"] = Field("none", description="score-model autocast on CUDA")
    pretrain: PretrainConfig = PretrainConfig()

    def check(self, run: RunConfig) -> None:
        if not self.path:
            raise ConfigError("score.path", "required for score.kind diffusers (a local model dir or a hub id)")


def is_hub_id(path: str) -> bool:
    """`owner/name` that is not a local path: score.path names a model on the Hugging Face hub."""
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not path.startswith((".", "~")) and not os.path.exists(parts[0])


def missing_model_error(path: str, data_kind: str | None = None) -> ConfigError:
    if data_kind == "imagenet64":  # the paper's score model is OpenAI's released ADM
        return ConfigError("score.path", f"no score model at {path}; download OpenAI's 64x64_diffusion.pt "
                           "(github.com/openai/guided-diffusion) and convert it with `python -m smart.score."
                           f"convert_adm 64x64_diffusion.pt --preset imagenet64 --out {path}` (docs/adm.md)")
    return ConfigError("score.path", f"no score model at {path}; pretrain one with `python -m smart.score.pretrain "
                       f"CONFIG.yaml --set score.pretrain.steps=3000 --out {path}` or set score.pretrain.steps to "
                       "have it trained up front")


def build_score_model(cfg: RunConfig, dataset) -> ScoreModel:
    """The frozen ε_θ named by `cfg.score`."""
    return SCORE_MODELS.get(cfg.score.kind).load()(cfg, dataset)


SCORE_MODELS.register("analytic", "smart.score.analytic:build", config=AnalyticScoreConfig)
SCORE_MODELS.register("diffusers", "smart.score.unet:build_diffusers_score", config=DiffusersScoreConfig)
