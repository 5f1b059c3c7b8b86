"""--resume after a hard interrupt on a multi-node cluster: the driver (run_study.py joined to the
cluster) is SIGKILLed after some trials; resuming leaves exactly num_samples trials, keeps the
Optuna history (no configuration repeated, the restored searcher knows every trial, the study on
disk holds each trial once) and continues
the same MLflow parent and child runs. Driven by tests/cluster_harness.py (fixture cluster_faults)."""
import json

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch


def test_resume_after_driver_kill(cluster_faults):
    work, outcome = cluster_faults
    record = outcome["driver_kill"]
    assert not record["finished_before_kill"] and not record["summary_before_resume"]
    assert record["rc"] == 0
    store = work / "store"
    summary = json.loads((store / "tiny" / "summary.json").read_text())
    ids = [t["trial_id"] for t in summary["trials"]]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert all(t["status"] == "finished" for t in summary["trials"])
    assert sorted(t["number"] for t in summary["trials"]) == [1, 2, 3, 4, 5]
    assert sum(t["config"]["regularizer.weight"] == 0.0 for t in summary["trials"]) == 1  # history kept
    configs = {json.dumps(t["config"], sort_keys=True) for t in summary["trials"]}
    assert len(configs) == 5

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(store / "tiny"))
    learned = [t.params for t in searcher._ot_study.get_trials() if t.state.is_finished()]
    assert len(learned) >= 5
    for trial in summary["trials"]:  # Optuna holds every trial, from before and after the kill
        assert any(all(trial["config"][k] == v for k, v in p.items()) for p in learned), trial["config"]

    # the Optuna study on disk continued: each Tune trial once (COMPLETE, its seed and value);
    # trials asked after the last snapshot, lost with the driver, FAIL and marked `lost`
    ot_trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{store}/tiny/optuna.db").trials
    kept = [t for t in ot_trials if not t.user_attrs.get("lost")]
    assert all(t.state == TrialState.FAIL for t in ot_trials if t not in kept)
    assert [t.state for t in kept] == [TrialState.COMPLETE] * 5
    by_seed = {t["config"]["seed"]: t["metrics"]["fid_best"] for t in summary["trials"]}  # the objective (reduce: best)
    assert {(t.params | t.user_attrs)["seed"]: t.value for t in kept} == by_seed

    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(ids)
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in children)
    runs_file = json.loads((store / "tiny" / "tracking" / "mlflow_runs.json").read_text())
    assert runs_file["trials"] == {r.data.tags["trial_id"]: r.info.run_id for r in children}
    for r in children:  # every trial's history reaches its end, each step once
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "fid")]
        assert [round(s / 1000) for s in steps] == [4, 8, 12, 16]  # step = images shown
