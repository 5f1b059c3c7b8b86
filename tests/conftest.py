"""Shared test fixtures: ONE real local Ray per test session (reuse `ray_session` in any test that
needs Ray), and the environment every test runs under."""
import os

import pytest

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests choose their own stores


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray instance (2 CPUs, no dashboard, token auth on) shared by the session.
    Yields the RayContext; `ray_session.address_info["gcs_address"]` lets a subprocess join it."""
    import ray

    from tuning.cluster import init_ray

    context = init_ray(num_cpus=2, dashboard=False)
    yield context
    ray.shutdown()
