"""PNG charts of a benchmark run, drawn from the same records as the Markdown summary (`--bench-report FILE.md`).

Each chart goes beside the report as FILE-<name>.png:

- speedup-ops, speedup-models: ours against each baseline (baseline median / ours median, log scale, 1.0 = parity);
- ceiling: ours' throughput per op as a share of the machine's measured matmul rate or copy bandwidth;
- memory: peak memory of the memory rows;
- scaling: a training step's time and peak memory against the number of frames (bench_scaling.py);
- roofline-modeled: the kernel report's roofline (vivit_kernels.report), modeled from spec sheets, not measured.

Charts made of timings are not drawn when timing is disabled (one pass is not a measurement). `compact_png` makes the
palette copies that docs embed (python bench/charts.py SRC.png DST.png).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vivit.viz.figures import new_figure, save_png, write_atomically

FASTER, SLOWER, NEUTRAL = "#2a9d8f", "#e76f51", "#8d99ae"
IMPL_COLORS = ("#264653", "#e9c46a", "#e76f51", "#2a9d8f", "#8d99ae", "#6a4c93")


@dataclass
class ChartData:
    """What the charts are drawn from: the harness's records and a line saying where and when they were measured."""

    rows: list = field(default_factory=list)  # _harness.Row
    ceilings: dict = field(default_factory=dict)  # _harness.best_ceilings()
    memory: list = field(default_factory=list)  # _harness.MEMORY
    scaling: list = field(default_factory=list)  # _harness.SCALING
    where: str = ""  # machine and date, shown under every title
    timing: bool = True  # False with --benchmark-disable


def chart_path(report: str | Path, name: str) -> Path:
    """FILE-<name>.png beside FILE.md (FILE.md's suffix dropped; any other name keeps its suffix)."""
    report = Path(report)
    stem = report.stem if report.suffix.lower() == ".md" else report.name
    return report.with_name(f"{stem}-{name}.png")


