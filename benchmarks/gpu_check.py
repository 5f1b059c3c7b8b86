"""The GPU check: every GPU figure of the project in one short run on one H100/H200 (≤ 8 minutes),
printed as a table and written as JSON.

    python benchmarks/gpu_check.py                       # on the GPU machine: all parts
    python benchmarks/gpu_check.py --cpu-smoke           # the same code paths at tiny sizes on CPU (< 1 min)
    python benchmarks/gpu_check.py --parts bf16_gradient --device cpu --batch 8   # one part, full size, on CPU

It checks its prerequisites first (torch, CUDA, diffusers, Ray, MLflow, disk), then runs each part
in its own try/except, so a failing part is reported and the others still run:

  step_cost      64×64, Aurora G and StyleGAN2 D at studies/aurora_weight.yaml widths, an ADM-64
                 topology score UNet (guided-diffusion's 64x64 flags, random weights, built by
                 smart.score.adm), batch 256 or the largest that fits: ms per G step and per
                 iteration, images/s, peak memory, for the term off, jacobian and sds at k = 1 and 8,
                 fp32 and bf16 score autocast. Target: ≤ 1.10× per iteration (jacobian, k = 8).
  bf16_gradient  the SMaRt gradient ∂L/∂x on one batch with the score UNet in fp32 and under bf16
                 autocast: cosine similarity and relative error. Target ≥ 0.99 cosine, else the
                 study's score.autocast stays fp32 ("none").
  resume         N iterations, save, load in a fresh Trainer, N more, against 2N uninterrupted, with
                 training.deterministic off and on: no crash, max |Δ| of G's weights.
  packing        1, 2 and 4 toy trials packed on one GPU (resources.gpu = 1/n) through the study
                 runner: trials per minute, speed-up over 1 (target ≥ 3× at 4), GPU memory still
                 held after the trials ended.
  study          a 2-trial study end to end with resources.gpu 0.5: MLflow runs, finite FIDs.

Nothing here needs data, weights or a network: images are random uint8 (step cost does not depend
on content) and the score UNet has random weights (its gradient's bf16 error is measured on a
random, not a trained, ADM: see docs/gpu.md).
"""
from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: training.deterministic needs it
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from smart.config import RunConfig  # noqa: E402
from smart.loop import Trainer  # noqa: E402

PARTS = ("step_cost", "bf16_gradient", "resume", "packing", "study")
SETTINGS = [  # (name, overrides); each jacobian/sds setting runs with the score in fp32 and bf16
    ("off", {"regularizer.weight": 0.0}),
    ("jacobian k=1", {"regularizer.mode": "jacobian", "regularizer.interval": 1}),
    ("jacobian k=8", {"regularizer.mode": "jacobian", "regularizer.interval": 8}),
    ("sds k=1", {"regularizer.mode": "sds", "regularizer.interval": 1}),
    ("sds k=8", {"regularizer.mode": "sds", "regularizer.interval": 8}),
]


@dataclass
class Scale:
    """The sizes of a check: the paper's (GPU) or tiny (--cpu-smoke)."""

    device: str
    resolution: int
    classes: int
    batch: int
    iters: int                     # timed iterations per setting (a multiple of 8: k = 8 fires evenly)
    nets: dict                     # generator.* / discriminator.* overrides of the study's widths
    adm: dict                      # the score UNet's ADM flags
    bf16_batch: int
    resume_steps: int
    packing: tuple[int, ...]
    trial_kimg: float
    trial_gpu: bool
    budget_s: float                # step_cost stops starting settings after this long
    extra: dict = field(default_factory=dict)


def gpu_scale(device: str, batch: int | None) -> Scale:
    return Scale(device=device, resolution=64, classes=1000, batch=batch or 256, iters=16, nets={},
                 adm={"widths": (192, 384, 576, 768), "layers": 3, "attention": (32, 16, 8), "head_channels": 64},
                 bf16_batch=batch or 64, resume_steps=4, packing=(1, 2, 4), trial_kimg=128, trial_gpu=True,
                 budget_s=240)


