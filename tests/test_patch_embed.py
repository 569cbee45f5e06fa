"""patch_embed: eager and Triton (interpreter) paths against an fp64 nn.functional.conv3d reference."""

import pytest
import torch

from vivit_kernels.patch_embed import patch_embed, patch_embed_reference

# (B, F, C, H, W), (D, t, h, w): odd channels, remainders that drop, 1 / 17 / 196 tokens.
SHAPES = [
    ((1, 2, 3, 4, 4), (48, 2, 4, 4)),  # one token
    ((2, 3, 5, 9, 11), (48, 1, 4, 5)),  # T'=3, 2x2 grid: 12 tokens; H, W remainders dropped
    ((2, 35, 1, 4, 4), (200, 2, 4, 4)),  # 17 tokens over time, one odd frame dropped
    ((1, 5, 3, 30, 30), (192, 2, 2, 2)),  # 2 x 15 x 15 = 450 tokens, K = 24
]

LAYOUTS = ["none", "pos_n", "pos_s", "cls", "cls_pos", "frame_cls", "frame_cls_pos"]


def _make(shape, wshape, layout, dtype, *, bias=True):
    B, nF, C, H, W = shape
    D, t, h, w = wshape
    Tp, S = nF // t, (H // h) * (W // w)
    N = Tp * S
    x = torch.randn(shape, dtype=dtype)
    weight = torch.randn(D, C, t, h, w, dtype=dtype) / (C * t * h * w) ** 0.5
    b = torch.randn(D, dtype=dtype) if bias else None
    pos = {"pos_n": (N, D), "pos_s": (S, D), "cls_pos": (1 + N, D), "frame_cls_pos": (1 + S, D)}.get(layout)
    pos = None if pos is None else torch.randn(pos, dtype=dtype)
    cls = torch.randn(D, dtype=dtype) if layout.startswith(("cls", "frame_cls")) else None
    return x, weight, b, pos, cls, layout.startswith("frame_cls")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape,wshape", SHAPES)
