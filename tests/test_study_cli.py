"""run_study's input handling: bad study files and flags give exit 2 with one line naming the key
and start nothing (no Ray, no MLflow, no files); every shipped study passes --dry-run."""
import glob
import json
import os
import subprocess
import sys

import pytest

from study_files import write_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs the CLI in a fresh interpreter and reports whether Ray or MLflow were even imported.
_PROBE = ("import json, sys; from tuning.run_study import main; rc = main(sys.argv[1:]); "
          "print('@@' + json.dumps({'rc': rc, 'ray': 'ray' in sys.modules, 'mlflow': 'mlflow' in sys.modules}))")


def run_cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = proc.stdout.splitlines()
    probe = json.loads(lines[-1][2:]) if lines and lines[-1].startswith("@@") else {"rc": proc.returncode}
    return probe, "\n".join(lines[:-1]), proc.stderr


TYPO = {"type": "loguniform", "low": 1e-3, "high": 1.0}
BAD_STUDIES = [  # (id, changes, dropped keys, extra args, the key the error must name)
    ("unknown-search-key", {("search", "regularizer.lambda"): TYPO}, (), [], "search.regularizer.lambda"),
    ("unknown-section", {("budjet",): {"num_samples": 2}}, (), [], "budjet"),
    ("num-samples-zero", {("budget", "num_samples"): 0}, (), [], "budget.num_samples"),
    ("num-samples-missing", {}, [("budget", "num_samples")], [], "budget.num_samples"),
    ("loguniform-zero-low", {("search", "regularizer.weight", "low"): 0.0}, (), [], "search.regularizer.weight.low"),
    ("inverted-range", {("search", "regularizer.weight"): {"type": "uniform", "low": 0.5, "high": 0.1}}, (), [],
     "search.regularizer.weight"),
    ("negative-weight", {("search", "regularizer.weight"): {"type": "uniform", "low": -1.0, "high": 0.1}}, (), [],
     "search.regularizer.weight"),
    ("choice-invalid-value", {("search", "regularizer.interval", "values"): [0, 4]}, (), [],
     "search.regularizer.interval"),
    ("choice-empty", {("search", "regularizer.interval", "values"): []}, (), [], "search.regularizer.interval.values"),
    ("choice-wrong-type", {("search", "regularizer.interval", "values"): [1.5, 4]}, (), [],
     "search.regularizer.interval"),
    ("t-range-beyond-schedule", {("search", "regularizer.t_min", "high"): 1000}, (), [], "search.regularizer.t_min"),
    ("t-range-too-narrow", {("search", "regularizer.t_min", "min_width"): 500}, (), [], "search.regularizer.t_min"),
    ("t-range-bad-upper", {("search", "regularizer.t_min", "upper"): "regularizer.t_top"}, (), [],
     "search.regularizer.t_min"),
    ("searched-twice", {("search", "regularizer.t_max"): {"type": "fixed", "value": 50}}, (), [],
     "search.regularizer.t_max"),
    ("unknown-entry-type", {("search", "regularizer.weight", "type"): "normal"}, (), [], "search.regularizer.weight"),
    ("entry-unknown-field", {("search", "regularizer.weight", "hi"): 2.0}, (), [], "search.regularizer.weight.hi"),
    ("wrong-type", {("budget", "max_concurrent"): "two"}, (), [], "budget.max_concurrent"),
    ("bad-base-config", {("config", "training", "kimg"): -1.0}, (), [], "config.training.kimg"),
    ("unknown-config-key", {("config", "training", "kimgs"): 8.0}, (), [], "config.training.kimgs"),
    ("bad-mode", {("objective", "mode"): "minimize"}, (), [], "objective.mode"),
    ("bad-scheduler", {("scheduler", "kind"): "hyperband"}, (), [], "scheduler.kind"),
    ("grace-beyond-kimg", {("scheduler", "grace_period"): 64.0}, (), [], "scheduler.grace_period"),
    ("reduction-factor-one", {("scheduler", "reduction_factor"): 1.0}, (), [], "scheduler.reduction_factor"),
    ("zero-cpu", {("resources", "cpu"): 0.0}, (), [], "resources.cpu"),
    ("bad-name", {("name",): "my study/1"}, (), [], "name"),
    ("no-config", {}, [("config",)], [], "config"),
    ("point-not-searched", {("sampler", "points_to_evaluate"): [{"regularizer.mode": "sds"}]}, (), [],
     "sampler.points_to_evaluate.0.regularizer.mode"),
    ("point-invalid", {("sampler", "points_to_evaluate"): [{"regularizer.weight": -1.0}]}, (), [],
     "sampler.points_to_evaluate.0"),
    ("grid-without-values", {("sampler", "kind"): "grid"}, (), [], "search.regularizer.weight.grid"),
    ("mlflow-not-bool", {("mlflow", "enabled"): "yes"}, (), [], "mlflow.enabled"),
    ("unknown-profile", {}, (), ["--profile", "fast"], "--profile"),
    ("set-unknown-key", {}, (), ["--set", "regularizer.lambda=1"], "config.regularizer.lambda"),
    ("set-bad-value", {}, (), ["--set", "budget.num_samples=-3"], "budget.num_samples"),
    ("resume-nothing", {}, (), ["--resume"], "--resume"),
    ("optuna-storage-not-a-url", {}, (), ["--optuna-storage", "optuna.db"], "--optuna-storage"),
    ("optuna-storage-unknown-dialect", {}, (), ["--optuna-storage", "nosuchdb://host/optuna"], "--optuna-storage"),
    ("optuna-storage-unreachable", {}, (), ["--optuna-storage", "sqlite:////nonexistent-dir/optuna.db"],
     "--optuna-storage"),
    ("replicates-zero", {}, (), ["--set", "budget.replicates=0"], "budget.replicates"),
    ("confirm-one-seed", {("confirm",): {"seeds": 1}}, (), [], "confirm.seeds"),
    ("confirm-unknown-key", {}, (), ["--set", "confirm.topk=2"], "confirm.topk"),
]


