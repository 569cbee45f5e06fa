"""Fused LayerNorm-MLP and LayerNorm-Linear: the transformer block's MLP branch and its QKV projection.

    ln_mlp(x, ...)    = x + s * drop(fc2(drop(act(fc1(LN(x))))))      x (..., D), fc1 (I, D), fc2 (D, I)
    ln_linear(x, ...) = LN(x) @ weight.T + bias                         weight (N, D)

Design (backend="triton")
- LayerNorm statistics (mean, rstd) are computed in fp32 by a small row kernel (vivit_kernels/layer_norm.py). The GEMMs
  that consume LN(x) normalise their A operand on load, (x - mean) * rstd * gamma + beta, so the normalised input is
  never written.
- One GEMM kernel (vivit_kernels/gemm.py `gemm_kernel`, C = A' @ B) serves every forward GEMM and the backward dX GEMMs
  through constexpr prologues on A (LayerNorm; per-row drop-path scale and dropout-mask regeneration) and epilogues
  on C (bias, GELU, dropout, storing the pre-activation, GELU backward, per-row scale, residual add).
  fc1: A = LN(x) on load; epilogue bias, stores the pre-activation z (training only), GELU, dropout -> h.
  fc2: A = h; epilogue bias, dropout, drop-path scale, residual add -> out.
- The 4x-wide intermediate: h is written once by fc1 and read once by fc2. In training fc1's epilogue also writes z
  (GELU's backward needs it, and GELU cannot be inverted). Eager PyTorch keeps LN(x), z, gelu(z) and the dropout mask.
- Backward (ln_mlp): dz = (g @ fc2_weight) * mask1 * gelu'(z) with g = s * mask2 * dout formed on load (GELU backward
  fused into the epilogue of the GEMM producing d(intermediate)); dW2 = g^T h and dW1 = dz^T LN(x) (LN recomputed on
  load) with the bias gradients summed in the same kernel (`gemm_tn_kernel`, split over row slices into fp32
  partials so that ViViT-B's 144 output tiles still fill an H100); dLN = dz @ fc1_weight in fp32; a row kernel turns
  dLN into dx (plus the residual's dout) and writes per-program partial dgamma/dbeta. Every partial buffer is summed
  by a second small kernel in a fixed order: deterministic (bitwise repeatable), no atomics, no serial loop over rows.
- Saved for backward: x, the LayerNorm and linear weights, mean and rstd (fp32, M each), z and h (M x I each).
  Recomputed: LN(x) (on load, twice), the dropout masks (Philox, `tl.rand(seed, row * width + col)`, from the seed),
  g = s * mask2 * dout (on load, twice).
- Dropout (training) uses Philox with a seed drawn on the op's device from torch's generator (or `dropout_seed`)
  into a one-element device tensor the kernels read, so CUDA graphs replay with a fresh seed; the hidden mask uses
  `seed`, the output mask `seed + 1`. The Triton masks differ from `F.dropout`'s (other RNG), so training
  runs match eager in distribution, not bit for bit. `drop_path_scale` is treated as a constant (no gradient).
- Numerics: fp32 statistics and accumulation; fp16/bf16 operands on tensor cores; fp32 inputs use an ieee dot when
  torch.get_float32_matmul_precision() == "highest", tf32 otherwise. Under TRITON_INTERPRET bf16 operands are rounded
  to bf16 and multiplied in fp32 (the interpreter's bf16 dot is broken). z, h and dz are stored in the compute dtype
  (the weights' dtype), as eager autograd does.
- Autocast: the GEMMs compute in the weights' dtype, which may be narrower than x's: under torch.autocast the Triton
  path casts the weights (as eager's F.linear would) and keeps x, the LayerNorm parameters and the residual stream
  as they are (fp32), so ln_mlp returns x's dtype and ln_linear the compute dtype, exactly as eager does.
- Tiles are fixed per dtype (no autotuning, so every configuration is compiled ahead of time by `aot_specs()`):
  128 x 128 x 64, 8 warps, 3 stages; 128 x 64 where Philox dropout or GELU backward sit in the prologue/epilogue (at
  128 x 128 they spill). They are first guesses checked for spills and shared memory, not tuned on a GPU.
- Inputs: any leading shape and strides (x is flattened to rows with `reshape`, a view when the strides allow);
  weights with any strides; hidden size up to MAX_HIDDEN (the LayerNorm row kernels hold a whole row).

GPU goals: LN-MLP forward >= 1.2x eager PyTorch and >= 1.0x torch.compile of the eager block; backward not slower than
eager; LayerNorm backward not slower than PyTorch at hidden 768-1280. Measured on an H200 (bf16, 12552 tokens of
ViViT-B, BENCHMARKS.md): forward 0.52-0.60x eager (cuBLAS), forward + backward 0.36x; LN-QKV 0.30-0.53x forward, so
`auto` leaves both to eager (_utils.SLOWER_THAN_EAGER). Peak activation memory <= eager (by construction it saves x, z,
h and 2 x M fp32 statistics, where eager keeps LN(x), z, gelu(z), and the dropout masks in training).
"""

import itertools

import torch
import torch.nn.functional as F

from ._utils import (
    HAS_TRITON,
    auto_reason,
    autocast_cast,
    autocast_dtype,
    compute_dtype,
    device_caps,
    device_guard,
    fp32_precision,
    triton_unavailable_reason,
)
from .gemm import (
    drop_scale,
    dropout_keep_mask,
    gemm,
    gemm_config,
    gemm_kernel,
    gemm_tn,
    gemm_tn_config,
    gemm_tn_kernel,
    partial_sum_kernel,
)
from .layer_norm import layer_norm_bwd, layer_norm_bwd_kernel, layer_norm_stats, layer_norm_stats_kernel, row_config

