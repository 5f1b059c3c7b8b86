"""Wall-clock time of one sub-computation inside a training step, its backward pass included,
without changing a single number the step computes.

`BranchClock.enter(x)` and `.exit(y)` put identity autograd nodes at the input and the output of a
sub-graph (the SMaRt term). Going forward, the caller times the sub-graph itself; going backward,
the output's node fires when the gradient reaches the sub-graph and the input's node when it has
left it, and the time between them is added. Autograd runs the most recently created nodes first,
so on the CPU the sub-graph's backward runs in one piece. On CUDA the backward is asynchronous
and the times are host-side (launch) times: a lower bound.
"""
from __future__ import annotations

import time
from typing import Callable

import torch


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
    """Seconds spent in a marked sub-graph, forward (`add`) and backward (marks), on `clock`."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.seconds = 0.0
        self._backward_start: float | None = None

    def add(self, seconds: float) -> None:
        self.seconds += seconds
        self._backward_start = None  # a new forward: nothing of an earlier backward is pending

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        """Mark the sub-graph's input (its backward ends here)."""
        return _Mark.apply(x, self, "end") if x.requires_grad else x

    def exit(self, y: torch.Tensor) -> torch.Tensor:
        """Mark the sub-graph's output (its backward starts here)."""
        return _Mark.apply(y, self, "start") if y.requires_grad else y

    def _backward_event(self, event: str) -> None:
        now = self.clock()
        if event == "start":
            self._backward_start = now
        elif self._backward_start is not None:
            self.seconds += now - self._backward_start
            self._backward_start = None
