"""Shared test fixtures: ONE real local Ray per test session (reuse `ray_session` in any test that
needs Ray), and the environment every test runs under."""
import os

import pytest

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests choose their own stores


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray instance (2 CPUs, token auth on) shared by the session, its dashboard on a
    free 127.0.0.1 port (the browser test opens it; a fixed port could clash with another Ray on
    the machine). Yields the RayContext; `ray_session.address_info["gcs_address"]` lets a
    subprocess join it, `ray_session.dashboard_url` is the dashboard."""
    import ray

    from servers import free_port
    from tuning.cluster import init_ray

    context = init_ray(num_cpus=2, dashboard=True, dashboard_port=free_port())
    yield context
    ray.shutdown()


@pytest.fixture(scope="session")
def cluster_faults(tmp_path_factory):
    """Runs tests/cluster_harness.py once, in its own process (a multi-node `Cluster` must not share
    a process with `ray_session`): a node killed mid-trial, then a driver killed mid-study and
    resumed. Yields (workdir, outcome); the tests read storage and MLflow from workdir."""
    import json
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("cluster")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "tests", "cluster_harness.py"), str(work)],
                          env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    yield work, json.loads((work / "outcome.json").read_text())
