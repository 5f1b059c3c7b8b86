"""Generator and discriminator networks: their interfaces, the `generator`/`discriminator` config
sections of the built-in archs, and building them from a run config.

Declarations only (no torch import); builders, `builder(section, sample_shape, num_classes) ->
nn.Module`, live in mlp.py, stylegan2.py and aurora.py and are imported when first built. A new arch
is one registration: `GENERATORS.register("mine", build, config=MyConfig)` with MyConfig a
GeneratorConfig subclass (`domains` says which data it can generate; `check(run)` adds cross-field checks).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import Field, field_validator

from smart.config import ConfigError, DiscriminatorConfig, GeneratorConfig
from smart.registry import DISCRIMINATORS, GENERATORS

if TYPE_CHECKING:
    import torch

    from smart.config import RunConfig


class Generator(Protocol):
    """A torch module from latents to samples.

    `z_dim`: the trainer draws z ~ N(0, I) of shape (B, z_dim). `forward(z, labels)` returns (B,
    *dataset.shape) samples in the data's range; labels are (B,) class indices when the data is
    conditional, else None. Optional `aux_loss`: a scalar of the last forward that the objective
    adds to L_G with weight `aux_weight` (a field the arch's config then has). Randomness inside
    forward (StyleGAN2's noise) must come from torch's global RNG, which checkpoints carry.
    """

    z_dim: int

    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


class Discriminator(Protocol):
    """A torch module from samples (and labels) to (B,) logits. It must allow a double backward:
    the R1 penalty differentiates its input gradient."""

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


def _needs_power_of_two(run: RunConfig, arch: str) -> None:
    res = getattr(run.data, "image_resolution", None)
    if res is not None and res & (res - 1):
        raise ConfigError("data.resolution", f"{arch} nets need a power of two, got {res}")


class MLPGeneratorConfig(GeneratorConfig):
    """Fully connected generator for any sample shape (flattened); ignores labels."""

    hidden: int = Field(128, ge=1, description="hidden units per layer")
    layers: int = Field(3, ge=1, description="hidden layers")

    def check(self, run: RunConfig) -> None:
        if getattr(run.data, "conditional", False):
            takes_labels = [e.name for e in GENERATORS.entries() if e.info.get("labels")]
            raise ConfigError("data.conditional", f"the mlp generator ignores labels; use generator.arch "
                              f"{' or '.join(takes_labels)}")


class StyleGAN2GeneratorConfig(GeneratorConfig):
    """Mapping network + skip synthesis network (smart/nets/stylegan2.py)."""

    domains: ClassVar[tuple[str, ...]] = ("image",)
    w_dim: int = Field(128, ge=1, description="intermediate latent size")
    mapping_layers: int = Field(2, ge=1, description="layers of the mapping network")
    channel_base: int = Field(512, ge=1, description="channels at resolution r: min(base / r, max)")
    channel_max: int = Field(64, ge=1, description="most channels of any block")

    def check(self, run: RunConfig) -> None:
        _needs_power_of_two(run, self.arch)


class AuroraGeneratorConfig(StyleGAN2GeneratorConfig):
    """StyleGAN2 blocks plus attention blocks with a sparse mixture-of-experts feed-forward."""

    num_experts: int = Field(4, ge=1, description="experts per MoE feed-forward")
    attn_resolutions: list[int] = Field([8, 16], description="resolutions with attention blocks")
    num_heads: int = Field(2, ge=1, description="attention heads")
    aux_weight: float = Field(0.01, ge=0, description="weight of the MoE load-balancing loss in L_G")

    @field_validator("attn_resolutions")
    @classmethod
    def _powers_of_two(cls, resolutions: list[int]) -> list[int]:
        if any(r < 4 or r & (r - 1) for r in resolutions):
            raise ValueError("powers of two >= 4 expected")
        return resolutions


class MLPDiscriminatorConfig(DiscriminatorConfig):
    """Fully connected discriminator for any sample shape (flattened); ignores labels."""

    hidden: int = Field(128, ge=1, description="hidden units per layer")
    layers: int = Field(3, ge=1, description="hidden layers")


class StyleGAN2DiscriminatorConfig(DiscriminatorConfig):
    """Residual StyleGAN2 discriminator, projection-conditioned on labels."""

    domains: ClassVar[tuple[str, ...]] = ("image",)
    channel_base: int = Field(512, ge=1, description="channels at resolution r: min(base / r, max)")
    channel_max: int = Field(64, ge=1, description="most channels of any block")
    mbstd_group: int = Field(4, ge=1, description="minibatch-std group size")

    def check(self, run: RunConfig) -> None:
        _needs_power_of_two(run, self.arch)


def build_networks(cfg: RunConfig, sample_shape: tuple[int, ...], num_classes: int = 0):
    """(G, D) for data of `sample_shape` (without the batch dimension); num_classes > 0 makes
    the image nets class-conditional."""
    G = GENERATORS.get(cfg.generator.arch).load()(cfg.generator, sample_shape, num_classes)
    D = DISCRIMINATORS.get(cfg.discriminator.arch).load()(cfg.discriminator, sample_shape, num_classes)
    return G, D


GENERATORS.register("mlp", "smart.nets.mlp:generator", config=MLPGeneratorConfig)
GENERATORS.register("stylegan2", "smart.nets.stylegan2:generator", config=StyleGAN2GeneratorConfig, labels=True)
GENERATORS.register("aurora", "smart.nets.aurora:generator", config=AuroraGeneratorConfig, labels=True)
DISCRIMINATORS.register("mlp", "smart.nets.mlp:discriminator", config=MLPDiscriminatorConfig)
DISCRIMINATORS.register("stylegan2", "smart.nets.stylegan2:discriminator", config=StyleGAN2DiscriminatorConfig)
