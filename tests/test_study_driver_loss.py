"""Driver loss never duplicates an MLflow run. The CLI driver (its own process, joined to the
session's Ray) is SIGKILLed at one of several moments, then `--resume` finishes the study with
exactly one run per trial, every step logged once:

- run_created: a trial's run exists in MLflow but the runs file holds only its reservation (the
  driver is frozen with SIGSTOP until MLflow shows the run, so the window is really hit);
- first_checkpoint: a trial's first checkpoint is on disk (its result may not be logged yet);
- trial_done: one trial finished, the next ones running;
- confirming: the search is done and a confirmation trial has its first checkpoint (a study with
  `confirm`: its runs, tagged stage=confirm, must not be duplicated either).
"""
import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from study_files import write_study
from tuning.run_study import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _runs_file(exp) -> dict:
    try:
        with open(exp / "tracking" / "mlflow_runs.json") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {"trials": {}}


def _mlflow_has_run(db, trial_id) -> bool:
    """Read MLflow's store directly with a short timeout: the frozen driver may hold its lock."""
    try:
        with sqlite3.connect(db, timeout=0.2) as con:
            found = con.execute("select 1 from tags where key = 'trial_id' and value = ?", (trial_id,)).fetchone()
        return found is not None
    except sqlite3.Error:
        return False


def _run_created(driver, exp, db) -> bool:
    for trial_id, run_id in _runs_file(exp)["trials"].items():
        if run_id is None:
            driver.send_signal(signal.SIGSTOP)
            if _runs_file(exp)["trials"].get(trial_id, "") is None and _mlflow_has_run(db, trial_id):
                return True  # frozen between create_run and recording the run: kill it there
            driver.send_signal(signal.SIGCONT)
    return False


MOMENTS = {
    "run_created": _run_created,
    "first_checkpoint": lambda driver, exp, db: bool(glob.glob(str(exp / "trial_*" / "checkpoint_*"))),
    "trial_done": lambda driver, exp, db: sum(r is not None for r in _runs_file(exp)["trials"].values()) >= 3,
    "confirming": lambda driver, exp, db: bool(glob.glob(str(exp / "confirm" / "trial_*" / "checkpoint_*"))),
}
CONFIRM = {"top_k": 1, "seeds": 2}  # the confirming moment's study: 2 configurations × 2 fresh seeds


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_driver_killed_then_resumed_leaves_one_run_per_trial(ray_session, tmp_path, moment, capsys):
    confirm = {("confirm",): CONFIRM} if moment == "confirming" else {}
    study = write_study(tmp_path / "s.yaml", {("budget", "num_samples"): 4, ("config", "training", "kimg"): 8.0,
                                              ("scheduler", "kind"): "none", **confirm})
    storage = tmp_path / "store"
    exp, db = storage / "tiny", str(storage / "mlflow.db")
    args = [study, "--storage", str(storage)]
    driver = subprocess.Popen([sys.executable, os.path.join(ROOT, "tuning", "run_study.py"), *args,
                               "--address", ray_session.address_info["gcs_address"]],
                              env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "driver.err", "w"))
    try:
        deadline = time.time() + 600  # a loaded machine can take minutes to start a trial
        while not MOMENTS[moment](driver, exp, db):
            assert driver.poll() is None, (f"the study ended before the moment {moment}: "
                                           + (tmp_path / "driver.err").read_text()[-3000:])
            assert time.time() < deadline, f"no moment {moment} in 600 s"
            time.sleep(0.01)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert not (exp / "summary.json").exists()

    assert main(args + ["--resume"]) == 0
    capsys.readouterr()
    summary = json.loads((exp / "summary.json").read_text())
    ids = sorted(t["trial_id"] for t in summary["trials"])
    assert len(ids) == 4 and len(set(ids)) == 4
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) - len(children) == 1
    search = [r for r in children if r.data.tags["stage"] == "search"]
    assert sorted(r.data.tags["trial_id"] for r in search) == ids  # one run per trial, none twice
    confirmed = [r for r in children if r.data.tags["stage"] == "confirm"]
    if confirm:
        assert len({r.data.tags["trial_id"] for r in confirmed}) == len(confirmed) == 2 * CONFIRM["seeds"]
        assert [len(e["values"]) for e in summary["confirmation"]] == [CONFIRM["seeds"]] * 2
    assert len(children) == len(search) + len(confirmed)
    assert _runs_file(exp)["trials"] == {r.data.tags["trial_id"]: r.info.run_id for r in children}
    for run in children:  # each run complete: its params, and every eval once
        assert run.data.params["regularizer.weight"] and run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "fid")]
        assert [round(s / 1000) for s in steps] == [4, 8], steps
