"""Single-node fault paths on the session's Ray: a diverging trial (a real NaN/inf from an absurd
D learning rate) ends `diverged` with the worst objective and the study goes on; no secret from the
environment reaches MLflow; a study lives at a `file://` URI; a 2-worker DDP trial (Ray Train,
gloo) reports and checkpoints like a 1-process one. Plus freeing a trial's memory."""
import json
import math
import weakref

from mlflow.tracking import MlflowClient
from ray.tune.search.optuna import OptunaSearch

from smart.config import RunConfig
from smart.loop import Trainer
from study_files import write_study
from tuning.run_study import main

SECRET = "sk-test-9f3b1c7d2e"


def _children(uri, name):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags], runs


def test_diverged_trial_is_worst_and_the_study_goes_on(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("SMART_API_TOKEN", SECRET)
    points = [{"regularizer.weight": 0.0, "optim.d_lr": 0.001}, {"regularizer.weight": 0.01, "optim.d_lr": 1e6},
              {"regularizer.weight": 0.1, "optim.d_lr": 0.001}]
    study = write_study(tmp_path / "s.yaml", {
        ("search", "optim.d_lr"): {"type": "choice", "values": [0.001, 1e6]},
        ("sampler", "points_to_evaluate"): points, ("budget", "num_samples"): 3,
        ("config", "training", "kimg"): 8.0, ("scheduler", "kind"): "none"})
    storage = tmp_path / "store"
    assert main([study, "--storage", f"file://{storage}"]) == 0
    capsys.readouterr()
    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    by_lr = {t["config"]["optim.d_lr"]: t for t in summary["trials"] if t["number"] == 2}
    bad = by_lr[1e6]
    assert bad["status"] == "diverged" and bad["metrics"]["diverged"] == 1.0
    assert bad["metrics"]["fid"] is None  # +inf, the worst for mode min (JSON has no inf)
    assert summary["best"]["trial_id"] != bad["trial_id"]
    assert sorted(t["status"] for t in summary["trials"]) == ["diverged", "finished", "finished"]

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(storage / "tiny"))
    told = [t.value for t in searcher._ot_study.get_trials() if t.state.is_finished()]
    assert len(told) == 3 and sum(math.isinf(v) for v in told) == 1  # Optuna learned the worst value

    client, children, runs = _children(f"sqlite:///{storage}/mlflow.db", "tiny")
    diverged = [r for r in children if r.data.tags["trial_status"] == "diverged"]
    assert len(diverged) == 1 and diverged[0].info.status == "FAILED"
    assert "loss" in diverged[0].data.tags["diverged_reason"]
    assert {r.data.tags["trial_status"] for r in children} == {"diverged", "finished"}
    for run in runs:  # nothing from the environment in params or tags
        assert not any(SECRET in str(v) for v in {**run.data.params, **run.data.tags}.values())


def test_two_worker_trial_runs_under_ray_train(ray_session, tmp_path, capsys):
    study = write_study(tmp_path / "s.yaml", {
        ("resources",): {"cpu": 1, "workers": 2}, ("budget", "num_samples"): 1,
        ("config", "training", "kimg"): 8.0, ("scheduler", "kind"): "none"})
    storage = tmp_path / "store"
    assert main([study, "--storage", str(storage)]) == 0
    capsys.readouterr()
    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    (trial,) = summary["trials"]
    assert trial["status"] == "finished" and trial["metrics"]["kimg"] >= 8 and trial["metrics"]["fid"] > 0
    assert list((storage / "tiny" / "train").glob(f"{trial['trial_id']}/checkpoint_*/trainer.pt"))
    client, children, _ = _children(f"sqlite:///{storage}/mlflow.db", "tiny")
    (child,) = children
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid")]
    assert [round(s / 1000) for s in steps] == [4, 8] and steps[-1] == round(trial["metrics"]["kimg"] * 1000)


def test_close_frees_a_trial_held_by_a_traceback():
    trainer = Trainer(RunConfig.from_dict({"training": {"kimg": 1.0, "eval_every_kimg": 1.0}}))
    generator = weakref.ref(trainer.G)
    try:
        raise SystemExit(0)  # how Tune stops a function trainable
    except SystemExit as exc:
        kept = exc  # a traceback that still references this frame and the trainer
    trainer.close()
    assert generator() is None and kept is not None
