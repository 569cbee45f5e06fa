"""The benchmark harness: interleaved comparisons within one run, throughput next to time, measured ceilings.

Every comparison times "ours" and its baselines in alternating rounds of the same run (shared machines drift, so only
ratios measured side by side are meaningful). pytest-benchmark times ours; the baselines run in its untimed `setup`
hook right before each round of ours, timed here. `--benchmark-disable` gives one quick pass of each candidate.
Nothing here asserts on a timing.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field

import torch

RESULTS: list[Row] = []
CEILINGS: dict = {}  # measured at the start of the run
CEILINGS_END: dict = {}  # and at its end
NOTES: list[str] = []
MEMORY: list[dict] = []  # {op, peaks: {impl: bytes}, ours, method}
SCALING: list[dict] = []  # {frames, ours, seconds: {impl: s}, peaks: {impl: bytes}, method} (bench_scaling.py)
OPTIONS = {"disabled": False, "seconds": float(os.environ.get("VIVIT_BENCH_SECONDS", "2"))}


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def on_gpu() -> bool:
    return device().type == "cuda"


def timing_disabled() -> bool:
    return OPTIONS["disabled"]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cpu_threads() -> int:
    """Threads for CPU rows: 2 by default (the small CPU setting), VIVIT_BENCH_THREADS to change."""
    return int(os.environ.get("VIVIT_BENCH_THREADS", "2"))


def machine() -> str:
    if on_gpu():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (torch {torch.__version__})"


# ----------------------------------------------------------------------------------------------------------------------
# Ceilings: this machine's own matmul rate and copy bandwidth, measured in the same run as the rows
# ----------------------------------------------------------------------------------------------------------------------


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_ceilings() -> dict:
    """Matmul FLOP/s (fp32 on the CPU, bf16 and fp32 on a GPU) and copy bandwidth (bytes read + written per second)."""
    dev = device()
    quick = timing_disabled()
    out = {}
    dtypes = [torch.bfloat16, torch.float32] if dev.type == "cuda" else [torch.float32]
    n = (8192 if dev.type == "cuda" else 1024) // (4 if quick else 1)
    for dtype in dtypes:
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        a @ b  # warm-up (thread pool, cuBLAS handle)
        seconds = _median_seconds(lambda a=a, b=b: a @ b, 3 if quick else 10)
        out[f"matmul_{str(dtype).split('.')[-1]}_flops"] = 2 * n**3 / seconds
    numel = (256 if dev.type == "cuda" else 16) * 2**20 // (8 if quick else 1)
    src = torch.randn(numel, device=dev)
    dst = torch.empty_like(src)
    dst.copy_(src)
    seconds = _median_seconds(lambda: dst.copy_(src), 3 if quick else 20)
    out["copy_bytes_per_s"] = 2 * src.numel() * src.element_size() / seconds
    out["matmul_size"] = n
    out["copy_mib"] = src.numel() * src.element_size() / 2**20
    return out


def _best(key: str) -> float:
    return max(CEILINGS.get(key, float("nan")), CEILINGS_END.get(key, float("-inf")))


def best_ceilings() -> dict:
    """Each ceiling's higher value of the start and end measurements (what shares are computed against)."""
    return {k: _best(k) for k in CEILINGS if k.endswith(("_flops", "_per_s"))}


