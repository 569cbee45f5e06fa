"""GPU correctness of every Triton kernel, run first by bench/run_gpu.sh (a benchmark of a wrong kernel is worthless).

On a CUDA GPU, each op's Triton path is compared with its `<op>_reference` in fp64, forward and every gradient, at
ViViT shapes and odd ones, in fp32, fp16 and bf16. Rule (FlashAttention's): the kernel's max error is at most twice
that of the eager PyTorch path run in the same dtype, plus a small floor of the dtype's rounding noise. Without a GPU
these checks skip (the interpreter suite in tests/ covers the CPU).
"""

from __future__ import annotations

import _harness as H
import pytest
import torch

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}  # relative to max |reference|


@pytest.fixture(autouse=True)
def _gpu_only():
    if not H.on_gpu():
        pytest.skip("no CUDA GPU: Triton kernels are checked on the CPU by the interpreter suite in tests/")


def _grads(fn, inputs, needs_grad, upstream):
    leaves = [x.detach().clone().requires_grad_(g) for x, g in zip(inputs, needs_grad)]
    out = fn(*leaves)
    wrt = [x for x in leaves if x.requires_grad]
    grads = torch.autograd.grad(out, wrt, upstream.to(out.dtype)) if wrt else ()
    return [out, *grads]


def check(name, triton_fn, eager_fn, reference_fn, inputs, needs_grad, dtype):
    """Compare the Triton op with the fp64 reference, bounded by the eager op's own error in `dtype`."""
    ref_in = [x.double() if x.is_floating_point() else x for x in inputs]
    low_in = [x.to(dtype) if x.is_floating_point() else x for x in inputs]
    ref_out = reference_fn(*ref_in)
    upstream = torch.randn_like(ref_out)
    ref = _grads(reference_fn, ref_in, needs_grad, upstream)
    ours = _grads(triton_fn, low_in, needs_grad, upstream)
    eager = _grads(eager_fn, low_in, needs_grad, upstream)
    labels = ["out"] + [f"grad[{i}]" for i, g in enumerate(needs_grad) if g]
    for label, r, o, e in zip(labels, ref, ours, eager):
        assert o.shape == r.shape, f"{name} {label}: shape {tuple(o.shape)} != {tuple(r.shape)}"
        assert torch.isfinite(o).all(), f"{name} {label}: non-finite values"
        err_ours = (o.double() - r).abs().max().item()
        err_eager = (e.double() - r).abs().max().item()
        bound = 2 * err_eager + FLOOR[dtype] * r.abs().max().item()
        assert err_ours <= bound, (
            f"{name} {dtype} {label}: max error {err_ours:.3g} > {bound:.3g} (eager {err_eager:.3g})"
        )


ATTENTION_CASES = [
    # (axis, leading shape, heads, head_dim, masked frames)
    ("joint", (2, 197), 12, 64, False),
    ("joint", (1, 3137), 12, 64, False),
    ("spatial", (2, 4, 197), 12, 64, True),
    ("spatial", (2, 3, 49), 4, 80, False),
    ("temporal", (2, 16, 50), 12, 64, True),
    ("temporal", (3, 17, 7), 4, 32, False),
    ("temporal", (2, 1, 5), 2, 64, False),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", ATTENTION_CASES, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[1]))}-h{c[2]}d{c[3]}")
def test_attention(case, dtype):
    from vivit_kernels.attention import attention, attention_reference

    axis, lead, heads, dim, masked = case
    qkv = torch.randn(*lead, 3, heads, dim, device="cuda")
    q, k, v = qkv.unbind(-3)  # strided views, as out of the fused QKV projection
    mask = None
    if masked:  # the last frame of the second clip is padding
        mask = torch.ones(lead[0], lead[1], dtype=torch.bool, device="cuda")
        mask[-1, -1] = False
    kw = dict(axis=axis, key_mask=mask)
    check(
        f"attention {case}",
        lambda q, k, v: attention(q, k, v, backend="triton", **kw),
        lambda q, k, v: attention(q, k, v, backend="eager", **kw),
        lambda q, k, v: attention_reference(q, k, v, **kw),
        [q, k, v],
        [True] * 3,
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["tokens", "cls", "per_frame_cls"])
def test_patch_embed(layout, dtype):
    from vivit_kernels.patch_embed import patch_embed, patch_embed_reference

    B, nF, C, Hh, Ww, D = 2, 9, 3, 64, 48, 200  # odd frame count: the last frame is dropped as by Conv3d
    Tp, S = nF // 2, (Hh // 16) * (Ww // 16)
    video = torch.randn(B, nF, C, Hh, Ww, device="cuda")
    weight = 0.05 * torch.randn(D, C, 2, 16, 16, device="cuda")
    bias = torch.randn(D, device="cuda")
    cls = torch.randn(D, device="cuda") if layout != "tokens" else None
    rows = {"tokens": Tp * S, "cls": 1 + Tp * S, "per_frame_cls": 1 + S}[layout]
    pos = torch.randn(rows, D, device="cuda")
    kw = dict(per_frame_cls=layout == "per_frame_cls")
    inputs = [video, weight, bias, pos] + ([cls] if cls is not None else [])
    check(
        f"patch_embed {layout}",
        lambda *a: patch_embed(*a, backend="triton", **kw),
        lambda *a: patch_embed(*a, backend="eager", **kw),
        lambda *a: patch_embed_reference(*a, **kw),
        inputs,
        [True] * len(inputs),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", ["gelu_tanh", "gelu"])
@pytest.mark.parametrize("shape", [(2, 197, 768, 3072), (3, 17, 200, 800)], ids=lambda s: "x".join(map(str, s)))
def test_ln_mlp(shape, activation, dtype):
    from vivit_kernels.ln_mlp import ln_mlp, ln_mlp_reference

    B, L, D, I = shape
    x = torch.randn(B, L, D, device="cuda")
    params = [
        1 + 0.1 * torch.randn(D, device="cuda"),
        0.1 * torch.randn(D, device="cuda"),
        0.02 * torch.randn(I, D, device="cuda"),
        0.1 * torch.randn(I, device="cuda"),
        0.02 * torch.randn(D, I, device="cuda"),
        0.1 * torch.randn(D, device="cuda"),
    ]
    kw = dict(eps=1e-6, activation=activation)
    check(
        f"ln_mlp {shape}",
        lambda *a: ln_mlp(*a, backend="triton", **kw),
        lambda *a: ln_mlp(*a, backend="eager", **kw),
        lambda *a: ln_mlp_reference(*a, **kw),
        [x, *params],
        [True] * 7,
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(2, 197, 768), (3, 17, 200)], ids=lambda s: "x".join(map(str, s)))
def test_ln_linear(shape, dtype):
    from vivit_kernels.ln_mlp import ln_linear, ln_linear_reference

    B, L, D = shape
    x = torch.randn(B, L, D, device="cuda")
    params = [
        1 + 0.1 * torch.randn(D, device="cuda"),
        0.1 * torch.randn(D, device="cuda"),
        0.02 * torch.randn(3 * D, D, device="cuda"),
        0.1 * torch.randn(3 * D, device="cuda"),
    ]
    check(
        f"ln_linear {shape}",
        lambda *a: ln_linear(*a, eps=1e-6, backend="triton"),
        lambda *a: ln_linear(*a, eps=1e-6, backend="eager"),
        lambda *a: ln_linear_reference(*a, eps=1e-6),
        [x, *params],
        [True] * 5,
        dtype,
    )