if HAS_TRITON:
    import triton

ACTIVATIONS = {"gelu_tanh": 1, "gelu": 2}
BACKENDS = ("eager", "triton")
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_HIDDEN = 8192  # the LayerNorm row kernels hold whole rows (about 4K elements per program up to 4096)

# ----------------------------------------------------------------------------------------------------------------------
# Forward and backward passes on 2-D views
# ----------------------------------------------------------------------------------------------------------------------


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])  # a view when the strides allow it, else one copy


def _sample_scale(scale: torch.Tensor | None, x: torch.Tensor) -> tuple[torch.Tensor | None, int]:
    """The drop-path scale as the GEMMs read it (contiguous, one value per x.shape[1] rows), or (None, 1)."""
    return (None, 1) if scale is None else (scale.contiguous(), x.shape[1])


def _mask_seeds(p: float) -> tuple[int | None, int | None]:
    """Offsets added to the seed for the hidden and the output dropout masks; None when nothing is dropped."""
    return (0, 1) if p > 0.0 else (None, None)


def _ln_mlp_fwd_impl(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, scale, eps, activation, p,
                     seed, save_for_backward):  # fmt: skip
    x2 = _rows(x)
    M, D = x2.shape
    I = fc1_weight.shape[0]
    ln_weight, ln_bias, fc1_bias, fc2_bias = (t.contiguous() for t in (ln_weight, ln_bias, fc1_bias, fc2_bias))
    scale, rows_per_sample = _sample_scale(scale, x)
    seed_h, seed_o = _mask_seeds(p)
    mean, rstd = layer_norm_stats(x2, eps)
    dtype = fc1_weight.dtype  # the compute dtype (x may be the fp32 residual stream under autocast)
    h = torch.empty((M, I), device=x.device, dtype=dtype)
    z = torch.empty((M, I) if save_for_backward else (0,), device=x.device, dtype=dtype)
    gemm(
        x2,
        fc1_weight.t(),
        h,
        z=z if save_for_backward else None,
        bias=fc1_bias,
        ln=(mean, rstd, ln_weight, ln_bias),
        seed=seed,
        c_seed=seed_h,
        p_drop=p,
        act=ACTIVATIONS[activation],
        store_z=save_for_backward,
    )
    out = torch.empty((M, D), device=x.device, dtype=x.dtype)
    gemm(
        h,
        fc2_weight.t(),
        out,
        residual=x2,
        bias=fc2_bias,
        scale=scale,
        rows_per_sample=rows_per_sample,
        seed=seed,
        c_seed=seed_o,
        p_drop=p,
        c_scale=scale is not None,
    )
    return out.view(x.shape), mean, rstd, z, h


def _ln_mlp_bwd_impl(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, scale, mean, rstd, z, h, activation, p, seed):
    x2 = _rows(x)
    g = _rows(dout)
    M, D = x2.shape
    I = fc1_weight.shape[0]
    ln_weight, ln_bias = ln_weight.contiguous(), ln_bias.contiguous()
    scale, rows_per_sample = _sample_scale(scale, x)
    seed_h, seed_o = _mask_seeds(p)
    act = ACTIVATIONS[activation]
    # dz = ((s * mask2 * dout) @ fc2_weight) * mask1 * gelu'(z): GELU backward in the epilogue.
    dz = torch.empty((M, I), device=x.device, dtype=fc1_weight.dtype)
    gemm(
        g,
        fc2_weight,
        dz,
        z=z,
        scale=scale,
        rows_per_sample=rows_per_sample,
        a_scale=scale is not None,
        seed=seed,
        a_seed=seed_o,
        c_seed=seed_h,
        p_drop=p,
        act_grad=act,
    )
    dw2 = torch.empty(fc2_weight.shape, device=x.device, dtype=fc2_weight.dtype)
    db2 = torch.empty(D, device=x.device, dtype=fc2_weight.dtype)
    gemm_tn(g, h, dw2, db=db2, scale=scale, rows_per_sample=rows_per_sample, seed=seed, a_seed=seed_o, p_drop=p)
    dw1 = torch.empty(fc1_weight.shape, device=x.device, dtype=fc1_weight.dtype)
    db1 = torch.empty(I, device=x.device, dtype=fc1_weight.dtype)
    gemm_tn(dz, x2, dw1, db=db1, ln=(mean, rstd, ln_weight, ln_bias))
    dn = torch.empty((M, D), device=x.device, dtype=torch.float32)
    gemm(dz, fc1_weight, dn)
    dx, dgamma, dbeta = layer_norm_bwd(dn, x2, mean, rstd, ln_weight, g, x.dtype, ln_bias.dtype)
    return dx.view(x.shape), dgamma, dbeta, dw1, db1, dw2, db2


def _ln_linear_fwd_impl(x, ln_weight, ln_bias, weight, bias, eps):
    x2 = _rows(x)
    M = x2.shape[0]
    N = weight.shape[0]
    ln_weight, ln_bias = ln_weight.contiguous(), ln_bias.contiguous()
    mean, rstd = layer_norm_stats(x2, eps)
    out = torch.empty((M, N), device=x.device, dtype=weight.dtype)  # the compute dtype, as eager's F.linear
    gemm(x2, weight.t(), out, bias=bias.contiguous() if bias is not None else None, ln=(mean, rstd, ln_weight, ln_bias))
    return out.view(*x.shape[:-1], N), mean, rstd


