"""`python -m smart.train`: outputs of a good run, and one-line exit-2 errors for bad input."""
import json
import subprocess
import sys

import pytest

QUICK = ["--set", "training.kimg=4", "--set", "training.eval_every_kimg=2", "--set", "eval.num_samples=500"]


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "smart.train", *args], capture_output=True, text=True, cwd=cwd)


def test_good_run_writes_metrics_and_final(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("regularizer:\n  weight: 1e-2\n  interval: 2\n")
    out = tmp_path / "out"
    proc = run(str(cfg), *QUICK, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [round(x["kimg"]) for x in lines] == [2, 4]
    assert set(lines[0]) == set(lines[1]) and {"fid", "modes_covered", "off_manifold_ratio"} <= set(lines[0])
    final = json.loads((out / "final.json").read_text())
    assert final["metrics"] == last == lines[-1]
    assert final["config"]["regularizer"]["weight"] == 0.01
    assert "kimg/s" in proc.stdout or "kimg_per_s" in proc.stdout
    # never overwrite a finished run
    again = run(str(cfg), *QUICK, "--out", str(out))
    assert again.returncode == 2 and again.stderr.startswith("error: --out:")


def test_study_file_uses_its_base_config(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("name: s\nconfig:\n  regularizer:\n    weight: 0.05\nsearch: {}\n")
    proc = run(str(study), *QUICK, "--set", "training.kimg=2", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "final.json").read_text())["config"]["regularizer"]["weight"] == 0.05


BAD = [
    (["missing.yaml"], "missing.yaml: no such file"),
    (["{cfg}", "--set", "regularizer.weight=-1"], "regularizer.weight:"),
    (["{cfg}", "--set", "regularizer.interval=0"], "regularizer.interval:"),
    (["{cfg}", "--set", "regularizer.t_min=50", "--set", "regularizer.t_max=40"], "regularizer.t_min:"),
    (["{cfg}", "--set", "regularizer.t_max=1000"], "regularizer.t_max:"),
    (["{cfg}", "--set", "regularizer.mode=full"], "regularizer.mode:"),
    (["{cfg}", "--set", "regularizer.lambda=0.1"], "regularizer.lambda: unknown key"),
    (["{cfg}", "--set", "training.kimg=abc"], "training.kimg:"),
    (["{cfg}", "--set", "regularizer.weight"], "--set:"),
    (["{cfg}", "--set", "device=tpu"], "device:"),
    (["{bad_yaml}"], "invalid YAML"),
    (["{list_yaml}"], "must hold a mapping"),
    (["{unknown_section}"], "optimizer: unknown key"),
    (["{cfg}", "--bogus"], "usage:"),
    ([], "usage:"),
]


@pytest.mark.parametrize("args,expected", BAD)
def test_bad_input_is_one_line_exit_2(tmp_path, args, expected):
    files = {"cfg": "seed: 1\n", "bad_yaml": "seed: [1, 2\n", "list_yaml": "- 1\n- 2\n",
             "unknown_section": "optimizer:\n  lr: 0.1\n"}
    paths = {}
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        paths[name] = str(tmp_path / f"{name}.yaml")
    proc = run(*[a.format(**paths) for a in args], "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "out").exists()  # nothing written
