"""What our Triton kernels would cost on real GPUs, measured by compiling them here, without a GPU.

    python -m vivit_kernels.report            # tables: compiled resources per kernel, then the modeled roofline
    python -m vivit_kernels.report --json     # only the compiled rows, as one JSON list on stdout (logs on stderr)
    python -m vivit_kernels.report --markdown # the same tables as Markdown pipe tables

Part 1 (compiled, real): every kernel module's `aot_specs()` (every configuration dispatch can launch, at realistic
ViViT shapes) is compiled for sm_80 (A100), sm_86 (RTX 30xx, A10; sm_89 has the same 99 KiB limit) and sm_90 (H100)
by Triton's own compiler and `ptxas`; each row gives registers per thread, spill bytes, shared memory, whether
tensor-core instructions were emitted, resident programs per SM, and `auto`: whether backend="auto" takes that
configuration on that target (the op module's auto_config_reason, the rule vivit.models.dispatch applies, with the
target's shared memory per block). Rows auto takes must not spill and must use tensor cores; no row may exceed shared
memory. On top of this compile-time rule, dispatch leaves to eager the (op, mode) pairs whose kernels were measured
slower than eager PyTorch on a GPU (`vivit_kernels._utils.SLOWER_THAN_EAGER`): `auto` here is "eligible", and the header
lists those pairs.
Identical compiles (e.g. the "mask" and "nomask" rows of attention, whose mask is a runtime flag) run once.

Part 2 (modeled, not measured): a roofline for ViViT-B/16x2 shapes on H100, A100 and H200 from spec-sheet peaks:
FLOPs, the fewest bytes each op must move, the floor time max(FLOPs / peak, bytes / bandwidth), and the same for the
unfused PyTorch sequence the op replaces, so the bytes fusion saves are explicit. For attention it adds the MMA work
our tiles execute (padding included) and the softmax's exp limit on the special-function units; for the LN-MLP the
bytes our kernels move (the hidden activation, and in training the saved pre-activation); and a floor for our
kernels' own work at the ceilings measured on an H200.

Compiling needs a process without TRITON_INTERPRET (interpreted kernels have no compile path): when the variable is
set, this module re-executes itself without it. Nothing is cached in the repository.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import resource
import sys
import time
from dataclasses import dataclass

# The kernel modules, each owning one op and its kernels (vivit_kernels/<name>.py with `aot_specs()`).
KERNEL_MODULES = ("attention", "patch_embed", "ln_mlp")
TARGETS = (80, 86, 90)
SHARED_LIMIT = {80: 163 * 1024, 86: 99 * 1024, 90: 227 * 1024}  # opt-in shared memory per block (sm_89 as sm_86)
COMPILED_KEYS = (
    "kernel",
    "config",
    "target",
    "registers",
    "spill_bytes",
    "shared_bytes",
    "tensor_cores",
    "programs_per_sm",
)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------------
# Part 1: compiled resources
# ----------------------------------------------------------------------------------------------------------------------


def triton_kernels(module) -> list[str]:
    """Names of the Triton kernels (jitted, autotuned or heuristics-wrapped) defined in `module`."""
    try:
        from triton.runtime.jit import KernelInterface
    except ImportError:  # pragma: no cover - no triton, no kernels
        return []
    return sorted(n for n, obj in vars(module).items() if isinstance(obj, KernelInterface))


def module_status(name: str):
    """(module or None, specs, problem or None, note or None) for vivit_kernels/<name>.py.

    A missing file, or a module that defines no Triton kernel yet, is a note; a module with kernels but without
    `aot_specs()` (or with an empty one) is a problem.
    """
    if importlib.util.find_spec(f"vivit_kernels.{name}") is None:
        return None, [], None, f"vivit_kernels/{name}.py is not written yet"
    module = importlib.import_module(f"vivit_kernels.{name}")
    kernels = triton_kernels(module)
    if not hasattr(module, "aot_specs"):
        if not kernels:
            return module, [], None, f"vivit_kernels/{name}.py defines no Triton kernel yet"
        return module, [], f"vivit_kernels/{name}.py defines Triton kernels {kernels} but no aot_specs()", None
    specs = list(module.aot_specs())
    if not specs:
        return module, [], f"vivit_kernels/{name}.py: aot_specs() returned no KernelSpec", None
    return module, specs, None, None


def collect_specs(modules=KERNEL_MODULES):
    """[(module name, spec)], [problems], [notes]."""
    specs, problems, notes = [], [], []
    for name in modules:
        _, found, problem, note = module_status(name)
        problems += [problem] if problem else []
        notes += [note] if note else []
        specs += [(name, spec) for spec in found]
    return specs, problems, notes


_JOBS: list = []  # (module name, spec, arch), read by forked workers by index


def _compile_one(index: int) -> dict:
    from vivit_kernels.aot import compile_spec

    name, spec, arch = _JOBS[index]
    start = time.perf_counter()
    try:
        row = compile_spec(spec, arch)
    except Exception as exc:  # a failing configuration is a row with an error, never a crash of the whole report
        row = {
            "kernel": spec.name,
            "config": spec.config,
            "target": f"sm_{arch}",
            "registers": None,
            "spill_bytes": None,
            "shared_bytes": None,
            "tensor_cores": None,
            "uses_dot": spec.uses_dot,
            "programs_per_sm": None,
            "error": f"{type(exc).__name__}: {str(exc).strip()[-600:]}",
        }
    row["module"] = name
    row["compile_s"] = round(time.perf_counter() - start, 2)
    return row


def compile_all(specs, targets=TARGETS, jobs: int = 1) -> list[dict]:
    """Compile every (spec, target), each distinct compile once; rows keep the order of `specs` then `targets`."""
    wanted = [(name, spec, arch) for name, spec in specs for arch in targets]
    first: dict = {}
    for i, (_, spec, arch) in enumerate(wanted):
        first.setdefault(spec.compile_key(arch), i)
    _JOBS[:] = [wanted[i] for i in first.values()]
    indices = range(len(_JOBS))
    if jobs > 1 and len(_JOBS) > 1:
        import multiprocessing as mp

        # Largest first would balance better, but the order is unknown before compiling; small chunks do well.
        with mp.get_context("fork").Pool(jobs) as pool:
            compiled = pool.map(_compile_one, indices, chunksize=1)
    else:
        compiled = [_compile_one(i) for i in indices]
    by_key = {key: row for key, row in zip(first, compiled)}
    rows = []
    for name, spec, arch in wanted:
        key = spec.compile_key(arch)
        row = dict(by_key[key], kernel=spec.name, config=spec.config, module=name)
        if first[key] != len(rows):
            row["compile_s"] = 0.0  # the same binary as an earlier row
            row["deduped"] = True
        row.update(_auto_fields(spec, arch))
        row.update(spec.extra)  # e.g. attention's useful_fraction (useful / executed MMA FLOPs) and useful_at
        rows.append(row)
    _log(f"{len(rows)} rows from {len(compiled)} distinct compiles")
    for row in rows:
        status = row.get("error") or f"{row['registers']} regs, {row['spill_bytes']} B spilled"
        _log(f"compiled {row['kernel']} [{row['config']}] {row['target']} in {row['compile_s']} s: {status}")
    return rows


def _auto_fields(spec, arch: int) -> dict:
    """`auto` (does backend="auto" take this configuration on sm_`arch`), why not, and the rule's shared bound."""
    limit = SHARED_LIMIT[arch]
    if spec.auto_rule is None:
        reason = "auto never launches this configuration"
    else:
        reason = spec.auto_rule(arch, limit)
    return {
        "auto": reason is None,
        "auto_reason": reason,
        "shared_estimate": spec.shared_estimate,
        "shared_limit": limit,
    }


