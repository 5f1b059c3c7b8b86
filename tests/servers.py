"""Real local servers for tests: a free 127.0.0.1 port and an `mlflow server` on it."""
import contextlib
import subprocess
import sys
import time
import urllib.request

from tuning.cluster import free_port


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts_dir: str | None = None, port: int | None = None):
    """`mlflow server --workers 1` on `port` or a free one (one worker answers in ~10 ms; four
    crawl); yields its URL and stops it afterwards."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", backend_uri]
    if artifacts_dir:
        cmd += ["--artifacts-destination", artifacts_dir]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "mlflow server did not come up"
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
