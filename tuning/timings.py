"""Where a study's time goes, for benchmarks/study_overhead.py: named durations summed with their
counts. The trials send theirs with every result (the `timings` key, numbers only, which MLflow
never sees: tuning.results.trainer_metrics keeps the top-level numbers), the MLflow callback
times its calls, and the driver its phases; summary.json gets them all as `timings`."""
from __future__ import annotations

import contextlib
import os
import time


class Timings:
    """name -> [seconds, count]."""

    def __init__(self):
        self.totals: dict[str, list] = {}

    def add(self, name: str, seconds: float, count: int = 1) -> None:
        entry = self.totals.setdefault(name, [0.0, 0])
        entry[0] += seconds
        entry[1] += count

    @contextlib.contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def to_dict(self) -> dict:
        return {name: {"s": round(s, 4), "n": n} for name, (s, n) in sorted(self.totals.items())}




def process_age() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere): the driver's interpreter
    start and imports."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / os.sysconf("SC_CLK_TCK")
