"""The study's search space as an Optuna define-by-run function, plus the sampler behind it.

The n-th trial asked (n < len(points)) takes the values of points[n] (the λ=0 baseline, or every
point of a grid) and suggests the keys that point leaves open; later trials suggest everything. Fixed values are
returned, not suggested, so a point outside a distribution (λ=0 under a log-uniform) never reaches
Optuna's model; they are recorded on the Optuna trial as user attributes instead, so that the
study on disk shows every trial's values. The space is conditional: keys that the values so far
make inert (k and the t-range when λ = 0, smart.config.inert_keys) are not suggested at all.
Each trial also gets a training seed derived from the study seed and its number.
"""
from __future__ import annotations

import numpy as np
import optuna

from smart.config import SWITCHES, inert_keys
from tuning.study import Study


def trial_seed(study_seed: int, number: int) -> int:
    """A well-spread, reproducible run seed for trial `number` of a study."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0] & 0x7FFFFFFF)


class SearchSpace:
    """Picklable define-by-run function: trial -> {dotted config key: value}."""

    def __init__(self, study: Study):
        # entries that set a switch (λ) first: they decide which of the others are inert
        self.entries = dict(sorted(study.spec.search.items(),
                                   key=lambda kv: not set(kv[1].keys(kv[0])) & set(SWITCHES)))
        self.points = [dict(p) for p in study.points]
        self.seed = study.spec.sampler.seed
        self.flat = study.base.flat()
        self.asked = 0  # trials defined so far: restored with the searcher's snapshot on --resume

    def __call__(self, trial) -> dict:
        # the count, not trial.number: a resumed study's database keeps the numbers of lost trials
        number, self.asked = self.asked, self.asked + 1
        point = self.points[number] if number < len(self.points) else {}
        values: dict = dict(point)
        for key, entry in self.entries.items():
            keys = entry.keys(key)
            if not set(keys) & set(point) and not set(keys) <= inert_keys(values, self.flat):
                values.update(entry.suggest(trial, key))
        values.setdefault("seed", trial_seed(self.seed, number))
        for key in values.keys() - trial.params.keys():
            trial.set_user_attr(key, values[key])
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
