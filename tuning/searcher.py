"""The study's searcher: Ray Tune's OptunaSearch over the define-by-run space (tuning/space.py), on
an Optuna RDB storage, so that the Optuna study lives on disk under the study's name
(`optuna.load_study(study_name=NAME, storage=URL)`, optuna-dashboard) and a shared database can
serve a cluster.

On --resume Tune restores the searcher from the experiment's last snapshot. The database may then
hold trials asked after that snapshot, whose Tune trials died with the driver and are asked again:
those are marked FAIL with the user attribute `lost`, so that TPE ignores them and every Tune
trial appears once among the study's other trials. The database may also hold, finished, a trial
the snapshot still knows as running (it ended between the snapshot and the driver's loss): Tune
reruns it from its checkpoint, and its results are not told to Optuna again (Optuna refuses to
update a finished trial, which ended the resumed study).
"""
from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

log = logging.getLogger(__name__)

LOST_ATTR = "lost"


class StudySearch(OptunaSearch):
    """OptunaSearch that, when restored, fails the trials its snapshot does not know and leaves
    alone those the database already holds finished."""

    _finished_in_db: frozenset = frozenset()

    def restore(self, checkpoint_path: str):
        super().restore(checkpoint_path)
        known = {t.number for t in self._ot_trials.values()}
        storage = self._ot_study._storage
        self._finished_in_db = frozenset(
            trial_id for trial_id, t in self._ot_trials.items()
            if trial_id not in self._completed_trials and storage.get_trial(t._trial_id).state.is_finished())
        self._completed_trials.update(self._finished_in_db)
        lost = [t for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.number not in known]
        for t in lost:
            storage.set_trial_user_attr(t._trial_id, LOST_ATTR, True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if lost:
            log.info("note: marked %d Optuna trial(s) FAIL (asked after the interrupted study's last snapshot; "
                     "their work is redone by new trials)", len(lost))

    def on_trial_result(self, trial_id: str, result: dict):
        if trial_id not in self._finished_in_db:  # else: recorded before the driver's loss
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in self._finished_in_db:
            super().on_trial_complete(trial_id, result, error)
