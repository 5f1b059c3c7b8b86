"""Toy metrics rank constructed samples correctly: true < half the modes < collapsed."""
import math

import pytest
import torch

from smart.config import RunConfig
from smart.data.toy import TOY_MIXTURES
from smart.metrics.fid import SampleDataset, ToyRBFExtractor, frechet_distance
from smart.metrics.modes import mode_stats

N = 10_000


def _fid(a, b, tmp_path):
    return frechet_distance(SampleDataset(a, len(a)), SampleDataset(b, len(b)), extractor=ToyRBFExtractor.NAME,
                            layer=ToyRBFExtractor.LAYER, reference_cache=None, cache_dir=str(tmp_path), cuda=False)


@pytest.mark.parametrize("kind", ["ring8", "grid25"])
def test_metric_ordering(kind, tmp_path):
    mix = TOY_MIXTURES[kind](0.05)
    g = torch.Generator().manual_seed(0)
    real, true = mix.sample(N, g), mix.sample(N, g)
    half = true[mix.distance_in_std(true)[1] < mix.num_modes // 2]
    collapsed = mix.means[0] + 0.05 * torch.randn(N, 2, generator=g)
    blurry = true + 0.3 * torch.randn(N, 2, generator=g)  # right modes, mass off the manifold
    fids = {name: _fid(x, real, tmp_path) for name, x in
            [("true", true), ("half", half), ("collapsed", collapsed), ("blurry", blurry)]}
    assert fids["true"] < 0.01
    assert fids["true"] * 20 < fids["half"] < fids["collapsed"]
    assert fids["blurry"] > fids["true"] * 20
    stats = {name: mode_stats(mix, x) for name, x in [("true", true), ("half", half), ("collapsed", collapsed),
                                                     ("blurry", blurry)]}
    assert stats["true"]["modes_covered"] == mix.num_modes
    assert stats["half"]["modes_covered"] == mix.num_modes // 2
    assert stats["collapsed"]["modes_covered"] == 1
    assert stats["true"]["hq_ratio"] > 0.98 and stats["true"]["off_manifold_ratio"] < 0.001
    assert stats["blurry"]["off_manifold_ratio"] > 0.3


def test_fid_reference_statistics_are_cached(tmp_path):
    from smart.assets import prepare_assets
    from smart.loop import Trainer

    cfg = RunConfig.from_dict({}, {"eval.cache_dir": str(tmp_path), "eval.num_samples": 2000,
                                   "training.kimg": 1, "training.eval_every_kimg": 1})
    prepare_assets(cfg)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert any("stat-fid" in name for name in cached)
    metrics = Trainer(cfg).train()
    assert sorted(p.name for p in tmp_path.iterdir()) == cached  # trials only read the cache
    assert math.isfinite(metrics["fid"])


def test_gradient_norms_are_split_on_and_off_manifold():
    from smart.loop import Trainer

    cfg = RunConfig.from_dict({}, {"training.kimg": 2, "training.eval_every_kimg": 2, "eval.num_samples": 500,
                                   "eval.metrics": ["grad_norms"]})
    metrics = Trainer(cfg).train()
    # an untrained G puts mass both on and off the manifold; the score pushes hard off it
    assert metrics["grad_smart_off"] > metrics["grad_smart_on"] > 0
    assert metrics["grad_adv_off"] > 0
