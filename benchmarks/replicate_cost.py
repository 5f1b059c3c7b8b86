"""Wall time of one trial with R = 1 vs R = 3 lockstep replicates (budget.replicates), in process
through tuning.trial_run.run_trial (no Ray), alternating R = 1, 3, 1, 3 so that drifting machine load
shows: ring8, evals at KIMG/2 and KIMG, 1000 FID samples, 1 thread.

    python benchmarks/replicate_cost.py 16
"""
import argparse
import os
import time

import torch

from smart.config import RunConfig
from tuning.trial_run import run_trial


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kimg", type=float, help="training length of each trial")
    p.add_argument("--replicates", type=int, nargs="+", default=[1, 3, 1, 3], help="R of each run, in order")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = RunConfig.from_dict({"data": {"kind": "ring8"}, "seed": 5,
                               "training": {"kimg": args.kimg, "eval_every_kimg": args.kimg / 2},
                               "eval": {"num_samples": 1000}})
    print(f"{os.cpu_count()} cores; one ring8 trial of {args.kimg:g} kimg")
    print(f"{'R':>3} {'wall s':>8} {'load1 before -> after':>22}")
    for r in args.replicates:
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        run_trial(cfg, metric="fid", mode="min", report=lambda m, checkpoint=None: None, checkpoint=None,
                  replicates=r)
        print(f"{r:>3} {time.perf_counter() - t0:8.1f} {load0:>12.1f} -> {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
