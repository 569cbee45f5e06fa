"""Transformer blocks of the four ViViT variants, under Hugging Face's module names; every op goes through dispatch.

Names (transformers 5.x, `VivitLayer`): `layernorm_before`, `attention.{q,k,v,o}_proj`, `layernorm_after`,
`mlp.fc1`, `mlp.fc2`; Model 3 adds `temporal_layernorm_before` and `temporal_attention.{q,k,v,o}_proj`.

Token layout inside an encoder: x is (B, L, D) with L = [1 CLS token] + T' * S tubelet tokens in time-major order,
so the tubelet tokens view as (B, T', S, D) without a copy. The fused kernels read the modules' weights at call time
(q/k/v joined by one torch.cat per call: never a cached copy, which an optimizer step, FSDP2 or a PEFT merge would
leave stale). A module that is no longer a plain torch module (see `must_call`) is called instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _torch_module
from torch.nn.utils import parametrize
from transformers.modeling_layers import GradientCheckpointingLayer

from vivit.models import dispatch
from vivit.models.configuration import VivitConfig

_PLAIN_TENSORS = (torch.Tensor, nn.Parameter)


class VivitTubeletEmbeddings(nn.Module):
    """Tubelet embedding (HF's `patch_embeddings`): a Conv3d with kernel = stride = tubelet_size, as one GEMM.

    The fused path (dispatch.patch_embed) reads `projection`'s weights; forward is the module path, as Hugging Face's.
    """

    def __init__(self, config: VivitConfig):
        super().__init__()
        self.projection = nn.Conv3d(
            config.num_channels, config.hidden_size, kernel_size=config.tubelet_size, stride=config.tubelet_size
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, frames, C, H, W) -> (B, T' * H' * W', D) tokens in (t, h, w) order."""
        return self.projection(pixel_values.transpose(1, 2)).flatten(2).transpose(1, 2)


# Modules whose weights a fused op may read in place of calling them (the exact types: a subclass may change forward).
_PLAIN_TYPES = (nn.Linear, nn.LayerNorm, nn.Conv3d, VivitTubeletEmbeddings)


# ---------------------------------------------------------------------------------------------------------- dispatch
def _why_not_plain(module: nn.Module) -> str | None:
    """Why a fused op may not read this module's weights in place of calling it; None for a plain torch module."""
    cls = type(module)
    if cls not in _PLAIN_TYPES:
        peft = [c.__name__ for c in cls.__mro__ if c.__module__.startswith("peft.") and c.__name__.endswith("Layer")]
        kind = f"a peft {peft[0]}" if peft else "a subclass"
        return f"is {kind} ({cls.__module__}.{cls.__qualname__}), not a plain torch.nn module"
    if module._forward_hooks or module._forward_pre_hooks:
        return "has forward hooks"
    if module._backward_hooks or module._backward_pre_hooks:
        return "has backward hooks"
    if getattr(module, "_hf_hook", None) is not None:
        return "has an accelerate hook (_hf_hook)"
    if parametrize.is_parametrized(module):
        return "is parametrized (torch.nn.utils.parametrize)"
    for name, p in module._parameters.items():
        if p is not None and type(p) not in _PLAIN_TENSORS:
            return f"has a {type(p).__qualname__} {name} (a tensor subclass, e.g. quantized)"
    return None


def _global_hooks() -> str | None:
    m = _torch_module
    if m._global_forward_hooks or m._global_forward_pre_hooks:
        return "global module forward hooks are registered (torch.nn.modules.module)"
    if m._global_backward_hooks or m._global_backward_pre_hooks:
        return "global module backward hooks are registered (torch.nn.modules.module)"
    return None


def must_call(backend: str, owner: nn.Module, names: tuple[str, ...]) -> bool:
    """Whether an op over `owner`'s submodules `names` must call them instead of running a fused kernel on their
    weights: True when one is wrapped (PEFT, subclass), hooked (module, global or accelerate hooks), parametrized or
    holds tensor-subclass weights, so that calling it keeps those semantics. With strict backend="triton" that case
    raises NotImplementedError naming the module."""
    for name in names:
        module = owner.get_submodule(name)
        reason = _why_not_plain(module) or _global_hooks()
        if reason is None:
            continue
        if dispatch.resolve_backend(backend) == "triton":
            path = ".".join(p for p in (getattr(owner, "_vivit_path", ""), name) if p)
            raise NotImplementedError(
                f"{path} {reason}: the fused Triton kernel reads its weights directly and would bypass it; "
                "use backend='auto' or 'eager' to call the module"
            )
        return True
    return False


def drop_path_scale(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor | None:
    """Per-sample residual factor of stochastic depth: 0 for a dropped sample, 1/(1-rate) for a kept one."""
    if not training or rate == 0.0:
        return None
    keep = torch.rand(x.shape[0], device=x.device) >= rate
    return keep.to(x.dtype) / (1.0 - rate)


# ---------------------------------------------------------------------------------------------------------- modules
class VivitAttention(nn.Module):
    """Multi-head self-attention weights (HF's names); the block runs LayerNorm + q/k/v as one fused projection."""

    def __init__(self, config: VivitConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.dropout_p = config.attention_probs_dropout_prob
        self.config = config  # read at call time, so that changing config.backend takes effect
        D = config.hidden_size
        self.q_proj = nn.Linear(D, D, bias=config.qkv_bias)
        self.k_proj = nn.Linear(D, D, bias=config.qkv_bias)
        self.v_proj = nn.Linear(D, D, bias=config.qkv_bias)
        self.o_proj = nn.Linear(D, D, bias=True)

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


class VivitMLP(nn.Module):
    """Holds the MLP weights; the block runs LayerNorm + fc1 + GELU + fc2 + residual as one dispatch.ln_mlp call."""

    def __init__(self, config: VivitConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)


class VivitLayer(GradientCheckpointingLayer):
    """Pre-LN transformer block. `kind` picks the attention:
    "joint"         - over all L tokens (Model 1, both encoders of Model 2),
    "dot_product"   - Model 4: half the heads over space (same frame), half over time (same spatial position),
    "factorized"    - Model 3: spatial attention, then temporal attention (or the reverse), each with its own LN and
                      residual, then the MLP.
    forward returns (x, *attention probabilities) so that activation checkpointing sees only tensors.
    """

    def __init__(self, config: VivitConfig, kind: str = "joint", drop_path: float = 0.0):
        super().__init__()
        self.kind = kind
        self.drop_path = drop_path
        self.dropout_p = config.hidden_dropout_prob
        self.activation = config.activation
        self.config = config  # read at call time, so that changing config.backend takes effect
        self.time_first = config.attention_order == "time_space"
        # registration order = Hugging Face's (attention first), so that named_parameters() lists HF's order
        self.attention = VivitAttention(config)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        if kind == "factorized":
            self.temporal_layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.temporal_attention = VivitAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = VivitMLP(config)

    def forward(self, x, grid, key_mask=None, frame_mask=None, output_attentions=False):
        """x (B, L, D); grid (T', S) of the tubelet tokens; key_mask (B, L) for joint attention; frame_mask (B, T')
        for the factorised attentions."""
        if self.kind == "factorized":
            steps = [("temporal", "temporal_layernorm_before", "temporal_attention")]
            steps.append(("spatial", "layernorm_before", "attention"))
            steps = steps if self.time_first else steps[::-1]
        else:  # "joint" or "dot_product": the axis has the kind's name
            steps = [(self.kind, "layernorm_before", "attention")]
        mask = key_mask if self.kind == "joint" else frame_mask
        attentions = ()
        for axis, norm, attn in steps:
            x, probs = self._residual_attention(x, norm, attn, axis, grid, mask, output_attentions)
            attentions += probs
        return (self._residual_mlp(x), *attentions)

    def _project_qkv(self, x: torch.Tensor, norm_name: str, attn_name: str) -> torch.Tensor:
        """LayerNorm + q/k/v projections: (B, L, D) -> (B, L, 3, H, hd)."""
        norm, attn = getattr(self, norm_name), getattr(self, attn_name)
        shape = (*x.shape[:-1], 3, attn.num_heads, attn.head_dim)
        names = (norm_name, *(f"{attn_name}.{p}_proj" for p in "qkv"))
        if must_call(self.config.backend, self, names):
            h = norm(x)
            return torch.stack([attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)], dim=-2).view(shape)
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        weight = torch.cat([p.weight for p in projections])
        bias = None if attn.q_proj.bias is None else torch.cat([p.bias for p in projections])
        qkv = dispatch.ln_linear(x, norm.weight, norm.bias, weight, bias, eps=norm.eps, backend=self.config.backend)
        return qkv.view(shape)

    def _residual_attention(self, x, norm_name, attn_name, axis, grid, mask, output_attentions):
        B, L, D = x.shape
        attn = getattr(self, attn_name)
        qkv = self._project_qkv(x, norm_name, attn_name)  # (B, L, 3, H, hd)
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
        y = F.dropout(attn.o_proj(out.reshape(B, L, D)), self.dropout_p, self.training)
        scale = drop_path_scale(x, self.drop_path, self.training)
        if scale is not None:
            y = y * scale.view(B, 1, 1)
        return x + y, probs

    def _residual_mlp(self, x: torch.Tensor) -> torch.Tensor:
        scale = drop_path_scale(x, self.drop_path, self.training)
        norm, mlp = self.layernorm_after, self.mlp
        if must_call(self.config.backend, self, ("layernorm_after", "mlp.fc1", "mlp.fc2")):
            approximate = "tanh" if self.activation == "gelu_tanh" else "none"
            h = F.dropout(F.gelu(mlp.fc1(norm(x)), approximate=approximate), self.dropout_p, self.training)
            y = F.dropout(mlp.fc2(h), self.dropout_p, self.training)
            return x + (y if scale is None else y * scale.to(y.dtype).view(-1, 1, 1))
        return dispatch.ln_mlp(
            x,
            norm.weight,
            norm.bias,
            mlp.fc1.weight,
            mlp.fc1.bias,
            mlp.fc2.weight,
            mlp.fc2.bias,
            eps=norm.eps,
            activation=self.activation,
            dropout_p=self.dropout_p,
            training=self.training,
            drop_path_scale=scale,
            backend=self.config.backend,
        )


def build_layers(config: VivitConfig, depth: int, kind: str = "joint") -> nn.ModuleList:
    """`depth` blocks with stochastic depth rising linearly from 0 to `drop_path_rate`."""
    rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
    return nn.ModuleList([VivitLayer(config, kind, rate) for rate in rates])


def run_layers(
    layers,
    x,
    grid,
    key_mask=None,
    frame_mask=None,
    output_hidden_states=False,
    output_attentions=False,
    state_shape=None,
):
    """x through `layers`; returns (x, hidden states (input, then every block's output), attention probabilities).
    state_shape: the shape the hidden states are returned in; the next block reads that very tensor, so that a
    gradient retained on a returned hidden state is the real one."""
    hidden_states, attentions = (), ()
    for layer in (*layers, None):  # None: the last hidden state is recorded after the last block
        if output_hidden_states:
            state = x if state_shape is None else x.view(state_shape)
            hidden_states += (state,)
            x = state.view(x.shape)
        if layer is None:
            break
        x, *probs = layer(x, grid, key_mask, frame_mask, output_attentions)
        attentions += tuple(probs)
    return x, hidden_states, attentions
