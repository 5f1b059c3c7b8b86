"""`python -m smart.score.convert_adm CHECKPOINT --out DIR [--preset NAME]`: convert an OpenAI ADM
checkpoint (guided-diffusion's released models, improved-diffusion's too) into the diffusers layout
that `score.kind: diffusers` loads: DIR/unet (UNet2DModel), DIR/scheduler (DDPMScheduler: the ADM
schedule, epsilon prediction, learned-range variance when σ is learned) and DIR/smart_score.json
(provenance: source file and sha256, the architecture read from the state dict, the flags used,
schedule, class order).

The state dict determines the architecture. What it cannot tell comes from `--preset` (one per
model OpenAI released; the checkpoint must then match that model) or from the flags `--schedule`,
`--attention-order` and `--num-heads`/`--num-head-channels`, which override a preset's.
The checkpoint is read with torch.load(weights_only=True); bad input is one line `error: ...`, exit
code 2, and nothing at --out. DIR appears atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass

import torch

from smart.cli import parser as cli_parser
from smart.cli import run
from smart.config import ConfigError
from smart.score.adm import ADMArch, Attention, build_unet, convert_state_dict, infer_architecture, unet_config



@dataclass(frozen=True)
class Preset:
    """A released guided-diffusion model: its file, README MODEL_FLAGS, and create_model's
    channel_mult for its image size."""

    file: str
    image_size: int
    num_channels: int
    channel_mult: tuple[float, ...]
    num_res_blocks: int
    class_cond: bool
    schedule: str
    attention_order: str
    num_heads: int | None = None
    num_head_channels: int | None = None
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    dropout: float = 0.0

    def arch(self) -> ADMArch:
        """The architecture these flags give (learn_sigma, resblock_updown and scale-shift norm are on
        in every release)."""
        return ADMArch(in_channels=3, out_channels=6, model_channels=self.num_channels,
                       block_channels=tuple(int(m * self.num_channels) for m in self.channel_mult),
                       num_res_blocks=self.num_res_blocks,
                       attention_levels=tuple(sorted(
                           l for l in range(len(self.channel_mult))
                           if self.image_size // 2 ** l in self.attention_resolutions)),
                       num_classes=1000 if self.class_cond else None, scale_shift=True, resblock_updown=True)


_256 = dict(image_size=256, num_channels=256, channel_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
            schedule="linear", attention_order="legacy", num_head_channels=64)
PRESETS = {  # github.com/openai/guided-diffusion README, "Sampling from pre-trained models"
    "imagenet64": Preset("64x64_diffusion.pt", 64, 192, (1, 2, 3, 4), 3, True, "cosine", "new",
                         num_head_channels=64, dropout=0.1),
    "imagenet128": Preset("128x128_diffusion.pt", 128, 256, (1, 1, 2, 3, 4), 2, True, "linear", "legacy",
                          num_heads=4),
    "imagenet256": Preset("256x256_diffusion.pt", class_cond=True, **_256),
    "imagenet256-uncond": Preset("256x256_diffusion_uncond.pt", class_cond=False, **_256),
    "imagenet512": Preset("512x512_diffusion.pt", 512, 256, (0.5, 1, 1, 2, 2, 4, 4), 2, True, "linear", "legacy",
                          num_head_channels=64),
    "lsun": Preset("lsun_bedroom.pt, lsun_cat.pt, lsun_horse.pt", class_cond=False, dropout=0.1, **_256),
}


def _parser():
    p = cli_parser("python -m smart.score.convert_adm", __doc__)
    p.add_argument("checkpoint", help="the .pt state dict (e.g. 64x64_diffusion.pt)")
    p.add_argument("--out", required=True, help="new model directory (score.path)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="the released model it is; sets the flags below")
    p.add_argument("--schedule", choices=("cosine", "linear"), help="the noise schedule it was trained with")
    p.add_argument("--attention-order", choices=("new", "legacy"),
                   help="use_new_attention_order True (new) or False (legacy; improved-diffusion)")
    heads = p.add_mutually_exclusive_group()
    heads.add_argument("--num-heads", type=int, help="heads per attention layer (num_heads)")
    heads.add_argument("--num-head-channels", type=int, help="channels per head (num_head_channels)")
    p.add_argument("--image-size", type=int, help="the image side it was trained at (the UNet's sample_size)")
    p.add_argument("--timesteps", type=int, default=1000, help="diffusion_steps (default 1000)")
    p.add_argument("--rescale-timesteps", action="store_true",
                   help="the network saw t·1000/timesteps (improved-diffusion's default rescale_timesteps)")
    p.add_argument("--class-order", help="how its class indices map to ImageNet wnids: wnid-sorted (guided-"
                   "diffusion; the default for 1000 classes), none, or a class-map file (wnid per class index)")
    return p


def load_state_dict(path: str) -> dict:
    """A plain {name: tensor} dict through torch.load(weights_only=True) (memory-mapped when the
    file allows); anything else is a ConfigError("checkpoint")."""
    if not os.path.isfile(path):
        raise ConfigError("checkpoint", f"no such file: {path}")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if not str(exc).startswith("mmap can only be used"):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a clean checkpoint
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        refused = [ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln]
        if refused or "Weights only load failed" in str(exc):
            why = refused[0] if refused else (lines[0] if lines else type(exc).__name__)
            raise ConfigError("checkpoint", f"{path} is not a plain state dict; torch.load(weights_only=True) "
                              f"refused it: {why}") from None
        why = lines[0][:200] if lines else type(exc).__name__
        raise ConfigError("checkpoint", f"cannot read {path} (truncated, or not a PyTorch file): {why}") from None
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        what = f"a dict with keys {sorted(map(str, obj))[:4]}" if isinstance(obj, dict) else type(obj).__name__
        raise ConfigError("checkpoint", f"{path} holds {what}, not a state dict of tensors")
    return obj


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_flags(args, arch: ADMArch) -> dict:
    """The flags the state dict cannot tell: the preset's, overridden by explicit ones; the preset's
    architecture must be the checkpoint's."""
    preset = PRESETS.get(args.preset)
    flags = {"schedule": None, "attention_order": None, "num_heads": None, "num_head_channels": None,
             "image_size": None, "dropout": 0.0}
    if preset:
        expected = preset.arch()
        diff = [f"{k} {getattr(arch, k)} (expected {getattr(expected, k)})" for k in vars(expected)
                if getattr(arch, k) != getattr(expected, k)]
        if diff:
            raise ConfigError("--preset", f"the checkpoint is not {args.preset} ({preset.file}): {'; '.join(diff)}")
        flags.update({k: getattr(preset, k) for k in flags})
    if args.num_heads is not None or args.num_head_channels is not None:
        flags.update(num_heads=args.num_heads, num_head_channels=args.num_head_channels)
    for key in ("schedule", "attention_order", "image_size"):
        if getattr(args, key) is not None:
            flags[key] = getattr(args, key)
    for key, flag in (("schedule", "--schedule"), ("attention_order", "--attention-order")):
        if flags[key] is None:
            raise ConfigError(flag, "required without --preset (the state dict does not tell it)")
    if flags["num_heads"] is None and flags["num_head_channels"] is None:
        raise ConfigError("--num-heads", "give --num-heads or --num-head-channels (or --preset)")
    if args.timesteps < 2:
        raise ConfigError("--timesteps", f"must be at least 2, got {args.timesteps}")
    flags.update(timesteps=args.timesteps, rescale_timesteps=args.rescale_timesteps)
    return flags


