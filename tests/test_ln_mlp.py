"""Fused LayerNorm-MLP and LayerNorm-Linear: the Triton kernels (run by the interpreter) against fp64 references.

Error rule (FlashAttention's): the kernel's relative error against the fp64 reference is at most twice that of eager
PyTorch run in the same dtype, plus a small floor of the dtype's rounding noise.
"""

import pytest
import torch
import torch.nn.functional as F

from vivit_kernels import gemm
from vivit_kernels import ln_mlp as mod
from vivit_kernels.ln_mlp import dropout_keep_mask, ln_linear, ln_linear_reference, ln_mlp, ln_mlp_reference

EPS = 1e-5
FLOOR = {torch.float32: 2e-6, torch.float16: 5e-4, torch.bfloat16: 4e-3}


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def _mlp_params(D, I, dtype, bias_scale=0.1):
    def p(*shape, scale, offset=0.0):
        return (offset + scale * torch.randn(*shape, dtype=torch.float64)).to(dtype).requires_grad_()

    return dict(
        ln_weight=p(D, scale=0.2, offset=1.0),
        ln_bias=p(D, scale=0.2),
        fc1_weight=p(I, D, scale=D**-0.5),
        fc1_bias=p(I, scale=bias_scale),
        fc2_weight=p(D, I, scale=I**-0.5),
        fc2_bias=p(D, scale=0.1),
    )


def _grads(out, inputs, grad):
    return torch.autograd.grad(out, inputs, grad)


def _check(name, got, eager, ref, dtype):
    err, base = _rel(got, ref), _rel(eager, ref)
    assert err <= 2 * base + FLOOR[dtype], f"{name}: kernel error {err:.3e} > 2 x eager error {base:.3e} + floor"


MLP_CASES = [
    # (batch, tokens, hidden D, intermediate I, activation, dtype, drop-path scale)
    (1, 1, 48, 192, "gelu_tanh", torch.float32, False),
    (2, 17, 80, 200, "gelu", torch.float32, True),  # MLP ratio 2.5
    (1, 197, 200, 800, "gelu_tanh", torch.float32, False),
    (2, 17, 192, 768, "gelu", torch.float16, True),
    (1, 197, 48, 192, "gelu_tanh", torch.float16, False),
    (1, 1, 200, 520, "gelu", torch.float16, False),  # MLP ratio 2.6
    (2, 17, 48, 96, "gelu_tanh", torch.bfloat16, True),  # bf16 operands rounded, then an fp32 dot (interpreter)
    (1, 197, 80, 200, "gelu", torch.bfloat16, False),
]


@pytest.mark.parametrize("B, L, D, I, activation, dtype, with_scale", MLP_CASES)
def test_ln_mlp_forward_and_every_gradient_match_fp64(B, L, D, I, activation, dtype, with_scale):
    torch.set_float32_matmul_precision("highest")
    x = torch.randn(B, L, D, dtype=torch.float64).to(dtype).requires_grad_()
    params = _mlp_params(D, I, dtype)
    scale = torch.tensor([0.0, 1.6][:B] if B == 2 else [1.25], dtype=dtype) if with_scale else None
    kw = dict(eps=EPS, activation=activation, drop_path_scale=scale)
    inputs = (x, *params.values())

    out = ln_mlp(x, **params, **kw, backend="triton")
    eager = ln_mlp(x, **params, **kw, backend="eager")
    ref = ln_mlp_reference(x, **params, **kw)
    assert out.shape == x.shape and out.dtype == dtype
    _check("out", out, eager, ref, dtype)

    grad = torch.randn(B, L, D, dtype=torch.float64)
    names = ("x", *params)
    got = _grads(out, inputs, grad.to(dtype))
    base = _grads(eager, inputs, grad.to(dtype))
    want = _grads(ref, inputs, grad)
    for name, g, e, r in zip(names, got, base, want):
        assert g.dtype == dtype and g.shape == r.shape, name
        _check(f"d{name}", g, e, r, dtype)


