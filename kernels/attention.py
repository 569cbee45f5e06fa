"""Multi-head attention over the joint, spatial or temporal axis of a video token tensor.

`attention(q, k, v, axis=...)` reads q, k, v as (B, L, H, D) (joint) or (B, T, S, H, D) (spatial: the S tokens of
each frame; temporal: the T frames of each patch position) and returns q's shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels._utils import HAS_TRITON, INTERPRET, triton_unavailable_reason

if HAS_TRITON:
    import triton
    import triton.language as tl

AXES = ("joint", "spatial", "temporal")
BACKENDS = ("eager", "triton")


# ----------------------------------------------------------------------------------------------------------------------
# Input checks shared by both backends
# ----------------------------------------------------------------------------------------------------------------------
def _check_inputs(q, k, v, axis, key_mask, dropout_p, backend) -> None:
    if axis not in AXES:
        raise ValueError(f"attention: axis must be one of {list(AXES)}, got {axis!r}")
    if backend not in BACKENDS:
        raise ValueError(f"attention: backend must be one of {list(BACKENDS)}, got {backend!r}")
    rank = 4 if axis == "joint" else 5
    layout = "(B, L, H, D)" if axis == "joint" else "(B, T, S, H, D)"
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"attention: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != rank:
            raise ValueError(
                f"attention: {name} must be {rank}-D {layout} for axis={axis!r}, got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"attention: {name} must be floating point, got {t.dtype}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"attention: q, k and v must have the same shape {layout}, got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"attention: q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if key_mask is not None:
        expected = (q.shape[0], q.shape[1])
        what = "(B, L)" if axis == "joint" else "(B, T)"
        if not isinstance(key_mask, torch.Tensor) or key_mask.dtype != torch.bool:
            got = key_mask.dtype if isinstance(key_mask, torch.Tensor) else type(key_mask).__name__
            raise TypeError(f"attention: key_mask must be a bool tensor {what}, got {got}")
        if tuple(key_mask.shape) != expected:
            raise ValueError(
                f"attention: key_mask must have shape {what} = {expected} for axis={axis!r}, "
                f"got {tuple(key_mask.shape)}"
            )
        if key_mask.device != q.device:
            raise ValueError(f"attention: key_mask is on {key_mask.device}, q on {q.device}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must be in [0, 1), got {dropout_p}")


# ----------------------------------------------------------------------------------------------------------------------
# Eager path: F.scaled_dot_product_attention on views
# ----------------------------------------------------------------------------------------------------------------------
def _merge(x: torch.Tensor, shape) -> torch.Tensor:
    """A view with `shape` when the strides allow one, else a copy (what SDPA would make anyway)."""
    try:
        return x.view(shape)
    except RuntimeError:
        return x.reshape(shape)


def _attention_eager(q, k, v, axis, key_mask, scale, dropout_p) -> torch.Tensor:
    # SDPA takes (N, heads, L, D); every layout below is a transpose of a (N, L, heads, D) view, which is what SDPA's
    # CPU flash kernel and the CUDA kernels read without copying, and their output transposes back to contiguous.
    if axis == "spatial":
        B, T, S, H, D = q.shape
        views = [_merge(x, (B * T, S, H, D)).transpose(1, 2) for x in (q, k, v)]
        mask = None  # a frame's keys are all masked or all kept: zero whole frames after the call
    elif axis == "temporal":
        B, T, S, H, D = q.shape
        # (b, s, h) sequences over T: merge S and H into the head dimension (free for (.., S, H, D) layouts).
        views = [_merge(x, (B, T, S * H, D)).transpose(1, 2) for x in (q, k, v)]
        mask = key_mask
    else:
        views = [x.transpose(1, 2) for x in (q, k, v)]
        mask = key_mask
    keep = None
    attn_mask = None
    if mask is not None:
        keep = mask.any(dim=1)  # (B,): has the sequence at least one real key
        # Rows without any real key attend to everything (finite), then are zeroed: no NaN enters the graph.
        attn_mask = (mask | ~keep[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(*views, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    out = out.transpose(1, 2)
    if axis == "spatial":
        out = out.view(q.shape) if out.is_contiguous() else out.reshape(q.shape)
        if key_mask is not None:
            out = out * key_mask[:, :, None, None, None].to(out.dtype)
        return out
    if axis == "temporal":
        out = out.reshape(q.shape)
    if keep is not None:
        out = out * keep.view((-1,) + (1,) * (out.dim() - 1)).to(out.dtype)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Reference: explicit softmax in fp32/fp64 (the test oracle)
# ----------------------------------------------------------------------------------------------------------------------
def attention_reference(q, k, v, *, axis="joint", key_mask=None, scale=None) -> torch.Tensor:
    """Plain attention with upcast math (fp64 stays fp64, anything else runs in fp32); returns the upcast dtype.

    Masked keys get probability 0; a query row without any real key returns zeros.
    """
    _check_inputs(q, k, v, axis, key_mask, 0.0, "eager")
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    q, k, v = (x.to(dtype) for x in (q, k, v))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if axis == "joint":
        # (B, H, L, D); key mask (B, 1, 1, L)
        qs, ks, vs = (x.permute(0, 2, 1, 3) for x in (q, k, v))
        mask = None if key_mask is None else key_mask[:, None, None, :]
    elif axis == "spatial":
        # (B, T, H, S, D); frame mask (B, T, 1, 1, 1) applies to every key of the frame
        qs, ks, vs = (x.permute(0, 1, 3, 2, 4) for x in (q, k, v))
        mask = None if key_mask is None else key_mask[:, :, None, None, None]
    else:
        # (B, S, H, T, D); key mask over frames (B, 1, 1, 1, T)
        qs, ks, vs = (x.permute(0, 2, 3, 1, 4) for x in (q, k, v))
        mask = None if key_mask is None else key_mask[:, None, None, None, :]
    scores = (qs @ ks.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(scores - row_max)
    denom = weights.sum(dim=-1, keepdim=True)
    probs = weights / torch.where(denom > 0, denom, torch.ones_like(denom))
    out = probs @ vs
    if axis == "joint":
        return out.permute(0, 2, 1, 3)
    if axis == "spatial":
        return out.permute(0, 1, 3, 2, 4)
    return out.permute(0, 3, 1, 2, 4)


# ----------------------------------------------------------------------------------------------------------------------
# Triton kernels
#
# Every sequence is addressed by strides alone: token (b, outer, head, pos) of a tensor sits at
#   b * stride_b + outer * stride_o + head * stride_h + pos * stride_l  (+ d * stride_d)
# joint: outer is unused (stride 0), pos runs over L; spatial: outer = t, pos = s; temporal: outer = s, pos = t.
# Sequences are numbered z = outer * n_heads + head inside each batch element, so neighbouring sequences of a packed
# tile are neighbouring heads in memory. Log-sum-exp (base 2, fp32) is kept as (B, n_outer, n_heads, L).
# ----------------------------------------------------------------------------------------------------------------------
LOG2E = 1.4426950408889634

if HAS_TRITON:

    @triton.jit
    def _tile_tokens(
        start, z0, n_seq, seq_len, n_heads, SEQ_BLOCK: tl.constexpr, PACK: tl.constexpr, BLOCK: tl.constexpr
    ):
        """The BLOCK token slots of a tile: PACK sequences of SEQ_BLOCK slots, or (PACK == 1) one run from `start`.

        Returns each slot's sequence z, its outer and head index (int64), its position, and whether it is a token.
        """
        offs = tl.arange(0, BLOCK)
        if PACK > 1:
            z = z0 + offs // SEQ_BLOCK
            pos = offs % SEQ_BLOCK
        else:
            z = z0 + offs * 0
            pos = start + offs
        ok = (pos < seq_len) & (z < n_seq)
        return z, (z // n_heads).to(tl.int64), (z % n_heads).to(tl.int64), pos, ok

    @triton.jit
    def _key_ok(MASK, pid_b, outer, pos, ok, stride_mb, stride_mo, stride_ml, HAS_MASK: tl.constexpr):
        """Slots that are real, unmasked keys."""
        if HAS_MASK:
            keep = tl.load(
                MASK + pid_b * stride_mb + outer * stride_mo + pos.to(tl.int64) * stride_ml, mask=ok, other=0
            )
            ok = ok & (keep != 0)
        return ok

    @triton.jit
    def _attention_fwd_kernel(
        Q, K, V, O, LSE, MASK,
        stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
        stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
        stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
        stride_ob, stride_oo, stride_oh, stride_ol, stride_od,
        stride_mb, stride_mo, stride_ml,
        n_seq, n_heads, seq_len, head_dim, qk_scale,
        HAS_MASK: tl.constexpr, SEQ_BLOCK: tl.constexpr, PACK: tl.constexpr, BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, SINGLE_TILE: tl.constexpr, DOT_PRECISION: tl.constexpr,
        UPCAST: tl.constexpr,
    ):  # fmt: skip
        pid_b = tl.program_id(1).to(tl.int64)
        n_m = tl.cdiv(seq_len, BLOCK_M)
        start_m = (tl.program_id(0) % n_m) * BLOCK_M
        z0 = (tl.program_id(0) // n_m) * PACK

        z_m, o_m, h_m, pos_m, ok_m = _tile_tokens(start_m, z0, n_seq, seq_len, n_heads, SEQ_BLOCK, PACK, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        ok_d = offs_d < head_dim
        q_ptrs = Q + pid_b * stride_qb + (o_m * stride_qo + h_m * stride_qh + pos_m.to(tl.int64) * stride_ql)[:, None]
        q = tl.load(q_ptrs + offs_d[None, :] * stride_qd, mask=ok_m[:, None] & ok_d[None, :], other=0.0)
        if UPCAST:
            q = q.to(tl.float32)

        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        # One key tile covers the whole sequence (and every packed sequence) when SINGLE_TILE: no rescaling loop.
        kv_end = BLOCK_N if SINGLE_TILE else seq_len
        for start_n in range(0, kv_end, BLOCK_N):
            z_n, o_n, h_n, pos_n, ok_n = _tile_tokens(start_n, z0, n_seq, seq_len, n_heads, SEQ_BLOCK, PACK, BLOCK_N)
            tok_k = o_n * stride_ko + h_n * stride_kh + pos_n.to(tl.int64) * stride_kl
            tok_v = o_n * stride_vo + h_n * stride_vh + pos_n.to(tl.int64) * stride_vl
            kt = tl.load(
                K + pid_b * stride_kb + tok_k[None, :] + offs_d[:, None] * stride_kd,
                mask=ok_n[None, :] & ok_d[:, None],
                other=0.0,
            )
            v = tl.load(
                V + pid_b * stride_vb + tok_v[:, None] + offs_d[None, :] * stride_vd,
                mask=ok_n[:, None] & ok_d[None, :],
                other=0.0,
            )
            if UPCAST:
                kt = kt.to(tl.float32)
                v = v.to(tl.float32)
            ok_n = _key_ok(MASK, pid_b, o_n, pos_n, ok_n, stride_mb, stride_mo, stride_ml, HAS_MASK)
            valid = ok_n[None, :] & ok_m[:, None]
            if PACK > 1:
                valid = valid & (z_m[:, None] == z_n[None, :])  # block-diagonal: a row sees its own sequence only
            s = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale
            s = tl.where(valid, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows without a key so far stay at p = 0
            p = tl.math.exp2(s - m_safe[:, None])
            if SINGLE_TILE:
                l_i = tl.sum(p, 1)
                acc = tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
            else:
                alpha = tl.math.exp2(m_i - m_safe)
                l_i = l_i * alpha + tl.sum(p, 1)
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
            m_i = m_new

        empty = l_i == 0.0  # every key of the row is masked: output zeros, log-sum-exp +inf (so p = 0 in backward)
        out = acc / tl.where(empty, 1.0, l_i)[:, None]
        lse = tl.where(empty, float("inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
        o_ptrs = O + pid_b * stride_ob + (o_m * stride_oo + h_m * stride_oh + pos_m.to(tl.int64) * stride_ol)[:, None]
        tl.store(o_ptrs + offs_d[None, :] * stride_od, out.to(O.dtype.element_ty), mask=ok_m[:, None] & ok_d[None, :])
        tl.store(LSE + (pid_b * n_seq + z_m) * seq_len + pos_m, lse, mask=ok_m)

    @triton.jit
    def _attention_bwd_dkdv_kernel(
        Q, K, V, DO, DK, DV, LSE, DELTA, MASK,
        stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
        stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
        stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
        stride_gb, stride_go, stride_gh, stride_gl, stride_gd,
        stride_db, stride_do, stride_dh, stride_dl, stride_dd,
        stride_mb, stride_mo, stride_ml,
        n_seq, n_heads, seq_len, head_dim, qk_scale, sm_scale,
        HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    ):  # fmt: skip
        """dK and dV of one key tile, looping over every query tile of its sequence (each program owns its output)."""
        pid_b = tl.program_id(1).to(tl.int64)
        n_n = tl.cdiv(seq_len, BLOCK_N)
        start_n = (tl.program_id(0) % n_n) * BLOCK_N
        z0 = tl.program_id(0) // n_n
        _, o_n, h_n, pos_n, ok_n = _tile_tokens(start_n, z0, n_seq, seq_len, n_heads, BLOCK_N, 1, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        ok_d = offs_d < head_dim
        tok_n = pos_n.to(tl.int64)
        mask_n = ok_n[:, None] & ok_d[None, :]
        k = tl.load(
            K
            + pid_b * stride_kb
            + (o_n * stride_ko + h_n * stride_kh + tok_n * stride_kl)[:, None]
            + offs_d[None, :] * stride_kd,
            mask=mask_n,
            other=0.0,
        )
        v = tl.load(
            V
            + pid_b * stride_vb
            + (o_n * stride_vo + h_n * stride_vh + tok_n * stride_vl)[:, None]
            + offs_d[None, :] * stride_vd,
            mask=mask_n,
            other=0.0,
        )
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        key_ok = _key_ok(MASK, pid_b, o_n, pos_n, ok_n, stride_mb, stride_mo, stride_ml, HAS_MASK)

        dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
        for start_m in range(0, seq_len, BLOCK_M):
            z_m, o_m, h_m, pos_m, ok_m = _tile_tokens(start_m, z0, n_seq, seq_len, n_heads, BLOCK_M, 1, BLOCK_M)
            tok_m = pos_m.to(tl.int64)
            mask_m = ok_m[:, None] & ok_d[None, :]
            q = tl.load(
                Q
                + pid_b * stride_qb
                + (o_m * stride_qo + h_m * stride_qh + tok_m * stride_ql)[:, None]
                + offs_d[None, :] * stride_qd,
                mask=mask_m,
                other=0.0,
            )
            do = tl.load(
                DO
                + pid_b * stride_gb
                + (o_m * stride_go + h_m * stride_gh + tok_m * stride_gl)[:, None]
                + offs_d[None, :] * stride_gd,
                mask=mask_m,
                other=0.0,
            )
            if UPCAST:
                q = q.to(tl.float32)
                do = do.to(tl.float32)
            row = (pid_b * n_seq + z_m) * seq_len + pos_m
            lse = tl.load(LSE + row, mask=ok_m, other=float("inf"))
            delta = tl.load(DELTA + row, mask=ok_m, other=0.0)
            st = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * qk_scale
            pt = tl.where(key_ok[:, None], tl.math.exp2(st - lse[None, :]), 0.0)
            dv += tl.dot(pt.to(do.dtype), do, input_precision=DOT_PRECISION)
            dpt = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
            dst = pt * (dpt - delta[None, :])
            dk += tl.dot(dst.to(q.dtype), q, input_precision=DOT_PRECISION)

        grad = (
            pid_b * stride_db
            + (o_n * stride_do + h_n * stride_dh + tok_n * stride_dl)[:, None]
            + offs_d[None, :] * stride_dd
        )
        tl.store(DK + grad, (dk * sm_scale).to(DK.dtype.element_ty), mask=mask_n)
        tl.store(DV + grad, dv.to(DV.dtype.element_ty), mask=mask_n)

    @triton.jit
    def _attention_bwd_dq_kernel(
        Q, K, V, O, DO, DQ, LSE, DELTA, MASK,
        stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
        stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
        stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
        stride_ob, stride_oo, stride_oh, stride_ol, stride_od,
        stride_gb, stride_go, stride_gh, stride_gl, stride_gd,
        stride_db, stride_do, stride_dh, stride_dl, stride_dd,
        stride_mb, stride_mo, stride_ml,
        n_seq, n_heads, seq_len, head_dim, qk_scale, sm_scale,
        HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    ):  # fmt: skip
        """dQ (and delta) of one query tile, looping over every key tile of its sequence: no atomics, deterministic."""
        pid_b = tl.program_id(1).to(tl.int64)
        n_m = tl.cdiv(seq_len, BLOCK_M)
        start_m = (tl.program_id(0) % n_m) * BLOCK_M
        z0 = tl.program_id(0) // n_m
        z_m, o_m, h_m, pos_m, ok_m = _tile_tokens(start_m, z0, n_seq, seq_len, n_heads, BLOCK_M, 1, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        ok_d = offs_d < head_dim
        tok_m = pos_m.to(tl.int64)
        mask_m = ok_m[:, None] & ok_d[None, :]
        q = tl.load(
            Q
            + pid_b * stride_qb
            + (o_m * stride_qo + h_m * stride_qh + tok_m * stride_ql)[:, None]
            + offs_d[None, :] * stride_qd,
            mask=mask_m,
            other=0.0,
        )
        do = tl.load(
            DO
            + pid_b * stride_gb
            + (o_m * stride_go + h_m * stride_gh + tok_m * stride_gl)[:, None]
            + offs_d[None, :] * stride_gd,
            mask=mask_m,
            other=0.0,
        )
        if UPCAST:
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        o = tl.load(
            O
            + pid_b * stride_ob
            + (o_m * stride_oo + h_m * stride_oh + tok_m * stride_ol)[:, None]
            + offs_d[None, :] * stride_od,
            mask=mask_m,
            other=0.0,
        )
        # delta = rowsum(dO * O) is computed here once per query row and stored for the dK/dV kernel launched next.
        delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
        row = (pid_b * n_seq + z_m) * seq_len + pos_m
        tl.store(DELTA + row, delta, mask=ok_m)
        lse = tl.load(LSE + row, mask=ok_m, other=float("inf"))

        dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        for start_n in range(0, seq_len, BLOCK_N):
            _, o_n, h_n, pos_n, ok_n = _tile_tokens(start_n, z0, n_seq, seq_len, n_heads, BLOCK_N, 1, BLOCK_N)
            tok_n = pos_n.to(tl.int64)
            mask_n = ok_n[:, None] & ok_d[None, :]
            k = tl.load(
                K
                + pid_b * stride_kb
                + (o_n * stride_ko + h_n * stride_kh + tok_n * stride_kl)[:, None]
                + offs_d[None, :] * stride_kd,
                mask=mask_n,
                other=0.0,
            )
            v = tl.load(
                V
                + pid_b * stride_vb
                + (o_n * stride_vo + h_n * stride_vh + tok_n * stride_vl)[:, None]
                + offs_d[None, :] * stride_vd,
                mask=mask_n,
                other=0.0,
            )
            if UPCAST:
                k = k.to(tl.float32)
                v = v.to(tl.float32)
            key_ok = _key_ok(MASK, pid_b, o_n, pos_n, ok_n, stride_mb, stride_mo, stride_ml, HAS_MASK)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
            p = tl.where(key_ok[None, :], tl.math.exp2(s - lse[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)

        grad = (
            pid_b * stride_db
            + (o_m * stride_do + h_m * stride_dh + tok_m * stride_dl)[:, None]
            + offs_d[None, :] * stride_dd
        )
        tl.store(DQ + grad, (dq * sm_scale).to(DQ.dtype.element_ty), mask=mask_m)

    @triton.jit
    def _attention_bwd_tile_kernel(
        Q, K, V, O, DO, DQ, DK, DV, LSE, MASK,
        stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
        stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
        stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
        stride_ob, stride_oo, stride_oh, stride_ol, stride_od,
        stride_gb, stride_go, stride_gh, stride_gl, stride_gd,
        stride_db, stride_do, stride_dh, stride_dl, stride_dd,
        stride_mb, stride_mo, stride_ml,
        n_seq, n_heads, seq_len, head_dim, qk_scale, sm_scale,
        HAS_MASK: tl.constexpr, SEQ_BLOCK: tl.constexpr, PACK: tl.constexpr, BLOCK: tl.constexpr,
        BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    ):  # fmt: skip
        """dQ, dK, dV of PACK whole sequences that fit one tile: one launch, no delta pass, no loop."""
        pid_b = tl.program_id(1).to(tl.int64)
        z0 = tl.program_id(0) * PACK
        z, o_t, h_t, pos, ok = _tile_tokens(0, z0, n_seq, seq_len, n_heads, SEQ_BLOCK, PACK, BLOCK)
        offs_d = tl.arange(0, BLOCK_D)
        tok = pos.to(tl.int64)
        mask = ok[:, None] & (offs_d < head_dim)[None, :]
        q = tl.load(
            Q
            + pid_b * stride_qb
            + (o_t * stride_qo + h_t * stride_qh + tok * stride_ql)[:, None]
            + offs_d[None, :] * stride_qd,
            mask=mask,
            other=0.0,
        )
        k = tl.load(
            K
            + pid_b * stride_kb
            + (o_t * stride_ko + h_t * stride_kh + tok * stride_kl)[:, None]
            + offs_d[None, :] * stride_kd,
            mask=mask,
            other=0.0,
        )
        v = tl.load(
            V
            + pid_b * stride_vb
            + (o_t * stride_vo + h_t * stride_vh + tok * stride_vl)[:, None]
            + offs_d[None, :] * stride_vd,
            mask=mask,
            other=0.0,
        )
        o = tl.load(
            O
            + pid_b * stride_ob
            + (o_t * stride_oo + h_t * stride_oh + tok * stride_ol)[:, None]
            + offs_d[None, :] * stride_od,
            mask=mask,
            other=0.0,
        )
        do = tl.load(
            DO
            + pid_b * stride_gb
            + (o_t * stride_go + h_t * stride_gh + tok * stride_gl)[:, None]
            + offs_d[None, :] * stride_gd,
            mask=mask,
            other=0.0,
        )
        if UPCAST:
            q = q.to(tl.float32)
            k = k.to(tl.float32)
            v = v.to(tl.float32)
            do = do.to(tl.float32)
        lse = tl.load(LSE + (pid_b * n_seq + z) * seq_len + pos, mask=ok, other=float("inf"))
        delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
        key_ok = _key_ok(MASK, pid_b, o_t, pos, ok, stride_mb, stride_mo, stride_ml, HAS_MASK)
        valid = key_ok[None, :]
        if PACK > 1:
            valid = valid & (z[:, None] == z[None, :])

        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        p = tl.where(valid, tl.math.exp2(s - lse[:, None]), 0.0)
        dv = tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=DOT_PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = (p * (dp - delta[:, None])).to(q.dtype)
        dq = tl.dot(ds, k, input_precision=DOT_PRECISION) * sm_scale
        dk = tl.dot(tl.trans(ds), q, input_precision=DOT_PRECISION) * sm_scale

        grad = (
            pid_b * stride_db
            + (o_t * stride_do + h_t * stride_dh + tok * stride_dl)[:, None]
            + offs_d[None, :] * stride_dd
        )
        tl.store(DQ + grad, dq.to(DQ.dtype.element_ty), mask=mask)
        tl.store(DK + grad, dk.to(DK.dtype.element_ty), mask=mask)
        tl.store(DV + grad, dv.to(DV.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------------------------
def _sequence_strides(x: torch.Tensor, axis: str) -> tuple[int, int, int, int, int]:
    """(batch, outer, head, token, dim) strides of q/k/v/o/grad tensors for `axis`."""
    if axis == "joint":
        sb, sl, sh, sd = x.stride()
        return sb, 0, sh, sl, sd
    sb, st, ss, sh, sd = x.stride()
    return (sb, st, sh, ss, sd) if axis == "spatial" else (sb, ss, sh, st, sd)


def _mask_strides(key_mask: torch.Tensor | None, axis: str) -> tuple[int, int, int]:
    """(batch, outer, token) strides of the key mask: a (B, L) token mask, or a (B, T) mask over frames."""
    if key_mask is None:
        return 0, 0, 0
    sb, st = key_mask.stride()
    if axis == "spatial":
        return sb, st, 0  # one flag per frame covers all S keys of the frame
    if axis == "temporal":
        return sb, 0, st
    return sb, 0, st


def _sequences(q: torch.Tensor, axis: str) -> tuple[int, int, int, int, int]:
    """(B, n_outer, H, L, D): batch, sequences per batch element and head, heads, sequence length, head dim."""
    if axis == "joint":
        B, L, H, D = q.shape
        return B, 1, H, L, D
    B, T, S, H, D = q.shape
    return (B, T, H, S, D) if axis == "spatial" else (B, S, H, T, D)


def _lse_shape(q: torch.Tensor, axis: str) -> tuple[int, int, int, int]:
    B, n_outer, H, L, _ = _sequences(q, axis)
    return B, n_outer, H, L


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _pack(seq_len: int, n_seq: int, tile: int) -> tuple[int, int]:
    """(SEQ_BLOCK, PACK): slots per sequence and sequences per tile for sequences that fit one tile."""
    seq_block = max(16, _next_pow2(seq_len))
    pack = max(1, min(tile // seq_block, _next_pow2(n_seq)))
    return seq_block, pack


def _fwd_config(seq_len: int, n_seq: int, head_dim: int, itemsize: int = 2) -> dict:
    """Tile sizes from the sequence length bucket, the padded head dim and the element size (fp32 tiles need twice
    the registers: 8 warps). A handful of values, so recompilation stays bounded."""
    block_d = max(16, _next_pow2(head_dim))
    num_warps = 8 if itemsize > 2 else 4
    if seq_len <= 32:  # temporal attention: pack several sequences into one 64-row tile, block-diagonal
        seq_block, pack = _pack(seq_len, n_seq, 64)
        block = seq_block * pack
        return dict(SEQ_BLOCK=seq_block, PACK=pack, BLOCK_M=block, BLOCK_N=block, BLOCK_D=block_d, SINGLE_TILE=True,
                    num_warps=num_warps, num_stages=1)  # fmt: skip
    if seq_len <= 128:  # one key tile holds the sequence: no online-softmax loop
        block_n = _next_pow2(seq_len)
        return dict(SEQ_BLOCK=block_n, PACK=1, BLOCK_M=64, BLOCK_N=block_n, BLOCK_D=block_d, SINGLE_TILE=True,
                    num_warps=num_warps, num_stages=1)  # fmt: skip
    return dict(SEQ_BLOCK=128, PACK=1, BLOCK_M=128, BLOCK_N=64, BLOCK_D=block_d, SINGLE_TILE=False,
                num_warps=8, num_stages=2)  # fmt: skip


def _bwd_config(seq_len: int, n_seq: int, head_dim: int, itemsize: int = 2) -> dict:
    block_d = max(16, _next_pow2(head_dim))
    if itemsize > 2:  # fp32: half-size tiles (the 16-bit ones spill on sm_80, checked by aot_specs)
        if seq_len <= 32:
            seq_block, pack = _pack(seq_len, n_seq, 32)
            return dict(SEQ_BLOCK=seq_block, PACK=pack, BLOCK=seq_block * pack, BLOCK_D=block_d, num_warps=4,
                        num_stages=1)  # fmt: skip
        return dict(
            BLOCK_D=block_d,
            dq=dict(BLOCK_M=32, BLOCK_N=32, num_warps=4, num_stages=2),
            dkdv=dict(BLOCK_M=16, BLOCK_N=32, num_warps=4, num_stages=2),
        )
    num_warps = 8 if block_d > 64 else 4
    if seq_len <= 64:  # whole sequences in one tile: dq, dk, dv in one launch
        seq_block, pack = _pack(seq_len, n_seq, 64)
        return dict(SEQ_BLOCK=seq_block, PACK=pack, BLOCK=seq_block * pack, BLOCK_D=block_d, num_warps=num_warps,
                    num_stages=1)  # fmt: skip
    # dK/dV loops over 32-row query tiles: 64 spills on sm_80 at head dim 64 even with 8 warps; dQ at padded head dim
    # 128 loops over 32-key tiles with 4 warps (8 warps get capped at 128 registers and spill). Checked by aot_specs.
    return dict(
        BLOCK_D=block_d,
        dq=dict(BLOCK_M=64, BLOCK_N=32 if block_d > 64 else 64, num_warps=4, num_stages=2),
        dkdv=dict(BLOCK_M=32, BLOCK_N=64, num_warps=num_warps, num_stages=2),
    )


def _empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Every buffer a launcher allocates (tests swap in NaN-filled ones to catch unwritten elements)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _dot_precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "ieee"


def _upcast(dtype: torch.dtype) -> bool:
    # The interpreter's bf16 dot multiplies raw bit patterns: feed it fp32 operands instead.
    return INTERPRET and dtype == torch.bfloat16


def _mask_arg(key_mask: torch.Tensor | None, fallback: torch.Tensor) -> torch.Tensor:
    return fallback if key_mask is None else key_mask.view(torch.uint8)


def _launch_fwd(q, k, v, key_mask, axis: str, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    B, n_outer, H, L, D = _sequences(q, axis)
    n_seq = n_outer * H
    out = _empty(q.shape, q.dtype, q.device)
    lse = _empty(_lse_shape(q, axis), torch.float32, q.device)
    if out.numel() == 0:
        return out, lse.fill_(float("inf"))
    cfg = _fwd_config(L, n_seq, D, q.element_size())
    meta = {k_: cfg.pop(k_) for k_ in ("num_warps", "num_stages")}
    grid = (triton.cdiv(L, cfg["BLOCK_M"]) * triton.cdiv(n_seq, cfg["PACK"]), B)
    sq, sk, sv, so = (_sequence_strides(t, axis) for t in (q, k, v, out))
    sm = _mask_strides(key_mask, axis)
    _attention_fwd_kernel[grid](
        Q=q, K=k, V=v, O=out, LSE=lse, MASK=_mask_arg(key_mask, lse),
        stride_qb=sq[0], stride_qo=sq[1], stride_qh=sq[2], stride_ql=sq[3], stride_qd=sq[4],
        stride_kb=sk[0], stride_ko=sk[1], stride_kh=sk[2], stride_kl=sk[3], stride_kd=sk[4],
        stride_vb=sv[0], stride_vo=sv[1], stride_vh=sv[2], stride_vl=sv[3], stride_vd=sv[4],
        stride_ob=so[0], stride_oo=so[1], stride_oh=so[2], stride_ol=so[3], stride_od=so[4],
        stride_mb=sm[0], stride_mo=sm[1], stride_ml=sm[2],
        n_seq=n_seq, n_heads=H, seq_len=L, head_dim=D, qk_scale=scale * LOG2E,
        HAS_MASK=key_mask is not None, DOT_PRECISION=_dot_precision(q.dtype), UPCAST=_upcast(q.dtype),
        **cfg, **meta,
    )  # fmt: skip
    return out, lse


def _launch_bwd(do, q, k, v, out, lse, key_mask, axis: str, scale: float):
    B, n_outer, H, L, D = _sequences(q, axis)
    n_seq = n_outer * H
    dq, dk, dv = (_empty(q.shape, q.dtype, q.device) for _ in range(3))
    if dq.numel() == 0:
        return dq, dk, dv
    cfg = _bwd_config(L, n_seq, D, q.element_size())
    sq, sk, sv, so, sg, sd = (_sequence_strides(t, axis) for t in (q, k, v, out, do, dq))
    sm = _mask_strides(key_mask, axis)
    mask = _mask_arg(key_mask, lse)
    common = dict(
        stride_qb=sq[0], stride_qo=sq[1], stride_qh=sq[2], stride_ql=sq[3], stride_qd=sq[4],
        stride_kb=sk[0], stride_ko=sk[1], stride_kh=sk[2], stride_kl=sk[3], stride_kd=sk[4],
        stride_vb=sv[0], stride_vo=sv[1], stride_vh=sv[2], stride_vl=sv[3], stride_vd=sv[4],
        stride_gb=sg[0], stride_go=sg[1], stride_gh=sg[2], stride_gl=sg[3], stride_gd=sg[4],
        stride_db=sd[0], stride_do=sd[1], stride_dh=sd[2], stride_dl=sd[3], stride_dd=sd[4],
        stride_mb=sm[0], stride_mo=sm[1], stride_ml=sm[2],
        n_seq=n_seq, n_heads=H, seq_len=L, head_dim=D, qk_scale=scale * LOG2E, sm_scale=scale,
        HAS_MASK=key_mask is not None, DOT_PRECISION=_dot_precision(q.dtype), UPCAST=_upcast(q.dtype),
    )  # fmt: skip
    if "PACK" in cfg:
        grid = (triton.cdiv(n_seq, cfg["PACK"]), B)
        _attention_bwd_tile_kernel[grid](
            Q=q, K=k, V=v, O=out, DO=do, DQ=dq, DK=dk, DV=dv, LSE=lse, MASK=mask,
            stride_ob=so[0], stride_oo=so[1], stride_oh=so[2], stride_ol=so[3], stride_od=so[4],
            **common, **cfg,
        )  # fmt: skip
        return dq, dk, dv
    delta = _empty(lse.shape, torch.float32, q.device)
    cfg_dq, cfg_dkdv = cfg["dq"], cfg["dkdv"]
    # dQ first: it also writes delta = rowsum(dO * O), which the dK/dV kernel reads.
    _attention_bwd_dq_kernel[(triton.cdiv(L, cfg_dq["BLOCK_M"]) * n_seq, B)](
        Q=q, K=k, V=v, O=out, DO=do, DQ=dq, LSE=lse, DELTA=delta, MASK=mask,
        stride_ob=so[0], stride_oo=so[1], stride_oh=so[2], stride_ol=so[3], stride_od=so[4],
        BLOCK_D=cfg["BLOCK_D"], **common, **cfg_dq,
    )  # fmt: skip
    _attention_bwd_dkdv_kernel[(triton.cdiv(L, cfg_dkdv["BLOCK_N"]) * n_seq, B)](
        Q=q, K=k, V=v, DO=do, DK=dk, DV=dv, LSE=lse, DELTA=delta, MASK=mask,
        BLOCK_D=cfg["BLOCK_D"], **common, **cfg_dkdv,
    )  # fmt: skip
    return dq, dk, dv


# ----------------------------------------------------------------------------------------------------------------------
# Custom ops: opaque to torch.compile, with fake implementations and autograd
# ----------------------------------------------------------------------------------------------------------------------
def _require_triton(op: str, *tensors) -> None:
    reason = triton_unavailable_reason(*[t for t in tensors if t is not None])
    if reason is not None:
        raise NotImplementedError(f"{op}: {reason}")


@torch.library.custom_op("vivit_kernels::attention_fwd", mutates_args=())
def attention_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, axis: str, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton forward: (out with q's shape, contiguous; fp32 base-2 log-sum-exp (B, n_outer, H, L))."""
    _require_triton("attention_fwd", q, k, v, key_mask)
    return _launch_fwd(q, k, v, key_mask, axis, scale)


