"""Extending smart without touching a project file: this module registers a dataset, a generator
and a metric, and runs train with them given the module as a plugin — on PYTHONPATH and named in
the run config's `plugins:`, as a user's own module would be — through `python -m smart.train` and
on a Ray worker."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import yaml
from pydantic import Field
from torch import nn

from smart.config import ConfigError, GeneratorConfig, RunConfig
from smart.data import ToyDataConfig
from smart.metrics import reported_metrics
from smart.registry import DATASETS, GENERATORS, METRICS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PLUGIN_PATH = os.pathsep.join([HERE, ROOT])


# ---- a dataset: one isotropic Gaussian in 2-D ----------------------------------------------------
class GaussianConfig(ToyDataConfig):
    center: list[float] = Field([0.5, -0.5], description="mean of the Gaussian")


class Gaussian2D:
    """N(center, std²I): exact sampling, distance to the mean in stds, and the exact noised score."""

    domain, conditional, num_classes, shape, num_modes = "toy", False, 0, (2,), 1

    def __init__(self, center, std):
        self.center, self.std = torch.tensor(center, dtype=torch.float32), float(std)

    def sample(self, n, generator=None):
        return self.center + self.std * torch.randn(n, 2, generator=generator)

    def batch(self, n, generator=None):
        return self.sample(n, generator), None

    def sample_labels(self, n, generator=None):
        return None

    def cache_key(self):
        return f"gauss-{self.center.tolist()}-std{self.std:g}"

    def distance_in_std(self, x):
        return (x - self.center).norm(dim=1) / self.std, torch.zeros(len(x), dtype=torch.long)

    def eps(self, x_t, alpha, sigma):
        var = alpha**2 * self.std**2 + sigma**2
        return (sigma / var)[:, None] * (x_t - alpha[:, None] * self.center.to(x_t))


@DATASETS.register("gauss", config=GaussianConfig)
def gauss(cfg):
    return Gaussian2D(cfg.data.center, cfg.data.std)


# ---- a generator: an affine map of the latents ---------------------------------------------------
class AffineConfig(GeneratorConfig):
    scale: float = Field(0.3, gt=0, description="initial scale of the map")


class AffineGenerator(nn.Module):
    def __init__(self, z_dim, shape, scale):
        super().__init__()
        self.z_dim, self.shape = z_dim, tuple(shape)
        self.linear = nn.Linear(z_dim, math.prod(shape))
        nn.init.normal_(self.linear.weight, std=scale)

    def forward(self, z, labels=None):
        return self.linear(z).view(len(z), *self.shape)


@GENERATORS.register("affine", config=AffineConfig)
def affine(cfg, sample_shape, num_classes):
    return AffineGenerator(cfg.z_dim, sample_shape, cfg.scale)


# ---- a metric: how far the generated mean is from the real one -----------------------------------
@METRICS.register("mean_gap", reports={"mean_gap"})
def mean_gap(ctx, samples):
    return {"mean_gap": float((samples.mean(0).cpu() - ctx.dataset.center).norm())}


CONFIG = {"plugins": ["test_extending"], "data": {"kind": "gauss", "center": [0.5, -0.5], "std": 0.1},
          "generator": {"arch": "affine", "z_dim": 2}, "regularizer": {"weight": 0.1, "interval": 2},
          "training": {"kimg": 2.0, "batch_size": 64, "eval_every_kimg": 1.0},
          "eval": {"metrics": ["fid", "grad_norms", "mean_gap"], "num_samples": 500, "grad_samples": 64}}


def _train(tmp_path, *extra):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(CONFIG))
    return subprocess.run([sys.executable, "-m", "smart.train", str(tmp_path / "run.yaml"), "--out",
                           str(tmp_path / "out"), *extra], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": PLUGIN_PATH}, timeout=300)


def _check_run(out, cfg):
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    final = json.loads((out / "final.json").read_text())
    assert [round(x["kimg"]) for x in lines] == [1, 2] and final["metrics"] == lines[-1]
    assert all(set(x) == reported_metrics(cfg) for x in lines)
    assert all(0 <= x["mean_gap"] < 10 and x["fid"] > 0 for x in lines)
    assert any(x[f"grad_smart_{side}"] for x in lines for side in ("on", "off"))  # split by the data's distance
    assert final["config"]["data"]["center"] == [0.5, -0.5] and final["config"]["generator"]["scale"] == 0.3


def test_plugin_kinds_train_through_the_cli(tmp_path):
    proc = _train(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_run(tmp_path / "out", RunConfig.from_dict(CONFIG))


@pytest.mark.parametrize("extra, expected", [
    (["--set", "generator.hidden=64"], "error: generator.hidden: unknown key for generator.arch affine"),
    (["--set", "data.center=oops"], "error: data.center: Input should be a valid list (got 'oops')"),
    (["--set", "plugins=[no_such_plugin]"], "error: plugins: cannot import 'no_such_plugin': No module named"),
    (["--set", "plugins=[]"], "error: data.kind: unknown dataset 'gauss' (known: digits,"),
])
def test_plugin_config_errors_are_one_line(tmp_path, extra, expected):
    proc = _train(tmp_path, *extra)
    assert proc.returncode == 2 and proc.stderr.startswith(expected) and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists()


def test_registered_kinds_are_checked_like_built_in_ones():
    with pytest.raises(ConfigError, match=r"^eval.metrics: unknown metric 'mean_gapp' \(known: fid, grad_norms, "
                                          r"mean_gap, modes, saturation\)"):
        RunConfig.from_dict(CONFIG, {"eval.metrics": ["mean_gapp"]})
    with pytest.raises(ValueError, match="already registered"):
        METRICS.register("mean_gap", lambda ctx, samples: {})
    assert METRICS.register("mean_gap", mean_gap) is mean_gap  # the same function again: a module re-imported


def test_plugins_load_on_a_ray_worker(ray_session, tmp_path):
    """A worker started with the user's PYTHONPATH imports the plugin because the config names it
    (the task itself is smart's own CLI entry point, which knows nothing of the plugin)."""
    import ray

    from smart.train import main

    (tmp_path / "run.yaml").write_text(yaml.safe_dump(CONFIG))
    task = ray.remote(main).options(num_cpus=1, runtime_env={"env_vars": {"PYTHONPATH": PLUGIN_PATH}})
    assert ray.get(task.remote([str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out")]), timeout=300) == 0
    _check_run(tmp_path / "out", RunConfig.from_dict(CONFIG))
