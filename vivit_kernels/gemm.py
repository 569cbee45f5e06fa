"""Triton GEMMs with fused prologues and epilogues, shared by the LayerNorm-MLP and LayerNorm-Linear ops.

`gemm_kernel`: C[M, N] = epilogue(prologue(A)[M, K] @ B[K, N]), every operand addressed through its strides.
  Prologues on A: LayerNorm from precomputed row statistics; a per-row (drop-path) scale; a regenerated dropout mask.
  Epilogues on C: bias; storing the pre-activation; GELU (tanh or erf); dropout; GELU backward from a stored
  pre-activation; a per-row scale; a residual add.
`gemm_tn_kernel`: weight gradients C[N, K] = prologue(A)^T @ prologue(B) reduced over rows, with the bias gradient
  (column sums of A) in the same pass, split over row slices into fp32 partials summed by `partial_sum_kernel` in a
  fixed order (deterministic, no atomics).
Dropout masks come from Philox, `tl.rand(seed, row * width + col)`, so a backward pass regenerates the forward's mask.
The seed is read from a device tensor (plus a per-mask offset), so a CUDA graph replays with the seed of each replay.
Math in fp32; tensor-core operands in the compute dtype: B's in `gemm_kernel` (the weight), and in `gemm_tn_kernel` the
dtype of the operand that is not normalised on load (under autocast, A may be the fp32 residual stream or its
gradient; it is rounded to the compute dtype right before the dot, as eager's autocast linear rounds its input).
fp32 compute: ieee or tf32 dots. Under TRITON_INTERPRET, bf16 operands are rounded to bf16 and multiplied in fp32
(UPCAST) because the interpreter's bf16 dot is broken: the interpreter sees the rounding a GPU applies.
"""

import torch

