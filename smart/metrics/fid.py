"""Fréchet distance through torch-fidelity: registered extractors and cached reference statistics."""
from __future__ import annotations

import os
from typing import Callable

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.metric_fid import fid_input_id_to_statistics_cached
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torch_fidelity.utils import create_feature_extractor

from smart import progress
from smart.metrics import default_cache_dir
from smart.metrics.reference import TOY_RBF, TOY_RBF_LAYER, TOY_RBF_VERSION


class ToyRBFExtractor(FeatureExtractorBase):
    """Fixed feature space for 2-D points: Gaussian bumps on a 12×12 grid over [-1.5, 1.5]² plus the
    coordinates. Dropping a mode removes the bumps near it from the mean feature, so FID punishes
    mode dropping and off-manifold mass, and two samples of one distribution score ≈ 0.
    A point of a plane in R^d comes as (in-plane coordinates, distance r from the plane): its bumps
    are on the grid in the plane at Euclidean distance in R^d (√(‖p − c‖² + r²)), and r is a feature
    too, so mass spread across the plane counts as it would within it."""

    NAME = TOY_RBF
    LAYER = TOY_RBF_LAYER

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        ticks = torch.linspace(-1.5, 1.5, 12, dtype=torch.float64)
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        self.register_buffer("centres", torch.stack([gx.flatten(), gy.flatten()], 1))
        self.bandwidth = float(ticks[1] - ticks[0])

    @staticmethod
    def get_provided_features_list():
        return (ToyRBFExtractor.LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return ToyRBFExtractor.LAYER

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 2)

    def forward(self, x):
        x = x.to(torch.float64)
        squared = torch.cdist(x[:, :2], self.centres).square() + x[:, 2:].square().sum(1, keepdim=True)
        bumps = torch.exp(-squared / (2 * self.bandwidth**2))
        return (torch.cat([bumps, x], dim=1),)

    @staticmethod
    def weights_hash() -> str:
        return TOY_RBF_VERSION


if ToyRBFExtractor.NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(ToyRBFExtractor.NAME, ToyRBFExtractor)


class SingleLayerExtractor(FeatureExtractorBase):
    """torch-fidelity's extractor interface for a net with one feature layer, `LAYER`; subclasses
    load their weights from `feature_extractor_weights_path` and implement `forward`."""

    LAYER = "features"
    DUMMY_INPUT_SHAPE = (1, 3, 299, 299)

    @classmethod
    def get_provided_features_list(cls):
        return (cls.LAYER,)

    @classmethod
    def get_default_feature_layer_for_metric(cls, metric):
        return cls.LAYER

    @staticmethod
    def can_be_compiled():
        return False

    @classmethod
    def get_dummy_input_for_compile(cls):
        return torch.zeros(cls.DUMMY_INPUT_SHAPE, dtype=torch.uint8)


class SampleDataset(Dataset):
    """Tensor samples for torch-fidelity, materialised on first access (so a cache hit costs nothing)."""

    def __init__(self, make: Callable[[], torch.Tensor] | torch.Tensor, length: int):
        self._make = make
        self._data = make if torch.is_tensor(make) else None
        self._len = length

    def __len__(self):
        return self._len

    def __getitem__(self, i):
        if self._data is None:
            self._data = self._make()
        return self._data[i]


def _fidelity_kwargs(reference, reference_cache, cache_dir, cuda, batch_size, extractor, layer, weights_path,
                     verbose=False):
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    return dict(
        input2=reference, fid=True, cuda=cuda, batch_size=batch_size, feature_extractor=extractor,
        feature_layer_fid=layer, cache=reference_cache is not None, cache_root=cache_dir,
        input2_cache_name=reference_cache, save_cpu_ram=True, verbose=verbose,
        feature_extractor_weights_path=weights_path,
    )


def reference_statistics(reference: Dataset, *, extractor: str, layer: str, reference_cache: str,
                         cache_dir: str | None, cuda: bool, batch_size: int = 1000,
                         weights_path: str | None = None) -> dict:
    """Compute (or load from the cache) the reference's FID statistics, so that trials later only
    extract features of their own samples. torch-fidelity's progress shows where a person watches."""
    kwargs = _fidelity_kwargs(reference, reference_cache, cache_dir, cuda, batch_size, extractor, layer, weights_path,
                              verbose=progress.enabled())
    feat = create_feature_extractor(extractor, [layer], **kwargs)
    return fid_input_id_to_statistics_cached(2, feat, layer, **kwargs)


def frechet_distance(generated: Dataset, reference: Dataset, *, extractor: str, layer: str,
                     reference_cache: str | None, cache_dir: str | None, cuda: bool,
                     batch_size: int = 1000, weights_path: str | None = None) -> float:
    """FID between two datasets; the reference's statistics are cached under `reference_cache`.
    `weights_path` is the extractor's local weights file (torch-fidelity's feature_extractor_weights_path)."""
    kwargs = _fidelity_kwargs(reference, reference_cache, cache_dir, cuda, batch_size, extractor, layer, weights_path)
    out = torch_fidelity.calculate_metrics(input1=generated, **kwargs)
    return float(out["frechet_inception_distance"])
