"""FID reference statistics by name: what a cached statistics file is called and whether it is on
disk, decided without torch (FID's registered `prepared`), so that a study's driver loads neither
torch nor torch-fidelity when the toy reference statistics are cached (smart.metrics.frechet
computes them)."""
from __future__ import annotations

import hashlib
import os

from smart.metrics import default_cache_dir

IMAGE_REF_SEED = 0        # the image reference subset never depends on a run's seed
TOY_REF_SEED = 2**31 - 1  # nor does the toy reference sample
TOY_RBF = "smart-toy-rbf"           # the toy feature space (smart.metrics.fid.ToyRBFExtractor): its
TOY_RBF_LAYER = "rbf"               # torch-fidelity name and layer, and a version that changes
TOY_RBF_VERSION = "grid12-r1.5-v1"  # whenever its features do (cached statistics then go stale)


def cache_name(*parts: str) -> str:
    """A reference-statistics cache name: readable prefix plus a hash of everything that matters."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"{parts[0]}-{digest}"


def toy_reference_name(kind: str, data_key: str, num_samples: int, extractor_hash: str) -> str:
    """The toy reference statistics' cache name: the mixture, the sample size, the seed and the
    feature space's version."""
    return cache_name(f"toy-{kind}", data_key, f"n{num_samples}", f"seed{TOY_REF_SEED}", extractor_hash)


def statistics_file(cache_dir: str | None, name: str, extractor: str, layer: str) -> str:
    """Where torch-fidelity caches the reference statistics `name` (its metric_fid's file naming)."""
    return os.path.join(cache_dir or default_cache_dir(), f"{name}-{extractor}-stat-fid-{layer}.pt")


def toy_statistics_cached(cfg) -> bool:
    """Whether a toy run's reference statistics are on disk, when its config alone names them."""
    key = cfg.data.cache_key() if cfg.data.domain == "toy" else None
    if key is None or cfg.eval.extractor_for(cfg.data) != "toy-rbf":
        return False
    name = toy_reference_name(cfg.data.kind, key, cfg.eval.num_samples, TOY_RBF_VERSION)
    return os.path.isfile(statistics_file(cfg.eval.cache_dir, name, TOY_RBF, TOY_RBF_LAYER))