LINEAR_CASES = [
    # (batch, tokens, D, N, bias, dtype)
    (1, 1, 48, 144, True, torch.float32),
    (2, 17, 80, 240, False, torch.float32),
    (1, 197, 200, 600, True, torch.float32),
    (2, 17, 192, 576, True, torch.float16),
    (1, 197, 48, 144, False, torch.float16),
    (2, 17, 80, 240, True, torch.bfloat16),  # LN(x) rounded to bf16 before the dot, as on a GPU
    (1, 1, 48, 144, False, torch.bfloat16),
]


@pytest.mark.parametrize("B, L, D, N, with_bias, dtype", LINEAR_CASES)
def test_ln_linear_forward_and_every_gradient_match_fp64(B, L, D, N, with_bias, dtype):
    torch.set_float32_matmul_precision("highest")
    x = torch.randn(B, L, D, dtype=torch.float64).to(dtype).requires_grad_()
    p = _mlp_params(D, N, dtype)
    ln_weight, ln_bias, weight = p["ln_weight"], p["ln_bias"], p["fc1_weight"]
    bias = p["fc1_bias"] if with_bias else None
    inputs = [x, ln_weight, ln_bias, weight] + ([bias] if with_bias else [])

    out = ln_linear(x, ln_weight, ln_bias, weight, bias, eps=EPS, backend="triton")
    eager = ln_linear(x, ln_weight, ln_bias, weight, bias, eps=EPS, backend="eager")
    ref = ln_linear_reference(x, ln_weight, ln_bias, weight, bias, eps=EPS)
    assert out.shape == (B, L, N) and out.dtype == dtype
    _check("out", out, eager, ref, dtype)

    grad = torch.randn(B, L, N, dtype=torch.float64)
    got = _grads(out, inputs, grad.to(dtype))
    base = _grads(eager, inputs, grad.to(dtype))
    want = _grads(ref, inputs, grad)
    for name, g, e, r in zip(("x", "ln_weight", "ln_bias", "weight", "bias"), got, base, want):
        _check(f"d{name}", g, e, r, dtype)


def test_parameter_vectors_in_another_float_dtype():
    """LayerNorm affine, biases and the drop-path scale may be stored in another float dtype than x and the weights;
    their gradients come back in their own dtype."""
    B, L, D, I = 2, 17, 48, 96
    x = torch.randn(B, L, D, requires_grad=True)
    p = _mlp_params(D, I, torch.float32)
    for name in ("ln_bias", "fc1_bias", "fc2_bias"):
        p[name] = p[name].detach().half().requires_grad_()
    scale = torch.tensor([0.5, 1.5], dtype=torch.bfloat16)
    out = ln_mlp(x, **p, eps=EPS, drop_path_scale=scale, backend="triton")
    ref = ln_mlp_reference(x, **p, eps=EPS, drop_path_scale=scale)
    assert _rel(out, ref) < 1e-5
    grad = torch.randn(B, L, D, dtype=torch.float64)
    inputs = (x, *p.values())
    for t, g, r in zip(inputs, _grads(out, inputs, grad.float()), _grads(ref, inputs, grad)):
        assert g.dtype == t.dtype and _rel(g, r) < 1e-3
    w, b = p["fc1_weight"], p["fc1_bias"]
    out = ln_linear(x, p["ln_weight"], p["ln_bias"], w, b, eps=EPS, backend="triton")
    (db,) = _grads(out, (b,), torch.randn_like(out))
    assert db.dtype == torch.float16


