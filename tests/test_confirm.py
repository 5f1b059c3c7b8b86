"""The confirmation stage: which configurations and seeds it retrains (unit), and a study with
`confirm` on the session's real Ray, Optuna and MLflow: the confirmation trials train to the full
kimg with fresh seeds, are tagged stage=confirm, and summary.json, the printed summary and the
report lead with the verdict; --resume of the finished study changes nothing."""
import json

import pytest
from mlflow.tracking import MlflowClient

from smart.config import ConfigError, RunConfig
from study_files import write_study
from tuning.confirm import confirmation, fresh_seeds, pick, search_seeds
from tuning.replicates import replicate_seed
from tuning.study import load_study

W, K, T0, T1 = "regularizer.weight", "regularizer.interval", "regularizer.t_min", "regularizer.t_max"


def _trial(weight, fid, seed, status="finished", k=4):
    return {"status": status, "config": {W: weight, K: k, T0: 25, T1: 35, "seed": seed},
            "metrics": {"fid": fid}}


def test_pick_takes_the_k_best_distinct_smart_configs_and_the_best_plain_one():
    summary = {"metric": "fid", "trials": [
        _trial(0.01, 0.05, 1), _trial(0.0, 0.06, 2), _trial(0.01, 0.065, 3), _trial(0.1, 0.07, 4),
        _trial(0.0, 0.08, 5, k=16), _trial(1.0, 0.09, 6), _trial(0.3, None, 7, status="error")]}
    configs, plain = pick(summary, RunConfig(), 2, True)
    assert configs == [{W: 0.01, K: 4, T0: 25, T1: 35}, {W: 0.1, K: 4, T0: 25, T1: 35}]  # 0.01 once
    assert plain == {W: 0.0, K: 4, T0: 25, T1: 35}  # the best λ=0 trial's
    assert pick(summary, RunConfig(), 1, False) == ([{W: 0.01, K: 4, T0: 25, T1: 35}], None)
    no_plain = {"metric": "fid", "trials": [_trial(0.01, 0.05, 1)]}
    assert pick(no_plain, RunConfig(), 3, True)[1] == {W: 0.0, K: 4, T0: 25, T1: 35}


def test_confirmation_seeds_are_fresh():
    summary = {"trials": [_trial(0.01, 0.05, 1), _trial(0.0, 0.06, 2)]}
    used = search_seeds(summary, 3)
    assert used == {replicate_seed(s, r) for s in (1, 2) for r in range(3)}
    seeds = fresh_seeds(0, 5, used)
    assert len(set(seeds)) == 5 and not set(seeds) & used and seeds == fresh_seeds(0, 5, used)
    assert fresh_seeds(0, 5, {seeds[0]})[:4] == seeds[1:]  # a used seed is skipped, never reused


def test_confirmation_groups_per_configuration():
    a, b = {W: 0.01}, {W: 0.0}
    runs = [{"params": b, "seed": 1, "value": 0.06, "baseline": True},
            {"params": a, "seed": 1, "value": 0.05, "baseline": False},
            {"params": b, "seed": 2, "value": 0.062, "baseline": True},
            {"params": a, "seed": 2, "value": None, "baseline": False},
            {"params": a, "seed": 3, "value": 0.052, "baseline": False}]
    base, smart = confirmation(runs, "min")
    assert base["baseline"] and base["values"] == [0.06, 0.062] and base["seeds"] == [1, 2]
    assert smart["values"] == [0.05, 0.052] and smart["seeds"] == [1, 3] and smart["failed"] == 1
    assert "vs_baseline" in smart and "beats_baseline" in smart


def test_confirm_section_is_validated(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path / "s.yaml", {("confirm",): {"top_k": 1, "seeds": 1}}))
    assert err.value.key == "confirm.seeds"
    assert load_study(write_study(tmp_path / "t.yaml")).spec.confirm is None  # off when absent
    study = load_study(write_study(tmp_path / "u.yaml"), sets=[("confirm.seeds", 3)])  # --set turns it on
    assert (study.spec.confirm.top_k, study.spec.confirm.seeds, study.spec.confirm.baseline) == (3, 3, True)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two Tune experiments and a resume: > 600 s on a loaded 2-core machine
def test_study_with_confirmation(ray_session, tmp_path, capsys):
    from tuning.run_study import main

    study = write_study(tmp_path / "s.yaml", {
        ("budget", "num_samples"): 2, ("config", "training", "kimg"): 2.0,
        ("config", "training", "eval_every_kimg"): 1.0, ("scheduler", "kind"): "none",
        ("confirm",): {"top_k": 1, "seeds": 2},
        ("config", "eval", "cache_dir"): str(tmp_path / "cache")})
    storage = tmp_path / "store"
    assert main([study, "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    assert list(summary)[0] == "verdict" and out.split("verdict: ", 1)[1].startswith(summary["verdict"])
    assert "beats the plain GAN" in summary["verdict"]  # either "... beats" or "no configuration beats"
    base, smart = summary["confirmation"]
    assert base["baseline"] and base["label"] == "λ=0" and not smart["baseline"]
    assert len(base["values"]) == len(smart["values"]) == 2 and base["seeds"] == smart["seeds"]
    assert set(smart["vs_baseline"]) == {"delta", "ci95", "p_value", "p_raw"}
    search = {t["config"]["seed"] for t in summary["trials"]}
    assert not search & set(base["seeds"])  # fresh seeds
    best_smart = next(t for t in summary["trials"] if t["config"][W] > 0)
    assert smart["params"] == {k: v for k, v in best_smart["config"].items() if k != "seed"}
    assert base["params"] == {W: 0.0}  # no k or t-range: inert when λ = 0
    assert f"{base['values'][0]:.4g}" in out  # per-seed values printed beside the others

    uri = f"sqlite:///{storage}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    children = client.search_runs([exp.experiment_id], "tags.mlflow.parentRunId != ''")
    stages = sorted(r.data.tags.get("stage") for r in children)
    assert stages == ["confirm"] * 4 + ["search"] * 2
    for r in children:
        if r.data.tags["stage"] == "confirm":
            assert r.data.metrics["kimg"] >= 2.0 and r.data.tags["trial_status"] == "finished"
    parent = client.search_runs([exp.experiment_id], "tags.study = 'tiny'")[0]
    assert parent.data.tags["verdict"] == summary["verdict"]
    report = (storage / "tiny" / "report" / "report.html").read_text()
    assert report.index("Verdict") < report.index("Trials") and (storage / "tiny" / "report" / "confirmation.png").exists()

    assert main([study, "--storage", str(storage), "--resume"]) == 0  # finished: nothing retrains
    capsys.readouterr()
    again = json.loads((storage / "tiny" / "summary.json").read_text())
    assert again["confirmation"] == summary["confirmation"] and again["verdict"] == summary["verdict"]
    assert len(client.search_runs([exp.experiment_id], "tags.mlflow.parentRunId != ''")) == 6
