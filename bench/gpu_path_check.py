"""GPU checks of the Triton path that the CPU interpreter cannot make (run on a CUDA machine, about a minute):

    PYTHONPATH=. python bench/gpu_path_check.py   (a stage of bench/run_gpu.sh)

1. The device the `auto` rule sees (architecture, opt-in shared memory per block) and what auto takes there.
2. Each op under CUDA autocast (bf16 and fp16): dtypes reaching the kernels, outputs and gradients with eager's
   dtypes, values within FlashAttention's rule against fp32 eager.
3. Each op in bf16, forward and backward, against an fp64 reference (FlashAttention's rule), at ViViT-like shapes.
4. CUDA-graph capture of ln_mlp with dropout: each replay draws a new Philox seed (no frozen mask).
5. The launchers run on the tensors' device whatever device is current (needs two GPUs; skipped with one).
Exits non-zero on the first failure.
"""

from __future__ import annotations

import os
import sys

os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from vivit.models import dispatch  # noqa: E402
from vivit_kernels import _utils  # noqa: E402
from vivit_kernels import attention as attn_mod  # noqa: E402
from vivit_kernels import ln_mlp as ln_mod  # noqa: E402
from vivit_kernels import patch_embed as pe_mod  # noqa: E402


class Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name.startswith("vivit_kernels."):
            self.calls.append((name, tuple(a.dtype if isinstance(a, torch.Tensor) else None for a in args)))
        return func(*args, **(kwargs or {}))


