"""Datasets: the `Dataset` interface, the `data` config sections and the built-in kinds.

Declarations only (no torch import): each kind's builder, `builder(cfg: RunConfig) -> Dataset`, lives
in its own module (toy.py, sources.py, imagenet64.py) and is imported when first built. A new kind
is one registration: `DATASETS.register("mine", build, config=ToyDataConfig or your DataConfig subclass)`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from pydantic import Field

from smart.config import ConfigError, DataConfig
from smart.registry import DATASETS

if TYPE_CHECKING:
    import torch

    from smart.config import RunConfig


class Dataset(Protocol):
    """The real distribution a run trains against.

    Every kind: `domain` ("toy" or "image", as its config class's), `shape` of one sample, the
    `num_classes` the nets are conditioned on (0: unconditional), `conditional`, and sampling from a
    torch.Generator so that runs are repeatable. Toy kinds (points with an exact density) also
    offer `distance_in_std(x) -> (distance to the nearest mode in mode stds, its index)` and
    `num_modes` (mode and on/off-manifold metrics, pictures) and `eps(x_t, alpha, sigma)`, the exact
    noise prediction of the noised density (the analytic score model); a toy kind on a plane in R^d
    (smart.data.toy) adds `to_plane`, `plane_distance_in_std`, `normal_spread` and `fid_coordinates`. Image kinds (ImageDataset)
    offer `uint8(index)`, `labels`, `reference(n, seed)` (the FID reference), `resolution`, `channels`.
    """

    domain: str
    shape: tuple[int, ...]
    num_classes: int
    conditional: bool

    def batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n real samples in the training range, with their labels when conditional (else None)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n real samples without labels."""

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Labels for n generated samples, drawn from the data's label distribution (None if unconditional)."""

    def cache_key(self) -> str:
        """Identity of the data (name, size, content hash) for cached reference statistics and extractors."""


class ToyDataConfig(DataConfig):
    """Exact 2-D Gaussian mixtures with equal weights (the paper's toy example)."""

    domain: ClassVar[str] = "toy"
    conditional: ClassVar[bool] = False
    std: float = Field(0.05, gt=0, le=0.5, description="per-mode standard deviation of the mixture")

    def cache_key(self) -> str | None:
        """The data's `Dataset.cache_key` when the config alone fixes it (None: only the dataset knows)."""
        return None


EMBED_SEED = 20_240_613  # the fixed orthonormal map R^d -> R^d that carries the plane into R^d (smart.data.toy)


def mixture_key(kind: str, std: float, ambient_dim: int, normal_std: float) -> str:
    """A toy mixture's identity (`Dataset.cache_key`), from its config alone: no torch needed to
    name its cached reference statistics."""
    key = f"{kind}-std{std:g}"
    return key if ambient_dim <= 2 else f"{key}-d{ambient_dim}-n{normal_std:g}-e{EMBED_SEED}"


class MixtureDataConfig(ToyDataConfig):
    """ring8 and grid25: the mixture on its plane, in R^2 or carried into R^d as a thin manifold."""

    ambient_dim: int = Field(
        2, ge=2, le=4096, description="d: the plane is embedded in R^d by a fixed seeded orthonormal map, so the "
        "data is a thin 2-D manifold in a larger space, the regime of the paper's premise (off-manifold samples "
        "a discriminator can separate); 2: the planar mixture")
    normal_std: float = Field(
        0.005, ge=0, le=0.5, description="std of the data in each of the d − 2 normal directions (the manifold's "
        "thickness); 0 allowed (the noised score stays exact at every t); unused when ambient_dim is 2")

    def cache_key(self) -> str:
        return mixture_key(self.kind, self.std, self.ambient_dim, self.normal_std)


class ImageDataConfig(DataConfig):
    """Images stored as uint8, trained on in [-1, 1]. A kind's registration may say
    `native_resolution=` (its side when data.resolution is not set; absent: read from the files)
    and `requires=("path", ...)` (keys it cannot do without)."""

    domain: ClassVar[str] = "image"
    path: str | None = Field(None, description="image data location (fashion_mnist: optional; image_folder, npz, "
                             "imagenet64: required)")
    resolution: int | None = Field(None, ge=4, le=1024, description="image side; default the dataset's (digits 8, "
                                   "mnist5k 32, fashion_mnist 32, imagenet64 64, npz native)")
    channels: Literal[1, 3] | None = Field(None, description="convert images to 1 or 3 channels")
    conditional: bool = Field(False, description="class-conditional training (labels to G, D, score)")

    @property
    def image_resolution(self) -> int | None:
        """The served image side, when known without reading the data."""
        return self.resolution or DATASETS.get(self.kind).info.get("native_resolution")

    def check(self, run: RunConfig) -> None:
        for key in DATASETS.get(self.kind).info.get("requires", ()):
            if getattr(self, key) is None:
                raise ConfigError(f"data.{key}", f"required for data.kind {self.kind}")


def build_dataset(cfg: RunConfig) -> Dataset:
    """The real distribution named by `cfg.data` (raises ConfigError when image data is missing)."""
    return DATASETS.get(cfg.data.kind).load()(cfg)


DATASETS.register("ring8", "smart.data.toy:from_config", config=MixtureDataConfig)
DATASETS.register("grid25", "smart.data.toy:from_config", config=MixtureDataConfig)
DATASETS.register("digits", "smart.data.sources:digits", config=ImageDataConfig, native_resolution=8)
DATASETS.register("mnist5k", "smart.data.sources:mnist5k", config=ImageDataConfig, native_resolution=32)
DATASETS.register("fashion_mnist", "smart.data.sources:fashion_mnist", config=ImageDataConfig, native_resolution=32)
DATASETS.register("image_folder", "smart.data.sources:image_folder", config=ImageDataConfig,
                  requires=("path", "resolution"))
DATASETS.register("npz", "smart.data.sources:npz", config=ImageDataConfig, requires=("path",))
DATASETS.register("imagenet64", "smart.data.imagenet64:imagenet64", config=ImageDataConfig, native_resolution=64,
                  requires=("path",))