# ----------------------------------------------------------------------------------------------------------------------
# Interleaved comparisons
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    op: str
    ours: str
    seconds: dict  # candidate -> median seconds per call (ours first)
    flops: float | None = None
    bytes: float | None = None
    errors: dict = field(default_factory=dict)  # baseline -> why it did not run
    note: str = ""
    dtype: torch.dtype = torch.float32  # the matmul rate a FLOP count is compared with
    group: str = ""  # "kernel", "model", "processor", "scaling": which chart the row goes to

    @property
    def ours_seconds(self) -> float:
        return self.seconds[self.ours]

    def throughput(self, name: str) -> str:
        s = self.seconds.get(name)
        if not s or timing_disabled():
            return "-"
        if self.flops:
            return f"{self.flops / s / 1e12:.3g} TFLOP/s" if on_gpu() else f"{self.flops / s / 1e9:.3g} GFLOP/s"
        if self.bytes:
            return f"{self.bytes / s / 1e9:.3g} GB/s"
        return "-"

    def ceiling_share(self, name: str, ceilings: dict | None = None) -> tuple[float, str] | None:
        """(fraction of the machine's ceiling, "matmul" or "copy") for candidate `name`, or None without one.

        `ceilings` defaults to best_ceilings() (this run's measurements)."""
        s = self.seconds.get(name)
        if not s or timing_disabled():
            return None
        c = best_ceilings() if ceilings is None else ceilings
        if self.flops:
            rate = c.get(f"matmul_{str(self.dtype).split('.')[-1]}_flops")
            return (self.flops / s / rate, "matmul") if rate and rate == rate else None
        if self.bytes and c.get("copy_bytes_per_s"):
            return self.bytes / s / c["copy_bytes_per_s"], "copy"
        return None

    def share_of_ceiling(self, name: str) -> str:
        share = self.ceiling_share(name)
        return "-" if share is None else f"{100 * share[0]:.0f} % {share[1]}"


def _timed(fn, calls: int) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def compare(
    benchmark,
    op: str,
    ours: tuple,
    baselines: dict,
    *,
    flops=None,
    bytes=None,
    skipped=None,
    note="",
    dtype=torch.float32,
    group="",
) -> Row:
    """Time `ours = (name, fn)` against `baselines = {name: fn}` in interleaved rounds; record and return the row.

    Baselines that raise during the warm-up call are dropped from the row with their error (ours raising fails).
    `skipped` maps baseline names to the reason they are not run here (shown in the summary). `group` names the
    chart the row goes to (bench/charts.py).
    """
    name, fn = ours
    errors = dict(skipped or {})
    live = {}
    disabled = timing_disabled()
    for base, base_fn in baselines.items():
        try:
            base_fn()
            if not disabled:
                base_fn()  # a second warm-up: torch.compile's first calls and allocator growth
            live[base] = base_fn
        except Exception as exc:  # a baseline that cannot run here is reported, not fatal
            errors[base] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    fn()
    if not disabled:
        fn()
    # Calls per round: enough that a round lasts >= 1 ms on a GPU (launch latency), one call on the CPU.
    calls = 1
    if on_gpu() and not disabled:
        once = _timed(fn, 3)
        calls = max(1, min(1000, int(1e-3 / max(once, 1e-7))))
        rounds = max(10, min(200, int(OPTIONS["seconds"] / max(once * calls * (1 + len(live)), 1e-6))))
    elif not disabled:
        once = _timed(fn, 1)
        rounds = max(5, min(100, int(OPTIONS["seconds"] / max(once * (1 + len(live)), 1e-6))))
    else:
        rounds = 1
    times = {name: [], **{b: [] for b in live}}
    order = list(live)
    counter = [0]

    def setup():
        k = counter[0] % max(1, len(order))
        counter[0] += 1
        for base in order[k:] + order[:k]:
            times[base].append(_timed(live[base], calls))

    def target():
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        times[name].append((time.perf_counter() - start) / calls)

    sync()
    benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    seconds = {k: statistics.median(v) for k, v in times.items() if v}
    row = Row(
        op=op, ours=name, seconds=seconds, flops=flops, bytes=bytes, errors=errors, note=note, dtype=dtype, group=group
    )
    benchmark.extra_info.update(
        op=op,
        ours=name,
        calls_per_round=calls,
        median_s={k: v for k, v in seconds.items()},
        ratio={b: seconds[b] / seconds[name] for b in seconds if b != name},
        skipped=errors,
    )
    RESULTS.append(row)
    return row


def record(row: Row) -> None:
    RESULTS.append(row)


# ----------------------------------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


def summary_rows() -> list[list[str]]:
    """(op, ours, ours median, ours throughput, share of ceiling, baseline, baseline median, ratio) per pair."""
    out = []
    for row in RESULTS:
        ours_t = "(1 pass)" if timing_disabled() else _ms(row.ours_seconds)
        head = [row.op, row.ours, ours_t, row.throughput(row.ours), row.share_of_ceiling(row.ours)]
        pairs = [b for b in row.seconds if b != row.ours]
        if not pairs and not row.errors:
            out.append(head + ["-", "-", "-"])
        for base in pairs:
            if timing_disabled():
                out.append(head + [base, "(1 pass)", "-"])
            else:
                ratio = row.seconds[base] / row.ours_seconds
                out.append(head + [base, _ms(row.seconds[base]), f"{ratio:.2f}x"])
        for base, why in row.errors.items():
            if why not in NOTES:
                NOTES.append(why)
            out.append(head + [base, f"not run (note {NOTES.index(why) + 1})", "-"])
        if row.note:
            out.append([row.op, "", "", "", "", "note", row.note, ""])
    return out


