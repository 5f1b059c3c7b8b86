"""Datasets: exact toy mixtures and image datasets, one sampling protocol:
`batch(n, generator) -> (x, labels or None)`, `.shape`, `.domain` ("toy" or "image")."""
from smart.data.images import ImageDataset
from smart.data.toy import TOY_MIXTURES, GaussianMixture2D


def build_dataset(cfg):
    """The real distribution named by `cfg.data` (raises ConfigError when image data is missing)."""
    if cfg.data.is_toy:
        return TOY_MIXTURES[cfg.data.kind](cfg.data.std)
    from smart.data.sources import build_image_dataset

    return build_image_dataset(cfg)


__all__ = ["GaussianMixture2D", "ImageDataset", "TOY_MIXTURES", "build_dataset"]
