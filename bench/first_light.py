"""First light on a GPU: what runs, whether it is right, and roughly how fast, in a few minutes.

bench/run_gpu.sh runs each stage in its own process under its own time limit, so that one failing or slow stage
cannot hide the others:

    python bench/first_light.py env OUTDIR              # versions, the device, its limits
    python bench/first_light.py correct OP OUTDIR       # OP: attention | patch_embed | ln_linear | ln_mlp
    python bench/first_light.py train OUTDIR            # one ViViT-B training step, Models 1 and 3, under autocast
    python bench/first_light.py bench OUTDIR            # a few timed rows against measured ceilings
    python bench/first_light.py report OUTDIR           # OUTDIR/first-light.json and first-light.md from the above

Each stage writes OUTDIR/<stage>.json after every row, so a stage killed at its limit still leaves what it measured.

Correctness rule (FlashAttention's, as in tests/): against an fp64 reference computed from the *rounded* inputs, the
kernel's max and mean absolute errors are each at most twice those of the eager PyTorch path in the same dtype, plus a
floor of rounding noise (one ulp of the dtype at the reference's scale for the max, half an ulp for the mean, and 16
fp32 ulp for fp32 accumulation, so that an exactly-zero reference does not mean a zero tolerance). Inputs that the
model slices out of a fused projection (q, k, v) are passed as those strided views, never as contiguous copies.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.utils._python_dispatch

OPS = ("attention", "patch_embed", "ln_linear", "ln_mlp")
# FIRST_LIGHT_SMOKE=1 (with TRITON_INTERPRET=1 on the CPU): tiny shapes, so that bench/bench_first_light.py can check
# this script's own logic in CI without a GPU. The figures of a smoke run mean nothing.
SMOKE = os.environ.get("FIRST_LIGHT_SMOKE") == "1"
DEVICE = "cpu" if SMOKE else "cuda"
EPS32 = torch.finfo(torch.float32).eps
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


# ----------------------------------------------------------------------------------------------------------------------
# Results: one JSON file per stage, rewritten after every row
# ----------------------------------------------------------------------------------------------------------------------
class Stage:
    def __init__(self, outdir: str, name: str):
        self.path = Path(outdir) / f"{name}.json"
        self.data = {"stage": name, "status": "running", "rows": [], "started": time.time()}
        self.save()

    def add(self, row: dict) -> None:
        self.data["rows"].append(row)
        print(json.dumps(row, default=str), flush=True)
        self.save()

    def finish(self, **extra) -> None:
        rows = self.data["rows"]
        failed = [r for r in rows if r.get("ok") is False or "error" in r]
        self.data.update(extra, status="fail" if failed else "ok", seconds=round(time.time() - self.data["started"], 1))
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


def guarded(stage: Stage, label: dict, fn) -> None:
    """Run one case; an exception becomes a failed row and the stage goes on with the next case."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
        stage.add(
            {**label, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000], "trace": traceback.format_exc()}
        )
        sync()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------------------------------
# Stage env
# ----------------------------------------------------------------------------------------------------------------------
def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception as exc:  # noqa: BLE001
        return f"not importable ({type(exc).__name__})"


