"""What a run reports is known before it starts: `reported_metrics(cfg)` is exactly what the evals
of a real run return, and run_study refuses an objective.metric that no eval reports — exit 2,
one line, before Ray, MLflow or the storage directory."""
import os
import subprocess
import sys

from smart.config import RunConfig
from smart.loop import Trainer
from smart.metrics import reported_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_toy_run_reports_exactly_its_reported_metrics():
    cfg = RunConfig.from_dict({}, {"training.kimg": 0.512, "training.batch_size": 128, "training.eval_every_kimg": 0.512,
                                   "eval.num_samples": 200, "eval.grad_samples": 64})
    assert set(Trainer(cfg).train()) == reported_metrics(cfg)
    assert {"grad_adv_on", "modes_covered", "loss_r1", "smart_share"} <= reported_metrics(cfg)
    assert "fid_samples" not in reported_metrics(cfg) and "loss_aux" not in reported_metrics(cfg)


def test_an_objective_no_run_reports_stops_run_study_up_front(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tuning", "run_study.py"),
                           os.path.join(ROOT, "studies", "toy_ring.yaml"), "--set", "objective.metric=fdi"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: objective.metric: 'fdi' is not reported by this run (it reports: fid, ")
    assert proc.stdout == "" and not (tmp_path / "runs").exists()
