"""benchmarks/gpu_check.py cannot rot while no GPU is around: its --cpu-smoke mode runs every part's
code at tiny sizes on the CPU and writes every figure, finite, to its JSON file."""
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _finite(*values):
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # minutes of CPU work; far longer on a loaded machine
def test_cpu_smoke_runs_every_part_with_finite_figures(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": ROOT, "SMART_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--cpu-smoke",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=3000, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    parts = result["parts"]
    assert set(parts) == {"step_cost", "bf16_gradient", "resume", "packing", "study"}
    assert all(p["ok"] for p in parts.values())

    rows = parts["step_cost"]["settings"]
    assert len(rows) == 9  # off, and jacobian / sds at k = 1, 8 in fp32 and bf16
    for row in rows.values():
        assert _finite(row["ms_per_g_step"], row["ms_per_iteration"], row["images_per_s"], row["iteration_ratio"])
    assert _finite(parts["step_cost"]["ratio_jacobian_k8_fp32"], parts["step_cost"]["ratio_jacobian_k8_bf16"])

    bf16 = parts["bf16_gradient"]
    assert _finite(bf16["cosine"], bf16["relative_error"], bf16["norm_ratio"]) and bf16["cosine"] > 0.9

    resume = parts["resume"]
    assert resume["no_crash"] and resume["default"]["equal"] and resume["deterministic"]["equal"]  # CPU: exact

    packed = parts["packing"]["packed"]
    assert set(packed) == {"1", "2"} and all(_finite(r["trials_per_min"], r["speedup"]) for r in packed.values())
    study = parts["study"]
    assert study["all_fids_finite"] and study["mlflow_trial_runs"] == 2 and study["mlflow_runs_with_fid"] == 2
    assert "| step_cost | settings.jacobian k=8 bf16.ms_per_iteration |" in proc.stdout  # the table
