"""Image FID: the closed-form Fréchet distance of Gaussians, cached reference statistics (a hit
costs no reference features), the TorchScript extractor, and the offline Inception error."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch.utils.data import Dataset
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from image_helpers import image_config
from smart.config import ConfigError
from smart.data import build_dataset
from smart.data.images import to_uint8
from smart.metrics.fid import SampleDataset, SingleLayerExtractor, frechet_distance
from smart.metrics.frechet import fid_setup, prepare_fid, reference_set


class RawFeatures(SingleLayerExtractor):
    """The identity as a feature extractor: FID of the vectors themselves."""

    LAYER = "raw"

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    def forward(self, x):
        return (x.to(torch.float64),)


if "test-raw" not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor("test-raw", RawFeatures)


def test_gaussian_features_match_the_closed_form(tmp_path):
    gen = torch.Generator().manual_seed(0)
    n, mu1, mu2 = 40_000, torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.5, 0.0, -1.0])
    s1, s2 = torch.tensor([1.0, 0.5, 2.0]), torch.tensor([1.5, 0.5, 1.0])
    a = mu1 + s1 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    b = mu2 + s2 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    fid = frechet_distance(SampleDataset(a, n), SampleDataset(b, n), extractor="test-raw", layer="raw",
                           reference_cache=None, cache_dir=str(tmp_path), cuda=False)
    # population value: ‖μ1 − μ2‖² + Σ (s1 − s2)² for diagonal covariances = 1.25 + 1.25 = 2.5
    closed = float((mu1 - mu2).square().sum() + (s1 - s2).square().sum())
    assert fid == pytest.approx(closed, rel=0.03)
    # and exactly the Fréchet distance of the two samples' own Gaussians
    m1, m2, c1, c2 = a.mean(0).numpy(), b.mean(0).numpy(), np.cov(a.numpy().T), np.cov(b.numpy().T)
    exact = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert fid == pytest.approx(exact, rel=1e-6)


class CountingDataset(Dataset):
    def __init__(self, base):
        self.base, self.reads = base, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        return self.base[i]


def test_reference_statistics_are_cached_once_per_extractor_and_weights(tmp_path):
    cache = tmp_path / "cache"
    cfg = image_config("unused", str(cache), eval={"reference_samples": 600})
    prepare_fid(cfg)  # trains the classifier extractor, caches the reference statistics
    ds = build_dataset(cfg)
    setup = fid_setup(cfg, ds)
    reference, name = reference_set(cfg, ds, setup)
    assert name.startswith("digits-8px-") and len(list(cache.glob(f"{name}*stat*"))) == 1
    real = to_uint8(ds.sample(300, torch.Generator().manual_seed(1)))
    kwargs = dict(extractor=setup.fidelity_name, layer=setup.layer, cache_dir=str(cache), cuda=False,
                  weights_path=setup.weights_path)
    counted = CountingDataset(reference)
    fid_real = frechet_distance(SampleDataset(real, 300), counted, reference_cache=name, **kwargs)
    assert counted.reads == 0  # a cache hit: no reference features recomputed
    noise = torch.randint(0, 256, (300, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    fid_noise = frechet_distance(SampleDataset(noise, 300), counted, reference_cache=name, **kwargs)
    assert counted.reads == 0 and 0 <= fid_real < fid_noise / 5
    # other weights, other name: the cache key holds a hash of the extractor's weights
    other = type(setup)(**{**setup.__dict__, "weights_hash": "0" * 16})
    assert reference_set(cfg, ds, other)[1] != name
    assert reference_set(cfg.with_overrides({"eval.reference_samples": 700}), ds, setup)[1] != name


def test_torchscript_extractor_loads_a_file(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
    path = tmp_path / "inception.pt"
    torch.jit.script(net).save(str(path))
    cfg = image_config("unused", str(tmp_path / "cache"), eval={
        "fid_extractor": "inception-torchscript", "extractor_weights": str(path), "reference_samples": 100})
    prepare_fid(cfg)
    ds = build_dataset(cfg)
    setup = fid_setup(cfg, ds)
    reference, name = reference_set(cfg, ds, setup)
    assert setup.rgb and reference[0].shape == (3, 8, 8)  # grey digits repeated to RGB
    same = torch.stack([reference[i] for i in range(len(reference))])
    fid = frechet_distance(SampleDataset(same, len(same)), reference, reference_cache=name,
                           extractor=setup.fidelity_name, layer=setup.layer, cache_dir=str(tmp_path / "cache"),
                           cuda=False, weights_path=setup.weights_path)
    assert math.isfinite(fid) and abs(fid) < 1e-6


def test_inception_offline_says_exactly_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("SMART_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = image_config("unused", str(tmp_path / "cache"), eval={"fid_extractor": "inception-v3-compat"})
    with pytest.raises(ConfigError) as err:
        prepare_fid(cfg)
    assert err.value.key == "eval.extractor_weights"
    assert "$SMART_INCEPTION_WEIGHTS" in err.value.why and "weights-inception-2015-12-05-6726825d.pth" in err.value.why
    bad = tmp_path / "bad.pth"
    torch.save({"layer": torch.nn.Linear(2, 2)}, bad)  # a pickled module, not a plain state dict
    with pytest.raises(ConfigError, match="not a plain torch state dict"):
        prepare_fid(cfg.with_overrides({"eval.extractor_weights": str(bad)}))
