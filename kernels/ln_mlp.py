"""Fused LayerNorm-MLP and LayerNorm-Linear: the transformer block's MLP branch and its QKV projection.

    ln_mlp(x, ...)    = x + s * drop(fc2(drop(act(fc1(LN(x))))))      x (..., D), fc1 (I, D), fc2 (D, I)
    ln_linear(x, ...) = LN(x) @ weight.T + bias                         weight (N, D)

Design (backend="triton")
- LayerNorm statistics (mean, rstd) are computed in fp32 by a small row kernel. The GEMMs that consume LN(x)
  normalise their A operand on load, (x - mean) * rstd * gamma + beta, so the normalised input is never written.
- One GEMM kernel (`_gemm_kernel`, C = A' @ B) serves every forward GEMM and the backward dX GEMMs through constexpr
  prologues on A (LayerNorm; per-row drop-path scale and dropout-mask regeneration) and epilogues on C (bias, GELU,
  dropout, storing the pre-activation, GELU backward, per-row scale, residual add).
  fc1: A = LN(x) on load; epilogue bias, stores the pre-activation z (training only), GELU, dropout -> h.
  fc2: A = h; epilogue bias, dropout, drop-path scale, residual add -> out.
- The 4x-wide intermediate: h is written once by fc1 and read once by fc2. In training fc1's epilogue also writes z
  (GELU's backward needs it, and GELU cannot be inverted). Eager PyTorch keeps LN(x), z, gelu(z) and the dropout mask.
- Backward (ln_mlp): dz = (g @ fc2_weight) * mask1 * gelu'(z) with g = s * mask2 * dout formed on load (GELU backward
  fused into the epilogue of the GEMM producing d(intermediate)); dW2 = g^T h and dW1 = dz^T LN(x) (LN recomputed on
  load) with the bias gradients summed in the same kernel (`_gemm_tn_kernel`); dLN = dz @ fc1_weight in fp32;
  a row kernel turns dLN into dx (plus the residual's dout) and writes per-program partial dgamma/dbeta, summed by a
  second small kernel: deterministic, no atomics, no serial loop over all rows.
- Saved for backward: x, the LayerNorm and linear weights, mean and rstd (fp32, M each), z and h (M x I each).
  Recomputed: LN(x) (on load, twice), the dropout masks (Philox, `tl.rand(seed, row * width + col)`, from the seed),
  g = s * mask2 * dout (on load, twice).
- Dropout (training) uses Philox with a seed drawn from torch's default generator (or `dropout_seed`); the hidden
  mask uses `seed`, the output mask `seed + 1`. The Triton masks differ from `F.dropout`'s (other RNG), so training
  runs match eager in distribution, not bit for bit. `drop_path_scale` is treated as a constant (no gradient).
- Numerics: fp32 statistics and accumulation; fp16/bf16 operands on tensor cores; fp32 inputs use an ieee dot when
  torch.get_float32_matmul_precision() == "highest", tf32 otherwise. Under TRITON_INTERPRET bf16 dots are upcast to
  fp32 (the interpreter's bf16 dot is broken).

GPU goals of issue 5 (targets, not measured: this was written without a GPU): LN-MLP forward >= 1.2x eager PyTorch and
>= 1.0x torch.compile of the eager block; backward not slower than eager; LayerNorm backward not slower than PyTorch
at hidden 768-1280; peak activation memory <= eager.
"""

import itertools

import torch
import torch.nn.functional as F

from ._utils import HAS_TRITON, INTERPRET, triton_unavailable_reason

if HAS_TRITON:
    import triton
    import triton.language as tl

ACTIVATIONS = {"gelu_tanh": 1, "gelu": 2}
BACKENDS = ("eager", "triton")
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_HIDDEN = 16384  # the LayerNorm row kernels hold one whole row per program

# ----------------------------------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------------------------------

