"""vivit_kernels.attention: the Triton kernel (through the interpreter) and the eager path against an fp64 reference.

Error rule (FlashAttention's): for the output and each gradient, the kernel's max and mean error against the fp64
reference are at most twice PyTorch's own error in the same dtype (eager SDPA, also against fp64), plus a small floor
of the dtype's rounding noise (see `_assert_close`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vivit_kernels import attention as attn_mod
from vivit_kernels.attention import attention, attention_reference, triton_unsupported_reason

EPS = {dtype: torch.finfo(dtype).eps for dtype in (torch.float32, torch.float16, torch.bfloat16)}


def _inputs(shape, dtype, layout="contiguous"):
    """Fresh leaves and a function making q, k, v of `shape` from them: contiguous tensors or strided views."""
    lead, (H, D) = shape[:-2], shape[-2:]
    if layout == "contiguous":
        return [torch.randn(shape, dtype=dtype) for _ in range(3)], lambda t: t
    if layout == "fused":  # sliced out of one fused QKV projection output (..., 3, H, D)
        return [torch.randn(*lead, 3, H, D, dtype=dtype)], lambda t: t[0].unbind(-3)
    if layout == "heads_first":  # stored with tokens and heads swapped: (..., H, L, D).transpose
        return [torch.randn(*lead[:-1], H, lead[-1], D, dtype=dtype) for _ in range(3)], lambda t: [
            x.transpose(-2, -3) for x in t
        ]
    if layout == "half_heads":  # Model 4: the second half of the heads of wider tensors
        return [torch.randn(*lead, 2 * H, D, dtype=dtype) for _ in range(3)], lambda t: [x[..., H:, :] for x in t]
    raise ValueError(layout)


def _run(leaves, make, axis, key_mask, grad, backend=None):
    """Output and gradients of the leaves; backend None = the fp64 reference."""
    leaves = [x.detach().requires_grad_() for x in leaves]
    q, k, v = make(leaves)
    if backend is None:
        out = attention_reference(q, k, v, axis=axis, key_mask=key_mask)
    else:
        out = attention(q, k, v, axis=axis, key_mask=key_mask, backend=backend)
    return out, torch.autograd.grad(out, leaves, grad.to(out.dtype))


def _assert_close(name, got, torch_low, ref):
    """Max and mean error of the kernel <= 2 x PyTorch's error in the same dtype + a floor of rounding noise.

    Both kernels accumulate in fp32, so every dtype gets 16 fp32 ulp at max(1, magnitude) (inputs are unit-scale
    randn): that covers a gradient that is exactly zero in exact arithmetic (one key: dq = dk = 0) where PyTorch's
    own error happens to be zero too. fp16 adds one fp16 ulp at the reference's magnitude (max or mean |ref|). fp32
    also keeps the relative norm error under 1e-5 (kernels.md's fp32 ieee bound).
    """
    err, err_torch = (got.double() - ref).abs(), (torch_low.double() - ref).abs()
    for stat in ("max", "mean"):
        scale = getattr(ref.abs(), stat)().item()
        floor = 16 * EPS[torch.float32] * max(1.0, scale) + (
            scale * EPS[got.dtype] if got.dtype != torch.float32 else 0
        )
        e, e_torch = getattr(err, stat)().item(), getattr(err_torch, stat)().item()
        assert e <= 2 * e_torch + floor, f"{name}: {stat} error {e:.3e} > 2 x torch {e_torch:.3e} + floor {floor:.3e}"
    if got.dtype == torch.float32 and ref.norm() > 0:
        rel = (err.norm() / ref.norm()).item()
        assert rel < 1e-5, f"{name}: relative norm error {rel:.2e}"


def _check_triton(shape, axis, dtype, key_mask=None, layout="contiguous"):
    leaves, make = _inputs(shape, dtype, layout)
    grad = torch.randn(shape, dtype=torch.float64)
    out, grads = _run(leaves, make, axis, key_mask, grad, "triton")
    out_eager, grads_eager = _run(leaves, make, axis, key_mask, grad, "eager")
    out_ref, grads_ref = _run([x.double() for x in leaves], make, axis, key_mask, grad)
    assert out.shape == shape and out.dtype == dtype and out.is_contiguous()
    _assert_close("out", out, out_eager, out_ref)
    for i, (g, ge, gr) in enumerate(zip(grads, grads_eager, grads_ref)):
        assert torch.isfinite(g).all(), f"grad {i}"
        _assert_close(f"grad {i}", g, ge, gr)
    return out, grads


# ----------------------------------------------------------------------------------------------------------------------
# Triton kernel (interpreter) against fp64
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "S, D, dtype",
    [
        (1, 32, torch.float32),
        (49, 64, torch.float16),
        (49, 80, torch.float32),
        (100, 64, torch.float16),  # one 128-key tile, two query tiles
        (196, 64, torch.float32),
        (197, 80, torch.float16),  # head dim 80 as 64 + 32 columns
        (20, 65, torch.float16),  # 64 + 32 with one real column in the second chunk
        (49, 96, torch.float16),  # 64 + 32, both full
        (30, 80, torch.float32),  # fp32: one chunk of 128
        (257, 32, torch.float32),
    ],
)
def test_spatial(S, D, dtype):
    _check_triton((1, 2, S, 2, D), "spatial", dtype)


# Temporal lengths: every packed slot width (1, 2, 4, 8, 16, 32 slots per sequence), lengths that leave slots empty
# (3, 5, 13, 17, 31) and the full ones. 3 x 3 = 9 sequences per batch element fill no tile evenly: PACK 2, 4, 8 and 16
# all end in a partly filled tile.
TEMPORAL_LENGTHS = [1, 2, 3, 5, 8, 13, 16, 17, 31, 32]
TEMPORAL_HEAD_DIM = {1: 32, 2: 80, 3: 64, 5: 40, 8: 64, 13: 80, 16: 64, 17: 80, 31: 32, 32: 64}


@pytest.mark.parametrize("T", TEMPORAL_LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_temporal(T, dtype):
    _check_triton((2, T, 3, 3, TEMPORAL_HEAD_DIM[T]), "temporal", dtype)


@pytest.mark.parametrize("T", TEMPORAL_LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_temporal_key_mask_per_length(T, dtype):
    """Clip 0 keeps every frame, clip 1 the first ceil(T / 2), clip 2 none (its rows and gradients are zeros)."""
    mask = torch.ones(3, T, dtype=torch.bool)
    mask[1, (T + 1) // 2 :] = False
    mask[2] = False
    out, grads = _check_triton((3, T, 3, 3, TEMPORAL_HEAD_DIM[T]), "temporal", dtype, key_mask=mask)
    assert (out[2] == 0).all()
    assert all((g[2] == 0).all() for g in grads)


class _AccessCounter:
    """Counts, per byte address, the elements the interpreter's loads and stores touch (masked-off lanes excluded)."""

    def __init__(self, monkeypatch):
        from triton.runtime import interpreter

        builder = interpreter.interpreter_builder
        self.loads, self.stores = [], []
        real_load, real_store = builder.create_masked_load, builder.create_masked_store

        def load(ptrs, mask, *args):
            self.loads.append(ptrs.data[np.broadcast_to(mask.data, ptrs.data.shape)].copy())
            return real_load(ptrs, mask, *args)

        def store(ptrs, value, mask, *args):
            self.stores.append(ptrs.data[np.broadcast_to(mask.data, ptrs.data.shape)].copy())
            return real_store(ptrs, value, mask, *args)

        monkeypatch.setattr(builder, "create_masked_load", load)
        monkeypatch.setattr(builder, "create_masked_store", store)

    @staticmethod
    def per_element(accesses, t: torch.Tensor) -> np.ndarray:
        """How often each element of contiguous `t` was accessed, in t's element order."""
        addresses = np.concatenate(accesses) if accesses else np.zeros(0, dtype=np.uint64)
        offsets = addresses.astype(np.int64) - t.data_ptr()
        inside = offsets[(offsets >= 0) & (offsets < t.numel() * t.element_size())]
        return np.bincount(inside // t.element_size(), minlength=t.numel())


@pytest.mark.parametrize("T, dtype", [(1, torch.float16), (3, torch.float32), (8, torch.bfloat16),
                                      (13, torch.float16), (32, torch.float32)])  # fmt: skip
def test_temporal_moves_each_element_once(monkeypatch, T, dtype):
    """The forward reads each element of q, k, v once and writes each output and log-sum-exp element once; the packed
    backward reads q, k, v, o, dO and the log-sum-exp once and writes dq, dk, dv once: one program owns each token
    however many sequences share its tile, and the head-dim padding (40 -> 64) is never touched. 9 sequences per
    batch element leave the last tile partly filled."""
    shape = (2, T, 3, 3, 40)
    q, k, v, do = (torch.randn(shape, dtype=dtype) for _ in range(4))
    counter = _AccessCounter(monkeypatch)
    out, lse = attn_mod.attention_fwd(q, k, v, None, "temporal", 0.3)
    for name, t in (("q", q), ("k", k), ("v", v)):
        counts = counter.per_element(counter.loads, t)
        assert (counts == 1).all(), f"forward reads {name} elements {sorted(set(counts.tolist()))} times"
    for name, t in (("out", out), ("lse", lse)):
        counts = counter.per_element(counter.stores, t)
        assert (counts == 1).all(), f"forward writes {name} elements {sorted(set(counts.tolist()))} times"
    counter.loads.clear()
    counter.stores.clear()
    dq, dk, dv = attn_mod.attention_bwd(do, q, k, v, out, lse, None, "temporal", 0.3)
    for name, t in (("q", q), ("k", k), ("v", v), ("out", out), ("dO", do), ("lse", lse)):
        counts = counter.per_element(counter.loads, t)
        assert (counts == 1).all(), f"backward reads {name} elements {sorted(set(counts.tolist()))} times"
    for name, t in (("dq", dq), ("dk", dk), ("dv", dv)):
        counts = counter.per_element(counter.stores, t)
        assert (counts == 1).all(), f"backward writes {name} elements {sorted(set(counts.tolist()))} times"


@pytest.mark.parametrize("cls", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_joint(cls, dtype):
    L = 2 * 9 + int(cls)  # T'=2 frames of 3x3 patches, plus a CLS token
    _check_triton((2, L, 3, 64), "joint", dtype)


def test_joint_long_multi_tile():
    """Several query and key tiles: the online-softmax loop and the tiled dq / dkdv backward."""
    _check_triton((1, 300, 1, 64), "joint", torch.float32)


# Lengths past the single-tile limit (128 tokens for 16-bit inputs) run 64-wide tiles then 16-wide tail tiles: on the
# query axis a second launch, on the key axis a tail loop (forward and dQ); dK/dV the other way round. The lengths hit
# one tail tile with 5 real rows (197: ViViT-B spatial with CLS), one real row (129, 193), two tail tiles (145 =
# 128 + 17) and an 8-row tail (200). Masks make tail keys or whole sequences empty.
def _tail_mask(kind, shape, axis):
    if kind is None:
        return None
    mask = torch.ones(shape[:2], dtype=torch.bool)
    if kind == "tail_keys":  # the tail keys masked (joint, L = shape[1]): the tail tiles see no real key
        mask[:, shape[1] // 64 * 64 :] = False
    elif kind == "random_and_empty":  # random keys; the last batch element has none (rows of zeros, lse +inf)
        mask = torch.rand(shape[:2]) > 0.3
        mask[-1] = False
    elif kind == "frame":  # spatial: the last frame of the last clip is masked, all its keys and rows
        mask[-1, -1] = False
    return mask


@pytest.mark.parametrize(
    "axis, shape, dtype, mask, layout",
    [
        ("spatial", (1, 1, 197, 2, 64), torch.float16, None, "contiguous"),
        ("spatial", (1, 1, 197, 1, 64), torch.bfloat16, None, "fused"),
        ("spatial", (1, 2, 197, 1, 40), torch.bfloat16, "frame", "contiguous"),
        ("joint", (2, 129, 1, 40), torch.float16, "random_and_empty", "contiguous"),
        ("joint", (1, 145, 2, 64), torch.bfloat16, None, "heads_first"),
        ("joint", (2, 145, 1, 40), torch.float16, "tail_keys", "fused"),
        ("spatial", (2, 1, 193, 1, 64), torch.float16, "frame", "half_heads"),
        ("joint", (2, 200, 1, 64), torch.bfloat16, "random_and_empty", "contiguous"),
        ("joint", (1, 200, 1, 40), torch.float16, "tail_keys", "heads_first"),
        # Two head-dim chunks (64 + 32) in every kernel, with tails, masks and strided views.
        ("joint", (1, 145, 1, 80), torch.float16, "tail_keys", "fused"),
        ("spatial", (1, 1, 197, 1, 96), torch.bfloat16, None, "heads_first"),
        ("joint", (2, 129, 1, 72), torch.float16, "random_and_empty", "half_heads"),
    ],
)
def test_tail_tiles(axis, shape, dtype, mask, layout):
    key_mask = _tail_mask(mask, shape, axis)
    out, grads = _check_triton(shape, axis, dtype, key_mask=key_mask, layout=layout)
    if mask in ("random_and_empty", "frame"):
        empty = ~key_mask.any(dim=1) if axis == "joint" else ~key_mask
        assert (out[empty] == 0).all()
        assert all((g[empty] == 0).all() for g in grads)


def test_tail_launches_cover_every_row():
    """Full tiles then tail tiles partition [0, L) for every length past the single-tile limit, and pad it to the next
    multiple of 16: 197 -> 3 x 64 + 16 = 208."""
    assert attn_mod._tile_runs(197, 64, 16) == [(0, 192, 64), (192, 197, 16)]
    assert attn_mod._tile_runs(145, 64, 16) == [(0, 128, 64), (128, 145, 16)]  # two 16-row tiles
    assert attn_mod._tile_runs(192, 64, 16) == [(0, 192, 64)]  # no tail
    assert attn_mod._tile_runs(197, 64, 64) == [(0, 197, 64)]  # fp32: no tail, the last tile padded
    for L in range(129, 700):
        for block in (32, 64):
            runs = attn_mod._tile_runs(L, block, 16)
            assert runs[0][0] == 0 and runs[-1][1] == L and all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
            assert attn_mod._padded(L, block, 16) == -(-L // 16) * 16, (L, block)


@pytest.fixture
def poisoned_buffers(monkeypatch):
    """Every buffer the launchers allocate starts NaN-filled; the list of them, to check each was written."""
    allocated = []

    def poisoned(shape, dtype, device):
        t = torch.full(shape, float("nan"), dtype=dtype, device=device)
        allocated.append(t)
        return t

    monkeypatch.setattr(attn_mod, "_empty", poisoned)
    return allocated


@pytest.mark.parametrize("length", [145, 197])
def test_tail_launches_write_every_element(poisoned_buffers, length):
    """NaN-filled buffers: the tail launches must write the last rows of out, lse, delta, dq, dk and dv."""
    allocated = poisoned_buffers
    _check_triton((1, length, 2, 40), "joint", torch.float16)
    assert len(allocated) == 6  # out, lse, dq, dk, dv, delta
    for t in allocated:
        assert not torch.isnan(t).any()


@pytest.mark.parametrize(
    "axis, shape, layout",
    [
        ("joint", (2, 19, 2, 32), "fused"),
        ("spatial", (1, 2, 49, 2, 64), "fused"),
        ("temporal", (1, 8, 5, 2, 64), "fused"),
        ("temporal", (1, 3, 3, 3, 32), "fused"),  # 4-slot sequences, 4 per 16-row tile, the last one partly filled
        ("temporal", (1, 13, 3, 3, 64), "fused"),
        ("temporal", (1, 31, 2, 3, 32), "fused"),
        ("spatial", (1, 2, 13, 3, 32), "heads_first"),
        ("temporal", (1, 16, 3, 3, 32), "heads_first"),
        ("spatial", (1, 2, 197, 2, 64), "half_heads"),
        ("temporal", (2, 5, 7, 2, 80), "half_heads"),
    ],
)
def test_strided_views(axis, shape, layout):
    _check_triton(shape, axis, torch.float32, layout=layout)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_temporal_key_mask_padding_frames(dtype):
    # Clip 0 is full length, clip 1 has 9 real frames of 17, clip 2 has none (a fully padded clip: defined zeros).
    mask = torch.ones(3, 17, dtype=torch.bool)
    mask[1, 9:] = False
    mask[2] = False
    out, grads = _check_triton((3, 17, 4, 2, 64), "temporal", dtype, key_mask=mask)
    assert (out[2] == 0).all()
    assert all((g[2] == 0).all() for g in grads)


def test_spatial_key_mask_masked_frame():
    mask = torch.tensor([[True, False, True], [False, False, True]])
    out, grads = _check_triton((2, 3, 49, 2, 32), "spatial", torch.float32, key_mask=mask)
    assert (out[~mask] == 0).all()
    assert all((g[~mask] == 0).all() for g in grads)


def test_joint_key_mask_random_and_empty():
    mask = torch.rand(3, 37) > 0.4
    mask[2] = False
    out, _ = _check_triton((3, 37, 2, 32), "joint", torch.float16, key_mask=mask)
    assert (out[2] == 0).all()


def test_joint_key_mask_long_with_empty_tile():
    # Keys 64..191 masked: a whole key tile is skipped inside the online-softmax loop.
    mask = torch.ones(1, 200, dtype=torch.bool)
    mask[0, 64:192] = False
    _check_triton((1, 200, 1, 32), "joint", torch.float32, key_mask=mask)


@pytest.mark.parametrize(
    "axis, shape, mask, dtype",
    [
        ("temporal", (2, 17, 3, 2, 80), [[True] * 17, [True] * 5 + [False] * 12], torch.float32),
        ("spatial", (1, 2, 197, 2, 64), [[True, False]], torch.float32),
        ("joint", (1, 150, 1, 32), None, torch.float32),
        # The second head-dim chunk (16-bit, 64 + 32 columns) of every output and gradient: dq + dkdv, one tile.
        ("joint", (1, 150, 1, 80), None, torch.float16),
        ("temporal", (2, 17, 3, 2, 80), [[True] * 17, [True] * 5 + [False] * 12], torch.float16),
        ("temporal", (1, 5, 3, 2, 96), None, torch.bfloat16),
    ],
)
def test_poisoned_buffers_every_element_written(poisoned_buffers, axis, shape, mask, dtype):
    """Launcher buffers start as NaN: every output, gradient and log-sum-exp element must be written."""
    allocated = poisoned_buffers
    key_mask = None if mask is None else torch.tensor(mask)
    _check_triton(shape, axis, dtype, key_mask=key_mask)
    assert len(allocated) >= 5  # out, lse, dq, dk, dv (+ delta on the tiled path)
    for t in allocated:
        assert not torch.isnan(t).any()


@pytest.mark.parametrize(
    "axis, shape",
    [
        ("temporal", (2, 16, 3, 2, 64)),  # one sequence per 16-row tile, single-tile backward
        ("temporal", (2, 5, 3, 3, 64)),  # 8-slot sequences, 2 per 16-row tile, block-diagonal
        ("temporal", (1, 17, 2, 2, 80)),  # 32-slot sequences, head dim 80 as 64 + 32
        ("spatial", (1, 2, 49, 2, 64)),  # one 64-key tile
        ("joint", (1, 150, 1, 32)),  # online softmax, dq + dkdv backward
    ],
)
def test_bf16_forward_and_backward(axis, shape):
    """bf16: the interpreter rounds P and dS through bf16 before its fp32 dots, as a GPU's bf16 MMA operands are, so
    the kernel's error is a GPU's; it must stay within FlashAttention's rule against eager bf16."""
    mask = None
    if axis == "temporal":
        mask = torch.ones(shape[:2], dtype=torch.bool)
        mask[-1, shape[1] // 2 :] = False
    _check_triton(shape, axis, torch.bfloat16, key_mask=mask)


def test_bf16_runs_with_upcast_dot():
    """bf16 under the interpreter takes the constexpr upcast for tl.dot; loads, stores and casts are exact."""
    q, k, v = (torch.randn(1, 8, 3, 2, 64, dtype=torch.bfloat16) for _ in range(3))
    out = attention(q, k, v, axis="temporal", backend="triton")
    ref = attention_reference(q.double(), k.double(), v.double(), axis="temporal")
    eager = attention(q, k, v, axis="temporal", backend="eager")
    assert out.dtype == torch.bfloat16
    err, err_torch = (out.double() - ref).abs().max().item(), (eager.double() - ref).abs().max().item()
    assert err <= 2 * err_torch + 4 * torch.finfo(torch.bfloat16).eps


def test_backward_deterministic():
    for shape, axis in (((1, 130, 2, 32), "joint"), ((2, 8, 3, 2, 32), "temporal")):
        leaves, make = _inputs(shape, torch.float32)
        grad = torch.randn(shape, dtype=torch.float64)
        first = _run(leaves, make, axis, None, grad, "triton")[1]
        second = _run(leaves, make, axis, None, grad, "triton")[1]
        for a, b in zip(first, second):
            assert torch.equal(a, b)


def test_custom_scale():
    q, k, v = (torch.randn(1, 2, 9, 2, 32) for _ in range(3))
    out = attention(q, k, v, axis="spatial", scale=0.3, backend="triton")
    ref = attention_reference(q.double(), k.double(), v.double(), axis="spatial", scale=0.3)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_dot_precision_follows_matmul_precision():
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert attn_mod._dot_precision(torch.float32) == "ieee"
        torch.set_float32_matmul_precision("high")
        assert attn_mod._dot_precision(torch.float32) == "tf32"
    finally:
        torch.set_float32_matmul_precision(previous)


def test_block_heuristics_bounded():
    """Tile configurations come from a handful of length buckets, not from every length."""
    fwd = {repr(attn_mod._fwd_config(L, 24, 64)) for L in range(1, 4000)}
    bwd = {repr(attn_mod._bwd_config(L, 24, 64)) for L in range(1, 4000)}
    assert len(fwd) <= 9 and len(bwd) <= 8  # six packed slot widths (1..32) in both, plus the longer buckets
    # The smallest tile tl.dot accepts (16 rows) holds 16 // next_pow2(T') sequences; T' = 17..32 take 32 rows.
    shapes = {T: attn_mod._fwd_config(T, 24, 64) for T in (1, 3, 8, 16, 17, 32)}
    got = {T: (c["SEQ_BLOCK"], c["PACK"], c["BLOCK_M"], c["BLOCK_N"]) for T, c in shapes.items()}
    assert got == {1: (1, 16, 16, 16), 3: (4, 4, 16, 16), 8: (8, 2, 16, 16), 16: (16, 1, 16, 16),
                   17: (32, 1, 32, 32), 32: (32, 1, 32, 32)}  # fmt: skip
    for itemsize in (2, 4):
        bwd8 = attn_mod._bwd_config(8, 24, 64, itemsize)
        assert (bwd8["SEQ_BLOCK"], bwd8["PACK"], bwd8["BLOCK"]) == (8, 2, 16)


# ----------------------------------------------------------------------------------------------------------------------
# Eager path
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", ["joint", "spatial", "temporal"])
def test_eager_matches_reference(axis):
    shape = (3, 23, 2, 16) if axis == "joint" else (3, 4, 7, 2, 16)
    mask = torch.rand(shape[:2]) > 0.4
    mask[1] = False
    for key_mask in (None, mask):
        q, k, v = (torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(3))
        out = attention(q, k, v, axis=axis, key_mask=key_mask)
        ref = attention_reference(q, k, v, axis=axis, key_mask=key_mask)
        torch.testing.assert_close(out, ref)
        grad = torch.randn_like(out)
        got = torch.autograd.grad(out, (q, k, v), grad)
        want = torch.autograd.grad(ref, (q, k, v), grad)
        for a, b in zip(got, want):
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a, b)


def test_eager_fused_views_no_nan_on_empty_rows():
    fused = torch.randn(2, 4, 5, 3, 2, 16, requires_grad=True)
    q, k, v = fused.unbind(3)
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    out = attention(q, k, v, axis="temporal", key_mask=mask)
    out.sum().backward()
    assert (out[1] == 0).all() and torch.isfinite(fused.grad).all()


# ----------------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["eager", "triton"])
def test_bad_inputs(backend):
    x4 = torch.randn(2, 5, 2, 8)
    x5 = torch.randn(2, 3, 5, 2, 8)
    with pytest.raises(ValueError, match="axis"):
        attention(x4, x4, x4, axis="frames", backend=backend)
    with pytest.raises(ValueError, match=r"q must be 5-D \(B, T, S, H, D\).*got shape \(2, 5, 2, 8\)"):
        attention(x4, x4, x4, axis="spatial", backend=backend)
    with pytest.raises(ValueError, match=r"q must be 4-D"):
        attention(x5, x5, x5, axis="joint", backend=backend)
    with pytest.raises(ValueError, match="same shape"):
        attention(x4, x4[:, :4], x4, backend=backend)
    with pytest.raises(ValueError, match=r"key_mask must have shape \(B, T\) = \(2, 3\).*got \(2, 5\)"):
        attention(x5, x5, x5, axis="temporal", key_mask=torch.ones(2, 5, dtype=torch.bool), backend=backend)
    with pytest.raises(TypeError, match="key_mask must be a bool tensor"):
        attention(x4, x4, x4, key_mask=torch.ones(2, 5), backend=backend)
    with pytest.raises(TypeError, match="share a dtype"):
        attention(x4, x4.double(), x4, backend=backend)
    with pytest.raises(ValueError, match="dropout_p"):
        attention(x4, x4, x4, dropout_p=1.5, backend=backend)
    with pytest.raises(ValueError, match="backend"):
        attention(x4, x4, x4, backend="cuda")


def test_triton_dropout_not_implemented():
    x = torch.randn(1, 4, 1, 16)
    assert triton_unsupported_reason(x, x, x, dropout_p=0.1) is not None
    with pytest.raises(NotImplementedError, match=r"^attention: .*dropout"):
        attention(x, x, x, dropout_p=0.1, backend="triton")
    assert triton_unsupported_reason(x, x, x) is None


# ----------------------------------------------------------------------------------------------------------------------
# Custom ops: opcheck and torch.compile
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", ["joint", "temporal"])
def test_opcheck(axis):
    shape = (2, 9, 2, 32) if axis == "joint" else (2, 5, 3, 2, 32)
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    mask = torch.ones(shape[:2], dtype=torch.bool)
    mask[1, -2:] = False
    torch.library.opcheck(torch.ops.vivit_kernels.attention_fwd.default, (q, k, v, mask, axis, 0.25))
    out, lse = attn_mod.attention_fwd(q.detach(), k.detach(), v.detach(), None, axis, 0.25)
    args = (torch.randn_like(out), q.detach(), k.detach(), v.detach(), out, lse, None, axis, 0.25)
    torch.library.opcheck(torch.ops.vivit_kernels.attention_bwd.default, args)


def test_torch_compile_aot_eager():
    torch._dynamo.reset()

    def block(x, w):
        qkv = (x @ w).unflatten(-1, (3, 2, 16))  # (B, T, S, 3, H, D)
        q, k, v = qkv.unbind(-3)
        return attention(q, k, v, axis="temporal", backend="triton").flatten(-2).sum()

    x = torch.randn(1, 6, 3, 24, requires_grad=True)
    w = torch.randn(24, 96, requires_grad=True)
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    got = compiled(x, w)
    (gx, gw) = torch.autograd.grad(got, (x, w))
    want = block(x, w)
    (wx, ww) = torch.autograd.grad(want, (x, w))
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(gx, wx)
    torch.testing.assert_close(gw, ww)


@pytest.mark.parametrize("axis", ["spatial", "temporal"])
def test_torch_compile_eager_path_fullgraph(axis):
    """The eager path traces without graph breaks on slices of a fused QKV output (S, H not mergeable)."""
    torch._dynamo.reset()

    def block(fused, mask):
        q, k, v = fused.unbind(3)
        return attention(q, k, v, axis=axis, key_mask=mask)

    fused = torch.randn(2, 4, 5, 3, 2, 16)
    mask = torch.tensor([[True, True, False, True], [False] * 4])
    got = torch.compile(block, backend="aot_eager", fullgraph=True)(fused, mask)
    torch.testing.assert_close(got, block(fused, mask))
