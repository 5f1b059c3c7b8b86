"""Every loss term of the game as a small callable, and the objective that owns them: it computes
each phase's loss (smart.phases: Dmain, Dreg, Gmain, Greg) and reports every term's value to the
training statistics that an eval reads."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from smart.phases import loss_names, phase_table
from smart.stats import TrainingStats


class AdversarialLoss:
    """The logistic game: D's loss, and G's either non-saturating, −log D(G(z)) = softplus(−logit),
    or the original minimax one, log(1 − D(G(z))) = −softplus(logit), whose gradient vanishes where D
    rejects a sample with confidence."""

    def __init__(self, g_loss: str = "non_saturating"):
        self.g_loss = g_loss

    def generator_per_sample(self, d_fake: torch.Tensor) -> torch.Tensor:
        return -F.softplus(d_fake) if self.g_loss == "minimax" else F.softplus(-d_fake)

    def generator(self, d_fake: torch.Tensor) -> torch.Tensor:
        return self.generator_per_sample(d_fake).mean()

    @staticmethod
    def discriminator(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(d_fake).mean() + F.softplus(-d_real).mean()


class R1Penalty:
    """γ/2·E‖∇_x D(x_real)‖² (Mescheder et al. 2018)."""

    def __init__(self, gamma: float):
        self.gamma = float(gamma)

    def __call__(self, D, real: torch.Tensor, labels=None) -> torch.Tensor:
        real = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(real, labels).sum(), real, create_graph=True)
        return 0.5 * self.gamma * grad.square().flatten(1).sum(1).mean()


class AuxLoss:
    """A generator's own auxiliary loss of its last forward (Aurora: MoE load balancing), weighted."""

    def __init__(self, weight: float):
        self.weight = float(weight)

    def __call__(self, G) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss to add to L_G, the unweighted value for logging)."""
        value = G.aux_loss
        return self.weight * value, value


class ScoreMatchingRegularity:
    """SMaRt: λ·E_{t,ε}‖ε_θ(α_t x + σ_t ε, t, c) − ε‖² on generated x (mean over elements).

    `jacobian` (paper): the gradient flows through the frozen score network into x.
    `sds` (a cheaper variant of ours, not the paper's): the score network's Jacobian is dropped,
    ∂L/∂x = 2·α_t·(ε_θ − ε)/N per element (N = elements averaged), i.e. the jacobian-mode gradient
    with J = I, so λ keeps the same scale in both modes.
    """

    def __init__(self, score_model, weight: float, interval: int, t_min: int, t_max: int,
                 mode: str = "jacobian", scale_by_interval: bool = False):
        self.score_model = score_model
        self.weight, self.interval = float(weight), int(interval)
        self.t_min, self.t_max = int(t_min), int(t_max)
        self.mode = mode
        self.effective_weight = self.weight * (self.interval if scale_by_interval else 1)

    @classmethod
    def from_config(cls, score_model, reg) -> ScoreMatchingRegularity:
        return cls(score_model, reg.weight, reg.interval, reg.t_min, reg.t_max, reg.mode, reg.scale_by_interval)

    def per_sample(self, x: torch.Tensor, labels=None, generator: torch.Generator | None = None):
        """(surrogate, value): per-sample losses whose gradient w.r.t. x is the mode's gradient,
        and the score-matching error itself (for logging). Unweighted."""
        n = x.shape[0]
        drawn_on = generator.device if generator is not None else x.device  # the device's own stream
        t = torch.randint(self.t_min, self.t_max + 1, (n,), generator=generator, device=drawn_on).to(x.device)
        noise = torch.randn(x.shape, generator=generator, device=drawn_on).to(x)
        alpha, sigma = self.score_model.schedule.alpha_sigma(t, x.dtype)
        bshape = (n,) + (1,) * (x.dim() - 1)
        x_t = alpha.view(bshape) * x + sigma.view(bshape) * noise
        if self.mode == "jacobian":
            err = (self.score_model.eps(x_t, t, labels) - noise).square().flatten(1).mean(1)
            return err, err.detach()
        with torch.no_grad():
            resid = self.score_model.eps(x_t.detach(), t, labels) - noise
        numel = x[0].numel()
        surrogate = (2 * alpha.view(bshape) * resid * x).flatten(1).sum(1) / numel
        return surrogate, resid.square().flatten(1).mean(1)

    def __call__(self, x, labels=None, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss to add to L_G, unweighted score-matching error for logging)."""
        surrogate, value = self.per_sample(x, labels, generator)
        return self.effective_weight * surrogate.mean(), value.mean()


class Objective:
    """Every term of a run config's objective, the phase table that schedules them, and the loss of
    each phase. Term values go to `stats`; the SMaRt term draws t and ε from `rng` (the trainer's
    stream on its device) and is timed, forward and backward, for `smart_share`."""

    def __init__(self, cfg, G, D, score_model, stats: TrainingStats | None = None,
                 rng: torch.Generator | None = None):
        self.G, self.D = G, D
        self.stats = stats if stats is not None else TrainingStats()
        self.rng = rng
        self.phases = phase_table(cfg)
        self.names = loss_names(cfg)
        self.adversarial = AdversarialLoss(cfg.loss.g_loss)
        self.r1 = R1Penalty(cfg.optim.r1_gamma)
        self.aux = AuxLoss(cfg.generator.aux_weight) if cfg.generator.has_aux_loss else None
        self.smart = ScoreMatchingRegularity.from_config(score_model, cfg.regularizer)

    def d_main(self, real, real_labels, fake, labels) -> torch.Tensor:
        loss = self.adversarial.discriminator(self.D(real, real_labels), self.D(fake, labels))
        self.stats.add("loss_d", loss)
        return loss

    def d_reg(self, real, real_labels) -> torch.Tensor:
        """R1 times its interval (a lazy regularizer stands in for the steps it skips)."""
        r1 = self.r1(self.D, real, real_labels)
        self.stats.add("loss_r1", r1)
        return r1 * self.phases["Dreg"].interval

    def g_main(self, fake, labels) -> torch.Tensor:
        loss = self.adversarial.generator(self.D(fake, labels))
        self.stats.add("loss_g", loss)
        if self.aux is not None:
            weighted, value = self.aux(self.G)
            self.stats.add("loss_aux", value)
            loss = loss + weighted
        return loss

    def g_reg(self, fake, labels) -> torch.Tensor:
        """The weighted SMaRt term on `fake`."""
        clock = self.stats.smart_clock
        start = clock.mark()
        term, value = self.smart(clock.enter(fake), labels, generator=self.rng)
        clock.stop(start)
        self.stats.add("loss_smart", value)
        return clock.exit(term)
