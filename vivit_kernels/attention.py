"""Multi-head attention over the joint, spatial or temporal axis of a video token tensor, eager and Triton.

`attention(q, k, v, axis=...)` reads q, k, v as (B, L, H, D) (joint) or (B, T, S, H, D) (spatial: the S tokens of
each frame; temporal: the T frames of each patch position) and returns q's shape, contiguous.

Design of the Triton path (non-causal FlashAttention-2 style, fp32 softmax statistics)
-------------------------------------------------------------------------------------
Addressing. Every sequence is reached by strides alone, with no transpose or copy: token (b, outer, head, pos) of a
tensor sits at b*stride_b + outer*stride_o + head*stride_h + pos*stride_l. joint: outer unused, pos over L (a CLS
token is just token 0 of the flat sequence); spatial: outer = t, pos = s; temporal: outer = s, pos = t. q, k and v
may each have their own strides (slices of one fused (B, L, 3, H, D) QKV output, heads-first transposes, or half of
the heads of a wider tensor, as in Model 4). One launch covers all (batch, outer, head) sequences; sequences are
numbered z = outer * H + head so that neighbouring sequences of a tile are neighbouring heads in memory.

Key mask. A (B, L) token mask (joint), a (B, T) mask over frames read with a zero token stride (spatial: a masked
frame masks every key of that frame) or with a zero outer stride (temporal). A row with no real key returns zeros;
its log-sum-exp is +inf so the backward gives it p = 0 and zero gradients.

Tiles, chosen from the sequence length (a few buckets, so recompilation stays bounded; five head-dim buckets: 32, 64,
64 + 16, 64 + 32 and 128 columns, masked past the head dim, so ViViT-H's 80 runs as two dots of 64 and 16 columns):
  forward  L <= 32    whole sequences of next_pow2(L) slots in the smallest tile tl.dot accepts (16 rows, 32 for
                      L > 16): several per tile for L <= 8 (block-diagonal mask), one key tile, no online-softmax
                      loop (temporal attention, T' <= 32). One warp per 16 rows (two for fp32 and past head dim 64).
           L <= 128   one key tile of next_pow2(L) keys, 64-row query tiles: no online-softmax loop.
           L > 128    64 x 64 tiles, online softmax with exp2 and the scale folded into log2(e).
  backward L <= 64    one kernel per tile of whole (packed) sequences computes dQ, dK, dV and delta = rowsum(dO*O)
                      in one launch (5 tile matmuls, nothing recomputed); the same 16-, 32- (or 64-) row tiles.
           L > 64     dQ kernel (64-row query tile, loop over 64-key tiles; also writes delta) then dK/dV kernel
                      (64-key tile, loop over 32-row query tiles): each program owns its output, so no atomics and a
                      deterministic result.
  Tail tiles (16-bit, the looping kernels): a length that is not a multiple of the tile ends in 16-wide tail tiles, so
  it pads to the next multiple of 16, not of 64: the axis a kernel's grid runs over gets a second launch of 16-row
  tiles over its last L % 64 rows (_tile_runs), the axis it loops over a second loop of 16-wide tiles after the full
  ones, through the same @triton.jit step (_fwd_key_tile, _dq_key_tile, _dkdv_query_tile). ViViT-B spatial attention
  (197 = 3 x 64 + 5 tokens) executes 208 x 208 per sequence in every kernel instead of 256 x 256 (forward and dQ) and
  224 x 256 (dK/dV). 16 is the smallest tile a tensor-core dot takes (an mma's rows; k = 16 for 16-bit operands).
  fp32 inputs use 8-warp forward tiles (temporal: 2 warps per 16 rows), a one-tile bucket up to 64 keys, 64 x 32
  loop tiles and half-size backward tiles (the 16-bit ones spill on sm_80 or exceed the 99 KiB of sm_86), without
  tails.
Numerics: q k^T and p v accumulate in fp32; p is cast to the input dtype for the p v product (FlashAttention's
choice); statistics (max, sum, log-sum-exp in base 2) are fp32. fp32 inputs use ieee dots at
torch.get_float32_matmul_precision() == "highest" and tf32 otherwise. Under TRITON_INTERPRET=1, bf16 dot operands
are upcast to fp32 through a constexpr (the interpreter's bf16 dot is broken); on a GPU they stay bf16.
Not implemented in the kernel: attention dropout (dropout_p > 0 raises NotImplementedError with backend="triton").

Measured on an H200 (bench/first_light.py, bf16, head dim 64; BENCHMARKS.md): forward against SDPA, temporal (8
frames, with the former 64-row packed tiles) 4.1-4.3x faster; spatial (197 tokens) 0.21-0.61x at 33-96 TFLOP/s;
joint (3137 tokens) 0.35-0.64x; forward + backward slower than SDPA on every axis, so `auto` takes only temporal
attention without gradients (_utils.SLOWER_THAN_EAGER). The model below predicted more than that.
Modeled efficiency (MODELED from tile shapes and H100 spec-sheet peaks, ~990 TFLOP/s bf16, 3.35 TB/s), ViViT-B,
bf16, head dim 64, batch 8.
  temporal T'=16: one sequence fills a 16-row tile, so all of its matmul work is useful (T'=8: two sequences
    share a 16 x 16 tile, 50 %; the former 64-row tiles did 25 % and 6.25 %). Per sequence the kernel moves
    4 x 16 x 64 x 2 B = 8 KiB (Q, K, V, O, each element once) and computes 65.5 kFLOP, 8 FLOP/byte against a ridge of
    ~295: memory-bound, tensor-core time ~3 % of the 46 us it takes to move the 155 MB of 18,816 sequences at peak
    bandwidth. The modeled ceiling is therefore the HBM roofline; the 60 %-of-HBM goal needs enough bytes in flight:
    the compiled forward (sm_90: 64 registers, 6 KiB shared memory, one warp, 32 programs per SM, the hardware's
    cap on resident programs) holds 32 x 6 KiB = 192 KiB of Q, K, V tiles per SM (the 64-row tiles: 5 x 24 KiB),
    well above the ~25 KiB Little's law asks for at 3.35 TB/s over 132 SMs with ~1 us of memory latency. The cost:
    four times the programs (18,816 instead of 4,704), each with its own index math and a shorter contiguous run per
    token row (one head's 128 B instead of four heads' 512 B; still whole 128-B lines). Not measured on a GPU yet.
    For T' <= 4 the tensor cores stay (a CUDA-core broadcast-multiply path was considered and not built): at T'=4,
    head dim 64, the executed MMA work, 16 kFLOP per sequence at 25 % useful, takes ~0.02 ns at 989 TFLOP/s, while
    the 4 kFLOP of useful work on CUDA cores (~67 TFLOP/s fp32) would take ~0.06 ns, against ~0.6 ns to move the
    sequence's 2 KiB (MODELED): either path is memory-bound, and the CUDA-core one computes slower.
  spatial S=196/197: full and tail tiles pad 197 rows and keys to 208, so 89.7 % of the computed FLOPs are useful
    (59 % with the earlier 128 x 64 tiles, which padded to 256): 200 useful TFLOP/s forward needs ~223 raw TFLOP/s,
    though the 16-row tail tiles run at a lower MMA rate than full ones. The tiled backward also recomputes q k^T and
    dO v^T in both kernels (7 tile matmuls where a fused atomic-dQ backward does 5), so useful/computed is
    ~0.897 x 5/7 = ~64 %: 120 useful TFLOP/s needs ~187 raw. Sequences of <= 64 tokens take the single-tile
    backward, which does 5. None of this is measured yet: only a GPU run can say whether the smaller tiles pay.
  joint 3137 tokens: padding to 3200 costs 4 % ((3137 / 3200)^2 useful); the loop is the tutorial's, without
    warp specialisation or TMA, so parity with FlashAttention-2 is plausible but unverified.
Compiled resources (real compiles for sm_80, sm_86 and sm_90 without a GPU, see aot_specs() and vivit_kernels.report):
every configuration `auto` may take uses mma.sync / wgmma, spills nothing and fits shared memory.
"""

