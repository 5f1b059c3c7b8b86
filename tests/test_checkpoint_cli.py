"""A run's weights outlive it: `smart.train --out` keeps the trainer in DIR/checkpoint.pt, `--resume`
continues it exactly, `smart.evaluate` re-measures it (the final eval's numbers, without optimizers)
and `smart.generate` writes its samples. Bad input: one line, exit 2, nothing written."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from image_helpers import image_config
from smart.assets import prepare_assets
from smart.loop import Trainer

TIMINGS = ("kimg_per_s", "smart_share", "sec_per_eval")
RUN = ["--set", "training.batch_size=128", "--set", "training.eval_every_kimg=1", "--set", "eval.num_samples=500",
       "--set", "eval.grad_samples=64", "--set", "regularizer.weight=0.1", "--set", "regularizer.interval=2"]


def cli(module, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def metric_lines(out):
    return [{k: v for k, v in json.loads(x).items() if k not in TIMINGS}
            for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A 2-kimg toy run continued to 3 kimg with --resume, beside the same run straight to 3 kimg."""
    root = tmp_path_factory.mktemp("toy")
    config = root / "run.yaml"
    config.write_text("data: {kind: ring8}\n")
    first = cli("smart.train", config, *RUN, "--set", "training.kimg=2", "--out", root / "run")
    assert first.returncode == 0, first.stderr
    again = cli("smart.train", config, *RUN, "--set", "training.kimg=3", "--out", root / "run", "--resume")
    assert again.returncode == 0, again.stderr
    straight = cli("smart.train", config, *RUN, "--set", "training.kimg=3", "--out", root / "straight")
    assert straight.returncode == 0, straight.stderr
    return root, config


def test_resume_continues_exactly(toy_run):
    root, _ = toy_run
    resumed, straight = metric_lines(root / "run"), metric_lines(root / "straight")
    assert [m["kimg"] for m in resumed] == [1.024, 2.048, 3.072] and resumed == straight
    assert json.loads((root / "run" / "final.json").read_text())["config"]["training"]["kimg"] == 3
    assert sorted(os.listdir(root / "run")) == ["checkpoint.pt", "config.yaml", "final.json", "metrics.jsonl"]


@pytest.mark.parametrize("args, expected", [
    ([], "error: --out: {out} already holds a run; choose another directory or continue it with --resume"),
    (["--resume"], "error: --resume: the run in {out} already reached training.kimg 3; extend it with"),
    (["--resume", "--set", "regularizer.weight=0.5"], "error: --resume: checkpoint was written by a different "
                                                      "config (differs in: regularizer.weight)"),
])
def test_resume_errors(toy_run, args, expected):
    root, config = toy_run
    before = (root / "run" / "metrics.jsonl").read_text()
    proc = cli("smart.train", config, *RUN, "--set", "training.kimg=3", "--out", root / "run", *args)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(expected.format(out=root / "run")), proc.stderr
    assert (root / "run" / "metrics.jsonl").read_text() == before


def test_resume_needs_a_checkpoint(tmp_path):
    (tmp_path / "run.yaml").write_text("seed: 1\n")
    proc = cli("smart.train", tmp_path / "run.yaml", "--out", tmp_path / "none", "--resume")
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: --resume: {tmp_path / 'none'} holds no checkpoint.pt")
    assert not (tmp_path / "none").exists()


def test_evaluate_reproduces_the_final_eval(toy_run):
    root, _ = toy_run
    final = json.loads((root / "run" / "final.json").read_text())["metrics"]
    proc = cli("smart.evaluate", root / "run")
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)
    expected = {k: v for k, v in final.items() if not k.startswith("loss_") and k not in TIMINGS}
    assert measured == expected  # same weights, eval stream and reference: the same numbers
    proc = cli("smart.evaluate", root / "run" / "checkpoint.pt", "--metrics", "modes", "--num-samples", "2000")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == {"kimg", "modes_covered", "hq_ratio", "off_manifold_ratio"}


