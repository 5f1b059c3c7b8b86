"""The driver imports its finish's modules on a thread as the search's last trial starts
(tuning/warm_finish.py), once."""
import sys
from types import SimpleNamespace

from tuning.warm_finish import WarmFinish


def _trials(n):
    return [SimpleNamespace(status="RUNNING") for _ in range(n)]


def test_imports_once_the_last_trial_starts(tmp_path, monkeypatch):
    (tmp_path / "warm_probe_finish.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    warm = WarmFinish(["warm_probe_finish"], num_samples=3)
    for n in (1, 2):  # the searcher has not made the last trial yet
        trials = _trials(n)
        warm.on_trial_start(0, trials, trials[-1])
        assert warm.thread is None
    trials = _trials(3)
    warm.on_trial_start(0, trials, trials[-1])
    assert warm.thread is not None
    warm.thread.join(timeout=60)
    assert "warm_probe_finish" in sys.modules
    assert warm.timings.totals["finish_imports"][1] == 1
    first = warm.thread
    warm.on_trial_start(0, trials, trials[0])  # a restarted trial
    assert warm.thread is first


def test_nothing_to_import_starts_nothing():
    warm = WarmFinish([], num_samples=1)
    trials = _trials(1)
    warm.on_trial_start(0, trials, trials[0])
    assert warm.thread is None
