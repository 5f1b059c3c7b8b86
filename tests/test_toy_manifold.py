"""The thin-manifold toy: ring8/grid25 carried into R^d, its exact score, metrics and a short run."""
import math

import pytest
import torch

from smart.data.toy import embedding, grid25, ring8
from smart.score.analytic import AnalyticMixtureScore
from smart.score.schedule import Schedule


def test_embedding_is_orthonormal_and_fixed():
    q = embedding(16)
    assert torch.allclose(q.T @ q, torch.eye(16, dtype=torch.float64), atol=1e-12)
    assert torch.equal(q, embedding(16))


@pytest.mark.parametrize("make", [ring8, grid25])
@pytest.mark.parametrize("normal_std", [0.005, 0.0])
def test_exact_eps_in_rd_equals_autograd_of_noised_log_density(make, normal_std):
    d = 8
    mix = make(0.05, d, normal_std)
    score = AnalyticMixtureScore(mix, Schedule.named("cosine"))
    g = torch.Generator().manual_seed(0)
    x0 = mix.sample(256, g).double()
    t = torch.randint(0, 400, (256,), generator=g)
    t[:8] = 0  # the least noise of the schedule: σ_0 > 0, so normal_std 0 keeps a finite score
    alpha, sigma = score.schedule.alpha_sigma(t, torch.float64)
    assert sigma.min() > 0
    x_t = alpha[:, None] * x0 + sigma[:, None] * torch.randn(256, d, generator=g, dtype=torch.float64)
    x_t = x_t + 0.3 * torch.randn(256, d, generator=g, dtype=torch.float64)  # also off the manifold
    x_t.requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.noised_log_prob(x_t, alpha, sigma).sum(), x_t)
    eps = mix.eps(x_t.detach(), alpha, sigma)
    assert torch.allclose(eps, -sigma[:, None] * grad, rtol=1e-6, atol=1e-8)


def test_embedded_samples_lie_on_the_plane_with_the_normal_spread():
    mix = ring8(0.05, 32, 0.01)
    x = mix.sample(20_000, torch.Generator().manual_seed(1))
    assert x.shape == (20_000, 32) and mix.shape == (32,)
    plane, normal = mix.to_plane(x)
    assert torch.allclose(mix.from_plane(plane, normal), x, atol=1e-5)
    assert mix.normal_spread(x) == pytest.approx(0.01, rel=0.02)
    in_plane, _ = mix.plane_distance_in_std(x)
    assert in_plane.mean().item() == pytest.approx(math.sqrt(math.pi / 2), rel=0.02)  # Rayleigh, as in R^2
    full, _ = mix.distance_in_std(x)  # the normal distance counts too: 30 directions of 0.2 mode stds
    assert full.square().mean().item() == pytest.approx(2 + 30 * 0.2**2, rel=0.03)


def test_planar_mixture_is_unchanged_at_d2():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    flat, explicit = ring8(0.05), ring8(0.05, 2, 0.3)
    assert torch.equal(flat.sample(100, g1), explicit.sample(100, g2))
    assert flat.cache_key() == explicit.cache_key() == "ring8-std0.05"
    assert ring8(0.05, 8, 0.005).cache_key() != ring8(0.05, 8, 0.0).cache_key()


def test_embedded_density_integrates_to_one_across_the_plane():
    mix = ring8(0.1, 3, 0.2)
    ticks = torch.linspace(-2, 2, 161, dtype=torch.float64)
    gx, gy, gz = torch.meshgrid(ticks, ticks, ticks, indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten(), gz.flatten()], 1)
    mass = mix.log_prob(pts).exp().sum() * (ticks[1] - ticks[0]) ** 3
    assert mass.item() == pytest.approx(1.0, abs=2e-3)


