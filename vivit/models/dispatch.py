"""The one place vivit calls kernels: picks the Triton kernel or the eager PyTorch path for every op.

Backends (config.backend, or the `backend=` argument of every function here):
  "eager"  - plain differentiable PyTorch (scaled_dot_product_attention, one GEMM per projection).
  "triton" - strict: run the op's Triton kernel or raise NotImplementedError("<op>: <reason>"). With TRITON_INTERPRET=1
             set before `vivit_kernels` is imported, CPU tensors run the real kernels through Triton's interpreter.
  "auto"   - the environment variable VIVIT_BACKEND ("eager" or "triton") decides when set; otherwise the kernel only
             where it is the fast, checked choice (each op module's `auto_unsupported_reason`, the rule
             vivit_kernels.report applies to every compiled configuration): CUDA tensors on sm_80 or newer, fp16 /
             bf16 (fp32 only with tf32 dots, torch.get_float32_matmul_precision() != "highest"), head dim <= 128,
             and the launched configurations' shared memory within the device's opt-in limit per block; and not
             an op whose kernel was measured slower than eager on a GPU in this mode (forward, or training when a
             gradient is needed: vivit_kernels._utils.SLOWER_THAN_EAGER). Eager everywhere else.
fp32 matmuls inside kernels follow torch.get_float32_matmul_precision() (ieee at "highest", tf32 otherwise).
Under torch.autocast the Triton path computes in the dtypes eager would (the ops cast the operands of their linear /
attention parts and keep LayerNorm and the residual stream in fp32) and returns eager's dtypes.
"""

from __future__ import annotations

import os

import torch

from vivit.models.configuration import BACKENDS
from vivit_kernels import attention as _attention
from vivit_kernels import ln_mlp as _ln_mlp
from vivit_kernels import patch_embed as _patch_embed
from vivit_kernels._utils import auto_interpreter, measured_slower_reason


def resolve_backend(backend: str) -> str:
    """ "auto" as VIVIT_BACKEND defines it ("auto" when unset); an explicit "triton" or "eager" wins."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get("VIVIT_BACKEND", "auto") or "auto"
        if env not in BACKENDS:
            raise ValueError(f"environment variable VIVIT_BACKEND must be one of {list(BACKENDS)}, got {env!r}")
        return env
    return backend


def _kernel_device(t: torch.Tensor) -> bool:
    """Whether `auto` may consider a kernel for a tensor on this device: CUDA, or, for tests of the dispatch rules,
    CPU tensors run by Triton's interpreter when VIVIT_AUTO_INTERPRETER=1 is set as well as TRITON_INTERPRET=1."""
    return t.is_cuda or auto_interpreter()


def _choose(op: str, backend: str, module, *args, **kwargs) -> str:
    """The path an op takes: "triton" or "eager". `module` is the op's kernel module: its `auto_unsupported_reason`
    decides for "auto", its `triton_unsupported_reason` makes strict "triton" raise when the kernel cannot run."""
    backend = resolve_backend(backend)
    if backend == "eager":
        return "eager"
    if backend == "auto":
        tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
        if not all(_kernel_device(t) for t in tensors):
            return "eager"
        if module.auto_unsupported_reason(*args, **kwargs) is not None:
            return "eager"
        key = f"{op}_{kwargs['axis']}" if op == "attention" else op
        return "eager" if measured_slower_reason(key, *tensors) is not None else "triton"
    reason = module.triton_unsupported_reason(*args, **kwargs)
    if reason is not None:
        raise NotImplementedError(f"{op}: {reason}")
    return "triton"


