"""Faults outside the trials: the study's storage or the tracking store runs out of space, or a
tracking server or storage URI stops answering. They end the study with one line that says what
happened and how to go on (`error: --storage: no space left on /data/runs; free space and rerun
with --resume`), exit 1, and keep everything on disk; `--resume` continues from there.

`fault_of` recognises them in whatever wraps them (Tune's TuneError, Ray's RayTaskError, MLflow's
MlflowException over SQLAlchemy over sqlite3); `quiet_tracebacks` keeps Tune's and MLflow's
tracebacks of such a fault off the console (tuning/fault_watch.py ends the study at the first trial
that failed on one); `check_reachable` finds a tracking server that does not answer before anything
starts. Imports neither Ray nor MLflow.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import sys

from smart.config import ConfigError
from tuning.plan import STUDY_FILE
from tuning.storage import Storage

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_PROBE_TIMEOUT_S = 10
# the loggers that print a traceback of a fault the driver reports in one line
_NOISY_LOGGERS = ("ray.tune.execution.tune_controller", "mlflow.store.db.utils")


class StudyFault(Exception):
    """A fault outside the trials, as the one line `error: <key>: <why>` (exit 1)."""

    def __init__(self, key: str, why: str):
        super().__init__(f"{key}: {why}")


def _linked(exc: BaseException):
    """The exception and every exception it wraps (causes, contexts, Ray's task-error cause)."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        cause = getattr(e, "cause", None)
        todo += [e.__cause__, e.__context__, cause if isinstance(cause, BaseException) else None]


def _no_space(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno in _NO_SPACE:
        return True
    return isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def root_cause(e: BaseException) -> str:
    """The first line of the innermost exception `e` wraps, e.g. `[Errno 111] Connection refused`."""
    return _first_line(list(_linked(e))[-1])


def check_reachable(uri: str, key: str) -> None:
    """A tracking server that does not answer is bad input, found before anything starts: one
    connection-level request (MLflow's own client retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return  # a database store answers when it is first used, and is created if need be
    import requests

    try:
        requests.get(uri, timeout=_PROBE_TIMEOUT_S)
    except requests.RequestException as exc:
        raise ConfigError(key, f"cannot reach {uri}: {root_cause(exc)}") from None


class FaultPlaces:
    """Where a study writes and whom it calls, with the option that named each (for the message)."""

    def __init__(self, storage: Storage, storage_key: str, exp: Storage, tracking_uri: str | None,
                 tracking_key: str | None):
        self.storage, self.storage_key, self.exp = storage, storage_key, exp
        self.tracking_uri, self.tracking_key = tracking_uri, tracking_key

    def _fullest(self) -> tuple[str, str]:
        """(option, directory) of the fullest local place the study writes to."""
        places = [(self.storage_key, self.storage.local_path)]
        if self.tracking_uri and self.tracking_uri.startswith("sqlite:///"):
            places.append((self.tracking_key, os.path.dirname(self.tracking_uri.removeprefix("sqlite:///"))))
        places = [(key, path) for key, path in places if path and os.path.isdir(path)]
        if not places:
            return self.storage_key, self.storage.location
        return min(places, key=lambda place: shutil.disk_usage(place[1]).free)

    def fault_of(self, exc: BaseException) -> StudyFault | None:
        """The StudyFault that `exc` is, or None for anything else (a bug: its traceback is shown)."""
        import requests

        chain = list(_linked(exc))
        known = next((e for e in chain if isinstance(e, StudyFault)), None)  # e.g. raised by FaultWatch
        if known is not None:
            return known
        if any(_no_space(e) for e in chain):
            key, path = self._fullest()
            return StudyFault(key, f"no space left on {path}; free space and {self._way_on()}")
        lost = next((e for e in chain if isinstance(e, (requests.ConnectionError, requests.Timeout))), None)
        if lost is not None and self.tracking_uri:
            return StudyFault(self.tracking_key, f"cannot reach {self.tracking_uri}: {root_cause(lost)}; "
                                              f"{self._way_on()} once it answers")
        remote_error = next((e for e in chain if isinstance(e, OSError)), None)
        if remote_error is not None and self.storage.local_path is None:
            return StudyFault(self.storage_key, f"cannot reach {self.storage.location}: {_first_line(remote_error)}; "
                                                f"{self._way_on()} once it answers")
        return None

    def _way_on(self) -> str:
        """--resume once the study has recorded itself (study.json), a plain rerun before."""
        local = self.exp.local_path
        return "rerun with --resume" if local is None or os.path.exists(os.path.join(local, STUDY_FILE)) else "rerun"


@contextlib.contextmanager
def quiet_tracebacks(places: FaultPlaces):
    """Drop Tune's and MLflow's log records of a fault that the driver reports in one line: those
    that carry it, and those logged while it is being handled (Tune's warning about callbacks)."""
    def keep(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        return exc is None or places.fault_of(exc) is None

    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    for lg in loggers:
        lg.addFilter(keep)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(keep)