@attention_fwd.register_fake
def _(q, k, v, key_mask, axis, scale):
    return torch.empty(q.shape, dtype=q.dtype, device=q.device), q.new_empty(_lse_shape(q, axis), dtype=torch.float32)


@torch.library.custom_op("vivit_kernels::attention_bwd", mutates_args=())
def attention_bwd(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    key_mask: torch.Tensor | None,
    axis: str,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton backward: (dq, dk, dv), deterministic."""
    _require_triton("attention_bwd", grad_out, q, k, v, out, lse, key_mask)
    return _launch_bwd(grad_out, q, k, v, out, lse, key_mask, axis, scale)


@attention_bwd.register_fake
def _(grad_out, q, k, v, out, lse, key_mask, axis, scale):
    return tuple(torch.empty(q.shape, dtype=q.dtype, device=q.device) for _ in range(3))


def _setup_context(ctx, inputs, output):
    q, k, v, key_mask, axis, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, key_mask)
    ctx.axis, ctx.scale = axis, scale
    ctx.mark_non_differentiable(lse)


def _backward(ctx, grad_out, _grad_lse):
    q, k, v, out, lse, key_mask = ctx.saved_tensors
    dq, dk, dv = attention_bwd(grad_out, q, k, v, out, lse, key_mask, ctx.axis, ctx.scale)
    return dq, dk, dv, None, None, None


torch.library.register_autograd("vivit_kernels::attention_fwd", _backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------------------------------------------------
# Ahead-of-time compile specs
# ----------------------------------------------------------------------------------------------------------------------
# ViViT-B/16x2 (T'=16 frames of S=196 patches, 12 heads) and ViViT-H-like head dim 80; one representative length per
# kept configuration: the configuration `_fwd_config` / `_bwd_config` picks for it.
_AOT_LENGTHS = {
    "fwd": (("temporal T'=16", 16), ("temporal T'=32", 32), ("spatial S=49", 49), ("spatial S=100", 100),
            ("spatial S=197 / joint", 197)),
    "bwd": (("temporal T'=16", 16), ("temporal T'=32", 32), ("spatial S=49", 49), ("spatial S=197 / joint", 197)),
}  # fmt: skip
_AOT_SEQUENCES = 196 * 12  # sequences per batch element for temporal attention; every length packs fully


def _is_head_dim_stride(name: str) -> bool:
    return name.startswith("stride_") and len(name) == len("stride_qd") and name.endswith("d")


def _aot_signature(kernel, dtype: str, constexprs: dict) -> tuple[dict, tuple]:
    """(signature, divisible) of `kernel` as the runtime sees inputs straight out of the fused QKV projection:
    16-byte aligned pointers, strides that are multiples of 16 and a unit stride along the head dim (a constant)."""
    import inspect

    signature, divisible = {}, []
    for name in inspect.signature(getattr(kernel, "fn", kernel)).parameters:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in ("LSE", "DELTA"):
            signature[name] = "*fp32"
        elif name == "MASK":
            signature[name] = "*u8"
        elif name.isupper():
            signature[name] = f"*{dtype}"
        elif name in ("qk_scale", "sm_scale"):
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
        if signature[name].startswith("*") or name.startswith("stride_") or name == "head_dim":
            if signature[name] != "constexpr":
                divisible.append(name)
    return signature, tuple(divisible)


# (dtype, dot precision, key mask): 16-bit dtypes with a key mask, bf16 without one (the common training call), and
# fp32 with tf32 dots (its own, smaller backward tiles).
_AOT_VARIANTS = (("bf16", "ieee", True), ("bf16", "ieee", False), ("fp16", "ieee", True), ("fp32", "tf32", True))
_ITEMSIZE = {"bf16": 2, "fp16": 2, "fp32": 4}


def aot_specs() -> list:
    """Every kept kernel configuration (forward; backward tile or dq + dkdv) for head dims 64 and 80, bf16, fp16 and
    fp32 (tf32), at ViViT-B shapes."""
    import inspect

    from kernels.aot import KernelSpec

    specs = []

    def add(name, kernel, variant, label, cfg):
        dtype, precision, has_mask = variant
        cfg = dict(cfg)
        num_warps, num_stages = cfg.pop("num_warps"), cfg.pop("num_stages")
        params = inspect.signature(getattr(kernel, "fn", kernel)).parameters
        constexprs = dict(cfg, HAS_MASK=has_mask, DOT_PRECISION=precision, UPCAST=False)
        constexprs.update({n: 1 for n in params if _is_head_dim_stride(n)})
        signature, divisible = _aot_signature(kernel, dtype, constexprs)
        tiles = " ".join(f"{k}={v}" for k, v in sorted(cfg.items()))
        specs.append(
            KernelSpec(
                name=name,
                config=f"{dtype} {precision} {'mask' if has_mask else 'nomask'} {label} {tiles}",
                fn=kernel,
                signature=signature,
                constexprs=constexprs,
                num_warps=num_warps,
                num_stages=num_stages,
                divisible=divisible,
            )
        )

    for variant in _AOT_VARIANTS:
        for head_dim in (64, 80):
            for label, seq_len in _AOT_LENGTHS["fwd"]:
                cfg = _fwd_config(seq_len, _AOT_SEQUENCES, head_dim, _ITEMSIZE[variant[0]])
                add("attention_fwd", _attention_fwd_kernel, variant, f"D{head_dim} {label}", cfg)
            for label, seq_len in _AOT_LENGTHS["bwd"]:
                cfg = _bwd_config(seq_len, _AOT_SEQUENCES, head_dim, _ITEMSIZE[variant[0]])
                if "PACK" in cfg:
                    add("attention_bwd", _attention_bwd_tile_kernel, variant, f"D{head_dim} {label} tile", cfg)
                    continue
                for part, kernel in (("dq", _attention_bwd_dq_kernel), ("dkdv", _attention_bwd_dkdv_kernel)):
                    sub = dict(cfg[part], BLOCK_D=cfg["BLOCK_D"])
                    add("attention_bwd", kernel, variant, f"D{head_dim} {label} {part}", sub)
    return specs


# ----------------------------------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------------------------------
def triton_unsupported_reason(q, k=None, v=None, *, axis="joint", key_mask=None, dropout_p=0.0) -> str | None:
    """None when backend="triton" can run this call, else why not (the model's "auto" mode uses this)."""
    tensors = [t for t in (q, k, v, key_mask) if t is not None]
    reason = triton_unavailable_reason(*tensors)
    if reason is not None:
        return reason
    if dropout_p > 0.0:
        return "attention dropout (dropout_p > 0) is not implemented in the Triton kernel"
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"dtype {q.dtype} is not supported (float16, bfloat16, float32)"
    if not 1 <= q.shape[-1] <= 128:
        return f"head dim {q.shape[-1]} is not supported (1..128)"
    return None


def attention(q, k, v, *, axis="joint", key_mask=None, scale=None, dropout_p=0.0, backend="eager") -> torch.Tensor:
    """Non-causal softmax attention along `axis`; returns q's shape.

    axis="joint": q, k, v (B, L, H, D), key_mask None or bool (B, L) with True = real key.
    axis="spatial": q, k, v (B, T, S, H, D), attention over the S tokens of each frame; key_mask bool (B, T) over
        frames (a False frame has all its keys masked, so its rows are zeros).
    axis="temporal": q, k, v (B, T, S, H, D), attention over the T frames of each patch; key_mask (B, T) masks frames.
    A query row whose keys are all masked returns zeros. scale defaults to D ** -0.5.
    backend="eager" runs F.scaled_dot_product_attention on views; backend="triton" runs the Triton kernel or raises
    NotImplementedError when it cannot.
    """
    _check_inputs(q, k, v, axis, key_mask, dropout_p, backend)
    if backend == "eager":
        return _attention_eager(q, k, v, axis, key_mask, scale, dropout_p)
    reason = triton_unsupported_reason(q, k, v, axis=axis, key_mask=key_mask, dropout_p=dropout_p)
    if reason is not None:
        raise NotImplementedError(f"attention: {reason}")
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    out, _ = attention_fwd(q, k, v, key_mask, axis, scale)
    return out
