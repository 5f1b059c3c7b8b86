"""A worker node killed mid-trial on a multi-node cluster (tests/cluster_harness.py): with
budget.max_failures the trial restarts from its last checkpoint on the other node and finishes;
its metric history has no gap and no repeated step; MLflow holds one child run per trial."""
import glob
import json

from mlflow.tracking import MlflowClient

from cluster_harness import NODE_LOSS_KIMG


def _results(trial_dir):
    with open(f"{trial_dir}/result.json") as fh:
        return [json.loads(line) for line in fh]


def test_node_loss_restarts_trial_from_checkpoint(cluster_faults):
    work, outcome = cluster_faults
    record = outcome["node_loss"]
    assert "error" not in record and record["rc"] == 0
    assert record["nodes_left"] == 1  # the trial finished on the surviving node
    store = work / "store"
    summary = json.loads((store / "node_loss" / "summary.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["finished", "finished"]

    (trial_dir,) = glob.glob(str(store / "node_loss" / "trial_0001_*"))
    results = _results(trial_dir)
    restarts = [r for r in results if r["iterations_since_restore"] == 1 and r["training_iteration"] > 1]
    assert restarts, "trial 1 was not restored from a checkpoint"
    assert restarts[0]["kimg"] > record["killed_after_kimg"]  # resumed, not started over
    assert restarts[0]["pid"] != results[0]["pid"]

    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    exp = client.get_experiment_by_name("node_loss")
    children = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(t["trial_id"] for t in summary["trials"])
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "fid")]
        assert steps == sorted(set(steps)) and len(steps) == NODE_LOSS_KIMG // 4  # no duplicate, no gap
        assert round(steps[-1] / 1000) == NODE_LOSS_KIMG  # step = images shown
        assert run.info.status == "FINISHED"