def row_failures(row: dict) -> list[str]:
    """Why a compiled row is not acceptable (empty when it is). Every row must compile within its target's shared
    memory; a row that `auto` takes (or one without an `auto` field) must also not spill, stay within 255 registers
    and use tensor cores where it has a dot. Rows auto leaves to eager (fp32 ieee, ...) document what strict
    backend="triton" would run."""
    if row.get("error"):
        return [f"does not compile: {row['error']}"]
    out = []
    if row["shared_bytes"] > row["shared_limit"]:
        out.append(f"needs {row['shared_bytes']} B shared memory > limit {row['shared_limit']}")
    # The auto rule's shared-memory bound must hold wherever it decides (rows it leaves to eager for their dtype or
    # precision need no bound).
    decides = row.get("auto", True) or "shared memory" in (row.get("auto_reason") or "")
    if decides and row.get("shared_estimate") is not None and row["shared_bytes"] > row["shared_estimate"]:
        out.append(f"needs {row['shared_bytes']} B shared memory > the auto rule's bound {row['shared_estimate']}")
    if not row.get("auto", True):
        return out
    if row["spill_bytes"]:
        out.append(f"spills {row['spill_bytes']} bytes")
    if row["registers"] > 255:
        out.append(f"uses {row['registers']} registers > 255")
    if row.get("uses_dot", True) and not row["tensor_cores"]:
        out.append("emits no tensor-core instruction (mma/wgmma)")
    return out