def smoke_scale() -> Scale:
    nets = {"generator.z_dim": 16, "generator.w_dim": 32, "generator.mapping_layers": 1,
            "generator.channel_base": 128, "generator.channel_max": 16, "generator.attn_resolutions": [8],
            "generator.num_experts": 2, "generator.num_heads": 2, "discriminator.channel_base": 128,
            "discriminator.channel_max": 16}
    return Scale(device="cpu", resolution=16, classes=10, batch=8, iters=4, nets=nets,
                 adm={"widths": (32, 64), "layers": 1, "attention": (8,), "head_channels": 32},
                 bf16_batch=4, resume_steps=2, packing=(1, 2), trial_kimg=0.5, trial_gpu=False, budget_s=600)


# ---- what the parts share ---------------------------------------------------------------------------
def study_widths() -> dict:
    """generator.*, discriminator.*, regularizer.*, optim.* and training.ema_kimg of aurora_weight.yaml."""
    with open(os.path.join(ROOT, "studies", "aurora_weight.yaml"), encoding="utf-8") as fh:
        config = yaml.safe_load(fh)["config"]
    out = {}
    for section in ("generator", "discriminator", "regularizer", "optim"):
        out.update({f"{section}.{k}": v for k, v in config[section].items()})
    out["training.ema_kimg"] = config["training"]["ema_kimg"]
    return out


def make_assets(scale: Scale, root: str) -> dict:
    """Random uint8 images with labels (an npz) and an ADM-topology UNet with random weights, saved
    where the diffusers score backend loads it; returns the run-config overrides that use them."""
    from smart.score.adm import adm_unet
    from smart.score.convert_adm import scheduler_for
    from smart.score.pretrain import save_atomically

    data = os.path.join(root, "images.npz")
    rng = np.random.default_rng(0)
    n = max(4 * scale.batch, 64)
    np.savez(data, images=rng.integers(0, 256, (n, 3, scale.resolution, scale.resolution), dtype=np.uint8),
             labels=np.arange(n) % scale.classes)
    score = os.path.join(root, "adm")
    torch.manual_seed(0)
    a = scale.adm
    unet = adm_unet(scale.resolution, 3, a["widths"], a["layers"], a["attention"], num_head_channels=a["head_channels"],
                    num_class_embeds=scale.classes, learned_variance=True)
    scheduler = scheduler_for({"timesteps": 1000, "schedule": "cosine"}, learned_sigma=True)
    save_atomically(unet, scheduler, {"null_class": None, "parameters": sum(p.numel() for p in unet.parameters())},
                    score)
    return {"data.kind": "npz", "data.path": data, "data.conditional": True, "score.kind": "diffusers",
            "score.path": score, "score.num_timesteps": 1000, "score.prediction": "auto",
            "eval.metrics": [], "eval.cache_dir": os.path.join(root, "cache"), "device": scale.device}


def paper_config(scale: Scale, assets: dict, overrides: dict) -> RunConfig:
    return RunConfig.from_dict({}, {**study_widths(), **scale.nets, **assets, "training.batch_size": scale.batch,
                                    "training.kimg": 1e6, "training.eval_every_kimg": 1e6, **overrides})


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---- the parts ----------------------------------------------------------------------------------------
def time_setting(scale: Scale, assets: dict, overrides: dict, batch: int) -> dict:
    cfg = paper_config(scale, assets, {**overrides, "training.batch_size": batch})
    cuda = scale.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(cfg)
    try:
        trainer.step()  # warm-up (allocator, cuDNN autotuning, lazy init)
        sync(scale.device)
        trainer.stats.reset()
        t0 = time.perf_counter()
        for _ in range(scale.iters):
            trainer.step()
        sync(scale.device)
        wall = (time.perf_counter() - t0) / scale.iters
        g = trainer.stats.seconds["G"] / scale.iters  # CUDA events on CUDA (smart.timing)
        smart_s = trainer.stats.smart_clock.seconds / scale.iters
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else math.nan
    finally:
        trainer.close()
    return {"batch": batch, "ms_per_g_step": 1e3 * g, "ms_per_iteration": 1e3 * wall, "images_per_s": batch / wall,
            "smart_share": smart_s / g if g > 0 else math.nan, "peak_mib": peak}


def _time_settings(scale: Scale, assets: dict, batch: int) -> dict:
    start, rows = time.perf_counter(), {}
    for name, overrides in SETTINGS:
        for autocast in (("none",) if name == "off" else ("none", "bf16")):
            label = f"{name} {'bf16' if autocast == 'bf16' else 'fp32'}"
            if time.perf_counter() - start > scale.budget_s:
                rows[label] = {"error": f"skipped: step_cost's {scale.budget_s:.0f} s budget is spent"}
                continue
            setting = {"regularizer.weight": 0.1, **overrides, "score.autocast": autocast}
            rows[label] = time_setting(scale, assets, setting, batch)
            print(f"  step_cost {label}: {rows[label]}", flush=True)
    return rows


