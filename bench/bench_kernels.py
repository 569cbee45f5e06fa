"""Per-kernel rows: tubelet embedding, attention (joint, spatial, temporal), LN-QKV and LN-MLP; forward, backward, both.

On a GPU (bf16, ViViT-B/16x2 shapes) ours is the Triton kernel, against our eager path, `torch.compile` of it, every
PyTorch SDPA backend and the plain modules a user would write. On the CPU (fp32, the small CPU shapes) ours is the
eager path, against the plain modules (`torch.compile` only with VIVIT_BENCH_COMPILE=1: ~30 s of compile per graph).
"""

from __future__ import annotations

import functools
import os

import _harness as H
import pytest
import torch
import torch.nn.functional as F

PASSES = ("fwd", "bwd", "fwdbwd")
BACKENDS = ("triton", "eager")
GELU_FAST = 0.7978845608


def _shapes():
    """Shapes per op: ViViT-B/16x2 on a GPU, the small CPU model (112^2, 8 frames, hidden 384) on the CPU."""
    if H.on_gpu():
        return dict(
            batch=8,
            frames=32,
            image=224,
            hidden=768,
            heads=12,
            mlp=3072,
            spatial=197,
            joint_batch=2,
            joint=3137,
            dtype=torch.bfloat16,
        )
    return dict(
        batch=2,
        frames=8,
        image=112,
        hidden=384,
        heads=6,
        mlp=1536,
        spatial=49,
        joint_batch=2,
        joint=197,
        dtype=torch.float32,
    )


def _check_backend(backend: str) -> None:
    if backend == "triton" and not H.on_gpu():
        pytest.skip("no CUDA GPU: Triton rows run on a GPU (bench/run_gpu.sh); CPU rows are the eager ones")
    if backend == "eager" and H.on_gpu():
        pytest.skip("on a GPU the eager path is a baseline of the Triton rows")


def _compile_wanted() -> str | None:
    """None when torch.compile baselines run here, else why not."""
    if H.timing_disabled() and not H.on_gpu():
        return "skipped with --benchmark-disable on the CPU (inductor compiles take ~30 s per graph)"
    if not H.on_gpu() and os.environ.get("VIVIT_BENCH_COMPILE") != "1":
        return "CPU: set VIVIT_BENCH_COMPILE=1 to include (~30 s of compile per graph)"
    return None


def _make_pass(fwd, inputs, grad_inputs, pass_):
    """A zero-argument callable running one `pass_` of fwd(*inputs) (backward: autograd.grad to `grad_inputs`)."""
    if pass_ == "fwd":

        def run():
            with torch.no_grad():
                return fwd(*inputs)

        return run
    state = {}

    def grad_out(out):
        if "g" not in state:
            state["g"] = torch.randn_like(out)
        return state["g"]

    if pass_ == "fwdbwd":

        def run():
            out = fwd(*inputs)
            return torch.autograd.grad(out, grad_inputs, grad_out(out))

        return run

    def run():  # backward only, over one retained graph
        if "out" not in state:
            state["out"] = fwd(*inputs)
        return torch.autograd.grad(state["out"], grad_inputs, grad_out(state["out"]), retain_graph=True)

    return run


def _flops(fwd_flops, pass_):
    return {"fwd": 1.0, "bwd": 2.0, "fwdbwd": 3.0}[pass_] * fwd_flops


def _candidates(ours_fn, eager_fn, baselines: dict, backend: str):
    """(ours name, ours fn, baselines, skipped) for a row."""
    skipped = {}
    bases = dict(baselines)
    if backend == "triton":
        bases = {"eager": eager_fn, **bases}
    why = _compile_wanted()
    if why is None:
        bases["torch.compile(eager)"] = torch.compile(eager_fn, dynamic=False)
    else:
        skipped["torch.compile(eager)"] = why
    return ours_fn, bases, skipped


