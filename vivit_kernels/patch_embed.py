"""Tubelet patch embedding (ViViT's Conv3d with kernel == stride) as one fused GEMM, forward and backward.

    out = patch_embed(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls=..., backend="eager"|"triton")

Because the kernel equals the stride, Conv3d is a plain GEMM: every tubelet of C x t x h x w pixels is one row of
length K = C*t*h*w, multiplied by the weight flattened in (C, t, h, w) order. Remainders of F, H, W are dropped.

backend="eager": rearrange + one `F.linear` (differentiable PyTorch, torch.compile-friendly).
backend="triton" (custom ops vivit_kernels::patch_embed_fwd / patch_embed_bwd under an autograd.Function):
- forward, `_patch_embed_fwd_kernel`: implicit im2col. Each program owns a BLOCK_M x BLOCK_N tile of tokens x hidden;
  it forms its tubelet rows on the fly from the video's own strides (HF layout (B, F, C, H, W) or any view; no
  rearranged copy), accumulates in fp32 over K, adds bias and position embedding in the epilogue and stores straight
  into the token tensor at the row the layout gives it (after the CLS row(s)). `_patch_embed_cls_kernel` writes the
  CLS row(s), cls_token + pos_embed[0]. With the innermost pixel stride 1 and 16-aligned strides the compiler emits
  16-byte cp.async loads for the gathered rows (checked in the PTX for sm_80).
- backward: dW = dY^T @ tubelets, over the same on-the-fly rows, split over row chunks to fill the GPU and summed in
  a fixed order (`_patch_embed_bwd_dw_kernel`); dpos (position sums of dY over batch and, where shared, frames) in
  `_patch_embed_bwd_pos_kernel`, from which dcls (position 0) and db (sum of the token positions) follow;
  dX = dY @ W scattered back to pixels (`_patch_embed_bwd_dx_kernel`), only when pixel_values needs a gradient:
  kernel == stride, so every pixel belongs to at most one tubelet and is written by exactly one program (remainder
  pixels are zero). No atomics anywhere: the backward is deterministic.
- numerics: fp32 accumulation and epilogue math for fp16/bf16/fp32 inputs, one rounding at the store. fp32 inputs
  use an ieee dot when torch.get_float32_matmul_precision() == "highest", tf32 otherwise. Under TRITON_INTERPRET the
  bf16 dot operands are rounded to bf16 and multiplied in fp32 (DOT_F32) because the interpreter's bf16 dot is broken.
- dtypes: pixel_values, weight and bias share the compute dtype; pos_embed and cls_token may be wider (under
  torch.autocast the Triton path casts only what eager's F.linear would cast), and the tokens then have the
  promoted dtype, as eager's `tokens + pos_embed` has. The output gradient (that dtype) is rounded to the compute
  dtype right before the dW and dX dots.

GPU goal: for ViViT-B input (32 frames of 224^2, bf16) the forward >= 1.3x faster than rearrange + contiguous +
F.linear and >= 3x faster than nn.Conv3d. Measured on an H200 (bench/first_light.py, BENCHMARKS.md): 14x Conv3d +
cat + pos forward, 3.5-4.1x forward + backward; `auto` takes it.
What was checked without a GPU (aot_specs, vivit_kernels.report): the kept configurations (bf16, fp16, fp32-tf32)
compile for sm_80, sm_86 and sm_90 with tensor-core instructions (mma.sync / wgmma), no spills and shared memory within
limits; the fp32-ieee variants of the same tiles compile without spills too (no tensor cores by definition).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vivit_kernels._utils import (
    HAS_TRITON,
    INTERPRET,
    auto_reason,
    autocast_cast,
    autocast_dtype,
    compute_dtype,
    device_caps,
    device_guard,
    fp32_precision,
    triton_unavailable_reason,
)

if HAS_TRITON:
    import triton
    import triton.language as tl

    _jit = triton.jit
else:  # pragma: no cover - the eager path still works; annotations stay unevaluated strings

    def _jit(fn):
        return fn


BACKENDS = ("eager", "triton")


# ----------------------------------------------------------------------------------------------------------------------
# Shapes and argument checks
# ----------------------------------------------------------------------------------------------------------------------


def _require_5d(name: str, value, layout: str) -> None:
    if not isinstance(value, torch.Tensor) or value.dim() != 5:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"patch_embed: {name} must be 5-D {layout}, got {got}")


def _check_inputs(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls):
    """Raise a ValueError/TypeError naming the argument, the expected shape/dtype and what was received."""
    _require_5d("pixel_values", pixel_values, "(batch, frames, channels, height, width)")
    _require_5d("weight", weight, "(hidden, channels, t, h, w) like Conv3d")
    if not pixel_values.is_floating_point():
        raise TypeError(f"patch_embed: pixel_values must be a floating tensor, got dtype {pixel_values.dtype}")
    B, nF, C, H, W = pixel_values.shape
    D, Cw, t, h, w = weight.shape
    if Cw != C:
        raise ValueError(
            f"patch_embed: pixel_values has {C} channels (dim 2 of (B, F, C, H, W), shape {tuple(pixel_values.shape)})"
            f" but weight expects {Cw} (dim 1 of {tuple(weight.shape)})"
        )
    if nF < t or H < h or W < w:
        raise ValueError(
            f"patch_embed: pixel_values (frames, height, width) = {(nF, H, W)} is smaller than one tubelet "
            f"(t, h, w) = {(t, h, w)} from weight {tuple(weight.shape)}"
        )
    if B == 0 or D == 0:
        raise ValueError(
            f"patch_embed: empty batch or hidden size (pixel_values {tuple(pixel_values.shape)}, "
            f"weight {tuple(weight.shape)})"
        )
    Tp, Hp, Wp = nF // t, H // h, W // w
    S = Hp * Wp
    N = Tp * S
    for name, tensor in (("weight", weight), ("bias", bias), ("pos_embed", pos_embed), ("cls_token", cls_token)):
        if tensor is None:
            continue
        if name in ("pos_embed", "cls_token"):  # added after the GEMM: any floating dtype, the result promotes
            if not tensor.is_floating_point():
                raise TypeError(f"patch_embed: {name} must be a floating tensor, got dtype {tensor.dtype}")
        elif tensor.dtype != pixel_values.dtype:
            raise TypeError(
                f"patch_embed: {name} has dtype {tensor.dtype}, expected pixel_values' dtype {pixel_values.dtype}"
            )
        if tensor.device != pixel_values.device:
            raise ValueError(
                f"patch_embed: {name} is on {tensor.device}, expected pixel_values' device {pixel_values.device}"
            )
    if bias is not None and tuple(bias.shape) != (D,):
        raise ValueError(f"patch_embed: bias must have shape (hidden,) = {(D,)}, got {tuple(bias.shape)}")
    if cls_token is not None and tuple(cls_token.shape) != (D,):
        raise ValueError(f"patch_embed: cls_token must have shape (hidden,) = {(D,)}, got {tuple(cls_token.shape)}")
    if per_frame_cls and cls_token is None:
        raise ValueError("patch_embed: per_frame_cls=True needs a cls_token of shape (hidden,), got None")
    if pos_embed is not None:
        if cls_token is None:
            allowed = [(N, D), (S, D)]
            what = "(tokens, hidden) or (tokens per frame, hidden)"
        elif per_frame_cls:
            allowed = [(1 + S, D)]
            what = "(1 + tokens per frame, hidden)"
        else:
            allowed = [(1 + N, D)]
            what = "(1 + tokens, hidden)"
        if tuple(pos_embed.shape) not in allowed:
            raise ValueError(
                f"patch_embed: pos_embed must have shape {what} = {' or '.join(map(str, dict.fromkeys(allowed)))} "
                f"for this layout (tokens = {N}, tokens per frame = {S}), got {tuple(pos_embed.shape)}"
            )


def _geometry(pixel_values: torch.Tensor, weight: torch.Tensor) -> tuple:
    """(B, D, t, h, w, T', W', S, N, K): batch, hidden, tubelet, token grid (remainders dropped), tubelet size."""
    B, nF, C, H, W = pixel_values.shape
    D, _, t, h, w = weight.shape
    Tp, Hp, Wp = nF // t, H // h, W // w
    return B, D, t, h, w, Tp, Wp, Hp * Wp, Tp * Hp * Wp, C * t * h * w


def _output_shape(B, Tp, S, D, has_cls, per_frame_cls):
    if not has_cls:
        return (B, Tp * S, D)
    if per_frame_cls:
        return (B, Tp, 1 + S, D)
    return (B, 1 + Tp * S, D)


# ----------------------------------------------------------------------------------------------------------------------
# Eager path and reference
# ----------------------------------------------------------------------------------------------------------------------


def _tubelet_rows(pixel_values: torch.Tensor, t: int, h: int, w: int) -> torch.Tensor:
    """(B, F, C, H, W) -> (B, N, C*t*h*w): one row per tubelet, time-major token order, (C, t, h, w) within a row."""
    B, nF, C, H, W = pixel_values.shape
    Tp, Hp, Wp = nF // t, H // h, W // w
    x = pixel_values[:, : Tp * t, :, : Hp * h, : Wp * w]
    x = x.reshape(B, Tp, t, C, Hp, h, Wp, w).permute(0, 1, 4, 6, 3, 2, 5, 7)
    return x.reshape(B, Tp * Hp * Wp, C * t * h * w)


def _place_tokens(tokens, pos_embed, cls_token, per_frame_cls, Tp, S):
    """Add the position embedding to (B, N, D) tokens and put the CLS row(s) in place."""
    B, N, D = tokens.shape
    if cls_token is None:
        if pos_embed is None:
            return tokens
        if pos_embed.shape[0] == N:
            return tokens + pos_embed
        return (tokens.view(B, Tp, S, D) + pos_embed).view(B, N, D)
    if per_frame_cls:
        tokens = tokens.view(B, Tp, S, D)
        out = torch.cat([cls_token.view(1, 1, 1, D).expand(B, Tp, 1, D), tokens], dim=2)
    else:
        out = torch.cat([cls_token.view(1, 1, D).expand(B, 1, D), tokens], dim=1)
    return out if pos_embed is None else out + pos_embed


def _patch_embed_eager(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls):
    _, D, t, h, w, Tp, _, S, _, K = _geometry(pixel_values, weight)
    tokens = F.linear(_tubelet_rows(pixel_values, t, h, w), weight.reshape(D, K), bias)
    return _place_tokens(tokens, pos_embed, cls_token, per_frame_cls, Tp, S)


def patch_embed_reference(pixel_values, weight, bias=None, pos_embed=None, cls_token=None, *, per_frame_cls=False):
    """The definition: nn.functional.conv3d with stride == kernel on (B, C, F, H, W), in fp32 or wider (test oracle)."""
    _check_inputs(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls)
    dtype = torch.promote_types(pixel_values.dtype, torch.float32)
    up = lambda x: None if x is None else x.to(dtype)
    D, C, t, h, w = weight.shape
    y = F.conv3d(up(pixel_values).transpose(1, 2), up(weight), up(bias), stride=(t, h, w))  # (B, D, Tp, Hp, Wp)
    B, _, Tp, Hp, Wp = y.shape
    tokens = y.flatten(2).transpose(1, 2)  # (B, N, D), (t, h, w) time-major
    return _place_tokens(tokens, up(pos_embed), up(cls_token), per_frame_cls, Tp, Hp * Wp)


# ----------------------------------------------------------------------------------------------------------------------
# Triton kernels
#
# Shared indexing. Token row m of the GEMM is (b, tp, s) with m = b*N + tp*S + s and s = hp*Wp + wp; it reads the
# tubelet at frames tp*T.., rows hp*PH.., columns wp*PW.. of batch item b. Column k is (c, dt, dh, dw) in Conv3d
# weight order. A token tensor (output, its gradient) is addressed as b*stride_b + tp*stride_t + (CLS_OFF+s)*stride_r:
# the launchers express every layout, (B, N, D), (B, 1+N, D) and (B, T', 1+S, D), through these three strides.
# ----------------------------------------------------------------------------------------------------------------------


@_jit
def _tubelet_index(offs_m, N, S, Wp):
    """Token rows -> (batch, frame, spatial index, patch row, patch column); batch and frame in int64 (row bases)."""
    b = offs_m // N
    n = offs_m % N
    tp = n // S
    s = n % S
    return b.to(tl.int64), tp.to(tl.int64), s, s // Wp, s % Wp


@_jit
def _tubelet_row(
    b, tp, hp, wp, stride_xb, stride_xf, stride_xh, stride_xw, T: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr
):
    """Pixel offset (int64) of the first pixel of each token's tubelet."""
    return b * stride_xb + tp * T * stride_xf + (hp * PH).to(tl.int64) * stride_xh + (wp * PW).to(tl.int64) * stride_xw