def step_cost(scale: Scale, assets: dict) -> dict:
    """Every setting at one batch: the largest ≤ scale.batch that fits (all again at half on out-of-memory)."""
    batch = scale.batch
    while True:
        try:
            rows = _time_settings(scale, assets, batch)
            break
        except torch.cuda.OutOfMemoryError:
            if batch <= 8:
                raise
            batch //= 2
            print(f"  step_cost: out of memory, every setting again at batch {batch}", flush=True)
    out = {"settings": rows, "batch": batch}
    base = rows.get("off fp32", {}).get("ms_per_iteration")
    for label, row in rows.items():
        if base and "ms_per_iteration" in row:
            row["iteration_ratio"] = row["ms_per_iteration"] / base
    for precision in ("fp32", "bf16"):
        ratio = rows.get(f"jacobian k=8 {precision}", {}).get("iteration_ratio")
        out[f"ratio_jacobian_k8_{precision}"] = ratio
        out[f"target_ratio_le_1.10_{precision}"] = None if ratio is None else ratio <= 1.10
    return out


def smart_gradient(objective, x: torch.Tensor, labels, seed: int, bf16: bool) -> torch.Tensor:
    """∂(SMaRt surrogate)/∂x on `x` with t and ε from `seed`; the score UNet under bf16 autocast if asked."""
    x = x.detach().requires_grad_(True)
    generator = torch.Generator(x.device).manual_seed(seed)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        surrogate, _ = objective.smart.per_sample(x, labels, generator=generator)
    (grad,) = torch.autograd.grad(surrogate.float().sum(), x)
    return grad.float()


def bf16_gradient(scale: Scale, assets: dict) -> dict:
    """The SMaRt gradient on one batch of G's samples, fp32 against bf16 autocast of the score UNet
    (the model's own autocast is off: the whole per-sample term runs inside one autocast region)."""
    cfg = paper_config(scale, assets, {"score.autocast": "none", "training.batch_size": scale.bf16_batch,
                                       "regularizer.weight": 0.1, "regularizer.mode": "jacobian"})
    trainer = Trainer(cfg)
    try:
        with torch.no_grad():
            z, labels = trainer._inputs(scale.bf16_batch)
            x = trainer.G(z, labels)
        ref = smart_gradient(trainer.objective, x, labels, 1, bf16=False)
        low = smart_gradient(trainer.objective, x, labels, 1, bf16=True)
    finally:
        trainer.close()
    a, b = ref.flatten(1), low.flatten(1)
    per_sample = torch.nn.functional.cosine_similarity(a, b, dim=1)
    cosine = float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
    return {"device": str(x.device), "batch": scale.bf16_batch, "t_range": [cfg.regularizer.t_min, cfg.regularizer.t_max],
            "cosine": cosine, "cosine_per_sample_min": float(per_sample.min()),
            "relative_error": float((a - b).norm() / a.norm()), "norm_ratio": float(b.norm() / a.norm()),
            "target_cosine_ge_0.99": cosine >= 0.99}


def _params(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten().cpu() for p in trainer.G.parameters()])


def resume_case(scale: Scale, assets: dict, deterministic: bool, root: str) -> dict:
    cfg = paper_config(scale, assets, {"training.deterministic": deterministic, "regularizer.weight": 0.1,
                                       "regularizer.interval": 2, "regularizer.mode": "jacobian",
                                       "training.batch_size": min(scale.batch, 32)})
    n = scale.resume_steps
    straight = Trainer(cfg)
    for _ in range(2 * n):
        straight.step()
    ref = _params(straight)
    straight.close()
    first = Trainer(cfg)
    for _ in range(n):
        first.step()
    path = os.path.join(root, f"resume-{deterministic}.pt")
    first.save(path)
    first.close()
    resumed = Trainer(cfg)
    resumed.load(path)
    for _ in range(n):
        resumed.step()
    got = _params(resumed)
    resumed.close()
    return {"steps": f"{n}+{n}", "equal": bool(torch.equal(got, ref)), "max_abs_diff": float((got - ref).abs().max())}