def _run_row(benchmark, op, backend, pass_, make, fwd_ours, fwd_eager, baselines, inputs, grad_inputs, **work):
    ours_fwd = fwd_ours
    fn, bases, skipped = _candidates(ours_fwd, fwd_eager, baselines, backend)
    ours_call = make(fn, inputs, grad_inputs, pass_)
    try:
        ours_call()
    except NotImplementedError as exc:
        pytest.skip(f"{op}: {exc}")
    calls = {name: make(f, inputs, grad_inputs, pass_) for name, f in bases.items()}
    return H.compare(benchmark, f"{op} {pass_}", (backend, ours_call), calls, skipped=skipped, group="kernel", **work)


# ----------------------------------------------------------------------------------------------------------------------
# Tubelet embedding
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_patch_embed(benchmark, backend, pass_):
    _check_backend(backend)
    from vivit_kernels.patch_embed import patch_embed

    s, dev = _shapes(), H.device()
    B, nF, C, Hh, D = s["batch"], s["frames"], 3, s["image"], s["hidden"]
    t, p = 2, 16
    N = (nF // t) * (Hh // p) ** 2
    K = C * t * p * p
    dt = s["dtype"]
    video = torch.randn(B, nF, C, Hh, Hh, device=dev, dtype=dt)
    weight = (0.02 * torch.randn(D, C, t, p, p, device=dev, dtype=dt)).requires_grad_()
    bias = torch.zeros(D, device=dev, dtype=dt, requires_grad=True)
    pos = (0.02 * torch.randn(N + 1, D, device=dev, dtype=dt)).requires_grad_()
    cls = (0.02 * torch.randn(D, device=dev, dtype=dt)).requires_grad_()
    inputs, grads = (video, weight, bias, pos, cls), (weight, bias, pos, cls)

    def conv3d(x, w, b, pos, cls):  # what Hugging Face does: nn.Conv3d on (B, C, T, H, W), then flatten and concat
        tokens = F.conv3d(x.permute(0, 2, 1, 3, 4), w, b, stride=(t, p, p)).flatten(2).transpose(1, 2)
        return torch.cat([cls.expand(x.shape[0], 1, -1), tokens], dim=1) + pos

    ours = functools.partial(patch_embed, backend=backend)
    eager = functools.partial(patch_embed, backend="eager")
    _run_row(
        benchmark,
        "patch_embed",
        backend,
        pass_,
        _make_pass,
        ours,
        eager,
        {"nn.Conv3d (HF)": conv3d},
        inputs,
        grads,
        # The video needs no gradient: the backward is the dW GEMM alone (plus small reductions).
        flops={"fwd": 1, "bwd": 1, "fwdbwd": 2}[pass_] * 2 * B * N * K * D,
        dtype=dt,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------------------------


def _sdpa_user(q, k, v, axis, backend=None):
    """What a user writes around SDPA: move (batch, heads) to the front with copies, attend, move back."""
    if axis == "joint":
        B, L, Hn, Dh = q.shape
        qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))
    elif axis == "spatial":
        B, T, S, Hn, Dh = q.shape
        qh, kh, vh = (x.reshape(B * T, S, Hn, Dh).transpose(1, 2) for x in (q, k, v))
    else:
        B, T, S, Hn, Dh = q.shape
        qh, kh, vh = (x.permute(0, 2, 3, 1, 4).reshape(B * S, Hn, T, Dh) for x in (q, k, v))
    if backend is None:
        out = F.scaled_dot_product_attention(qh, kh, vh)
    else:
        from torch.nn.attention import sdpa_kernel

        with sdpa_kernel(backend):
            out = F.scaled_dot_product_attention(qh, kh, vh)
    if axis == "joint":
        return out.transpose(1, 2).contiguous()
    if axis == "spatial":
        return out.transpose(1, 2).reshape(q.shape).contiguous()
    return out.reshape(B, S, Hn, T, Dh).permute(0, 3, 1, 2, 4).contiguous()


