"""Timing picks the device's clock (CUDA events on CUDA, where host clocks see only launches), sums
a sub-graph's forward and backward, and the hot loop runs G without autograd in D's phase."""
import itertools
import time

import torch

from smart.config import RunConfig
from smart.loop import Trainer
from smart.timing import BranchClock, CudaTimer, Durations, HostTimer, make_timer


def test_the_timer_follows_the_device():
    assert isinstance(make_timer(torch.device("cuda")), CudaTimer)
    assert isinstance(make_timer("cuda:1"), CudaTimer)
    assert isinstance(make_timer("cpu"), HostTimer)
    assert make_timer("cpu").clock is time.perf_counter
    assert make_timer("cuda", clock=time.process_time).clock is time.process_time  # a benchmark's own clock


def test_a_trainer_times_with_its_devices_timer():
    trainer = Trainer(RunConfig.from_dict({}, {"device": "cpu"}))
    assert isinstance(trainer.stats.timer, HostTimer)
    assert trainer.stats.smart_clock.mark == trainer.stats.timer.mark


def test_durations_sum_pairs_per_name():
    ticks = itertools.count()
    timer = HostTimer(lambda: float(next(ticks)))
    d = Durations(timer)
    for _ in range(3):
        a = timer.mark()
        d.add("G", a, timer.mark())
    d.add("D", 0.0, 5.0)
    seconds = d.resolve()
    assert seconds["G"] == 3.0 and seconds["D"] == 5.0 and seconds["train"] == 0.0


def test_branch_clock_counts_forward_and_backward_of_the_branch_only():
    ticks = itertools.count()
    clock = BranchClock(HostTimer(lambda: float(next(ticks))))
    x = torch.ones(3, requires_grad=True)
    y = (x * 2).sum()
    start = clock.mark()                     # tick 0
    branch = clock.exit((clock.enter(x) ** 2).sum())
    clock.stop(start)                        # tick 1: forward 1 s
    (y + branch).backward()                  # branch backward: one tick between its two marks
    assert clock.seconds == 2.0
    assert torch.equal(x.grad, 2 + 2 * x.detach())  # the marks change no number


def test_d_phase_runs_g_without_autograd():
    trainer = Trainer(RunConfig.from_dict({}, {"device": "cpu", "training.batch_size": 16}))
    grad_modes = []
    trainer.G.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    trainer.step()
    assert grad_modes[0] is False and grad_modes[-1] is True  # D phase first, then G's

