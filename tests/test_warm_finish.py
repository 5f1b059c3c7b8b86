"""The driver imports its finish's modules only once the search has started every trial and a
trial slot is idle (tuning/warm_finish.py): never while trials fill the cores."""
import sys
from types import SimpleNamespace

from tuning.warm_finish import WarmFinish


def _trials(*statuses):
    return [SimpleNamespace(status=s) for s in statuses]


def test_imports_once_every_trial_exists_and_a_slot_is_idle(tmp_path, monkeypatch):
    (tmp_path / "warm_probe_finish.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    warm = WarmFinish(["warm_probe_finish"], num_samples=4, concurrency=2)

    trials = _trials("TERMINATED", "RUNNING", "RUNNING")  # the searcher has not made trial 4 yet
    warm.on_trial_complete(0, trials, trials[0])
    assert warm.thread is None
    trials = _trials("TERMINATED", "RUNNING", "RUNNING", "PENDING")  # 2 live besides the one ending
    warm.on_trial_complete(0, trials, trials[0])
    assert warm.thread is None
    trials = _trials("TERMINATED", "RUNNING", "RUNNING", "TERMINATED")  # its status is set after the callback
    warm.on_trial_complete(0, trials, trials[1])
    assert warm.thread is not None
    warm.thread.join(timeout=60)
    assert "warm_probe_finish" in sys.modules
    assert warm.timings.totals["finish_imports"][1] == 1
    first = warm.thread
    warm.on_trial_error(0, trials, trials[2])
    assert warm.thread is first  # once


def test_nothing_to_import_starts_nothing():
    warm = WarmFinish([], num_samples=1, concurrency=2)
    trials = _trials("TERMINATED")
    warm.on_trial_complete(0, trials, trials[0])
    assert warm.thread is None
