"""The local Ray a study starts holds no idle prestarted workers: no trial could use them (Tune gives
each trial actor its own runtime_env) and on a small machine they took CPU from Ray's start."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = """
import subprocess, time
import ray
from tuning.cluster import init_ray
init_ray(num_cpus=2, dashboard=False)
raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
time.sleep(4)  # Ray would have prestarted its workers by now
workers = subprocess.run(["pgrep", "-P", str(raylet), "-f", "ray::IDLE"], capture_output=True, text=True).stdout.split()
print(len(workers))
ray.shutdown()
"""


def test_a_local_study_ray_prestarts_no_workers():
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "0"
