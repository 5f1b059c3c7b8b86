"""The image studies through the study runner at minimal size (session Ray, real Optuna, ASHA and
MLflow): aurora_weight's smoke profile and digits_weight, plus aurora_weight's exit 2 when the
ImageNet data, score model and Inception weights are missing."""
import json
import os

import pytest

from image_helpers import TINY_PRETRAIN
from tuning.run_study import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def study(name):
    return os.path.join(ROOT, "studies", f"{name}.yaml")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Score model and FID cache shared by the study tests (prepared by the first study that runs)."""
    return tmp_path_factory.mktemp("image-study-assets")


def minimal(assets):
    """Overrides that shrink a digits study to seconds: a tiny pretrained score model, 2 trials."""
    sets = {"score.path": assets / "score", "eval.cache_dir": assets / "cache",
            "score.pretrain.steps": TINY_PRETRAIN["steps"], "score.pretrain.channels": "[8, 16]",
            "training.kimg": 0.256, "training.eval_every_kimg": 0.128, "training.batch_size": 32,
            "eval.num_samples": 200, "budget.num_samples": 2, "scheduler.grace_period": 0.128,
            "mlflow.enabled": "false"}
    return [arg for k, v in sets.items() for arg in ("--set", f"{k}={v}")]


def _check_summary(storage, name, generator_keys):
    summary = json.loads((storage / name / "summary.json").read_text())
    assert len(summary["trials"]) == 2 and all(t["status"] != "error" for t in summary["trials"])
    assert summary["best"]["metrics"]["fid"] > 0
    assert summary["trials"][0]["config"]["regularizer.weight"] in (0.0, 0.1)  # the declared points first
    cfg = summary["best"]["config"]
    assert {k: cfg["generator"][k] for k in generator_keys} == generator_keys
    return summary


def test_aurora_weight_smoke_profile(ray_session, tmp_path, assets):
    storage = tmp_path / "store"
    assert main([study("aurora_weight"), "--profile", "smoke", *minimal(assets), "--storage", str(storage)]) == 0
    summary = _check_summary(storage, "aurora_weight", {"arch": "aurora"})
    assert summary["best"]["config"]["data"]["kind"] == "digits"
    assert (assets / "score" / "unet").is_dir()  # pretrained once, up front, by the driver


def test_digits_weight(ray_session, tmp_path, assets):
    storage = tmp_path / "store"
    assert main([study("digits_weight"), *minimal(assets), "--storage", str(storage)]) == 0
    _check_summary(storage, "digits_weight", {"arch": "stylegan2"})


def test_aurora_weight_without_data_exits_2_pointing_to_smoke(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SMART_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    storage = tmp_path / "store"
    code = main([study("aurora_weight"), "--set", f"data.path={tmp_path / 'imagenet64'}",
                 "--set", f"score.path={tmp_path / 'adm'}", "--storage", str(storage)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: data.path: no train_data_batch_*.npz")
    assert "also missing: score.path, eval.extractor_weights" in err and "--profile smoke" in err
    assert not storage.exists()  # nothing started, nothing written
