"""The trials' side of a study's timings (tuning/timings.py), gathered on the driver."""
from __future__ import annotations

import time

from ray import tune

from tuning.timings import Timings
from tuning.status import ResultKey


class TrialTimings(tune.Callback):
    """Sums the trials' per-eval costs (the results' ResultKey.TIMINGS) and each trial's actor start:
    from Tune starting the trial to its trainable running."""

    def __init__(self):
        self.timings = Timings()
        self._started: dict[str, float] = {}  # trial id -> when Tune started it (wall clock)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._started[trial.trial_id] = time.time()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        for name, value in (result.get(ResultKey.TIMINGS) or {}).items():
            if name == "started_at":
                if trial.trial_id in self._started:
                    self.timings.add("actor_start", value - self._started.pop(trial.trial_id))
            elif name == "trials_in_process":
                self.timings.add("actor_reused", float(value > 1))
            else:
                self.timings.add(name, value)