def test_strided_views_of_inputs_and_weights():
    D, I = 48, 120
    # x: every other column of a wider buffer (a view with column stride 2) and a transposed (B, D, L) buffer.
    x_cols = torch.randn(40, 2 * D)[3:20, ::2]
    x_t = torch.randn(2, D, 17).transpose(1, 2)
    assert x_cols.stride(-1) == 2 and x_t.stride(-1) == 17
    p = _mlp_params(D, I, torch.float32)
    # Weights stored transposed (column-major).
    fc1_t = p["fc1_weight"].detach().t().contiguous().t().requires_grad_()
    fc2_t = p["fc2_weight"].detach().t().contiguous().t().requires_grad_()
    assert not fc1_t.is_contiguous() and not fc2_t.is_contiguous()
    params = dict(p, fc1_weight=fc1_t, fc2_weight=fc2_t)
    for x in (x_cols, x_t):
        x = x.requires_grad_()
        inputs = (x, *params.values())
        out = ln_mlp(x, **params, eps=EPS, backend="triton")
        ref = ln_mlp_reference(x, **params, eps=EPS)
        assert _rel(out, ref) < 1e-5
        grad = torch.randn(out.shape, dtype=torch.float64)
        for g, r in zip(_grads(out, inputs, grad.float()), _grads(ref, inputs, grad)):
            assert _rel(g, r) < 1e-5
        out = ln_linear(x, params["ln_weight"], params["ln_bias"], fc1_t, params["fc1_bias"], eps=EPS, backend="triton")
        ref = ln_linear_reference(x, params["ln_weight"], params["ln_bias"], fc1_t, params["fc1_bias"], eps=EPS)
        assert _rel(out, ref) < 1e-5


def test_dropout_is_seeded_regenerated_in_backward_and_matches_the_masked_reference():
    B, L, D, I, p = 2, 17, 48, 192, 0.3
    x = torch.randn(B, L, D, requires_grad=True)
    params = _mlp_params(D, I, torch.float32)
    scale = torch.tensor([0.5, 2.0])
    kw = dict(eps=EPS, dropout_p=p, training=True, drop_path_scale=scale, backend="triton")
    inputs = (x, *params.values())

    out = ln_mlp(x, **params, **kw, dropout_seed=1234)
    again = ln_mlp(x, **params, **kw, dropout_seed=1234)
    other = ln_mlp(x, **params, **kw, dropout_seed=99)
    assert torch.equal(out, again)
    assert not torch.equal(out, other)

    hidden_keep = dropout_keep_mask(1234, (B * L, I), p).view(B, L, I)
    output_keep = dropout_keep_mask(1235, (B * L, D), p).view(B, L, D)
    for keep in (hidden_keep, output_keep):
        assert abs(keep.float().mean().item() - (1 - p)) < 0.05  # kept fraction, ~2000 and ~800 draws
    assert not torch.equal(hidden_keep[0, :, :D], output_keep[0])

    ref = ln_mlp_reference(x, **params, eps=EPS, hidden_keep=hidden_keep, output_keep=output_keep, dropout_p=p,
                           drop_path_scale=scale)  # fmt: skip
    assert _rel(out, ref) < 1e-5
    grad = torch.randn(B, L, D, dtype=torch.float64)
    got = _grads(out, inputs, grad.float())
    want = _grads(ref, inputs, grad)
    for name, g, r in zip(("x", *params), got, want):
        assert _rel(g, r) < 1e-5, name
    # The same seed drawn from torch's generator gives the same mask.
    torch.manual_seed(7)
    a = ln_mlp(x, **params, **kw)
    torch.manual_seed(7)
    assert torch.equal(a, ln_mlp(x, **params, **kw))


def test_backward_is_deterministic():
    """dgamma/dbeta and the weight gradients come from fixed-order partial sums (no atomics): bitwise repeatable."""
    B, L, D, I = 1, 197, 48, 96
    x = torch.randn(B, L, D, requires_grad=True)
    params = _mlp_params(D, I, torch.float16)
    x16 = x.half()
    grad = torch.randn(B, L, D, dtype=torch.float16)
    runs = [_grads(ln_mlp(x16, **params, eps=EPS, backend="triton"), (x, *params.values()), grad) for _ in range(2)]
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_dropout_off_in_eval_and_p_one_drops_everything():
    D, I = 48, 96
    x = torch.randn(1, 5, D)
    params = {k: v.detach() for k, v in _mlp_params(D, I, torch.float32).items()}
    ref = ln_mlp_reference(x, **params, eps=EPS)
    out = ln_mlp(x, **params, eps=EPS, dropout_p=0.5, training=False, backend="triton")
    assert _rel(out, ref) < 1e-5
    out = ln_mlp(x, **params, eps=EPS, dropout_p=1.0, training=True, backend="triton")
    assert torch.equal(out, x)