from __future__ import annotations

import itertools

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

    from vivit_kernels.attention_bwd import (
        _attention_bwd_dkdv_kernel,
        _attention_bwd_dq_kernel,
        _attention_bwd_tile_kernel,
    )
    from vivit_kernels.attention_fwd import _attention_fwd_kernel

LOG2E = 1.4426950408889634
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
def _attention_eager(q, k, v, axis, key_mask, scale, dropout_p) -> torch.Tensor:
    # SDPA takes (N, heads, L, D); every layout below is a transpose of a (N, L, heads, D) view, which is what SDPA's
    # CPU flash kernel and the CUDA kernels read without copying, and their output transposes back to contiguous.
    if axis == "spatial":
        B, T, S, H, D = q.shape
        views = [x.reshape(B * T, S, H, D).transpose(1, 2) for x in (q, k, v)]
        mask = None  # a frame's keys are all masked or all kept: zero whole frames after the call
    elif axis == "temporal":
        B, T, S, H, D = q.shape
        # (b, s, h) sequences over T: merge S and H into the head dimension (a view for (.., S, H, D) layouts; a copy,
        # as SDPA would make, when S and H are not mergeable, e.g. slices of a fused QKV output).
        views = [x.reshape(B, T, S * H, D).transpose(1, 2) for x in (q, k, v)]
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
        out = out.reshape(q.shape)
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


def _pack(seq_len: int) -> tuple[int, int, int]:
    """(SEQ_BLOCK, PACK, BLOCK) for sequences that fit one tile: next_pow2(seq_len) slots per sequence, packed into
    the smallest tile tl.dot accepts that holds one (16 rows; 32 or 64 for longer sequences). A sequence of 8 then
    shares a 16 x 16 score tile with one other (50 % of the MMA work is its own), 16 or 32 fill theirs (100 %); the
    old 64-slot tiles did 6.25 % / 25 % / 50 %. The configuration depends on the length bucket only (slots past n_seq
    are masked): every configuration a launch can take is one vivit_kernels.report compiles."""
    seq_block = _next_pow2(seq_len)
    block = max(16, seq_block)
    return seq_block, block // seq_block, block


