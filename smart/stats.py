"""What training reports between two evals: each loss term's running mean, summed on its device
(one host sync per eval, not per step), and the seconds spent per phase and inside the SMaRt term
(on the device's own clock: smart.timing)."""
from __future__ import annotations

import contextlib

import torch

from smart.timing import BranchClock, CudaTimer, Durations, HostTimer


class TrainingStats:
    """`timer` times the phases and the SMaRt term (default: the host clock)."""

    def __init__(self, timer: HostTimer | CudaTimer | None = None):
        self.timer = timer or HostTimer()
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}
        self._durations = Durations(self.timer)
        self.smart_clock = BranchClock(self.timer)  # forward and backward of the SMaRt term

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds per phase since the last reset (0.0 for a phase not run)."""
        return self._durations.resolve()

    def add(self, name: str, value: torch.Tensor) -> None:
        """One value of a loss term (accumulated on its device)."""
        self._sums[name] = self._sums.get(name, 0.0) + value.detach()
        self._counts[name] = self._counts.get(name, 0) + 1

    @property
    def counts(self) -> dict[str, int]:
        """How many values of each term arrived since the last reset."""
        return dict(self._counts)

    def means(self) -> dict[str, float]:
        """Mean of each term since the last reset (a NaN/inf value poisons its mean)."""
        return {name: float(total) / self._counts[name] for name, total in self._sums.items()}

    @contextlib.contextmanager
    def timed(self, phase: str):
        start = self.timer.mark()
        try:
            yield
        finally:
            self._durations.add(phase, start, self.timer.mark())

    def state_dict(self) -> dict:
        return {"sums": {k: float(v) for k, v in self._sums.items()}, "counts": dict(self._counts)}

    def load_state_dict(self, state: dict) -> None:
        self._sums, self._counts = dict(state["sums"]), dict(state["counts"])