def test_metrics_in_rd_see_the_spread_across_the_plane(tmp_path):
    from smart.metrics.fid import SampleDataset, ToyRBFExtractor, frechet_distance
    from smart.metrics.modes import mode_stats

    mix = ring8(0.05, 32, 0.005)
    g = torch.Generator().manual_seed(0)
    real, true = mix.sample(10_000, g), mix.sample(10_000, g)
    plane, normal = mix.to_plane(true)
    wide = mix.from_plane(plane, 8 * normal)  # the right modes in the plane, 8× the spread across it

    def fid(x):
        a, b = mix.fid_coordinates(x), mix.fid_coordinates(real)
        return frechet_distance(SampleDataset(a, len(a)), SampleDataset(b, len(b)), extractor=ToyRBFExtractor.NAME,
                                layer=ToyRBFExtractor.LAYER, reference_cache=None, cache_dir=str(tmp_path), cuda=False)

    assert fid(true) < 0.01 and fid(wide) > 5 * fid(true)
    stats = {name: mode_stats(mix, x) for name, x in [("true", true), ("wide", wide)]}
    for s in stats.values():  # modes and quality read the plane: the same for both
        assert s["modes_covered"] == 8 and s["hq_ratio"] > 0.98
    assert stats["true"]["off_manifold_ratio"] < 0.01 < 0.5 < stats["wide"]["off_manifold_ratio"]
    assert stats["true"]["normal_spread_ratio"] == pytest.approx(1.0, rel=0.02)
    assert stats["wide"]["normal_spread_ratio"] == pytest.approx(8.0, rel=0.02)


def test_minimax_generator_loss_saturates_where_non_saturating_does_not():
    from smart.losses import AdversarialLoss

    logits = torch.tensor([-8.0, 0.0], requires_grad=True)
    grads = {}
    for name in ("non_saturating", "minimax"):
        (grads[name],) = torch.autograd.grad(AdversarialLoss(name).generator_per_sample(logits).sum(), logits)
    assert grads["minimax"][0].abs() < 1e-3 < 0.99 < grads["non_saturating"][0].abs()  # a rejected sample
    assert grads["minimax"][1] == grads["non_saturating"][1] == -0.5  # both push up where D is unsure


def test_the_manifold_study_trains_in_r32_and_reports_the_diagnostics():
    """The shipped study's base config (its --dry-run is checked with every shipped study in
    test_study_cli), shortened, with the minimax loss and the paper's λ."""
    import os

    from smart.config import RunConfig, load_yaml
    from smart.loop import Trainer
    from smart.metrics import reported_metrics

    study = load_yaml(os.path.join(os.path.dirname(os.path.dirname(__file__)), "studies", "toy_manifold.yaml"))
    assert study["config"]["data"]["ambient_dim"] == 32
    cfg = RunConfig.from_dict(study["config"], {"training.kimg": 4, "training.eval_every_kimg": 4,
                                                "eval.num_samples": 500, "eval.grad_samples": 256,
                                                "regularizer.weight": 0.1, "loss.g_loss": "minimax"})
    metrics = Trainer(cfg).train()
    assert set(metrics) == reported_metrics(cfg)
    assert {"normal_spread_ratio", "d_saturated", "d_logit_on", "d_logit_off", "d_logit_real",
            "grad_adv_off"} <= set(metrics)
    assert metrics["normal_spread"] > 0 and 0 <= metrics["d_saturated"] <= 1
    assert math.isfinite(metrics["fid"]) and math.isfinite(metrics["d_logit_real"])


@pytest.mark.parametrize("data", [{"kind": "ring8"}, {"kind": "grid25", "std": 0.1, "ambient_dim": 8},
                                  {"kind": "ring8", "ambient_dim": 3, "normal_std": 0.0}])
def test_the_config_names_the_toy_reference_statistics_as_the_dataset_does(data, tmp_path):
    """A study's driver tells a cached toy reference from the config alone (no torch): the name it
    looks for is the one the FID metric caches under."""
    from smart.config import RunConfig
    from smart.data import build_dataset
    from smart.metrics.frechet import fid_setup, prepare_fid, reference_set
    from smart.metrics.reference import toy_statistics_cached

    cfg = RunConfig.from_dict({"data": data, "eval": {"num_samples": 500, "cache_dir": str(tmp_path)}})
    dataset = build_dataset(cfg)
    assert cfg.data.cache_key() == dataset.cache_key()
    assert not toy_statistics_cached(cfg)
    prepare_fid(cfg)
    assert toy_statistics_cached(cfg)
    assert not toy_statistics_cached(cfg.with_overrides({"eval.num_samples": 400}))
    _, name = reference_set(cfg, dataset, fid_setup(cfg, dataset))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(name)]