def _packed_warps(block: int, double: bool) -> int:
    """Warps of a one-tile program: one per 16 rows (a warp owns whole 16-row MMA blocks), two where `double` (fp32
    operands; padded head dim 128), the per-warp share of the 64-row tiles that compiled without
    spills, so registers per thread stay where they were while a 16-row tile needs no idle warps."""
    return max(1, block // 16) * (2 if double else 1)


# Head-dim buckets of the 16-bit kernels: (smallest head dim, largest head dim, BLOCK_D, TAIL_D). A head dim runs as
# one power-of-two chunk of BLOCK_D columns, or as BLOCK_D + TAIL_D: 65-96 (ViViT-H's 80) as 64 + 32, padded to 96 as
# FlashAttention pads it, where one chunk pads to 128. 64 + 16 (no padding at 80) compiles without spills but its
# 16-column accumulators need layouts of their own: 225-255 registers in every tail tile (64 + 32: 80-147), so no
# margin and half the resident tiles; a GPU measurement has to show it pays first. fp32 tiles spill with two
# chunks: fp32 keeps one chunk of 128 past 64 (FP32_HEAD_DIM_BUCKETS).
HEAD_DIM_BUCKETS = ((1, 32, 32, 0), (33, 64, 64, 0), (65, 96, 64, 32), (97, 128, 128, 0))
FP32_HEAD_DIM_BUCKETS = ((1, 32, 32, 0), (33, 64, 64, 0), (65, 128, 128, 0))


def _head_dim_blocks(head_dim: int, itemsize: int = 2) -> tuple[int, int]:
    """(BLOCK_D, TAIL_D) of head dim `head_dim` for elements of `itemsize` bytes (HEAD_DIM_BUCKETS, or
    FP32_HEAD_DIM_BUCKETS for 4-byte elements)."""
    for low, high, block_d, tail_d in FP32_HEAD_DIM_BUCKETS if itemsize > 2 else HEAD_DIM_BUCKETS:
        if low <= head_dim <= high:
            return block_d, tail_d
    raise ValueError(f"head_dim must be in 1..{HEAD_DIM_BUCKETS[-1][1]}, got {head_dim}")


def _fwd_config(seq_len: int, n_seq: int, head_dim: int, itemsize: int = 2) -> dict:
    """Tile sizes from the sequence length bucket, the head-dim bucket and the element size (fp32 tiles need twice
    the registers: 8 warps). A handful of values, so recompilation stays bounded. Head dims past 64 (two chunks, or
    one of 128) take the tiles checked at padded head dim 128, which hold the most registers."""
    block_d, tail_d = _head_dim_blocks(head_dim, itemsize)
    wide = block_d + tail_d > 64
    num_warps = 8 if itemsize > 2 else 4
    if seq_len <= 32:  # temporal attention: whole sequences in one 16- or 32-row tile, block-diagonal when packed
        seq_block, pack, block = _pack(seq_len)
        # Two warps per 16 rows at padded head dim 128 too: one warp spills on sm_90 at T'=4 (PACK=4).
        return dict(SEQ_BLOCK=seq_block, PACK=pack, BLOCK_M=block, BLOCK_N=block, BLOCK_D=block_d, TAIL_D=tail_d,
                    SINGLE_TILE=True, num_warps=_packed_warps(block, itemsize > 2 or wide), num_stages=1)  # fmt: skip
    if seq_len <= (128 if itemsize <= 2 else 64):  # one key tile holds the sequence: no online-softmax loop
        block_n = _next_pow2(seq_len)
        return dict(SEQ_BLOCK=block_n, PACK=1, BLOCK_M=64, BLOCK_N=block_n, BLOCK_D=block_d, TAIL_D=tail_d,
                    SINGLE_TILE=True, num_warps=num_warps, num_stages=1)  # fmt: skip
    if itemsize > 2:  # fp32: 64 x 32 tiles (single-stage at padded head dim 128) fit 99 KiB (sm_86) of shared memory
        return dict(SEQ_BLOCK=64, PACK=1, BLOCK_M=64, BLOCK_N=32, TAIL_M=64, TAIL_N=32, BLOCK_D=block_d,
                    TAIL_D=tail_d, SINGLE_TILE=False, num_warps=4, num_stages=1 if wide else 2)  # fmt: skip
    # 64 x 64 tiles, then 16-row / 16-key tails (_tile_runs): 197 tokens execute 208 x 208, not 256 x 256.
    # 8 warps: 4 spill at padded head dim 128 on sm_80/86 and sit at 255 registers at 64; the 16-row tail takes 4.
    # Two head-dim chunks run single-stage: with two stages the 64 + 32 tile spilled on sm_86.
    return dict(SEQ_BLOCK=64, PACK=1, BLOCK_M=64, BLOCK_N=64, TAIL_M=TAIL, TAIL_N=TAIL, BLOCK_D=block_d,
                TAIL_D=tail_d, SINGLE_TILE=False, num_warps=8, num_stages=1 if tail_d else 2, tail_warps=4)  # fmt: skip


def _bwd_config(seq_len: int, n_seq: int, head_dim: int, itemsize: int = 2) -> dict:
    """The backward's tiles: one-tile (packed) programs for short sequences, else a dq and a dkdv part (each with
    BLOCK_D and TAIL_D of the head-dim bucket, as `_pass_config` hands them to the launch)."""
    block_d, tail_d = _head_dim_blocks(head_dim, itemsize)
    wide = block_d + tail_d > 64
    if itemsize > 2:  # fp32: half-size tiles (the 16-bit ones spill on sm_80, checked by aot_specs)
        if seq_len <= 32:
            seq_block, pack, block = _pack(seq_len)
            return dict(SEQ_BLOCK=seq_block, PACK=pack, BLOCK=block, BLOCK_D=block_d, TAIL_D=tail_d,
                        num_warps=_packed_warps(block, True), num_stages=1)  # fmt: skip
        return dict(
            BLOCK_D=block_d,
            TAIL_D=tail_d,
            dq=dict(BLOCK_M=32, BLOCK_N=32, TAIL_M=32, TAIL_N=32, num_warps=4, num_stages=2),
            dkdv=dict(BLOCK_M=16, BLOCK_N=32, TAIL_M=16, TAIL_N=32, num_warps=4, num_stages=2),
        )
    num_warps = 8 if wide else 4
    # Whole sequences in one tile: dq, dk, dv in one launch. Two head-dim chunks stop at 32: the 64-row tile spilled
    # on sm_80 with 64 + 32 columns. Two-chunk dK/dV tiles are single-stage (two stages spilled on sm_80/86).
    if seq_len <= (32 if tail_d else 64):
        seq_block, pack, block = _pack(seq_len)
        return dict(SEQ_BLOCK=seq_block, PACK=pack, BLOCK=block, BLOCK_D=block_d, TAIL_D=tail_d,
                    num_warps=_packed_warps(block, wide), num_stages=1)  # fmt: skip
    # dK/dV loops over 32-row query tiles: 64 spills on sm_80 at head dim 64 even with 8 warps; dQ at padded head dim
    # 128 loops over 32-key tiles with 4 warps (8 warps get capped at 128 registers and spill). Checked by aot_specs.
    # Both end in 16-row / 16-key tails (_tile_runs): 197 tokens execute 208 x 208 in each kernel. A 16-key dK/dV
    # tail tile at padded head dim 128 spills with 8 warps on sm_90 (capped at 128 registers), not with 4.
    tails = dict(TAIL_M=TAIL, TAIL_N=TAIL, tail_warps=4)
    return dict(
        BLOCK_D=block_d,
        TAIL_D=tail_d,
        dq=dict(BLOCK_M=64, BLOCK_N=32 if wide else 64, num_warps=4, num_stages=2, **tails),
        dkdv=dict(BLOCK_M=32, BLOCK_N=64, num_warps=num_warps, num_stages=1 if tail_d else 2, **tails),
    )


def _pass_config(cfg: dict, part: str) -> dict:
    """The tiles of backward pass `part` ("dq" or "dkdv") of a two-pass _bwd_config, with the head-dim chunks."""
    return dict(cfg[part], BLOCK_D=cfg["BLOCK_D"], TAIL_D=cfg["TAIL_D"])


# Tail tiles: the smallest tile a tensor-core dot takes (an mma's 16 rows, and k = 16 for 16-bit operands), so a
# length pads to the next multiple of 16 at most.
TAIL = 16
# The axis each kernel's grid runs over (its tiles are launched, full ones then the tail): (tile key, tail key). The
# other axis is the kernel's loop, whose tail is a constexpr of the kernel (TAIL_N for fwd and dq, TAIL_M for dkdv).
_GRID_AXIS = {"fwd": ("BLOCK_M", "TAIL_M"), "dq": ("BLOCK_M", "TAIL_M"), "dkdv": ("BLOCK_N", "TAIL_N")}


def _tile_runs(seq_len: int, block: int, tail: int) -> list[tuple[int, int, int]]:
    """[(start, end, tile)]: the runs of one axis, full `block` tiles then the remainder in `tail` tiles (one run with
    a padded last tile when tail == block). A length pads to block * (L // block) + tail * ceil((L % block) / tail)."""
    if tail >= block:
        return [(0, seq_len, block)]
    full = seq_len // block * block
    return [(start, end, tile) for start, end, tile in ((0, full, block), (full, seq_len, tail)) if end > start]


def _padded(seq_len: int, block: int, tail: int) -> int:
    """Rows (or keys) one axis executes: every tile of _tile_runs, padding included."""
    return sum(-(-(end - start) // tile) * tile for start, end, tile in _tile_runs(seq_len, block, tail))


def _launches(part: str, cfg: dict, seq_len: int) -> list[tuple[int, int, int, dict, dict]]:
    """The launches of one pass ("fwd", "dq" or "dkdv") over sequences of seq_len tokens: (start, end, tile,
    constexprs, meta) for the full tiles of the grid axis, then for its tail tiles (with `tail_warps` warps where the
    configuration gives them: a 16-row tile needs fewer). Configurations without tails (the single-tile and packed
    forward, fp32) get a loop tail equal to the loop tile and run as one launch of padded tiles."""
    tile_key, tail_key = _GRID_AXIS[part]
    loop_key = "BLOCK_N" if tile_key == "BLOCK_M" else "BLOCK_M"
    base = {k: v for k, v in cfg.items() if k not in ("num_warps", "num_stages", "tail_warps", tail_key)}
    base.setdefault("TAIL_" + loop_key[-1], cfg[loop_key])
    launches = []
    for start, end, tile in _tile_runs(seq_len, cfg[tile_key], cfg.get(tail_key, cfg[tile_key])):
        warps = cfg["num_warps"] if tile == cfg[tile_key] else cfg.get("tail_warps", cfg["num_warps"])
        meta = dict(num_warps=warps, num_stages=cfg["num_stages"])
        launches.append((start, end, tile, dict(base, **{tile_key: tile}), meta))
    return launches


def _kernel_tiles(part: str, cfg: dict) -> list[tuple[dict, dict]]:
    """Every compiled configuration (constexprs, meta) of one pass, whatever the length: the full-tile launch's and,
    where the grid axis has a shorter tail, the tail launch's."""
    # A length of one tile + 1 token launches one full tile and, where there is a tail, one tail tile.
    return [launch[3:] for launch in _launches(part, cfg, cfg[_GRID_AXIS[part][0]] + 1)]


# tl.dot calls per (query tile, key tile) pair of each kernel; every one multiplies BLOCK_M x BLOCK_N x the padded
# head dim (BLOCK_D + TAIL_D, as one or two dots).
_DOTS_PER_TILE = {"fwd": 2, "bwd_tile": 5, "dq": 3, "dkdv": 4}


def mma_flops(kernel: str, cfg: dict, seq_len: int, head_dim: int, n_seq: int) -> tuple[int, int]:
    """(useful, executed) tensor-core FLOPs of one pass of `kernel` ("fwd", "bwd_tile", "dq" or "dkdv": its full-tile
    and tail launches together) with tile configuration `cfg` (_fwd_config, _bwd_config or its _pass_config) on n_seq
    sequences of seq_len tokens at head dim head_dim. Executed counts every tile the grids multiply, padding (of the
    length, and of the head dim to BLOCK_D + TAIL_D) and the off-diagonal blocks of packed tiles included; useful
    counts the same dots on the real seq_len x seq_len x head_dim products only."""
    if kernel not in _DOTS_PER_TILE:
        raise ValueError(f"kernel must be one of {sorted(_DOTS_PER_TILE)}, got {kernel!r}")
    if min(seq_len, head_dim, n_seq) < 1:
        raise ValueError(f"seq_len, head_dim and n_seq must be >= 1, got {seq_len}, {head_dim}, {n_seq}")
    cdiv = lambda a, b: -(-a // b)  # noqa: E731
    block_d = cfg["BLOCK_D"] + cfg["TAIL_D"]
    if kernel == "bwd_tile":  # one program per tile of PACK whole sequences
        block = cfg["BLOCK"]
        area = cdiv(n_seq, cfg["PACK"]) * block * block
    elif kernel == "fwd" and cfg["SINGLE_TILE"]:  # query tiles (PACK sequences each) against one key tile
        area = cdiv(seq_len, cfg["BLOCK_M"]) * cdiv(n_seq, cfg["PACK"]) * cfg["BLOCK_M"] * cfg["BLOCK_N"]
    else:  # every sequence: rows x keys, each axis in full tiles then tail tiles (fwd, dq: query tiles launched,
        # key tiles looped; dkdv the other way round: the same product)
        rows = _padded(seq_len, cfg["BLOCK_M"], cfg.get("TAIL_M", cfg["BLOCK_M"]))
        keys = _padded(seq_len, cfg["BLOCK_N"], cfg.get("TAIL_N", cfg["BLOCK_N"]))
        area = n_seq * rows * keys
    per_product = 2 * _DOTS_PER_TILE[kernel]
    executed = per_product * area * block_d
    useful = per_product * n_seq * seq_len * seq_len * head_dim
    return useful, executed


def useful_fraction(kernel: str, cfg: dict, seq_len: int, head_dim: int, n_seq: int) -> float:
    """Useful / executed tensor-core FLOPs of one pass (mma_flops): the share of MMA work that is not padding."""
    useful, executed = mma_flops(kernel, cfg, seq_len, head_dim, n_seq)
    return useful / executed


def _empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Every buffer a launcher allocates (tests swap in NaN-filled ones to catch unwritten elements)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _dot_precision(dtype: torch.dtype) -> str:
    return fp32_precision() if dtype == torch.float32 else "ieee"


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
    sq, sk, sv, so = (_sequence_strides(t, axis) for t in (q, k, v, out))
    sm = _mask_strides(key_mask, axis)
    # Query rows in full tiles, then (second launch) the remainder in tail tiles: both write disjoint rows.
    for row_start, row_end, tile, tiles, meta in _launches("fwd", cfg, L):
        grid = (triton.cdiv(row_end - row_start, tile) * triton.cdiv(n_seq, cfg["PACK"]), B)
        _attention_fwd_kernel[grid](
            Q=q, K=k, V=v, O=out, LSE=lse, MASK=_mask_arg(key_mask, lse),
            stride_qb=sq[0], stride_qo=sq[1], stride_qh=sq[2], stride_ql=sq[3], stride_qd=sq[4],
            stride_kb=sk[0], stride_ko=sk[1], stride_kh=sk[2], stride_kl=sk[3], stride_kd=sk[4],
            stride_vb=sv[0], stride_vo=sv[1], stride_vh=sv[2], stride_vl=sv[3], stride_vd=sv[4],
            stride_ob=so[0], stride_oo=so[1], stride_oh=so[2], stride_ol=so[3], stride_od=so[4],
            stride_mb=sm[0], stride_mo=sm[1], stride_ml=sm[2],
            n_seq=n_seq, n_heads=H, seq_len=L, head_dim=D, qk_scale=scale * LOG2E,
            has_mask=int(key_mask is not None), row_start=row_start, row_end=row_end,
            DOT_PRECISION=_dot_precision(q.dtype), UPCAST=_upcast(q.dtype), **tiles, **meta,
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
        has_mask=int(key_mask is not None), DOT_PRECISION=_dot_precision(q.dtype), UPCAST=_upcast(q.dtype),
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
    # dQ first, full query tiles then the tail: it also writes delta = rowsum(dO * O), which dK/dV reads for every row.
    for row_start, row_end, tile, tiles, meta in _launches("dq", _pass_config(cfg, "dq"), L):
        _attention_bwd_dq_kernel[(triton.cdiv(row_end - row_start, tile) * n_seq, B)](
            Q=q, K=k, V=v, O=out, DO=do, DQ=dq, LSE=lse, DELTA=delta, MASK=mask,
            stride_ob=so[0], stride_oo=so[1], stride_oh=so[2], stride_ol=so[3], stride_od=so[4],
            row_start=row_start, row_end=row_end, **common, **tiles, **meta,
        )  # fmt: skip
    # dK/dV: full key tiles, then the tail.
    for row_start, row_end, tile, tiles, meta in _launches("dkdv", _pass_config(cfg, "dkdv"), L):
        _attention_bwd_dkdv_kernel[(triton.cdiv(row_end - row_start, tile) * n_seq, B)](
            Q=q, K=k, V=v, DO=do, DK=dk, DV=dv, LSE=lse, DELTA=delta, MASK=mask,
            row_start=row_start, row_end=row_end, **common, **tiles, **meta,
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
    with device_guard(q):
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
    with device_guard(q):
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
# ViViT-B/16x2 (T'=16 frames of S=196 patches, 12 heads), every head-dim bucket; one representative length per
# kept configuration: the configuration `_fwd_config` / `_bwd_config` picks for it.
_TEMPORAL_LENGTHS = tuple((f"temporal T'={n}", n) for n in (1, 2, 4, 8, 16, 32))  # one per SEQ_BLOCK of _pack
_AOT_LENGTHS = {
    "fwd": (*_TEMPORAL_LENGTHS, ("spatial S=49", 49), ("spatial S=100", 100), ("spatial S=197 / joint", 197)),
    "bwd": (*_TEMPORAL_LENGTHS, ("spatial S=49", 49), ("spatial S=197 / joint", 197)),
}
# The buckets these lengths stand for: forward 1, 2, 3-4, 5-8, 9-16, 17-32 (packed tiles of 16 or 32 rows), 33-64,
# 65-128 (one key tile), > 128 (online softmax); backward the same six up to 32, 33-64 (one tile; none for fp32 and
# for 64 + 32 columns) and longer (dq + dkdv).
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


# Every configuration a launch can take: dtype x fp32 dot precision x key mask x head-dim bucket x length bucket.
# The key mask is a runtime flag, so "mask" and "nomask" rows are one compile (the report dedupes them).
# fp32 at torch.get_float32_matmul_precision() == "highest" (ieee FMA dots, no tensor cores, spills of kilobytes at
# these tiles) is strict-only: auto leaves it to eager, and its rows are not compiled (patch_embed's document the case).
_AOT_VARIANTS = (("bf16", "ieee"), ("fp16", "ieee"), ("fp32", "tf32"))
_AOT_HEAD_DIMS = tuple(high for _, high, _, _ in HEAD_DIM_BUCKETS)  # one per bucket, its largest head dim
# The head dim each bucket's useful_fraction is reported at: ViViT-B's 64, ViViT-H's 80, the bucket's top elsewhere.
_AOT_VIVIT_HEAD_DIM = {32: 32, 64: 64, 96: 80, 128: 128}
_TORCH_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def aot_specs() -> list:
    """Every kernel configuration attention can launch (forward; backward tile or dq + dkdv), one representative
    length per length bucket, each with the `auto` rule of its calls (auto_config_reason) and its shared-memory bound.
    """
    import functools
    import inspect

    from vivit_kernels.aot import KernelSpec

    specs = []

    def add(name, kernel, variant, has_mask, label, cfg, seq_len, head_dim, part, tiles=None, meta=None):
        """One spec: pass `part` of tile configuration `cfg`, launched with constexprs `tiles` and `meta` (num_warps,
        num_stages; default: cfg's)."""
        dtype, precision = variant
        # The MMA work that is not padding, of the whole pass (full and tail launches), at the bucket's
        # representative ViViT length and head dim.
        real_d = _AOT_VIVIT_HEAD_DIM[head_dim]
        fraction = useful_fraction(part, cfg, seq_len, real_d, _AOT_SEQUENCES)
        tiles = {k: v for k, v in (cfg if tiles is None else tiles).items() if k not in ("num_warps", "num_stages")}
        meta = cfg if meta is None else meta
        params = inspect.signature(getattr(kernel, "fn", kernel)).parameters
        constexprs = dict(tiles, DOT_PRECISION=precision, UPCAST=False)
        constexprs.update({n: 1 for n in params if _is_head_dim_stride(n)})
        signature, divisible = _aot_signature(kernel, dtype, constexprs)
        described = " ".join(f"{k}={v}" for k, v in sorted(tiles.items()))
        torch_dtype = _TORCH_DTYPE[dtype]
        specs.append(
            KernelSpec(
                name=name,
                config=f"{dtype} {precision} {'mask' if has_mask else 'nomask'} {label} {described}",
                fn=kernel,
                signature=signature,
                constexprs=constexprs,
                num_warps=meta["num_warps"],
                num_stages=meta["num_stages"],
                divisible=divisible,
                auto_rule=functools.partial(auto_config_reason, torch_dtype, precision, head_dim, seq_len),
                shared_estimate=shared_bytes_needed(torch_dtype, head_dim, seq_len),
                extra={
                    "useful_fraction": round(fraction, 4),
                    "useful_at": f"L={seq_len} D={real_d} n_seq={_AOT_SEQUENCES}",
                },
            )
        )

    def add_pass(name, kernel, variant, has_mask, label, cfg, seq_len, head_dim, part):
        # The full-tile launch and, where there is one, the tail launch: two compiled configurations.
        for i, (tiles, meta) in enumerate(_kernel_tiles(part, cfg)):
            tail = " tail" if i else ""
            add(name, kernel, variant, has_mask, label + tail, cfg, seq_len, head_dim, part, tiles, meta)

    for variant, has_mask, head_dim in itertools.product(_AOT_VARIANTS, (True, False), _AOT_HEAD_DIMS):
        itemsize = _ITEMSIZE[variant[0]]
        for label, seq_len in _AOT_LENGTHS["fwd"]:
            cfg = _fwd_config(seq_len, _AOT_SEQUENCES, head_dim, itemsize)
            add_pass("attention_fwd", _attention_fwd_kernel, variant, has_mask, f"D{head_dim} {label}", cfg, seq_len,
                     head_dim, "fwd")  # fmt: skip
        for label, seq_len in _AOT_LENGTHS["bwd"]:
            cfg = _bwd_config(seq_len, _AOT_SEQUENCES, head_dim, itemsize)
            if "PACK" in cfg:
                add("attention_bwd", _attention_bwd_tile_kernel, variant, has_mask, f"D{head_dim} {label} tile", cfg,
                    seq_len, head_dim, "bwd_tile")  # fmt: skip
                continue
            for part, kernel in (("dq", _attention_bwd_dq_kernel), ("dkdv", _attention_bwd_dkdv_kernel)):
                sub = _pass_config(cfg, part)
                add_pass("attention_bwd", kernel, variant, has_mask, f"D{head_dim} {label} {part}", sub, seq_len,
                         head_dim, part)  # fmt: skip
    return specs


_ITEMSIZE = {"bf16": 2, "fp16": 2, "fp32": 4}


# ----------------------------------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------------------------------
def triton_unsupported_reason(q, k=None, v=None, *, axis="joint", key_mask=None, dropout_p=0.0) -> str | None:
    """None when backend="triton" can run this call, else why not."""
    tensors = [t for t in (q, k, v, key_mask) if t is not None]
    reason = triton_unavailable_reason(*tensors)
    if reason is not None:
        return reason
    if dropout_p > 0.0:
        return "attention dropout (dropout_p > 0) is not implemented in the Triton kernel"
    dtype = compute_dtype(q)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"dtype {dtype} is not supported (float16, bfloat16, float32)"
    if not 1 <= q.shape[-1] <= 128:
        return f"head dim {q.shape[-1]} is not supported (1..128)"
    return None


def shared_bytes_needed(dtype: torch.dtype, head_dim: int, seq_len: int) -> int:
    """An upper bound of the shared memory per program of every kernel a call launches (forward and backward): the
    tiles that feed tensor-core dots, times the pipeline stages for those loaded inside a loop, plus 1 KiB for
    reductions and the key mask. The tail launches and tail loops use smaller tiles than the ones counted here; the
    compiled kernels with a tail loop stay within this bound too. tests/test_aot.py checks it against every compiled
    configuration."""
    itemsize = torch.tensor([], dtype=dtype).element_size()
    fwd = _fwd_config(seq_len, 1, head_dim, itemsize)
    d = (fwd["BLOCK_D"] + fwd["TAIL_D"]) * itemsize
    need = d * (fwd["BLOCK_M"] + max(1, fwd["num_stages"]) * 2 * fwd["BLOCK_N"])  # Q + stages x (K, V)
    bwd = _bwd_config(seq_len, 1, head_dim, itemsize)
    if "PACK" in bwd:
        need = max(need, d * 6 * bwd["BLOCK"])  # Q, K, V, O, dO of the tile, and a layout-conversion buffer
    else:
        dq, dkdv = bwd["dq"], bwd["dkdv"]
        need = max(need, d * (2 * dq["BLOCK_M"] + dq["num_stages"] * 2 * dq["BLOCK_N"]))  # Q, dO + stages x (K, V)
        need = max(need, d * (2 * dkdv["BLOCK_N"] + dkdv["num_stages"] * 2 * dkdv["BLOCK_M"]))  # K, V + (Q, dO)
    return need + 1024


def auto_config_reason(dtype: torch.dtype, precision: str, head_dim: int, seq_len: int, arch: int,
                       shared_limit: int) -> str | None:  # fmt: skip
    """The `auto` rule for one launch configuration, shared by vivit.models.dispatch and vivit_kernels.report: None
    when the kernels are the fast, checked choice on sm_`arch` with `shared_limit` bytes of shared memory per
    program."""
    if not 1 <= head_dim <= 128:
        return f"head dim {head_dim} is not supported (1..128)"
    need = shared_bytes_needed(dtype, head_dim, seq_len)
    return auto_reason(dtype, precision, arch, need, shared_limit)


def auto_unsupported_reason(q, k=None, v=None, *, axis="joint", key_mask=None, dropout_p=0.0) -> str | None:
    """None when backend="auto" takes the Triton kernel for this call, else why it does not: the call must be one
    the kernel runs (triton_unsupported_reason) on a device where it is the fast, checked choice
    (auto_config_reason), with the dtype autocast gives the operands."""
    reason = triton_unsupported_reason(q, k, v, axis=axis, key_mask=key_mask, dropout_p=dropout_p)
    if reason is not None:
        return reason
    caps = device_caps(q.device)
    if caps is None:
        return f"auto takes kernels on CUDA devices only, not {q.device}"
    dtype = compute_dtype(q)
    seq_len = _sequences(q, axis)[3]
    return auto_config_reason(dtype, _dot_precision(dtype), q.shape[-1], seq_len, caps.arch, caps.shared_per_block)


def attention(q, k, v, *, axis="joint", key_mask=None, scale=None, dropout_p=0.0, backend="eager") -> torch.Tensor:
    """Non-causal softmax attention along `axis`; returns q's shape.

    axis="joint": q, k, v (B, L, H, D), key_mask None or bool (B, L) with True = real key.
    axis="spatial": q, k, v (B, T, S, H, D), attention over the S tokens of each frame; key_mask bool (B, T) over
        frames (a False frame has all its keys masked, so its rows are zeros).
    axis="temporal": q, k, v (B, T, S, H, D), attention over the T frames of each patch; key_mask (B, T) masks frames.
    A query row whose keys are all masked returns zeros. scale defaults to D ** -0.5.
    backend="eager" runs F.scaled_dot_product_attention on views; backend="triton" runs the Triton kernel or raises
    NotImplementedError when it cannot. Under torch.autocast both compute in the autocast dtype and return it.
    """
    _check_inputs(q, k, v, axis, key_mask, dropout_p, backend)
    if backend == "eager":
        return _attention_eager(q, k, v, axis, key_mask, scale, dropout_p)
    reason = triton_unsupported_reason(q, k, v, axis=axis, key_mask=key_mask, dropout_p=dropout_p)
    if reason is not None:
        raise NotImplementedError(f"attention: {reason}")
    # Under autocast, q, k, v get the dtype eager SDPA would compute in (the custom op is not cast by autocast).
    dtype = autocast_dtype(q.device.type)
    q, k, v = (autocast_cast(t, dtype) for t in (q, k, v))
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    out, _ = attention_fwd(q, k, v, key_mask, axis, scale)
    return out