def _plain_log_ticks(axis, suffix: str = "") -> None:
    """Ticks of a log axis as plain numbers (8, 16, 0.5x), not powers."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}{suffix}"))

    def minor(v, _):  # label 2 and 5 between the decades only: every minor label crowds the axis
        return f"{v:.3g}{suffix}" if f"{v:.0e}"[0] in "25" else ""

    axis.set_minor_formatter(FuncFormatter(minor))


def _title(ax, title: str, where: str) -> None:
    ax.set_title(f"{title}\n{where}" if where else title, fontsize=10)


def _bar_height(n: int) -> float:
    """Figure height (inches) for `n` horizontal bars: about a quarter inch each, plus room for title and axis."""
    return max(6.0, 0.24 * n + 2.2)


def speedup_pairs(rows) -> list[tuple[str, float]]:
    """(label "op: vs baseline", baseline median / ours median) for every pair timed in `rows`."""
    out = []
    for row in rows:
        for base, seconds in row.seconds.items():
            if base != row.ours:
                out.append((f"{row.op}: vs {base}", seconds / row.ours_seconds))
    return out


def speedup_chart(pairs, path, *, title: str, where: str = "") -> Path:
    """Horizontal bars of speed-ups on a log-2 axis, a line at 1.0 (parity), each bar labelled with its value."""
    if not pairs:
        raise ValueError("speedup_chart: pairs must hold at least one (label, ratio), got none")
    labels = [label for label, _ in pairs]
    ratios = [ratio for _, ratio in pairs]
    fig, ax = new_figure(11.0, _bar_height(len(pairs)))
    y = range(len(pairs))[::-1]
    colors = [FASTER if r >= 1 else SLOWER for r in ratios]
    # Bars grow from the parity line (1.0) to the ratio: right when ours is faster, left when slower.
    ax.barh(list(y), [r - 1 for r in ratios], left=1.0, color=colors, height=0.7)
    ax.set_ylim(-0.8, len(pairs) - 0.2)
    ax.set_xscale("log", base=2)
    from matplotlib.ticker import LogLocator

    lo, hi = min(ratios + [1.0]), max(ratios + [1.0])
    # Ticks at powers of 2 (and halfway between them on a narrow range): more would overlap.
    ax.xaxis.set_major_locator(LogLocator(base=2, subs=(1.0, 1.5) if hi / lo <= 12 else (1.0,)))
    ax.xaxis.set_minor_locator(LogLocator(base=2, subs=()))
    _plain_log_ticks(ax.xaxis, "x")
    ax.set_xlim(lo / 1.6, hi * 1.6)
    ax.axvline(1.0, color="black", linewidth=1.2, linestyle="--", label="1.0: as fast as the baseline")
    for yi, r in zip(y, ratios):
        ax.text(r * 1.03 if r >= 1 else r / 1.03, yi, f"{r:.2f}x", va="center", ha="left" if r >= 1 else "right",
                fontsize=7)  # fmt: skip
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.set_xlabel("speed-up of ours = baseline median time / ours median time (x, log scale)")
    ax.set_ylabel("op: baseline")
    from matplotlib.patches import Patch

    handles = [
        Patch(color=FASTER, label="ours faster"),
        Patch(color=SLOWER, label="ours slower"),
        ax.get_lines()[0],
    ]
    ax.legend(handles=handles, loc="best", fontsize=8)
    _title(ax, title, where)
    fig.tight_layout()
    return save_png(fig, path)


def ceiling_bars(rows, ceilings: dict) -> list[tuple[str, float]]:
    """(label "op (matmul|copy)", share of the ceiling) of ours in every row with one (the report's "of ceiling")."""
    out = []
    for row in rows:
        share = row.ceiling_share(row.ours, ceilings)
        if share is not None:
            out.append((f"{row.op}: {row.ours} ({share[1]})", share[0]))
    return out


def _rate(value: float, unit: str) -> str:
    """1.2e11 FLOP/s -> "120 GFLOP/s", 7.8e14 -> "780 TFLOP/s"."""
    scale, prefix = (1e12, "T") if value >= 1e12 else (1e9, "G")
    return f"{value / scale:.3g} {prefix}{unit}"


def _ceilings_caption(ceilings: dict) -> str:
    parts = [f"{k.split('_')[1]} matmul {_rate(v, 'FLOP/s')}" for k, v in ceilings.items() if k.startswith("matmul_")]
    if ceilings.get("copy_bytes_per_s"):
        parts.append(f"copy {_rate(ceilings['copy_bytes_per_s'], 'B/s')}")
    return ", ".join(parts)


def ceiling_chart(bars, ceilings: dict, path, *, where: str = "") -> Path:
    """Horizontal bars: ours' throughput per op in % of the machine's measured ceiling, a line at 100 %."""
    if not bars:
        raise ValueError("ceiling_chart: bars must hold at least one (label, share), got none")
    fig, ax = new_figure(11.0, _bar_height(len(bars)))
    y = list(range(len(bars)))[::-1]
    shares = [100 * share for _, share in bars]
    colors = [IMPL_COLORS[0] if label.endswith("(matmul)") else IMPL_COLORS[1] for label, _ in bars]
    ax.barh(y, shares, color=colors, height=0.7)
    ax.set_ylim(-0.8, len(bars) - 0.2)
    ax.axvline(100, color="black", linewidth=1.2, linestyle="--")
    for yi, s in zip(y, shares):
        ax.text(s + 1, yi, f"{s:.0f} %", va="center", fontsize=7)
    ax.set_xlim(0, max(110, max(shares) * 1.12))
    ax.set_yticks(y, [label for label, _ in bars], fontsize=7)
    ax.set_xlabel(f"ours' throughput as % of this machine's measured ceiling ({_ceilings_caption(ceilings)})")
    ax.set_ylabel("op: ours (ceiling)")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color=IMPL_COLORS[0], label="FLOP/s against the matmul rate"),
            Patch(color=IMPL_COLORS[1], label="bytes/s against the copy bandwidth"),
        ],
        loc="lower right",
        fontsize=8,
    )
    _title(ax, "Share of the machine's ceilings (measured in the same run)", where)
    fig.tight_layout()
    return save_png(fig, path)