if HAS_TRITON:

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
    def _layer_norm_stats_kernel(
        x_ptr, mean_ptr, rstd_ptr, M, D, stride_xm, stride_xd, eps,
        BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        offs_m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        mask_m = offs_m < M
        mask = mask_m[:, None] & (offs_d < D)[None, :]
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_d[None, :] * stride_xd, mask=mask, other=0.0)
        x = x.to(tl.float32)
        mean = tl.sum(x, axis=1) / D
        xc = tl.where(mask, x - mean[:, None], 0.0)  # two-pass variance: no cancellation
        rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / D + eps)
        tl.store(mean_ptr + offs_m, mean, mask=mask_m)
        tl.store(rstd_ptr + offs_m, rstd, mask=mask_m)

    @triton.jit(do_not_specialize=["seed_a", "seed_c"])
    def _gemm_kernel(
        a_ptr, b_ptr, c_ptr, z_ptr, res_ptr, bias_ptr, scale_ptr, mean_ptr, rstd_ptr, gamma_ptr, beta_ptr,
        M, N, K, rows_per_sample,
        stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, stride_zm, stride_zn, stride_rm, stride_rn,
        seed_a, seed_c, p_drop, drop_scale,
        A_LAYERNORM: tl.constexpr, A_SCALE: tl.constexpr, A_DROPOUT: tl.constexpr,
        HAS_BIAS: tl.constexpr, STORE_Z: tl.constexpr, ACT: tl.constexpr, C_DROPOUT: tl.constexpr,
        ACT_GRAD: tl.constexpr, C_SCALE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
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
            if DOT_FP32:
                acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision=PRECISION)
            else:
                acc = tl.dot(a.to(b.dtype), b, acc, input_precision=PRECISION)
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

    @triton.jit(do_not_specialize=["seed_a"])
    def _gemm_tn_kernel(
        a_ptr, b_ptr, c_ptr, db_ptr, scale_ptr, mean_ptr, rstd_ptr, gamma_ptr, beta_ptr,
        M, N, K, rows_per_sample, rows_per_split,
        stride_am, stride_an, stride_bm, stride_bk, stride_cs, stride_cn, stride_ck, stride_dbs,
        seed_a, p_drop, drop_scale,
        A_SCALE: tl.constexpr, A_DROPOUT: tl.constexpr, B_LAYERNORM: tl.constexpr, HAS_DB: tl.constexpr,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
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
            if DOT_FP32:
                acc = tl.dot(tl.trans(a.to(tl.float32)), b.to(tl.float32), acc, input_precision=PRECISION)
            else:
                a = a.to(a_ptr.dtype.element_ty)
                acc = tl.dot(tl.trans(a), b.to(a.dtype), acc, input_precision=PRECISION)
            a_ptrs += BLOCK_M * stride_am
            b_ptrs += BLOCK_M * stride_bm

        c_ptrs = c_ptr + pid_s.to(tl.int64) * stride_cs + offs_n[:, None] * stride_cn + offs_k[None, :] * stride_ck
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_k[None, :])
        if HAS_DB:
            if pid_k == 0:
                db_ptrs = db_ptr + pid_s.to(tl.int64) * stride_dbs + offs_n
                tl.store(db_ptrs, db.to(db_ptr.dtype.element_ty), mask=mask_n)

    @triton.jit
    def _layer_norm_bwd_kernel(
        dn_ptr, x_ptr, res_ptr, dx_ptr, mean_ptr, rstd_ptr, gamma_ptr, dgamma_ptr, dbeta_ptr,
        M, D, stride_dnm, stride_xm, stride_xd, stride_rm, stride_rd, stride_dxm,
        HAS_RESIDUAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        """dx = rstd * (dn*gamma - mean(dn*gamma) - xhat * mean(dn*gamma*xhat)) (+ the residual's gradient).
        Each program walks a fixed set of row tiles and writes its own partial dgamma/dbeta row."""
        pid = tl.program_id(0)
        num_programs = tl.num_programs(0)
        offs_d = tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        gamma = tl.load(gamma_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        dgamma = tl.zeros((BLOCK_D,), dtype=tl.float32)
        dbeta = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for m0 in range(pid * BLOCK_M, M, num_programs * BLOCK_M):
            offs_m = m0 + tl.arange(0, BLOCK_M).to(tl.int64)
            mask_m = offs_m < M
            mask = mask_m[:, None] & mask_d[None, :]
            x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_d[None, :] * stride_xd, mask=mask, other=0.0)
            dn = tl.load(dn_ptr + offs_m[:, None] * stride_dnm + offs_d[None, :], mask=mask, other=0.0)
            mean = tl.load(mean_ptr + offs_m, mask=mask_m, other=0.0)
            rstd = tl.load(rstd_ptr + offs_m, mask=mask_m, other=0.0)
            xhat = tl.where(mask, (x.to(tl.float32) - mean[:, None]) * rstd[:, None], 0.0)
            dn = dn.to(tl.float32)
            wdn = dn * gamma[None, :]
            c1 = tl.sum(xhat * wdn, axis=1) / D
            c2 = tl.sum(wdn, axis=1) / D
            dx = (wdn - (xhat * c1[:, None] + c2[:, None])) * rstd[:, None]
            if HAS_RESIDUAL:
                res = tl.load(res_ptr + offs_m[:, None] * stride_rm + offs_d[None, :] * stride_rd, mask=mask, other=0.0)
                dx += res.to(tl.float32)
            tl.store(dx_ptr + offs_m[:, None] * stride_dxm + offs_d[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask)
            dgamma += tl.sum(dn * xhat, axis=0)
            dbeta += tl.sum(dn, axis=0)
        tl.store(dgamma_ptr + pid.to(tl.int64) * D + offs_d, dgamma, mask=mask_d)
        tl.store(dbeta_ptr + pid.to(tl.int64) * D + offs_d, dbeta, mask=mask_d)

    @triton.jit
    def _column_sum_kernel(part_ptr, out_ptr, P, D, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
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
    def _dropout_keep_kernel(keep_ptr, seed, M, N, p_drop, BLOCK: tl.constexpr):
        """The keep mask (1 = kept) the fused kernels draw for a (M, N) tensor with `seed`: for tests and debugging."""
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        keep = tl.rand(seed, offs) >= p_drop
        tl.store(keep_ptr + offs, keep.to(tl.int8), mask=offs < M * N)


# ----------------------------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------------------------


def _gemm_config(dtype: torch.dtype, heavy: bool = False, interpret: bool = INTERPRET) -> dict:
    """Tile sizes: fixed per dtype (no autotuning: one compile per flag set, and every config AOT-checked).
    `heavy` (Philox dropout or GELU backward in the prologue/epilogue) halves the N tile: at 128 x 128 those
    epilogues spill registers."""
    if interpret:
        return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=1)
    block_n = 64 if heavy else 128
    if dtype == torch.float32:
        return dict(BLOCK_M=128, BLOCK_N=block_n, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3)
    return dict(BLOCK_M=128, BLOCK_N=block_n, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3)


def _gemm_tn_config(dtype: torch.dtype, interpret: bool = INTERPRET) -> dict:
    if interpret:
        return dict(BLOCK_N=64, BLOCK_K=64, BLOCK_M=64, num_warps=4, num_stages=1)
    if dtype == torch.float32:
        return dict(BLOCK_N=128, BLOCK_K=128, BLOCK_M=32, num_warps=8, num_stages=3)
    return dict(BLOCK_N=128, BLOCK_K=128, BLOCK_M=64, num_warps=8, num_stages=3)


def _row_config(D: int, interpret: bool = INTERPRET) -> dict:
    """Whole rows per program (LayerNorm needs the full row): about 4K elements per program."""
    block_d = triton.next_power_of_2(D)
    block_m = max(1, min(16, 4096 // block_d))
    return dict(BLOCK_M=block_m, BLOCK_D=block_d, num_warps=1 if interpret else (4 if block_d <= 512 else 8))


def _dot_flags(dtype: torch.dtype) -> dict:
    if dtype == torch.float32:
        precision = "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
        return dict(DOT_FP32=True, PRECISION=precision)
    return dict(DOT_FP32=INTERPRET and dtype == torch.bfloat16, PRECISION="ieee")


def _num_partials(M: int, block_m: int, device: torch.device) -> int:
    if device.type == "cuda":
        programs = 4 * torch.cuda.get_device_properties(device).multi_processor_count
    else:
        programs = 4
    return max(1, min(triton.cdiv(M, block_m), programs))


def _layer_norm_stats(x2: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    M, D = x2.shape
    mean = torch.empty(M, device=x2.device, dtype=torch.float32)
    rstd = torch.empty(M, device=x2.device, dtype=torch.float32)
    cfg = _row_config(D)
    _layer_norm_stats_kernel[(triton.cdiv(M, cfg["BLOCK_M"]),)](
        x_ptr=x2, mean_ptr=mean, rstd_ptr=rstd, M=M, D=D, stride_xm=x2.stride(0), stride_xd=x2.stride(1), eps=eps,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_D=cfg["BLOCK_D"], num_warps=cfg["num_warps"],
    )  # fmt: skip
    return mean, rstd


def _gemm(a, b, c, *, z=None, residual=None, bias=None, scale=None, rows_per_sample=1, ln=None, a_scale=False,
          a_seed=None, c_seed=None, p_drop=0.0, act=0, store_z=False, act_grad=0, c_scale=False):  # fmt: skip
    """c[M, N] = epilogue(prologue(a)[M, K] @ b[K, N]). `ln` = (mean, rstd, gamma, beta) normalises a on load."""
    M, K = a.shape
    N = b.shape[1]
    cfg = _gemm_config(b.dtype, heavy=a_seed is not None or c_seed is not None or act_grad != 0)
    mean, rstd, gamma, beta = ln if ln is not None else (None, None, None, None)
    grid = (triton.cdiv(M, cfg["BLOCK_M"]) * triton.cdiv(N, cfg["BLOCK_N"]),)
    _gemm_kernel[grid](
        a_ptr=a, b_ptr=b, c_ptr=c, z_ptr=z, res_ptr=residual, bias_ptr=bias, scale_ptr=scale,
        mean_ptr=mean, rstd_ptr=rstd, gamma_ptr=gamma, beta_ptr=beta,
        M=M, N=N, K=K, rows_per_sample=rows_per_sample,
        stride_am=a.stride(0), stride_ak=a.stride(1), stride_bk=b.stride(0), stride_bn=b.stride(1),
        stride_cm=c.stride(0), stride_cn=c.stride(1),
        stride_zm=z.stride(0) if z is not None else 0, stride_zn=z.stride(1) if z is not None else 0,
        stride_rm=residual.stride(0) if residual is not None else 0,
        stride_rn=residual.stride(1) if residual is not None else 0,
        seed_a=a_seed or 0, seed_c=c_seed or 0, p_drop=p_drop, drop_scale=_drop_scale(p_drop),
        A_LAYERNORM=ln is not None, A_SCALE=a_scale, A_DROPOUT=a_seed is not None,
        HAS_BIAS=bias is not None, STORE_Z=store_z, ACT=act, C_DROPOUT=c_seed is not None,
        ACT_GRAD=act_grad, C_SCALE=c_scale, HAS_RESIDUAL=residual is not None,
        **_dot_flags(b.dtype), **cfg,
    )  # fmt: skip
    return c


def _num_splits(M: int, tiles: int, block_m: int, device: torch.device) -> int:
    """How many row slices the weight-gradient GEMM reduces separately: enough programs for ~4 per SM, each slice
    at least 8 row blocks long (the interpreter splits whenever it can, to exercise the path)."""
    if device.type != "cuda":
        return min(2, triton.cdiv(M, block_m))
    programs = 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(triton.cdiv(programs, tiles), M // (8 * block_m)))


def _gemm_tn(a, b, c, *, db=None, scale=None, rows_per_sample=1, ln=None, a_seed=None, p_drop=0.0):
    """c[N, K] = prologue(a)[M, N]^T @ prologue(b)[M, K]; db[N] = column sums of prologue(a). c, db contiguous."""
    M, N = a.shape
    K = b.shape[1]
    cfg = _gemm_tn_config(a.dtype)
    mean, rstd, gamma, beta = ln if ln is not None else (None, None, None, None)
    tiles = triton.cdiv(N, cfg["BLOCK_N"]) * triton.cdiv(K, cfg["BLOCK_K"])
    splits = _num_splits(M, tiles, cfg["BLOCK_M"], a.device)
    rows_per_split = triton.cdiv(triton.cdiv(M, splits), cfg["BLOCK_M"]) * cfg["BLOCK_M"]
    splits = triton.cdiv(M, rows_per_split) if M > 0 else 1
    c_out, db_out = c, db
    if splits > 1:  # fp32 partial slices, summed below in a fixed order
        c_out = torch.empty((splits, N, K), device=a.device, dtype=torch.float32)
        db_out = torch.empty((splits, N), device=a.device, dtype=torch.float32) if db is not None else None
    grid = (triton.cdiv(N, cfg["BLOCK_N"]), triton.cdiv(K, cfg["BLOCK_K"]), splits)
    _gemm_tn_kernel[grid](
        a_ptr=a, b_ptr=b, c_ptr=c_out, db_ptr=db_out, scale_ptr=scale, mean_ptr=mean, rstd_ptr=rstd,
        gamma_ptr=gamma, beta_ptr=beta, M=M, N=N, K=K, rows_per_sample=rows_per_sample,
        rows_per_split=rows_per_split, stride_am=a.stride(0), stride_an=a.stride(1), stride_bm=b.stride(0),
        stride_bk=b.stride(1), stride_cs=N * K, stride_cn=K, stride_ck=1, stride_dbs=N,
        seed_a=a_seed or 0, p_drop=p_drop, drop_scale=_drop_scale(p_drop),
        A_SCALE=scale is not None, A_DROPOUT=a_seed is not None, B_LAYERNORM=ln is not None, HAS_DB=db is not None,
        **_dot_flags(a.dtype), **cfg,
    )  # fmt: skip
    if splits > 1:
        _column_sum(c_out.view(splits, N * K), c.view(N * K))
        if db is not None:
            _column_sum(db_out, db)
    return c


def _layer_norm_bwd(dn, x2, mean, rstd, gamma, residual_grad, dx_dtype):
    """dx (M, D), dgamma (D,), dbeta (D,) from dn = dL/dLN(x) (fp32, contiguous)."""
    M, D = x2.shape
    cfg = _row_config(D)
    P = _num_partials(M, cfg["BLOCK_M"], x2.device)
    dx = torch.empty((M, D), device=x2.device, dtype=dx_dtype)
    dgamma_part = torch.empty((P, D), device=x2.device, dtype=torch.float32)
    dbeta_part = torch.empty((P, D), device=x2.device, dtype=torch.float32)
    r = residual_grad
    _layer_norm_bwd_kernel[(P,)](
        dn_ptr=dn, x_ptr=x2, res_ptr=r, dx_ptr=dx, mean_ptr=mean, rstd_ptr=rstd, gamma_ptr=gamma,
        dgamma_ptr=dgamma_part, dbeta_ptr=dbeta_part, M=M, D=D, stride_dnm=dn.stride(0),
        stride_xm=x2.stride(0), stride_xd=x2.stride(1),
        stride_rm=r.stride(0) if r is not None else 0, stride_rd=r.stride(1) if r is not None else 0,
        stride_dxm=dx.stride(0), HAS_RESIDUAL=r is not None,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_D=cfg["BLOCK_D"], num_warps=cfg["num_warps"],
    )  # fmt: skip
    dgamma = torch.empty(D, device=x2.device, dtype=gamma.dtype)
    dbeta = torch.empty(D, device=x2.device, dtype=gamma.dtype)
    return dx, _column_sum(dgamma_part, dgamma), _column_sum(dbeta_part, dbeta)


def _column_sum(part: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[D] = part[P, D].sum(0) in a fixed order (part contiguous fp32, out contiguous)."""
    P, D = part.shape
    # The interpreter pays per program: few wide ones there.
    block_d = min(8192 if INTERPRET else 256, triton.next_power_of_2(D))
    block_p = min(16, triton.next_power_of_2(P)) if INTERPRET else 16
    _column_sum_kernel[(triton.cdiv(D, block_d),)](
        part_ptr=part, out_ptr=out, P=P, D=D, BLOCK_P=block_p, BLOCK_D=block_d, num_warps=1 if INTERPRET else 4
    )
    return out


def _drop_scale(p: float) -> float:
    return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)


def dropout_keep_mask(seed: int, shape: tuple[int, int], p: float, device="cpu") -> torch.Tensor:
    """The bool keep mask the fused kernels use for a (rows, cols) tensor with this seed (hidden: `seed`,
    fc2 output: `seed + 1`). For tests and debugging."""
    M, N = shape
    keep = torch.empty((M, N), device=device, dtype=torch.int8)
    block = 1024
    _dropout_keep_kernel[(triton.cdiv(M * N, block),)](keep_ptr=keep, seed=seed, M=M, N=N, p_drop=p, BLOCK=block)
    return keep.bool()


# ----------------------------------------------------------------------------------------------------------------------
# Forward and backward passes on 2-D views
# ----------------------------------------------------------------------------------------------------------------------


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])  # a view when the strides allow it, else one copy


def _ln_mlp_fwd_impl(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, scale, eps, activation, p,
                     seed, save_for_backward):  # fmt: skip
    seed = int(seed)  # a 0-d CPU tensor: drawn inside a compiled graph without a graph break
    x2 = _rows(x)
    M, D = x2.shape
    I = fc1_weight.shape[0]
    ln_weight, ln_bias, fc1_bias, fc2_bias = (t.contiguous() for t in (ln_weight, ln_bias, fc1_bias, fc2_bias))
    scale = scale.contiguous() if scale is not None else None
    rows_per_sample = x.shape[1] if scale is not None else 1
    dropping = p > 0.0
    mean, rstd = _layer_norm_stats(x2, eps)
    h = torch.empty((M, I), device=x.device, dtype=x.dtype)
    z = torch.empty((M, I) if save_for_backward else (0,), device=x.device, dtype=x.dtype)
    _gemm(x2, fc1_weight.t(), h, z=z if save_for_backward else None, bias=fc1_bias,
          ln=(mean, rstd, ln_weight, ln_bias), c_seed=seed if dropping else None, p_drop=p,
          act=ACTIVATIONS[activation], store_z=save_for_backward)  # fmt: skip
    out = torch.empty((M, D), device=x.device, dtype=x.dtype)
    _gemm(h, fc2_weight.t(), out, residual=x2, bias=fc2_bias, scale=scale, rows_per_sample=rows_per_sample,
          c_seed=seed + 1 if dropping else None, p_drop=p, c_scale=scale is not None)  # fmt: skip
    return out.view(x.shape), mean, rstd, z, h


def _ln_mlp_bwd_impl(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, scale, mean, rstd, z, h, activation, p, seed):
    seed = int(seed)
    x2 = _rows(x)
    g = _rows(dout)
    M, D = x2.shape
    I = fc1_weight.shape[0]
    ln_weight, ln_bias = ln_weight.contiguous(), ln_bias.contiguous()
    scale = scale.contiguous() if scale is not None else None
    rows_per_sample = x.shape[1] if scale is not None else 1
    dropping = p > 0.0
    act = ACTIVATIONS[activation]
    # dz = ((s * mask2 * dout) @ fc2_weight) * mask1 * gelu'(z): GELU backward in the epilogue.
    dz = torch.empty((M, I), device=x.device, dtype=x.dtype)
    _gemm(g, fc2_weight, dz, z=z, scale=scale, rows_per_sample=rows_per_sample, a_scale=scale is not None,
          a_seed=seed + 1 if dropping else None, c_seed=seed if dropping else None, p_drop=p, act_grad=act)  # fmt: skip
    dw2 = torch.empty(fc2_weight.shape, device=x.device, dtype=fc2_weight.dtype)
    db2 = torch.empty(D, device=x.device, dtype=fc2_weight.dtype)
    _gemm_tn(g, h, dw2, db=db2, scale=scale, rows_per_sample=rows_per_sample, a_seed=seed + 1 if dropping else None,
             p_drop=p)  # fmt: skip
    dw1 = torch.empty(fc1_weight.shape, device=x.device, dtype=fc1_weight.dtype)
    db1 = torch.empty(I, device=x.device, dtype=fc1_weight.dtype)
    _gemm_tn(dz, x2, dw1, db=db1, ln=(mean, rstd, ln_weight, ln_bias))
    dn = torch.empty((M, D), device=x.device, dtype=torch.float32)
    _gemm(dz, fc1_weight, dn)
    dx, dgamma, dbeta = _layer_norm_bwd(dn, x2, mean, rstd, ln_weight, g, x.dtype)
    return dx.view(x.shape), dgamma, dbeta, dw1, db1, dw2, db2


def _ln_linear_fwd_impl(x, ln_weight, ln_bias, weight, bias, eps):
    x2 = _rows(x)
    M = x2.shape[0]
    N = weight.shape[0]
    ln_weight, ln_bias = ln_weight.contiguous(), ln_bias.contiguous()
    mean, rstd = _layer_norm_stats(x2, eps)
    out = torch.empty((M, N), device=x.device, dtype=x.dtype)
    _gemm(
        x2, weight.t(), out, bias=bias.contiguous() if bias is not None else None, ln=(mean, rstd, ln_weight, ln_bias)
    )
    return out.view(*x.shape[:-1], N), mean, rstd


def _ln_linear_bwd_impl(dout, x, ln_weight, ln_bias, weight, mean, rstd, has_bias):
    x2 = _rows(x)
    g = _rows(dout)
    M, D = x2.shape
    N = weight.shape[0]
    ln_weight, ln_bias = ln_weight.contiguous(), ln_bias.contiguous()
    dw = torch.empty(weight.shape, device=x.device, dtype=weight.dtype)
    db = torch.empty(N, device=x.device, dtype=weight.dtype) if has_bias else None
    _gemm_tn(g, x2, dw, db=db, ln=(mean, rstd, ln_weight, ln_bias))
    dn = torch.empty((M, D), device=x.device, dtype=torch.float32)
    _gemm(g, weight, dn)
    dx, dgamma, dbeta = _layer_norm_bwd(dn, x2, mean, rstd, ln_weight, None, x.dtype)
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
    return _ln_mlp_fwd_impl(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, drop_path_scale, eps,
                            activation, dropout_p, seed, save_for_backward)  # fmt: skip


@_ln_mlp_fwd_op.register_fake
def _(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, drop_path_scale, eps, activation, dropout_p,
      seed, save_for_backward):  # fmt: skip
    M = x.numel() // x.shape[-1]
    I = fc1_weight.shape[0]
    stats = x.new_empty((M,), dtype=torch.float32)
    z = x.new_empty((M, I) if save_for_backward else (0,))
    return x.new_empty(x.shape), stats, torch.empty_like(stats), z, x.new_empty((M, I))


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
    return _ln_mlp_bwd_impl(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, drop_path_scale, mean, rstd, z, h,
                            activation, dropout_p, seed)  # fmt: skip


@_ln_mlp_bwd_op.register_fake
def _(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, drop_path_scale, mean, rstd, z, h, activation, dropout_p,
      seed):  # fmt: skip
    I, D = fc1_weight.shape
    return (
        x.new_empty(x.shape),
        ln_weight.new_empty((D,)),
        ln_weight.new_empty((D,)),
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


def _ln_mlp_backward(ctx, dout, *_):
    x, ln_weight, ln_bias, fc1_weight, fc2_weight, scale, mean, rstd, z, h, seed = ctx.saved_tensors
    activation, dropout_p, save = ctx.args
    if not save:
        raise RuntimeError("ln_mlp: backward through a forward run with save_for_backward=False")
    grads = torch.ops.vivit_kernels.ln_mlp_bwd(dout, x, ln_weight, ln_bias, fc1_weight, fc2_weight, scale, mean, rstd,
                                               z, h, activation, dropout_p, seed)  # fmt: skip
    return (*grads, None, None, None, None, None, None)


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
    return _ln_linear_fwd_impl(x, ln_weight, ln_bias, weight, bias, eps)


@_ln_linear_fwd_op.register_fake
def _(x, ln_weight, ln_bias, weight, bias, eps):
    M = x.numel() // x.shape[-1]
    stats = x.new_empty((M,), dtype=torch.float32)
    return x.new_empty((*x.shape[:-1], weight.shape[0])), stats, torch.empty_like(stats)


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
    return _ln_linear_bwd_impl(dout, x, ln_weight, ln_bias, weight, mean, rstd, has_bias)


@_ln_linear_bwd_op.register_fake
def _(dout, x, ln_weight, ln_bias, weight, mean, rstd, has_bias):
    N, D = weight.shape
    return (
        x.new_empty(x.shape),
        ln_weight.new_empty((D,)),
        ln_weight.new_empty((D,)),
        torch.empty_like(weight, memory_format=torch.contiguous_format),
        weight.new_empty((N,) if has_bias else (0,)),
    )


def _ln_linear_setup_context(ctx, inputs, output):
    x, ln_weight, ln_bias, weight, bias, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, ln_weight, ln_bias, weight, mean, rstd)
    ctx.has_bias = bias is not None


def _ln_linear_backward(ctx, dout, *_):
    x, ln_weight, ln_bias, weight, mean, rstd = ctx.saved_tensors
    dx, dgamma, dbeta, dw, db = torch.ops.vivit_kernels.ln_linear_bwd(
        dout, x, ln_weight, ln_bias, weight, mean, rstd, ctx.has_bias
    )
    return dx, dgamma, dbeta, dw, db if ctx.has_bias else None, None


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

    _triton_or_raise(op, x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias)
    if drop_path_scale is not None and drop_path_scale.device != x.device:
        raise ValueError(f"{op}: drop_path_scale must be on x's device {x.device}, received {drop_path_scale.device}")
    if p > 0.0 and dropout_seed is None:
        seed = torch.randint(0, 2**31 - 2, (), dtype=torch.int64)
    else:
        seed = torch.tensor(0 if dropout_seed is None else int(dropout_seed), dtype=torch.int64)
    params = (ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias)
    save = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in params))
    out = torch.ops.vivit_kernels.ln_mlp_fwd(x, *params, drop_path_scale, float(eps), activation, p, seed, save)[0]
    return out


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
    return torch.ops.vivit_kernels.ln_linear_fwd(x, ln_weight, ln_bias, weight, bias, float(eps))[0]


def triton_unsupported_reason(*tensors: torch.Tensor | None) -> str | None:
    """None when the Triton ln_mlp/ln_linear kernels can run on these tensors (x first, then the parameters)."""
    tensors = [t for t in tensors if t is not None]
    reason = triton_unavailable_reason(*tensors)
    if reason is not None:
        return reason
    x = tensors[0]
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype} is not supported (expected one of float16, bfloat16, float32)"
    mixed = sorted({str(t.dtype) for t in tensors[1:] if t.dtype != x.dtype})
    if mixed:
        return f"parameters must have x's dtype {x.dtype}, received {mixed}"
    if x.shape[-1] > MAX_HIDDEN:
        return f"hidden size {x.shape[-1]} is above the supported maximum {MAX_HIDDEN}"
    return None


def ln_mlp_reference(x, ln_weight, ln_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, *, eps, activation="gelu_tanh",
                     hidden_keep=None, output_keep=None, dropout_p=0.0, drop_path_scale=None):  # fmt: skip
    """Test oracle in fp64 (returns fp64). Dropout is given as explicit bool keep masks: hidden_keep (..., I) after
    the activation and output_keep (..., D) after fc2, each scaled by 1 / (1 - dropout_p)."""
    d = torch.float64
    h = F.layer_norm(x.to(d), (x.shape[-1],), ln_weight.to(d), ln_bias.to(d), eps)
    h = F.gelu(F.linear(h, fc1_weight.to(d), fc1_bias.to(d)), approximate=_gelu_approximate(activation))
    if hidden_keep is not None:
        h = h * hidden_keep.to(d) * _drop_scale(dropout_p)
    y = F.linear(h, fc2_weight.to(d), fc2_bias.to(d))
    if output_keep is not None:
        y = y * output_keep.to(d) * _drop_scale(dropout_p)
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


def _spec_from_values(name: str, config: str, fn, values: dict, constexprs: dict, cfg: dict):
    """A KernelSpec typed the way the runtime would launch `fn` with these argument values: tensors are given as
    their pointer type ("*bf16"; allocations are 16-byte aligned), None and the integer 1 become constexprs, other
    integers are i32 (16-divisible ones hinted), floats fp32."""
    import inspect

    from .aot import KernelSpec

    raw = getattr(fn, "fn", fn)
    unspecialized = {"seed", "seed_a", "seed_c"}
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


def _gemm_aot(name, dtype, M, N, K, a, b, c, *, c_ptr=None, ln=False, bias=False, z=None, residual=None, **flags):
    """A `_gemm_kernel` spec; a, b, c, z, residual are (row stride, column stride) of contiguous ViViT tensors."""
    ptr = {torch.bfloat16: "*bf16", torch.float16: "*fp16"}[dtype]
    heavy = flags.get("A_DROPOUT", False) or flags.get("C_DROPOUT", False) or flags.get("ACT_GRAD", 0) != 0
    cfg = _gemm_config(dtype, heavy=heavy, interpret=False)
    scaled = flags.get("A_SCALE", False) or flags.get("C_SCALE", False)
    values = dict(
        a_ptr=ptr, b_ptr=ptr, c_ptr=c_ptr or ptr, z_ptr=ptr if z else None, res_ptr=ptr if residual else None,
        bias_ptr=ptr if bias else None, scale_ptr=ptr if scaled else None,
        mean_ptr="*fp32" if ln else None, rstd_ptr="*fp32" if ln else None,
        gamma_ptr=ptr if ln else None, beta_ptr=ptr if ln else None,
        M=M, N=N, K=K, rows_per_sample=_AOT_L if scaled else 1,
        stride_am=a[0], stride_ak=a[1], stride_bk=b[0], stride_bn=b[1], stride_cm=c[0], stride_cn=c[1],
        stride_zm=z[0] if z else 0, stride_zn=z[1] if z else 0,
        stride_rm=residual[0] if residual else 0, stride_rn=residual[1] if residual else 0,
        seed_a=0, seed_c=0, p_drop=0.1, drop_scale=1.0 / 0.9,
    )  # fmt: skip
    constexprs = dict(
        A_LAYERNORM=ln, A_SCALE=False, A_DROPOUT=False, HAS_BIAS=bias, STORE_Z=False, ACT=0, C_DROPOUT=False,
        ACT_GRAD=0, C_SCALE=False, HAS_RESIDUAL=residual is not None, **_dot_flags(dtype),
    )  # fmt: skip
    constexprs.update(flags)
    parts = [str(dtype).removeprefix("torch.")]
    parts += [f"{k}={v}" for k, v in flags.items() if k in ("ACT", "ACT_GRAD")]
    parts += [k for k, v in flags.items() if v is True] + (["NO_BIAS"] if ln and not bias else [])
    parts.append(f"M{cfg['BLOCK_M']} N{cfg['BLOCK_N']} K{cfg['BLOCK_K']} w{cfg['num_warps']} s{cfg['num_stages']}")
    config = " ".join(parts)
    return _spec_from_values(name, config, _gemm_kernel, values, constexprs, cfg)


def _gemm_tn_aot(name, dtype, M, N, K, a, b, *, ln=False, scale=False, dropout=False, db=True):
    """A `_gemm_tn_kernel` spec writing fp32 split-M partials (what ViViT-B's row counts launch on an H100)."""
    ptr = {torch.bfloat16: "*bf16", torch.float16: "*fp16"}[dtype]
    cfg = _gemm_tn_config(dtype, interpret=False)
    rows_per_split = triton.cdiv(triton.cdiv(M, 4), cfg["BLOCK_M"]) * cfg["BLOCK_M"]
    values = dict(
        a_ptr=ptr, b_ptr=ptr, c_ptr="*fp32", db_ptr="*fp32" if db else None, scale_ptr=ptr if scale else None,
        mean_ptr="*fp32" if ln else None, rstd_ptr="*fp32" if ln else None,
        gamma_ptr=ptr if ln else None, beta_ptr=ptr if ln else None,
        M=M, N=N, K=K, rows_per_sample=_AOT_L if scale else 1, rows_per_split=rows_per_split,
        stride_am=a[0], stride_an=a[1], stride_bm=b[0], stride_bk=b[1], stride_cs=N * K, stride_cn=K, stride_ck=1,
        stride_dbs=N, seed_a=0, p_drop=0.1, drop_scale=1.0 / 0.9,
    )  # fmt: skip
    flags = dict(A_SCALE=scale, A_DROPOUT=dropout, B_LAYERNORM=ln, HAS_DB=db)
    constexprs = dict(**flags, **_dot_flags(dtype))
    tiles = f"N{cfg['BLOCK_N']} K{cfg['BLOCK_K']} M{cfg['BLOCK_M']} w{cfg['num_warps']} s{cfg['num_stages']}"
    label = "".join(f"{k} " for k, v in flags.items() if v)
    config = f"{str(dtype).removeprefix('torch.')} {label}{tiles}"
    return _spec_from_values(name, config, _gemm_tn_kernel, values, constexprs, cfg)


def aot_specs() -> list:
    """Every kept GEMM configuration at ViViT-B shapes (D=768, I=3072, M=8*3137; QKV N=3*768), bf16 and fp16.

    The LayerNorm row kernels have no dot (no tensor-core instruction to check): they are in `aot_row_specs()`."""
    if not HAS_TRITON:
        return []
    M, D, I = _AOT_M, _AOT_D, _AOT_I
    N3 = 3 * D
    specs = []
    for dt in (torch.bfloat16, torch.float16):
        for act in (1, 2):
            # fc1: inference; training (z stored for GELU's backward); training with hidden dropout.
            for store_z, dropout in ((False, False), (True, False), (True, True)):
                specs.append(
                    _gemm_aot("ln_mlp_fwd_fc1", dt, M, I, D, (D, 1), (1, D), (I, 1), ln=True, bias=True,
                              z=(I, 1) if store_z else None, ACT=act, STORE_Z=store_z, C_DROPOUT=dropout)
                )  # fmt: skip
            for scale, dropout in itertools.product((False, True), repeat=2):
                specs.append(
                    _gemm_aot("ln_mlp_bwd_dz", dt, M, I, D, (D, 1), (I, 1), (I, 1), z=(I, 1), ACT_GRAD=act,
                              A_SCALE=scale, A_DROPOUT=dropout, C_DROPOUT=dropout)
                )  # fmt: skip
        for scale, dropout in itertools.product((False, True), repeat=2):
            specs.append(
                _gemm_aot("ln_mlp_fwd_fc2", dt, M, D, I, (I, 1), (1, I), (D, 1), bias=True, residual=(D, 1),
                          C_DROPOUT=dropout, C_SCALE=scale)
            )  # fmt: skip
            specs.append(_gemm_tn_aot("ln_mlp_bwd_dw2", dt, M, D, I, (D, 1), (I, 1), scale=scale, dropout=dropout))
        specs.append(_gemm_aot("ln_mlp_bwd_dx", dt, M, D, I, (I, 1), (D, 1), (D, 1), c_ptr="*fp32"))
        specs.append(_gemm_tn_aot("ln_mlp_bwd_dw1", dt, M, I, D, (I, 1), (D, 1), ln=True))
        for bias in (True, False):
            specs.append(_gemm_aot("ln_linear_fwd", dt, M, N3, D, (D, 1), (1, D), (N3, 1), ln=True, bias=bias))
            specs.append(_gemm_tn_aot("ln_linear_bwd_dw", dt, M, N3, D, (N3, 1), (D, 1), ln=True, db=bias))
        specs.append(_gemm_aot("ln_linear_bwd_dx", dt, M, D, N3, (N3, 1), (D, 1), (D, 1), c_ptr="*fp32"))
    return specs


def aot_row_specs() -> list:
    """The kernels without a dot (LayerNorm statistics and backward, the fixed-order sum of fp32 partials behind
    dgamma/dbeta and split-M weight gradients) at ViViT-B shapes, bf16 and fp16."""
    if not HAS_TRITON:
        return []
    M, D = _AOT_M, _AOT_D
    row = _row_config(D, interpret=False)
    P = 4 * 132  # the partial rows the backward writes on an H100 (4 programs per SM)
    specs = []
    for dt in (torch.bfloat16, torch.float16):
        ptr = {torch.bfloat16: "*bf16", torch.float16: "*fp16"}[dt]
        name = str(dt).removeprefix("torch.")
        tiles = f"M{row['BLOCK_M']} D{row['BLOCK_D']} w{row['num_warps']}"
        values = dict(x_ptr=ptr, mean_ptr="*fp32", rstd_ptr="*fp32", M=M, D=D, stride_xm=D, stride_xd=1, eps=1e-6)
        specs.append(_spec_from_values("layer_norm_stats_fwd", f"{name} {tiles}", _layer_norm_stats_kernel, values,
                                       {}, row))  # fmt: skip
        for residual in (False, True):
            values = dict(
                dn_ptr="*fp32", x_ptr=ptr, res_ptr=ptr if residual else None, dx_ptr=ptr, mean_ptr="*fp32",
                rstd_ptr="*fp32", gamma_ptr=ptr, dgamma_ptr="*fp32", dbeta_ptr="*fp32", M=M, D=D, stride_dnm=D,
                stride_xm=D, stride_xd=1, stride_rm=D if residual else 0, stride_rd=1 if residual else 0, stride_dxm=D,
            )  # fmt: skip
            config = f"{name} {'HAS_RESIDUAL ' if residual else ''}{tiles}"
            specs.append(_spec_from_values("layer_norm_bwd", config, _layer_norm_bwd_kernel, values,
                                           dict(HAS_RESIDUAL=residual), row))  # fmt: skip
        values = dict(part_ptr="*fp32", out_ptr=ptr, P=P, D=D)
        specs.append(_spec_from_values("ln_mlp_bwd_partial_sum", f"{name} P16 D256 w4", _column_sum_kernel, values, {},
                                       dict(BLOCK_P=16, BLOCK_D=256, num_warps=4)))  # fmt: skip
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