@pytest.mark.parametrize("case", BAD_STUDIES, ids=[c[0] for c in BAD_STUDIES])
def test_bad_input_is_one_line_exit_2_and_starts_nothing(case, tmp_path):
    _, changes, drop, args, key = case
    study = write_study(tmp_path / "study.yaml", changes, drop)
    storage = tmp_path / "store"
    probe, out, err = run_cli([study, "--storage", str(storage), *args], tmp_path)
    assert probe == {"rc": 2, "ray": False, "mlflow": False}, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}: "), err
    assert not storage.exists()
    assert sorted(os.listdir(tmp_path)) == ["study.yaml"]


def test_file_problems_name_the_file(tmp_path):
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("name: x\nconfig: {training: [\n")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    for path in (bad_yaml, listing, tmp_path / "missing.yaml"):
        probe, _, err = run_cli([str(path)], tmp_path)
        assert probe["rc"] == 2 and err.startswith(f"error: {path}: ") and len(err.strip().splitlines()) == 1


def test_existing_study_is_not_overwritten(tmp_path):
    study = write_study(tmp_path / "study.yaml")
    (tmp_path / "store" / "tiny").mkdir(parents=True)
    probe, _, err = run_cli([study, "--storage", str(tmp_path / "store")], tmp_path)
    assert probe["rc"] == 2 and err.startswith("error: --storage: ")
    assert os.listdir(tmp_path / "store" / "tiny") == []


def _profiles(path):
    from smart.config import load_yaml

    return [None, *sorted(load_yaml(path).get("profiles") or {})]


@pytest.mark.parametrize("path,profile", [(p, prof) for p in sorted(glob.glob(os.path.join(ROOT, "studies", "*.yaml")))
                                          for prof in _profiles(p)],
                         ids=lambda v: os.path.basename(v) if isinstance(v, str) and v.endswith(".yaml") else str(v))
def test_shipped_studies_pass_dry_run_and_start_nothing(path, profile, tmp_path):
    env_db = tmp_path / "env.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{env_db}"
    try:
        probe, out, err = run_cli([path, "--storage", str(tmp_path / "store"), *(["--profile", profile] if profile else []),
                                   "--set", "budget.num_samples=5", "--dry-run"], tmp_path)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    assert probe == {"rc": 0, "ray": False, "mlflow": False}, err
    assert "regularizer.weight" in out and "num_samples: 5" in out
    assert f"sqlite:///{env_db}" in out  # MLFLOW_TRACKING_URI wins over the default
    assert os.listdir(tmp_path) == []  # no storage, no MLflow database
