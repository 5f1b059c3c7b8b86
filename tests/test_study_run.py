"""A 4-trial study end to end on the session's real Ray, with real Optuna, ASHA and MLflow (sqlite):
summary.json (ranked by fid_best, the best eval's checkpoint kept), the Optuna study on disk, the
MLflow parent/child structure, params and metric histories; and a 2-trial study (objective.reduce:
last) whose evals are less than a kimg apart (MLflow steps, run names and tags)."""
import getpass
import json
import os

import numpy as np
import optuna
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from smart.config import RunConfig
from smart.generate import main as generate
from study_files import write_study
from tuning.run_study import main


def _runs(uri, name):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_study_end_to_end(ray_session, tmp_path, capsys):
    cache = tmp_path / "cache"
    study = write_study(tmp_path / "s.yaml", {("config", "eval", "cache_dir"): str(cache)})
    storage = tmp_path / "store"
    assert main([study, "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    uri = f"sqlite:///{storage}/mlflow.db"
    assert f"mlflow ui --backend-store-uri {uri}" in out and "best: trial" in out
    assert os.listdir(cache)  # reference statistics prepared once, up front, in the pinned dir

    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    trials = summary["trials"]
    assert summary["num_samples"] == 4 and len(trials) == 4
    assert all(t["status"] in ("finished", "stopped early") for t in trials)
    assert any(t["status"] == "finished" for t in trials)
    # objective.reduce: best (the default): trials rank by fid_best, and the checkpoint kept is the best eval's
    assert summary["objective"] == "fid_best" and summary["reduce"] == "best"
    fids = [t["metrics"]["fid_best"] for t in trials]
    assert fids == sorted(fids) and summary["best"]["metrics"]["fid_best"] == fids[0]
    assert summary["best"]["trial_id"] == trials[0]["trial_id"]
    assert summary["best"]["checkpoint"] == trials[0]["checkpoint"]
    for t in trials:
        assert t["metrics"]["fid_best"] <= t["metrics"]["fid"]
        state = torch.load(os.path.join(t["checkpoint"], "trainer.pt"), map_location="cpu", weights_only=True)
        assert state["progress"]["cur_nimg"] / 1000 == pytest.approx(t["metrics"]["fid_best_kimg"], abs=1e-3)
    assert RunConfig.from_dict(summary["best"]["config"]).regularizer.weight == trials[0]["config"]["regularizer.weight"]
    baseline = [t for t in trials if t["config"]["regularizer.weight"] == 0.0]
    assert len(baseline) == 1 and baseline[0]["number"] == 1  # λ=0 evaluated first
    assert set(baseline[0]["config"]) == {"regularizer.weight", "seed"}  # no k or t-range for the plain GAN
    for t in trials:
        c = t["config"]
        assert t in baseline or c["regularizer.t_min"] + 5 <= c["regularizer.t_max"] <= 200
        assert t["metrics"]["kimg"] >= 8 if t["status"] == "stopped early" else t["metrics"]["kimg"] >= 16

    # the Optuna study on disk, under the study's name: every trial with its values; the baseline's
    # λ = 0 as a user attribute, never a param that TPE's log-scale model would see
    ot_trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{storage}/tiny/optuna.db").trials
    assert [t.state for t in ot_trials] == [TrialState.COMPLETE] * 4
    assert ot_trials[0].params == {} and ot_trials[0].user_attrs == baseline[0]["config"]
    by_seed = {t["config"]["seed"]: t for t in trials}
    for t in ot_trials:
        assert t.value == by_seed[(t.params | t.user_attrs)["seed"]]["metrics"]["fid_best"]
        assert t.params | t.user_attrs == by_seed[(t.params | t.user_attrs)["seed"]]["config"]

    client, parents, children = _runs(uri, "tiny")
    assert len(parents) == 1 and len(children) == 4
    for t in trials:  # Tune's result files; TensorBoard's only with --tensorboard
        files = os.listdir(os.path.dirname(t["checkpoint"]))
        assert {"result.json", "progress.csv"} <= set(files) and not any(f.startswith("events.out") for f in files)

    # the best trial's generator (its best eval's EMA weights and run config) is an artifact of its run;
    # smart.generate samples from it, and from a trial checkpoint, the same samples
    best_run = next(r for r in children if r.data.tags["trial_id"] == summary["best"]["trial_id"])
    assert summary["best"]["generator"] == f"runs:/{best_run.info.run_id}/generator"
    assert [r for r in children if r is not best_run and client.list_artifacts(r.info.run_id, "generator")] == []
    kept = client.download_artifacts(best_run.info.run_id, "generator", str(tmp_path / "dl"))
    assert sorted(os.listdir(kept)) == ["config.yaml", "generator.pt"]
    # the trial's run config, on the device Ray granted it (no GPU asked: cpu)
    assert RunConfig.from_dict(yaml.safe_load((tmp_path / "dl" / "generator" / "config.yaml").read_text())) == \
        RunConfig.from_dict(summary["best"]["config"]).with_overrides({"device": "cpu"})
    assert generate([kept, "--num", "64", "--out", str(tmp_path / "a.npz")]) == 0
    assert generate([summary["best"]["checkpoint"], "--num", "64", "--out", str(tmp_path / "b.npz")]) == 0
    a, b = np.load(tmp_path / "a.npz")["samples"], np.load(tmp_path / "b.npz")["samples"]
    assert a.shape == (64, 2) and np.array_equal(a, b)
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["best_trial"] == summary["best"]["trial_id"]
    assert parent.data.metrics["fid_best"] == summary["best"]["metrics"]["fid_best"]
    assert parent.data.params["regularizer.weight"] == str(summary["best"]["params"]["regularizer.weight"])
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["report", "summary.json"]
    by_trial = {t["trial_id"]: t for t in trials}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        trial = by_trial[child.data.tags["trial_id"]]
        params = child.data.params
        inert = {k for k in RunConfig().flat() if k.startswith("regularizer.") and k != "regularizer.weight"}
        plain = trial["config"]["regularizer.weight"] == 0.0  # the baseline's params have no k or t-range
        assert set(params) == set(RunConfig().flat()) - (inert if plain else set())  # the flattened run config
        for key, value in trial["config"].items():
            assert params[key] == str(value)
        assert params["eval.cache_dir"] == str(cache)
        history = client.get_metric_history(child.info.run_id, "fid")
        assert trial["metrics"]["fid_best"] == min(m.value for m in history)
        steps = [m.step for m in history]
        assert steps == sorted(steps) and round(steps[0] / 1000) == 4 and len(set(steps)) == len(steps)
        assert steps[-1] == round(trial["metrics"]["kimg"] * 1000)  # images shown
        assert history[-1].value == trial["metrics"]["fid"]
        assert child.data.tags["stopped_early"] == str(trial["status"] == "stopped early").lower()


def test_sub_kimg_evals_keep_their_steps_and_runs_are_named(ray_session, tmp_path, capsys):
    """Evals 0.25 kimg apart keep distinct MLflow steps (step = images shown); child runs are named
    for their SMaRt setting and carry the user, the source and the commit."""
    points = [{"regularizer.weight": 0.0}, {"regularizer.weight": 0.01, "regularizer.interval": 4,
                                            "regularizer.t_min": 25, "regularizer.t_max": 35}]
    study = write_study(tmp_path / "s.yaml", {
        ("config", "training", "kimg"): 1.0, ("config", "training", "eval_every_kimg"): 0.25,
        ("sampler", "points_to_evaluate"): points, ("budget", "num_samples"): 2, ("scheduler", "kind"): "none",
        ("mlflow", "report"): False, ("objective", "reduce"): "last"})
    storage = tmp_path / "store"
    assert main([study, "--storage", str(storage), "--tensorboard"]) == 0
    capsys.readouterr()
    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    for t in summary["trials"]:  # Tune's result files, and TensorBoard's on request
        files = os.listdir(os.path.dirname(t["checkpoint"]))
        assert {"result.json", "progress.csv"} <= set(files) and any(f.startswith("events.out.tfevents") for f in files)
    assert summary["objective"] == "fid"  # objective.reduce: last ranks by the latest eval, keeps the latest checkpoint
    fids = [t["metrics"]["fid"] for t in summary["trials"]]
    assert fids == sorted(fids)
    for t in summary["trials"]:
        state = torch.load(os.path.join(t["checkpoint"], "trainer.pt"), map_location="cpu", weights_only=True)
        assert state["progress"]["cur_nimg"] / 1000 == pytest.approx(t["metrics"]["kimg"], abs=1e-3)
    client, parents, children = _runs(f"sqlite:///{storage}/mlflow.db", "tiny")
    assert sorted(r.info.run_name for r in children) == ["λ=0 (baseline)", "λ=0.01 k=4 t=25-35"]
    for run in [*parents, *children]:
        tags = run.data.tags
        assert tags["mlflow.user"] == getpass.getuser() and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.source.name"] and len(tags["mlflow.source.git.commit"]) == 40
    for child in children:
        assert len(child.data.tags["trial_id"]) == 8
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid")]
        kimgs = [m.value for m in client.get_metric_history(child.info.run_id, "kimg")]
        assert len(steps) == 4 and len(set(steps)) == 4  # round(kimg) would give 0, 1, 1, 1
        assert steps == [round(k * 1000) for k in kimgs]
