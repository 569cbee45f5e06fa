"""Triton backward kernels of kernels.attention: deterministic (every program owns the rows it writes, no atomics).

Addressing as in kernels.attention_fwd. Sequences that fit one tile take `_attention_bwd_tile_kernel` (dQ, dK, dV
and delta in one launch); longer ones take `_attention_bwd_dq_kernel` (which also writes delta = rowsum(dO * O)) and
then `_attention_bwd_dkdv_kernel`.
"""

import triton
import triton.language as tl

from kernels.attention_fwd import _key_ok, _tile_tokens


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
        pid_b * stride_db + (o_t * stride_do + h_t * stride_dh + tok * stride_dl)[:, None] + offs_d[None, :] * stride_dd
    )
    tl.store(DQ + grad, dq.to(DQ.dtype.element_ty), mask=mask)
    tl.store(DK + grad, dk.to(DK.dtype.element_ty), mask=mask)
    tl.store(DV + grad, dv.to(DV.dtype.element_ty), mask=mask)
