"""A Tune callback that ends the study (raising its StudyFault out of `Tuner.fit`) at the first
trial that failed on a fault outside the trials, such as a full disk under the checkpoints:
otherwise every later trial would fail the same way. Listed before the other callbacks."""
from __future__ import annotations

import os

import cloudpickle
from ray import tune

from tuning.faults import FaultPlaces


def trial_error(trial) -> BaseException | None:
    """The exception a failed trial raised, as Tune pickled it beside the trial's driver-side files."""
    path = trial.pickled_error_file
    if path is None or not os.path.exists(path):
        return None
    with open(path, "rb") as fh:
        return cloudpickle.load(fh)


class FaultWatch(tune.Callback):

    def __init__(self, places: FaultPlaces):
        self.places = places

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial_error(trial)
        fault = self.places.fault_of(error) if error is not None else None
        if fault is not None:
            raise fault
