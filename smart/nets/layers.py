"""Building blocks shared by the style-based generators and the StyleGAN2 discriminator.

Every weight is stored at unit variance and scaled by He's constant at run time (equalized
learning rate, Karras et al.), so Adam updates every layer at the same relative speed whatever its
fan-in. Leaky ReLUs are followed by a gain of √2 to keep activations at unit variance.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit root-mean-square (z and class embeddings enter the mapping so)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def class_vector(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot rows from integer class indices (B,); float (B, num_classes) rows pass through."""
    if labels.dim() == 1:
        if labels.dtype.is_floating_point:
            raise ValueError("labels: integer class indices (B,) or one-hot rows (B, num_classes)")
        return F.one_hot(labels.long(), num_classes).to(dtype)
    if labels.dim() != 2 or labels.shape[1] != num_classes:
        raise ValueError(
            f"labels: expected (B,) indices or (B, {num_classes}) rows, got {tuple(labels.shape)}")
    return labels.to(dtype)


def check_resolution(img_resolution: int) -> int:
    """log2 of the resolution; the nets grow/shrink by factors of 2 from a 4×4 base."""
    log2 = int(math.log2(img_resolution)) if img_resolution > 0 else 0
    if img_resolution < 4 or 2**log2 != img_resolution:
        raise ValueError(f"img_resolution: must be a power of two >= 4, got {img_resolution}")
    return log2


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at resolution `res`: fewer channels where there are more pixels."""
    return max(1, min(channel_base // res, channel_max))


class EqualLinear(nn.Module):
    """Fully connected layer with equalized learning rate; `lr_mul` slows it down (mapping net)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return lrelu(x) if self.activation else x


class EqualConv2d(nn.Module):
    """Convolution with equalized learning rate; `down` halves the resolution (2×2 average first)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: bool = False, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.activation = activation
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.weight.shape[-1] // 2)
        return lrelu(x) if self.activation else x


class ModulatedConv2d(nn.Module):
    """StyleGAN2's weight (de)modulation, computed on activations rather than on per-sample weights.

    A style s = A(w) scales the input channels; demodulation rescales each output channel by
    1/√(Σ_{i,k} (s_i·W_{o,i,k})² + ε), which is what normalising the modulated weights does.
    Scaling activations keeps one ordinary convolution for the whole batch (fast on CPU and GPU).
    `up` doubles the resolution (bilinear) before the convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.up = up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.weight * self.weight_gain
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            norms = styles.square() @ weight.square().sum(dim=(2, 3)).t()
            x = x * (norms + 1e-8).rsqrt()[:, :, None, None]
        return x
