"""Starting (or joining) Ray the same way for the CLI, the tests and the benchmarks, and telling the
user how to reach the dashboard with Ray 2.60's token authentication left on.

How workers get the project: a local Ray gets this tree on PYTHONPATH (same machine). Joining a
cluster (`--address`), the driver ships this tree's `smart/` and `tuning/` packages to every worker
through the job's runtime_env (`py_modules`; a few hundred kB), so trials run exactly the driver's
code — which the checkpoint's code version requires. The third-party stack (torch, ray, mlflow,
...) always comes from the cluster's image. `--code installed` ships nothing and relies on the
project being installed in that image.
"""
from __future__ import annotations

import logging
import os
import socket

import ray

import smart
import tuning

DASHBOARD_HOST = "127.0.0.1"
DASHBOARD_PORT = 8265
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

log = logging.getLogger(__name__)


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Ray prestarts one idle worker per CPU for tasks. A study runs no tasks, and Tune gives every trial
# actor its own runtime_env, so no trial can use one: they would only take CPU from Ray's start.
_NO_PRESTART = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}

# A reused trial actor waits this long for the previous trial's thread to end (Tune's default, 2 s,
# is shorter than freeing a trial's trainers on a loaded machine, and the next trial then errors
# with "Trainable runner reuse requires reset_config() to be implemented and return True").
_TRIAL_ENV = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "120"}


def worker_env(address: str | None, code: str = "ship") -> dict:
    """The job's runtime_env (see the module docstring)."""
    if address is None:  # local: workers import `tuning`/`smart` from this tree, whatever their cwd
        path = os.pathsep.join(p for p in (_root(), os.environ.get("PYTHONPATH", "")) if p)
        return {"env_vars": {"PYTHONPATH": path, **_TRIAL_ENV}}
    if code == "installed":
        return {"env_vars": dict(_TRIAL_ENV)}
    return {"py_modules": [smart, tuning], "excludes": ["__pycache__", "*.pyc"], "env_vars": dict(_TRIAL_ENV)}


def exposure_warning(host: str, port: int = DASHBOARD_PORT) -> str | None:
    if host in _LOOPBACK:
        return None
    return (f"warning: the Ray dashboard listens on {host}:{port}, reachable from the network; "
            "anyone holding the auth token can submit jobs (arbitrary code) to this cluster")


def free_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """`preferred` if nothing listens there, else a port the system has free."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free port on {host}")


def init_ray(address: str | None = None, *, num_cpus: int | None = None, dashboard: bool = True,
             dashboard_host: str = DASHBOARD_HOST, dashboard_port: int | None = None, code: str = "ship"):
    """Join `address` (auto, HOST:6379, ray://HOST:10001), or start a new local instance whose
    dashboard listens on 127.0.0.1 unless `dashboard_host` says otherwise (with a warning), on
    port 8265 or, when that is taken (another study's Ray), on a free one."""
    if address:
        return ray.init(address=address, runtime_env=worker_env(address, code), log_to_driver=True)
    if dashboard and dashboard_port is None:
        dashboard_port = free_port(dashboard_host, DASHBOARD_PORT)
        if dashboard_port != DASHBOARD_PORT:
            log.info("port %d is taken (another Ray?); this study's dashboard gets port %d", DASHBOARD_PORT,
                     dashboard_port)
    warning = exposure_warning(dashboard_host, dashboard_port) if dashboard else None
    if warning:
        log.warning(warning)
    # address="local": a new instance, never an unrelated Ray that happens to run on this machine
    return ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, dashboard_host=dashboard_host,
                    dashboard_port=dashboard_port or DASHBOARD_PORT, runtime_env=worker_env(None),
                    _system_config=_NO_PRESTART)


def dashboard_lines(context) -> list[str]:
    url = getattr(context, "dashboard_url", "") or ""
    if not url:
        return ["dashboard: not running on this cluster"]
    url = url if url.startswith("http") else f"http://{url}"
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    watch = [f"  watch:   {url}/#/jobs (trials as actors), {url}/#/metrics (live gauges "
             "ray_smart_trial_{kimg_per_s,fid,smart_share,kimg} by study and trial_id; the Metrics view",
             "           needs Prometheus + Grafana, see `ray metrics launch-prometheus`)"]
    port = (getattr(context, "address_info", None) or {}).get("metrics_export_port")
    if port:
        watch.append(f"  scrape:  Prometheus text at http://<node>:{port}/metrics on each node")
    if not is_token_auth_enabled():
        return [f"dashboard: {url}", *watch,
                "warning: Ray token authentication is off on this cluster (RAY_AUTH_MODE); turn it on"]
    return [
        f"dashboard: {url}  (token authentication is on)",
        "  browser: paste the token printed by `ray get-auth-token` (stored in ~/.ray/auth_token,",
        "           or $RAY_AUTH_TOKEN / $RAY_AUTH_TOKEN_PATH) into the dashboard's login prompt",
        f"  API:     curl -H \"Authorization: Bearer $(ray get-auth-token)\" {url}/api/jobs/",
        *watch,
    ]