def _ln_linear_bwd_impl(dout, x, ln_weight, ln_bias, weight, mean, rstd, has_bias):
    x2 = _rows(x)
    g = _rows(dout)
    M, D = x2.shape
    N = weight.shape[0]
    ln_weight, ln_bias = ln_weight.contiguous(), ln_bias.contiguous()
    dw = torch.empty(weight.shape, device=x.device, dtype=weight.dtype)
    db = torch.empty(N, device=x.device, dtype=weight.dtype) if has_bias else None
    gemm_tn(g, x2, dw, db=db, ln=(mean, rstd, ln_weight, ln_bias))
    dn = torch.empty((M, D), device=x.device, dtype=torch.float32)
    gemm(g, weight, dn)
    dx, dgamma, dbeta = layer_norm_bwd(dn, x2, mean, rstd, ln_weight, None, x.dtype, ln_bias.dtype)
    if db is None:
        db = weight.new_empty(0)
    return dx.view(x.shape), dgamma, dbeta, dw, db


# ----------------------------------------------------------------------------------------------------------------------
# Custom ops (opaque to torch.compile) with fake implementations and autograd
# ----------------------------------------------------------------------------------------------------------------------


@torch.library.custom_op("vivit_kernels::ln_mlp_fwd", mutates_args=())
def _ln_mlp_fwd_op(
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    fc1_weight: torch.Tensor,
    fc1_bias: torch.Tensor,
    fc2_weight: torch.Tensor,
    fc2_bias: torch.Tensor,
    drop_path_scale: torch.Tensor | None,
    eps: float,
    activation: str,
    dropout_p: float,
    seed: torch.Tensor,
    save_for_backward: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    with device_guard(x):
        return _ln_mlp_fwd_impl(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, drop_path_scale,
                                eps, activation, dropout_p, seed, save_for_backward)  # fmt: skip


@_ln_mlp_fwd_op.register_fake
def _(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, drop_path_scale, eps, activation, dropout_p,
      seed, save_for_backward):  # fmt: skip
    M = x.numel() // x.shape[-1]
    I = fc1_weight.shape[0]
    stats = x.new_empty((M,), dtype=torch.float32)
    z = fc1_weight.new_empty((M, I) if save_for_backward else (0,))
    return x.new_empty(x.shape), stats, torch.empty_like(stats), z, fc1_weight.new_empty((M, I))


@torch.library.custom_op("vivit_kernels::ln_mlp_bwd", mutates_args=())
def _ln_mlp_bwd_op(
    dout: torch.Tensor,
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    fc1_weight: torch.Tensor,
    fc2_weight: torch.Tensor,
    drop_path_scale: torch.Tensor | None,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    z: torch.Tensor,
    h: torch.Tensor,
    activation: str,
    dropout_p: float,
    seed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    with device_guard(x):
        return _ln_mlp_bwd_impl(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, drop_path_scale, mean, rstd, z,
                                h, activation, dropout_p, seed)  # fmt: skip


@_ln_mlp_bwd_op.register_fake
def _(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, drop_path_scale, mean, rstd, z, h, activation, dropout_p,
      seed):  # fmt: skip
    I, D = fc1_weight.shape
    return (
        x.new_empty(x.shape),
        ln_weight.new_empty((D,)),
        ln_bias.new_empty((D,)),
        torch.empty_like(fc1_weight, memory_format=torch.contiguous_format),
        fc1_weight.new_empty((I,)),
        torch.empty_like(fc2_weight, memory_format=torch.contiguous_format),
        fc2_weight.new_empty((D,)),
    )


def _ln_mlp_setup_context(ctx, inputs, output):
    x, ln_weight, ln_bias, fc1_weight, _, fc2_weight, _, scale, _, activation, dropout_p, seed, save = inputs
    _, mean, rstd, z, h = output
    ctx.save_for_backward(x, ln_weight, ln_bias, fc1_weight, fc2_weight, scale, mean, rstd, z, h, seed)
    ctx.args = (activation, dropout_p, save)
    ctx.bias_dtypes = (inputs[4].dtype, inputs[6].dtype)


def _ln_mlp_backward(ctx, dout, *_):
    x, ln_weight, ln_bias, fc1_weight, fc2_weight, scale, mean, rstd, z, h, seed = ctx.saved_tensors
    activation, dropout_p, save = ctx.args
    if not save:
        raise RuntimeError("ln_mlp: backward through a forward run with save_for_backward=False")
    grads = torch.ops.vivit_kernels.ln_mlp_bwd(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, scale, mean, rstd,
                                               z, h, activation, dropout_p, seed)  # fmt: skip
    dx, dgamma, dbeta, dw1, db1, dw2, db2 = grads
    db1, db2 = db1.to(ctx.bias_dtypes[0]), db2.to(ctx.bias_dtypes[1])  # biases may be stored in another float dtype
    return dx, dgamma, dbeta, dw1, db1, dw2, db2, None, None, None, None, None, None


torch.library.register_autograd("vivit_kernels::ln_mlp_fwd", _ln_mlp_backward, setup_context=_ln_mlp_setup_context)


@torch.library.custom_op("vivit_kernels::ln_linear_fwd", mutates_args=())
def _ln_linear_fwd_op(
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with device_guard(x):
        return _ln_linear_fwd_impl(x, ln_weight, ln_bias, weight, bias, eps)


@_ln_linear_fwd_op.register_fake
def _(x, ln_weight, ln_bias, weight, bias, eps):
    M = x.numel() // x.shape[-1]
    stats = x.new_empty((M,), dtype=torch.float32)
    return weight.new_empty((*x.shape[:-1], weight.shape[0])), stats, torch.empty_like(stats)


@torch.library.custom_op("vivit_kernels::ln_linear_bwd", mutates_args=())
def _ln_linear_bwd_op(
    dout: torch.Tensor,
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    has_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    with device_guard(x):
        return _ln_linear_bwd_impl(dout, x, ln_weight, ln_bias, weight, mean, rstd, has_bias)


@_ln_linear_bwd_op.register_fake
def _(dout, x, ln_weight, ln_bias, weight, mean, rstd, has_bias):
    N, D = weight.shape
    return (
        x.new_empty(x.shape),
        ln_weight.new_empty((D,)),
        ln_bias.new_empty((D,)),
        torch.empty_like(weight, memory_format=torch.contiguous_format),
        weight.new_empty((N,) if has_bias else (0,)),
    )


def _ln_linear_setup_context(ctx, inputs, output):
    x, ln_weight, ln_bias, weight, bias, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, ln_weight, ln_bias, weight, mean, rstd)
    ctx.has_bias = bias is not None
    ctx.bias_dtype = bias.dtype if bias is not None else None


def _ln_linear_backward(ctx, dout, *_):
    x, ln_weight, ln_bias, weight, mean, rstd = ctx.saved_tensors
    dx, dgamma, dbeta, dw, db = torch.ops.vivit_kernels.ln_linear_bwd(
        dout, x, ln_weight, ln_bias, weight, mean, rstd, ctx.has_bias
    )
    return dx, dgamma, dbeta, dw, db.to(ctx.bias_dtype) if ctx.has_bias else None, None


torch.library.register_autograd(
    "vivit_kernels::ln_linear_fwd", _ln_linear_backward, setup_context=_ln_linear_setup_context
)


# ----------------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------------


def _gelu_approximate(activation: str) -> str:
    return "tanh" if activation == "gelu_tanh" else "none"


def _shape_error(op: str, name: str, expected, received) -> ValueError:
    return ValueError(f"{op}: {name} must have shape {tuple(expected)}, received {tuple(received)}")


def _check_common(op: str, x, ln_weight, ln_bias, eps, backend):
    if backend not in BACKENDS:
        raise ValueError(f"{op}: backend must be one of {BACKENDS}, received {backend!r}")
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{op}: x must be a tensor of shape (..., D) with D > 0, received {shape}")
    D = x.shape[-1]
    if ln_weight.shape != (D,):
        raise _shape_error(op, "ln_weight", (D,), ln_weight.shape)
    if ln_bias.shape != (D,):
        raise _shape_error(op, "ln_bias", (D,), ln_bias.shape)
    if not eps > 0:
        raise ValueError(f"{op}: eps must be > 0, received {eps!r}")
    return D


def _triton_or_raise(op: str, *tensors) -> None:
    reason = triton_unsupported_reason(*tensors)
    if reason is not None:
        raise NotImplementedError(f"{op}: {reason}")


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
    backend: str = "eager",
    dropout_seed: int | None = None,
) -> torch.Tensor:
    """x + s * drop(fc2(drop(act(fc1(LN(x)))))) for x (..., D); s = drop_path_scale (B,) with x (B, L, D), or 1.

    activation: "gelu_tanh" (HF gelu_fast / gelu_new / gelu_pytorch_tanh) or "gelu" (erf). Dropout (after the
    activation and after fc2) applies only when `training`. dropout_seed: Triton backend only (the Philox seed;
    drawn from torch's default generator when None); the eager backend uses `F.dropout`.
    """
    op = "ln_mlp"
    D = _check_common(op, x, ln_weight, ln_bias, eps, backend)
    I = fc1_weight.shape[0] if fc1_weight.dim() == 2 else -1
    if fc1_weight.dim() != 2 or fc1_weight.shape[1] != D or I == 0:
        raise _shape_error(op, "fc1_weight", ("I", D), fc1_weight.shape)
    if fc1_bias.shape != (I,):
        raise _shape_error(op, "fc1_bias", (I,), fc1_bias.shape)
    if fc2_weight.shape != (D, I):
        raise _shape_error(op, "fc2_weight", (D, I), fc2_weight.shape)
    if fc2_bias.shape != (D,):
        raise _shape_error(op, "fc2_bias", (D,), fc2_bias.shape)
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: activation must be one of {tuple(ACTIVATIONS)}, received {activation!r}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], received {dropout_p!r}")
    if drop_path_scale is not None:
        if x.dim() != 3:
            raise ValueError(f"{op}: drop_path_scale needs x of shape (B, L, D), received x {tuple(x.shape)}")
        if drop_path_scale.shape != (x.shape[0],):
            raise _shape_error(op, "drop_path_scale", (x.shape[0],), drop_path_scale.shape)
    p = float(dropout_p) if training else 0.0

    if backend == "eager":
        if dropout_seed is not None:
            raise ValueError(f"{op}: dropout_seed is for backend='triton' only, received backend='eager'")
        h = F.layer_norm(x, (D,), ln_weight, ln_bias, eps)
        h = F.gelu(F.linear(h, fc1_weight, fc1_bias), approximate=_gelu_approximate(activation))
        h = F.dropout(h, p, training)
        y = F.dropout(F.linear(h, fc2_weight, fc2_bias), p, training)
        if drop_path_scale is not None:
            y = y * drop_path_scale.to(y.dtype)[:, None, None]
        return x + y

    _triton_or_raise(op, x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, drop_path_scale)
    # Under autocast the GEMM operands take the dtype eager's F.linear would give them; x, the LayerNorm and the
    # residual stream stay as they are.
    dtype = autocast_dtype(x.device.type)
    fc1_weight, fc1_bias, fc2_weight, fc2_bias, drop_path_scale = (
        autocast_cast(t, dtype) for t in (fc1_weight, fc1_bias, fc2_weight, fc2_bias, drop_path_scale)
    )
    # The Philox seed lives on the op's device and the kernels read it there: a CUDA graph replays with a new one.
    if p > 0.0 and dropout_seed is None:
        seed = torch.randint(0, 2**31 - 2, (1,), dtype=torch.int64, device=x.device)
    elif p > 0.0:
        seed = torch.full((1,), int(dropout_seed), dtype=torch.int64, device=x.device)
    else:
        seed = torch.empty((1,), dtype=torch.int64, device=x.device)  # never read without dropout
    params = (ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias)
    save = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in params))
    return torch.ops.vivit_kernels.ln_mlp_fwd(x, *params, drop_path_scale, float(eps), activation, p, seed, save)[0]


