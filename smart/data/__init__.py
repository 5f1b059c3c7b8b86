"""Datasets: exact toy mixtures (image datasets join them with the image path)."""
from smart.data.toy import TOY_MIXTURES, GaussianMixture2D


def build_dataset(cfg):
    """The real distribution named by `cfg.data`."""
    return TOY_MIXTURES[cfg.data.kind](cfg.data.std)


__all__ = ["GaussianMixture2D", "TOY_MIXTURES", "build_dataset"]