def _math_attention(q, k, v, axis):
    """Attention written out: softmax(q k^T / sqrt(d)) v on the (..., heads, tokens, dim) layout."""
    if axis == "joint":
        qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))
    elif axis == "spatial":
        qh, kh, vh = (x.transpose(2, 3) for x in (q, k, v))
    else:
        qh, kh, vh = (x.permute(0, 2, 3, 1, 4) for x in (q, k, v))
    scores = (qh @ kh.transpose(-1, -2)) * q.shape[-1] ** -0.5
    out = scores.softmax(-1) @ vh
    if axis == "temporal":
        return out.permute(0, 3, 1, 2, 4).contiguous()
    return out.transpose(-3, -2).contiguous()


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("axis", ("joint", "spatial", "temporal"))
@pytest.mark.parametrize("backend", BACKENDS)
def test_attention(benchmark, backend, axis, pass_):
    _check_backend(backend)
    from vivit_kernels.attention import attention

    s, dev, dt = _shapes(), H.device(), _shapes()["dtype"]
    Hn, Dh = s["heads"], s["hidden"] // s["heads"]
    if axis == "joint":
        lead, seqs, length = (s["joint_batch"], s["joint"]), s["joint_batch"] * Hn, s["joint"]
    else:
        T, S = s["frames"] // 2, s["spatial"] if axis == "spatial" else (s["image"] // 16) ** 2
        lead = (s["batch"], T, S)
        seqs, length = (s["batch"] * T * Hn, S) if axis == "spatial" else (s["batch"] * S * Hn, T)
    # q, k, v as strided views of one fused QKV projection output, as in the model.
    qkv = torch.randn(*lead, 3, Hn, Dh, device=dev, dtype=dt, requires_grad=True)

    def split(fn):
        return lambda qkv: fn(*qkv.unbind(-3))

    ours = split(functools.partial(attention, axis=axis, backend=backend))
    eager = split(functools.partial(attention, axis=axis, backend="eager"))
    baselines = {"softmax(QK^T)V": split(functools.partial(_math_attention, axis=axis))}
    if H.on_gpu():
        from torch.nn.attention import SDPBackend

        for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
            sdpa = functools.partial(_sdpa_user, axis=axis, backend=getattr(SDPBackend, name))
            baselines[f"SDPA {name.split('_')[0].lower()} + copies"] = split(sdpa)
    else:
        baselines["SDPA + copies"] = split(functools.partial(_sdpa_user, axis=axis))
    numel = seqs * length * Dh
    # Backward: five GEMMs (one recomputes the scores), 2.5x the forward's FLOPs.
    work = {"flops": {"fwd": 1.0, "bwd": 2.5, "fwdbwd": 3.5}[pass_] * 4 * seqs * length * length * Dh}
    if axis == "temporal":  # memory-bound: report GB/s on the bytes of Q, K, V, O (and dO, dQ, dK, dV)
        per_pass = {"fwd": 4, "bwd": 8, "fwdbwd": 12}[pass_]
        work = {"bytes": per_pass * numel * qkv.element_size()}
    _run_row(
        benchmark,
        f"attention {axis} L={length}",
        backend,
        pass_,
        _make_pass,
        ours,
        eager,
        baselines,
        (qkv,),
        (qkv,),
        dtype=dt,
        **work,
    )


# ----------------------------------------------------------------------------------------------------------------------
# LayerNorm + QKV projection, LayerNorm + MLP
# ----------------------------------------------------------------------------------------------------------------------