def row_notes(row: dict) -> str:
    """What a row auto does not take would cost under strict backend="triton" (spills, no tensor cores)."""
    if row.get("error") or row.get("auto", True):
        return ""
    notes = []
    if row["spill_bytes"]:
        notes.append(f"spills {row['spill_bytes']} B")
    if row.get("uses_dot", True) and not row["tensor_cores"]:
        notes.append("no tensor cores")
    return ", ".join(notes)


# ----------------------------------------------------------------------------------------------------------------------
# Part 2: modeled roofline
# ----------------------------------------------------------------------------------------------------------------------

# Spec-sheet peaks (SXM parts): dense bf16 tensor-core FLOP/s and HBM bytes/s. The H200 is the H100's GH100 chip
# (same 132 SMs and clocks, so the same 989 TFLOP/s) with 4.8 TB/s of HBM3e.
GPUS = {"H100": (989e12, 3.35e12), "A100": (312e12, 2.039e12), "H200": (989e12, 4.8e12)}
# Ceilings MEASURED on the H200 (BENCHMARKS.md, GPU section, four runs): bf16 matmul 8192^3 766-799 TFLOP/s, device
# copy 4.22-4.25 TB/s (bytes read + written). The floors use the best of the runs.
MEASURED = {"H200": (799e12, 4.25e12)}
# Special-function unit (MUFU) throughput, exp2 results per second: 16 per clock per SM on compute capability 8.x
# and 9.0 (CUDA C++ Programming Guide, throughput of native arithmetic instructions: exp2/log2/rcp/rsqrt/sin/cos),
# times SMs times boost clock: H100 / H200 SXM 132 x 1.98 GHz (FlashAttention-3 quotes 3.9 TFLOPS of special
# functions for the H100 SXM5 against 989 of bf16 matmul), A100 SXM 108 x 1.41 GHz. Softmax needs one exp per score;
# at head dim 64 a score costs 4 x 64 = 256 MMA FLOPs forward, 256 / 989e12 s against 1 / 4.18e12 s for its exp:
# the exp limit is as tight as the tensor cores.
MUFU_PER_S = {"H100": 16 * 132 * 1.98e9, "A100": 16 * 108 * 1.41e9, "H200": 16 * 132 * 1.98e9}