def rel(a, ref):
    return ((a.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def flash(name, got, low, ref, dtype):
    err, base = rel(got, ref), rel(low, ref)
    ok = err <= 2 * base + 2 * torch.finfo(dtype).eps
    print(f"  {'ok  ' if ok else 'FAIL'} {name}: error {err:.2e}, eager {base:.2e}")
    if not ok:
        sys.exit(1)


def cases(dev):
    D, I = 768, 3072
    r = lambda *s: torch.randn(*s, device=dev)  # noqa: E731
    ln = [1 + 0.1 * r(D), 0.1 * r(D)]
    return {
        "ln_linear": (lambda *a, backend: dispatch.ln_linear(*a, eps=1e-6, backend=backend),
                      [r(4, 197, D), *ln, r(3 * D, D) / D**0.5, 0.1 * r(3 * D)]),
        "ln_mlp": (lambda *a, backend: dispatch.ln_mlp(*a, eps=1e-6, backend=backend),
                   [r(4, 197, D), *ln, r(I, D) / D**0.5, 0.1 * r(I), r(D, I) / I**0.5, 0.1 * r(D)]),
        "attention_temporal": (lambda *a, backend: dispatch.attention(*a, axis="temporal", backend=backend)[0],
                               [r(2, 16, 196, 12, 64) for _ in range(3)]),
        "attention_spatial": (lambda *a, backend: dispatch.attention(*a, axis="spatial", backend=backend)[0],
                              [r(2, 4, 197, 12, 64) for _ in range(3)]),
        "patch_embed": (lambda *a, backend: dispatch.patch_embed(*a, backend=backend),
                        [r(2, 32, 3, 224, 224), r(D, 3, 2, 16, 16) / 1536**0.5, 0.1 * r(D), r(1 + 16 * 196, D), r(D)]),
    }  # fmt: skip


def run(fn, leaves, backend, autocast_dtype=None, cast=None):
    leaves = [(t if cast is None else t.to(cast)).detach().requires_grad_() for t in leaves]
    with Recorder() as rec:
        with torch.autocast("cuda", autocast_dtype or torch.float16, enabled=autocast_dtype is not None):
            out = fn(*leaves, backend=backend)
        g = torch.randn(out.shape, device=out.device, generator=torch.Generator(out.device).manual_seed(0))
        grads = torch.autograd.grad(out, leaves, g.to(out.dtype))
    return out, grads, rec.calls


def main() -> int:
    dev = torch.device("cuda", torch.cuda.current_device())
    caps = _utils.device_caps(dev)
    import triton

    print(f"torch {torch.__version__}, triton {triton.__version__}, {caps.name}")
    torch.set_float32_matmul_precision("highest")

    print("1. auto on this device")
    q = torch.randn(2, 16, 8, 12, 64, device=dev, dtype=torch.bfloat16)
    print("  bf16 attention:", attn_mod.auto_unsupported_reason(q, q, q, axis="temporal") or "kernel")
    print("  fp32 attention at 'highest':", attn_mod.auto_unsupported_reason(q.float(), axis="temporal") or "kernel")
    x, w = torch.randn(8, 768, device=dev), torch.randn(2304, 768, device=dev)
    print("  bf16 ln_linear:", ln_mod.auto_unsupported_reason(x.bfloat16(), w.bfloat16()) or "kernel")
    with torch.autocast("cuda", torch.bfloat16):
        print("  fp32 ln_linear under bf16 autocast:", ln_mod.auto_unsupported_reason(x, w) or "kernel")
    pix, pw = torch.randn(1, 2, 3, 16, 16, device=dev), torch.randn(768, 3, 2, 16, 16, device=dev)
    print("  bf16 patch_embed:", pe_mod.auto_unsupported_reason(pix.bfloat16(), pw.bfloat16()) or "kernel")

    for dtype in (torch.bfloat16, torch.float16):
        print(f"2. autocast {dtype}: Triton vs eager dtypes and values")
        for name, (fn, leaves) in cases(dev).items():
            out_t, g_t, calls = run(fn, leaves, "triton", dtype)
            out_e, g_e, _ = run(fn, leaves, "eager", dtype)
            out_r, g_r, _ = run(fn, leaves, "eager")
            assert calls, name
            print(f"  {name}: kernels saw {sorted(set(calls))[:2]}")
            if out_t.dtype != out_e.dtype:
                print(f"  FAIL {name}: output {out_t.dtype}, eager {out_e.dtype}")
                return 1
            flash(f"{name} output", out_t, out_e, out_r, dtype)
            for i, (a, b, c) in enumerate(zip(g_t, g_e, g_r)):
                assert a.dtype == b.dtype, (name, i, a.dtype, b.dtype)
                flash(f"{name} grad {i}", a, b, c, dtype)

    print("3. bf16 forward and backward against fp64")
    for name, (fn, leaves) in cases(dev).items():
        out_t, g_t, _ = run(fn, leaves, "triton", cast=torch.bfloat16)
        out_e, g_e, _ = run(fn, leaves, "eager", cast=torch.bfloat16)
        out_r, g_r, _ = run(fn, leaves, "eager", cast=torch.float64)
        flash(f"{name} output", out_t, out_e, out_r, torch.bfloat16)
        for i, (a, b, c) in enumerate(zip(g_t, g_e, g_r)):
            flash(f"{name} grad {i}", a, b, c, torch.bfloat16)

    print("4. CUDA graph: ln_mlp dropout draws a new seed per replay")
    fn, leaves = cases(dev)["ln_mlp"]
    args = [t.bfloat16() for t in leaves]
    static = {}
    for _ in range(2):  # warm up (compiles) outside the capture
        ln_mod.ln_mlp(*args, eps=1e-6, dropout_p=0.5, training=True, backend="triton")
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static["out"] = ln_mod.ln_mlp(*args, eps=1e-6, dropout_p=0.5, training=True, backend="triton")
    graph.replay()
    first = static["out"].clone()
    graph.replay()
    same = torch.equal(first, static["out"])
    print(f"  {'FAIL' if same else 'ok  '} two replays {'repeat' if same else 'differ in'} the dropout mask")
    if same:
        return 1

    print("5. device guard")
    if torch.cuda.device_count() < 2:
        print("  skipped: one GPU")
    else:
        q1 = torch.randn(1, 16, 4, 2, 64, device="cuda:1", dtype=torch.bfloat16)
        with torch.cuda.device(0):
            out = attn_mod.attention(q1, q1, q1, axis="temporal", backend="triton")
        ref = attn_mod.attention(q1, q1, q1, axis="temporal", backend="eager")
        torch.testing.assert_close(out.float(), ref.float(), atol=2e-2, rtol=2e-2)
        print("  ok   attention on cuda:1 while cuda:0 is current")
    print("all GPU path checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
