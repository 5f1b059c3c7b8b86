"""The SMaRt term: weight 0 is a plain GAN, the lazy interval, jacobian vs sds, a frozen score model."""
import copy
import math

import pytest
import torch
from torch import nn

from smart.config import RunConfig
from smart.data.toy import ring8
from smart.losses import ScoreMatchingRegularity
from smart.loop import Trainer
from smart.score.analytic import AnalyticMixtureScore
from smart.score.base import ScoreModel
from smart.score.schedule import Schedule

QUICK = {"training.kimg": 4, "training.batch_size": 64, "training.eval_every_kimg": 4,
         "eval.num_samples": 200, "eval.metrics": []}


class MLPScore(ScoreModel):
    """A small neural ε-network (untrained): enough to check that training never touches it."""

    def __init__(self):
        super().__init__()
        self.schedule = Schedule.named("cosine")
        self.net = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 2))

    def eps(self, x_t, t, labels=None):
        return self.net(torch.cat([x_t, t[:, None].float() / 1000], dim=1))


def _params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_weight_zero_is_a_plain_gan():
    base = Trainer(RunConfig.from_dict({}, {**QUICK, "regularizer.weight": 0.0}))
    metrics = base.train()
    other = Trainer(RunConfig.from_dict({}, {**QUICK, "regularizer.weight": 0.0, "regularizer.interval": 1,
                                             "regularizer.t_min": 100, "regularizer.t_max": 300,
                                             "regularizer.mode": "sds"}))
    other.train()
    assert torch.equal(_params(base.G), _params(other.G))
    assert math.isnan(metrics["loss_smart"])  # the term was never evaluated
    with_term = Trainer(RunConfig.from_dict({}, {**QUICK, "regularizer.weight": 0.1}))
    with_term.train()
    assert not torch.equal(_params(base.G), _params(with_term.G))


def _steps_with_term(**overrides):
    """Train briefly; return the G steps on which the score model was queried."""
    trainer = Trainer(RunConfig.from_dict({}, {**QUICK, "regularizer.weight": 0.1, **overrides}))
    calls = []
    original = trainer.score_model.eps
    trainer.score_model.eps = lambda *a, **k: (calls.append(trainer.g_steps), original(*a, **k))[1]
    trainer.train()
    assert trainer.g_steps == 63  # ceil(4000 / 64)
    return calls


@pytest.mark.parametrize("interval", [1, 3, 8])
def test_interval_is_respected(interval):
    calls = _steps_with_term(**{"regularizer.interval": interval})
    assert calls == [s for s in range(63) if s % interval == 0]


def test_warmup_delays_the_term():
    calls = _steps_with_term(**{"regularizer.interval": 1, "regularizer.start_kimg": 2})
    assert calls == list(range(32, 63))  # 32 * 64 = 2048 images >= 2 kimg


def _term(mode, score, x, seed=0):
    reg = ScoreMatchingRegularity(score, weight=1.0, interval=1, t_min=25, t_max=35, mode=mode)
    x = x.clone().requires_grad_(True)
    loss, value = reg(x, generator=torch.Generator().manual_seed(seed))
    (grad,) = torch.autograd.grad(loss, x)
    return grad, value


def test_jacobian_and_sds_gradients_differ_and_sds_matches_its_formula():
    score = AnalyticMixtureScore(ring8(0.05), Schedule.named("cosine"))
    x = torch.randn(128, 2, generator=torch.Generator().manual_seed(3)) * 0.8
    g_jac, v_jac = _term("jacobian", score, x)
    g_sds, v_sds = _term("sds", score, x)
    assert torch.allclose(v_jac, v_sds)  # same t and noise: the same score-matching error
    assert not torch.allclose(g_jac, g_sds, rtol=0.1)
    # sds: dL/dx = 2 α_t (ε_θ(x_t) − ε) / N per element, averaged over the batch
    g = torch.Generator().manual_seed(0)
    t = torch.randint(25, 36, (128,), generator=g)
    noise = torch.randn(x.shape, generator=g)
    alpha, sigma = score.schedule.alpha_sigma(t)
    resid = score.eps(alpha[:, None] * x + sigma[:, None] * noise, t) - noise
    expected = 2 * alpha[:, None] * resid / 2 / 128
    assert torch.allclose(g_sds, expected, rtol=1e-5, atol=1e-8)
    # jacobian mode is the true gradient of the score-matching error
    x_req = x.clone().requires_grad_(True)
    x_t = alpha[:, None] * x_req + sigma[:, None] * noise
    err = (score.eps(x_t, t) - noise).square().mean()
    (true_grad,) = torch.autograd.grad(err, x_req)
    assert torch.allclose(g_jac, true_grad, rtol=1e-5, atol=1e-8)


def test_score_model_is_frozen_but_gradients_flow_through_it():
    score = MLPScore().freeze()
    before = copy.deepcopy(score.state_dict())
    score.train()  # a frozen score model refuses to leave eval mode
    assert not score.training
    G = nn.Linear(4, 2)
    opt = torch.optim.Adam(G.parameters(), lr=0.1)
    reg = ScoreMatchingRegularity(score, weight=1.0, interval=1, t_min=0, t_max=999)
    for step in range(5):
        loss, _ = reg(G(torch.randn(32, 4)), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        assert G.weight.grad is not None and G.weight.grad.abs().sum() > 0
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in score.parameters())
    assert all(torch.equal(before[k], v) for k, v in score.state_dict().items())


def test_scale_by_interval():
    score = AnalyticMixtureScore(ring8(0.05), Schedule.named("cosine"))
    plain = ScoreMatchingRegularity(score, 0.1, 8, 25, 35)
    scaled = ScoreMatchingRegularity(score, 0.1, 8, 25, 35, scale_by_interval=True)
    x = torch.randn(16, 2)
    a, _ = plain(x, generator=torch.Generator().manual_seed(0))
    b, _ = scaled(x, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(b, 8 * a)
