"""LayerNorm row kernels: fp32 statistics for GEMMs that normalise on load, and the backward with a deterministic
parallel dgamma/dbeta reduction (per-program partial rows, then a fixed-order sum)."""

import torch

from ._utils import HAS_TRITON, INTERPRET
from .gemm import partial_sum

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def layer_norm_stats_kernel(
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

    @triton.jit
    def layer_norm_bwd_kernel(
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


def row_config(D: int, interpret: bool = INTERPRET) -> dict:
    """Whole rows per program (LayerNorm needs the full row): about 4K elements per program."""
    block_d = triton.next_power_of_2(D)
    block_m = max(1, min(16, 4096 // block_d))
    return dict(BLOCK_M=block_m, BLOCK_D=block_d, num_warps=1 if interpret else (4 if block_d <= 512 else 8))


def _num_partials(M: int, block_m: int, device: torch.device) -> int:
    if device.type == "cuda":
        programs = 4 * torch.cuda.get_device_properties(device).multi_processor_count
    else:
        programs = 4
    return max(1, min(triton.cdiv(M, block_m), programs))


def layer_norm_stats(x2: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    M, D = x2.shape
    mean = torch.empty(M, device=x2.device, dtype=torch.float32)
    rstd = torch.empty(M, device=x2.device, dtype=torch.float32)
    cfg = row_config(D)
    layer_norm_stats_kernel[(triton.cdiv(M, cfg["BLOCK_M"]),)](
        x_ptr=x2, mean_ptr=mean, rstd_ptr=rstd, M=M, D=D, stride_xm=x2.stride(0), stride_xd=x2.stride(1), eps=eps,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_D=cfg["BLOCK_D"], num_warps=cfg["num_warps"],
    )  # fmt: skip
    return mean, rstd


def layer_norm_bwd(dn, x2, mean, rstd, gamma, residual_grad, dx_dtype, beta_dtype):
    """dx (M, D), dgamma (D,), dbeta (D,) from dn = dL/dLN(x) (fp32, contiguous)."""
    M, D = x2.shape
    cfg = row_config(D)
    P = _num_partials(M, cfg["BLOCK_M"], x2.device)
    dx = torch.empty((M, D), device=x2.device, dtype=dx_dtype)
    dgamma_part = torch.empty((P, D), device=x2.device, dtype=torch.float32)
    dbeta_part = torch.empty((P, D), device=x2.device, dtype=torch.float32)
    r = residual_grad
    layer_norm_bwd_kernel[(P,)](
        dn_ptr=dn, x_ptr=x2, res_ptr=r, dx_ptr=dx, mean_ptr=mean, rstd_ptr=rstd, gamma_ptr=gamma,
        dgamma_ptr=dgamma_part, dbeta_ptr=dbeta_part, M=M, D=D, stride_dnm=dn.stride(0),
        stride_xm=x2.stride(0), stride_xd=x2.stride(1),
        stride_rm=r.stride(0) if r is not None else 0, stride_rd=r.stride(1) if r is not None else 0,
        stride_dxm=dx.stride(0), HAS_RESIDUAL=r is not None,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_D=cfg["BLOCK_D"], num_warps=cfg["num_warps"],
    )  # fmt: skip
    dgamma = torch.empty(D, device=x2.device, dtype=gamma.dtype)
    dbeta = torch.empty(D, device=x2.device, dtype=beta_dtype)
    return dx, partial_sum(dgamma_part, dgamma), partial_sum(dbeta_part, dbeta)
