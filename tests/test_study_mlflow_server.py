"""The study against a real `mlflow server` on 127.0.0.1 (HTTP tracking, proxied artifacts)."""
import json

import pytest
from mlflow.tracking import MlflowClient

from servers import mlflow_server as start_mlflow_server
from study_files import write_study
from tuning.run_study import main


@pytest.fixture
def mlflow_server(tmp_path):
    with start_mlflow_server(f"sqlite:///{tmp_path}/server.db", str(tmp_path / "art")) as url:
        yield url


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
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid")]
        assert [round(s / 1000) for s in steps] == [4, 8]  # step = images shown
        assert child.data.params["training.kimg"] == "8.0"
