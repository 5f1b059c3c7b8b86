"""Overhead of the study runner: the same trial configs trained in a bare loop (worker processes,
no Ray, no MLflow) and through `python tuning/run_study.py` (Ray Tune + Optuna + MLflow + a
checkpoint per eval), both --concurrency trials at a time with one thread each.

    python benchmarks/study_overhead.py                          # quick: 8 trials × 128 kimg
    python benchmarks/study_overhead.py --trials 16 --kimg 256   # full size

Two walls per side: end to end (a fresh interpreter: imports, Ray start, MLflow database, ...)
and the training loop only (bare: the pool's first to last trial; study: Tune's tuning loop).
Target: study / bare <= 1.15 on the training loop.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tuning.space import trial_seed  # noqa: E402

BASE = {"data": {"kind": "ring8"}, "eval": {"num_samples": 2000}}


def trial_configs(n: int) -> list[dict]:
    """n fixed (λ, k, t-range) settings, the first the λ=0 baseline."""
    weights, intervals, ranges = [0.0, 0.01, 0.1, 1.0], [1, 8], [(25, 35), (100, 150)]
    out = []
    for i in range(n):
        t_min, t_max = ranges[(i // 4) % 2]
        out.append({"regularizer.weight": weights[i % 4], "regularizer.interval": intervals[(i // 2) % 2],
                    "regularizer.t_min": t_min, "regularizer.t_max": t_max, "seed": trial_seed(0, i)})
    return out


def _train_one(args) -> float:
    base, overrides = args
    import torch

    from smart.config import RunConfig
    from smart.loop import Trainer

    torch.set_num_threads(1)
    return Trainer(RunConfig.from_dict(base, overrides)).train()["fid"]


def bare(base: dict, configs: list[dict], concurrency: int) -> float:
    """Training-loop wall of the bare loop (workers already started)."""
    from smart.assets import prepare_assets
    from smart.config import RunConfig

    prepare_assets(RunConfig.from_dict(base))
    # one thread per worker for BLAS/OpenMP too, as Ray gives its 1-CPU workers (OMP_NUM_THREADS=1)
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with ProcessPoolExecutor(concurrency, mp_context=multiprocessing.get_context("spawn")) as pool:
        warm = {**base, "training": {"kimg": 1.0, "eval_every_kimg": 1.0}}
        list(pool.map(_train_one, [(warm, {})] * concurrency))  # start and warm the workers
        t0 = time.perf_counter()
        list(pool.map(_train_one, [(base, c) for c in configs]))
        return time.perf_counter() - t0


def study_file(path: str, base: dict, configs: list[dict], concurrency: int, resources: dict | None = None) -> None:
    keys = {"regularizer.weight": {"type": "uniform", "low": 0.0, "high": 1.0},
            "regularizer.interval": {"type": "choice", "values": [1, 8]},
            "regularizer.t_min": {"type": "range", "upper": "regularizer.t_max", "low": 0, "high": 200}}
    doc = {"name": "overhead", "config": base, "search": keys,
           "sampler": {"kind": "random", "points_to_evaluate": [{k: v for k, v in c.items() if k != "seed"}
                                                                for c in configs]},
           "budget": {"num_samples": len(configs), "max_concurrent": concurrency},
           "scheduler": {"kind": "none"}, "resources": resources or {"cpu": 1}}
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--kimg", type=float, default=128.0)
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    base = {**BASE, "training": {"kimg": args.kimg, "eval_every_kimg": 32.0}}
    configs = trial_configs(args.trials)
    env = {**os.environ, "PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)

    with tempfile.TemporaryDirectory() as tmp:
        base["eval"]["cache_dir"] = os.path.join(tmp, "cache")
        t0 = time.perf_counter()
        bare_loop = bare(base, configs, args.concurrency)
        bare_total = time.perf_counter() - t0

        path = os.path.join(tmp, "overhead.yaml")
        study_file(path, base, configs, args.concurrency)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "tuning", "run_study.py"), path,
                               "--storage", os.path.join(tmp, "runs")], env=env, capture_output=True, text=True)
        study_total = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        loop = re.search(r"\(([\d.]+) seconds for the tuning loop\)", proc.stdout + proc.stderr)
        study_loop = float(loop.group(1))

    print(f"{args.trials} trials × {args.kimg:g} kimg, {args.concurrency} at a time, 1 thread each "
          f"(ring8, eval every 32 kimg on 2000 samples)")
    print(f"{'':24}{'training loop [s]':>18}{'end to end [s]':>16}")
    print(f"{'bare loop (no Ray)':24}{bare_loop:>18.1f}{bare_total:>16.1f}")
    print(f"{'run_study (Ray+MLflow)':24}{study_loop:>18.1f}{study_total:>16.1f}")
    print(f"{'ratio study / bare':24}{study_loop / bare_loop:>17.2f}×{study_total / bare_total:>15.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