def test_evaluate_and_generate_errors(toy_run, tmp_path):
    root, _ = toy_run
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "taken.png").write_bytes(b"")
    cases = [
        (["smart.evaluate", tmp_path / "missing.pt"], f"error: checkpoint: {tmp_path / 'missing.pt'}: no such file"),
        (["smart.evaluate", tmp_path / "junk.pt"], "error: checkpoint: "),
        (["smart.evaluate", tmp_path], f"error: checkpoint: {tmp_path} holds no checkpoint.pt or trainer.pt"),
        (["smart.evaluate", root / "run", "--metrics", "fid,fdi"], "error: --metrics: unknown metric 'fdi' (known:"),
        (["smart.evaluate", root / "run", "--set", "generator.hidden=64"], "error: checkpoint: its G weights do not"),
        (["smart.generate", root / "run", "--num", "10", "--out", tmp_path / "x.jpg"], "error: --out: "),
        (["smart.generate", root / "run", "--num", "10", "--out", tmp_path / "taken.png"], "error: --out: "),
        (["smart.generate", root / "run", "--num", "10", "--out", tmp_path / "no" / "x.png"], "error: --out: directory"),
        (["smart.generate", root / "run", "--num", "0", "--out", tmp_path / "x.png"], "error: --num: must be >= 1"),
        (["smart.generate", root / "run", "--num", "10", "--out", tmp_path / "x.npz", "--class", "1"],
         "error: --class: the generator is unconditional"),
        (["smart.generate", tmp_path / "junk.pt", "--num", "10", "--out", tmp_path / "x.png"], "error: checkpoint: "),
    ]
    for args, expected in cases:
        proc = cli(*args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (args, proc.stderr)
        assert proc.stderr.startswith(expected) and proc.stdout == "", (args, proc.stderr)
    assert sorted(os.listdir(tmp_path)) == ["junk.pt", "taken.png"]  # nothing written


def test_generate_toy_scatter_and_raw_samples(toy_run, tmp_path):
    root, _ = toy_run
    assert cli("smart.generate", root / "run", "--num", "300", "--out", tmp_path / "s.png").returncode == 0
    assert Image.open(tmp_path / "s.png").format == "PNG"
    for name in ("a.npz", "b.npz"):
        assert cli("smart.generate", root / "run", "--num", "300", "--seed", "5", "--out", tmp_path / name).returncode == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert a.files == ["samples"] and a["samples"].shape == (300, 2) and a["samples"].dtype == np.float32
    assert np.array_equal(a["samples"], b["samples"])  # the seed fixes the samples


def test_generate_images_of_one_class(tmp_path):
    cfg = image_config(str(tmp_path / "score"), str(tmp_path / "cache"), data={"conditional": True},
                       generator={"arch": "stylegan2", "z_dim": 16, "w_dim": 32, "channel_base": 64, "channel_max": 16},
                       discriminator={"arch": "stylegan2", "channel_base": 64, "channel_max": 16},
                       training={"kimg": 0.064}, eval={"metrics": []})
    prepare_assets(cfg)
    trainer = Trainer(cfg)
    trainer.train()
    trainer.save(str(tmp_path / "trainer.pt"))
    proc = cli("smart.generate", tmp_path, "--num", "20", "--class", "3", "--out", tmp_path / "threes.npz")
    assert proc.returncode == 0, proc.stderr
    out = np.load(tmp_path / "threes.npz")
    assert out["samples"].shape == (20, 1, 8, 8) and (out["labels"] == 3).all()
    assert cli("smart.generate", tmp_path, "--num", "20", "--out", tmp_path / "grid.png").returncode == 0
    assert np.asarray(Image.open(tmp_path / "grid.png")).shape == (2 + 4 * 10, 2 + 5 * 10, 3)  # 4 rows of 5 8px images
    bad = cli("smart.generate", tmp_path, "--num", "20", "--class", "10", "--out", tmp_path / "x.npz")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --class: 10 is not a class of this generator (0..9)")
    assert not (tmp_path / "x.npz").exists()


def test_kept_generator_is_logged_to_mlflow_and_samples_as_its_checkpoint(toy_run, tmp_path):
    """A study keeps a trial's generator as an MLflow artifact (generator.pt: the EMA weights and run
    config, no G, D or optimizers; config.yaml); smart.generate draws from it exactly what it draws
    from the checkpoint, and smart.evaluate, which needs D, refuses it."""
    import torch
    from mlflow.tracking import MlflowClient
    from ray.tune import Checkpoint

    from tuning.artifacts import log_generator

    root, _ = toy_run
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("kept", artifact_location=str(tmp_path / "art"))).info.run_id
    assert log_generator(uri, run_id, Checkpoint.from_directory(str(root / "run"))) == f"runs:/{run_id}/generator"
    kept = client.download_artifacts(run_id, "generator", str(tmp_path / "dl"))
    assert sorted(os.listdir(kept)) == ["config.yaml", "generator.pt"]
    kept_file = os.path.join(kept, "generator.pt")
    state = torch.load(kept_file, weights_only=True)
    assert sorted(state) == ["G_ema", "code", "config", "format", "progress"]
    for source, out in ((root / "run", "a.npz"), (kept, "b.npz"), (kept_file, "c.npz")):
        proc = cli("smart.generate", source, "--num", "200", "--seed", "3", "--out", tmp_path / out)
        assert proc.returncode == 0, proc.stderr
    a, b, c = (np.load(tmp_path / n)["samples"] for n in ("a.npz", "b.npz", "c.npz"))
    assert np.array_equal(a, b) and np.array_equal(a, c)
    proc = cli("smart.evaluate", kept)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: checkpoint: {kept} holds no checkpoint.pt or trainer.pt")