@_jit
def _token_row(b, tp, s, stride_b, stride_t, stride_r, CLS_OFF: tl.constexpr):
    """Offset (int64) of each token's row in a token tensor (output or its gradient), after the CLS row(s)."""
    return b * stride_b + tp * stride_t + (s + CLS_OFF).to(tl.int64) * stride_r


@_jit
def _tubelet_col(
    offs_k, stride_xf, stride_xc, stride_xh, stride_xw, T: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr
):
    """Columns k = (c, dt, dh, dw) -> pixel offset in a tubelet (int32; triton_unsupported_reason checks the span)."""
    c = offs_k // (T * PH * PW)
    r = offs_k % (T * PH * PW)
    dt = r // (PH * PW)
    r = r % (PH * PW)
    return c * stride_xc + dt * stride_xf + (r // PW) * stride_xh + (r % PW) * stride_xw


@_jit
def _patch_embed_fwd_kernel(
    x_ptr, w_ptr, b_ptr, pos_ptr, out_ptr,
    M, N, S, Wp, D, K,
    stride_xb, stride_xf, stride_xc, stride_xh, stride_xw,
    stride_wd, stride_wk,
    stride_pt, stride_pr, stride_pd,
    stride_ob, stride_ot, stride_or, stride_od,
    T: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, CLS_OFF: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_POS: tl.constexpr, DOT_F32: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # N tiles vary fastest: the programs sharing one video tile run together and reuse it from L2.
    pid = tl.program_id(0)
    num_n = tl.cdiv(D, BLOCK_N)
    pid_m, pid_n = pid // num_n, pid % num_n
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m, mask_n = offs_m < M, offs_n < D
    b, tp, s, hp, wp = _tubelet_index(offs_m, N, S, Wp)
    x_row = _tubelet_row(b, tp, hp, wp, stride_xb, stride_xf, stride_xh, stride_xw, T, PH, PW)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        x_col = _tubelet_col(offs_k, stride_xf, stride_xc, stride_xh, stride_xw, T, PH, PW)
        x = tl.load(x_ptr + x_row[:, None] + x_col[None, :], mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        w = tl.load(
            w_ptr + offs_k[:, None] * stride_wk + offs_n[None, :] * stride_wd,
            mask=mask_k[:, None] & mask_n[None, :],
            other=0.0,
        )
        if DOT_F32:  # the interpreter's bf16 dot is broken: multiply in fp32 there
            x, w = x.to(tl.float32), w.to(tl.float32)
        acc = tl.dot(x, w, acc, input_precision=PRECISION)

    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    if HAS_POS:
        pos_row = tp * stride_pt + (s + CLS_OFF).to(tl.int64) * stride_pr
        pos = tl.load(
            pos_ptr + pos_row[:, None] + offs_n[None, :] * stride_pd,
            mask=mask_m[:, None] & mask_n[None, :],
            other=0.0,
        )
        acc += pos.to(tl.float32)
    out_row = _token_row(b, tp, s, stride_ob, stride_ot, stride_or, CLS_OFF)
    tl.store(
        out_ptr + out_row[:, None] + offs_n[None, :] * stride_od,
        acc.to(out_ptr.dtype.element_ty),
        mask=mask_m[:, None] & mask_n[None, :],
    )


@_jit
def _patch_embed_cls_kernel(
    cls_ptr, pos_ptr, out_ptr,
    R, RT, D,
    stride_pd, stride_ob, stride_ot, stride_od,
    HAS_POS: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Writes cls_token + pos_embed[0] into the R = B*RT CLS rows (RT = 1, or T' with per-frame CLS)."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_r, mask_n = offs_r < R, offs_n < D
    val = tl.load(cls_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    if HAS_POS:
        val += tl.load(pos_ptr + offs_n * stride_pd, mask=mask_n, other=0.0).to(tl.float32)
    row = (offs_r // RT).to(tl.int64) * stride_ob + (offs_r % RT).to(tl.int64) * stride_ot
    tile = tl.zeros((BLOCK_R, BLOCK_N), dtype=tl.float32) + val[None, :]
    tl.store(
        out_ptr + row[:, None] + offs_n[None, :] * stride_od,
        tile.to(out_ptr.dtype.element_ty),
        mask=mask_r[:, None] & mask_n[None, :],
    )


@_jit
def _patch_embed_bwd_pos_kernel(
    g_ptr, dpos_ptr,
    R, RT, P, D,
    stride_gb, stride_gt, stride_gr, stride_gd,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dpos[p] = sum over the R = B*RT copies of position p of the output gradient (fp32, fixed order)."""
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_p < P)[:, None] & (offs_n < D)[None, :]
    offs = offs_p.to(tl.int64)[:, None] * stride_gr + offs_n[None, :] * stride_gd
    acc = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    for r in range(0, R):
        base = (r // RT).to(tl.int64) * stride_gb + (r % RT).to(tl.int64) * stride_gt
        acc += tl.load(g_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(dpos_ptr + offs_p[:, None] * D + offs_n[None, :], acc, mask=mask)


@_jit
def _patch_embed_bwd_dw_kernel(
    x_ptr, g_ptr, dw_ptr,
    M, N, S, Wp, D, K, M_PER_SPLIT,
    stride_xb, stride_xf, stride_xc, stride_xh, stride_xw,
    stride_gb, stride_gt, stride_gr, stride_gd,
    T: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, CLS_OFF: tl.constexpr,
    DOT_F32: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Partial dW[split] = dY[rows of split]^T @ tubelets[rows of split]; the launcher sums the splits in order."""
    pid = tl.program_id(0)
    pid_split = tl.program_id(1)
    num_k = tl.cdiv(K, BLOCK_K)
    pid_n, pid_k = pid // num_k, pid % num_k
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_n, mask_k = offs_n < D, offs_k < K
    x_col = _tubelet_col(offs_k, stride_xf, stride_xc, stride_xh, stride_xw, T, PH, PW)

    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    m_start = pid_split * M_PER_SPLIT
    m_end = tl.minimum(M, m_start + M_PER_SPLIT)
    for m0 in range(m_start, m_end, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mask_m = offs_m < m_end
        b, tp, s, hp, wp = _tubelet_index(offs_m, N, S, Wp)
        x_row = _tubelet_row(b, tp, hp, wp, stride_xb, stride_xf, stride_xh, stride_xw, T, PH, PW)
        g_row = _token_row(b, tp, s, stride_gb, stride_gt, stride_gr, CLS_OFF)
        g = tl.load(
            g_ptr + g_row[:, None] + offs_n[None, :] * stride_gd, mask=mask_m[:, None] & mask_n[None, :], other=0.0
        )
        x = tl.load(x_ptr + x_row[:, None] + x_col[None, :], mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        g = g.to(x_ptr.dtype.element_ty)  # the output gradient may be wider than the compute dtype (autocast)
        if DOT_F32:
            g, x = g.to(tl.float32), x.to(tl.float32)
        acc = tl.dot(tl.trans(g), x, acc, input_precision=PRECISION)

    dw_offs = pid_split.to(tl.int64) * D * K + offs_n[:, None] * K + offs_k[None, :]
    tl.store(dw_ptr + dw_offs, acc, mask=mask_n[:, None] & mask_k[None, :])


@_jit
def _patch_embed_bwd_dx_kernel(
    g_ptr, w_ptr, dx_ptr,
    M, N, S, Wp, D, K,
    stride_gb, stride_gt, stride_gr, stride_gd,
    stride_wd, stride_wk,
    stride_xb, stride_xf, stride_xc, stride_xh, stride_xw,
    T: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, CLS_OFF: tl.constexpr,
    DOT_F32: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """dX tubelets = dY @ W, scattered back to pixels: kernel == stride, so every pixel is written by one program."""
    pid = tl.program_id(0)
    num_k = tl.cdiv(K, BLOCK_K)
    pid_m, pid_k = pid // num_k, pid % num_k
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_m, mask_k = offs_m < M, offs_k < K
    b, tp, s, hp, wp = _tubelet_index(offs_m, N, S, Wp)
    g_row = _token_row(b, tp, s, stride_gb, stride_gt, stride_gr, CLS_OFF)

    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for n0 in range(0, D, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < D
        g = tl.load(
            g_ptr + g_row[:, None] + offs_n[None, :] * stride_gd, mask=mask_m[:, None] & mask_n[None, :], other=0.0
        )
        w = tl.load(
            w_ptr + offs_n[:, None] * stride_wd + offs_k[None, :] * stride_wk,
            mask=mask_n[:, None] & mask_k[None, :],
            other=0.0,
        )
        g = g.to(w_ptr.dtype.element_ty)  # the output gradient may be wider than the compute dtype (autocast)
        if DOT_F32:
            g, w = g.to(tl.float32), w.to(tl.float32)
        acc = tl.dot(g, w, acc, input_precision=PRECISION)

    x_row = _tubelet_row(b, tp, hp, wp, stride_xb, stride_xf, stride_xh, stride_xw, T, PH, PW)
    x_col = _tubelet_col(offs_k, stride_xf, stride_xc, stride_xh, stride_xw, T, PH, PW)
    tl.store(
        dx_ptr + x_row[:, None] + x_col[None, :],
        acc.to(dx_ptr.dtype.element_ty),
        mask=mask_m[:, None] & mask_k[None, :],
    )


# ----------------------------------------------------------------------------------------------------------------------
# Launch configuration
# ----------------------------------------------------------------------------------------------------------------------

# Kept GPU configurations (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) for 16-bit and for fp32 inputs; BLOCK_N
# tiles the hidden size D and BLOCK_K the tubelet size K in every kernel. fp32 tiles are smaller so that they fit
# shared memory on sm_80 and do not spill with an ieee (non tensor-core) dot. Checked ahead of time by aot_specs();
# clamped down for small problems.
_CONFIGS = {
    "fwd": {2: (128, 128, 64, 8, 3), 4: (64, 64, 32, 4, 3)},
    "dw": {2: (64, 128, 128, 8, 3), 4: (32, 64, 64, 4, 3)},
    # dW with an fp32 output gradient over 16-bit pixels (autocast): the 128-wide tile spills on sm_90.
    "dw_wide": {2: (64, 64, 128, 8, 3)},
    "dx": {2: (128, 64, 128, 8, 3), 4: (64, 32, 64, 4, 3)},
}
_POS_CONFIG = (16, 128)  # BLOCK_P, BLOCK_N


def _clamp(block: int, size: int) -> int:
    """Shrink a tile to the problem (powers of two, at least 16 for tl.dot)."""
    return max(16, min(block, triton.next_power_of_2(size)))


def _tiles(kernel: str, pixel_values: torch.Tensor, M: int, D: int, K: int) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) of a GEMM kernel ("fwd", "dw", "dx") for this problem."""
    block_m, block_n, block_k, num_warps, num_stages = _CONFIGS[kernel][pixel_values.element_size()]
    return _clamp(block_m, M), _clamp(block_n, D), _clamp(block_k, K), num_warps, num_stages


def _dot_args(dtype: torch.dtype) -> dict:
    precision = fp32_precision() if dtype == torch.float32 else "ieee"
    return dict(DOT_F32=INTERPRET and dtype == torch.bfloat16, PRECISION=precision)


def _out_dtype(pixel_values, pos_embed, cls_token) -> torch.dtype:
    """The tokens' dtype: the compute dtype promoted with the position embedding's and CLS token's, as in eager."""
    dtype = pixel_values.dtype
    for t in (pos_embed, cls_token):
        dtype = dtype if t is None else torch.promote_types(dtype, t.dtype)
    return dtype


def _new_empty(shape, like: torch.Tensor, dtype=None) -> torch.Tensor:
    """Every buffer the kernels fully overwrite is allocated here (tests poison it to catch unwritten elements)."""
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device)


def _token_strides(tokens: torch.Tensor, S: int) -> tuple[int, int, int, int]:
    """(stride_b, stride_t, stride_r, stride_d) of a token tensor (B, R, D) or (B, T', 1+S, D), see the index note."""
    if tokens.dim() == 3:
        sb, sr, sd = tokens.stride()
        return sb, S * sr, sr, sd
    return tokens.stride()


def _x_strides(pixel_values: torch.Tensor) -> dict:
    sb, sf, sc, sh, sw = pixel_values.stride()
    return dict(stride_xb=sb, stride_xf=sf, stride_xc=sc, stride_xh=sh, stride_xw=sw)


def _patch_embed_fwd_launch(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls):
    B, D, t, h, w, Tp, Wp, S, N, K = _geometry(pixel_values, weight)
    has_cls = cls_token is not None
    out = _new_empty(
        _output_shape(B, Tp, S, D, has_cls, per_frame_cls), pixel_values, _out_dtype(pixel_values, pos_embed, cls_token)
    )
    stride_ob, stride_ot, stride_or, stride_od = _token_strides(out, S)
    w2 = weight.reshape(D, K)
    # The (D,) vectors are read with unit stride; copying a strided one costs nothing next to the GEMM.
    bias = bias.contiguous() if bias is not None else None
    cls_token = cls_token.contiguous() if cls_token is not None else None
    if pos_embed is not None:
        stride_pr, stride_pd = pos_embed.stride()
        stride_pt = S * stride_pr if pos_embed.shape[0] in (N, 1 + N) and not per_frame_cls else 0
    else:
        stride_pt = stride_pr = stride_pd = 0
    M = B * N
    block_m, block_n, block_k, num_warps, num_stages = _tiles("fwd", pixel_values, M, D, K)
    grid = (triton.cdiv(M, block_m) * triton.cdiv(D, block_n),)
    _patch_embed_fwd_kernel[grid](
        x_ptr=pixel_values, w_ptr=w2, b_ptr=bias if bias is not None else w2, out_ptr=out,
        pos_ptr=pos_embed if pos_embed is not None else w2,
        M=M, N=N, S=S, Wp=Wp, D=D, K=K,
        **_x_strides(pixel_values),
        stride_wd=w2.stride(0), stride_wk=w2.stride(1),
        stride_pt=stride_pt, stride_pr=stride_pr, stride_pd=stride_pd,
        stride_ob=stride_ob, stride_ot=stride_ot, stride_or=stride_or, stride_od=stride_od,
        T=t, PH=h, PW=w, CLS_OFF=int(has_cls),
        HAS_BIAS=bias is not None, HAS_POS=pos_embed is not None, **_dot_args(pixel_values.dtype),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    if has_cls:
        RT = Tp if per_frame_cls else 1
        block_r, block_n = 16, _clamp(128, D)
        grid = (triton.cdiv(B * RT, block_r), triton.cdiv(D, block_n))
        _patch_embed_cls_kernel[grid](
            cls_ptr=cls_token, pos_ptr=pos_embed if pos_embed is not None else cls_token, out_ptr=out,
            R=B * RT, RT=RT, D=D,
            stride_pd=pos_embed.stride(1) if pos_embed is not None else 0,
            stride_ob=stride_ob, stride_ot=stride_ot, stride_od=stride_od,
            HAS_POS=pos_embed is not None, BLOCK_R=block_r, BLOCK_N=block_n,
        )  # fmt: skip
    return out


def _dw_splits(M: int, tiles: int, block_m: int, device: torch.device) -> int:
    """How many row chunks dW is split into so that the GPU is filled; partials are summed in a fixed order."""
    if device.type == "cuda":
        target, min_steps = 2 * torch.cuda.get_device_properties(device).multi_processor_count, 8
    else:  # interpreter: a few chunks, so the split path is what the tests exercise
        target, min_steps = 4, 2
    return max(1, min(triton.cdiv(target, tiles), M // (block_m * min_steps)))


def _patch_embed_bwd_launch(grad_out, pixel_values, weight, has_cls, per_frame_cls, pos_per_frame, need_dx):
    B, D, t, h, w, Tp, Wp, S, N, K = _geometry(pixel_values, weight)
    M = B * N
    cls_off = int(has_cls)
    stride_gb, stride_gt, stride_gr, stride_gd = _token_strides(grad_out, S)
    g_strides = dict(stride_gb=stride_gb, stride_gt=stride_gt, stride_gr=stride_gr, stride_gd=stride_gd)
    dot = _dot_args(pixel_values.dtype)

    # Per-position sums of dY: dpos, and from them dcls (position 0 with a CLS token) and db (all other positions).
    if per_frame_cls or (not has_cls and pos_per_frame):
        RT, P, stride_t = Tp, cls_off + S, stride_gt
    else:
        RT, P, stride_t = 1, cls_off + N, 0
    dpos = _new_empty((P, D), grad_out, torch.float32)
    block_p, block_n = _POS_CONFIG
    block_p, block_n = _clamp(block_p, P), _clamp(block_n, D)
    _patch_embed_bwd_pos_kernel[(triton.cdiv(P, block_p), triton.cdiv(D, block_n))](
        g_ptr=grad_out, dpos_ptr=dpos, R=B * RT, RT=RT, P=P, D=D,
        stride_gb=stride_gb, stride_gt=stride_t, stride_gr=stride_gr, stride_gd=stride_gd,
        BLOCK_P=block_p, BLOCK_N=block_n,
    )  # fmt: skip
    db = dpos[cls_off:].sum(0)

    wide = grad_out.element_size() > pixel_values.element_size()
    block_m, block_n, block_k, num_warps, num_stages = _tiles("dw_wide" if wide else "dw", pixel_values, M, D, K)
    tiles = triton.cdiv(D, block_n) * triton.cdiv(K, block_k)
    splits = _dw_splits(M, tiles, block_m, grad_out.device)
    m_per_split = triton.cdiv(triton.cdiv(M, splits), block_m) * block_m
    splits = triton.cdiv(M, m_per_split)
    dw = _new_empty((splits, D, K), grad_out, torch.float32)
    _patch_embed_bwd_dw_kernel[(tiles, splits)](
        x_ptr=pixel_values, g_ptr=grad_out, dw_ptr=dw,
        M=M, N=N, S=S, Wp=Wp, D=D, K=K, M_PER_SPLIT=m_per_split,
        **_x_strides(pixel_values), **g_strides,
        T=t, PH=h, PW=w, CLS_OFF=cls_off, **dot,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    dw = dw.sum(0) if splits > 1 else dw[0]

    if need_dx:
        _, nF, _, H, W = pixel_values.shape
        exact = nF == Tp * t and H % h == 0 and W % w == 0
        # Pixels of a dropped remainder get no tubelet, hence zeros; all others are written exactly once.
        dx = _new_empty(pixel_values.shape, pixel_values) if exact else pixel_values.new_zeros(pixel_values.shape)
        w2 = weight.reshape(D, K)
        block_m, block_n, block_k, num_warps, num_stages = _tiles("dx", pixel_values, M, D, K)
        grid = (triton.cdiv(M, block_m) * triton.cdiv(K, block_k),)
        _patch_embed_bwd_dx_kernel[grid](
            g_ptr=grad_out, w_ptr=w2, dx_ptr=dx,
            M=M, N=N, S=S, Wp=Wp, D=D, K=K, **g_strides,
            stride_wd=w2.stride(0), stride_wk=w2.stride(1), **_x_strides(dx),
            T=t, PH=h, PW=w, CLS_OFF=cls_off, **dot,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=num_warps, num_stages=num_stages,
        )  # fmt: skip
    else:
        dx = pixel_values.new_empty((0,))
    dtype = weight.dtype
    return dx, dw.to(dtype).view(weight.shape), db.to(dtype), dpos  # dpos stays fp32: pos_embed may be fp32


# ----------------------------------------------------------------------------------------------------------------------
# Custom ops and autograd
# ----------------------------------------------------------------------------------------------------------------------


@torch.library.custom_op("vivit_kernels::patch_embed_fwd", mutates_args=())
def _patch_embed_fwd_op(
    pixel_values: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    pos_embed: torch.Tensor | None,
    cls_token: torch.Tensor | None,
    per_frame_cls: bool,
) -> torch.Tensor:
    with device_guard(pixel_values):
        return _patch_embed_fwd_launch(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls)


@_patch_embed_fwd_op.register_fake
def _(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls):
    B, D, t, h, w, Tp, Wp, S, N, K = _geometry(pixel_values, weight)
    shape = _output_shape(B, Tp, S, D, cls_token is not None, per_frame_cls)
    return pixel_values.new_empty(shape, dtype=_out_dtype(pixel_values, pos_embed, cls_token))


@torch.library.custom_op("vivit_kernels::patch_embed_bwd", mutates_args=())
def _patch_embed_bwd_op(
    grad_out: torch.Tensor,
    pixel_values: torch.Tensor,
    weight: torch.Tensor,
    has_cls: bool,
    per_frame_cls: bool,
    pos_per_frame: bool,
    need_dx: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dpixel_values or an empty tensor, dweight, dbias, per-position fp32 sums of grad_out: dpos / dcls)."""
    with device_guard(pixel_values):
        return _patch_embed_bwd_launch(grad_out, pixel_values, weight, has_cls, per_frame_cls, pos_per_frame, need_dx)


@_patch_embed_bwd_op.register_fake
def _(grad_out, pixel_values, weight, has_cls, per_frame_cls, pos_per_frame, need_dx):
    B, D, t, h, w, Tp, Wp, S, N, K = _geometry(pixel_values, weight)
    P = int(has_cls) + (S if per_frame_cls or (not has_cls and pos_per_frame) else N)
    dx = pixel_values.new_empty(pixel_values.shape if need_dx else (0,))
    return dx, weight.new_empty(weight.shape), weight.new_empty((D,)), weight.new_empty((P, D), dtype=torch.float32)


class PatchEmbedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls):
        out = torch.ops.vivit_kernels.patch_embed_fwd(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls)
        ctx.save_for_backward(pixel_values, weight)
        ctx.has = (bias is not None, pos_embed is not None, cls_token is not None)
        ctx.dtypes = tuple(None if t is None else t.dtype for t in (pos_embed, cls_token))
        ctx.per_frame_cls = per_frame_cls
        S = _geometry(pixel_values, weight)[7]  # tokens per frame
        ctx.pos_per_frame = pos_embed is not None and cls_token is None and pos_embed.shape[0] == S
        return out

    @staticmethod
    def backward(ctx, grad_out):
        pixel_values, weight = ctx.saved_tensors
        has_bias, has_pos, has_cls = ctx.has
        need_dx = ctx.needs_input_grad[0]
        dx, dw, db, dpos = torch.ops.vivit_kernels.patch_embed_bwd(
            grad_out, pixel_values, weight, has_cls, ctx.per_frame_cls, ctx.pos_per_frame, need_dx
        )
        return (
            dx if need_dx else None,
            dw,
            db if has_bias else None,
            dpos.to(ctx.dtypes[0]) if has_pos else None,
            dpos[0].to(ctx.dtypes[1]) if has_cls else None,
            None,
        )


# ----------------------------------------------------------------------------------------------------------------------
# Ahead-of-time specs
# ----------------------------------------------------------------------------------------------------------------------


# (compute dtype, fp32 dot precision, tokens' dtype): 16-bit models; 16-bit autocast, whose tokens (and their
# gradient) are fp32 because pos_embed / cls_token stay fp32; fp32 with tf32 dots, and with ieee dots (auto leaves
# that to eager: no tensor cores).
AOT_VARIANTS = (
    ("bf16", "ieee", "bf16"),
    ("fp16", "ieee", "fp16"),
    ("bf16", "ieee", "fp32"),
    ("fp16", "ieee", "fp32"),
    ("fp32", "tf32", "fp32"),
    ("fp32", "ieee", "fp32"),
)
_TORCH_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_TOKEN_PTRS = ("out_ptr", "pos_ptr", "g_ptr", "cls_ptr")  # pointers to tensors in the tokens' dtype


def aot_specs() -> list:
    """Every GEMM kernel configuration patch_embed launches at ViViT-B shapes (D=768, tubelet 3x2x16x16 so K=1536,
    M = 32*3136) for each AOT_VARIANTS entry, then the two small kernels without a GEMM (CLS rows, position sums of
    dY), marked `uses_dot=False`; each with the auto rule of its calls."""
    import functools

    from vivit_kernels.aot import KernelSpec

    tile = dict(T=2, PH=16, PW=16, CLS_OFF=1)
    x_strides = ("stride_xb", "stride_xf", "stride_xc", "stride_xh")
    g_strides = ("stride_gb", "stride_gt", "stride_gr")
    unit = ("stride_xw", "stride_wk", "stride_pd", "stride_od", "stride_gd")  # runtime specialises stride 1
    kernels = {
        "patch_embed_fwd": (
            "fwd",
            _patch_embed_fwd_kernel,
            (*x_strides, "stride_wd", "stride_pt", "stride_pr", "stride_ob", "stride_ot", "stride_or"),
            dict(HAS_BIAS=True, HAS_POS=True),
        ),
        "patch_embed_bwd_dw": ("dw", _patch_embed_bwd_dw_kernel, (*x_strides, *g_strides), {}),
        "patch_embed_bwd_dx": (
            "dx",
            _patch_embed_bwd_dx_kernel,
            (*g_strides, "stride_wd", *x_strides),
            {},
        ),
    }

    def signature(fn, dtype: str, tokens: str, constexprs: dict) -> dict:
        out = {}
        for arg in fn.arg_names:  # in the kernel's own order, as the runtime binds them
            if arg in constexprs or arg in unit:
                out[arg] = "constexpr"
                constexprs.setdefault(arg, 1)
            elif arg in ("dw_ptr", "dpos_ptr"):
                out[arg] = "*fp32"
            elif arg in _TOKEN_PTRS:
                out[arg] = f"*{tokens}"
            elif arg.endswith("_ptr"):
                out[arg] = f"*{dtype}"
            else:
                out[arg] = "i32"
        return out

    def label(dtype, precision, tokens):
        return dtype + (f" {precision}" if dtype == "fp32" else "") + (" tokens=fp32" if tokens != dtype else "")

    specs = []
    for dtype, precision, tokens in AOT_VARIANTS:
        auto = dict(
            auto_rule=functools.partial(auto_config_reason, _TORCH_DTYPE[dtype], precision,
                                        token_dtype=_TORCH_DTYPE[tokens]),
            shared_estimate=shared_bytes_needed(_TORCH_DTYPE[dtype], _TORCH_DTYPE[tokens]),
        )  # fmt: skip
        for name, (key, fn, strides, flags) in kernels.items():
            key = "dw_wide" if key == "dw" and tokens != dtype else key
            block_m, block_n, block_k, num_warps, num_stages = _CONFIGS[key][4 if dtype == "fp32" else 2]
            constexprs = dict(
                **tile, **flags, DOT_F32=False, PRECISION=precision, BLOCK_M=block_m, BLOCK_N=block_n,
                BLOCK_K=block_k,
            )  # fmt: skip
            signature_ = signature(fn, dtype, tokens, constexprs)
            specs.append(
                KernelSpec(
                    name=name,
                    config=f"{label(dtype, precision, tokens)} M{block_m} N{block_n} K{block_k} w{num_warps} "
                    f"s{num_stages}",
                    fn=fn,
                    signature=signature_,
                    constexprs=constexprs,
                    num_warps=num_warps,
                    num_stages=num_stages,
                    divisible=(*[a for a in signature_ if a.endswith("_ptr")], "D", "K", *strides),
                    **auto,
                )
            )
        if precision == "ieee" and dtype == "fp32":
            continue  # the row kernels below do not depend on the dot precision
        # The row kernels, as the launchers run them at D=768 (default num_warps=4, num_stages=3).
        block_p, block_n = _POS_CONFIG
        row_kernels = {
            "patch_embed_fwd_cls": (_patch_embed_cls_kernel, dict(HAS_POS=True, BLOCK_R=16, BLOCK_N=128),
                                    ("stride_ob", "stride_ot")),
            "patch_embed_bwd_pos": (_patch_embed_bwd_pos_kernel, dict(BLOCK_P=block_p, BLOCK_N=block_n),
                                    ("stride_gb", "stride_gt", "stride_gr")),
        }  # fmt: skip
        for name, (fn, constexprs, strides) in row_kernels.items():
            constexprs = dict(constexprs)
            signature_ = signature(fn, dtype, tokens, constexprs)
            blocks = " ".join(f"{k}={v}" for k, v in constexprs.items() if k.startswith("BLOCK"))
            specs.append(
                KernelSpec(
                    name=name,
                    config=f"{label(dtype, precision, tokens)} {blocks} w4",
                    fn=fn,
                    signature=signature_,
                    constexprs=constexprs,
                    num_warps=4,
                    num_stages=3,
                    divisible=(*[a for a in signature_ if a.endswith("_ptr")], "D", *strides),
                    uses_dot=False,
                    **auto,
                )
            )
    return specs


# ----------------------------------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------------------------------


def triton_unsupported_reason(pixel_values, weight, bias=None, pos_embed=None, cls_token=None) -> str | None:
    """None when backend="triton" can run on these tensors, else why not."""
    tensors = [x for x in (pixel_values, weight, bias, pos_embed, cls_token) if x is not None]
    reason = triton_unavailable_reason(*tensors)
    if reason is not None:
        return reason
    supported = (torch.float32, torch.float16, torch.bfloat16)
    dtype = compute_dtype(pixel_values)
    if dtype not in supported:
        return f"dtype {dtype} is not supported (float32, float16, bfloat16)"
    for name, t in (("pos_embed", pos_embed), ("cls_token", cls_token)):
        if t is not None and t.dtype not in supported:
            return f"{name} dtype {t.dtype} is not supported (float32, float16, bfloat16)"
    if pixel_values.dim() == 5 and weight.dim() == 5:
        # In-tubelet offsets and token indices are 32-bit inside the kernels (row bases are 64-bit).
        _, C, t, h, w = weight.shape
        _, stride_f, stride_c, stride_h, stride_w = pixel_values.stride()
        span = (C - 1) * stride_c + (t - 1) * stride_f + (h - 1) * stride_h + (w - 1) * stride_w
        if span >= 2**31:
            return f"a tubelet spans {span} elements of pixel_values' storage (the kernels index it with int32)"
        if pixel_values.numel() >= 2**31:
            return f"pixel_values has {pixel_values.numel()} elements (the kernels count tokens with int32)"
    return None


def shared_bytes_needed(dtype: torch.dtype, token_dtype: torch.dtype | None = None) -> int:
    """An upper bound of the shared memory per program of the GEMM kernels at compute dtype `dtype` with tokens (and
    their gradient) of `token_dtype` (default: the same; fp32 under autocast with fp32 pos_embed): the pipelined
    operand tiles plus 1 KiB. Checked against every compiled configuration by tests/test_aot.py."""
    size = torch.tensor([], dtype=dtype).element_size()
    g_size = torch.tensor([], dtype=token_dtype or dtype).element_size()
    need = 0
    for kernel, configs in _CONFIGS.items():
        if size not in configs or (kernel == "dw_wide") != (g_size > size) and kernel in ("dw", "dw_wide"):
            continue
        bm, bn, bk, _, stages = configs[size]
        if kernel == "fwd":  # video tile (M x K) and weight tile (K x N)
            tiles = bm * bk * size + bk * bn * size
        elif kernel in ("dw", "dw_wide"):  # gradient tile (M x N) and video tile (M x K)
            tiles = bm * bn * g_size + bm * bk * size
        else:  # dx: gradient tile (M x N) and weight tile (N x K)
            tiles = bm * bn * g_size + bn * bk * size
        need = max(need, stages * tiles)
    return need + 1024


def auto_config_reason(dtype: torch.dtype, precision: str, arch: int, shared_limit: int,
                       token_dtype: torch.dtype | None = None) -> str | None:  # fmt: skip
    """The `auto` rule of patch_embed for one configuration (shared by vivit.models.dispatch and
    vivit_kernels.report)."""
    return auto_reason(dtype, precision, arch, shared_bytes_needed(dtype, token_dtype), shared_limit)


def auto_unsupported_reason(pixel_values, weight, bias=None, pos_embed=None, cls_token=None) -> str | None:
    """None when backend="auto" takes the Triton kernels for this call, else why not (see auto_config_reason)."""
    reason = triton_unsupported_reason(pixel_values, weight, bias, pos_embed, cls_token)
    if reason is not None:
        return reason
    caps = device_caps(pixel_values.device)
    if caps is None:
        return f"auto takes kernels on CUDA devices only, not {pixel_values.device}"
    dtype = compute_dtype(pixel_values)
    precision = fp32_precision() if dtype == torch.float32 else "ieee"
    tokens = _out_dtype(torch.empty(0, dtype=dtype), pos_embed, cls_token)
    return auto_config_reason(dtype, precision, caps.arch, caps.shared_per_block, tokens)


def patch_embed(
    pixel_values: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    pos_embed: torch.Tensor | None = None,
    cls_token: torch.Tensor | None = None,
    *,
    per_frame_cls: bool = False,
    backend: str = "eager",
) -> torch.Tensor:
    """Tubelet embedding of a video: Conv3d(kernel == stride) + bias, position embedding and CLS token(s).

    pixel_values (B, F, C, H, W) any strides; weight (D, C, t, h, w); remainders of F, H, W are dropped like Conv3d.
    Returns (B, N, D) without cls_token, (B, 1+N, D) with it, (B, T', 1+S, D) with per_frame_cls.
    """
    if backend not in BACKENDS:
        raise ValueError(f"patch_embed: backend must be one of {BACKENDS}, got {backend!r}")
    _check_inputs(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls)
    if backend == "eager":
        return _patch_embed_eager(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls)
    reason = triton_unsupported_reason(pixel_values, weight, bias, pos_embed, cls_token)
    if reason is not None:
        raise NotImplementedError(f"patch_embed: {reason}")
    # Under autocast the GEMM operands take the dtype eager's F.linear gives them; pos_embed and cls_token, added
    # after it, keep theirs (the tokens then promote, as in eager).
    dtype = autocast_dtype(pixel_values.device.type)
    pixel_values, weight, bias = (autocast_cast(t, dtype) for t in (pixel_values, weight, bias))
    return PatchEmbedFunction.apply(pixel_values, weight, bias, pos_embed, cls_token, per_frame_cls)