def resume(scale: Scale, assets: dict, root: str) -> dict:
    out = {}
    for deterministic in (False, True):
        key = "deterministic" if deterministic else "default"
        try:
            out[key] = resume_case(scale, assets, deterministic, root)
        except Exception as exc:  # noqa: BLE001 — e.g. an op without a deterministic CUDA kernel
            out[key] = {"error": one_line(exc)}
    torch.use_deterministic_algorithms(False)
    out["no_crash"] = all("error" not in v for v in out.values() if isinstance(v, dict))
    out["deterministic_equal"] = out.get("deterministic", {}).get("equal")
    return out


def write_study(path: str, name: str, n: int, scale: Scale, mlflow: bool) -> None:
    """n toy (ring8) trials, all at once, each with 1/n of a GPU (or none on CPU)."""
    doc = {"name": name, "config": {"data": {"kind": "ring8"},
                                    "training": {"kimg": scale.trial_kimg, "eval_every_kimg": scale.trial_kimg},
                                    "eval": {"num_samples": 2000, "metrics": ["fid"]},
                                    "device": "cuda" if scale.trial_gpu else "cpu"},
           "objective": {"metric": "fid", "mode": "min"},
           "search": {"regularizer.weight": {"type": "uniform", "low": 0.0, "high": 0.2}},
           "sampler": {"kind": "random", "seed": 0}, "budget": {"num_samples": n, "max_concurrent": n},
           "scheduler": {"kind": "none"},
           "resources": {"cpu": 1, "gpu": round(1 / n, 4) if scale.trial_gpu else 0},
           "mlflow": {"enabled": mlflow, "report": False}}
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)


def start_ray() -> dict:
    """One local Ray for the study parts (a failure here is theirs, reported, not the script's)."""
    from tuning.cluster import init_ray

    init_ray(num_cpus=os.cpu_count(), dashboard=False)
    return {}


def run_study(path: str, storage: str):
    from tuning.driver import run
    from tuning.plan import Plan
    from tuning.run_study import parser
    from tuning.study import load_study

    args = parser().parse_args([path, "--storage", storage])
    return run(Plan(load_study(path, None, []), args))


def gpu_memory_used_mib() -> float:
    if not torch.cuda.is_available():
        return math.nan
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


_TWO_TRIALS: dict = {}  # packing's 2-trial study (MLflow on), which the study part checks instead of rerunning


def packing(scale: Scale, root: str) -> dict:
    rows = {}
    for n in scale.packing:
        path = os.path.join(root, f"pack{n}.yaml")
        write_study(path, f"pack{n}", n, scale, mlflow=n == 2)
        before = gpu_memory_used_mib()
        t0 = time.perf_counter()
        outcome = run_study(path, os.path.join(root, "runs"))
        wall = time.perf_counter() - t0
        if n == 2:
            _TWO_TRIALS.update(outcome=outcome, name=f"pack{n}")
        done = [t for t in outcome.summary["trials"] if finite(t["metrics"].get("fid"))]
        rows[str(n)] = {"trials": n, "finished": len(done), "wall_s": wall, "trials_per_min": 60 * len(done) / wall,
                        "gpu_mib_held_after": gpu_memory_used_mib() - before}
        print(f"  packing {n}: {rows[str(n)]}", flush=True)
    one = rows[str(scale.packing[0])]["trials_per_min"]
    for row in rows.values():
        row["speedup"] = row["trials_per_min"] / one if one else math.nan
    top = rows[str(scale.packing[-1])]
    return {"packed": rows, f"speedup_at_{scale.packing[-1]}": top["speedup"],
            "target_speedup_ge_3_at_4": top["speedup"] >= 3 if scale.packing[-1] == 4 else None}


def study(scale: Scale, root: str) -> dict:
    """A 2-trial study with MLflow: packing's, when it ran one, else its own."""
    import mlflow

    if not _TWO_TRIALS:
        path = os.path.join(root, "e2e.yaml")
        write_study(path, "e2e", 2, scale, mlflow=True)
        _TWO_TRIALS.update(outcome=run_study(path, os.path.join(root, "runs")), name="e2e")
    outcome, name = _TWO_TRIALS["outcome"], _TWO_TRIALS["name"]
    fids = [t["metrics"].get("fid") for t in outcome.summary["trials"]]
    client = mlflow.MlflowClient(outcome.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return {"study": name, "trials": len(fids), "fids": fids, "all_fids_finite": len(fids) == 2 and all(finite(f) for f in fids),
            "mlflow_trial_runs": len(children), "mlflow_runs_with_fid": sum("fid" in r.data.metrics for r in children)}


# ---- driver ------------------------------------------------------------------------------------------
def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]


