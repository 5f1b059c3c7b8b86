"""Starting (or joining) Ray the same way for the CLI, the tests and the benchmarks, and telling the
user how to reach the dashboard with Ray 2.60's token authentication left on."""
from __future__ import annotations

import os

import ray

DASHBOARD_HOST = "127.0.0.1"
DASHBOARD_PORT = 8265


def _worker_env() -> dict:
    """Workers import `tuning`/`smart` from the same tree as the driver (and not from an older
    installed copy), whatever directory Tune moves them into."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def init_ray(address: str | None = None, *, num_cpus: int | None = None, dashboard: bool = True):
    """Join `address`, or start a local instance with its dashboard on 127.0.0.1:8265."""
    if address:
        return ray.init(address=address, runtime_env=_worker_env(), log_to_driver=True)
    return ray.init(num_cpus=num_cpus, include_dashboard=dashboard, dashboard_host=DASHBOARD_HOST,
                    dashboard_port=DASHBOARD_PORT, runtime_env=_worker_env())


def dashboard_lines(context) -> list[str]:
    url = getattr(context, "dashboard_url", "") or ""
    if not url:
        return ["dashboard: not running on this cluster"]
    url = url if url.startswith("http") else f"http://{url}"
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    if not is_token_auth_enabled():
        return [f"dashboard: {url}"]
    return [
        f"dashboard: {url}  (token authentication is on)",
        "  browser: paste the token printed by `ray get-auth-token` (stored in ~/.ray/auth_token,",
        "           or $RAY_AUTH_TOKEN / $RAY_AUTH_TOKEN_PATH) into the dashboard's login prompt",
        f"  API:     curl -H \"Authorization: Bearer $(ray get-auth-token)\" {url}/api/jobs/",
    ]
