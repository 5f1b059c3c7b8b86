"""Time spent in parts of a training step, without changing a single number the step computes.

A timer places marks and measures between two of them. On the CPU a mark is a host clock reading:
work is done when the call returns. On CUDA, calls return once the kernels are queued, so host
clocks measure launches, not kernels; there a mark is a CUDA event recorded on the current stream
and the time between two is the GPU's. `make_timer` picks by device. `Durations` sums (start, end)
pairs per name and reads CUDA events only when asked (one synchronisation per read, not per step).

`BranchClock` times one sub-computation (the SMaRt term), its backward pass included: `enter(x)`
and `exit(y)` put identity autograd nodes at the input and the output of the sub-graph. Going
forward the caller marks around the sub-graph; going backward the output's node fires when the
gradient reaches the sub-graph and the input's node when it has left it. Autograd runs the most
recently created nodes first, so the sub-graph's backward runs in one piece between the two marks.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable

import torch


class HostTimer:
    """Marks are readings of `clock` (benchmarks pass time.process_time)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock

    def mark(self) -> float:
        return self.clock()

    @staticmethod
    def seconds(start: float, end: float) -> float:
        return end - start


class CudaTimer:
    """Marks are CUDA events on the current stream; reading a duration waits for its end event."""

    def mark(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    @staticmethod
    def seconds(start: torch.cuda.Event, end: torch.cuda.Event) -> float:
        end.synchronize()
        return start.elapsed_time(end) / 1000


def make_timer(device, clock: Callable[[], float] | None = None) -> HostTimer | CudaTimer:
    """CUDA events on a CUDA device, else the host clock; an explicit `clock` always wins (a
    benchmark that synchronises itself)."""
    if clock is None and torch.device(device).type == "cuda":
        return CudaTimer()
    return HostTimer(clock or time.perf_counter)


class Durations:
    """Seconds per name, summed over (start, end) mark pairs, resolved when read."""

    _RESOLVE_EVERY = 512  # bounds the pending events of a long interval between reads
    _LEFT_PENDING = 64  # the newest pairs, whose events the GPU may not have reached: reading them would wait

    def __init__(self, timer: HostTimer | CudaTimer):
        self.timer = timer
        self._pending: list[tuple[str, object, object]] = []
        self._seconds: dict[str, float] = defaultdict(float)

    def add(self, name: str, start, end) -> None:
        self._pending.append((name, start, end))
        if len(self._pending) >= self._RESOLVE_EVERY:
            self._resolve(len(self._pending) - self._LEFT_PENDING)

    def _resolve(self, n: int) -> None:
        """Sum the oldest `n` pending pairs."""
        for name, start, end in self._pending[:n]:
            self._seconds[name] += self.timer.seconds(start, end)
        del self._pending[:n]

    def resolve(self) -> dict[str, float]:
        """Every name's seconds so far (a dict that reads 0.0 for names never timed)."""
        self._resolve(len(self._pending))
        return self._seconds


class _Mark(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, clock, event):
        ctx.clock, ctx.event = clock, event
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.clock._backward_event(ctx.event)
        return grad, None, None


class BranchClock:
    """Seconds spent in a marked sub-graph, forward (`mark()` ... `stop(start)`) and backward."""

    def __init__(self, timer: HostTimer | CudaTimer):
        self._durations = Durations(timer)
        self.mark = timer.mark
        self._backward_start = None

    @property
    def seconds(self) -> float:
        return self._durations.resolve()["branch"]

    def stop(self, start) -> None:
        """The forward pass that began at mark `start` has ended."""
        self._durations.add("branch", start, self.mark())
        self._backward_start = None  # a new forward: nothing of an earlier backward is pending

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        """Mark the sub-graph's input (its backward ends here)."""
        return _Mark.apply(x, self, "end") if x.requires_grad else x

    def exit(self, y: torch.Tensor) -> torch.Tensor:
        """Mark the sub-graph's output (its backward starts here)."""
        return _Mark.apply(y, self, "start") if y.requires_grad else y

    def _backward_event(self, event: str) -> None:
        now = self.mark()
        if event == "start":
            self._backward_start = now
        elif self._backward_start is not None:
            self._durations.add("branch", self._backward_start, now)
            self._backward_start = None