def memory_chart(memory: list[dict], path, *, where: str = "") -> Path:
    """Grouped vertical bars: peak memory (MiB) per memory row and implementation, each bar labelled."""
    if not memory:
        raise ValueError("memory_chart: memory must hold at least one row, got none")
    impls = list(dict.fromkeys(name for m in memory for name in m["peaks"]))
    fig, ax = new_figure(9.0, 6.0)
    width = 0.6 / len(impls)
    for j, impl in enumerate(impls):
        xs = [i + (j - (len(impls) - 1) / 2) * width for i, m in enumerate(memory) if impl in m["peaks"]]
        mib = [m["peaks"][impl] / 2**20 for m in memory if impl in m["peaks"]]
        ax.bar(xs, mib, width, label=impl, color=IMPL_COLORS[j % len(IMPL_COLORS)])
        for x, v in zip(xs, mib):
            ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(memory)), [m["op"] for m in memory], fontsize=8)
    ax.set_xlim(-0.75, len(memory) - 0.25)
    ax.set_xlabel("memory row")
    ax.set_ylabel("peak memory above the live baseline (MiB)")
    ax.legend(fontsize=8)
    methods = "; ".join(dict.fromkeys(m["method"] for m in memory))
    _title(ax, f"Peak memory ({methods})", where)
    fig.tight_layout()
    return save_png(fig, path)


