"""Fault scenarios on a real multi-node Ray (`ray.cluster_utils.Cluster`: a CPU-less head and two
1-CPU worker raylets on this machine). Run as its own process (`python tests/cluster_harness.py
WORKDIR`), never inside the pytest process that holds the session's Ray.

1. node_loss: a study with max_failures; the worker node running trial 1 is killed right after
   the trial's first checkpoint; the trial restarts on the other node from that checkpoint.
2. driver_kill: run_study.py is SIGKILLed after some trials started, then `--resume` finishes it.

Writes WORKDIR/outcome.json with what it did; the tests check storage, summary.json and MLflow.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.pop("MLFLOW_TRACKING_URI", None)

from ray.cluster_utils import Cluster  # noqa: E402

from study_files import write_study  # noqa: E402
from tuning.run_study import main  # noqa: E402

NODE_LOSS_KIMG = 48


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1:
        with open(f"/proc/{pid}/stat") as fh:
            pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        out.add(pid)
    return out


def _raylet_pid(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _kill_node_of_first_trial(cluster, exp_dir, record, timeout=240):
    """After trial 1's first checkpoint, remove the worker node whose raylet runs its process."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for trial_dir in glob.glob(os.path.join(exp_dir, "trial_0001_*")):
            try:
                with open(os.path.join(trial_dir, "result.json")) as fh:
                    first = json.loads(fh.readline())  # fails while the line is half written
                parents = _ancestors(first["pid"])
            except (OSError, ValueError):
                continue
            if not glob.glob(os.path.join(trial_dir, "checkpoint_*")):
                continue
            node = next((n for n in cluster.worker_nodes if _raylet_pid(n) in parents), None)
            if node is None:
                record["error"] = f"no worker raylet among the ancestors of trial process {first['pid']}"
                return
            record.update(killed_node=node.node_id, killed_after_kimg=first["kimg"])
            cluster.remove_node(node, allow_graceful=False)
            return
        time.sleep(0.05)
    record["error"] = "trial 1 never checkpointed"


def node_loss(cluster, work) -> dict:
    study = write_study(Path(work, "node_loss.yaml"), {
        ("name",): "node_loss",
        ("config", "training", "kimg"): float(NODE_LOSS_KIMG), ("config", "eval", "num_samples"): 2000,
        ("budget", "num_samples"): 2, ("budget", "max_concurrent"): 1, ("budget", "max_failures"): 2,
        ("scheduler", "kind"): "none"})
    storage = os.path.join(work, "store")
    record: dict = {}
    def kill():
        try:
            _kill_node_of_first_trial(cluster, os.path.join(storage, "node_loss"), record)
        except Exception as exc:  # reported to the test, not lost with the thread
            record["error"] = repr(exc)

    killer = threading.Thread(target=kill)
    killer.start()
    record["rc"] = main([study, "--storage", storage, "--address", cluster.address])
    killer.join()
    record["nodes_left"] = len(cluster.worker_nodes)
    return record


def driver_kill(cluster, work) -> dict:
    study = write_study(Path(work, "resume.yaml"), {
        ("budget", "num_samples"): 5, ("budget", "max_concurrent"): 1, ("scheduler", "kind"): "none"})
    args = [study, "--storage", os.path.join(work, "store"), "--address", cluster.address]
    runs_file = os.path.join(work, "store", "tiny", "tracking", "mlflow_runs.json")
    driver = subprocess.Popen([sys.executable, os.path.join(ROOT, "tuning", "run_study.py"), *args],
                              env={**os.environ, "PYTHONPATH": ROOT},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and driver.poll() is None:
            if os.path.exists(runs_file):
                with open(runs_file) as fh:
                    if len(json.load(fh)["trials"]) >= 3:  # 2 done, the 3rd running
                        break
            time.sleep(0.2)
        time.sleep(1.0)
        finished_early = driver.poll() is not None
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    summary_before = os.path.exists(os.path.join(work, "store", "tiny", "summary.json"))
    return {"finished_before_kill": finished_early, "summary_before_resume": summary_before,
            "rc": main(args + ["--resume"])}


def run(work: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        outcome = {"node_loss": node_loss(cluster, work)}
        cluster.add_node(num_cpus=1)  # back to two workers
        cluster.wait_for_nodes()
        outcome["driver_kill"] = driver_kill(cluster, work)
    finally:
        cluster.shutdown()
    with open(os.path.join(work, "outcome.json"), "w") as fh:
        json.dump(outcome, fh)


if __name__ == "__main__":
    run(sys.argv[1])