def test_eager_matches_conv3d(shape, wshape, layout):
    x, weight, b, pos, cls, per_frame = _make(shape, wshape, layout, torch.float64)
    args = [t.requires_grad_() for t in (x, weight, b, pos, cls) if t is not None]
    out = patch_embed(x, weight, b, pos, cls, per_frame_cls=per_frame)
    ref = patch_embed_reference(x, weight, b, pos, cls, per_frame_cls=per_frame)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(out, args, grad)
    want = torch.autograd.grad(ref, args, grad)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_eager_strided_view():
    base = torch.randn(3, 3, 6, 9, 8, dtype=torch.float64)  # (B, C, F, H, W)
    x = base.permute(0, 2, 1, 3, 4)[1:]  # (2, 6, 3, 9, 8) view, not contiguous
    weight = torch.randn(48, 3, 2, 4, 4, dtype=torch.float64)
    out = patch_embed(x, weight)
    torch.testing.assert_close(out, patch_embed_reference(x.contiguous(), weight))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(pixel_values=torch.randn(2, 3, 8, 8)), r"pixel_values must be 5-D.*got \(2, 3, 8, 8\)"),
        (dict(weight=torch.randn(8, 3, 4, 4)), r"weight must be 5-D.*got \(8, 3, 4, 4\)"),
        (dict(weight=torch.randn(8, 4, 2, 4, 4)), r"3 channels.*weight expects 4"),
        (dict(pixel_values=torch.randn(1, 1, 3, 8, 8)), r"\(frames, height, width\) = \(1, 8, 8\)"),
        (dict(pos_embed=torch.randn(5, 8)), r"pos_embed must have shape.*\(8, 8\) or \(4, 8\).*got \(5, 8\)"),
        (dict(bias=torch.randn(7)), r"bias must have shape.*\(8,\).*got \(7,\)"),
        (dict(cls_token=torch.randn(8), pos_embed=torch.randn(8, 8)), r"pos_embed.*\(9, 8\).*got \(8, 8\)"),
        (dict(per_frame_cls=True), "per_frame_cls=True needs a cls_token"),
        (dict(backend="cuda"), "backend must be one of"),
        (dict(bias=torch.randn(8, dtype=torch.float64)), "bias has dtype torch.float64"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = dict(pixel_values=torch.randn(2, 4, 3, 8, 8), weight=torch.randn(8, 3, 2, 4, 4))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        patch_embed(**args)


# ----------------------------------------------------------------------------------------------------------------------
# Triton (interpreter) against the fp64 reference
# ----------------------------------------------------------------------------------------------------------------------

TRITON_CASES = [
    # (B, F, C, H, W), (D, t, h, w), layout
    ((1, 2, 3, 4, 4), (48, 2, 4, 4), "none"),  # 1 token
    ((1, 2, 3, 4, 4), (48, 2, 4, 4), "cls_pos"),  # 1 token + CLS
    ((2, 3, 5, 9, 11), (48, 1, 4, 5), "pos_s"),  # 12 tokens, H and W remainders dropped
    ((2, 35, 1, 4, 4), (200, 2, 4, 4), "pos_n"),  # 17 tokens, odd frame dropped, 1 channel
    ((2, 35, 1, 4, 4), (200, 2, 4, 4), "cls_pos"),  # 1 + 17 tokens
    ((1, 1, 3, 28, 29), (192, 1, 2, 2), "cls_pos"),  # 1 + 196 = 197 tokens, W remainder dropped
    ((2, 7, 3, 10, 10), (192, 2, 5, 5), "frame_cls_pos"),  # 3 frames x (1 + 4)
    ((2, 4, 5, 12, 8), (48, 2, 4, 4), "frame_cls"),
    ((3, 4, 3, 8, 8), (200, 2, 4, 4), "cls"),
    ((2, 2, 3, 64, 64), (48, 2, 4, 4), "pos_n"),  # 512 token rows: dW is split over rows (see _dw_splits)
]


def _scale(ref):
    return ref.abs().max().item() + 1e-6


def _check(got, ref, eager_low=None, dtype=torch.float32, what=""):
    """fp32: close to the fp64 reference. fp16/bf16: error at most 2x that of eager PyTorch in the same dtype, plus
    the dtype's rounding noise (FlashAttention's rule)."""
    err = (got.double() - ref).abs().max().item()
    if dtype == torch.float32:
        assert err <= 2e-5 * _scale(ref), f"{what}: max error {err} vs scale {_scale(ref)}"
    else:
        err_eager = (eager_low.double() - ref).abs().max().item()
        floor = torch.finfo(dtype).eps * _scale(ref)
        assert err <= 2 * err_eager + floor, f"{what}: max error {err}, eager {dtype} {err_eager}, floor {floor}"


def _run(inputs, per_frame, backend, grad, need_x_grad=True):
    # detach() keeps the strides of views (clone() would make the non-dense ones contiguous)
    leaves = [None if t is None else t.detach().requires_grad_(i > 0 or need_x_grad) for i, t in enumerate(inputs)]
    fn = patch_embed_reference if backend == "reference" else patch_embed
    kwargs = {} if backend == "reference" else dict(backend=backend)
    out = fn(*leaves, per_frame_cls=per_frame, **kwargs)
    wrt = [t for t in leaves if t is not None and t.requires_grad]
    return out, torch.autograd.grad(out, wrt, grad.to(out.dtype))


def _compare(inputs, per_frame, dtype, need_x_grad=True):
    low = [None if t is None else t.to(dtype) for t in inputs]
    ref_inputs = [None if t is None else t.double() for t in low]
    grad = torch.randn(patch_embed_reference(*ref_inputs, per_frame_cls=per_frame).shape, dtype=torch.float64)
    ref, ref_grads = _run(ref_inputs, per_frame, "reference", grad, need_x_grad)
    out, grads = _run(low, per_frame, "triton", grad, need_x_grad)
    eager, eager_grads = (None, [None] * len(grads))
    if dtype != torch.float32:
        eager, eager_grads = _run(low, per_frame, "eager", grad, need_x_grad)
    assert out.dtype == dtype and out.shape == ref.shape
    _check(out, ref, eager, dtype, "output")
    names = [n for n, t in zip(("pixel_values", "weight", "bias", "pos_embed", "cls_token"), inputs) if t is not None]
    names = names if need_x_grad else names[1:]
    for name, g, r, e in zip(names, grads, ref_grads, eager_grads):
        assert g.dtype == dtype and g.shape == r.shape, name
        _check(g, r, e, dtype, f"grad of {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape,wshape,layout", TRITON_CASES)
def test_triton_matches_reference(shape, wshape, layout, dtype):
    x, weight, b, pos, cls, per_frame = _make(shape, wshape, layout, torch.float32)
    _compare([x, weight, b, pos, cls], per_frame, dtype)


def test_triton_bf16_runs_through_fp32_dot():
    # The interpreter's bf16 dot is broken; the kernels upcast there (DOT_F32), so this checks loads, stores, casts.
    x, weight, b, pos, cls, per_frame = _make((2, 4, 3, 8, 12), (48, 2, 4, 4), "cls_pos", torch.float32)
    _compare([x, weight, b, pos, cls], per_frame, torch.bfloat16)


def test_triton_strided_views_and_no_input_grad():
    # (B, C, F, H, W) storage permuted to (B, F, C, H, W), a sliced batch, a transposed weight, strided pos/cls.
    video = torch.randn(3, 3, 5, 9, 10).permute(0, 2, 1, 3, 4)[1:]
    assert not video.is_contiguous()
    weight = torch.randn(4, 4, 2, 3, 48).permute(4, 3, 2, 0, 1) / 7  # (48, 3, 2, 4, 4), not contiguous
    b = torch.randn(96)[::2]
    pos = torch.randn(1 + 2 * 2 * 2, 2, 48)[:, 1]  # 1 + T' * S rows with T' = 2, S = 2 * 2
    cls = torch.randn(48, 3)[:, 0]
    assert not any(t.is_contiguous() for t in (weight, b, pos, cls))
    _compare([video, weight, b, pos, cls], False, torch.float32)
    _compare([video, weight, b, pos, cls], False, torch.float32, need_x_grad=False)


def test_triton_strided_upstream_gradient():
    x, weight, b, pos, cls, _ = _make((2, 4, 3, 8, 8), (48, 2, 4, 4), "frame_cls_pos", torch.float32)
    out = patch_embed(x, weight, b, pos, cls, per_frame_cls=True, backend="triton")
    grad = torch.randn(48, 1, 2, 5).expand(48, 2, 2, 5).permute(1, 2, 3, 0)  # zero and permuted strides
    leaves = [t.requires_grad_() for t in (x, weight, b, pos, cls)]
    got = torch.autograd.grad(patch_embed(*leaves, per_frame_cls=True, backend="triton"), leaves, grad)
    want = torch.autograd.grad(patch_embed_reference(*leaves, per_frame_cls=True), leaves, grad)
    assert out.shape == grad.shape
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_triton_poisoned_buffers(monkeypatch):
    # Every buffer a kernel is meant to overwrite starts as NaN: an element left unwritten shows up in the result.
    import vivit_kernels.patch_embed as pe

    real = pe._new_empty
    monkeypatch.setattr(pe, "_new_empty", lambda *a, **k: real(*a, **k).fill_(float("nan")))
    for shape, wshape, layout in TRITON_CASES[2:5] + TRITON_CASES[6:8]:
        x, weight, b, pos, cls, per_frame = _make(shape, wshape, layout, torch.float32)
        _compare([x, weight, b, pos, cls], per_frame, torch.float32)


def test_triton_remainder_pixels_get_zero_grad():
    x = torch.randn(1, 5, 3, 9, 11, requires_grad=True)
    weight = torch.randn(48, 3, 2, 4, 4)
    out = patch_embed(x, weight, backend="triton")
    (dx,) = torch.autograd.grad(out, x, torch.randn_like(out))
    assert dx[:, 4:].abs().sum() == 0 and dx[..., 8:, :].abs().sum() == 0 and dx[..., 8:].abs().sum() == 0
    assert dx[:, :4, :, :8, :8].abs().min() > 0


def test_triton_backward_is_deterministic():
    import vivit_kernels.patch_embed as pe

    x, weight, b, pos, cls, _ = _make((2, 2, 3, 64, 64), (48, 2, 4, 4), "cls_pos", torch.float32)
    assert pe._dw_splits(512, 1, 64, x.device) > 1  # the split-and-sum dW path is the one under test
    leaves = [t.requires_grad_() for t in (x, weight, b, pos, cls)]
    out = patch_embed(*leaves, backend="triton")
    grad = torch.randn_like(out)
    first = torch.autograd.grad(out, leaves, grad, retain_graph=True)
    second = torch.autograd.grad(out, leaves, grad)
    for a, c in zip(first, second):
        assert torch.equal(a, c)


def test_triton_unsupported_dtype_raises():
    x = torch.randn(1, 2, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(NotImplementedError, match="patch_embed: dtype torch.float64 is not supported"):
        patch_embed(x, torch.randn(8, 3, 2, 4, 4, dtype=torch.float64), backend="triton")


def test_opcheck():
    from vivit_kernels.patch_embed import _patch_embed_bwd_op, _patch_embed_fwd_op

    x, weight, b, pos, cls, _ = _make((2, 5, 3, 9, 8), (48, 2, 4, 4), "cls_pos", torch.float32)
    torch.library.opcheck(_patch_embed_fwd_op, (x, weight, b, pos, cls, False))
    torch.library.opcheck(_patch_embed_fwd_op, (x, weight, None, None, None, False))
    grad = torch.randn(2, 1 + 2 * 2 * 2, 48)
    torch.library.opcheck(_patch_embed_bwd_op, (grad, x, weight, True, False, False, True))
    grad = torch.randn(2, 2, 1 + 4, 48)
    torch.library.opcheck(_patch_embed_bwd_op, (grad, x, weight, True, True, False, False))


def test_torch_compile_aot_eager():
    x, weight, b, pos, cls, _ = _make((2, 4, 3, 8, 8), (48, 2, 4, 4), "pos_s", torch.float32)

    def embed(x, weight, b, pos):
        return patch_embed(x, weight, b, pos, backend="triton").square().sum()

    leaves = [t.requires_grad_() for t in (x, weight, b, pos)]
    compiled = torch.compile(embed, backend="aot_eager", fullgraph=True)
    got = torch.autograd.grad(compiled(*leaves), leaves)
    want = torch.autograd.grad(patch_embed_reference(*leaves).square().sum(), leaves)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-4)


def test_fp32_dot_precision_follows_torch_setting():
    # The interpreter computes fp32 dots exactly either way, so the choice itself is what can be checked here.
    from vivit_kernels.patch_embed import _dot_args

    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert _dot_args(torch.float32)["PRECISION"] == "ieee"
        torch.set_float32_matmul_precision("high")
        assert _dot_args(torch.float32)["PRECISION"] == "tf32"
        assert _dot_args(torch.float16)["PRECISION"] == "ieee"
    finally:
        torch.set_float32_matmul_precision(before)


def test_torch_compile_dynamic_shapes():
    def embed(x, weight, b, pos, cls):
        return patch_embed(x, weight, b, pos, cls, per_frame_cls=True, backend="triton").square().sum()

    compiled = torch.compile(embed, backend="aot_eager", dynamic=True, fullgraph=True)
    for batch in (2, 3):
        x, weight, b, pos, cls, _ = _make((batch, 4, 3, 8, 12), (48, 2, 4, 4), "frame_cls_pos", torch.float32)
        leaves = [t.requires_grad_() for t in (x, weight, b, pos, cls)]
        got = torch.autograd.grad(compiled(*leaves), leaves)
        want = torch.autograd.grad(patch_embed_reference(*leaves, per_frame_cls=True).square().sum(), leaves)
        for g, r in zip(got, want):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-4)
