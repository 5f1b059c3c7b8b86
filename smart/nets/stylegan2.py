"""StyleGAN2 (Karras et al., 2020): mapping + skip synthesis generator, residual discriminator.

Written from the paper's description. Simplifications against the paper, all cheap to revisit:
resampling is bilinear up / 2×2 average down instead of FIR-filtered, there is no path length
regulariser, style mixing or truncation, and one w drives every layer.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from smart.nets.layers import (
    EqualConv2d,
    EqualLinear,
    ModulatedConv2d,
    channels_at,
    check_resolution,
    class_vector,
    lrelu,
    normalize_2nd_moment,
)

# (resolution, channels) -> a module applied to a block's features as f(x, w), or None.
BlockExtra = Callable[[int, int], "nn.Module | None"]


class MappingNetwork(nn.Module):
    """z (and a class embedding when conditional) -> w through an MLP with a 100× slower lr."""

    def __init__(self, z_dim: int, w_dim: int, num_classes: int, num_layers: int, lr_mul: float):
        super().__init__()
        self.num_classes = num_classes
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * num_layers
        self.layers = nn.Sequential(
            *(EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims[:-1], dims[1:]))
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if labels is None:
                raise ValueError("labels: a conditional generator needs class labels")
            y = self.embed(class_vector(labels, self.num_classes, z.dtype))
            x = torch.cat([x, normalize_2nd_moment(y)], dim=1)
        return self.layers(x)


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv, then per-pixel Gaussian noise (learned strength), bias and lrelu.

    The noise is drawn afresh on every call from torch's global RNG (seed it for repeatable images).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        return lrelu(x + noise * self.noise_strength + self.bias[:, None, None])


class SynthesisBlock(nn.Module):
    """One resolution: (learned 4×4 constant | 2× up-conv), conv, optional extra, toRGB skip."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, extra: nn.Module | None):
        super().__init__()
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.layers = nn.ModuleList([SynthesisLayer(out_channels, out_channels, w_dim)])
        else:
            self.const = None
            self.layers = nn.ModuleList([
                SynthesisLayer(in_channels, out_channels, w_dim, up=True),
                SynthesisLayer(out_channels, out_channels, w_dim),
            ])
        self.extra = extra
        self.to_rgb = ModulatedConv2d(out_channels, img_channels, 1, w_dim, demodulate=False)
        self.rgb_bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None,
                w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.const is not None:
            x = self.const.unsqueeze(0).expand(w.shape[0], -1, -1, -1)
        for layer in self.layers:
            x = layer(x, w)
        if self.extra is not None:
            x = self.extra(x, w)
        rgb = self.to_rgb(x, w) + self.rgb_bias[:, None, None]
        if img is not None:
            rgb = rgb + F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        return x, rgb


