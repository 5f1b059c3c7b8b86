"""`python -m smart.score.pretrain CONFIG.yaml [--set key=value ...] [--out DIR]`: train a small
class-conditional DDPM (`UNet2DModel` + diffusers' `DDPMScheduler`) on a dataset and save it in the
layout the diffusers score backend loads, so that every study runs offline.

CONFIG is a run config or a study file (its `config:` section), with the same `--set` keys as
everything else: the data (data.*), the schedule (score.schedule, score.num_timesteps,
score.prediction) and the pretraining (score.pretrain.steps, .channels, .batch_size, ...). --out
(default score.path) is the new model directory. `--data KIND` sets data.kind; without CONFIG the
run config is just that dataset and a diffusers score model, e.g.
`python -m smart.score.pretrain --data digits --set score.pretrain.steps=1500 --out runs/score/digits-8px`.

Labels are dropped 10% of the time into an extra "null" class, so one model serves conditional and
unconditional GANs. The directory appears atomically (written to a temp dir, then renamed).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections import deque

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel

from smart import cli, progress
from smart.config import RunConfig
from smart.data import build_dataset
from smart.devices import config_device
from smart.errors import ConfigError
from smart.score.schedule import DIFFUSERS_NAMES
from smart.score.unet import META_FILE

log = logging.getLogger(__name__)
LABEL_DROPOUT = 0.1


def make_unet(resolution: int, channels: int, widths, layers_per_block: int, num_class_embeds: int | None):
    if resolution % 2 ** (len(widths) - 1):
        raise ConfigError("score.pretrain.channels", f"{len(widths)} levels need a resolution divisible by "
                          f"{2 ** (len(widths) - 1)}, got {resolution}")
    return UNet2DModel(sample_size=resolution, in_channels=channels, out_channels=channels,
                       block_out_channels=tuple(widths), layers_per_block=layers_per_block,
                       down_block_types=("DownBlock2D",) * len(widths), up_block_types=("UpBlock2D",) * len(widths),
                       norm_num_groups=8, num_class_embeds=num_class_embeds)


def partial_path(out: str) -> str:
    """Where an interrupted pretraining of `out` keeps its resumable state."""
    return f"{out.rstrip('/')}.partial.pt"


def _mean(losses) -> float:
    """The mean of recent loss tensors (one host sync)."""
    return float(torch.stack(list(losses)).double().mean())


def pretrain(cfg: RunConfig, dataset, out: str) -> dict:
    """Train per `cfg.score` (schedule, num_timesteps, prediction, pretrain.*) on `dataset`; save to
    `out`. Runs on `cfg.device` (bf16 autocast on CUDA when score.pretrain.autocast says so), keeps a
    resumable state every pretrain.checkpoint_every steps and resumes from it when one exists."""
    s, p = cfg.score, cfg.score.pretrain
    if os.path.exists(out):
        raise ConfigError("--out", f"{out} already exists; choose another directory or remove it")
    device = config_device(cfg.device)
    prediction = "epsilon" if s.prediction == "auto" else s.prediction
    scheduler = DDPMScheduler(num_train_timesteps=s.num_timesteps, beta_schedule=DIFFUSERS_NAMES[s.schedule],
                              prediction_type=prediction)
    null_class = dataset.num_labels if dataset.num_labels else None
    torch.manual_seed(p.seed)
    unet = make_unet(dataset.resolution, dataset.channels, p.channels, p.layers_per_block,
                     null_class + 1 if null_class is not None else None).to(device)
    gen = torch.Generator().manual_seed(p.seed)
    opt = torch.optim.AdamW(unet.parameters(), lr=p.lr, weight_decay=0.0)
    lr_sched = get_cosine_schedule_with_warmup(opt, min(200, p.steps // 10), p.steps)
    ema = EMAModel(unet.parameters(), use_ema_warmup=True, power=2 / 3)
    first, recent = 0, deque(maxlen=100)  # the last losses, as tensors: read them only when logging
    partial = partial_path(out)
    if os.path.isfile(partial):
        state = torch.load(partial, map_location="cpu", weights_only=True)
        if state["settings"] != p.model_dump() or state["data"] != dataset.cache_key():
            raise ConfigError("--out", f"{partial} holds a pretraining with other settings or data; remove it")
        unet.load_state_dict(state["unet"])
        opt.load_state_dict(state["opt"])
        lr_sched.load_state_dict(state["lr_sched"])
        ema.load_state_dict(state["ema"])
        ema.to(device)
        gen.set_state(state["gen"])
        first = state["step"]
        recent.extend(torch.tensor(v) for v in state["recent"])
        log.info("pretraining resumes at step %d from %s", first, partial)
    alphas = scheduler.alphas_cumprod.to(device)
    scheduler.alphas_cumprod = alphas  # add_noise and get_velocity index it on the batch's device
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if p.autocast == "bf16" and device.type == "cuda" \
        else contextlib.nullcontext()
    start = time.perf_counter()
    bar = progress.bar(p.steps, "score pretraining")
    bar.update(first)
    for step in range(first, p.steps):
        idx = torch.randint(len(dataset), (p.batch_size,), generator=gen)
        x0 = dataset.uint8(idx.numpy()).float() / 127.5 - 1
        labels = None
        if null_class is not None:
            labels = dataset.labels[idx].clone()
            labels[torch.rand(p.batch_size, generator=gen) < LABEL_DROPOUT] = null_class
            labels = labels.to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        t = torch.randint(0, s.num_timesteps, (p.batch_size,), generator=gen).to(device)
        x0 = x0.to(device)
        target = noise if prediction == "epsilon" else scheduler.get_velocity(x0, noise, t)
        with amp:
            pred = unet(scheduler.add_noise(x0, noise, t), t, class_labels=labels).sample
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_sched.step()
        ema.step(unet.parameters())
        recent.append(loss.detach())
        bar.update()
        if (step + 1) % max(1, p.steps // 10) == 0 or step + 1 == p.steps:
            log.info("pretrain step %d/%d loss %.4f (%.0fs)", step + 1, p.steps, _mean(recent),
                     time.perf_counter() - start)
        if (step + 1) % p.checkpoint_every == 0 and step + 1 < p.steps:
            tmp = f"{partial}.tmp{os.getpid()}"
            torch.save({"settings": p.model_dump(), "data": dataset.cache_key(), "step": step + 1,
                        "recent": torch.stack(list(recent)).tolist(),
                        "unet": unet.state_dict(), "opt": opt.state_dict(), "lr_sched": lr_sched.state_dict(),
                        "ema": ema.state_dict(), "gen": gen.get_state()}, tmp)
            os.replace(tmp, partial)
    bar.close()
    ema.copy_to(unet.parameters())
    scheduler.alphas_cumprod = alphas.cpu()
    meta = {"null_class": null_class, "data": dataset.cache_key(), "steps": p.steps,
            "final_loss": _mean(recent) if recent else None, "settings": p.model_dump(),
            "schedule": s.schedule, "prediction": prediction}
    save_atomically(unet.cpu(), scheduler, meta, out)
    if os.path.exists(partial):
        os.remove(partial)
    return meta


def save_atomically(unet, scheduler, meta: dict, out: str) -> None:
    tmp = f"{out.rstrip('/')}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(os.path.join(tmp, "unet"))
    scheduler.save_pretrained(os.path.join(tmp, "scheduler"))
    with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
    try:
        os.rename(tmp, out)
    except OSError:  # someone else finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(out):
            raise


def pretrain_config(args) -> tuple[RunConfig, str]:
    """The run config the command line describes, and the key that names the output directory."""
    if args.config is None and args.data is None:
        raise ConfigError("usage", "give a run config or study file, or --data KIND")
    sets = cli.overrides(args.sets)
    if args.data is not None:
        sets["data.kind"] = args.data
    out = {"score.path": args.out} if args.out is not None else {}
    if args.config is None:
        if not out:
            raise ConfigError("--out", "required with --data alone: the new model directory")
        cfg = RunConfig.from_dict({"score": {"kind": "diffusers"}, "eval": {"metrics": []}}, {**sets, **out})
    else:
        cfg = cli.run_config(args.config, sets)
        if cfg.score.kind != "diffusers":
            raise ConfigError("score.kind", f"score pretraining writes a diffusers UNet; the config has {cfg.score.kind}")
        cfg = cfg.with_overrides(out)
    if cfg.score.pretrain.steps == 0:
        raise ConfigError("score.pretrain.steps", "0 trains nothing; set it, e.g. --set score.pretrain.steps=3000")
    return cfg, "--out" if out else "score.path"


def _main(argv) -> int:
    p = cli.parser("python -m smart.score.pretrain", __doc__)
    p.add_argument("config", nargs="?", help="run config or study YAML (optional with --data)")
    p.add_argument("--data", help="data.kind (digits, mnist5k, fashion_mnist, image_folder, npz, imagenet64)")
    p.add_argument("--out", help="new model directory (default: score.path)")
    cli.add_set_option(p, "score.pretrain.steps=1500")
    cfg, out_key = pretrain_config(p.parse_args(argv))
    out = cfg.score.path
    if os.path.exists(out):
        raise ConfigError(out_key, f"{out} already exists; choose another directory or remove it")
    meta = pretrain(cfg, build_dataset(cfg), out)
    print(json.dumps({"out": out, **meta}))
    return 0


def main(argv=None) -> int:
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