def prerequisites(scale: Scale, root: str) -> dict:
    """What the parts need, checked before any of them runs."""
    checks = {"torch": torch.__version__, "python": sys.version.split()[0]}
    if scale.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("error: device: CUDA is not available (run with --cpu-smoke on a CPU machine)")
        props = torch.cuda.get_device_properties(0)
        checks.update(gpu=props.name, gpu_mib=props.total_memory // 2**20, cuda=torch.version.cuda,
                      bf16_supported=torch.cuda.is_bf16_supported(), gpu_mib_in_use=gpu_memory_used_mib())
    for module in ("diffusers", "ray", "mlflow", "optuna"):
        try:
            checks[module] = __import__(module).__version__
        except Exception as exc:  # noqa: BLE001
            checks[module] = f"missing: {one_line(exc)}"
    checks["free_disk_gib"] = shutil.disk_usage(root).free / 2**30
    checks["cpus"] = os.cpu_count()
    return checks


def run_part(name: str, fn, *args) -> dict:
    t0 = time.perf_counter()
    print(f"[{name}] ...", flush=True)
    try:
        out = {"ok": True, **fn(*args)}
    except Exception as exc:  # noqa: BLE001 — each part reports its own failure; the others still run
        traceback.print_exc()
        out = {"ok": False, "error": one_line(exc)}
    out["seconds"] = time.perf_counter() - t0
    print(f"[{name}] {'done' if out['ok'] else 'FAILED: ' + out['error']} in {out['seconds']:.1f} s", flush=True)
    return out


def table(result: dict) -> str:
    lines = ["| part | figure | value |", "|---|---|---|"]
    for part, out in result["parts"].items():
        for key, value in flatten_figures(out):
            lines.append(f"| {part} | {key} | {fmt(value)} |")
    return "\n".join(lines)


def flatten_figures(d: dict, prefix: str = ""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from flatten_figures(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="every part at tiny sizes on the CPU (< 1 minute)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--device", default=None, help="default cuda (cpu with --cpu-smoke)")
    p.add_argument("--batch", type=int, default=None, help="step_cost batch (default 256; halved on OOM)")
    p.add_argument("--out", default="gpu_check.json", help="JSON file of every figure")
    args = p.parse_args(argv)
    scale = smoke_scale() if args.cpu_smoke else gpu_scale(args.device or "cuda", args.batch)
    if args.device:
        scale.device = args.device
        scale.trial_gpu = args.device.startswith("cuda")
    t0 = time.perf_counter()
    root = tempfile.mkdtemp(prefix="gpu-check-")
    try:
        result = {"mode": "cpu-smoke" if args.cpu_smoke else "full", "device": scale.device,
                  "prerequisites": prerequisites(scale, root), "parts": {}}
        print(json.dumps(result["prerequisites"]), flush=True)
        wants_assets = any(part in ("step_cost", "bf16_gradient", "resume") for part in args.parts)
        made = run_part("assets", make_assets, scale, root) if wants_assets else {"ok": True}
        if not made["ok"]:
            result["parts"]["assets"] = made
        assets = {k: v for k, v in made.items() if k not in ("ok", "seconds")}
        needs_assets = {"step_cost": (step_cost, scale, assets), "bf16_gradient": (bf16_gradient, scale, assets),
                        "resume": (resume, scale, assets, root)}
        ray_started: dict = {}
        for part in args.parts:
            if part in needs_assets:
                fn, *fargs = needs_assets[part]
                result["parts"][part] = (run_part(part, fn, *fargs) if made["ok"]
                                         else {"ok": False, "error": "no assets: " + made["error"]})
                continue
            if not ray_started:
                ray_started = run_part("ray", start_ray)
            result["parts"][part] = (run_part(part, packing if part == "packing" else study, scale, root)
                                     if ray_started["ok"] else {"ok": False, "error": "no Ray: " + ray_started["error"]})
        if ray_started and ray_started["ok"]:
            import ray

            ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["seconds"] = time.perf_counter() - t0
    print("\n" + table(result))
    print(f"\n{len(result['parts'])} parts, {sum(not o['ok'] for o in result['parts'].values())} failed, "
          f"{result['seconds']:.0f} s; figures in {args.out}")
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, default=str)
    return 0 if all(o["ok"] for o in result["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