from ._utils import HAS_TRITON, INTERPRET

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _gelu(z, ACT: tl.constexpr):
        if ACT == 1:  # tanh form; tanh(u) = 1 - 2 / (exp(2u) + 1), u clamped where tanh is +-1 in fp32
            u = tl.minimum(tl.maximum(0.7978845608028654 * (z + 0.044715 * z * z * z), -15.0), 15.0)
            y = 0.5 * z * (2.0 - 2.0 / (tl.exp(2.0 * u) + 1.0))
        else:
            y = 0.5 * z * (1.0 + tl.math.erf(z * 0.7071067811865476))
        return y

    @triton.jit
    def _gelu_grad(z, ACT: tl.constexpr):
        if ACT == 1:
            u = tl.minimum(tl.maximum(0.7978845608028654 * (z + 0.044715 * z * z * z), -15.0), 15.0)
            t = 1.0 - 2.0 / (tl.exp(2.0 * u) + 1.0)
            du = 0.7978845608028654 * (1.0 + 0.134145 * z * z)
            g = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du
        else:
            g = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476)) + z * 0.3989422804014327 * tl.exp(-0.5 * z * z)
        return g

    @triton.jit
    def _dropout(v, seed, offs, p_drop, drop_scale):
        keep = tl.rand(seed, offs) >= p_drop
        return tl.where(keep, v * drop_scale, 0.0)

    @triton.jit
    def _mma_pair(a, b, DTYPE: tl.constexpr, UPCAST: tl.constexpr):
        """a and b as tensor-core operands of DTYPE; under UPCAST (interpreter bf16) rounded to it, then fp32."""
        a = a.to(DTYPE)
        b = b.to(DTYPE)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        return a, b

    @triton.jit(do_not_specialize=["seed_off_a", "seed_off_c"])
    def gemm_kernel(
        a_ptr, b_ptr, c_ptr, z_ptr, res_ptr, bias_ptr, scale_ptr, mean_ptr, rstd_ptr, gamma_ptr, beta_ptr, seed_ptr,
        M, N, K, rows_per_sample,
        stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, stride_zm, stride_zn, stride_rm, stride_rn,
        seed_off_a, seed_off_c, p_drop, drop_scale,
        A_LAYERNORM: tl.constexpr, A_SCALE: tl.constexpr, A_DROPOUT: tl.constexpr,
        HAS_BIAS: tl.constexpr, STORE_Z: tl.constexpr, ACT: tl.constexpr, C_DROPOUT: tl.constexpr,
        ACT_GRAD: tl.constexpr, C_SCALE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
        UPCAST: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ):  # fmt: skip
        """C[M, N] = epilogue(prologue(A)[M, K] @ B[K, N]); every operand addressed through its strides."""
        pid = tl.program_id(0)
        num_m = tl.cdiv(M, BLOCK_M)
        num_n = tl.cdiv(N, BLOCK_N)
        # Grouped ordering: GROUP_M row tiles share each column tile of B while it is hot in L2.
        group = GROUP_M * num_n
        first_m = (pid // group) * GROUP_M
        size_m = min(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % group) % size_m
        pid_n = (pid % group) // size_m

        offs_m = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        mask_m = offs_m < M
        mask_n = offs_n < N
        a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak
        b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
        if A_LAYERNORM:
            mean = tl.load(mean_ptr + offs_m, mask=mask_m, other=0.0)
            rstd = tl.load(rstd_ptr + offs_m, mask=mask_m, other=0.0)
        if A_SCALE or C_SCALE:
            row_scale = tl.load(scale_ptr + offs_m // rows_per_sample, mask=mask_m, other=0.0).to(tl.float32)
        if A_DROPOUT:
            seed_a = tl.load(seed_ptr) + seed_off_a
        if C_DROPOUT:
            seed_c = tl.load(seed_ptr) + seed_off_c

        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            mask_k = (k0 + offs_k) < K
            a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
            if A_LAYERNORM:
                gamma = tl.load(gamma_ptr + k0 + offs_k, mask=mask_k, other=0.0).to(tl.float32)
                beta = tl.load(beta_ptr + k0 + offs_k, mask=mask_k, other=0.0).to(tl.float32)
                a = (a.to(tl.float32) - mean[:, None]) * rstd[:, None] * gamma[None, :] + beta[None, :]
            if A_SCALE:
                a = a.to(tl.float32) * row_scale[:, None]
            if A_DROPOUT:
                a = _dropout(a.to(tl.float32), seed_a, offs_m[:, None] * K + (k0 + offs_k)[None, :], p_drop, drop_scale)
            a, b = _mma_pair(a, b, b_ptr.dtype.element_ty, UPCAST)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk

        mask_c = mask_m[:, None] & mask_n[None, :]
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        if STORE_Z:
            z_ptrs = z_ptr + offs_m[:, None] * stride_zm + offs_n[None, :] * stride_zn
            tl.store(z_ptrs, acc.to(z_ptr.dtype.element_ty), mask=mask_c)
        if ACT != 0:
            acc = _gelu(acc, ACT)
        if C_DROPOUT:
            acc = _dropout(acc, seed_c, offs_m[:, None] * N + offs_n[None, :], p_drop, drop_scale)
        if ACT_GRAD != 0:
            z = tl.load(z_ptr + offs_m[:, None] * stride_zm + offs_n[None, :] * stride_zn, mask=mask_c, other=0.0)
            acc = acc * _gelu_grad(z.to(tl.float32), ACT_GRAD)
        if C_SCALE:
            acc = acc * row_scale[:, None]
        if HAS_RESIDUAL:
            res = tl.load(res_ptr + offs_m[:, None] * stride_rm + offs_n[None, :] * stride_rn, mask=mask_c, other=0.0)
            acc += res.to(tl.float32)
        c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask_c)

    @triton.jit(do_not_specialize=["seed_off_a"])
    def gemm_tn_kernel(
        a_ptr, b_ptr, c_ptr, db_ptr, scale_ptr, mean_ptr, rstd_ptr, gamma_ptr, beta_ptr, seed_ptr,
        M, N, K, rows_per_sample, rows_per_split,
        stride_am, stride_an, stride_bm, stride_bk, stride_cs, stride_cn, stride_ck, stride_dbs,
        seed_off_a, p_drop, drop_scale,
        A_SCALE: tl.constexpr, A_DROPOUT: tl.constexpr, B_LAYERNORM: tl.constexpr, HAS_DB: tl.constexpr,
        UPCAST: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr,
    ):  # fmt: skip
        """Weight gradients: C[N, K] = prologue(A)[M, N]^T @ prologue(B)[M, K], reduced over the M rows in order;
        db[N] = column sums of prologue(A), written by the programs of the first K tile (no atomics).
        Split-M: program (n, k, s) reduces rows [s * rows_per_split, (s + 1) * rows_per_split) into its own slice s
        of C and db (fp32 partials summed afterwards in a fixed order), so that a few hundred output tiles fill the GPU.
        """
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        pid_s = tl.program_id(2)
        offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = pid_k.to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
        m_start = pid_s * rows_per_split
        m_end = tl.minimum(M, m_start + rows_per_split)
        offs_m = tl.arange(0, BLOCK_M)
        mask_n = offs_n < N
        mask_k = offs_k < K
        a_ptrs = a_ptr + (m_start + offs_m.to(tl.int64))[:, None] * stride_am + offs_n[None, :] * stride_an
        b_ptrs = b_ptr + (m_start + offs_m.to(tl.int64))[:, None] * stride_bm + offs_k[None, :] * stride_bk
        if B_LAYERNORM:
            gamma = tl.load(gamma_ptr + offs_k, mask=mask_k, other=0.0).to(tl.float32)
            beta = tl.load(beta_ptr + offs_k, mask=mask_k, other=0.0).to(tl.float32)
        if A_DROPOUT:
            seed_a = tl.load(seed_ptr) + seed_off_a

        acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        db = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for m0 in range(m_start, m_end, BLOCK_M):
            rows = m0 + offs_m
            mask_m = rows < m_end
            a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_n[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            if A_SCALE:
                row_scale = tl.load(scale_ptr + rows // rows_per_sample, mask=mask_m, other=0.0).to(tl.float32)
                a = a.to(tl.float32) * row_scale[:, None]
            if A_DROPOUT:
                a = _dropout(
                    a.to(tl.float32), seed_a, rows.to(tl.int64)[:, None] * N + offs_n[None, :], p_drop, drop_scale
                )
            if B_LAYERNORM:  # rows past M get beta here, but their A rows are zero
                mean = tl.load(mean_ptr + rows, mask=mask_m, other=0.0)
                rstd = tl.load(rstd_ptr + rows, mask=mask_m, other=0.0)
                b = (b.to(tl.float32) - mean[:, None]) * rstd[:, None] * gamma[None, :] + beta[None, :]
            if HAS_DB:
                db += tl.sum(a.to(tl.float32), axis=0)
            if B_LAYERNORM:  # b is normalised from the (possibly fp32) activations: A's dtype is the compute dtype
                a, b = _mma_pair(a, b, a_ptr.dtype.element_ty, UPCAST)
            else:  # A may be an fp32 gradient of the residual stream: B's dtype is the compute dtype
                a, b = _mma_pair(a, b, b_ptr.dtype.element_ty, UPCAST)
            acc = tl.dot(tl.trans(a), b, acc, input_precision=PRECISION)
            a_ptrs += BLOCK_M * stride_am
            b_ptrs += BLOCK_M * stride_bm

        c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + offs_n[:, None] * stride_cn + offs_k[None, :] * stride_ck
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_k[None, :])
        if HAS_DB:
            if pid_k == 0:
                db_ptrs = db_ptr + pid_s.to(tl.int64) * stride_dbs + offs_n
                tl.store(db_ptrs, db.to(db_ptr.dtype.element_ty), mask=mask_n)

    @triton.jit
    def partial_sum_kernel(part_ptr, out_ptr, P, D, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
        """out[D] = sum over the P partial rows, in a fixed order."""
        offs_d = tl.program_id(0).to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for p0 in range(0, P, BLOCK_P):
            offs_p = p0 + tl.arange(0, BLOCK_P).to(tl.int64)
            part = tl.load(
                part_ptr + offs_p[:, None] * D + offs_d[None, :],
                mask=(offs_p < P)[:, None] & mask_d[None, :],
                other=0.0,
            )
            acc += tl.sum(part, axis=0)
        tl.store(out_ptr + offs_d, acc.to(out_ptr.dtype.element_ty), mask=mask_d)

    @triton.jit(do_not_specialize=["seed"])
    def dropout_keep_kernel(keep_ptr, seed, M, N, p_drop, BLOCK: tl.constexpr):
        """The keep mask (1 = kept) the fused kernels draw for a (M, N) tensor with `seed`: for tests and debugging."""
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        keep = tl.rand(seed, offs) >= p_drop
        tl.store(keep_ptr + offs, keep.to(tl.int8), mask=offs < M * N)


def gemm_config(dtype: torch.dtype, heavy: bool = False, interpret: bool = INTERPRET, wide_a: bool = False) -> dict:
    """Tile sizes: fixed per compute dtype (no autotuning: one compile per flag set, and every config AOT-checked).
    `heavy` (Philox dropout or GELU backward in the prologue/epilogue) halves the N tile: at 128 x 128 those
    epilogues spill registers. `wide_a`: A is fp32 over 16-bit weights (autocast), so its K tile is halved to keep
    the pipelined tiles within 99 KiB of shared memory (sm_86/sm_89)."""
    if interpret:
        return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=1)
    block_n = 64 if heavy else 128
    if dtype == torch.float32 or wide_a:
        return dict(BLOCK_M=128, BLOCK_N=block_n, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3)
    return dict(BLOCK_M=128, BLOCK_N=block_n, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3)


def gemm_tn_config(dtype: torch.dtype, interpret: bool = INTERPRET, wide: bool = False) -> dict:
    """`wide`: one operand is fp32 over a 16-bit compute dtype (autocast): half the row tile, as for fp32."""
    if interpret:
        return dict(BLOCK_N=64, BLOCK_K=64, BLOCK_M=64, num_warps=4, num_stages=1)
    if dtype == torch.float32 or wide:
        return dict(BLOCK_N=128, BLOCK_K=128, BLOCK_M=32, num_warps=8, num_stages=3)
    return dict(BLOCK_N=128, BLOCK_K=128, BLOCK_M=64, num_warps=8, num_stages=3)


def dot_flags(dtype: torch.dtype) -> dict:
    """UPCAST and PRECISION of the dots for compute dtype `dtype`."""
    if dtype == torch.float32:
        precision = "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
        return dict(UPCAST=False, PRECISION=precision)
    return dict(UPCAST=INTERPRET and dtype == torch.bfloat16, PRECISION="ieee")


def _wide(a: torch.Tensor, dtype: torch.dtype) -> bool:
    return a.element_size() > torch.tensor([], dtype=dtype).element_size()


def gemm(a, b, c, *, z=None, residual=None, bias=None, scale=None, rows_per_sample=1, ln=None, a_scale=False,
         seed=None, a_seed=None, c_seed=None, p_drop=0.0, act=0, store_z=False, act_grad=0, c_scale=False):  # fmt: skip
    """c[M, N] = epilogue(prologue(a)[M, K] @ b[K, N]) in b's dtype. `ln` = (mean, rstd, gamma, beta) normalises a on
    load. Dropout: `seed` a one-element int64 device tensor; a_seed / c_seed the offsets added to it for the masks on
    A and on C (None: no dropout there)."""
    M, K = a.shape
    N = b.shape[1]
    heavy = a_seed is not None or c_seed is not None or act_grad != 0
    cfg = gemm_config(b.dtype, heavy=heavy, wide_a=_wide(a, b.dtype))
    mean, rstd, gamma, beta = ln if ln is not None else (None, None, None, None)
    grid = (triton.cdiv(M, cfg["BLOCK_M"]) * triton.cdiv(N, cfg["BLOCK_N"]),)
    gemm_kernel[grid](
        a_ptr=a, b_ptr=b, c_ptr=c, z_ptr=z, res_ptr=residual, bias_ptr=bias, scale_ptr=scale,
        mean_ptr=mean, rstd_ptr=rstd, gamma_ptr=gamma, beta_ptr=beta,
        seed_ptr=seed if a_seed is not None or c_seed is not None else None,
        M=M, N=N, K=K, rows_per_sample=rows_per_sample,
        stride_am=a.stride(0), stride_ak=a.stride(1), stride_bk=b.stride(0), stride_bn=b.stride(1),
        stride_cm=c.stride(0), stride_cn=c.stride(1),
        stride_zm=z.stride(0) if z is not None else 0, stride_zn=z.stride(1) if z is not None else 0,
        stride_rm=residual.stride(0) if residual is not None else 0,
        stride_rn=residual.stride(1) if residual is not None else 0,
        seed_off_a=a_seed or 0, seed_off_c=c_seed or 0, p_drop=p_drop, drop_scale=drop_scale(p_drop),
        A_LAYERNORM=ln is not None, A_SCALE=a_scale, A_DROPOUT=a_seed is not None,
        HAS_BIAS=bias is not None, STORE_Z=store_z, ACT=act, C_DROPOUT=c_seed is not None,
        ACT_GRAD=act_grad, C_SCALE=c_scale, HAS_RESIDUAL=residual is not None,
        **dot_flags(b.dtype), **cfg,
    )  # fmt: skip
    return c


def _num_splits(M: int, tiles: int, block_m: int, device: torch.device) -> int:
    """How many row slices the weight-gradient GEMM reduces separately: enough programs for ~4 per SM, each slice
    at least 8 row blocks long (the interpreter splits whenever it can, to exercise the path)."""
    if device.type != "cuda":
        return max(1, min(2, triton.cdiv(M, block_m)))
    programs = 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(triton.cdiv(programs, tiles), M // (8 * block_m)))


def gemm_tn(a, b, c, *, db=None, scale=None, rows_per_sample=1, ln=None, seed=None, a_seed=None, p_drop=0.0):
    """c[N, K] = prologue(a)[M, N]^T @ prologue(b)[M, K]; db[N] = column sums of prologue(a). c, db contiguous.
    Compute dtype: a's when b is normalised on load (`ln`), else b's."""
    M, N = a.shape
    K = b.shape[1]
    dtype = a.dtype if ln is not None else b.dtype
    cfg = gemm_tn_config(dtype, wide=_wide(b if ln is not None else a, dtype))
    mean, rstd, gamma, beta = ln if ln is not None else (None, None, None, None)
    tiles = triton.cdiv(N, cfg["BLOCK_N"]) * triton.cdiv(K, cfg["BLOCK_K"])
    splits = _num_splits(M, tiles, cfg["BLOCK_M"], a.device)
    rows_per_split = max(1, triton.cdiv(triton.cdiv(M, splits), cfg["BLOCK_M"])) * cfg["BLOCK_M"]
    splits = max(1, triton.cdiv(M, rows_per_split))
    # Always fp32 slices, summed below in a fixed order (one kernel variant whatever the split count).
    c_out = torch.empty((splits, N, K), device=a.device, dtype=torch.float32)
    db_out = torch.empty((splits, N), device=a.device, dtype=torch.float32) if db is not None else None
    grid = (triton.cdiv(N, cfg["BLOCK_N"]), triton.cdiv(K, cfg["BLOCK_K"]), splits)
    gemm_tn_kernel[grid](
        a_ptr=a, b_ptr=b, c_ptr=c_out, db_ptr=db_out, scale_ptr=scale, mean_ptr=mean, rstd_ptr=rstd,
        gamma_ptr=gamma, beta_ptr=beta, seed_ptr=seed if a_seed is not None else None,
        M=M, N=N, K=K, rows_per_sample=rows_per_sample,
        rows_per_split=rows_per_split, stride_am=a.stride(0), stride_an=a.stride(1), stride_bm=b.stride(0),
        stride_bk=b.stride(1), stride_cs=N * K, stride_cn=K, stride_ck=1, stride_dbs=N,
        seed_off_a=a_seed or 0, p_drop=p_drop, drop_scale=drop_scale(p_drop),
        A_SCALE=scale is not None, A_DROPOUT=a_seed is not None, B_LAYERNORM=ln is not None, HAS_DB=db is not None,
        **dot_flags(dtype), **cfg,
    )  # fmt: skip
    partial_sum(c_out.view(splits, N * K), c.view(N * K))
    if db is not None:
        partial_sum(db_out, db)
    return c


def partial_sum(part: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[D] = part[P, D].sum(0) in a fixed order (part contiguous fp32, out contiguous)."""
    P, D = part.shape
    # The interpreter pays per program: few wide ones there.
    block_d = min(8192 if INTERPRET else 256, triton.next_power_of_2(D))
    block_p = min(16, triton.next_power_of_2(P)) if INTERPRET else 16
    partial_sum_kernel[(triton.cdiv(D, block_d),)](
        part_ptr=part, out_ptr=out, P=P, D=D, BLOCK_P=block_p, BLOCK_D=block_d, num_warps=1 if INTERPRET else 4
    )
    return out


def drop_scale(p: float) -> float:
    return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)


def dropout_keep_mask(seed: int, shape: tuple[int, int], p: float, device="cpu") -> torch.Tensor:
    """The bool keep mask the fused kernels use for a (rows, cols) tensor with this seed (hidden: `seed`,
    fc2 output: `seed + 1`). For tests and debugging."""
    M, N = shape
    keep = torch.empty((M, N), device=device, dtype=torch.int8)
    block = 1024
    dropout_keep_kernel[(triton.cdiv(M * N, block),)](keep_ptr=keep, seed=seed, M=M, N=N, p_drop=p, BLOCK=block)
    return keep.bool()
