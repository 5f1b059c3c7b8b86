"""Noise schedules and the exact noised score of the toy mixtures."""
import math

import pytest
import torch
from diffusers import DDPMScheduler

from smart.data.toy import grid25, ring8
from smart.score.analytic import AnalyticMixtureScore
from smart.score.schedule import Schedule


@pytest.mark.parametrize("name,diffusers_name", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_schedule_matches_diffusers(name, diffusers_name):
    sched = Schedule.named(name, 1000)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=diffusers_name).alphas_cumprod
    t = torch.arange(1000)
    alpha, sigma = sched.alpha_sigma(t, torch.float64)
    assert torch.allclose(alpha**2, ref.double(), atol=1e-6)
    assert torch.allclose(alpha**2 + sigma**2, torch.ones(1000, dtype=torch.float64))
    assert (sigma[1:] > sigma[:-1]).all(), "noise must grow with t"


def test_cosine_low_noise_band_is_the_papers():
    # DESIGN.md: t in [25, 35] on ADM's cosine schedule is sigma ~ 0.05-0.07
    _, sigma = Schedule.named("cosine").alpha_sigma(torch.tensor([25, 35]))
    assert 0.045 < sigma[0] < 0.055 and 0.06 < sigma[1] < 0.075


def test_schedule_length_configurable():
    assert len(Schedule.named("linear", 250)) == 250


@pytest.mark.parametrize("make", [ring8, grid25])
def test_exact_eps_equals_autograd_of_noised_log_density(make):
    mix = make(0.05)
    score = AnalyticMixtureScore(mix, Schedule.named("cosine"))
    g = torch.Generator().manual_seed(0)
    x0 = mix.sample(256, g).double()
    t = torch.randint(0, 400, (256,), generator=g)
    alpha, sigma = score.schedule.alpha_sigma(t, torch.float64)
    x_t = (alpha[:, None] * x0 + sigma[:, None] * torch.randn(256, 2, generator=g, dtype=torch.float64))
    x_t = x_t + 0.3 * torch.randn(256, 2, generator=g, dtype=torch.float64)  # also off the manifold
    x_t.requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.noised_log_prob(x_t, alpha, sigma).sum(), x_t)
    eps = mix.eps(x_t.detach(), alpha, sigma)
    assert torch.allclose(eps, -sigma[:, None] * grad, rtol=1e-6, atol=1e-8)


def test_mixture_density_integrates_to_one():
    mix = ring8(0.1)
    ticks = torch.linspace(-2, 2, 801, dtype=torch.float64)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten()], 1)
    mass = mix.log_prob(pts).exp().sum() * (ticks[1] - ticks[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_sampler_matches_modes():
    mix = grid25(0.05)
    x = mix.sample(50_000, torch.Generator().manual_seed(1))
    dist, idx = mix.distance_in_std(x)
    counts = torch.bincount(idx, minlength=25).double()
    assert counts.min() > 0.8 * 2000 and counts.max() < 1.2 * 2000
    # radial distance of a 2-D Gaussian in std units is Rayleigh: mean sqrt(pi/2)
    assert dist.mean().item() == pytest.approx(math.sqrt(math.pi / 2), rel=0.02)
