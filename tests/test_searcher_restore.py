"""StudySearch restored after a driver loss, against a real Optuna sqlite storage."""
import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION

from tuning.searcher import LOST_ATTR, StudySearch


def _space(trial):
    trial.suggest_float("regularizer.weight", 1e-3, 1.0, log=True)


def _searcher(url):
    return StudySearch(_space, metric="fid", mode="min", study_name="s",
                       storage=optuna.storages.RDBStorage(url), sampler=optuna.samplers.RandomSampler(seed=0))


def test_a_trial_finished_after_the_snapshot_is_not_told_again_and_an_unknown_one_is_lost(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    before = _searcher(url)
    before.suggest("t0")
    before.on_trial_result("t0", {"fid": 0.5, TRAINING_ITERATION: 1})
    before.save(str(tmp_path / "searcher.pkl"))  # Tune's experiment snapshot
    before.on_trial_complete("t0", {"fid": 0.4, TRAINING_ITERATION: 2})  # then t0 ends ...
    before.suggest("t1")  # ... and t1 is asked: the driver dies before the next snapshot

    after = _searcher(url)
    after.restore(str(tmp_path / "searcher.pkl"))
    after.on_trial_result("t0", {"fid": 0.45, TRAINING_ITERATION: 2})  # Tune reruns t0 from its checkpoint
    after.on_trial_complete("t0", {"fid": 0.41, TRAINING_ITERATION: 2})

    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[0].value == 0.4 and trials[0].intermediate_values == {1: 0.5}
    assert trials[1].user_attrs.get(LOST_ATTR) is True
