"""--resume after a hard interrupt: the driver (joined to the session's Ray) is killed after some
trials; resuming leaves exactly num_samples trials and continues the same MLflow runs."""
import json
import os
import signal
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from study_files import write_study
from tuning.run_study import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _wait_for_trials(runs_file, n, proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the study finished before it could be interrupted"
        if os.path.exists(runs_file):
            with open(runs_file) as fh:
                if len(json.load(fh)["trials"]) >= n:
                    return
        time.sleep(0.2)
    raise AssertionError("the study did not start its trials in time")


def test_resume_after_kill(ray_session, tmp_path, capsys):
    study = write_study(tmp_path / "s.yaml", {("budget", "num_samples"): 5, ("budget", "max_concurrent"): 1,
                                              ("scheduler", "kind"): "none"})
    storage = tmp_path / "store"
    args = [study, "--storage", str(storage)]
    driver = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tuning", "run_study.py"), *args,
         "--address", ray_session.address_info["gcs_address"]],
        env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_trials(str(storage / "tiny" / "mlflow_runs.json"), 3, driver)  # 2 done, the 3rd running
        time.sleep(1.0)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert not (storage / "tiny" / "summary.json").exists()

    assert main(args + ["--resume"]) == 0
    capsys.readouterr()
    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    ids = [t["trial_id"] for t in summary["trials"]]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert all(t["status"] == "finished" for t in summary["trials"])
    assert sorted(t["number"] for t in summary["trials"]) == [1, 2, 3, 4, 5]
    assert sum(t["config"]["regularizer.weight"] == 0.0 for t in summary["trials"]) == 1  # history kept
    configs = {json.dumps(t["config"], sort_keys=True) for t in summary["trials"]}
    assert len(configs) == 5

    client = MlflowClient(f"sqlite:///{storage}/mlflow.db")
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(ids)
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in children)
    for r in children:  # every trial's history reaches its end
        assert max(m.step for m in client.get_metric_history(r.info.run_id, "fid")) == 16