def patch_embed(
    pixel_values: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    pos_embed: torch.Tensor | None = None,
    cls_token: torch.Tensor | None = None,
    *,
    per_frame_cls: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Tubelet embedding + position embedding + CLS token(s); see vivit_kernels.patch_embed.patch_embed."""
    tensors = (pixel_values, weight, bias, pos_embed, cls_token)
    path = _choose("patch_embed", backend, _patch_embed, *tensors)
    return _patch_embed.patch_embed(*tensors, per_frame_cls=per_frame_cls, backend=path)


def ln_linear(
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    eps: float,
    backend: str = "auto",
) -> torch.Tensor:
    """LayerNorm(x) @ weight.T + bias: the fused QKV projection."""
    tensors = (x, ln_weight, ln_bias, weight, bias)
    path = _choose("ln_linear", backend, _ln_mlp, *tensors)
    return _ln_mlp.ln_linear(*tensors, eps=eps, backend=path)


def ln_mlp(
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    fc1_weight: torch.Tensor,
    fc1_bias: torch.Tensor,
    fc2_weight: torch.Tensor,
    fc2_bias: torch.Tensor,
    *,
    eps: float,
    activation: str = "gelu_tanh",
    dropout_p: float = 0.0,
    training: bool = False,
    drop_path_scale: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """x + drop_path_scale * MLP(LayerNorm(x)), the whole residual MLP branch of a block."""
    params = (x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias)
    tensors = (*params, drop_path_scale)
    path = _choose("ln_mlp", backend, _ln_mlp, *tensors)
    return _ln_mlp.ln_mlp(
        *params,
        eps=eps,
        activation=activation,
        dropout_p=dropout_p,
        training=training,
        drop_path_scale=drop_path_scale,
        backend=path,
    )


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    axis: str = "joint",
    key_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(D)) v along `axis`; returns (output shaped like q, probabilities or None).

    q, k, v: (B, L, H, D) for axis="joint"; (B, T, S, H, D) for "spatial" (over S) and "temporal" (over T).
    key_mask: bool, True = real key; (B, L) for joint, (B, T) frames for spatial/temporal.
    need_weights=True returns the probabilities, (B, H, L, L) for joint, (B, T, H, S, S) spatial, (B, S, H, T, T)
    temporal: they exist only on the eager path (strict "triton" raises NotImplementedError).
    """
    if need_weights:
        if resolve_backend(backend) == "triton":
            raise NotImplementedError(
                "attention: output_attentions=True needs the attention probabilities, which the Triton kernel never "
                "materialises; use backend='eager' (or 'auto') to get them"
            )
        return _attention_with_probs(q, k, v, axis, key_mask, dropout_p)

    path = _choose("attention", backend, _attention, q, k, v, axis=axis, key_mask=key_mask, dropout_p=dropout_p)
    out = _attention.attention(q, k, v, axis=axis, key_mask=key_mask, dropout_p=dropout_p, backend=path)
    return out, None


def _attention_with_probs(q, k, v, axis, key_mask, dropout_p):
    """Materialised attention (the eager path of output_attentions=True); a row with no real key gives zeros."""
    if axis == "joint":
        qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, D)
        mask = None if key_mask is None else key_mask[:, None, None, :]
    elif axis == "spatial":
        qh, kh, vh = (t.transpose(2, 3) for t in (q, k, v))  # (B, T, H, S, D)
        mask = None if key_mask is None else key_mask[:, :, None, None, None]
    elif axis == "temporal":
        qh, kh, vh = (t.permute(0, 2, 3, 1, 4) for t in (q, k, v))  # (B, S, H, T, D)
        mask = None if key_mask is None else key_mask[:, None, None, None, :]
    else:
        raise ValueError(f"attention: axis must be 'joint', 'spatial' or 'temporal', got {axis!r}")
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    if mask is not None:
        probs = probs.nan_to_num(0.0)  # rows whose keys are all masked
    probs = probs.to(q.dtype)
    if dropout_p > 0:  # as HF's eager attention, the returned probabilities are the dropped-out ones
        probs = torch.nn.functional.dropout(probs, dropout_p)
    out = torch.matmul(probs, vh)
    if axis == "joint":
        out = out.transpose(1, 2)
    elif axis == "spatial":
        out = out.transpose(2, 3)
    else:
        out = out.permute(0, 3, 1, 2, 4)
    return out.contiguous(), probs
