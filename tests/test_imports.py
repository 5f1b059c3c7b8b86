"""Each module of smart/ imports on its own in a fresh interpreter, and declaring and validating a
config imports no torch (a study validates its runs before anything heavy starts). The import graph
itself (no cycles, smart/ never imports the study layer) is tests/test_import_graph.py."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_import_graph import _modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_each_module_imports_alone():
    env = {**os.environ, "PYTHONPATH": ROOT}

    def load(name):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env,
                              timeout=300)
        return name, proc.returncode, proc.stderr[-1500:]

    with ThreadPoolExecutor(2) as pool:
        failed = [(n, err) for n, rc, err in pool.map(load, sorted(_modules("smart"))) if rc != 0]
    assert not failed, failed


def test_validating_configs_imports_no_torch():
    script = """
import sys
from smart.config import RunConfig, keys_markdown
from smart.metrics import reported_metrics
cfg = RunConfig.from_dict({"data": {"kind": "digits", "conditional": True}, "generator": {"arch": "aurora"},
                           "discriminator": {"arch": "stylegan2"}, "score": {"kind": "diffusers", "path": "x"},
                           "eval": {"metrics": ["fid", "grad_norms"]}})
assert "loss_aux" in reported_metrics(cfg) and keys_markdown()
print(sorted(m for m in ("torch", "diffusers", "torch_fidelity", "ray", "mlflow") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_study_driver_imports_no_torch():
    """The driver names the trainables and runs Tune, Optuna and MLflow without torch and the
    training library: those load in the trial actors (tuning/trial_run.py), and a toy study's
    driver pays for them only where its reference statistics need them (while Ray starts)."""
    script = """
import sys
import tuning.driver, tuning.trainable, tuning.trial_timings, tuning.tracking_callback, tuning.fault_watch
import tuning.results, tuning.searcher, tuning.cluster
from tuning.driver import _trainable
print(sorted(m for m in ("torch", "torch_fidelity", "torchvision", "smart.loop") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_cached_toy_reference_costs_the_driver_no_torch(tmp_path):
    """The study driver prepares the metrics while Ray starts; when the toy reference statistics are
    cached (every study after the first), that loads neither torch nor torch-fidelity."""
    script = """
import sys
from smart.config import RunConfig
from smart.metrics import prepare_metrics
prepare_metrics(RunConfig.from_dict({"data": {"kind": "ring8", "ambient_dim": 4},
                                     "eval": {"num_samples": 300, "cache_dir": sys.argv[1]}}))
print(sorted(m for m in ("torch", "torch_fidelity") if m in sys.modules))
"""
    def prepare() -> str:
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    assert prepare() == "['torch', 'torch_fidelity']"  # first: computed and cached
    assert any(p.name.endswith(".pt") for p in tmp_path.iterdir())
    assert prepare() == "[]"