def scaling_chart(scaling: list[dict], path, *, where: str = "") -> Path:
    """Two panels against the number of frames (log-2 axis): training-step time and peak memory, one line each."""
    if not scaling:
        raise ValueError("scaling_chart: scaling must hold at least one frame count, got none")
    records = sorted(scaling, key=lambda r: r["frames"])
    frames = [r["frames"] for r in records]
    impls = list(dict.fromkeys(name for r in records for name in {**r["seconds"], **r["peaks"]}))
    import matplotlib.ticker

    fig, (ax_t, ax_m) = new_figure(13.0, 5.5, ncols=2)
    for j, impl in enumerate(impls):
        style = dict(marker="o", color=IMPL_COLORS[j % len(IMPL_COLORS)], label=impl, linewidth=2 if j == 0 else 1.4)
        t = [(r["frames"], r["seconds"][impl] * 1e3) for r in records if impl in r["seconds"]]
        m = [(r["frames"], r["peaks"][impl] / 2**20) for r in records if impl in r["peaks"]]
        if t:
            ax_t.plot(*zip(*t), **style)
        if m:
            ax_m.plot(*zip(*m), **style)
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        ax.set_xticks(frames, [str(f) for f in frames])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("frames per clip (log-2 scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_t.set_ylabel("training step, median time (ms, log scale)")
    ax_m.set_ylabel("peak memory of a training step (MiB, log scale)")
    ax_t.set_title("Training-step time vs frames", fontsize=10)
    ax_m.set_title(f"Peak memory vs frames; {records[0]['method']}", fontsize=9)
    head = "Scaling with clip length: ours vs each baseline"
    fig.suptitle(f"{head}\n{where}" if where else head, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def roofline_chart(path, *, ops=None, gpus=None) -> Path:
    """The kernel report's MODELED roofline: each GPU's roof and every op at its fused and unfused intensity."""
    from vivit_kernels import report

    ops = report.roofline_ops() if ops is None else ops
    gpus = report.GPUS if gpus is None else gpus
    if not ops:
        raise ValueError("roofline_chart: ops must hold at least one op, got none")
    fig, ax = new_figure(11.0, 7.5)
    intensity = [op["flops"] / b for op in ops for b in (op["fused_bytes"], op["unfused_bytes"])]
    lo, hi = min(intensity) / 2, max(max(intensity), max(p / b for p, b in gpus.values())) * 4
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    roof_styles = ("-", "--", ":", "-.")
    for k, (gpu, (peak, bandwidth)) in enumerate(gpus.items()):
        ax.plot(xs, [min(peak, x * bandwidth) / 1e12 for x in xs], color="black", linestyle=roof_styles[k % 4],
                linewidth=1.3, label=f"{gpu} roof: {peak / 1e12:.0f} TFLOP/s, {bandwidth / 1e12:.2f} TB/s")  # fmt: skip
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    peak, bandwidth = next(iter(gpus.values()))
    for i, op in enumerate(ops):
        color = cmap(i % 10)
        fused, unfused = op["flops"] / op["fused_bytes"], op["flops"] / op["unfused_bytes"]
        y = lambda x: min(peak, x * bandwidth) / 1e12  # noqa: B023 - used within this iteration only
        ax.plot([unfused, fused], [y(unfused), y(fused)], color=color, linewidth=1, alpha=0.7)
        ax.scatter([fused], [y(fused)], color=color, s=45, zorder=3, label=op["op"])
        ax.scatter([unfused], [y(unfused)], facecolors="none", edgecolors=color, s=45, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved, log scale)")
    ax.set_ylabel("attainable bf16 throughput (TFLOP/s, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    first = next(iter(gpus))
    ax.set_title(
        "MODELED, NOT MEASURED: roofline of the ViViT-B/16x2 ops (vivit_kernels.report, spec-sheet peaks)\n"
        f"points on the {first} roof; filled: fewest bytes (fused), hollow: the unfused PyTorch sequence",
        fontsize=10,
    )
    ax.text(
        0.01, 0.98, "MODELED", transform=ax.transAxes, fontsize=16, color="#c1121f", alpha=0.6,
        va="top", fontweight="bold",
    )  # fmt: skip
    fig.tight_layout()
    return save_png(fig, path)


def compact_png(src, dst, colors: int = 64) -> Path:
    """A copy of the PNG `src` at `dst` with its colours reduced to a `colors`-entry palette (about a third of the
    bytes for these charts; what docs embed). Written atomically: a temporary file beside `dst`, fsync, rename."""
    from PIL import Image

    if not 2 <= colors <= 256:
        raise ValueError(f"compact_png: colors must be between 2 and 256, got {colors!r}")
    dst = Path(dst)
    with Image.open(src) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    return write_atomically(dst, lambda f: small.save(f, format="PNG", optimize=True))


def write_charts(report, data: ChartData) -> list[Path]:
    """Every chart the records support, beside `report`; returns the paths written."""
    written = []
    if data.timing:
        for name, groups, title in (
            ("speedup-ops", ("kernel", "processor", ""), "Ops: ours vs each baseline"),
            ("speedup-models", ("model",), "Models: ours vs each baseline"),
        ):
            pairs = speedup_pairs([r for r in data.rows if r.group in groups])
            if pairs:
                written.append(speedup_chart(pairs, chart_path(report, name), title=title, where=data.where))
        bars = ceiling_bars([r for r in data.rows if r.group != "scaling"], data.ceilings)
        if bars:
            written.append(ceiling_chart(bars, data.ceilings, chart_path(report, "ceiling"), where=data.where))
        if data.scaling:
            written.append(scaling_chart(data.scaling, chart_path(report, "scaling"), where=data.where))
    if data.memory:
        written.append(memory_chart(data.memory, chart_path(report, "memory"), where=data.where))
    try:
        import vivit_kernels.report  # noqa: F401
    except ImportError:
        pass  # no kernel report in this checkout: no modeled roofline
    else:
        written.append(roofline_chart(chart_path(report, "roofline-modeled")))
    return written


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python bench/charts.py SRC.png DST.png  (a palette copy of a chart, for docs)")
    print(compact_png(sys.argv[1], sys.argv[2]))
