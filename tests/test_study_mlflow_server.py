"""The study against a real `mlflow server` on 127.0.0.1 (HTTP tracking, proxied artifacts)."""
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from study_files import write_study
from tuning.run_study import main


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "art")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.time() < deadline, "mlflow server did not come up"
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_study_tracks_to_an_mlflow_server(ray_session, mlflow_server, tmp_path, capsys):
    study = write_study(tmp_path / "s.yaml", {("budget", "num_samples"): 2,
                                              ("config", "training", "kimg"): 8.0})
    storage = tmp_path / "store"
    assert main([study, "--storage", str(storage), "--mlflow-uri", mlflow_server]) == 0
    assert f"open {mlflow_server}" in capsys.readouterr().out
    assert not (storage / "mlflow.db").exists()
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    assert parents[0].data.tags["best_trial"] == summary["best"]["trial_id"]
    local = client.download_artifacts(parents[0].info.run_id, "summary.json", str(tmp_path))
    assert json.load(open(local)) == summary
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "fid")] == [4, 8]
        assert child.data.params["training.kimg"] == "8.0"
