"""The exact score of a toy dataset (the paper's toy example: the ground-truth ε*)."""
from __future__ import annotations

from smart.score.base import ScoreModel
from smart.score.schedule import Schedule


class AnalyticMixtureScore(ScoreModel):
    """Ground-truth ε* of a dataset with an exact noised density (a toy kind's `eps`) under the schedule."""

    def __init__(self, mixture, schedule: Schedule):
        super().__init__()
        self.mixture = mixture
        self.schedule = schedule

    def eps(self, x_t, t, labels=None):
        alpha, sigma = self.schedule.alpha_sigma(t, x_t.dtype)
        return self.mixture.eps(x_t, alpha, sigma)


def build(cfg, dataset) -> AnalyticMixtureScore:
    """The registered builder of score.kind analytic."""
    return AnalyticMixtureScore(dataset, Schedule.named(cfg.score.schedule, cfg.score.num_timesteps)).freeze()
