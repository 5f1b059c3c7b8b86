"""The driver's finish (the best trial's generator export, the report) imports torch, matplotlib
and scikit-learn: ~3 s of CPU after the loop, beside Ray's shutdown. Once the search has started
all its trials and fewer run than the study's concurrency, a core the trials held is idle: the
driver imports them then, on a thread. Never earlier: while trials fill the cores, an import takes
its CPU from them."""
from __future__ import annotations

import importlib
import threading

from ray import tune

from tuning.timings import Timings

_DONE = ("TERMINATED", "ERROR")  # Trial.status of a trial that holds no resources any more


class WarmFinish(tune.Callback):
    """Imports `modules` on a thread once `num_samples` trials exist and fewer than `concurrency`
    are live; `timings` gets their wall ("finish_imports")."""

    def __init__(self, modules: list[str], num_samples: int, concurrency: int):
        self.modules, self.num_samples, self.concurrency = modules, num_samples, concurrency
        self.timings = Timings()
        self.thread: threading.Thread | None = None

    def _import(self) -> None:
        with self.timings.phase("finish_imports"):
            for name in self.modules:
                importlib.import_module(name)

    def _check(self, trials, ended) -> None:
        if self.thread is not None or not self.modules or len(trials) < self.num_samples:
            return
        if sum(t is not ended and t.status not in _DONE for t in trials) < self.concurrency:
            self.thread = threading.Thread(target=self._import, name="warm-finish", daemon=True)
            self.thread.start()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._check(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._check(trials, trial)
