"""Faults outside the trials, as a user meets them, with the real CLI in its own process: storage on
a full disk (a real small tmpfs, filled while the study runs) or a tracking server that goes away
mid-study ends the study with one line and exit 1, keeps what is on disk, and `--resume` (after
freeing space, or with the server back) finishes it with one MLflow run per trial; a tracking
server or storage URI that does not answer at the start is bad input (exit 2, nothing started or
written)."""
import glob
import json
import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from servers import free_port, mlflow_server
from study_files import write_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tuning", "run_study.py")
# The CLI in a fresh interpreter, telling whether Ray was imported.
_PROBE = ("import json, sys; from tuning.run_study import main; rc = main(sys.argv[1:]); "
          "print('@@' + json.dumps({'rc': rc, 'ray': 'ray' in sys.modules}))")


def _env():
    return {**os.environ, "PYTHONPATH": ROOT}


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 MB filesystem (tmpfs), mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(path) -> None:
    """Write zeros until the filesystem says ENOSPC."""
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 2**20)
                fh.flush()
        except OSError:
            pass


@pytest.mark.slow
def test_full_disk_ends_the_study_with_one_line_and_resume_finishes_it(small_disk, tmp_path):
    study = write_study(tmp_path / "s.yaml", {("budget", "num_samples"): 4, ("config", "eval", "cache_dir"):
                                              str(tmp_path / "cache")})
    args = [sys.executable, SCRIPT, study, "--storage", str(small_disk)]
    driver = subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    exp = small_disk / "tiny"
    deadline = time.time() + 300
    while driver.poll() is None and not glob.glob(str(exp / "trial_*" / "checkpoint_*")):
        assert time.time() < deadline, "no trial checkpointed"
        time.sleep(0.2)
    _fill(small_disk / "filler")  # the disk is full from the next write on
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 1, err[-3000:]
    assert err.splitlines()[-1] == f"error: --storage: no space left on {small_disk}; free space and rerun with --resume"
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert (exp / "study.json").exists() and (small_disk / "mlflow.db").exists()  # kept for --resume
    assert not (small_disk / "tiny.lock").exists()

    os.remove(small_disk / "filler")
    resumed = subprocess.run(args + ["--resume"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_resumed(exp, MlflowClient(f"sqlite:///{small_disk}/mlflow.db"))


def _check_resumed(exp, client):
    """The finished study: 4 trials, one MLflow run each, no step logged twice."""
    summary = json.loads((exp / "summary.json").read_text())
    ids = sorted(t["trial_id"] for t in summary["trials"])
    statuses = {t["trial_id"]: (t["status"], t.get("error")) for t in summary["trials"]}
    assert len(ids) == 4 and {s for s, _ in statuses.values()} <= {"finished", "stopped early"}, statuses
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) - len(children) == 1
    assert sorted(r.data.tags["trial_id"] for r in children) == ids  # one run per trial, no duplicate
    runs_file = json.loads((exp / "tracking" / "mlflow_runs.json").read_text())
    assert runs_file["trials"] == {r.data.tags["trial_id"]: r.info.run_id for r in children}
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "fid")]
        assert steps == sorted(set(steps)), steps


@pytest.mark.slow
def test_tracking_server_lost_mid_study_ends_it_with_one_line_and_resume_finishes_it(tmp_path):
    study = write_study(tmp_path / "s.yaml", {("budget", "num_samples"): 4, ("config", "eval", "cache_dir"):
                                              str(tmp_path / "cache")})
    backend, artifacts, port = f"sqlite:///{tmp_path}/server.db", str(tmp_path / "art"), free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, SCRIPT, study, "--storage", str(tmp_path / "store"), "--mlflow-uri", url]
    env = {**_env(), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}  # MLflow's default retries for minutes
    exp = tmp_path / "store" / "tiny"
    with mlflow_server(backend, artifacts, port=port):
        driver = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        deadline = time.time() + 300
        while driver.poll() is None and not glob.glob(str(exp / "trial_*" / "checkpoint_*")):
            assert time.time() < deadline, "no trial checkpointed"
            time.sleep(0.2)
    out, err = driver.communicate(timeout=300)  # the server is gone
    assert driver.returncode == 1, err[-3000:]
    last = err.splitlines()[-1]
    assert last.startswith(f"error: --mlflow-uri: cannot reach {url}: ") and last.endswith(
        "; rerun with --resume once it answers"), err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]

    with mlflow_server(backend, artifacts, port=port):
        resumed = subprocess.run(args + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        _check_resumed(exp, MlflowClient(url))


def _one_line_exit_2(args, cwd, key):
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300)
    lines = proc.stdout.splitlines()
    assert lines and json.loads(lines[-1][2:]) == {"rc": 2, "ray": False}, proc.stderr[-3000:]
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {key}: "), proc.stderr
    return errors[0]


def test_tracking_server_that_does_not_answer_is_bad_input(tmp_path):
    study = write_study(tmp_path / "s.yaml")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    line = _one_line_exit_2([study, "--storage", str(tmp_path / "store"), "--mlflow-uri", uri], tmp_path,
                            "--mlflow-uri")
    assert line.startswith(f"error: --mlflow-uri: cannot reach {uri}: ") and "refused" in line
    assert sorted(os.listdir(tmp_path)) == ["s.yaml"]  # nothing written


def test_storage_uri_that_does_not_answer_is_bad_input(tmp_path):
    study = write_study(tmp_path / "s.yaml")
    storage = f"s3://studies/smart?endpoint_override=127.0.0.1:{free_port()}&scheme=http"  # nothing listens there
    line = _one_line_exit_2([study, "--storage", storage, "--mlflow-uri", f"sqlite:///{tmp_path}/m.db"], tmp_path,
                            "--storage")
    assert line.startswith(f"error: --storage: cannot reach {storage}: ")
    assert sorted(os.listdir(tmp_path)) == ["s.yaml"]
