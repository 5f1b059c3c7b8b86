"""OpenAI's ADM UNet (guided-diffusion, improved-diffusion) as a diffusers `UNet2DModel`.

Three parts: `infer_architecture` reads everything a checkpoint's state dict determines (widths, res
blocks per level, attention levels, classes, scale-shift norm, resblock up/down sampling);
`convert_state_dict` renames and reshapes its tensors onto `UNet2DModel`'s layout; `unet_config`
writes the diffusers config. What shapes cannot tell — the attention head split and q/k/v order,
the schedule — comes in an `Attention` spec from the caller.

`UNet2DModel` expresses ADM exactly except for three traits, which `ADMUNet2DModel` adds as config
keys (and which are only used when a model needs them, so most conversions stay plain
`UNet2DModel`s): a fixed head count whose head size changes with the width (ADM-128's
`num_heads 4`), a timestep embedding wider than the first level (ADM-512's `channel_mult` 0.5), and
improved-diffusion's timestep rescaling (t·1000/T for T ≠ 1000).

`adm_unet` builds a fresh ADM-like UNet (attention at chosen resolutions, scale-shift norm,
resblock up/down sampling) from the same config writer, for users who train their own.
"""
from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import torch
from diffusers import UNet2DModel
from diffusers.models.attention_processor import Attention as _DiffusersAttention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps

from smart.config import ConfigError

GROUPS = 32  # ADM's GroupNorm32 everywhere
_RES = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
        "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