def _tokens(s, dev, dt):
    L = (s["frames"] // 2) * (s["image"] // 16) ** 2 + 1
    return torch.randn(s["batch"], L, s["hidden"], device=dev, dtype=dt, requires_grad=True)


def _param(*shape, dev, dt, scale=0.02, fill=None):
    t = torch.full(shape, fill, device=dev, dtype=dt) if fill is not None else scale * torch.randn(*shape, device=dev)
    return t.to(dt).requires_grad_()


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_ln_linear(benchmark, backend, pass_):
    _check_backend(backend)
    from vivit_kernels.ln_mlp import ln_linear

    s, dev = _shapes(), H.device()
    dt, D = s["dtype"], s["hidden"]
    x = _tokens(s, dev, dt)
    lw, lb = _param(D, dev=dev, dt=dt, fill=1.0), _param(D, dev=dev, dt=dt, fill=0.0)
    w, b = _param(3 * D, D, dev=dev, dt=dt), _param(3 * D, dev=dev, dt=dt, fill=0.0)
    inputs = (x, lw, lb, w, b)

    def hf_qkv(x, lw, lb, w, b):  # HF: LayerNorm module, then three separate Linear projections
        h = F.layer_norm(x, (D,), lw, lb, 1e-6)
        return torch.cat([F.linear(h, wi, bi) for wi, bi in zip(w.chunk(3), b.chunk(3))], dim=-1)

    ours = functools.partial(ln_linear, eps=1e-6, backend=backend)
    eager = functools.partial(ln_linear, eps=1e-6, backend="eager")
    M = x.shape[0] * x.shape[1]
    _run_row(
        benchmark,
        "ln_linear (QKV)",
        backend,
        pass_,
        _make_pass,
        ours,
        eager,
        {"LayerNorm + 3 Linear (HF)": hf_qkv},
        inputs,
        inputs,
        flops=_flops(6 * M * D * D, pass_),
        dtype=dt,
    )


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_ln_mlp(benchmark, backend, pass_):
    _check_backend(backend)
    from vivit_kernels.ln_mlp import ln_mlp

    s, dev = _shapes(), H.device()
    dt, D, I = s["dtype"], s["hidden"], s["mlp"]
    x = _tokens(s, dev, dt)
    lw, lb = _param(D, dev=dev, dt=dt, fill=1.0), _param(D, dev=dev, dt=dt, fill=0.0)
    w1, b1 = _param(I, D, dev=dev, dt=dt), _param(I, dev=dev, dt=dt, fill=0.0)
    w2, b2 = _param(D, I, dev=dev, dt=dt), _param(D, dev=dev, dt=dt, fill=0.0)
    inputs = (x, lw, lb, w1, b1, w2, b2)

    def hf_mlp(x, lw, lb, w1, b1, w2, b2):  # HF: LayerNorm, Linear, gelu_fast written out, Linear, residual add
        h = F.linear(F.layer_norm(x, (D,), lw, lb, 1e-6), w1, b1)
        h = 0.5 * h * (1.0 + torch.tanh(h * GELU_FAST * (1.0 + 0.044715 * h * h)))
        return x + F.linear(h, w2, b2)

    ours = functools.partial(ln_mlp, eps=1e-6, activation="gelu_tanh", backend=backend)
    eager = functools.partial(ln_mlp, eps=1e-6, activation="gelu_tanh", backend="eager")
    M = x.shape[0] * x.shape[1]
    _run_row(
        benchmark,
        "ln_mlp",
        backend,
        pass_,
        _make_pass,
        ours,
        eager,
        {"LayerNorm + Linear + gelu_fast + Linear (HF)": hf_mlp},
        inputs,
        inputs,
        flops=_flops(4 * M * D * I, pass_),
        dtype=dt,
    )


def test_ln_mlp_peak_memory(benchmark):
    """Peak activation memory of the LN-MLP block's forward + backward, Triton vs eager (GPU only)."""
    if not H.on_gpu():
        pytest.skip("no CUDA GPU: the LN-MLP memory row compares the Triton kernel with eager on a GPU")
    from vivit_kernels.ln_mlp import ln_mlp

    s, dev = _shapes(), H.device()
    dt, D, I = s["dtype"], s["hidden"], s["mlp"]
    x = _tokens(s, dev, dt)
    params = [
        _param(D, dev=dev, dt=dt, fill=1.0),
        _param(D, dev=dev, dt=dt, fill=0.0),
        _param(I, D, dev=dev, dt=dt),
        _param(I, dev=dev, dt=dt, fill=0.0),
        _param(D, I, dev=dev, dt=dt),
        _param(D, dev=dev, dt=dt, fill=0.0),
    ]
    peaks = {}
    for backend in ("triton", "eager"):
        run = _make_pass(functools.partial(ln_mlp, eps=1e-6, backend=backend), (x, *params), (x, *params), "fwdbwd")
        run()  # warm-up
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        peaks[backend] = torch.cuda.max_memory_allocated() - base
    H.MEMORY.append(
        dict(op="ln_mlp forward + backward", peaks=peaks, ours="triton", method="cuda max_memory_allocated")
    )
    benchmark.extra_info.update(peak_bytes=peaks)
    benchmark.pedantic(lambda: None, rounds=1)  # memory row: nothing to time