def ln_linear(
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    eps: float,
    backend: str = "eager",
) -> torch.Tensor:
    """LN(x) @ weight.T + bias for x (..., D), weight (N, D), bias (N,) or None: the fused QKV projection."""
    op = "ln_linear"
    D = _check_common(op, x, ln_weight, ln_bias, eps, backend)
    if weight.dim() != 2 or weight.shape[1] != D or weight.shape[0] == 0:
        raise _shape_error(op, "weight", ("N", D), weight.shape)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise _shape_error(op, "bias", (weight.shape[0],), bias.shape)
    if backend == "eager":
        return F.linear(F.layer_norm(x, (D,), ln_weight, ln_bias, eps), weight, bias)
    _triton_or_raise(op, x, ln_weight, ln_bias, weight, bias)
    dtype = autocast_dtype(x.device.type)  # as for ln_mlp: only the linear's operands are cast
    weight, bias = autocast_cast(weight, dtype), autocast_cast(bias, dtype)
    return torch.ops.vivit_kernels.ln_linear_fwd(x, ln_weight, ln_bias, weight, bias, float(eps))[0]


def triton_unsupported_reason(*tensors: torch.Tensor | None) -> str | None:
    """None when the Triton ln_mlp/ln_linear kernels can run on these tensors (x first, then the parameters and the
    drop-path scale, in any order). Weight matrices share one dtype, the compute dtype (under autocast, the autocast
    dtype they are cast to); x has that dtype, or under autocast any supported one (the fp32 residual stream); vectors
    (LayerNorm, biases, scale) may be any of float16, bfloat16, float32 (the kernels read them in fp32)."""
    tensors = [t for t in tensors if t is not None]
    reason = triton_unavailable_reason(*tensors)
    if reason is not None:
        return reason
    x = tensors[0]
    matrices = {compute_dtype(t) for t in tensors[1:] if t.dim() >= 2}
    if len(matrices) > 1:
        return f"weight matrices must share one dtype, received {sorted(map(str, matrices))}"
    dtype = matrices.pop() if matrices else x.dtype
    if dtype not in DTYPES:
        return f"dtype {dtype} is not supported (expected one of float16, bfloat16, float32)"
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype} is not supported (expected one of float16, bfloat16, float32)"
    if x.dtype != dtype and autocast_dtype(x.device.type) is None:  # as eager's F.linear, mixed only under autocast
        return f"weight matrices must have x's dtype {x.dtype}, received {[str(dtype)]}"
    odd = sorted({str(t.dtype) for t in tensors[1:] if t.dim() < 2 and t.dtype not in DTYPES})
    if odd:
        return f"parameter vectors must be float16, bfloat16 or float32, received {odd}"
    if x.shape[-1] > MAX_HIDDEN:
        return f"hidden size {x.shape[-1]} is above the supported maximum {MAX_HIDDEN}"
    return None