def test_extreme_pre_activations_stay_finite():
    D, I = 48, 96
    x = torch.randn(1, 9, D, requires_grad=True)
    params = _mlp_params(D, I, torch.float32, bias_scale=60.0)
    for activation in ("gelu_tanh", "gelu"):
        out = ln_mlp(x, **params, eps=EPS, activation=activation, backend="triton")
        ref = ln_mlp_reference(x, **params, eps=EPS, activation=activation)
        assert torch.isfinite(out).all() and _rel(out, ref) < 1e-5
        (gx,) = torch.autograd.grad(out, x, torch.ones_like(out))
        (rx,) = torch.autograd.grad(ref, x, torch.ones_like(ref, dtype=torch.float64))
        assert torch.isfinite(gx).all() and _rel(gx, rx) < 1e-5


def test_every_output_element_is_written(monkeypatch):
    """Every buffer the op allocates starts as NaN: an element a kernel forgot to write would show."""
    empty = torch.empty

    def poisoned(*args, **kwargs):
        t = empty(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", poisoned)
    B, L, D, I = 2, 17, 80, 200
    x = torch.randn(B, L, D, requires_grad=True)
    params = _mlp_params(D, I, torch.float32)
    inputs = (x, *params.values())
    out = ln_mlp(x, **params, eps=EPS, drop_path_scale=torch.tensor([1.0, 0.5]), backend="triton")
    grads = _grads(out, inputs, torch.randn_like(out))
    assert all(torch.isfinite(t).all() for t in (out, *grads))
    out = ln_linear(x, params["ln_weight"], params["ln_bias"], params["fc1_weight"], None, eps=EPS, backend="triton")
    grads = _grads(out, (x, params["ln_weight"], params["fc1_weight"]), torch.randn_like(out))
    assert all(torch.isfinite(t).all() for t in (out, *grads))


def test_fp32_dot_precision_follows_torch_matmul_precision():
    try:
        torch.set_float32_matmul_precision("high")
        assert gemm.dot_flags(torch.float32)["PRECISION"] == "tf32"
        torch.set_float32_matmul_precision("highest")
        assert gemm.dot_flags(torch.float32)["PRECISION"] == "ieee"
    finally:
        torch.set_float32_matmul_precision("highest")


def test_eager_backend_is_the_plain_pytorch_block():
    B, L, D, I = 2, 5, 48, 96
    x = torch.randn(B, L, D)
    p = {k: v.detach() for k, v in _mlp_params(D, I, torch.float32).items()}
    s = torch.tensor([0.0, 2.0])
    h = F.gelu(F.linear(F.layer_norm(x, (D,), p["ln_weight"], p["ln_bias"], EPS), p["fc1_weight"], p["fc1_bias"]))
    want = x + s[:, None, None] * F.linear(h, p["fc2_weight"], p["fc2_bias"])
    got = ln_mlp(x, **p, eps=EPS, activation="gelu", drop_path_scale=s)
    torch.testing.assert_close(got, want)


def _bad(**overrides):
    D, I = 8, 16
    args = dict(x=torch.randn(2, 3, D), **{k: v.detach() for k, v in _mlp_params(D, I, torch.float32).items()})
    kw = dict(eps=EPS, backend="triton")
    for k, v in overrides.items():
        (args if k in args else kw)[k] = v
    return args, kw


@pytest.mark.parametrize(
    "override, error, words",
    [
        (dict(ln_weight=torch.ones(9)), ValueError, ["ln_weight", "(8,)", "(9,)"]),
        (dict(fc1_weight=torch.ones(16, 9)), ValueError, ["fc1_weight", "8", "(16, 9)"]),
        (dict(fc1_bias=torch.ones(15)), ValueError, ["fc1_bias", "(16,)", "(15,)"]),
        (dict(fc2_weight=torch.ones(16, 8)), ValueError, ["fc2_weight", "(8, 16)", "(16, 8)"]),
        (dict(fc2_bias=torch.ones(7)), ValueError, ["fc2_bias", "(8,)", "(7,)"]),
        (dict(activation="relu"), ValueError, ["activation", "gelu_tanh", "relu"]),
        (dict(dropout_p=1.5), ValueError, ["dropout_p", "[0, 1]", "1.5"]),
        (dict(drop_path_scale=torch.ones(3)), ValueError, ["drop_path_scale", "(2,)", "(3,)"]),
        (dict(x=torch.randn(6, 8), drop_path_scale=torch.ones(6)), ValueError, ["drop_path_scale", "(B, L, D)"]),
        (dict(backend="cuda"), ValueError, ["backend", "eager", "cuda"]),
        (dict(eps=0.0), ValueError, ["eps", "> 0", "0.0"]),
        (dict(x=torch.randn(2, 3, 8, dtype=torch.float64)), NotImplementedError, ["ln_mlp", "float64"]),
        (dict(fc2_weight=torch.ones(8, 16, dtype=torch.float16)), NotImplementedError, ["ln_mlp", "float16"]),
        (dict(drop_path_scale=torch.ones(2, dtype=torch.int64)), NotImplementedError, ["ln_mlp", "int64"]),
    ],
)
def test_ln_mlp_bad_inputs_name_argument_expected_and_received(override, error, words):
    args, kw = _bad(**override)
    with pytest.raises(error) as info:
        ln_mlp(**args, **kw)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_ln_linear_bad_inputs():
    x = torch.randn(2, 3, 8)
    w, b = torch.ones(8), torch.zeros(8)
    with pytest.raises(ValueError, match=r"weight must have shape \('N', 8\), received \(24, 9\)"):
        ln_linear(x, w, b, torch.ones(24, 9), eps=EPS, backend="triton")
    with pytest.raises(ValueError, match=r"bias must have shape \(24,\), received \(23,\)"):
        ln_linear(x, w, b, torch.ones(24, 8), torch.ones(23), eps=EPS, backend="triton")
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(\.\.\., D\)"):
        ln_linear(torch.randn(2, 0), w, b, torch.ones(24, 8), eps=EPS)


def test_triton_unsupported_reason():
    x = torch.randn(2, 8)
    assert mod.triton_unsupported_reason(x, torch.ones(8), None) is None
    assert "float64" in mod.triton_unsupported_reason(x.double())
    assert "float16" in mod.triton_unsupported_reason(x, torch.ones(8, 8, dtype=torch.float16))
    assert mod.triton_unsupported_reason(x, torch.ones(8, dtype=torch.float16)) is None  # vectors are read in fp32


def test_opcheck_forward_ops_with_autograd():
    B, L, D, I = 2, 5, 48, 96
    x = torch.randn(B, L, D, requires_grad=True)
    p = _mlp_params(D, I, torch.float32)
    args = (x, *p.values(), torch.tensor([1.0, 0.5]), EPS, "gelu", 0.1, torch.tensor(7), True)
    torch.library.opcheck(torch.ops.vivit_kernels.ln_mlp_fwd.default, args)
    w = p["fc1_weight"]
    for bias in (p["fc1_bias"], None):
        torch.library.opcheck(
            torch.ops.vivit_kernels.ln_linear_fwd.default, (x, p["ln_weight"], p["ln_bias"], w, bias, EPS)
        )


@pytest.mark.parametrize("training", [False, True])
def test_torch_compile_aot_eager_runs_the_kernels(training):
    B, L, D, I = 2, 5, 48, 96
    x = torch.randn(B, L, D, requires_grad=True)
    p = _mlp_params(D, I, torch.float32)
    qkv = torch.randn(3 * D, D, requires_grad=True)
    scale = torch.tensor([0.0, 2.0])

    def block(x):
        y = ln_mlp(x, **p, eps=EPS, activation="gelu", dropout_p=0.2, training=training, drop_path_scale=scale,
                   backend="triton")  # fmt: skip
        return ln_linear(y, p["ln_weight"], p["ln_bias"], qkv, None, eps=EPS, backend="triton")

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)  # the dropout seed draw does not break it
    inputs = (x, qkv, *p.values())
    torch.manual_seed(3)
    out = compiled(x)
    torch.manual_seed(3)
    want = block(x)
    grad = torch.randn_like(out)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    for g, r in zip(_grads(out, inputs, grad), _grads(want, inputs, grad)):
        torch.testing.assert_close(g, r, rtol=0, atol=0)
