"""Cost of the SMaRt term: seconds per G step and per training iteration (D + G + EMA), with the
regularizer off and on at k = 1 and k = 8 in both modes, as ratios to "off".

    python benchmarks/step_overhead.py                 # all cases
    python benchmarks/step_overhead.py --cases toy --iters 400

Timed on the real Trainer's phases after a warm-up, median of --repeats blocks of --iters iterations.
"""
from __future__ import annotations

import argparse
import statistics
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


def time_setting(case: dict, setting: dict, iters: int, repeats: int) -> tuple[float, float]:
    """Median seconds per G phase and per full iteration."""
    trainer = Trainer(RunConfig.from_dict({}, {**case, **setting, "training.kimg": 1e6,
                                               "training.eval_every_kimg": 1e6}))
    batch = trainer.cfg.training.batch_size
    g_times, it_times = [], []
    for block in range(repeats + 1):  # block 0 warms up
        g_sec = 0.0
        t0 = time.perf_counter()
        for _ in range(iters):
            trainer._d_phase(batch)
            tg = time.perf_counter()
            trainer._g_phase(batch)
            g_sec += time.perf_counter() - tg
            trainer._update_ema(batch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        if block:
            it_times.append((time.perf_counter() - t0) / iters)
            g_times.append(g_sec / iters)
    return statistics.median(g_times), statistics.median(it_times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {'cuda: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}\n")
    print("| case | setting | ms / G step | ratio | ms / iteration (D+G) | ratio |")
    print("|---|---|---|---|---|---|")
    for name in args.cases:
        base_g = base_it = None
        for label, setting in SETTINGS:
            g, it = time_setting(CASES[name], setting, args.iters, args.repeats)
            base_g, base_it = base_g or g, base_it or it
            print(f"| {name} | {label} | {g * 1e3:.2f} | {g / base_g:.2f}× | {it * 1e3:.2f} | {it / base_it:.2f}× |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
