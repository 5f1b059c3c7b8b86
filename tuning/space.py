"""The study's search space as an Optuna define-by-run function, plus the sampler behind it.

Trial n < len(points) takes the values of points[n] (the λ=0 baseline, or every point of a grid)
and suggests the keys that point leaves open; later trials suggest everything. Fixed values are
returned, not suggested, so a point outside a distribution (λ=0 under a log-uniform) never reaches
Optuna's model. Each trial also gets a training seed derived from the study seed and its number.
"""
from __future__ import annotations

import numpy as np
import optuna

from tuning.study import Study


def trial_seed(study_seed: int, number: int) -> int:
    """A well-spread, reproducible run seed for trial `number` of a study."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0] & 0x7FFFFFFF)


class SearchSpace:
    """Picklable define-by-run function: trial -> {dotted config key: value}."""

    def __init__(self, study: Study):
        self.entries = dict(study.spec.search)
        self.points = [dict(p) for p in study.points]
        self.seed = study.spec.sampler.seed

    def __call__(self, trial) -> dict:
        point = self.points[trial.number] if trial.number < len(self.points) else {}
        values: dict = {}
        for key, entry in self.entries.items():
            if key in point:
                values.update({k: point[k] for k in entry.keys(key)})
            else:
                values.update(entry.suggest(trial, key))
        if "seed" not in values:
            values["seed"] = trial_seed(self.seed, trial.number)
        return values

    def describe(self) -> list[str]:
        """One line per entry, for --dry-run."""
        lines = []
        for key, entry in self.entries.items():
            fields = entry.model_dump(exclude={"type"}, exclude_none=True)
            lines.append(f"  {key:<28} {entry.type:<10} " + " ".join(f"{k}={v}" for k, v in fields.items()))
        for i, point in enumerate(self.points):
            lines.append(f"  trial {i} evaluates {point}")
        return lines


def make_sampler(study: Study) -> optuna.samplers.BaseSampler:
    s = study.spec.sampler
    if s.kind == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials)
    return optuna.samplers.RandomSampler(seed=s.seed)  # grid trials are all fixed points
