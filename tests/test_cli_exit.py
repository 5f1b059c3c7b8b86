"""smart.cli.exit_now ends a finished command the way the interpreter would, minus its teardown."""
import subprocess
import sys

_PROBE = """
import atexit, threading, time
from concurrent.futures import ThreadPoolExecutor
from smart.cli import exit_now
pool = ThreadPoolExecutor(2)            # idle workers: they stop only when threading's shutdown says so
pool.submit(print, "pool ran", flush=True).result()
threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished", flush=True))).start()
atexit.register(lambda: print("atexit ran"))
print("buffered", end="")
exit_now(3)
"""


def test_exit_now_waits_for_threads_stops_idle_pools_runs_atexit_and_keeps_the_code():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["pool ran", "bufferedthread finished", "atexit ran"], done.stdout
