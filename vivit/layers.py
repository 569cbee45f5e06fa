"""Transformer blocks of the four ViViT variants; every op goes through vivit.dispatch.

Token layout inside an encoder: x is (B, L, D) with L = [1 CLS token] + T' * S tubelet tokens in time-major order,
so the tubelet tokens view as (B, T', S, D) without a copy. Each attention has one fused QKV projection whose output
(B, L, 3, H, hd) is sliced into q, k, v views: spatial and temporal attention read those views in place.
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn

from vivit import dispatch
from vivit.configuration import VivitConfig


def drop_path_scale(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor | None:
    """Per-sample residual factor of stochastic depth: 0 for a dropped sample, 1/(1-rate) for a kept one."""
    if not training or rate == 0.0:
        return None
    keep = torch.rand(x.shape[0], device=x.device) >= rate
    return keep.to(x.dtype) / (1.0 - rate)


class Attention(nn.Module):
    """Multi-head self-attention: LayerNorm + fused QKV projection, attention along an axis, output projection."""

    def __init__(self, config: VivitConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.eps = config.layer_norm_eps
        self.dropout_p = config.attention_probs_dropout_prob
        self.config = config  # read at call time, so that changing config.backend takes effect
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def project_qkv(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        """(B, L, D) -> (B, L, 3, H, hd), LayerNorm applied on the way."""
        qkv = dispatch.ln_linear(
            x, norm.weight, norm.bias, self.qkv.weight, self.qkv.bias, eps=self.eps, backend=self.config.backend
        )
        return qkv.view(*x.shape[:-1], 3, self.num_heads, self.head_dim)

    def attend(self, q, k, v, axis, key_mask, need_weights):
        dropout_p = self.dropout_p if self.training else 0.0
        return dispatch.attention(
            q,
            k,
            v,
            axis=axis,
            key_mask=key_mask,
            dropout_p=dropout_p,
            need_weights=need_weights,
            backend=self.config.backend,
        )


class Block(nn.Module):
    """Pre-LN transformer block. `kind` picks the attention:
    "joint"         - over all L tokens (Model 1, both encoders of Model 2),
    "dot_product"   - Model 4: half the heads over space (same frame), half over time (same spatial position),
    "factorized"    - Model 3: spatial attention, then temporal attention (or the reverse), each with its own LN and
                      residual, then the MLP.
    """

    def __init__(self, config: VivitConfig, kind: str = "joint", drop_path: float = 0.0):
        super().__init__()
        self.kind = kind
        self.drop_path = drop_path
        self.dropout_p = config.hidden_dropout_prob
        self.eps = config.layer_norm_eps
        self.activation = config.activation
        self.config = config  # read at call time, so that changing config.backend takes effect
        self.time_first = config.attention_order == "time_space"
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = Attention(config)
        if kind == "factorized":
            self.norm_t = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.attn_t = Attention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = Mlp(config)

    def forward(self, x, grid, key_mask=None, frame_mask=None, output_attentions=False):
        """x (B, L, D); grid (T', S) of the tubelet tokens; key_mask (B, L) for joint attention; frame_mask (B, T')
        for the factorised attentions. Returns (x, tuple of attention probabilities)."""
        if self.kind == "factorized":
            steps = [("temporal", self.norm_t, self.attn_t), ("spatial", self.norm1, self.attn)]
            steps = steps if self.time_first else steps[::-1]
        else:  # "joint" or "dot_product": the axis has the kind's name
            steps = [(self.kind, self.norm1, self.attn)]
        mask = key_mask if self.kind == "joint" else frame_mask
        attentions = ()
        for axis, norm, attn in steps:
            x, probs = self._residual_attention(x, norm, attn, axis, grid, mask, output_attentions)
            attentions += probs
        scale = drop_path_scale(x, self.drop_path, self.training)
        m = self.mlp
        x = dispatch.ln_mlp(
            x,
            self.norm2.weight,
            self.norm2.bias,
            m.fc1.weight,
            m.fc1.bias,
            m.fc2.weight,
            m.fc2.bias,
            eps=self.eps,
            activation=self.activation,
            dropout_p=self.dropout_p,
            training=self.training,
            drop_path_scale=scale,
            backend=self.config.backend,
        )
        return x, attentions

    def _residual_attention(self, x, norm, attn, axis, grid, mask, output_attentions):
        B, L, D = x.shape
        qkv = attn.project_qkv(x, norm)  # (B, L, 3, H, hd)
        # unbind, not three selects: its backward writes the three gradients into one buffer
        if axis == "joint":
            out, probs = attn.attend(*qkv.unbind(2), "joint", mask, output_attentions)
            probs = (probs,) if output_attentions else ()
        else:
            T, S = grid
            half = attn.num_heads // 2
            if axis == "dot_product":
                qkv = qkv.view(B, T, S, 3, 2, half, attn.head_dim)
                space, time = zip(*(t.unbind(3) for t in qkv.unbind(3)))  # each: q, k, v over half the heads
                s_out, s_probs = attn.attend(*space, "spatial", mask, output_attentions)
                t_out, t_probs = attn.attend(*time, "temporal", mask, output_attentions)
                out = torch.cat([s_out, t_out], dim=3)
                probs = (s_probs, t_probs) if output_attentions else ()
            else:
                qkv = qkv.view(B, T, S, 3, attn.num_heads, attn.head_dim)
                out, probs = attn.attend(*qkv.unbind(3), axis, mask, output_attentions)
                probs = (probs,) if output_attentions else ()
        y = nn.functional.dropout(attn.proj(out.reshape(B, L, D)), self.dropout_p, self.training)
        scale = drop_path_scale(x, self.drop_path, self.training)
        if scale is not None:
            y = y * scale.view(B, 1, 1)
        return x + y, probs


class Mlp(nn.Module):
    """Holds the MLP weights; the block runs LayerNorm + fc1 + GELU + fc2 + residual as one dispatch.ln_mlp call."""

    def __init__(self, config: VivitConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)


class Encoder(nn.Module):
    """A stack of blocks with stochastic depth rising linearly from 0 to `drop_path_rate`."""

    def __init__(self, config: VivitConfig, depth: int, kind: str = "joint"):
        super().__init__()
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.layer = nn.ModuleList([Block(config, kind, rate) for rate in rates])
        self.gradient_checkpointing = False

    def forward(self, x, grid, key_mask=None, frame_mask=None, output_hidden_states=False, output_attentions=False):
        hidden_states = (x,) if output_hidden_states else ()
        attentions = ()
        for block in self.layer:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x, probs = torch.utils.checkpoint.checkpoint(
                    block, x, grid, key_mask, frame_mask, output_attentions, use_reentrant=False
                )
            else:
                x, probs = block(x, grid, key_mask, frame_mask, output_attentions)
            attentions += probs
            if output_hidden_states:
                hidden_states += (x,)
        return x, hidden_states, attentions