@dataclass
class Shape:
    """ViViT-B/16x2 on 32x224x224 clips, bf16, batch 8."""

    batch: int = 8
    frames: int = 32
    channels: int = 3
    image: int = 224
    tubelet: tuple = (2, 16, 16)
    hidden: int = 768
    heads: int = 12
    mlp: int = 3072
    elem: int = 2  # bytes per bf16 element

    @property
    def t_tokens(self) -> int:
        return self.frames // self.tubelet[0]

    @property
    def s_tokens(self) -> int:
        return (self.image // self.tubelet[1]) * (self.image // self.tubelet[2])

    @property
    def tokens(self) -> int:
        return self.t_tokens * self.s_tokens

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def roofline_ops(shape: Shape | None = None) -> list[dict]:
    """FLOPs, fewest bytes (fused) and bytes of the unfused PyTorch sequence for each op, at ViViT-B/16x2 shapes."""
    s = shape or Shape()
    e, B, D, I, H, hd = s.elem, s.batch, s.hidden, s.mlp, s.heads, s.head_dim
    T, S, N = s.t_tokens, s.s_tokens, s.tokens
    L1 = N + 1  # Model 1: CLS + N tokens
    K = s.channels * s.tubelet[0] * s.tubelet[1] * s.tubelet[2]
    video = B * s.frames * s.channels * s.image * s.image
    ops = []

    # Tubelet embedding with CLS and position embedding (Model 1).
    fused = e * (video + D * K + D + D + L1 * D + B * L1 * D)
    unfused = e * (
        video
        + B * N * K  # rearrange + contiguous: read the video, write the tubelet rows
        + B * N * K
        + D * K
        + D
        + B * N * D  # F.linear: read the rows and the weight, write the tokens
        + B * N * D
        + B * L1 * D  # torch.cat with the CLS token
        + B * L1 * D
        + L1 * D
        + B * L1 * D
    )  # + position embedding
    ops.append(
        dict(
            op="patch_embed_fwd",
            shape=f"B={B} video {s.frames}x{s.image}^2 -> {L1}x{D}",
            flops=2 * B * N * K * D,
            fused_bytes=fused,
            unfused_bytes=unfused,
            replaces="rearrange+contiguous, F.linear, cat CLS, add pos",
        )
    )

    # LayerNorm + fused QKV projection.
    M = B * L1
    fused = e * (M * D + 3 * D * D + 3 * D + 2 * D + M * 3 * D)
    unfused = fused + e * 2 * M * D  # the normalised activations written and read back
    ops.append(
        dict(
            op="ln_linear_fwd (QKV)",
            shape=f"M={M} D={D} N={3 * D}",
            flops=2 * M * D * 3 * D,
            fused_bytes=fused,
            unfused_bytes=unfused,
            replaces="F.layer_norm, F.linear",
        )
    )

    # Attention over the three axes. Fused: read Q, K, V (strided views of the QKV output), write O once.
    # Unfused: what eager code does around SDPA (itself fused): layout copies in and out.
    for axis, seqs, length, extra_copies in (
        ("joint", B * H, L1, 1),  # q/k/v views are SDPA-ready; the (B, H, L, hd) output is transposed back (1 copy)
        ("spatial", B * T * H, S, 1),  # (B*T', S, H, hd) views; output transposed back
        ("temporal", B * S * H, T, 4),  # q, k, v gathered to (B*S, H, T', hd) and the output scattered back
    ):
        tokens = seqs * length * hd  # elements of one of Q/K/V/O
        flops = 4 * seqs * length * length * hd
        fused = e * 4 * tokens
        executed, exps = _attention_executed("fwd", seqs, length, hd, e)
        ops.append(
            dict(
                op=f"attention_fwd ({axis})",
                shape=f"{seqs} seqs x {length} tokens, hd {hd}",
                flops=flops,
                executed_flops=executed,
                exps=seqs * length * length,
                executed_exps=exps,
                fused_bytes=fused,
                unfused_bytes=fused + e * 2 * extra_copies * tokens,
                replaces="layout copies + SDPA (flash)",
            )
        )
        # Backward: read Q, K, V, O, dO and the fp32 log-sum-exp, write dQ, dK, dV; 2.5x the forward FLOPs
        # (five GEMMs, one of them recomputing the scores). Unfused adds the copy of dO into SDPA's layout and the
        # gather of dQ/dK/dV back into the fused QKV gradient. Executed: our kernels' tiles, and where the backward
        # is split into a dQ and a dK/dV kernel, each recomputes the scores and their exp (seven GEMMs, two exps).
        fused = e * 8 * tokens + 4 * seqs * length
        executed, exps = _attention_executed("bwd", seqs, length, hd, e)
        ops.append(
            dict(
                op=f"attention_bwd ({axis})",
                shape=f"{seqs} seqs x {length} tokens, hd {hd}",
                flops=int(2.5 * flops),
                executed_flops=executed,
                exps=seqs * length * length,
                executed_exps=exps,
                fused_bytes=fused,
                unfused_bytes=fused + e * 2 * 4 * tokens,
                replaces="layout copies + SDPA backward",
            )
        )

    # LayerNorm + MLP + residual. Fewest bytes: x in, weights, out (the intermediate need never reach memory).
    fused = e * (2 * M * D + 2 * D * I + I + D + 2 * D)
    unfused = e * (
        M * D
        + M * D  # LN: read x, write x_norm
        + M * D
        + D * I
        + I
        + M * I  # fc1: read x_norm and W1, write h
        + 2 * M * I  # GELU: read h, write g
        + M * I
        + I * D
        + D
        + M * D  # fc2: read g and W2, write y
        + 3 * M * D  # residual add: read x and y, write out
        + 2 * D
    )
    # What our kernels move (vivit_kernels/ln_mlp.py): the statistics kernel reads x and writes mean and rstd (fp32);
    # fc1 reads x again with the statistics and W1 and writes the hidden activation h; fc2 reads h, W2 and x (the
    # residual) and writes out. Training also writes the pre-activation z (M x I) that GELU's backward needs.
    kernel_inference = e * (3 * M * D + 2 * D * I + I + D + 2 * D + 2 * M * I + M * D) + 4 * 2 * 2 * M
    for mode, fewest, kernel_bytes in (
        ("inference", fused, kernel_inference),
        # Training must keep an M x I activation for the backward (or recompute fc1): at least one write of it.
        ("training", fused + e * M * I, kernel_inference + e * M * I),
    ):
        ops.append(
            dict(
                op=f"ln_mlp_fwd ({mode})",
                shape=f"M={M} D={D} I={I}",
                flops=2 * 2 * M * D * I,
                fused_bytes=fewest,
                kernel_bytes=kernel_bytes,
                unfused_bytes=unfused,
                replaces="LN, fc1, GELU, fc2, residual add",
            )
        )

    for op in ops:
        op["bytes_saved"] = op["unfused_bytes"] - op["fused_bytes"]
        for gpu, (peak, bandwidth) in GPUS.items():
            op[f"{gpu}_floor_us"] = 1e6 * max(op["flops"] / peak, op["fused_bytes"] / bandwidth)
            op[f"{gpu}_unfused_floor_us"] = 1e6 * max(op["flops"] / peak, op["unfused_bytes"] / bandwidth)
            op[f"{gpu}_bound"] = "compute" if op["flops"] / peak >= op["fused_bytes"] / bandwidth else "memory"
            # The exp limit of softmax, on the useful scores.
            if "exps" in op:
                op[f"{gpu}_exp_floor_us"] = 1e6 * op["exps"] / MUFU_PER_S[gpu]
        for gpu, (peak, bandwidth) in MEASURED.items():
            op[f"{gpu}_measured_floor_us"], op[f"{gpu}_measured_bound"] = _kernel_floor(op, peak, bandwidth, gpu)
    return ops


def _kernel_floor(op: dict, peak: float, bandwidth: float, gpu: str) -> tuple[float, str]:
    """Floor of our kernels' own work at measured ceilings: executed MMA FLOPs (padding included), executed exps at
    the MUFU rate, and the bytes the kernels move (the fewest where not counted separately); which one binds."""
    times = {
        "compute": op.get("executed_flops", op["flops"]) / peak,
        "memory": op.get("kernel_bytes", op["fused_bytes"]) / bandwidth,
    }
    if "executed_exps" in op:
        times["exp"] = op["executed_exps"] / MUFU_PER_S[gpu]
    bound = max(times, key=times.get)
    return 1e6 * times[bound], bound


def _attention_executed(direction: str, seqs: int, length: int, head_dim: int, elem: int) -> tuple[int, int]:
    """(executed MMA FLOPs, executed exps) of our attention kernels for one direction, from the launch's tiles."""
    from vivit_kernels import attention as attn

    if direction == "fwd":
        cfg = attn._fwd_config(length, seqs, head_dim, elem)
        parts = [("fwd", {k: v for k, v in cfg.items() if k not in ("num_warps", "num_stages")})]
    else:
        cfg = attn._bwd_config(length, seqs, head_dim, elem)
        if "PACK" in cfg:
            parts = [("bwd_tile", cfg)]
        else:
            parts = [(p, attn._pass_config(cfg, p)) for p in ("dq", "dkdv")]
    flops = exps = 0
    for kernel, part in parts:
        executed = attn.mma_flops(kernel, part, length, head_dim, seqs)[1]
        flops += executed
        # Every dot of a tile is BLOCK_M x BLOCK_N x the padded head dim; the tile's scores are exponentiated once.
        exps += executed // (2 * attn._DOTS_PER_TILE[kernel] * (part["BLOCK_D"] + part["TAIL_D"]))
    return flops, exps


# ----------------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------------


def _table(headers, rows, markdown: bool = False) -> str:
    cells = [[str(c) for c in r] for r in rows]
    if markdown:  # GitHub pipe table, for pasting into documents
        line = lambda r: "| " + " | ".join(c.replace("|", "/") for c in r) + " |"  # noqa: E731
        return "\n".join([line(headers), line(["---"] * len(headers)), *(line(r) for r in cells)])
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def format_compiled(rows: list[dict], markdown: bool = False) -> str:
    headers = ["kernel", "config", "target", "auto", "regs", "spill B", "shared KiB", "tensor cores", "programs/SM",
               "useful MMA %", "status"]  # fmt: skip
    body = []
    for r in rows:
        auto = "yes" if r.get("auto", True) else "no"
        if r.get("error"):
            body.append([r["kernel"], r["config"], r["target"], auto, "-", "-", "-", "-", "-", "-", "FAILS TO COMPILE"])
            continue
        tc = (
            ("wgmma" if r.get("wgmma") else "mma")
            if r["tensor_cores"]
            else ("no" if r.get("uses_dot", True) else "no dot")
        )
        status = "; ".join(row_failures(r)) or "ok"
        if row_notes(r):
            status += f" (auto leaves it to eager: {row_notes(r)})"
        body.append(
            [
                r["kernel"],
                r["config"],
                r["target"],
                auto,
                r["registers"],
                r["spill_bytes"],
                f"{r['shared_bytes'] / 1024:.1f}",
                tc,
                r["programs_per_sm"],
                _useful_cell(r),
                status,
            ]
        )
    return _table(headers, body, markdown)


def _useful_cell(row: dict) -> str:
    if row.get("useful_fraction") is None:
        return "-"
    return f"{100 * row['useful_fraction']:.1f} ({row['useful_at']})"


def format_summary(rows: list[dict], markdown: bool = False) -> str:
    """One line per kernel and target: how many configurations, and the range of each resource."""
    groups: dict = {}
    for r in rows:
        if not r.get("error"):
            groups.setdefault((r["kernel"], r["target"]), []).append(r)
    headers = ["kernel", "target", "configs", "auto", "regs", "spill B", "shared KiB", "tensor cores", "programs/SM"]
    body = []
    for (kernel, target), rs in groups.items():
        span = lambda key, rs=rs: f"{min(r[key] for r in rs)}-{max(r[key] for r in rs)}"
        if not any(r.get("uses_dot", True) for r in rs):
            tc = "no dot (row kernel)"
        else:
            tc = "all" if all(r["tensor_cores"] for r in rs) else f"{sum(r['tensor_cores'] for r in rs)}/{len(rs)}"
        shared = f"{min(r['shared_bytes'] for r in rs) / 1024:.0f}-{max(r['shared_bytes'] for r in rs) / 1024:.0f}"
        body.append(
            [
                kernel,
                target,
                len(rs),
                sum(1 for r in rs if r.get("auto", True)),
                span("registers"),
                max(r["spill_bytes"] for r in rs),
                shared,
                tc,
                span("programs_per_sm"),
            ]
        )
    return _table(headers, body, markdown)


def format_roofline(ops: list[dict], markdown: bool = False) -> str:
    headers = ["op", "shape", "GFLOP", "executed GFLOP", "fewest MB", "kernel MB", "unfused MB", "saved MB"]
    for gpu in GPUS:
        headers += [f"{gpu} floor us", f"{gpu} unfused us"]
    headers += [f"{gpu} exp us" for gpu in GPUS]
    headers += [f"{gpu} measured-ceiling floor us" for gpu in MEASURED]
    mb = lambda op, key: f"{op[key] / 1e6:.1f}" if key in op else "-"  # noqa: E731
    body = []
    for op in ops:
        row = [
            op["op"],
            op["shape"],
            f"{op['flops'] / 1e9:.1f}",
            f"{op['executed_flops'] / 1e9:.1f} ({100 * op['flops'] / op['executed_flops']:.0f} % useful)"
            if "executed_flops" in op
            else "-",
            mb(op, "fused_bytes"),
            mb(op, "kernel_bytes"),
            mb(op, "unfused_bytes"),
            mb(op, "bytes_saved"),
        ]
        for gpu in GPUS:
            row += [f"{op[f'{gpu}_floor_us']:.1f} ({op[f'{gpu}_bound'][0]})", f"{op[f'{gpu}_unfused_floor_us']:.1f}"]
        row += [f"{op[f'{gpu}_exp_floor_us']:.1f}" if f"{gpu}_exp_floor_us" in op else "-" for gpu in GPUS]
        row += [f"{op[f'{gpu}_measured_floor_us']:.1f} ({op[f'{gpu}_measured_bound']})" for gpu in MEASURED]
        body.append(row)
    peaks = ", ".join(f"{g} {p / 1e12:.0f} TFLOP/s bf16 dense, {b / 1e12:.2f} TB/s" for g, (p, b) in GPUS.items())
    mufu = ", ".join(f"{g} {r / 1e12:.2f}e12 exp/s" for g, r in MUFU_PER_S.items())
    measured = ", ".join(
        f"{g} {p / 1e12:.0f} TFLOP/s matmul, {b / 1e12:.2f} TB/s copy" for g, (p, b) in MEASURED.items()
    )
    return (
        "MODELED, NOT MEASURED: roofline floors for ViViT-B/16x2 (32x224^2, tubelet 2x16x16, batch 8, bf16).\n"
        f"Spec-sheet peaks: {peaks}. Floor = max(useful FLOPs / peak, fewest bytes / bandwidth); (c) compute-, "
        "(m) memory-bound.\n"
        "'fewest MB' is what the op must move at least; 'kernel MB' what our kernels move where counted; 'unfused MB' "
        "the PyTorch sequence it replaces.\n"
        "'executed GFLOP': the MMA work our kernels' tiles do (padding, packed off-diagonal blocks, the backward's "
        "recomputed scores).\n"
        f"'exp us': one exp per useful score at the special-function unit rate (16 / clock / SM: {mufu}).\n"
        f"'measured-ceiling floor': executed FLOPs, executed exps and kernel bytes at the ceilings measured on the GPU "
        f"({measured}); which one binds: compute, exp or memory.\n\n" + _table(headers, body, markdown)
    )


def version_header() -> str:
    import torch
    import triton

    from vivit_kernels._utils import SLOWER_THAN_EAGER
    from vivit_kernels.attention import FP32_HEAD_DIM_BUCKETS, HEAD_DIM_BUCKETS

    slower = ", ".join(f"{op} ({mode})" for op, mode in sorted(SLOWER_THAN_EAGER))
    buckets, fp32_buckets = (
        ", ".join(f"{lo}-{hi} -> {block}" + (f"+{tail}" if tail else "") for lo, hi, block, tail in table)
        for table in (HEAD_DIM_BUCKETS, FP32_HEAD_DIM_BUCKETS)
    )
    return (
        f"vivit_kernels.report: triton {triton.__version__}, torch {torch.__version__}\n"
        f"auto = eligible by the compile-time rule; dispatch also leaves to eager what was measured slower than eager "
        f"on a GPU: {slower}\n"
        f"attention head-dim buckets (head dims -> BLOCK_D[+TAIL_D] columns): {buckets}; fp32: {fp32_buckets}\n"
        f"useful MMA % = useful / executed tensor-core FLOPs of the kernel's pass, its full-tile and tail launches "
        f"together (tile padding and the off-diagonal blocks of packed tiles are waste), at the length, head dim and "
        f"sequence count in brackets"
    )


def _reexec_without_interpreter() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    os.execve(sys.executable, [sys.executable, "-m", "vivit_kernels.report", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vivit_kernels.report", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the compiled rows as a JSON list on stdout")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiles")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (pipe) tables")
    parser.add_argument("--no-roofline", action="store_true", help="skip the modeled roofline tables")
    args = parser.parse_args(argv)

    header = version_header()
    _log(header)
    specs, problems, notes = collect_specs()
    for note in notes:
        _log(f"note: {note}: no rows for it")
    start = time.perf_counter()
    rows = compile_all(specs, jobs=args.jobs)
    auto_rows = sum(1 for r in rows if r.get("auto"))
    wall = time.perf_counter() - start
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    _log(
        f"compiled {len(rows)} kernel configurations ({auto_rows} taken by auto) in {wall:.1f} s wall, {cpu:.0f} s CPU"
    )
    _log(f"REPORT_CPU_SECONDS {cpu:.1f}")
    for row in rows:
        for failure in row_failures(row):
            problems.append(f"{row['kernel']} [{row['config']}] {row['target']}: {failure}")
    for problem in problems:
        _log(f"PROBLEM: {problem}")

    if args.json:
        print(json.dumps(rows))
    else:
        print(header + "\n")
        print("COMPILED (ahead of time by Triton's compiler and ptxas, read from the cubin; no GPU used)\n")
        print(format_compiled(rows, args.markdown) if rows else "(no kernel module provides aot_specs() yet)")
        if rows:
            print("\nSUMMARY per kernel and target (ranges over the kept configurations)\n")
            print(format_summary(rows, args.markdown))
        if not args.no_roofline:
            print("\n" + format_roofline(roofline_ops(), args.markdown))
    return 1 if problems else 0


if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") == "1":
        _reexec_without_interpreter()
    sys.exit(main())
