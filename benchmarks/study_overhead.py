"""Overhead of the study runner: the same trial configs trained in a bare loop (worker processes,
no Ray, no MLflow) and through `python tuning/run_study.py` (Ray Tune + Optuna + MLflow + a
checkpoint per eval), both --concurrency trials at a time with one thread each.

    python benchmarks/study_overhead.py                          # quick: 8 trials × 128 kimg
    python benchmarks/study_overhead.py --trials 16 --kimg 256   # full size

Two walls per side: end to end (a fresh interpreter: imports, Ray start, MLflow database, ...)
and the training loop only (bare: the pool's first to last trial; study: Tune's tuning loop).
Targets (issue 14): at --trials 16 --kimg 256, study / bare <= 1.15 on the training loop and
<= 1.25 end to end; at the default size <= 1.3 end to end.

Then the breakdown of the study's extra time, from summary.json's `timings` (tuning/timings.py):
per eval and per trial what the trials spend besides training (checkpoint, snapshot picture, live
gauges, the report's round trip through Tune's driver loop), the driver's MLflow calls, and the
fixed costs (reference statistics, Ray start and shutdown, summary, best generator, report, the
interpreter; of the phases that run at once only the longest counts).
Last, what no study can avoid on this machine, each measured alone: Ray's start (with the
dashboard) and shutdown, and the trial actors' imports. The machine's core count and load
(os.getloadavg) are printed with the figures: on a shared machine a figure means little without
them. `--repeats N` alternates bare and study N times.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

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


def run_study(path: str, storage: str, env: dict) -> tuple[float, float, dict]:
    """(end-to-end wall, Tune's tuning-loop wall, summary.json's timings) of one study run."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tuning", "run_study.py"), path, "--storage", storage],
                          env=env, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    loop = re.search(r"\(([\d.]+) seconds for the tuning loop\)", proc.stdout + proc.stderr)
    with open(os.path.join(storage, "overhead", "summary.json")) as fh:
        timings = json.load(fh)["timings"]
    return total, float(loop.group(1)), timings


PER_EVAL = [  # (timings key, what it is); trial-side costs, summed over all trials
    ("checkpoint_s", "checkpoint written (trainer.save)"),
    ("snapshot_s", "snapshot picture drawn"),
    ("gauges_s", "live gauges set"),
    ("report_s", "report round trip (Tune driver loop + callbacks)"),
    ("mlflow_log_batch", "MLflow log_batch (driver)"),
    ("mlflow_log_artifact", "MLflow snapshot artifact (driver)"),
]
PER_TRIAL = [
    ("actor_start", "Tune start -> trainable runs"),
    ("trainer_setup_s", "trainer setup in the trial (bare: same)"),
    ("mlflow_create_run", "MLflow child run created (driver)"),
]
FIXED = [
    ("startup", "driver: interpreter start and imports"),
    ("prepare", "prepare: checks, lock"),
    ("ray_start", "Ray start"),
    ("preload", "reference statistics, imports (while Ray starts)"),
    ("mlflow_parent", "MLflow parent run created"),
    ("tune_setup", "Tuner built (Tune, Optuna searcher, scheduler)"),
    ("fit_beyond_loop", "Tuner.fit beyond Tune's tuning loop"),
    ("ray_shutdown", "Ray shutdown"),
    ("summary", "summary.json"),
    ("mlflow_finish", "MLflow: lost runs, best trial, parent"),
    ("generator", "best trial's generator logged (while Ray shuts down)"),
    ("report", "study report (while Ray shuts down)"),
]
OVERLAPPING = (("preload", "ray_start"), ("report", "generator", "ray_shutdown"))  # each group at once (driver.py)


def breakdown(timings: dict, total: float, loop: float) -> list[str]:
    def row(label, s, n, note=""):
        per = f"{1000 * s / n:9.1f}" if n else f"{'-':>9}"
        return f"  {label:50}{s:8.2f}{n:6d}{per}  {note}"

    out = [f"  {'study (its last run), where the time goes':50}{'total s':>8}{'n':>6}{'ms each':>9}"]
    def notes(key: str) -> str:
        if key == "checkpoint_s" and "checkpoint_bytes" in timings:
            size = timings["checkpoint_bytes"]
            return f"{size['s'] / size['n'] / 1024:.0f} KiB each"
        if key == "actor_start" and "actor_reused" in timings:
            reused = timings["actor_reused"]
            return f"{int(reused['s'])} of {reused['n']} trials on a reused actor"
        return ""

    for title, rows in (("  per eval:", PER_EVAL), ("  per trial:", PER_TRIAL)):
        out.append(title)
        out += [row(label, timings[key]["s"], timings[key]["n"], notes(key)) for key, label in rows if timings.get(key)]
    out.append("  fixed (driver):")
    if "tuning_loop" in timings:  # the driver's Tuner.fit wall minus the loop Tune reports
        timings = {**timings, "fit_beyond_loop": {"s": timings["tuning_loop"]["s"] - loop, "n": 1}}
    spans = [[timings[key]["s"] if timings.get(key) else 0.0 for key in group] for group in OVERLAPPING]
    fixed = -sum(sum(group) - max(group) for group in spans)  # a group's longest is what it costs
    for key, label in FIXED:
        t = timings.get(key)
        if t:
            fixed += t["s"]
            out.append(row(label, t["s"], t["n"]))
    out.append(row("the rest: process exit (Ray workers stop)", total - loop - fixed, 0))
    out.append(row("=> outside Tune's tuning loop", total - loop, 0))
    return out


