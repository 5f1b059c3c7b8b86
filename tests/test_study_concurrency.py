"""Studies side by side on one machine, with the real CLI in separate processes: two different
studies both run, each on its own local Ray (the second one's dashboard on a free port, not the
taken 8265); the same study directory run a second time while the first driver lives is refused
up front (exit 2, naming that driver's process); the lock of a driver that died is taken over."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from smart.config import ConfigError
from tuning.storage import Storage
from tuning.study_lock import StudyLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = [sys.executable, os.path.join(ROOT, "tuning", "run_study.py"), os.path.join(ROOT, "studies", "toy_ring.yaml"),
         "--profile", "quick", "--set", "budget.num_samples=2"]
# A process that takes a study's lock and waits (to be killed).
_HOLDER = ("import sys, time; from tuning.storage import Storage; from tuning.study_lock import StudyLock; "
           "StudyLock(Storage(sys.argv[1]), 'held').acquire(); print('locked', flush=True); time.sleep(600)")


def _env():
    return {**os.environ, "PYTHONPATH": ROOT}


def _dashboard(err: str) -> str:
    return re.search(r"^dashboard: (http://\S+)", err, re.M).group(1)


@pytest.mark.slow
def test_two_studies_run_at_once_and_one_study_never_twice(tmp_path):
    first = subprocess.Popen([*QUICK, "--storage", str(tmp_path / "a")], cwd=tmp_path, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        deadline = time.time() + 300
        while not (tmp_path / "a" / "toy_ring" / "study.json").exists():  # its Ray is up and the study recorded
            assert first.poll() is None and time.time() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.2)
        second = subprocess.Popen([*QUICK, "--storage", str(tmp_path / "b")], cwd=tmp_path, env=_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        again = subprocess.run([*QUICK, "--storage", str(tmp_path / "a")], cwd=tmp_path, env=_env(),
                               capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # the refusal came while the first study ran
        assert again.returncode == 2 and again.stdout == "", again.stderr
        assert again.stderr.startswith(f"error: --storage: study 'toy_ring' in {tmp_path / 'a'} is being run by "
                                       f"process {first.pid} on ") and again.stderr.count("\n") == 1, again.stderr
        outs = [p.communicate(timeout=600) for p in (first, second)]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
    assert [p.returncode for p in (first, second)] == [0, 0], [e[-3000:] for _, e in outs]
    for store, (out, _) in zip("ab", outs):
        assert (tmp_path / store / "toy_ring" / "summary.json").exists() and "best: trial" in out
        assert not (tmp_path / store / "toy_ring.lock").exists()
    assert _dashboard(outs[0][1]) != _dashboard(outs[1][1])  # each study its own Ray and dashboard


def test_the_lock_of_a_dead_driver_is_taken_over(tmp_path):
    storage = Storage(str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], env=_env(), stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"study 'held' in {tmp_path} is being run by process {holder.pid} "):
            StudyLock(storage, "held").check()
        with pytest.raises(ConfigError, match=f"process {holder.pid} "):
            StudyLock(storage, "held").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "held.lock").exists()  # a dead driver's lock file stays behind ...
    lock = StudyLock(storage, "held")
    lock.check()  # ... and holds nothing
    lock.acquire()
    assert f'"pid": {os.getpid()}' in (tmp_path / "held.lock").read_text()
    lock.release()
    assert not (tmp_path / "held.lock").exists()
