"""Scaling of the study runner on a multi-node Ray: the same fixed toy trials (ring8) run through
`python tuning/run_study.py --address ...` on a `ray.cluster_utils.Cluster` of simulated nodes.

CPU part: 1 node × 2 CPUs against 2 nodes × 1 CPU (same total), each with 1 and 2 concurrent
trials per node (resources.cpu = CPUs per node / trials per node): trials per minute of Tune's
tuning loop and the ratio to 1 node × 1 trial. GPU part (needs CUDA; says so and skips without):
trials packed 1, 2, 4 per GPU (resources.gpu = 1, 0.5, 0.25): total kimg/s and the ratio to 1.

    python benchmarks/cluster_scaling.py                    # 8 trials × 64 kimg per layout
    python benchmarks/cluster_scaling.py --trials 16 --kimg 128
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from study_overhead import BASE, study_file, trial_configs  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}
ENV.pop("MLFLOW_TRACKING_URI", None)


def run_study(tmp: str, tag: str, base: dict, configs: list[dict], concurrency: int, resources: dict,
              address: str | None) -> float:
    """Seconds of Tune's tuning loop for the study."""
    path = os.path.join(tmp, f"{tag}.yaml")
    study_file(path, base, configs, concurrency, resources)
    cmd = [sys.executable, os.path.join(ROOT, "tuning", "run_study.py"), path, "--storage", os.path.join(tmp, tag)]
    proc = subprocess.run(cmd + (["--address", address] if address else []), env=ENV, capture_output=True, text=True)
    loop = re.search(r"\(([\d.]+) seconds for the tuning loop\)", proc.stdout + proc.stderr)
    if proc.returncode != 0 or loop is None:
        raise RuntimeError(f"{tag} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return float(loop.group(1))


def cpu_part(tmp: str, base: dict, configs: list[dict]) -> None:
    from ray.cluster_utils import Cluster

    rows = []
    for nodes, cpus in ((1, 2), (2, 1)):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the driver's node
        try:
            for _ in range(nodes):
                cluster.add_node(num_cpus=cpus)
            cluster.wait_for_nodes()
            for per_node in (1, 2):
                tag = f"n{nodes}c{cpus}k{per_node}"
                loop = run_study(tmp, tag, base, configs, nodes * per_node, {"cpu": cpus / per_node},
                                 cluster.address)
                rows.append((f"{nodes} × {cpus} CPU", per_node, nodes * per_node, loop, len(configs) / loop * 60))
        finally:
            cluster.shutdown()
    ref = rows[0][4]
    print(f"{'nodes':<12}{'trials/node':>12}{'concurrent':>11}{'loop [s]':>10}{'trials/min':>12}{'ratio':>8}")
    for layout, per_node, conc, loop, rate in rows:
        print(f"{layout:<12}{per_node:>12}{conc:>11}{loop:>10.1f}{rate:>12.2f}{rate / ref:>7.2f}×")


def gpu_part(tmp: str, base: dict, configs: list[dict]) -> None:
    import torch

    if not torch.cuda.is_available():
        print("GPU part skipped: no CUDA device on this machine (run it on a GPU node)")
        return
    gpu_base = {**base, "device": "cuda"}
    rows = []
    for per_gpu in (1, 2, 4):
        loop = run_study(tmp, f"gpu{per_gpu}", gpu_base, configs, per_gpu,
                         {"cpu": 1, "gpu": 1 / per_gpu}, None)
        kimg = len(configs) * base["training"]["kimg"]
        rows.append((per_gpu, loop, kimg / loop))
    print(f"\n{torch.cuda.get_device_name(0)}: {len(configs)} trials, packed per GPU")
    print(f"{'trials/GPU':>10}{'resources.gpu':>15}{'loop [s]':>10}{'total kimg/s':>14}{'ratio':>8}")
    for per_gpu, loop, rate in rows:
        print(f"{per_gpu:>10}{1 / per_gpu:>15.2f}{loop:>10.1f}{rate:>14.1f}{rate / rows[0][2]:>7.2f}×")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--kimg", type=float, default=64.0)
    p.add_argument("--skip-cpu", action="store_true", help="only the GPU part")
    args = p.parse_args()
    configs = trial_configs(args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        base = {**BASE, "training": {"kimg": args.kimg, "eval_every_kimg": 32.0},
                "eval": {**BASE["eval"], "cache_dir": os.path.join(tmp, "cache")}}
        print(f"{args.trials} fixed toy trials × {args.kimg:g} kimg (ring8, eval every 32 kimg on 2000 samples), "
              f"MLflow on, checkpoint per eval")
        if not args.skip_cpu:
            cpu_part(tmp, base, configs)
        gpu_part(tmp, base, configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