class StyleGenerator(nn.Module):
    """Mapping network + skip synthesis network; `extra` lets a subclass add a module per block."""

    def __init__(self, *, z_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 num_classes: int, channel_base: int, channel_max: int, mapping_layers: int,
                 mapping_lr_mul: float, extra: BlockExtra | None = None):
        super().__init__()
        log2 = check_resolution(img_resolution)
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_classes = num_classes
        self.conditional = num_classes > 0
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.mapping = MappingNetwork(z_dim, w_dim, num_classes, mapping_layers, mapping_lr_mul)
        blocks, in_ch = [], 0
        for res in (2**i for i in range(2, log2 + 1)):
            out_ch = channels_at(res, channel_base, channel_max)
            blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels,
                                         extra(res, out_ch) if extra else None))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B, img_channels, R, R) images, roughly in [-1, 1] (no output nonlinearity).

        The per-layer noise is drawn from torch's global RNG on every call: seed it
        (torch.manual_seed) for repeatable images; z alone does not fix them.
        """
        w = self.mapping(z, labels if self.conditional else None)
        x = img = None
        for block in self.blocks:
            x, img = block(x, img, w)
        return img


class StyleGAN2Generator(StyleGenerator):
    """StyleGAN2 generator. Labels are class indices (B,) or one-hot rows, needed iff num_classes>0."""

    def __init__(self, z_dim: int = 64, w_dim: int = 128, *, img_resolution: int, img_channels: int,
                 num_classes: int = 0, channel_base: int = 512, channel_max: int = 64,
                 mapping_layers: int = 2, mapping_lr_mul: float = 0.01):
        super().__init__(z_dim=z_dim, w_dim=w_dim, img_resolution=img_resolution,
                         img_channels=img_channels, num_classes=num_classes,
                         channel_base=channel_base, channel_max=channel_max,
                         mapping_layers=mapping_layers, mapping_lr_mul=mapping_lr_mul)


def minibatch_std(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Append one channel: the mean std of features within each sample's group of the batch.

    Consecutive samples form groups of `group_size`; the remainder of a batch that is not a
    multiple joins the last group (a batch smaller than the group is one group), so every batch
    size works and no group has a single member unless the batch does.
    """
    n = x.shape[0]
    num_groups = max(1, n // group_size)
    group = torch.arange(n, device=x.device).div(group_size, rounding_mode="floor").clamp(max=num_groups - 1)
    assign = F.one_hot(group, num_groups).to(x.dtype).t()            # (G, N)
    assign = assign / assign.sum(dim=1, keepdim=True)                  # rows average their members
    flat = x.flatten(1)
    dev = flat - (assign @ flat)[group]
    std = ((assign @ dev.square()) + 1e-8).sqrt().mean(dim=1)          # (G,)
    stat = std[group].view(n, 1, 1, 1).expand(n, 1, *x.shape[2:])
    return torch.cat([x, stat], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3×3 convs (the second halving the resolution) + a 1×1 down skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation=True)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, activation=True, down=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class StyleGAN2Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator; projection conditioning (Miyato & Koyama) when conditional.

    logit = ψ(h) + ⟨e(c), h⟩ / √dim(h), with h the final features and e a learned class embedding.
    """

    def __init__(self, img_resolution: int, img_channels: int, num_classes: int = 0,
                 channel_base: int = 512, channel_max: int = 64, mbstd_group: int = 4):
        super().__init__()
        log2 = check_resolution(img_resolution)
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_classes = num_classes
        self.conditional = num_classes > 0
        self.mbstd_group = mbstd_group
        ch = lambda res: channels_at(res, channel_base, channel_max)  # noqa: E731
        self.from_rgb = EqualConv2d(img_channels, ch(img_resolution), 1, activation=True)
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(ch(2**i), ch(2 ** (i - 1))) for i in range(log2, 2, -1))
        )
        c4 = ch(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3, activation=True)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.out = EqualLinear(c4, 1)
        self.embed = EqualLinear(num_classes, c4, bias=False) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) logits."""
        x = self.blocks(self.from_rgb(x))
        x = self.conv(minibatch_std(x, self.mbstd_group))
        h = self.fc(x.flatten(1))
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("labels: a conditional discriminator needs class labels")
            e = self.embed(class_vector(labels, self.num_classes, h.dtype))
            logit = logit + (e * h).sum(dim=1) / math.sqrt(h.shape[1])
        return logit


def style_options(cfg, sample_shape, num_classes: int) -> dict:
    """The keyword arguments every style-based generator takes from its config section."""
    return dict(z_dim=cfg.z_dim, w_dim=cfg.w_dim, img_resolution=sample_shape[-1], img_channels=sample_shape[0],
                num_classes=num_classes, channel_base=cfg.channel_base, channel_max=cfg.channel_max,
                mapping_layers=cfg.mapping_layers)


def generator(cfg, sample_shape, num_classes: int = 0) -> StyleGAN2Generator:
    """The registered builder of generator.arch stylegan2."""
    return StyleGAN2Generator(**style_options(cfg, sample_shape, num_classes))


def discriminator(cfg, sample_shape, num_classes: int = 0) -> StyleGAN2Discriminator:
    """The registered builder of discriminator.arch stylegan2."""
    return StyleGAN2Discriminator(img_resolution=sample_shape[-1], img_channels=sample_shape[0],
                                  num_classes=num_classes, channel_base=cfg.channel_base,
                                  channel_max=cfg.channel_max, mbstd_group=cfg.mbstd_group)