def shared_bytes_needed(dtype: torch.dtype, x_dtype: torch.dtype | None = None) -> int:
    """An upper bound of the shared memory per program of every GEMM the ops launch with compute dtype `dtype` and
    activations of `x_dtype` (default: the same): the pipelined A and B tiles of each configuration, plus 1 KiB for
    the LayerNorm statistics and reductions. tests/test_aot.py checks it against every compiled configuration."""
    size = torch.tensor([], dtype=dtype).element_size()
    x_size = torch.tensor([], dtype=x_dtype or dtype).element_size()
    need = 0
    for heavy in (False, True):
        for a_size in {size, x_size}:
            cfg = gemm_config(dtype, heavy=heavy, interpret=False, wide_a=a_size > size)
            tiles = cfg["BLOCK_M"] * cfg["BLOCK_K"] * a_size + cfg["BLOCK_K"] * cfg["BLOCK_N"] * size
            need = max(need, cfg["num_stages"] * tiles)
    for wide in {False, x_size > size}:
        cfg = gemm_tn_config(dtype, interpret=False, wide=wide)
        a_size = x_size if wide else size
        tiles = cfg["BLOCK_M"] * (cfg["BLOCK_N"] * a_size + cfg["BLOCK_K"] * a_size)
        need = max(need, cfg["num_stages"] * tiles)
    return need + 1024


def auto_config_reason(dtype: torch.dtype, precision: str, arch: int, shared_limit: int,
                       x_dtype: torch.dtype | None = None) -> str | None:  # fmt: skip
    """The `auto` rule of ln_mlp / ln_linear for one configuration, shared by vivit.models.dispatch and
    vivit_kernels.report: None when the kernels are the fast, checked choice on sm_`arch` with `shared_limit` bytes per
    program. On top of the common rule: 16-bit compute only. fp32 GEMMs (tf32) leave little for the fusion to win
    against cuBLAS, and their configurations are not in the compile report."""
    if dtype == torch.float32:
        return "float32 GEMMs are left to cuBLAS (16-bit compute, e.g. under autocast, takes the fused kernels)"
    return auto_reason(dtype, precision, arch, shared_bytes_needed(dtype, x_dtype), shared_limit)