@dataclass(frozen=True)
class ADMArch:
    """An ADM UNet's topology, as its state dict determines it."""

    in_channels: int
    out_channels: int
    model_channels: int                 # ADM's num_channels: the sinusoidal timestep embedding's width
    block_channels: tuple[int, ...]     # per level, full resolution first (= channel_mult · model_channels)
    num_res_blocks: int
    attention_levels: tuple[int, ...]   # levels with attention; level l works at 1/2**l of the image side
    num_classes: int | None
    scale_shift: bool                   # use_scale_shift_norm
    resblock_updown: bool               # ResBlocks resample (else strided conv down, nearest + conv up)

    @property
    def learned_sigma(self) -> bool:
        return self.out_channels == 2 * self.in_channels

    @property
    def channel_mult(self) -> tuple[float, ...]:
        return tuple(c / self.model_channels for c in self.block_channels)

    def attention_widths(self) -> list[int]:
        """Channel widths of every attention layer (levels with attention, and the middle block)."""
        return [self.block_channels[l] for l in self.attention_levels] + [self.block_channels[-1]]

    def describe(self, image_size: int | None = None) -> dict:
        out = asdict(self)
        out.update(learned_sigma=self.learned_sigma, channel_mult=list(self.channel_mult),
                   attention_downsample_rates=[2 ** l for l in self.attention_levels])
        if image_size:
            out["attention_resolutions"] = [image_size // 2 ** l for l in self.attention_levels]
        return out


@dataclass(frozen=True)
class Attention:
    """How ADM splits an attention layer's qkv projection: heads by count (`num_heads`, ADM-128) or
    by size (`num_head_channels`), and the q/k/v order ("legacy": per head q,k,v interleaved;
    "new": q, k, v first, then heads)."""

    order: str
    num_heads: int | None = None
    num_head_channels: int | None = None

    def __post_init__(self):
        if self.order not in ("new", "legacy"):
            raise ConfigError("--attention-order", f"new or legacy, got {self.order!r}")
        if (self.num_heads is None) == (self.num_head_channels is None):
            raise ConfigError("--num-heads", "give exactly one of --num-heads and --num-head-channels")
        if (self.num_heads or self.num_head_channels) < 1:
            raise ConfigError("--num-heads", "must be positive")

    def heads(self, width: int) -> int:
        if self.num_head_channels is not None:
            if width % self.num_head_channels:
                raise ConfigError("--num-head-channels", f"{self.num_head_channels} does not divide an attention "
                                  f"layer of {width} channels")
            return width // self.num_head_channels
        if width % self.num_heads:
            raise ConfigError("--num-heads", f"{self.num_heads} heads do not divide an attention layer of "
                              f"{width} channels")
        return self.num_heads


class ADMUNet2DModel(UNet2DModel):
    """`UNet2DModel` plus three ADM traits as config keys: `attention_heads` (one head count for every
    attention layer, its head size following the width), `time_proj_dim` (sinusoidal embedding width
    when it is not the first level's) and `timestep_scale` (the network sees t·scale)."""

    def __init__(self, attention_heads: int | None = None, time_proj_dim: int | None = None,
                 timestep_scale: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.register_to_config(attention_heads=attention_heads, time_proj_dim=time_proj_dim,
                                timestep_scale=timestep_scale)
        if time_proj_dim is not None or timestep_scale is not None:
            dim = time_proj_dim or self.time_embedding.linear_1.in_features
            self.time_proj = Timesteps(dim, self.config.flip_sin_to_cos, self.config.freq_shift,
                                       scale=timestep_scale or 1)
            if dim != self.time_embedding.linear_1.in_features:
                self.time_embedding = TimestepEmbedding(dim, self.time_embedding.linear_2.out_features)
        if attention_heads is not None:
            for module in self.modules():
                if isinstance(module, _DiffusersAttention):
                    module.heads = module.sliceable_head_dim = attention_heads
                    module.scale = (module.inner_dim // attention_heads) ** -0.5


# diffusers builds a model from its config by the names in __init__'s signature: show it all of them.
ADMUNet2DModel.__init__.__signature__ = inspect.signature(UNet2DModel.__init__).replace(parameters=[
    *inspect.signature(UNet2DModel.__init__).parameters.values(),
    *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
      for name in ("attention_heads", "time_proj_dim", "timestep_scale"))])


def unet_class(config: dict):
    """The class a saved UNet config names: ours for ADM-specific configs, else diffusers'."""
    return ADMUNet2DModel if config.get("_class_name") == ADMUNet2DModel.__name__ else UNet2DModel


# ---- reading a checkpoint ------------------------------------------------------------------------

def _bad(why: str) -> ConfigError:
    return ConfigError("checkpoint", why)


def _kind(rest: set[str]) -> str:
    """What an element of a TimestepEmbedSequential is, from its parameter names."""
    if "in_layers.0.weight" in rest:
        return "res"
    if "qkv.weight" in rest:
        return "attn"
    for kind, names in (("down", {"op.weight", "op.bias"}), ("up", {"conv.weight", "conv.bias"}),
                        ("conv", {"weight", "bias"})):
        if rest <= names:
            return kind
    raise _bad(f"unknown layer with parameters {sorted(rest)[:4]}")


def _numbered(items: dict, what: str) -> list:
    if sorted(items) != list(range(len(items))):
        raise _bad(f"{what} are not numbered 0..n")
    return [items[i] for i in range(len(items))]


def _blocks(sd: dict, prefix: str, depth: int = 2) -> list:
    """The kinds of the modules under `prefix`: `prefix.i.j.<param>` -> [[kind of j in block i, ...], ...]
    (depth 2), `prefix.j.<param>` -> [kind of j, ...] (depth 1)."""
    found: dict = {}
    for key in sd:
        if key.startswith(prefix + "."):
            parts = key[len(prefix) + 1:].split(".", depth)
            if len(parts) <= depth or not all(p.isdigit() for p in parts[:depth]):
                raise _bad(f"unexpected key {key}")
            found.setdefault(tuple(int(p) for p in parts[:depth]), set()).add(parts[depth])
    if depth == 1:
        return _numbered({j: _kind(rest) for (j,), rest in found.items()}, prefix)
    blocks: dict = {}
    for (i, j), rest in found.items():
        blocks.setdefault(i, {})[j] = _kind(rest)
    return [_numbered(block, f"{prefix}.{i}") for i, block in enumerate(_numbered(blocks, prefix))]


def infer_architecture(sd: dict) -> ADMArch:
    """The topology a guided-/improved-diffusion UNet state dict determines; ConfigError("checkpoint")
    when it is not one."""
    required = ("time_embed.0.weight", "time_embed.2.weight", "input_blocks.0.0.weight")
    missing = [k for k in required if k not in sd]
    if missing:
        heads = sorted({k.split(".")[0] for k in sd})[:6]
        raise _bad(f"not an ADM (guided-/improved-diffusion) UNet state dict: no {missing[0]} "
                   f"(top-level names: {', '.join(heads) or 'none'})")
    inputs, outputs = _blocks(sd, "input_blocks"), _blocks(sd, "output_blocks")
    if not outputs or "out.2.weight" not in sd:
        raise _bad("no output_blocks or out.2: an encoder (an ADM classifier?), not a UNet")
    if _blocks(sd, "middle_block", depth=1) != ["res", "attn", "res"]:
        raise _bad("the middle block is not ResBlock, AttentionBlock, ResBlock")
    has_up = [len(b) > 1 and b[-1] in ("res", "up") for b in outputs]
    levels = sum(has_up) + 1
    per_level, rest = divmod(len(outputs), levels)
    nrb = per_level - 1
    if rest or nrb < 1 or any(has_up[i] != ((i + 1) % per_level == 0 and i + 1 < len(outputs))
                              for i in range(len(outputs))):
        raise _bad(f"{len(outputs)} output blocks with {sum(has_up)} upsamplers do not form a UNet")
    if inputs[0] != ["conv"] or len(inputs) != 1 + levels * nrb + levels - 1:
        raise _bad(f"{len(inputs)} input blocks do not fit {levels} levels of {nrb} res blocks")

    block_channels, attention = [], []
    for level in range(levels):
        first = 1 + level * (nrb + 1)
        kinds = {tuple(inputs[first + j]) for j in range(nrb)}
        ups = {tuple(outputs[(levels - 1 - level) * per_level + j][:2]) for j in range(per_level)}
        if kinds not in ({("res",)}, {("res", "attn")}) or any(u[0] != "res" for u in ups):
            raise _bad(f"level {level} mixes blocks {sorted(kinds)}")
        with_attn = kinds == {("res", "attn")}
        if with_attn != all(len(u) > 1 and u[1] == "attn" for u in ups):
            raise _bad(f"level {level} has attention on one side of the UNet only")
        if with_attn:
            attention.append(level)
        block_channels.append(int(sd[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0]))
    downs = {inputs[1 + level * (nrb + 1) + nrb][0] for level in range(levels - 1)}
    ups = {outputs[(g + 1) * per_level - 1][-1] for g in range(levels - 1)}
    if (downs, ups) not in (({"res"}, {"res"}), ({"down"}, {"up"}), (set(), set())):
        raise _bad(f"down- and upsampling layers are of mixed kinds ({sorted(downs)}, {sorted(ups)})")
    conv_in = sd["input_blocks.0.0.weight"]
    if conv_in.shape[0] != block_channels[0]:
        raise _bad(f"the input conv has {conv_in.shape[0]} channels, the first level {block_channels[0]}")
    emb = sd["input_blocks.1.0.emb_layers.1.weight"].shape[0]
    label = sd.get("label_emb.weight")
    return ADMArch(in_channels=int(conv_in.shape[1]), out_channels=int(sd["out.2.weight"].shape[0]),
                   model_channels=int(sd["time_embed.0.weight"].shape[1]), block_channels=tuple(block_channels),
                   num_res_blocks=nrb, attention_levels=tuple(attention),
                   num_classes=int(label.shape[0]) if label is not None else None,
                   scale_shift=emb == 2 * block_channels[0], resblock_updown=downs == {"res"})


# ---- the diffusers model ---------------------------------------------------------------------------

def unet_config(arch: ADMArch, attention: Attention, *, sample_size: int | None = None, dropout: float = 0.0,
                timestep_scale: float | None = None) -> tuple[type, dict]:
    """(class, config) of the `UNet2DModel` (or `ADMUNet2DModel` where needed) equal to `arch`."""
    head_sizes = {w // attention.heads(w) for w in arch.attention_widths()}
    resample = "resnet" if arch.resblock_updown else "conv"
    plain_down, plain_up = ("ResnetDownsampleBlock2D", "ResnetUpsampleBlock2D") if arch.resblock_updown else (
        "DownBlock2D", "UpBlock2D")
    levels = range(len(arch.block_channels))
    config = dict(
        sample_size=sample_size, in_channels=arch.in_channels, out_channels=arch.out_channels,
        block_out_channels=list(arch.block_channels), layers_per_block=arch.num_res_blocks,
        down_block_types=["AttnDownBlock2D" if l in arch.attention_levels else plain_down for l in levels],
        up_block_types=["AttnUpBlock2D" if l in arch.attention_levels else plain_up for l in reversed(levels)],
        downsample_type=resample, upsample_type=resample, time_embedding_dim=4 * arch.model_channels,
        flip_sin_to_cos=True, freq_shift=0, norm_num_groups=GROUPS, attn_norm_num_groups=GROUPS, norm_eps=1e-5,
        resnet_time_scale_shift="scale_shift" if arch.scale_shift else "default", dropout=dropout,
        num_class_embeds=arch.num_classes,
        attention_head_dim=head_sizes.pop() if len(head_sizes) == 1 else None)
    extras = {"attention_heads": attention.num_heads if config["attention_head_dim"] is None else None,
              "time_proj_dim": arch.model_channels if arch.model_channels != arch.block_channels[0] else None,
              "timestep_scale": timestep_scale if timestep_scale not in (None, 1, 1.0) else None}
    extras = {k: v for k, v in extras.items() if v is not None}
    return (ADMUNet2DModel, {**config, **extras}) if extras else (UNet2DModel, config)


def build_unet(cls: type, config: dict, state_dict: dict | None = None):
    """The model; with `state_dict`, its tensors become the parameters (no second copy in memory)."""
    if state_dict is None:
        return cls(**config)
    with torch.device("meta"):
        unet = cls(**config)
    unet.load_state_dict(state_dict, strict=True, assign=True)
    return unet


def _module_pairs(arch: ADMArch) -> list[tuple[str, str, str]]:
    """(ADM module, diffusers module, kind) for every module with parameters, in ADM's order."""
    levels, nrb, attn = len(arch.block_channels), arch.num_res_blocks, set(arch.attention_levels)
    resample = "res" if arch.resblock_updown else "conv"
    pairs = [("time_embed.0", "time_embedding.linear_1", "copy"), ("time_embed.2", "time_embedding.linear_2", "copy"),
             ("input_blocks.0.0", "conv_in", "copy"), ("out.0", "conv_norm_out", "copy"), ("out.2", "conv_out", "copy"),
             ("middle_block.0", "mid_block.resnets.0", "res"), ("middle_block.1", "mid_block.attentions.0", "attn"),
             ("middle_block.2", "mid_block.resnets.1", "res")]
    if arch.num_classes is not None:
        pairs.append(("label_emb", "class_embedding", "copy"))
    k = 1
    for level in range(levels):
        for j in range(nrb):
            pairs.append((f"input_blocks.{k}.0", f"down_blocks.{level}.resnets.{j}", "res"))
            if level in attn:
                pairs.append((f"input_blocks.{k}.1", f"down_blocks.{level}.attentions.{j}", "attn"))
            k += 1
        if level < levels - 1:
            pairs.append((f"input_blocks.{k}.0", f"down_blocks.{level}.downsamplers.0", resample))
            k += 1
    k = 0
    for i, level in enumerate(reversed(range(levels))):
        for j in range(nrb + 1):
            pairs.append((f"output_blocks.{k}.0", f"up_blocks.{i}.resnets.{j}", "res"))
            if level in attn:
                pairs.append((f"output_blocks.{k}.1", f"up_blocks.{i}.attentions.{j}", "attn"))
            if level and j == nrb:
                upsampler = f"output_blocks.{k}.{2 if level in attn else 1}"
                pairs.append((upsampler, f"up_blocks.{i}.upsamplers.0", resample))
            k += 1
    return pairs


def _split_qkv(weight: torch.Tensor, heads: int, order: str) -> tuple[torch.Tensor, ...]:
    """ADM's fused qkv (3C, C[, 1]) rows -> q, k, v, each with rows head-major as diffusers reads them."""
    rows = weight.shape[0] // 3
    shape = (3, heads, rows // heads) if order == "new" else (heads, 3, rows // heads)
    w = weight.reshape(*shape, *weight.shape[1:])
    return tuple((w[i] if order == "new" else w[:, i]).reshape(rows, *weight.shape[1:]) for i in range(3))


def convert_state_dict(sd: dict, arch: ADMArch, attention: Attention) -> dict:
    """ADM parameter names and shapes -> the `unet_config(arch, attention)` model's (float32). Every
    ADM tensor must be used: a leftover means the state dict is not the architecture inferred."""
    out, used = {}, set()
    for src, dst, kind in _module_pairs(arch):
        params = {key[len(src) + 1:]: value for key, value in sd.items() if key.startswith(src + ".")}
        if not params:
            raise _bad(f"no parameters under {src}")
        used.update(f"{src}.{name}" for name in params)
        for name, value in params.items():
            value = value.to(torch.float32)
            module, _, param = name.rpartition(".")
            if kind == "res":
                if module not in _RES:
                    raise _bad(f"unexpected ResBlock parameter {src}.{name}")
                out[f"{dst}.{_RES[module]}.{param}"] = value
            elif kind == "attn" and module == "qkv":
                width = value.shape[0] // 3
                for letter, part in zip("qkv", _split_qkv(value, attention.heads(width), attention.order)):
                    part = part.reshape(width, -1) if param == "weight" else part
                    out[f"{dst}.to_{letter}.{param}"] = part.clone()  # own storage: safetensors refuses shared
            elif kind == "attn":
                target = {"norm": "group_norm", "proj_out": "to_out.0"}.get(module)
                if target is None:
                    raise _bad(f"unexpected attention parameter {src}.{name}")
                out[f"{dst}.{target}.{param}"] = value.reshape(value.shape[0], -1) if param == "weight" and \
                    module == "proj_out" else value
            elif kind == "conv":
                out[f"{dst}.conv.{param}"] = value
            else:
                out[f"{dst}.{name}"] = value
    leftover = sorted(set(sd) - used)
    if leftover:
        raise _bad(f"{len(leftover)} tensors do not fit the inferred architecture, e.g. {leftover[0]}")
    return out


def adm_unet(resolution: int, in_channels: int, widths, layers_per_block: int, attention_resolutions,
             *, num_head_channels: int = 64, num_class_embeds: int | None = None, learned_variance: bool = False,
             scale_shift: bool = True, resblock_updown: bool = True, dropout: float = 0.0):
    """A fresh ADM-like `UNet2DModel`: one level per width (full resolution first), attention at the
    given resolutions (pixels) and in the middle, ADM's new-order heads of `num_head_channels`."""
    widths = tuple(int(w) for w in widths)
    if resolution % 2 ** (len(widths) - 1):
        raise ConfigError("score.pretrain.channels", f"{len(widths)} levels need a resolution divisible by "
                          f"{2 ** (len(widths) - 1)}, got {resolution}")
    levels = {resolution // 2 ** l: l for l in range(len(widths))}
    unknown = sorted(set(attention_resolutions) - set(levels))
    if unknown:
        raise ConfigError("score.pretrain.attention_resolutions", f"{unknown} are not UNet levels "
                          f"(levels: {sorted(levels, reverse=True)})")
    arch = ADMArch(in_channels=in_channels, out_channels=in_channels * (2 if learned_variance else 1),
                   model_channels=widths[0], block_channels=widths, num_res_blocks=layers_per_block,
                   attention_levels=tuple(sorted(levels[r] for r in attention_resolutions)),
                   num_classes=num_class_embeds, scale_shift=scale_shift, resblock_updown=resblock_updown)
    uneven = [w for w in arch.attention_widths() if w % num_head_channels]
    if uneven:
        raise ConfigError("score.pretrain.num_head_channels", f"{num_head_channels} does not divide the attention "
                          f"widths {uneven}")
    cls, config = unet_config(arch, Attention("new", num_head_channels=num_head_channels), sample_size=resolution,
                              dropout=dropout)
    return build_unet(cls, config)
