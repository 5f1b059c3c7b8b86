"""Replicated trials (budget.replicates): seeds, how the replicates' metrics combine, and the
lockstep loop itself on real toy training: each replicate trains exactly as it would alone, the
trial's checkpoint holds every replicate and resumes bit-for-bit, one diverging replicate makes
the trial diverged. Then a study with R = 2 on the session's real Ray, Optuna, ASHA and MLflow."""
import json
import math
import os
import shutil
import statistics

import pytest

from smart.config import ConfigError, RunConfig
from study_files import write_study
from tuning.replicates import combine, replicate_configs, replicate_seed
from tuning.study import load_study
from tuning.trial_run import run_replicates, run_trial


def test_replicate_seeds_are_derived_and_distinct():
    assert replicate_seed(1234, 0) == 1234  # R = 1 trains what it trained before
    seeds = [replicate_seed(1234, r) for r in range(8)]
    assert len(set(seeds)) == 8 and seeds == [replicate_seed(1234, r) for r in range(8)]
    assert replicate_seed(1235, 1) != replicate_seed(1234, 1)
    cfgs = replicate_configs(RunConfig().with_overrides({"seed": 7, "regularizer.weight": 0.1}), 3)
    assert [c.seed for c in cfgs] == [replicate_seed(7, r) for r in range(3)]
    assert {c.regularizer.weight for c in cfgs} == {0.1}


def test_combine_reports_the_mean_under_the_metric_name():
    out = combine([{"kimg": 4.0, "fid": 0.1, "loss": 1.0}, {"kimg": 4.0, "fid": 0.3, "loss": 3.0}], "fid")
    assert out["fid"] == pytest.approx(0.2) and out["loss"] == pytest.approx(2.0) and out["kimg"] == 4.0
    assert out["fid_std"] == pytest.approx(statistics.stdev([0.1, 0.3])) and out["fid_seeds"] == [0.1, 0.3]
    assert combine([{"kimg": 1.0, "fid": 0.5}], "fid")["fid_std"] == 0.0


def test_replicates_need_one_process_per_trial(tmp_path):
    path = write_study(tmp_path / "s.yaml", {("budget", "replicates"): 2, ("resources", "workers"): 2})
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert err.value.key == "budget.replicates"
    assert load_study(write_study(tmp_path / "t.yaml", {("budget", "replicates"): 3})).spec.budget.replicates == 3


def _cfg(tmp_path, **over):
    base = {"data": {"kind": "ring8"}, "seed": 11, "training": {"kimg": 2, "eval_every_kimg": 1, "batch_size": 64},
            "eval": {"num_samples": 500, "cache_dir": str(tmp_path / "cache")}}
    return RunConfig.from_dict(base).with_overrides(over)


class _Recorder:
    """A `report` that keeps every result and a copy of every checkpoint directory."""

    def __init__(self, where):
        self.where, self.results, self.checkpoints = where, [], []

    def __call__(self, metrics, checkpoint=None):
        self.results.append(dict(metrics))
        if checkpoint is not None:
            dst = os.path.join(self.where, f"ckpt{len(self.results)}")
            with checkpoint.as_directory() as src:
                shutil.copytree(src, dst)
            self.checkpoints.append(dst)


@pytest.mark.slow
def test_lockstep_replicates_train_as_alone_and_resume_exactly(tmp_path):
    from ray import tune

    cfg = _cfg(tmp_path)
    both = _Recorder(tmp_path / "both")
    run_trial(cfg, metric="fid", mode="min", report=both, checkpoint=None, replicates=2)
    assert [r["kimg"] for r in both.results] == [1.024, 2.048]  # evals at batch boundaries
    for r in both.results:
        assert len(r["fid_seeds"]) == 2 and r["fid"] == pytest.approx(statistics.fmean(r["fid_seeds"]))
        assert r["fid_std"] == pytest.approx(statistics.stdev(r["fid_seeds"]))
    assert {"replicate-0", "replicate-1"} <= set(os.listdir(both.checkpoints[0]))

    for r, one_cfg in enumerate(replicate_configs(cfg, 2)):  # each replicate = the same seed trained alone
        alone = _Recorder(tmp_path / f"alone{r}")
        run_trial(one_cfg, metric="fid", mode="min", report=alone, checkpoint=None)
        assert [a["fid"] for a in alone.results] == [b["fid_seeds"][r] for b in both.results]

    resumed = _Recorder(tmp_path / "resumed")  # from the first eval's checkpoint, as Tune would
    run_trial(cfg, metric="fid", mode="min", report=resumed, replicates=2,
              checkpoint=tune.Checkpoint.from_directory(both.checkpoints[0]))
    assert [r["fid_seeds"] for r in resumed.results] == [r["fid_seeds"] for r in both.results[1:]]


def test_one_diverging_replicate_makes_the_trial_diverged(tmp_path):
    rec = _Recorder(tmp_path)
    run_replicates([_cfg(tmp_path), _cfg(tmp_path, **{"seed": 12, "optim.d_lr": 1e6})], metric="fid", mode="min",
                   report=rec, checkpoint=None)
    last = rec.results[-1]
    assert last["diverged"] == 1.0 and math.isinf(last["fid"]) and last["diverged_reason"].startswith("replicate 1:")
    assert all("diverged" not in r for r in rec.results[:-1])


@pytest.mark.slow
def test_study_with_replicates_reports_the_mean(ray_session, tmp_path, capsys):
    from tuning.run_study import main

    study = write_study(tmp_path / "s.yaml", {("budget", "replicates"): 2, ("budget", "num_samples"): 2,
                                             ("config", "training", "kimg"): 8.0,
                                             ("scheduler", "grace_period"): 4.0,
                                             ("config", "eval", "cache_dir"): str(tmp_path / "cache")})
    storage = tmp_path / "store"
    assert main([study, "--storage", str(storage)]) == 0
    capsys.readouterr()
    summary = json.loads((storage / "tiny" / "summary.json").read_text())
    assert len(summary["trials"]) == 2
    for t in summary["trials"]:
        seeds = t["replicates"]
        assert len(seeds) == 2 and t["metrics"]["fid"] == pytest.approx(statistics.fmean(seeds))
        assert t["metrics"]["fid_std"] == pytest.approx(statistics.stdev(seeds))
    trial_dir = next(p for p in (storage / "tiny").iterdir() if p.name.startswith("trial_"))
    ckpt = sorted(p for p in trial_dir.iterdir() if p.name.startswith("checkpoint_"))[-1]
    assert {"replicate-0", "replicate-1"} <= set(os.listdir(ckpt))