def auto_unsupported_reason(*tensors: torch.Tensor | None) -> str | None:
    """None when backend="auto" takes the Triton kernels for these tensors (as triton_unsupported_reason takes them),
    else why not: the call must run (triton_unsupported_reason) and be fast and checked on its device
    (auto_config_reason), with the dtype autocast gives the weights."""
    reason = triton_unsupported_reason(*tensors)
    if reason is not None:
        return reason
    x = tensors[0]
    caps = device_caps(x.device)
    if caps is None:
        return f"auto takes kernels on CUDA devices only, not {x.device}"
    weight = next(t for t in tensors[1:] if t is not None and t.dim() >= 2)
    dtype = compute_dtype(weight)
    precision = fp32_precision() if dtype == torch.float32 else "ieee"
    return auto_config_reason(dtype, precision, caps.arch, caps.shared_per_block, x.dtype)


def ln_mlp_reference(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, *, eps, activation="gelu_tanh",
                     hidden_keep=None, output_keep=None, dropout_p=0.0, drop_path_scale=None):  # fmt: skip
    """Test oracle in fp64 (returns fp64). Dropout is given as explicit bool keep masks: hidden_keep (..., I) after
    the activation and output_keep (..., D) after fc2, each scaled by 1 / (1 - dropout_p)."""
    d = torch.float64
    h = F.layer_norm(x.to(d), (x.shape[-1],), ln_weight.to(d), ln_bias.to(d), eps)
    h = F.gelu(F.linear(h, fc1_weight.to(d), fc1_bias.to(d)), approximate=_gelu_approximate(activation))
    if hidden_keep is not None:
        h = h * hidden_keep.to(d) * drop_scale(dropout_p)
    y = F.linear(h, fc2_weight.to(d), fc2_bias.to(d))
    if output_keep is not None:
        y = y * output_keep.to(d) * drop_scale(dropout_p)
    if drop_path_scale is not None:
        y = y * drop_path_scale.to(d).view(-1, *([1] * (y.dim() - 1)))
    return x.to(d) + y


def ln_linear_reference(x, ln_weight, ln_bias, weight, bias=None, *, eps):
    """Test oracle in fp64 (returns fp64)."""
    d = torch.float64
    h = F.layer_norm(x.to(d), (x.shape[-1],), ln_weight.to(d), ln_bias.to(d), eps)
    return F.linear(h, weight.to(d), None if bias is None else bias.to(d))


# ----------------------------------------------------------------------------------------------------------------------
# Ahead-of-time specs (ViViT-B: D=768, I=3072, M = 8 * 3137 tokens)
# ----------------------------------------------------------------------------------------------------------------------

_AOT_M, _AOT_D, _AOT_I, _AOT_L = 8 * 3137, 768, 3072, 3137
_PTR_TYPE = {torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.float32: "*fp32"}


def _spec_from_values(name: str, config: str, fn, values: dict, constexprs: dict, cfg: dict):
    """A KernelSpec typed the way the runtime would launch `fn` with these argument values: tensors are given as
    their pointer type ("*bf16"; allocations are 16-byte aligned), None and the integer 1 become constexprs, other
    integers are i32 (16-divisible ones hinted), floats fp32."""
    import inspect

    from .aot import KernelSpec

    raw = getattr(fn, "fn", fn)
    unspecialized = {"seed", "seed_off_a", "seed_off_c"}
    launch = {k: v for k, v in cfg.items() if k not in ("num_warps", "num_stages")}
    constexprs = {**constexprs, **launch}
    signature, consts, divisible = {}, dict(constexprs), []
    for arg in inspect.signature(raw).parameters:
        if arg in constexprs:
            signature[arg] = "constexpr"
            continue
        value = values[arg]
        if value is None or (type(value) is int and value == 1 and arg not in unspecialized):
            signature[arg], consts[arg] = "constexpr", value
        elif isinstance(value, str):
            signature[arg] = value
            divisible.append(arg)
        elif isinstance(value, float):
            signature[arg] = "fp32"
        else:
            signature[arg] = "i32"
            if value % 16 == 0 and arg not in unspecialized:
                divisible.append(arg)
    return KernelSpec(
        name=name,
        config=config,
        fn=fn,
        signature=signature,
        constexprs=consts,
        num_warps=cfg.get("num_warps", 4),
        num_stages=cfg.get("num_stages", 2),
        divisible=tuple(divisible),
    )


_NAME = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}


def _variant_label(dtype, precision, x_dtype) -> str:
    """'bfloat16', 'bfloat16 x=fp32' (autocast: fp32 activations over bf16 weights), 'float32 tf32'."""
    label = _NAME[dtype] + (f" {precision}" if dtype == torch.float32 else "")
    return label + (" x=fp32" if x_dtype != dtype else "")


def _auto(dtype, precision, x_dtype):
    import functools

    return dict(
        auto_rule=functools.partial(auto_config_reason, dtype, precision, x_dtype=x_dtype),
        shared_estimate=shared_bytes_needed(dtype, x_dtype),
    )