_RAY_ALONE = """
import json, time
t0 = time.perf_counter()
import ray
from tuning.cluster import init_ray
t1 = time.perf_counter()
init_ray()
t2 = time.perf_counter()
ray.shutdown()
print(json.dumps({"start": t2 - t1, "shutdown": time.perf_counter() - t2}))
"""
_TRIAL_IMPORTS = "import time; t0 = time.perf_counter(); import ray.tune, tuning.trial_run; print(time.perf_counter() - t0)"


TRIAL_SIDE = ("checkpoint_s", "snapshot_s", "gauges_s", "report_s", "actor_start")  # spent in a trial slot


def in_loop(timings: dict, loops: tuple[float, float], concurrency: int) -> str:
    """The loop's extra wall beside the trial-side costs above, spread over the trial slots; the
    difference is what the driver (its finish's imports among it) and Ray take of the cores while
    trials train, and gaps between trials."""
    slot = sum(timings[k]["s"] for k in TRIAL_SIDE if timings.get(k)) / concurrency
    warm = timings.get("finish_imports")
    return (f"  loop: study - bare = {loops[0] - loops[1]:.1f} s; the trial-side costs above "
            f"({', '.join(TRIAL_SIDE)}) come to {slot:.1f} s per trial slot; the driver's imports for the "
            "finish (torch, the report's), from the last trial's start: " +
            (f"{warm['s']:.1f} s" if warm else "still running when the loop ended"))


def floor(env: dict, concurrency: int) -> list[str]:
    """What a study pays that the bare loop does not, each measured alone in a fresh interpreter:
    Ray's start (with the dashboard, as a study starts it) and shutdown, and a trial actor's imports
    (Tune, torch, torch-fidelity, the training library), `concurrency` at once as the trials start."""
    def run(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]

    ray_alone = json.loads(run(_RAY_ALONE))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:  # each a subprocess
        list(pool.map(run, [_TRIAL_IMPORTS] * concurrency))
    imports = time.perf_counter() - t0
    return [f"  {'measured alone (fresh interpreters, after the runs)':50}{'s':>8}",
            f"  {'Ray start with the dashboard (ray.init)':50}{ray_alone['start']:8.2f}",
            f"  {'Ray shutdown':50}{ray_alone['shutdown']:8.2f}",
            f"  {f'trial actors importing Tune, torch, torch-fidelity ({concurrency} at once)':50}{imports:8.2f}"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--kimg", type=float, default=128.0)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1, help="bare and study alternately, this many times each")
    args = p.parse_args()
    base = {**BASE, "training": {"kimg": args.kimg, "eval_every_kimg": 32.0}}
    configs = trial_configs(args.trials)
    env = {**os.environ, "PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)

    walls = {"bare": [], "study": []}  # (training loop, end to end)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        base["eval"]["cache_dir"] = os.path.join(tmp, "cache")
        path = os.path.join(tmp, "overhead.yaml")
        study_file(path, base, configs, args.concurrency)
        for i in range(args.repeats):
            t0 = time.perf_counter()
            loop = bare(base, configs, args.concurrency)
            walls["bare"].append((loop, time.perf_counter() - t0))
            loads.append(os.getloadavg()[0])
            try:
                total, loop, timings = run_study(path, os.path.join(tmp, f"runs{i}"), env)
            except RuntimeError as exc:
                print(exc)
                return 1
            walls["study"].append((loop, total))
            loads.append(os.getloadavg()[0])

    med = {side: [statistics.median(w[k] for w in runs) for k in (0, 1)] for side, runs in walls.items()}
    print(f"{args.trials} trials × {args.kimg:g} kimg, {args.concurrency} at a time, 1 thread each "
          f"(ring8, eval every 32 kimg on 2000 samples)")
    print(f"machine: {os.cpu_count()} cores; 1-min load average {', '.join(f'{x:.1f}' for x in loads)} "
          f"(before, then after each run)" + (f"; medians of {args.repeats} runs each" if args.repeats > 1 else ""))
    print(f"{'':24}{'training loop [s]':>18}{'end to end [s]':>16}")
    print(f"{'bare loop (no Ray)':24}{med['bare'][0]:>18.1f}{med['bare'][1]:>16.1f}")
    print(f"{'run_study (Ray+MLflow)':24}{med['study'][0]:>18.1f}{med['study'][1]:>16.1f}")
    ratio = [med["study"][k] / med["bare"][k] for k in (0, 1)]
    print(f"{'ratio study / bare':24}{ratio[0]:>17.2f}×{ratio[1]:>15.2f}×")
    print("\n".join(breakdown(timings, *walls["study"][-1][::-1])))
    print(in_loop(timings, (walls["study"][-1][0], walls["bare"][-1][0]), args.concurrency))
    print("\n".join(floor(env, args.concurrency)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
