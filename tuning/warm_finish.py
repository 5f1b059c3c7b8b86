"""The driver's finish (the best trial's generator export, the report) imports torch, matplotlib
and scikit-learn: ~2.5 s of CPU after the loop, beside Ray's shutdown, which made the finish the
longest part of a study's end. The driver imports them on a thread as the search's last trial
starts: the loop's tail, where Tune has no trial left to create and the driver mostly waits."""
from __future__ import annotations

import importlib
import threading

from ray import tune

from tuning.timings import Timings


class WarmFinish(tune.Callback):
    """Imports `modules` on a thread once the `num_samples`-th trial starts; `timings` gets their
    wall ("finish_imports")."""

    def __init__(self, modules: list[str], num_samples: int):
        self.modules, self.num_samples = modules, num_samples
        self.timings = Timings()
        self.thread: threading.Thread | None = None

    def _import(self) -> None:
        with self.timings.phase("finish_imports"):
            for name in self.modules:
                importlib.import_module(name)

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.thread is None and self.modules and len(trials) >= self.num_samples:
            self.thread = threading.Thread(target=self._import, name="warm-finish", daemon=True)
            self.thread.start()
