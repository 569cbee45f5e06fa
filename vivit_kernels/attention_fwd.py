"""Triton forward kernel of vivit_kernels.attention (launchers, custom ops and the design notes live there).

Every sequence is addressed by strides alone: token (b, outer, head, pos) of a tensor sits at
b * stride_b + outer * stride_o + head * stride_h + pos * stride_l (+ d * stride_d). joint: outer is unused (stride
0), pos runs over L; spatial: outer = t, pos = s; temporal: outer = s, pos = t. Sequences are numbered
z = outer * n_heads + head inside each batch element, so neighbouring sequences of a packed tile are neighbouring
heads in memory. Log-sum-exp (base 2, fp32) is kept as (B, n_outer, n_heads, L).

The head dim runs in one chunk of BLOCK_D columns (a power of two), or two: BLOCK_D then TAIL_D (head dim 80 as
64 + 16, 96 as 64 + 32), since `tl.arange` needs powers of two and padding 80 to 128 wastes 37.5 % of every dot.
Each dot over the head dim is then two dots summed, and each head-dim-wide accumulator two accumulators. With one
chunk (TAIL_D == 0) the second chunk's names hold placeholders that no code reads.
"""

import triton
import triton.language as tl


@triton.jit
def _tile_tokens(start, z0, n_seq, seq_len, n_heads, SEQ_BLOCK: tl.constexpr, PACK: tl.constexpr, BLOCK: tl.constexpr):
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
def _key_ok(MASK, pid_b, outer, pos, ok, stride_mb, stride_mo, stride_ml, has_mask):
    """Slots that are real, unmasked keys. `has_mask` is a runtime flag (0: no mask, nothing is loaded): one compiled
    kernel serves calls with and without a key mask, at the cost of a predicated-off load."""
    use = (pos * 0 + has_mask) != 0  # a tensor, as the interpreter needs for a load mask
    keep = tl.load(MASK + pid_b * stride_mb + outer * stride_mo + pos.to(tl.int64) * stride_ml, mask=ok & use, other=1)
    return ok & (keep != 0)


@triton.jit
def _row_offsets(outer, head, pos, stride_o, stride_h, stride_l):
    """Offset (int64) of each token slot's row inside its batch element."""
    return outer * stride_o + head * stride_h + pos.to(tl.int64) * stride_l


