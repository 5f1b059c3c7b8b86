"""The driver's progress table: Tune's CLIReporter, without its 'current best trial' line, which
cannot show a trial that lacks a parameter column (the λ = 0 baseline has no k or t-range); the
table, sorted by the objective, starts with the best trial anyway."""
from __future__ import annotations

from ray import tune


class Reporter(tune.CLIReporter):
    def _current_best_trial(self, trials):
        return None, None
