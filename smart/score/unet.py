"""The diffusers score backend: a frozen `UNet2DModel` and the schedule of its scheduler.

A model directory has the `save_pretrained` layout — `unet/` and `scheduler/` subfolders, or the
UNet's and scheduler's configs side by side in one folder — or `score.path` is a hub id (online only).
Weights load through diffusers (safetensors, or torch.load with weights_only=True). A UNet config
naming `ADMUNet2DModel` (an OpenAI ADM converted by smart.score.convert_adm) loads as that class.
A model whose metadata records its class order (`class_wnids`) is fed the data's labels mapped into
that order.
"""
from __future__ import annotations

import contextlib
import json
import os

import torch
from diffusers import DDPMScheduler, UNet2DModel

from smart.errors import ConfigError
from smart.registry import resolve
from smart.score import is_hub_id, missing_model_error
from smart.score.base import ScoreModel
from smart.score.schedule import Schedule

META_FILE = "smart_score.json"  # written by smart.score.pretrain: null class, training data
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _subfolders(path: str) -> tuple[str | None, str | None]:
    """(unet subfolder, scheduler subfolder) of a local model directory."""
    if os.path.isfile(os.path.join(path, "unet", "config.json")):
        return "unet", "scheduler"
    if os.path.isfile(os.path.join(path, "config.json")):
        return None, None
    raise ConfigError("score.path", f"{path} holds no diffusers UNet (expected unet/config.json or config.json)")


def load_unet_and_scheduler(path: str):
    """(UNet2DModel, scheduler) from a local directory or a hub id; problems are ConfigErrors."""
    if os.path.isdir(path):
        unet_sub, sched_sub = _subfolders(path)
    elif is_hub_id(path):
        unet_sub, sched_sub = "unet", "scheduler"
    else:
        raise missing_model_error(path)
    unet_cls = UNet2DModel
    if os.path.isdir(path):
        from smart.score.adm import unet_class

        with open(os.path.join(path, unet_sub or "", "config.json"), encoding="utf-8") as fh:
            unet_cls = unet_class(json.load(fh))
    try:
        unet = unet_cls.from_pretrained(path, subfolder=unet_sub, low_cpu_mem_usage=False)
        sched_config = DDPMScheduler.load_config(path, subfolder=sched_sub)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("score.path", f"cannot load a diffusers UNet2DModel + scheduler from {path}: {first}") from None
    try:  # the scheduler class the config names, looked up under the import lock (diffusers is lazy)
        scheduler_cls = resolve(f"diffusers:{sched_config.get('_class_name') or 'DDPMScheduler'}")
    except AttributeError:
        scheduler_cls = DDPMScheduler
    return unet, scheduler_cls.from_config(sched_config)


class DiffusersScore(ScoreModel):
    """ε_θ(x_t, t, c) of a UNet2DModel: ε- or v-prediction (v converted to ε), learned-variance
    outputs sliced to the first C channels, optional autocast on CUDA. `class_map[c]` is the model's
    index of the data's class c, where the two number their classes differently."""

    def __init__(self, unet, scheduler, *, prediction: str = "auto", learned_variance: bool | None = None,
                 autocast: str = "none", null_class: int | None = None, class_map: list[int] | None = None):
        super().__init__()
        self.unet = unet
        self.register_buffer("class_map", None if class_map is None else torch.tensor(class_map), persistent=False)
        self.schedule = Schedule.from_scheduler(scheduler)
        self.prediction = scheduler.config.get("prediction_type", "epsilon") if prediction == "auto" else prediction
        if self.prediction not in ("epsilon", "v_prediction"):
            raise ConfigError("score.prediction", f"the scheduler predicts {self.prediction!r}; "
                              "supported: epsilon, v_prediction")
        c_in, c_out = unet.config.in_channels, unet.config.out_channels
        self.learned_variance = c_out == 2 * c_in if learned_variance is None else learned_variance
        if c_out != (2 if self.learned_variance else 1) * c_in:
            raise ConfigError("score.learned_variance", f"the UNet maps {c_in} to {c_out} channels, which does "
                              f"not fit learned_variance={self.learned_variance}")
        self.channels = c_in
        self.class_conditional = unet.config.num_class_embeds is not None or unet.config.class_embed_type is not None
        self.null_class = null_class
        self.autocast_dtype = _AUTOCAST.get(autocast)

    def eps(self, x_t, t, labels=None):
        if not self.class_conditional:
            labels = None
        elif labels is None:
            labels = torch.full((x_t.shape[0],), self.null_class, dtype=torch.long, device=x_t.device)
        elif self.class_map is not None:
            labels = self.class_map[labels]
        use_autocast = self.autocast_dtype is not None and x_t.is_cuda
        ctx = torch.autocast("cuda", dtype=self.autocast_dtype) if use_autocast else contextlib.nullcontext()
        with ctx:
            out = self.unet(x_t, t, class_labels=labels).sample
        out = out[:, : self.channels].to(x_t.dtype)
        if self.prediction == "v_prediction":  # v = α ε − σ x0 and x_t = α x0 + σ ε  =>  ε = σ x_t + α v
            alpha, sigma = self.schedule.alpha_sigma(t, x_t.dtype)
            shape = (-1,) + (1,) * (x_t.dim() - 1)
            out = sigma.view(shape) * x_t + alpha.view(shape) * out
        return out


def read_meta(path: str) -> dict:
    meta = os.path.join(path, META_FILE)
    if not os.path.isfile(meta):
        return {}
    with open(meta, encoding="utf-8") as fh:
        return json.load(fh)


def class_map(meta: dict, dataset, path: str) -> list[int] | None:
    """The data's class indices in the score model's numbering, when the model records its class
    order (`class_wnids`); an error when the data declares none to match it against."""
    model_order = meta.get("class_wnids")
    if model_order is None or not dataset.conditional:
        return None
    data_order = getattr(dataset, "class_order", None)
    if data_order is None:
        raise ConfigError("data.kind", f"the score model at {path} numbers its classes in the "
                          f"{meta.get('class_order', 'recorded')} order, and data.kind {dataset.name} declares no "
                          "class order to map its labels by (imagenet64 does)")
    from smart.data.imagenet_classes import label_map

    mapping = label_map(list(data_order), model_order, "data.path")
    return None if mapping == list(range(len(mapping))) else mapping


def build_diffusers_score(cfg, dataset) -> DiffusersScore:
    """Load score.path and check it against the data and config (ConfigErrors name the key)."""
    s = cfg.score
    unet, scheduler = load_unet_and_scheduler(s.path)
    meta = read_meta(s.path)
    model = DiffusersScore(unet, scheduler, prediction=s.prediction, learned_variance=s.learned_variance,
                           autocast=s.autocast, null_class=meta.get("null_class"),
                           class_map=class_map(meta, dataset, s.path))
    steps = len(model.schedule)
    if steps != s.num_timesteps:
        raise ConfigError("score.num_timesteps", f"the score model at {s.path} has {steps} steps; set "
                          f"score.num_timesteps: {steps}")
    if model.channels != dataset.channels or unet.config.sample_size not in (dataset.resolution, None):
        raise ConfigError("score.path", f"the score model at {s.path} is for {unet.config.sample_size}px "
                          f"{model.channels}-channel images; the data is {dataset.resolution}px "
                          f"{dataset.channels}-channel")
    if model.class_conditional and not dataset.conditional and model.null_class is None:
        raise ConfigError("data.conditional", f"the score model at {s.path} is class-conditional with no "
                          "unconditional class; set data.conditional: true")
    return model.freeze()