HEADERS = ["op", "ours", "median", "throughput", "of ceiling", "baseline", "baseline median", "ratio"]


def _ceilings_text(c: dict) -> str:
    unit, scale = ("TFLOP/s", 1e12) if on_gpu() else ("GFLOP/s", 1e9)
    parts = [
        f"{k.split('_')[1]} matmul {v / scale:.3g} {unit}"
        for k, v in c.items()
        if k.startswith("matmul_") and k.endswith("_flops")
    ]
    return ", ".join(parts + [f"copy {c['copy_bytes_per_s'] / 1e9:.3g} GB/s (read + write)"])


def ceilings_line() -> str:
    if not CEILINGS:
        return "ceilings: not measured"
    sizes = f"matmul {CEILINGS['matmul_size']}^3, copy {CEILINGS['copy_mib']:.0f} MiB"
    text = f"measured ceilings on {machine()} ({sizes}): at start {_ceilings_text(CEILINGS)}"
    if CEILINGS_END:
        text += f"; at end {_ceilings_text(CEILINGS_END)} (shares use the higher)"
    return text


def text_table(headers, rows) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def memory_lines() -> list[str]:
    out = []
    for m in MEMORY:
        ours = m["peaks"][m["ours"]]
        parts = [
            f"{name} {b / 2**20:.1f} MiB" + ("" if name == m["ours"] else f" ({b / ours:.2f}x ours)")
            for name, b in m["peaks"].items()
        ]
        out.append(f"peak memory, {m['op']} ({m['method']}): " + ", ".join(parts))
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Peak memory
# ----------------------------------------------------------------------------------------------------------------------


def peak_memory_method() -> str:
    return "cuda max_memory_allocated" if on_gpu() else "CPU allocator peak (torch.profiler memory events)"


def peak_bytes(step) -> int:
    """Peak bytes allocated during one call of `step` above what was live before it.

    GPU: torch.cuda.max_memory_allocated. CPU: the CPU allocator's own events (torch.profiler with profile_memory),
    replayed in order to find the high-water mark.
    """
    step()  # warm-up: lazily created state (optimizer buffers, workspaces) is not the step's memory
    if on_gpu():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


# ----------------------------------------------------------------------------------------------------------------------
# Scaling with the number of frames (bench_scaling.py)
# ----------------------------------------------------------------------------------------------------------------------


def scaling_table(records: list[dict] | None = None) -> tuple[list[str], list[list[str]]]:
    """(headers, rows), one row per frame count: ours' median step time and peak memory, then each baseline's as a
    multiple of ours (time: > 1 means ours is faster; memory: > 1 means ours uses less)."""
    records = sorted(SCALING if records is None else records, key=lambda r: r["frames"])
    ours = records[0]["ours"] if records else "ours"
    bases = list(dict.fromkeys(n for r in records for n in {**r["seconds"], **r["peaks"]} if n != r["ours"]))
    headers = ["frames", f"{ours} median"]
    headers += [f"{b} time / ours" for b in bases] + [f"{ours} peak MiB"] + [f"{b} memory / ours" for b in bases]
    rows = []
    for rec in records:
        t, m = rec["seconds"].get(rec["ours"]), rec["peaks"].get(rec["ours"])
        timed = bool(t) and not timing_disabled()
        row = [str(rec["frames"]), _ms(t) if timed else ("(1 pass)" if t else "-")]
        row += [f"{rec['seconds'][b] / t:.2f}x" if timed and b in rec["seconds"] else "-" for b in bases]
        row += [f"{m / 2**20:.1f}" if m is not None else "-"]
        row += [f"{rec['peaks'][b] / m:.2f}x" if m and b in rec["peaks"] else "-" for b in bases]
        rows.append(row)
    return headers, rows