@triton.jit
def _load_rows(X, rows, offs_d, stride_d, mask, UPCAST: tl.constexpr):
    """The (slots, BLOCK_D) tile of rows `rows` of X, zeros where masked; fp32 when UPCAST (interpreter bf16)."""
    x = tl.load(X + rows[:, None] + offs_d[None, :] * stride_d, mask=mask, other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    return x


@triton.jit
def _load_cols(X, rows, offs_d, stride_d, mask, UPCAST: tl.constexpr):
    """The transposed (BLOCK_D, slots) tile of rows `rows` of X, zeros where masked; fp32 when UPCAST."""
    x = tl.load(X + rows[None, :] + offs_d[:, None] * stride_d, mask=mask, other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    return x


@triton.jit
def _head_dim_tail(X, rows, stride_d, ok_rows, x, head_dim, BLOCK_D: tl.constexpr, TAIL_D: tl.constexpr,
                   UPCAST: tl.constexpr):  # fmt: skip
    """(offs_d2, ok_d2, x2): the head-dim tail chunk's columns, which of them are real, and X's tile of `rows` there;
    with no tail chunk (TAIL_D == 0), placeholders (x for x2) that no code reads."""
    if TAIL_D > 0:
        offs_d2 = BLOCK_D + tl.arange(0, TAIL_D)
        ok_d2 = offs_d2 < head_dim
        x2 = _load_rows(X, rows, offs_d2, stride_d, ok_rows[:, None] & ok_d2[None, :], UPCAST)
    else:
        offs_d2 = tl.arange(0, BLOCK_D)
        ok_d2 = offs_d2 < 0
        x2 = x
    return offs_d2, ok_d2, x2


@triton.jit
def _operand(x, LIKE, UPCAST: tl.constexpr):
    """x (fp32) as a tensor-core operand of LIKE's element type. Under UPCAST (the interpreter's bf16, whose dot is
    broken) the value is rounded through that type and handed to an fp32 dot: the rounding a GPU applies, at no cost
    on a GPU (UPCAST is False there)."""
    x = x.to(LIKE.dtype.element_ty)
    if UPCAST:
        x = x.to(tl.float32)
    return x


@triton.jit
def _fwd_key_tile(
    q, q2, m_i, l_i, acc, acc2, z_m, ok_m, start_n, z0, pid_b, K, V, MASK, offs_d, ok_d, offs_d2, ok_d2,
    stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
    stride_mb, stride_mo, stride_ml,
    n_seq, n_heads, seq_len, qk_scale, has_mask,
    SEQ_BLOCK: tl.constexpr, PACK: tl.constexpr, BLOCK_N: tl.constexpr, SINGLE_TILE: tl.constexpr,
    TAIL_D: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """One key tile of BLOCK_N keys from start_n: the online-softmax update of (m_i, l_i, acc, acc2). The same step
    serves full tiles and the short tail tiles after them (BLOCK_N is a constexpr, so each size compiles its own
    dots)."""
    z_n, o_n, h_n, pos_n, ok_n = _tile_tokens(start_n, z0, n_seq, seq_len, n_heads, SEQ_BLOCK, PACK, BLOCK_N)
    rows_k = _row_offsets(o_n, h_n, pos_n, stride_ko, stride_kh, stride_kl)
    rows_v = _row_offsets(o_n, h_n, pos_n, stride_vo, stride_vh, stride_vl)
    # K is loaded transposed, (BLOCK_D, BLOCK_N), ready for q @ kt.
    kt = _load_cols(K + pid_b * stride_kb, rows_k, offs_d, stride_kd, ok_n[None, :] & ok_d[:, None], UPCAST)
    v = _load_rows(V + pid_b * stride_vb, rows_v, offs_d, stride_vd, ok_n[:, None] & ok_d[None, :], UPCAST)
    if TAIL_D > 0:
        kt2 = _load_cols(K + pid_b * stride_kb, rows_k, offs_d2, stride_kd, ok_n[None, :] & ok_d2[:, None], UPCAST)
        v2 = _load_rows(V + pid_b * stride_vb, rows_v, offs_d2, stride_vd, ok_n[:, None] & ok_d2[None, :], UPCAST)
    ok_n = _key_ok(MASK, pid_b, o_n, pos_n, ok_n, stride_mb, stride_mo, stride_ml, has_mask)
    valid = ok_n[None, :] & ok_m[:, None]
    if PACK > 1:
        valid = valid & (z_m[:, None] == z_n[None, :])  # block-diagonal: a row sees its own sequence only
    s = tl.dot(q, kt, input_precision=DOT_PRECISION)
    if TAIL_D > 0:
        s += tl.dot(q2, kt2, input_precision=DOT_PRECISION)
    s = tl.where(valid, s * qk_scale, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows without a key so far stay at p = 0
    p = tl.math.exp2(s - m_safe[:, None])
    if SINGLE_TILE:
        l_i = tl.sum(p, 1)
        pv = _operand(p, V, UPCAST)
        acc = tl.dot(pv, v, input_precision=DOT_PRECISION)
        if TAIL_D > 0:
            acc2 = tl.dot(pv, v2, input_precision=DOT_PRECISION)
    else:
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        pv = _operand(p, V, UPCAST)
        acc = acc * alpha[:, None] + tl.dot(pv, v, input_precision=DOT_PRECISION)
        if TAIL_D > 0:
            acc2 = acc2 * alpha[:, None] + tl.dot(pv, v2, input_precision=DOT_PRECISION)
    return m_new, l_i, acc, acc2


@triton.jit(do_not_specialize=["has_mask", "row_start", "row_end"])
def _attention_fwd_kernel(
    Q, K, V, O, LSE, MASK,
    stride_qb, stride_qo, stride_qh, stride_ql, stride_qd,
    stride_kb, stride_ko, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vo, stride_vh, stride_vl, stride_vd,
    stride_ob, stride_oo, stride_oh, stride_ol, stride_od,
    stride_mb, stride_mo, stride_ml,
    n_seq, n_heads, seq_len, head_dim, qk_scale, has_mask, row_start, row_end,
    SEQ_BLOCK: tl.constexpr, PACK: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, TAIL_N: tl.constexpr, BLOCK_D: tl.constexpr, TAIL_D: tl.constexpr,
    SINGLE_TILE: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Query rows [row_start, row_end) of every sequence in tiles of BLOCK_M rows: the launcher covers the full
    tiles with one launch and the remainder with a second one of short tail tiles. Keys run in full BLOCK_N tiles,
    then in TAIL_N tiles up to seq_len, so padding is at most TAIL_N - 1 keys and rows."""
    pid_b = tl.program_id(1).to(tl.int64)
    n_m = tl.cdiv(row_end - row_start, BLOCK_M)
    start_m = row_start + (tl.program_id(0) % n_m) * BLOCK_M
    z0 = (tl.program_id(0) // n_m) * PACK

    z_m, o_m, h_m, pos_m, ok_m = _tile_tokens(start_m, z0, n_seq, seq_len, n_heads, SEQ_BLOCK, PACK, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    ok_d = offs_d < head_dim
    rows_q = _row_offsets(o_m, h_m, pos_m, stride_qo, stride_qh, stride_ql)
    q = _load_rows(Q + pid_b * stride_qb, rows_q, offs_d, stride_qd, ok_m[:, None] & ok_d[None, :], UPCAST)
    offs_d2, ok_d2, q2 = _head_dim_tail(Q + pid_b * stride_qb, rows_q, stride_qd, ok_m, q, head_dim, BLOCK_D, TAIL_D,
                                        UPCAST)  # fmt: skip

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    acc2 = acc
    if TAIL_D > 0:
        acc2 = tl.zeros([BLOCK_M, TAIL_D], dtype=tl.float32)
    # The key-tile step reads K, V and the mask of batch element pid_b; each call names its tile size.
    if SINGLE_TILE:
        # One key tile covers the whole sequence (and every packed sequence): no rescaling loop.
        m_i, l_i, acc, acc2 = _fwd_key_tile(
            q, q2, m_i, l_i, acc, acc2, z_m, ok_m, 0, z0, pid_b, K, V, MASK, offs_d, ok_d, offs_d2, ok_d2,
            stride_kb, stride_ko, stride_kh, stride_kl, stride_kd, stride_vb, stride_vo, stride_vh, stride_vl,
            stride_vd, stride_mb, stride_mo, stride_ml, n_seq, n_heads, seq_len, qk_scale, has_mask,
            SEQ_BLOCK, PACK, BLOCK_N, True, TAIL_D, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    else:
        keys_full = (seq_len // BLOCK_N) * BLOCK_N
        for start_n in range(0, keys_full, BLOCK_N):
            m_i, l_i, acc, acc2 = _fwd_key_tile(
                q, q2, m_i, l_i, acc, acc2, z_m, ok_m, start_n, z0, pid_b, K, V, MASK, offs_d, ok_d, offs_d2, ok_d2,
                stride_kb, stride_ko, stride_kh, stride_kl, stride_kd, stride_vb, stride_vo, stride_vh, stride_vl,
                stride_vd, stride_mb, stride_mo, stride_ml, n_seq, n_heads, seq_len, qk_scale, has_mask,
                SEQ_BLOCK, PACK, BLOCK_N, False, TAIL_D, DOT_PRECISION, UPCAST,
            )  # fmt: skip
        for start_n in range(keys_full, seq_len, TAIL_N):  # the last seq_len % BLOCK_N keys, in short tiles
            m_i, l_i, acc, acc2 = _fwd_key_tile(
                q, q2, m_i, l_i, acc, acc2, z_m, ok_m, start_n, z0, pid_b, K, V, MASK, offs_d, ok_d, offs_d2, ok_d2,
                stride_kb, stride_ko, stride_kh, stride_kl, stride_kd, stride_vb, stride_vo, stride_vh, stride_vl,
                stride_vd, stride_mb, stride_mo, stride_ml, n_seq, n_heads, seq_len, qk_scale, has_mask,
                SEQ_BLOCK, PACK, TAIL_N, False, TAIL_D, DOT_PRECISION, UPCAST,
            )  # fmt: skip

    empty = l_i == 0.0  # every key of the row is masked: output zeros, log-sum-exp +inf (so p = 0 in backward)
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
    rows_o = _row_offsets(o_m, h_m, pos_m, stride_oo, stride_oh, stride_ol)
    tl.store(
        O + pid_b * stride_ob + rows_o[:, None] + offs_d[None, :] * stride_od,
        out.to(O.dtype.element_ty),
        mask=ok_m[:, None] & ok_d[None, :],
    )
    if TAIL_D > 0:
        out2 = acc2 / tl.where(empty, 1.0, l_i)[:, None]
        tl.store(
            O + pid_b * stride_ob + rows_o[:, None] + offs_d2[None, :] * stride_od,
            out2.to(O.dtype.element_ty),
            mask=ok_m[:, None] & ok_d2[None, :],
        )
    tl.store(LSE + (pid_b * n_seq + z_m) * seq_len + pos_m, lse, mask=ok_m)
