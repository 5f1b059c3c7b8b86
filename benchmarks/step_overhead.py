"""Cost of the SMaRt term: seconds per G step and per training iteration (D + G + EMA), with the
regularizer off and on at k = 1 and k = 8 in both modes, as ratios to "off".

    python benchmarks/step_overhead.py                 # all cases
    python benchmarks/step_overhead.py --cases toy --iters 400

Timed on the real Trainer's phases. The settings of a case are timed in interleaved blocks of --iters
iterations (round-robin, after a warm-up block each) and each reports its fastest block. Times are
this process's CPU seconds (time.process_time): with --threads 1 that is the work itself, unaffected by
other processes on a shared machine; with more threads or on CUDA use --clock wall.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from smart.config import RunConfig
from smart.loop import Trainer

CASES: dict[str, dict] = {
    "toy": {"data.kind": "ring8", "training.batch_size": 256},
}
SETTINGS = [
    ("off", {"regularizer.weight": 0.0}),
    ("jacobian k=1", {"regularizer.weight": 0.1, "regularizer.interval": 1, "regularizer.mode": "jacobian"}),
    ("jacobian k=8", {"regularizer.weight": 0.1, "regularizer.interval": 8, "regularizer.mode": "jacobian"}),
    ("sds k=1", {"regularizer.weight": 0.1, "regularizer.interval": 1, "regularizer.mode": "sds"}),
    ("sds k=8", {"regularizer.weight": 0.1, "regularizer.interval": 8, "regularizer.mode": "sds"}),
]


def _trainer(case: dict, setting: dict) -> Trainer:
    return Trainer(RunConfig.from_dict({}, {**case, **setting, "training.kimg": 1e6,
                                            "training.eval_every_kimg": 1e6}))


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def _block(trainer: Trainer, iters: int, clock) -> tuple[float, float]:
    """Seconds per G phase and per full iteration over one block."""
    batch = trainer.cfg.training.batch_size
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    g_sec = 0.0
    t0 = clock()
    for _ in range(iters):
        trainer._d_phase(batch)
        sync()
        tg = clock()
        trainer._g_phase(batch)
        sync()
        g_sec += clock() - tg
        trainer._update_ema(batch)
    sync()
    return g_sec / iters, (clock() - t0) / iters


def time_case(case: dict, iters: int, repeats: int, clock) -> list[tuple[float, float]]:
    """Fastest (G phase, iteration) seconds per setting, timed round-robin."""
    trainers = [_trainer(case, setting) for _, setting in SETTINGS]
    for trainer in trainers:  # warm-up
        _block(trainer, max(iters // 4, 1), clock)
    best = [(float("inf"), float("inf"))] * len(trainers)
    for _ in range(repeats):
        for i, trainer in enumerate(trainers):
            g, it = _block(trainer, iters, clock)
            best[i] = (min(best[i][0], g), min(best[i][1], it))
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=list(CLOCKS), default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"device {'cuda: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}\n")
    print("| case | setting | ms / G step | ratio | ms / iteration (D+G) | ratio |")
    print("|---|---|---|---|---|---|")
    for name in args.cases:
        timings = time_case(CASES[name], args.iters, args.repeats, CLOCKS[args.clock])
        base_g, base_it = timings[0]
        for (label, _), (g, it) in zip(SETTINGS, timings):
            print(f"| {name} | {label} | {g * 1e3:.2f} | {g / base_g:.2f}× | {it * 1e3:.2f} | {it / base_it:.2f}× |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
