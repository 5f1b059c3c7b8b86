"""Aurora-style generator (Zhu et al., 2024): StyleGAN2 blocks followed by attention blocks whose
feed-forward is a sparse mixture of experts.

Written from the paper's description (DESIGN.md §1), adapted from text to class conditioning:
w (which carries the class) stands in for the text embedding. Each attention block is
pre-norm self-attention over the pixels with w as one extra key/value token, then a top-1
routed MoE feed-forward whose router sees the token's feature concatenated with a projection of w.
Each MoE layer adds the Switch Transformer load-balancing loss; the generator sums them into
`aux_loss` after every forward, for the trainer to add to L_G with its own weight.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from smart.nets.layers import EqualLinear
from smart.nets.stylegan2 import StyleGenerator, style_options


def load_balancing_loss(probs: torch.Tensor, expert_index: torch.Tensor) -> torch.Tensor:
    """Switch Transformer auxiliary loss E·Σ_e f_e·P_e over tokens.

    probs: (T, E) router probabilities; expert_index: (T,) chosen experts. f_e, the share of
    tokens sent to e, is a count (no gradient); P_e, the mean probability of e, carries the
    gradient. It equals 1 when routing is perfectly balanced and E when it collapses onto one
    expert with certainty.
    """
    num_experts = probs.shape[-1]
    share = F.one_hot(expert_index, num_experts).to(probs.dtype).mean(dim=0)
    return num_experts * (share * probs.mean(dim=0)).sum()


class MoEFeedForward(nn.Module):
    """Sparse MoE MLP: each token goes to exactly one expert, its output scaled by the gate prob."""

    def __init__(self, channels: int, w_dim: int, num_experts: int, hidden_mult: int = 2):
        super().__init__()
        self.num_experts = num_experts
        self.w_proj = EqualLinear(w_dim, channels)
        self.router = EqualLinear(2 * channels, num_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(EqualLinear(channels, hidden_mult * channels, activation=True),
                          EqualLinear(hidden_mult * channels, channels))
            for _ in range(num_experts)
        )
        self.aux_loss: torch.Tensor | None = None  # set by forward

    def route(self, h: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Router probabilities (B, N, E) and top-1 experts (B, N) for tokens h (B, N, C)."""
        wp = self.w_proj(w).unsqueeze(1).expand(-1, h.shape[1], -1)
        probs = self.router(torch.cat([h, wp], dim=-1)).softmax(dim=-1)
        return probs, probs.argmax(dim=-1)

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        probs, index = self.route(h, w)
        flat_h, flat_p, flat_i = h.flatten(0, 1), probs.flatten(0, 1), index.flatten()
        out = torch.zeros_like(flat_h)
        for e, expert in enumerate(self.experts):
            rows = (flat_i == e).nonzero().squeeze(1)
            out = out.index_copy(0, rows, expert(flat_h[rows]))
        out = out * flat_p.gather(1, flat_i.unsqueeze(1))
        self.aux_loss = load_balancing_loss(flat_p, flat_i)
        return out.view_as(h)


class AttentionBlock(nn.Module):
    """Pre-norm self-attention over pixels (plus a w token) and a MoE feed-forward, both residual.

    Each residual sum is scaled by √½ so the block keeps the features' magnitude for toRGB.
    """

    def __init__(self, channels: int, w_dim: int, num_heads: int, num_experts: int, ffn_mult: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide {channels} channels")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = EqualLinear(channels, 3 * channels)
        self.w_kv = EqualLinear(w_dim, 2 * channels)
        self.proj = EqualLinear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.moe = MoEFeedForward(channels, w_dim, num_experts, ffn_mult)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        t = x.flatten(2).transpose(1, 2)                                      # (B, N, C)
        q, k, v = self.qkv(self.norm1(t)).chunk(3, dim=-1)
        wk, wv = self.w_kv(w).unsqueeze(1).chunk(2, dim=-1)
        k, v = torch.cat([k, wk], dim=1), torch.cat([v, wv], dim=1)
        heads = lambda a: a.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # noqa: E731
        a = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        t = (t + self.proj(a.transpose(1, 2).flatten(2))) * math.sqrt(0.5)
        t = (t + self.moe(self.norm2(t), w)) * math.sqrt(0.5)
        return t.transpose(1, 2).reshape(b, c, hgt, wid)


class AuroraGenerator(StyleGenerator):
    """Style-based generator with MoE attention blocks at `attn_resolutions`.

    After each forward, `aux_loss` is the sum of the MoE layers' load-balancing losses (a
    differentiable scalar; 0 when no MoE layer ran).
    """

    def __init__(self, z_dim: int = 128, w_dim: int = 1024, *, img_resolution: int, img_channels: int,
                 num_classes: int = 0, channel_base: int = 512, channel_max: int = 64,
                 mapping_layers: int = 2, mapping_lr_mul: float = 0.01, num_experts: int = 4,
                 attn_resolutions: tuple[int, ...] = (8, 16), num_heads: int = 2, ffn_mult: int = 2):
        def attention(res: int, channels: int) -> nn.Module | None:
            if res not in attn_resolutions:
                return None
            return AttentionBlock(channels, w_dim, num_heads, num_experts, ffn_mult)

        super().__init__(z_dim=z_dim, w_dim=w_dim, img_resolution=img_resolution,
                         img_channels=img_channels, num_classes=num_classes,
                         channel_base=channel_base, channel_max=channel_max,
                         mapping_layers=mapping_layers, mapping_lr_mul=mapping_lr_mul,
                         extra=attention)
        self._moe = [m for m in self.modules() if isinstance(m, MoEFeedForward)]
        self._aux_loss: torch.Tensor | None = None

    @property
    def aux_loss(self) -> torch.Tensor:
        if self._aux_loss is None:
            return torch.zeros((), device=self.blocks[0].const.device)
        return self._aux_loss

    def __getstate__(self) -> dict:
        # The last aux_loss is part of an autograd graph: copies and pickles start without it.
        return {**super().__getstate__(), "_aux_loss": None}

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        img = super().forward(z, labels)
        losses = [m.aux_loss for m in self._moe if m.aux_loss is not None]
        for m in self._moe:
            m.aux_loss = None
        self._aux_loss = torch.stack(losses).sum() if losses else img.new_zeros(())
        return img


def generator(cfg, sample_shape, num_classes: int = 0) -> AuroraGenerator:
    """The registered builder of generator.arch aurora."""
    return AuroraGenerator(**style_options(cfg, sample_shape, num_classes), num_experts=cfg.num_experts,
                           attn_resolutions=tuple(cfg.attn_resolutions), num_heads=cfg.num_heads)