def _gemm_aot(name, variant, M, N, K, a, b, c, *, a_x=False, c_x=False, c_ptr=None, ln=False, bias=False, z=None,
              residual=None, **flags):  # fmt: skip
    """A `gemm_kernel` spec; a, b, c, z, residual are (row stride, column stride) of contiguous ViViT tensors.
    variant = (compute dtype, fp32 dot precision, activations' dtype); a_x / c_x: A / C (and the residual) are
    activations (the residual stream: fp32 under autocast)."""
    dtype, precision, x_dtype = variant
    ptr, xptr = _PTR_TYPE[dtype], _PTR_TYPE[x_dtype]
    heavy = flags.get("A_DROPOUT", False) or flags.get("C_DROPOUT", False) or flags.get("ACT_GRAD", 0) != 0
    cfg = gemm_config(dtype, heavy=heavy, interpret=False, wide_a=a_x and x_dtype != dtype)
    scaled = flags.get("A_SCALE", False) or flags.get("C_SCALE", False)
    values = dict(
        a_ptr=xptr if a_x else ptr, b_ptr=ptr, c_ptr=c_ptr or (xptr if c_x else ptr), z_ptr=ptr if z else None,
        res_ptr=xptr if residual else None, bias_ptr=ptr if bias else None, scale_ptr=ptr if scaled else None,
        mean_ptr="*fp32" if ln else None, rstd_ptr="*fp32" if ln else None,
        gamma_ptr=xptr if ln else None, beta_ptr=xptr if ln else None,
        seed_ptr="*i64" if flags.get("A_DROPOUT") or flags.get("C_DROPOUT") else None,
        M=M, N=N, K=K, rows_per_sample=_AOT_L if scaled else 1,
        stride_am=a[0], stride_ak=a[1], stride_bk=b[0], stride_bn=b[1], stride_cm=c[0], stride_cn=c[1],
        stride_zm=z[0] if z else 0, stride_zn=z[1] if z else 0,
        stride_rm=residual[0] if residual else 0, stride_rn=residual[1] if residual else 0,
        seed_off_a=1, seed_off_c=0, p_drop=0.1, drop_scale=1.0 / 0.9,
    )  # fmt: skip
    constexprs = dict(
        A_LAYERNORM=ln, A_SCALE=False, A_DROPOUT=False, HAS_BIAS=bias, STORE_Z=False, ACT=0, C_DROPOUT=False,
        ACT_GRAD=0, C_SCALE=False, HAS_RESIDUAL=residual is not None, UPCAST=False, PRECISION=precision,
    )  # fmt: skip
    constexprs.update(flags)
    parts = [_variant_label(dtype, precision, x_dtype)]
    parts += [f"{k}={v}" for k, v in flags.items() if k in ("ACT", "ACT_GRAD")]
    parts += [k for k, v in flags.items() if v is True] + (["NO_BIAS"] if ln and not bias else [])
    parts.append(f"M{cfg['BLOCK_M']} N{cfg['BLOCK_N']} K{cfg['BLOCK_K']} w{cfg['num_warps']} s{cfg['num_stages']}")
    spec = _spec_from_values(name, " ".join(parts), gemm_kernel, values, constexprs, cfg)
    for key, value in _auto(*variant).items():
        setattr(spec, key, value)
    return spec


def _gemm_tn_aot(name, variant, M, N, K, a, b, *, a_x=False, b_x=False, ln=False, scale=False, dropout=False,
                 db=True):  # fmt: skip
    """A `gemm_tn_kernel` spec writing fp32 split-M partials (what ViViT-B's row counts launch on an H100).
    a_x / b_x: that operand is an activation (fp32 under autocast: the output gradient, or x normalised on load)."""
    dtype, precision, x_dtype = variant
    ptr, xptr = _PTR_TYPE[dtype], _PTR_TYPE[x_dtype]
    wide = (a_x or b_x) and x_dtype != dtype
    cfg = gemm_tn_config(dtype, interpret=False, wide=wide)
    rows_per_split = triton.cdiv(triton.cdiv(M, 4), cfg["BLOCK_M"]) * cfg["BLOCK_M"]
    values = dict(
        a_ptr=xptr if a_x else ptr, b_ptr=xptr if b_x else ptr, c_ptr="*fp32", db_ptr="*fp32" if db else None,
        scale_ptr=ptr if scale else None, mean_ptr="*fp32" if ln else None, rstd_ptr="*fp32" if ln else None,
        gamma_ptr=xptr if ln else None, beta_ptr=xptr if ln else None, seed_ptr="*i64" if dropout else None,
        M=M, N=N, K=K, rows_per_sample=_AOT_L if scale else 1, rows_per_split=rows_per_split,
        stride_am=a[0], stride_an=a[1], stride_bm=b[0], stride_bk=b[1], stride_cs=N * K, stride_cn=K, stride_ck=1,
        stride_dbs=N, seed_off_a=1, p_drop=0.1, drop_scale=1.0 / 0.9,
    )  # fmt: skip
    flags = dict(A_SCALE=scale, A_DROPOUT=dropout, B_LAYERNORM=ln, HAS_DB=db)
    constexprs = dict(**flags, UPCAST=False, PRECISION=precision)
    tiles = f"N{cfg['BLOCK_N']} K{cfg['BLOCK_K']} M{cfg['BLOCK_M']} w{cfg['num_warps']} s{cfg['num_stages']}"
    label = "".join(f"{k} " for k, v in flags.items() if v)
    config = f"{_variant_label(dtype, precision, x_dtype)} {label}{tiles}"
    spec = _spec_from_values(name, config, gemm_tn_kernel, values, constexprs, cfg)
    for key, value in _auto(*variant).items():
        setattr(spec, key, value)
    return spec


# (compute dtype, fp32 dot precision, activations' dtype): 16-bit models and 16-bit autocast over fp32 activations.
# fp32 compute (tf32 or ieee dots) is strict-only: auto leaves it to cuBLAS (see auto_config_reason); not listed.
AOT_VARIANTS = (
    (torch.bfloat16, "ieee", torch.bfloat16),
    (torch.float16, "ieee", torch.float16),
    (torch.bfloat16, "ieee", torch.float32),
    (torch.float16, "ieee", torch.float32),
)