def class_order(args, arch: ADMArch) -> tuple[str | None, list[str] | None]:
    """(name, wnid per class index) of the model's classes, or (None, None)."""
    from smart.data.imagenet_classes import named_order, read_class_map

    choice = args.class_order or ("wnid-sorted" if arch.num_classes == 1000 else "none")
    if choice == "none":
        return None, None
    if arch.num_classes is None:
        raise ConfigError("--class-order", "the model is unconditional")
    wnids = named_order(choice) if choice == "wnid-sorted" else read_class_map(choice, "--class-order")
    if len(wnids) != arch.num_classes:
        raise ConfigError("--class-order", f"{choice} names {len(wnids)} classes; the model has {arch.num_classes}")
    return (choice if choice == "wnid-sorted" else os.path.basename(choice)), wnids


def scheduler_for(flags: dict, learned_sigma: bool):
    """diffusers' DDPMScheduler with ADM's betas (get_named_beta_schedule: the linear one scaled by
    1000/T)."""
    from diffusers import DDPMScheduler

    from smart.score.schedule import DIFFUSERS_NAMES

    scale = 1000 / flags["timesteps"]
    extra = {"beta_start": 1e-4 * scale, "beta_end": 0.02 * scale} if flags["schedule"] == "linear" else {}
    return DDPMScheduler(num_train_timesteps=flags["timesteps"], beta_schedule=DIFFUSERS_NAMES[flags["schedule"]],
                         prediction_type="epsilon", variance_type="learned_range" if learned_sigma else "fixed_small",
                         **extra)


def convert(args) -> dict:
    """Read, check, convert; write DIR atomically; the provenance record."""
    from smart.score.pretrain import save_atomically

    out = args.out
    if os.path.exists(out):
        raise ConfigError("--out", f"{out} already exists; choose another directory or remove it")
    sd = load_state_dict(args.checkpoint)
    arch = infer_architecture(sd)
    flags = resolve_flags(args, arch)
    order_name, wnids = class_order(args, arch)
    attention = Attention(flags["attention_order"], flags["num_heads"], flags["num_head_channels"])
    scale = 1000 / flags["timesteps"] if flags["rescale_timesteps"] else None
    cls, config = unet_config(arch, attention, sample_size=flags["image_size"], dropout=flags["dropout"],
                              timestep_scale=scale)
    unet = build_unet(cls, config, convert_state_dict(sd, arch, attention))
    del sd
    scheduler = scheduler_for(flags, arch.learned_sigma)
    meta = {"null_class": None, "converted_by": "smart.score.convert_adm", "preset": args.preset,
            "source": {"file": os.path.basename(args.checkpoint), "sha256": sha256(args.checkpoint),
                       "bytes": os.path.getsize(args.checkpoint)},
            "architecture": arch.describe(flags["image_size"]), "unet_class": cls.__name__,
            "parameters": sum(p.numel() for p in unet.parameters()), "flags": flags,
            "schedule": flags["schedule"], "num_timesteps": flags["timesteps"], "prediction": "epsilon",
            "variance": scheduler.config.variance_type, "class_order": order_name, "class_wnids": wnids}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_atomically(unet, scheduler, meta, out)
    return meta


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    meta = convert(args)
    keys = ("preset", "unet_class", "parameters", "schedule", "variance", "class_order", "source")
    print(json.dumps({"out": args.out, **{k: meta[k] for k in keys}}))
    return 0


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