def stage_env(outdir: str) -> Stage:
    stage = Stage(outdir, "env")
    info = {
        "python": platform.python_version(),
        **{name: _version(name) for name in ("torch", "triton", "transformers", "peft", "accelerate", "av")},
        "cuda": torch.version.cuda,
        "matmul_precision": torch.get_float32_matmul_precision(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(
            device=p.name,
            capability=f"sm_{p.major}{p.minor}",
            multiprocessors=p.multi_processor_count,
            memory_gib=round(p.total_memory / 2**30, 1),
            shared_memory_per_block_optin=getattr(p, "shared_memory_per_block_optin", None),
            l2_mib=round(getattr(p, "L2_cache_size", 0) / 2**20, 1),
        )
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,clocks.sm,memory.total", "--format=csv"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"unavailable: {exc}"
    stage.add({"ok": torch.cuda.is_available() or SMOKE, **info})
    stage.finish()
    return stage


# ----------------------------------------------------------------------------------------------------------------------
# Stage correct: each op on the GPU against fp64, bounded by eager's own error
# ----------------------------------------------------------------------------------------------------------------------
def error_stats(got: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    err = (got.double() - ref).abs()
    return err.max().item(), err.mean().item()


def within_bound(ours: torch.Tensor, eager: torch.Tensor, ref: torch.Tensor) -> dict:
    """The correctness rule of this file's docstring, for one output or gradient."""
    dtype = ours.dtype
    eps = torch.finfo(dtype).eps
    o_max, o_mean = error_stats(ours, ref)
    e_max, e_mean = error_stats(eager, ref)
    s_max, s_mean = ref.abs().max().item(), ref.abs().mean().item()
    low = dtype != torch.float32
    b_max = 2 * e_max + (eps * s_max if low else 0) + 16 * EPS32 * max(1.0, s_max)
    b_mean = 2 * e_mean + (eps / 2 * s_mean if low else 0) + 16 * EPS32 * max(1.0, s_mean)
    finite = bool(torch.isfinite(ours).all())
    return {
        "ok": finite and o_max <= b_max and o_mean <= b_mean and ours.shape == ref.shape,
        "max_err": o_max,
        "max_bound": b_max,
        "eager_max_err": e_max,
        "mean_err": o_mean,
        "mean_bound": b_mean,
        "eager_mean_err": e_mean,
        "ref_max": s_max,
        "finite": finite,
    }


def compare_op(stage: Stage, label: dict, run, leaves: list[torch.Tensor]) -> None:
    """run(leaves, backend) -> output, with backend None meaning the fp64 reference. Leaves are already rounded to
    the dtype under test; the reference sees exactly those values in fp64."""
    torch.manual_seed(1)
    results = {}
    upstream = None
    for backend in (None, "eager", "triton"):
        xs = [(x.double() if backend is None else x).detach().requires_grad_(x.is_floating_point()) for x in leaves]
        out = run(xs, backend)
        if upstream is None:
            upstream = torch.randn_like(out, dtype=torch.float64)
        wrt = [x for x in xs if x.requires_grad]
        grads = torch.autograd.grad(out, wrt, upstream.to(out.dtype))
        results[backend] = [out, *grads]
    sync()
    names = ["out"] + [f"grad{i}" for i in range(len(results[None]) - 1)]
    for name, ref, eager, ours in zip(names, results[None], results["eager"], results["triton"]):
        stage.add({**label, "tensor": name, "dtype_out": str(ours.dtype), **within_bound(ours, eager, ref)})


def _attention_cases():
    # (axis, leading shape, heads, head dim, masked): ViViT-B shapes (those of the train stage, so its compiles are
    # cached), head dim 80, odd and length-1 sequences.
    if SMOKE:
        return [
            ("joint", (1, 19), 2, 32, False),
            ("spatial", (1, 2, 5), 2, 32, True),
            ("temporal", (1, 3, 2), 1, 32, False),
        ]
    return [
        ("joint", (2, 197), 12, 64, False),
        ("joint", (2, 1569), 12, 64, False),
        ("spatial", (2, 8, 196), 12, 64, False),
        ("spatial", (2, 4, 197), 12, 64, True),
        ("spatial", (2, 3, 49), 4, 80, False),
        ("temporal", (2, 8, 196), 12, 64, False),
        ("temporal", (3, 17, 7), 4, 32, True),
        ("temporal", (2, 1, 5), 2, 64, False),
    ]


def correct_attention(stage: Stage, dtype: torch.dtype) -> None:
    from vivit_kernels.attention import attention, attention_reference

    for axis, lead, heads, dim, masked in _attention_cases():
        label = {"op": "attention", "case": f"{axis} {'x'.join(map(str, lead))} H{heads} D{dim}", "dtype": str(dtype)}
        mask = None
        if masked:  # the last frame (temporal: the last key) of the second sequence is padding
            mask = torch.ones(lead[0], lead[1], dtype=torch.bool, device=DEVICE)
            mask[-1, -1] = False
            label["case"] += " masked"

        def run(xs, backend, axis=axis, mask=mask):
            q, k, v = xs[0].unbind(-3)  # strided views of one fused (..., 3, H, D) projection, as in the model
            if backend is None:
                return attention_reference(q, k, v, axis=axis, key_mask=mask)
            return attention(q, k, v, axis=axis, key_mask=mask, backend=backend)

        qkv = torch.randn(*lead, 3, heads, dim, device=DEVICE).to(dtype)
        guarded(stage, label, lambda run=run, qkv=qkv, label=label: compare_op(stage, label, run, [qkv]))


def correct_patch_embed(stage: Stage, dtype: torch.dtype) -> None:
    from vivit_kernels.patch_embed import patch_embed, patch_embed_reference

    # (batch, frames, height, width, hidden, layout): the ViViT-B input of the train stage, and an odd one whose last
    # frame and pixel remainders are dropped as by Conv3d.
    cases = [(2, 16, 224, 224, 768, "cls"), (2, 9, 64, 56, 200, "tokens"), (2, 9, 64, 56, 200, "per_frame_cls")]
    if SMOKE:
        cases = [(1, 3, 32, 16, 24, "cls")]
    for B, F, Hh, Ww, D, layout in cases:
        label = {"op": "patch_embed", "case": f"{B}x{F}x3x{Hh}x{Ww} D{D} {layout}", "dtype": str(dtype)}
        Tp, S = F // 2, (Hh // 16) * (Ww // 16)
        rows = {"tokens": Tp * S, "cls": 1 + Tp * S, "per_frame_cls": 1 + S}[layout]
        leaves = [
            torch.randn(B, F, 3, Hh, Ww, device=DEVICE),
            0.05 * torch.randn(D, 3, 2, 16, 16, device=DEVICE),
            torch.randn(D, device=DEVICE),
            torch.randn(rows, D, device=DEVICE),
        ] + ([torch.randn(D, device=DEVICE)] if layout != "tokens" else [])
        leaves = [x.to(dtype) for x in leaves]
        kw = dict(per_frame_cls=layout == "per_frame_cls")

        def run(xs, backend, kw=kw):
            if backend is None:
                return patch_embed_reference(*xs, **kw)
            return patch_embed(*xs, backend=backend, **kw)

        guarded(stage, label, lambda run=run, leaves=leaves, label=label: compare_op(stage, label, run, leaves))


def _ln_params(D: int, out: int, dtype) -> list[torch.Tensor]:
    p = [1 + 0.1 * torch.randn(D), 0.1 * torch.randn(D), 0.02 * torch.randn(out, D), 0.1 * torch.randn(out)]
    return [t.to(DEVICE, dtype) for t in p]


def correct_ln_linear(stage: Stage, dtype: torch.dtype) -> None:
    from vivit_kernels.ln_mlp import ln_linear, ln_linear_reference

    for B, L, D in [(1, 5, 24)] if SMOKE else [(2, 1569, 768), (3, 17, 200)]:
        label = {"op": "ln_linear", "case": f"{B}x{L}x{D} -> {3 * D}", "dtype": str(dtype)}
        leaves = [torch.randn(B, L, D, device=DEVICE).to(dtype), *_ln_params(D, 3 * D, dtype)]

        def run(xs, backend):
            if backend is None:
                return ln_linear_reference(*xs, eps=1e-6)
            return ln_linear(*xs, eps=1e-6, backend=backend)

        guarded(stage, label, lambda run=run, leaves=leaves, label=label: compare_op(stage, label, run, leaves))


def correct_ln_mlp(stage: Stage, dtype: torch.dtype) -> None:
    from vivit_kernels.ln_mlp import ln_mlp, ln_mlp_reference

    cases = [(2, 1569, 768, 3072, "gelu_tanh"), (3, 17, 200, 800, "gelu")]
    for B, L, D, inner, act in [(1, 5, 24, 40, "gelu_tanh")] if SMOKE else cases:
        label = {"op": "ln_mlp", "case": f"{B}x{L}x{D} inner {inner} {act}", "dtype": str(dtype)}
        fc1 = _ln_params(D, inner, dtype)
        fc2 = [(0.02 * torch.randn(D, inner)).to(DEVICE, dtype), (0.1 * torch.randn(D)).to(DEVICE, dtype)]
        leaves = [torch.randn(B, L, D, device=DEVICE).to(dtype), *fc1, *fc2]

        def run(xs, backend, act=act):
            if backend is None:
                return ln_mlp_reference(*xs, eps=1e-6, activation=act)
            return ln_mlp(*xs, eps=1e-6, activation=act, backend=backend)

        guarded(stage, label, lambda run=run, leaves=leaves, label=label: compare_op(stage, label, run, leaves))


def stage_correct(op: str, outdir: str) -> Stage:
    stage = Stage(outdir, f"correct-{op}")
    fn = {
        "attention": correct_attention,
        "patch_embed": correct_patch_embed,
        "ln_linear": correct_ln_linear,
        "ln_mlp": correct_ln_mlp,
    }[op]
    torch.manual_seed(0)
    for dtype in [torch.float32] if SMOKE else DTYPES.values():  # the interpreter cannot do bf16 arithmetic
        fn(stage, dtype)
    stage.finish()
    return stage


# ----------------------------------------------------------------------------------------------------------------------
# Stage train: one ViViT-B step per backend, Models 1 and 3, the ops each path ran
# ----------------------------------------------------------------------------------------------------------------------
class OpRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Names of the ops a region dispatches (aten and custom ops), after autocast."""

    def __init__(self):
        super().__init__()
        self.ops: dict[str, set] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket)
        dtypes = {str(a.dtype).replace("torch.", "") for a in args if isinstance(a, torch.Tensor)}
        self.ops.setdefault(name, set()).update(dtypes)
        return out


INTERESTING = ("vivit_kernels", "linear", "addmm", "mm", "bmm", "attention", "layer_norm", "gelu", "convolution")


def _ops_summary(ops: dict[str, set]) -> dict[str, list]:
    return {k: sorted(v) for k, v in sorted(ops.items()) if any(s in k for s in INTERESTING)}


def train_step(model, x, labels, backend: str, autocast: bool, record: bool = False):
    model.config.backend = backend
    model.zero_grad(set_to_none=True)
    recorder = OpRecorder() if record else None
    with torch.autocast(DEVICE, torch.bfloat16, enabled=autocast and not SMOKE):
        if recorder:
            with recorder:
                loss = model(x, labels=labels).loss
                loss.backward()
        else:
            loss = model(x, labels=labels).loss
            loss.backward()
    sync()
    grads = {n: p.grad.detach().double().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach().double().item(), grads, (_ops_summary(recorder.ops) if recorder else None)


def _rel_err(a: dict, ref: dict) -> float:
    num = sum(((a[n] - ref[n]) ** 2).sum() for n in ref)
    den = sum((ref[n] ** 2).sum() for n in ref)
    return float((num / den).sqrt())


def stage_train(outdir: str) -> Stage:
    from vivit import VivitConfig, VivitForVideoClassification

    stage = Stage(outdir, "train")
    for variant in ("spatiotemporal", "factorized_self_attention"):
        label = {"variant": variant}

        def one(variant=variant, label=label):
            torch.manual_seed(0)
            frames, size = (4, 32) if SMOKE else (16, 224)
            kw = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64) if SMOKE else {}
            cfg = VivitConfig.from_preset(
                "vivit-b-16x2", variant=variant, num_frames=frames, image_size=size, num_labels=400, **kw
            )
            model = VivitForVideoClassification(cfg).to(DEVICE).train()
            x = torch.randn(2, frames, 3, size, size, device=DEVICE)
            labels = torch.tensor([3, 141], device=DEVICE)
            ref_loss, ref_grads, _ = train_step(model, x, labels, "eager", autocast=False)
            eager_loss, eager_grads, eager_ops = train_step(model, x, labels, "eager", autocast=True, record=True)
            loss, grads, ops = train_step(model, x, labels, "triton", autocast=True, record=True)
            _, _, auto_ops = train_step(model, x, labels, "auto", autocast=True, record=True)
            err, eager_err = _rel_err(grads, ref_grads), _rel_err(eager_grads, ref_grads)
            loss_err, eager_loss_err = abs(loss - ref_loss), abs(eager_loss - ref_loss)
            stage.add(
                {
                    **label,
                    "ok": err <= 2 * eager_err + 1e-3 and loss_err <= 2 * eager_loss_err + 1e-3,
                    "loss_fp32_eager": ref_loss,
                    "loss_bf16_eager": eager_loss,
                    "loss_bf16_triton": loss,
                    "grad_rel_err_triton": err,
                    "grad_rel_err_eager": eager_err,
                    "ops_triton": ops,
                    "ops_eager": eager_ops,
                    "ops_auto": auto_ops,
                }
            )
            del model

        guarded(stage, label, one)
    stage.finish()
    return stage


# ----------------------------------------------------------------------------------------------------------------------
# Stage bench: a few rows with triton.testing.do_bench against this GPU's measured ceilings
# ----------------------------------------------------------------------------------------------------------------------
def _ms(fn, rep_ms: int = 60) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=10, rep=rep_ms, return_mode="median")


def _grad_fn(fn, leaves, upstream):
    """A closure running fn forward and backward (gradients of every leaf)."""
    return lambda: torch.autograd.grad(fn(*leaves), leaves, upstream)


def stage_bench(outdir: str) -> Stage:
    import torch.nn.functional as F

    from vivit_kernels.attention import attention
    from vivit_kernels.ln_mlp import ln_linear, ln_mlp
    from vivit_kernels.patch_embed import patch_embed

    stage = Stage(outdir, "bench")
    bf16 = torch.bfloat16
    n = 8192
    a, b = torch.randn(n, n, device=DEVICE, dtype=bf16), torch.randn(n, n, device=DEVICE, dtype=bf16)
    end = time.time() + 2  # bring the clocks up from idle (345 MHz seen) before the first timed row
    while time.time() < end:
        a @ b
        sync()
    matmul = 2 * n**3 / (_ms(lambda: a @ b) * 1e-3)
    src = torch.randn(256 * 2**20, device=DEVICE)
    dst = torch.empty_like(src)
    copy = 2 * src.numel() * 4 / (_ms(lambda: dst.copy_(src)) * 1e-3)
    stage.add({"row": "ceiling: bf16 matmul 8192^3", "tflops": matmul / 1e12})
    stage.add({"row": "ceiling: fp32 copy 1 GiB (bytes read + written)", "gbps": copy / 1e9})
    stage.data["ceilings"] = {"matmul_bf16_flops": matmul, "copy_bytes_per_s": copy}

    def row(name, ours, baseline, flops=None, bytes_=None, baseline_name="", rep_ms=60):
        def go():
            t_ours, t_base = _ms(ours, rep_ms), _ms(baseline, rep_ms)
            r = {"row": name, "ours_ms": t_ours, "baseline": baseline_name, "baseline_ms": t_base}
            r["speedup"] = t_base / t_ours
            if flops:
                r["ours_tflops"] = flops / (t_ours * 1e-3) / 1e12
                r["pct_matmul"] = 100 * flops / (t_ours * 1e-3) / matmul
            if bytes_:
                r["ours_gbps"] = bytes_ / (t_ours * 1e-3) / 1e9
                r["pct_copy"] = 100 * bytes_ / (t_ours * 1e-3) / copy
            stage.add(r)

        guarded(stage, {"row": name}, go)

    def both(name, ours, baseline, leaves, base_leaves, out_shape, flops=None, bytes_=None, baseline_name=""):
        """A forward row and a forward + backward row (backward counted as 2.5x the forward FLOPs)."""
        row(f"{name} fwd", lambda: ours(*leaves), lambda: baseline(*base_leaves), flops, bytes_, baseline_name)
        leaves = [x.detach().requires_grad_() for x in leaves]
        base_leaves = [x.detach().requires_grad_() for x in base_leaves]
        up = torch.randn(out_shape, device=DEVICE, dtype=bf16)
        row(
            f"{name} fwd+bwd",
            _grad_fn(ours, leaves, up),
            _grad_fn(baseline, base_leaves, up.reshape(baseline(*base_leaves).shape)),
            flops and flops * 3.5,
            bytes_ and bytes_ * 3,
            baseline_name,
        )

    def sdpa(q, k, v):  # (N, L, H, D) -> SDPA's (N, H, L, D)
        return F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)

    def qkv_views(*lead):  # strided q, k, v out of one fused projection, as the model makes them
        return torch.randn(*lead, 3, 12, 64, device=DEVICE, dtype=bf16).unbind(-3)

    # Spatial attention, ViViT-B Model 3 at 16 frames, batch 8: 64 sequences of 197 tokens, 12 heads of 64.
    q, k, v = qkv_views(8, 8, 197)
    both(
        "attention spatial 64x197 H12 D64",
        lambda q, k, v: attention(q, k, v, axis="spatial", backend="triton"),
        sdpa,
        [q, k, v],
        [t.reshape(64, 197, 12, 64) for t in (q, k, v)],
        q.shape,
        flops=4 * 64 * 12 * 197 * 197 * 64,
        baseline_name="SDPA (contiguous inputs)",
    )
    # Temporal attention: 8 clips x 196 positions, 8 tubelet frames.
    q, k, v = qkv_views(8, 8, 196)
    both(
        "attention temporal 1568x8 H12 D64",
        lambda q, k, v: attention(q, k, v, axis="temporal", backend="triton"),
        sdpa,
        [q, k, v],
        [t.permute(0, 2, 1, 3, 4).reshape(8 * 196, 8, 12, 64) for t in (q, k, v)],
        q.shape,
        bytes_=4 * q.numel() * 2,
        baseline_name="SDPA (permuted contiguous inputs)",
    )
    # Joint attention, Model 1 at 32 frames: 3137 tokens.
    q, k, v = qkv_views(2, 3137)
    both(
        "attention joint 2x3137 H12 D64",
        lambda q, k, v: attention(q, k, v, axis="joint", backend="triton"),
        sdpa,
        [q, k, v],
        [q, k, v],
        q.shape,
        flops=4 * 2 * 12 * 3137 * 3137 * 64,
        baseline_name="SDPA (strided inputs)",
    )
    # Patch embedding: 8 clips of 32 frames at 224^2 into 768 channels.
    video = torch.randn(8, 32, 3, 224, 224, device=DEVICE, dtype=bf16)
    conv = torch.nn.Conv3d(3, 768, (2, 16, 16), (2, 16, 16)).to(DEVICE, bf16)
    # The clip is an input, not a leaf: training needs no gradient of the pixels.
    embed = [conv.weight.detach(), conv.bias.detach(), torch.randn(1 + 16 * 196, 768, device=DEVICE, dtype=bf16)]
    embed.append(torch.randn(768, device=DEVICE, dtype=bf16))

    def conv_embed(weight, bias, pos, cls):
        x = F.conv3d(video.transpose(1, 2), weight, bias, stride=(2, 16, 16)).flatten(2).transpose(1, 2)
        return torch.cat([cls.expand(x.shape[0], 1, -1), x], 1) + pos

    both(
        "patch_embed 8x32x3x224x224 -> 768",
        lambda *a: patch_embed(video, *a, backend="triton"),
        conv_embed,
        embed,
        embed,
        (8, 1 + 16 * 196, 768),
        flops=2 * 8 * 16 * 196 * 768 * 1536,
        baseline_name="Conv3d + cat + pos",
    )
    # LayerNorm-MLP and LayerNorm-QKV over 8 x 1569 tokens of ViViT-B.
    x = torch.randn(8, 1569, 768, device=DEVICE, dtype=bf16)
    lw, lb, w1, b1 = _ln_params(768, 3072, bf16)
    w2, b2 = (0.02 * torch.randn(768, 3072)).to(DEVICE, bf16), torch.zeros(768, device=DEVICE, dtype=bf16)
    tokens = 8 * 1569

    def eager_mlp(x, lw, lb, w1, b1, w2, b2):
        h = F.layer_norm(x, (768,), lw, lb, 1e-6)
        return x + F.linear(F.gelu(F.linear(h, w1, b1), approximate="tanh"), w2, b2)

    mlp = [x, lw, lb, w1, b1, w2, b2]
    both(
        "ln_mlp 12552 tokens 768->3072->768",
        lambda *a: ln_mlp(*a, eps=1e-6, activation="gelu_tanh", backend="triton"),
        eager_mlp,
        mlp,
        mlp,
        x.shape,
        flops=2 * 2 * tokens * 768 * 3072,
        baseline_name="eager (cuBLAS)",
    )
    wq, bq = _ln_params(768, 2304, bf16)[2:]
    lin = [x, lw, lb, wq, bq]
    both(
        "ln_linear 12552 tokens 768->2304",
        lambda *a: ln_linear(*a, eps=1e-6, backend="triton"),
        lambda x, lw, lb, w, b: F.linear(F.layer_norm(x, (768,), lw, lb, 1e-6), w, b),
        lin,
        lin,
        (8, 1569, 2304),
        flops=2 * tokens * 768 * 2304,
        baseline_name="eager (cuBLAS)",
    )
    # One ViViT-B training step under autocast, 16 frames, batch 4: Models 1 and 3, Triton and auto against eager.
    from vivit import VivitConfig, VivitForVideoClassification

    clip = torch.randn(4, 16, 3, 224, 224, device=DEVICE)
    labels = torch.zeros(4, dtype=torch.long, device=DEVICE)
    for variant in ("spatiotemporal", "factorized_self_attention"):
        torch.manual_seed(0)
        cfg = VivitConfig.from_preset("vivit-b-16x2", variant=variant, num_frames=16)
        model = VivitForVideoClassification(cfg).to(DEVICE).train()

        def step(backend, model=model):
            def go():
                model.config.backend = backend
                with torch.autocast("cuda", torch.bfloat16):
                    model(clip, labels=labels).loss.backward()

            return go

        for backend in ("triton", "auto"):
            row(
                f"ViViT-B {variant} train step, bf16 autocast, 4x16 frames, backend={backend}",
                step(backend),
                step("eager"),
                baseline_name="backend=eager (SDPA + cuBLAS)",
                rep_ms=600,  # steps of 20-90 ms: 60 ms would time one or two of them (rows varied by 25 %)
            )
    stage.finish()
    return stage


# ----------------------------------------------------------------------------------------------------------------------
# Stage report: one JSON, one Markdown
# ----------------------------------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _table(rows: list[dict], keys: list[str]) -> list[str]:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return lines


def stage_report(outdir: str) -> int:
    out = Path(outdir)
    expected = ["env", *(f"correct-{op}" for op in OPS), "train", "bench"]
    stages = {}
    for name in expected:
        path = out / f"{name}.json"
        data = json.loads(path.read_text()) if path.exists() else {"stage": name, "status": "not run", "rows": []}
        if data["status"] == "running":
            data["status"] = "cut short (time limit or crash): rows so far only"
        stages[name] = data
    (out / "first-light.json").write_text(json.dumps(stages, indent=1, default=str))

    env = (stages["env"]["rows"] or [{}])[0]
    md = [
        f"## GPU first light: {env.get('device', '?')} ({env.get('capability', '?')}), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "Command: `bash bench/run_gpu.sh` (bench/first_light.py, each stage in its own process and time limit).",
        "",
        f"torch {env.get('torch')}, triton {env.get('triton')}, transformers {env.get('transformers')}, "
        f"CUDA {env.get('cuda')}, Python {env.get('python')}; shared memory per block (opt-in) "
        f"{env.get('shared_memory_per_block_optin')} B, {env.get('multiprocessors')} SMs.",
        "",
        "| stage | status | rows | failed | seconds |",
        "|---|---|---|---|---|",
    ]
    for name, data in stages.items():
        failed = sum(1 for r in data["rows"] if r.get("ok") is False or "error" in r)
        md.append(f"| {name} | {data['status']} | {len(data['rows'])} | {failed} | {data.get('seconds', '-')} |")
    md += ["", "### Correctness (max and mean |error| against fp64 from the rounded inputs; bound = rule above)", ""]
    rows = [r for op in OPS for r in stages[f"correct-{op}"]["rows"]]
    keys = ["op", "case", "dtype", "tensor", "ok", "max_err", "max_bound", "eager_max_err", "mean_err", "mean_bound"]
    md += _table(rows, keys + ["error"] if any("error" in r for r in rows) else keys)
    md += ["", "### Training step (grad error: relative norm against the fp32 eager step)", ""]
    train = stages["train"]["rows"]
    keys = ["variant", "ok", "loss_fp32_eager", "loss_bf16_eager", "loss_bf16_triton", "grad_rel_err_triton"]
    md += _table(train, keys + ["grad_rel_err_eager", "error"])
    for r in train:
        for path in ("ops_triton", "ops_auto"):
            if r.get(path):
                md.append(f"- {r['variant']} {path}: " + ", ".join(f"{k} {v}" for k, v in r[path].items()))
    md += ["", "### Timed rows (triton.testing.do_bench medians; MEASURED on this GPU)", ""]
    keys = ["row", "ours_ms", "baseline", "baseline_ms", "speedup", "ours_tflops", "pct_matmul", "ours_gbps"]
    md += _table(stages["bench"]["rows"], keys + ["pct_copy", "tflops", "gbps", "error"])
    path_log = out / "gpu-path.log"
    if path_log.exists():  # bench/gpu_path_check.py, run by run_gpu.sh between the train and bench stages
        log = path_log.read_text().strip()[-6000:]
        md += ["", "### GPU path checks (bench/gpu_path_check.py)", "", "```", log, "```"]
    (out / "first-light.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    bad = [n for n, d in stages.items() if d["status"] != "ok"]
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "report":
        return stage_report(args[0])
    if not torch.cuda.is_available() and not SMOKE:
        print("first_light.py: no CUDA GPU visible", file=sys.stderr)
        return 2
    if cmd == "env":
        stage = stage_env(args[0])
    elif cmd == "correct" and len(args) == 2 and args[0] in OPS:
        stage = stage_correct(args[0], args[1])
    elif cmd == "train":
        stage = stage_train(args[0])
    elif cmd == "bench":
        stage = stage_bench(args[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if stage.data["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