def aot_specs() -> list:
    """Every GEMM configuration the ops launch at ViViT-B shapes (D=768, I=3072, M=8*3137; QKV N=3*768), for each
    AOT_VARIANTS entry, with the auto rule of its calls. Configurations shared by both ops (ln_linear's backward dX
    GEMM is ln_mlp's) or by variants compile once in the report.

    The LayerNorm row kernels (`aot_row_specs()`) come last, marked `uses_dot=False`: no tensor-core instruction is
    expected of them, the other checks (spills, registers, shared memory) apply."""
    if not HAS_TRITON:
        return []
    M, D, I = _AOT_M, _AOT_D, _AOT_I
    N3 = 3 * D
    specs = []
    for v in AOT_VARIANTS:
        for act in (1, 2):
            # fc1: inference; training (z stored for GELU's backward); training with hidden dropout.
            for store_z, dropout in ((False, False), (True, False), (True, True)):
                specs.append(
                    _gemm_aot("ln_mlp_fwd_fc1", v, M, I, D, (D, 1), (1, D), (I, 1), a_x=True, ln=True, bias=True,
                              z=(I, 1) if store_z else None, ACT=act, STORE_Z=store_z, C_DROPOUT=dropout)
                )  # fmt: skip
            for scale, dropout in itertools.product((False, True), repeat=2):
                specs.append(
                    _gemm_aot("ln_mlp_bwd_dz", v, M, I, D, (D, 1), (I, 1), (I, 1), a_x=True, z=(I, 1), ACT_GRAD=act,
                              A_SCALE=scale, A_DROPOUT=dropout, C_DROPOUT=dropout)
                )  # fmt: skip
        for scale, dropout in itertools.product((False, True), repeat=2):
            specs.append(
                _gemm_aot("ln_mlp_fwd_fc2", v, M, D, I, (I, 1), (1, I), (D, 1), c_x=True, bias=True,
                          residual=(D, 1), C_DROPOUT=dropout, C_SCALE=scale)
            )  # fmt: skip
            specs.append(
                _gemm_tn_aot("ln_mlp_bwd_dw2", v, M, D, I, (D, 1), (I, 1), a_x=True, scale=scale, dropout=dropout)
            )
        specs.append(_gemm_aot("ln_mlp_bwd_dx", v, M, D, I, (I, 1), (D, 1), (D, 1), c_ptr="*fp32"))
        specs.append(_gemm_tn_aot("ln_mlp_bwd_dw1", v, M, I, D, (I, 1), (D, 1), b_x=True, ln=True))
        for bias in (True, False):
            specs.append(_gemm_aot("ln_linear_fwd", v, M, N3, D, (D, 1), (1, D), (N3, 1), a_x=True, ln=True, bias=bias))
            specs.append(_gemm_tn_aot("ln_linear_bwd_dw", v, M, N3, D, (N3, 1), (D, 1), b_x=True, ln=True, db=bias))
        specs.append(_gemm_aot("ln_linear_bwd_dx", v, M, D, N3, (N3, 1), (D, 1), (D, 1), c_ptr="*fp32"))
    for spec in aot_row_specs():
        spec.uses_dot = False
        specs.append(spec)
    return specs


def aot_row_specs() -> list:
    """The kernels without a dot (LayerNorm statistics and backward, the fixed-order sum of fp32 partials behind
    dgamma/dbeta and split-M weight gradients) at ViViT-B shapes, for the activations' dtypes of AOT_VARIANTS."""
    if not HAS_TRITON:
        return []
    M, D = _AOT_M, _AOT_D
    row = row_config(D, interpret=False)
    P = 4 * 132  # the partial rows the backward writes on an H100 (4 programs per SM)
    specs = []
    # Each activations' dtype once, with the auto rule of a variant that launches it (the rule is the op's).
    for dt, variant in {v[2]: v for v in AOT_VARIANTS}.items():
        ptr = _PTR_TYPE[dt]
        name = _NAME[dt]
        tiles = f"M{row['BLOCK_M']} D{row['BLOCK_D']} w{row['num_warps']}"
        values = dict(x_ptr=ptr, mean_ptr="*fp32", rstd_ptr="*fp32", M=M, D=D, stride_xm=D, stride_xd=1, eps=1e-6)
        specs.append(_spec_from_values("layer_norm_stats_fwd", f"{name} {tiles}", layer_norm_stats_kernel, values,
                                       {}, row))  # fmt: skip
        for residual in (False, True):
            values = dict(
                dn_ptr="*fp32", x_ptr=ptr, res_ptr=ptr if residual else None, dx_ptr=ptr, mean_ptr="*fp32",
                rstd_ptr="*fp32", gamma_ptr=ptr, dgamma_ptr="*fp32", dbeta_ptr="*fp32", M=M, D=D, stride_dnm=D,
                stride_xm=D, stride_xd=1, stride_rm=D if residual else 0, stride_rd=1 if residual else 0, stride_dxm=D,
            )  # fmt: skip
            config = f"{name} {'HAS_RESIDUAL ' if residual else ''}{tiles}"
            specs.append(_spec_from_values("layer_norm_bwd", config, layer_norm_bwd_kernel, values,
                                           dict(HAS_RESIDUAL=residual), row))  # fmt: skip
        values = dict(part_ptr="*fp32", out_ptr=ptr, P=P, D=D)
        specs.append(_spec_from_values("ln_mlp_bwd_partial_sum", f"{name} P16 D256 w4", partial_sum_kernel, values, {},
                                       dict(BLOCK_P=16, BLOCK_D=256, num_warps=4)))  # fmt: skip
        for spec in specs[-4:]:
            for key, value in _auto(*variant).items():
                setattr(spec, key, value)
    return specs


__all__ = [
    "ln_mlp",
    "ln_linear",
    "ln_mlp_reference",
    "ln_linear_reference",
    "triton_unsupported_reason",
    "dropout_keep_mask",
    "aot_specs",
    "aot_row_specs",
]
