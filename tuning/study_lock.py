"""One driver per study directory: `<storage>/<name>.lock` beside the experiment directory, held
with an exclusive `flock` for as long as the driver runs and naming its process. The kernel drops
the lock when that process dies however it dies, so a lock left by a dead driver is simply taken
over; a live one refuses the second driver before it starts anything. Two drivers never write one
experiment.

Only local directories (and NFS mounts whose server supports locks) are locked: an object store
(s3://, gs://, ...) has no locks, and there the user keeps to one driver per study.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time

from smart.config import ConfigError
from tuning.storage import Storage

log = logging.getLogger(__name__)
_CHECK_GRACE_S = 1.0  # check() holds a shared lock for an instant


class StudyLock:
    """`check()` refuses a study that a live driver holds (reads only); `acquire()` takes the lock
    (ConfigError when another driver got there first); `release()` gives it back."""

    def __init__(self, storage: Storage, name: str):
        local = storage.local_path
        self.path = os.path.join(local, f"{name}.lock") if local is not None else None
        self.name, self.where = name, storage.location
        self._fd: int | None = None

    def _holder(self, fd: int) -> str:
        """Who holds the lock open on `fd`, as the lock file says."""
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
            return (f"process {info['pid']} on {info['host']} (started {info['started']}: "
                    f"{info['command']})")
        except (ValueError, KeyError, OSError):
            return "another process"

    def _refuse(self, fd: int) -> ConfigError:
        return ConfigError("--storage", f"study {self.name!r} in {os.path.dirname(self.path)} is being run by "
                                        f"{self._holder(fd)}; wait for it to end, or stop it and rerun with --resume")

    def check(self) -> None:
        if self.path is None or not os.path.exists(self.path):
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._refuse(fd) from None
        finally:
            os.close(fd)

    def acquire(self) -> None:
        if self.path is None:
            log.info("note: %s is not a local directory; nothing stops a second driver of study %s", self.where,
                     self.name)
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        deadline = time.monotonic() + _CHECK_GRACE_S
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() < deadline:  # perhaps only another driver's check() looking
                    os.close(fd)
                    time.sleep(0.1)
                    continue
                error = self._refuse(fd)
                os.close(fd)
                raise error from None
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the previous holder removed the file between our open and our lock
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:200]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        os.unlink(self.path)  # while still held: a driver waiting on the old file sees it gone
        os.close(self._fd)
        self._fd = None
