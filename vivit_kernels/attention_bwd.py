"""Triton backward kernels of vivit_kernels.attention: deterministic (every program owns the rows it writes, no
atomics).

Addressing and head-dim chunks (BLOCK_D, then TAIL_D for 16-bit head dims 65-96) as in
vivit_kernels.attention_fwd. Sequences that fit one tile take `_attention_bwd_tile_kernel` (dQ, dK, dV
and delta in one launch); longer ones take `_attention_bwd_dq_kernel` (which also writes delta = rowsum(dO * O)) and
then `_attention_bwd_dkdv_kernel`, each launched once over the full tiles and once over the tail in short tiles.
"""

import triton
import triton.language as tl

from vivit_kernels.attention_fwd import _head_dim_tail, _key_ok, _load_rows, _operand, _row_offsets, _tile_tokens


@triton.jit
def _dkdv_query_tile(
    dk, dv, dk2, dv2, k, v, k2, v2, key_ok, start_m, z0, pid_b, Q, DO, LSE, DELTA, offs_d, ok_d, offs_d2, ok_d2,
    stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
    stride_gb, stride_go, stride_gh, stride_gl, stride_gd,
    n_seq, n_heads, seq_len, qk_scale,
    BLOCK_M: tl.constexpr, TAIL_D: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """One query tile of BLOCK_M rows from start_m: its contribution to the key tile's dK and dV. The same step
    serves full query tiles and the short tail tiles after them."""
    z_m, o_m, h_m, pos_m, ok_m = _tile_tokens(start_m, z0, n_seq, seq_len, n_heads, BLOCK_M, 1, BLOCK_M)
    mask_m = ok_m[:, None] & ok_d[None, :]
    rows_q = _row_offsets(o_m, h_m, pos_m, stride_qo, stride_qh, stride_ql)
    q = _load_rows(Q + pid_b * stride_qb, rows_q, offs_d, stride_qd, mask_m, UPCAST)
    rows_g = _row_offsets(o_m, h_m, pos_m, stride_go, stride_gh, stride_gl)
    do = _load_rows(DO + pid_b * stride_gb, rows_g, offs_d, stride_gd, mask_m, UPCAST)
    row = (pid_b * n_seq + z_m) * seq_len + pos_m
    lse = tl.load(LSE + row, mask=ok_m, other=float("inf"))
    delta = tl.load(DELTA + row, mask=ok_m, other=0.0)
    st = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        mask_m2 = ok_m[:, None] & ok_d2[None, :]
        q2 = _load_rows(Q + pid_b * stride_qb, rows_q, offs_d2, stride_qd, mask_m2, UPCAST)
        do2 = _load_rows(DO + pid_b * stride_gb, rows_g, offs_d2, stride_gd, mask_m2, UPCAST)
        st += tl.dot(k2, tl.trans(q2), input_precision=DOT_PRECISION)
    pt = tl.where(key_ok[:, None], tl.math.exp2(st * qk_scale - lse[None, :]), 0.0)
    pt_op = _operand(pt, DO, UPCAST)
    dv += tl.dot(pt_op, do, input_precision=DOT_PRECISION)
    dpt = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        dv2 += tl.dot(pt_op, do2, input_precision=DOT_PRECISION)
        dpt += tl.dot(v2, tl.trans(do2), input_precision=DOT_PRECISION)
    dst = _operand(pt * (dpt - delta[None, :]), Q, UPCAST)
    dk += tl.dot(dst, q, input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        dk2 += tl.dot(dst, q2, input_precision=DOT_PRECISION)
    return dk, dv, dk2, dv2


@triton.jit(do_not_specialize=["has_mask", "row_start", "row_end"])
def _attention_bwd_dkdv_kernel(
    Q, K, V, DO, DK, DV, LSE, DELTA, MASK,
    stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
    stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
    stride_gb, stride_go, stride_gh, stride_gl, stride_gd,
    stride_db, stride_do, stride_dh, stride_dl, stride_dd,
    stride_mb, stride_mo, stride_ml,
    n_seq, n_heads, seq_len, head_dim, qk_scale, sm_scale, has_mask, row_start, row_end,
    BLOCK_M: tl.constexpr, TAIL_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, TAIL_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """dK and dV of one key tile, looping over every query tile of its sequence (each program owns its output).
    Key rows [row_start, row_end) in tiles of BLOCK_N (full tiles in one launch, the tail in short tiles in a second
    one); queries in full BLOCK_M tiles, then TAIL_M tiles up to seq_len."""
    pid_b = tl.program_id(1).to(tl.int64)
    n_n = tl.cdiv(row_end - row_start, BLOCK_N)
    start_n = row_start + (tl.program_id(0) % n_n) * BLOCK_N
    z0 = tl.program_id(0) // n_n
    _, o_n, h_n, pos_n, ok_n = _tile_tokens(start_n, z0, n_seq, seq_len, n_heads, BLOCK_N, 1, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    ok_d = offs_d < head_dim
    mask_n = ok_n[:, None] & ok_d[None, :]
    rows_k = _row_offsets(o_n, h_n, pos_n, stride_ko, stride_kh, stride_kl)
    k = _load_rows(K + pid_b * stride_kb, rows_k, offs_d, stride_kd, mask_n, UPCAST)
    rows_v = _row_offsets(o_n, h_n, pos_n, stride_vo, stride_vh, stride_vl)
    v = _load_rows(V + pid_b * stride_vb, rows_v, offs_d, stride_vd, mask_n, UPCAST)
    offs_d2, ok_d2, k2 = _head_dim_tail(K + pid_b * stride_kb, rows_k, stride_kd, ok_n, k, head_dim, BLOCK_D, TAIL_D,
                                        UPCAST)  # fmt: skip
    _, _, v2 = _head_dim_tail(V + pid_b * stride_vb, rows_v, stride_vd, ok_n, v, head_dim, BLOCK_D, TAIL_D, UPCAST)
    key_ok = _key_ok(MASK, pid_b, o_n, pos_n, ok_n, stride_mb, stride_mo, stride_ml, has_mask)

    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dk2, dv2 = dk, dv
    if TAIL_D > 0:
        dk2 = tl.zeros([BLOCK_N, TAIL_D], dtype=tl.float32)
        dv2 = tl.zeros([BLOCK_N, TAIL_D], dtype=tl.float32)
    queries_full = (seq_len // BLOCK_M) * BLOCK_M
    for start_m in range(0, queries_full, BLOCK_M):
        dk, dv, dk2, dv2 = _dkdv_query_tile(
            dk, dv, dk2, dv2, k, v, k2, v2, key_ok, start_m, z0, pid_b, Q, DO, LSE, DELTA, offs_d, ok_d, offs_d2, ok_d2,
            stride_qb, stride_qo, stride_qh, stride_ql, stride_qd, stride_gb, stride_go, stride_gh, stride_gl,
            stride_gd, n_seq, n_heads, seq_len, qk_scale, BLOCK_M, TAIL_D, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    for start_m in range(queries_full, seq_len, TAIL_M):  # the last seq_len % BLOCK_M queries, in short tiles
        dk, dv, dk2, dv2 = _dkdv_query_tile(
            dk, dv, dk2, dv2, k, v, k2, v2, key_ok, start_m, z0, pid_b, Q, DO, LSE, DELTA, offs_d, ok_d, offs_d2, ok_d2,
            stride_qb, stride_qo, stride_qh, stride_ql, stride_qd, stride_gb, stride_go, stride_gh, stride_gl,
            stride_gd, n_seq, n_heads, seq_len, qk_scale, TAIL_M, TAIL_D, DOT_PRECISION, UPCAST,
        )  # fmt: skip

    rows_d = pid_b * stride_db + _row_offsets(o_n, h_n, pos_n, stride_do, stride_dh, stride_dl)
    grad = rows_d[:, None] + offs_d[None, :] * stride_dd
    tl.store(DK + grad, (dk * sm_scale).to(DK.dtype.element_ty), mask=mask_n)
    tl.store(DV + grad, dv.to(DV.dtype.element_ty), mask=mask_n)
    if TAIL_D > 0:
        grad2 = rows_d[:, None] + offs_d2[None, :] * stride_dd
        mask_n2 = ok_n[:, None] & ok_d2[None, :]
        tl.store(DK + grad2, (dk2 * sm_scale).to(DK.dtype.element_ty), mask=mask_n2)
        tl.store(DV + grad2, dv2.to(DV.dtype.element_ty), mask=mask_n2)


@triton.jit
def _dq_key_tile(
    dq, dq2, q, do, q2, do2, lse, delta, start_n, z0, pid_b, K, V, MASK, offs_d, ok_d, offs_d2, ok_d2,
    stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
    stride_mb, stride_mo, stride_ml,
    n_seq, n_heads, seq_len, qk_scale, has_mask,
    BLOCK_N: tl.constexpr, TAIL_D: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """One key tile of BLOCK_N keys from start_n: its contribution to the query tile's dQ. The same step serves
    full key tiles and the short tail tiles after them."""
    _, o_n, h_n, pos_n, ok_n = _tile_tokens(start_n, z0, n_seq, seq_len, n_heads, BLOCK_N, 1, BLOCK_N)
    mask_n = ok_n[:, None] & ok_d[None, :]
    rows_k = _row_offsets(o_n, h_n, pos_n, stride_ko, stride_kh, stride_kl)
    k = _load_rows(K + pid_b * stride_kb, rows_k, offs_d, stride_kd, mask_n, UPCAST)
    rows_v = _row_offsets(o_n, h_n, pos_n, stride_vo, stride_vh, stride_vl)
    v = _load_rows(V + pid_b * stride_vb, rows_v, offs_d, stride_vd, mask_n, UPCAST)
    key_ok = _key_ok(MASK, pid_b, o_n, pos_n, ok_n, stride_mb, stride_mo, stride_ml, has_mask)
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
    dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        mask_n2 = ok_n[:, None] & ok_d2[None, :]
        k2 = _load_rows(K + pid_b * stride_kb, rows_k, offs_d2, stride_kd, mask_n2, UPCAST)
        v2 = _load_rows(V + pid_b * stride_vb, rows_v, offs_d2, stride_vd, mask_n2, UPCAST)
        s += tl.dot(q2, tl.trans(k2), input_precision=DOT_PRECISION)
        dp += tl.dot(do2, tl.trans(v2), input_precision=DOT_PRECISION)
    p = tl.where(key_ok[None, :], tl.math.exp2(s * qk_scale - lse[:, None]), 0.0)
    ds = _operand(p * (dp - delta[:, None]), K, UPCAST)
    dq += tl.dot(ds, k, input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        dq2 += tl.dot(ds, k2, input_precision=DOT_PRECISION)
    return dq, dq2


@triton.jit(do_not_specialize=["has_mask", "row_start", "row_end"])
def _attention_bwd_dq_kernel(
    Q, K, V, O, DO, DQ, LSE, DELTA, MASK,
    stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
    stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
    stride_ob, stride_oo, stride_oh, stride_ol, stride_od,
    stride_gb, stride_go, stride_gh, stride_gl, stride_gd,
    stride_db, stride_do, stride_dh, stride_dl, stride_dd,
    stride_mb, stride_mo, stride_ml,
    n_seq, n_heads, seq_len, head_dim, qk_scale, sm_scale, has_mask, row_start, row_end,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, TAIL_N: tl.constexpr, BLOCK_D: tl.constexpr, TAIL_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """dQ (and delta) of one query tile, looping over every key tile of its sequence: no atomics, deterministic.
    Query rows [row_start, row_end) in tiles of BLOCK_M (full tiles in one launch, the tail in short tiles in a
    second one); keys in full BLOCK_N tiles, then TAIL_N tiles up to seq_len."""
    pid_b = tl.program_id(1).to(tl.int64)
    n_m = tl.cdiv(row_end - row_start, BLOCK_M)
    start_m = row_start + (tl.program_id(0) % n_m) * BLOCK_M
    z0 = tl.program_id(0) // n_m
    z_m, o_m, h_m, pos_m, ok_m = _tile_tokens(start_m, z0, n_seq, seq_len, n_heads, BLOCK_M, 1, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    ok_d = offs_d < head_dim
    mask_m = ok_m[:, None] & ok_d[None, :]
    rows_q = _row_offsets(o_m, h_m, pos_m, stride_qo, stride_qh, stride_ql)
    q = _load_rows(Q + pid_b * stride_qb, rows_q, offs_d, stride_qd, mask_m, UPCAST)
    rows_g = _row_offsets(o_m, h_m, pos_m, stride_go, stride_gh, stride_gl)
    do = _load_rows(DO + pid_b * stride_gb, rows_g, offs_d, stride_gd, mask_m, UPCAST)
    rows_o = _row_offsets(o_m, h_m, pos_m, stride_oo, stride_oh, stride_ol)
    o = _load_rows(O + pid_b * stride_ob, rows_o, offs_d, stride_od, mask_m, False)  # upcast below, for delta only
    # delta = rowsum(dO * O) is computed here once per query row and stored for the dK/dV kernel launched next.
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    offs_d2, ok_d2, q2 = _head_dim_tail(Q + pid_b * stride_qb, rows_q, stride_qd, ok_m, q, head_dim, BLOCK_D, TAIL_D,
                                        UPCAST)  # fmt: skip
    _, _, do2 = _head_dim_tail(DO + pid_b * stride_gb, rows_g, stride_gd, ok_m, do, head_dim, BLOCK_D, TAIL_D, UPCAST)
    if TAIL_D > 0:
        o2 = _load_rows(O + pid_b * stride_ob, rows_o, offs_d2, stride_od, ok_m[:, None] & ok_d2[None, :], False)
        delta += tl.sum(o2.to(tl.float32) * do2.to(tl.float32), 1)
    row = (pid_b * n_seq + z_m) * seq_len + pos_m
    tl.store(DELTA + row, delta, mask=ok_m)
    lse = tl.load(LSE + row, mask=ok_m, other=float("inf"))

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    dq2 = dq
    if TAIL_D > 0:
        dq2 = tl.zeros([BLOCK_M, TAIL_D], dtype=tl.float32)
    keys_full = (seq_len // BLOCK_N) * BLOCK_N
    for start_n in range(0, keys_full, BLOCK_N):
        dq, dq2 = _dq_key_tile(
            dq, dq2, q, do, q2, do2, lse, delta, start_n, z0, pid_b, K, V, MASK, offs_d, ok_d, offs_d2, ok_d2,
            stride_kb, stride_ko, stride_kh, stride_kl, stride_kd, stride_vb, stride_vo, stride_vh, stride_vl,
            stride_vd, stride_mb, stride_mo, stride_ml, n_seq, n_heads, seq_len, qk_scale, has_mask,
            BLOCK_N, TAIL_D, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    for start_n in range(keys_full, seq_len, TAIL_N):  # the last seq_len % BLOCK_N keys, in short tiles
        dq, dq2 = _dq_key_tile(
            dq, dq2, q, do, q2, do2, lse, delta, start_n, z0, pid_b, K, V, MASK, offs_d, ok_d, offs_d2, ok_d2,
            stride_kb, stride_ko, stride_kh, stride_kl, stride_kd, stride_vb, stride_vo, stride_vh, stride_vl,
            stride_vd, stride_mb, stride_mo, stride_ml, n_seq, n_heads, seq_len, qk_scale, has_mask,
            TAIL_N, TAIL_D, DOT_PRECISION, UPCAST,
        )  # fmt: skip

    rows_d = pid_b * stride_db + _row_offsets(o_m, h_m, pos_m, stride_do, stride_dh, stride_dl)
    grad = rows_d[:, None] + offs_d[None, :] * stride_dd
    tl.store(DQ + grad, (dq * sm_scale).to(DQ.dtype.element_ty), mask=mask_m)
    if TAIL_D > 0:
        grad2 = rows_d[:, None] + offs_d2[None, :] * stride_dd
        tl.store(DQ + grad2, (dq2 * sm_scale).to(DQ.dtype.element_ty), mask=ok_m[:, None] & ok_d2[None, :])


@triton.jit(do_not_specialize=["has_mask"])
def _attention_bwd_tile_kernel(
    Q, K, V, O, DO, DQ, DK, DV, LSE, MASK,
    stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
    stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
    stride_ob, stride_oo, stride_oh, stride_ol, stride_od,
    stride_gb, stride_go, stride_gh, stride_gl, stride_gd,
    stride_db, stride_do, stride_dh, stride_dl, stride_dd,
    stride_mb, stride_mo, stride_ml,
    n_seq, n_heads, seq_len, head_dim, qk_scale, sm_scale, has_mask,
    SEQ_BLOCK: tl.constexpr, PACK: tl.constexpr, BLOCK: tl.constexpr,
    BLOCK_D: tl.constexpr, TAIL_D: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """dQ, dK, dV of PACK whole sequences that fit one tile: one launch, no delta pass, no loop."""
    pid_b = tl.program_id(1).to(tl.int64)
    z0 = tl.program_id(0) * PACK
    z, o_t, h_t, pos, ok = _tile_tokens(0, z0, n_seq, seq_len, n_heads, SEQ_BLOCK, PACK, BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    mask = ok[:, None] & (offs_d < head_dim)[None, :]
    rows_q = _row_offsets(o_t, h_t, pos, stride_qo, stride_qh, stride_ql)
    q = _load_rows(Q + pid_b * stride_qb, rows_q, offs_d, stride_qd, mask, UPCAST)
    rows_k = _row_offsets(o_t, h_t, pos, stride_ko, stride_kh, stride_kl)
    k = _load_rows(K + pid_b * stride_kb, rows_k, offs_d, stride_kd, mask, UPCAST)
    rows_v = _row_offsets(o_t, h_t, pos, stride_vo, stride_vh, stride_vl)
    v = _load_rows(V + pid_b * stride_vb, rows_v, offs_d, stride_vd, mask, UPCAST)
    rows_o = _row_offsets(o_t, h_t, pos, stride_oo, stride_oh, stride_ol)
    o = _load_rows(O + pid_b * stride_ob, rows_o, offs_d, stride_od, mask, False)  # upcast below, for delta only
    rows_g = _row_offsets(o_t, h_t, pos, stride_go, stride_gh, stride_gl)
    do = _load_rows(DO + pid_b * stride_gb, rows_g, offs_d, stride_gd, mask, UPCAST)
    lse = tl.load(LSE + (pid_b * n_seq + z) * seq_len + pos, mask=ok, other=float("inf"))
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    key_ok = _key_ok(MASK, pid_b, o_t, pos, ok, stride_mb, stride_mo, stride_ml, has_mask)
    valid = key_ok[None, :]
    if PACK > 1:
        valid = valid & (z[:, None] == z[None, :])

    s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        offs_d2, ok_d2, q2 = _head_dim_tail(Q + pid_b * stride_qb, rows_q, stride_qd, ok, q, head_dim, BLOCK_D, TAIL_D,
                                            UPCAST)  # fmt: skip
        mask2 = ok[:, None] & ok_d2[None, :]
        k2 = _load_rows(K + pid_b * stride_kb, rows_k, offs_d2, stride_kd, mask2, UPCAST)
        v2 = _load_rows(V + pid_b * stride_vb, rows_v, offs_d2, stride_vd, mask2, UPCAST)
        o2 = _load_rows(O + pid_b * stride_ob, rows_o, offs_d2, stride_od, mask2, False)
        do2 = _load_rows(DO + pid_b * stride_gb, rows_g, offs_d2, stride_gd, mask2, UPCAST)
        delta += tl.sum(o2.to(tl.float32) * do2.to(tl.float32), 1)
        s += tl.dot(q2, tl.trans(k2), input_precision=DOT_PRECISION)
    p = tl.where(valid, tl.math.exp2(s * qk_scale - lse[:, None]), 0.0)
    pt = tl.trans(_operand(p, DO, UPCAST))
    dv = tl.dot(pt, do, input_precision=DOT_PRECISION)
    dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        dp += tl.dot(do2, tl.trans(v2), input_precision=DOT_PRECISION)
    ds = _operand(p * (dp - delta[:, None]), Q, UPCAST)
    dq = tl.dot(ds, k, input_precision=DOT_PRECISION) * sm_scale
    dk = tl.dot(tl.trans(ds), q, input_precision=DOT_PRECISION) * sm_scale

    rows_d = pid_b * stride_db + _row_offsets(o_t, h_t, pos, stride_do, stride_dh, stride_dl)
    grad = rows_d[:, None] + offs_d[None, :] * stride_dd
    tl.store(DQ + grad, dq.to(DQ.dtype.element_ty), mask=mask)
    tl.store(DK + grad, dk.to(DK.dtype.element_ty), mask=mask)
    tl.store(DV + grad, dv.to(DV.dtype.element_ty), mask=mask)
    if TAIL_D > 0:
        grad2 = rows_d[:, None] + offs_d2[None, :] * stride_dd
        dq2 = tl.dot(ds, k2, input_precision=DOT_PRECISION) * sm_scale
        tl.store(DQ + grad2, dq2.to(DQ.dtype.element_ty), mask=mask2)
        dk2 = tl.dot(tl.trans(ds), q2, input_precision=DOT_PRECISION) * sm_scale
        tl.store(DK + grad2, dk2.to(DK.dtype.element_ty), mask=mask2)
        tl.store(DV + grad2, tl.dot(pt, do2, input_precision=DOT_PRECISION).to(DV.dtype.element_ty), mask=mask2)
