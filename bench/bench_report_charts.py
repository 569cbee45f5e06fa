"""The report's charts (bench/charts.py): drawn from a small fabricated record set they are valid PNGs of at least
640x480 with more than one colour, the figures they plot are the records' own, and a real `--bench-report` run writes
them beside the Markdown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _harness as H
import charts
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_CHARTS = {"speedup-ops", "speedup-models", "ceiling", "memory", "scaling", "roofline-modeled"}


def _row(op, group, ours_s, bases, flops=None, bytes=None):
    return H.Row(op=op, ours="ours", seconds={"ours": ours_s, **bases}, flops=flops, bytes=bytes, group=group)


def _records(timing=True) -> charts.ChartData:
    rows = [
        _row("patch_embed fwd", "kernel", 2e-3, {"nn.Conv3d": 3e-3}, flops=1e8),  # 1.5x; 50 GFLOP/s
        _row("attention temporal fwd", "kernel", 1e-3, {"SDPA": 0.5e-3}, bytes=4e6),  # 0.5x; 4 GB/s
        _row("processor", "processor", 10e-3, {"HF": 80e-3}, bytes=20e6),
        _row("Model 1 train", "model", 0.2, {"HF sdpa": 0.22, "HF eager": 0.25}, flops=1e10),
        _row("Model 1 train, 8 frames", "scaling", 3e-3, {"HF sdpa": 4e-3}),
    ]
    scaling = [
        dict(frames=f, ours="ours", seconds={"ours": f * 1e-3, "HF sdpa": f * 1.3e-3, "HF eager": f * 1.5e-3},
             peaks={"ours": f * 2**20, "HF sdpa": f * 2**21, "HF eager": f * 2**21 + 1}, method="test allocator")
        for f in (8, 16, 32, 64)
    ]  # fmt: skip
    memory = [dict(op="Model 1 training step", peaks={"ours": 60 * 2**20, "HF sdpa": 140 * 2**20}, ours="ours",
                   method="test allocator")]  # fmt: skip
    ceilings = {"matmul_float32_flops": 100e9, "copy_bytes_per_s": 40e9}
    return charts.ChartData(rows, ceilings, memory, scaling, where="test machine, 2026-01-01", timing=timing)


def _check_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.width >= 640 and im.height >= 480, f"{path.name} is {im.width}x{im.height} (< 640x480)"
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = np.unique(pixels, axis=0)
    assert len(colours) > 8, f"{path.name} has {len(colours)} colours: blank"


@pytest.fixture
def timing_on(monkeypatch):
    """Shares of ceilings are withheld when timing is disabled (the smoke run): these tests need them."""
    monkeypatch.setitem(H.OPTIONS, "disabled", False)


def test_every_chart_from_fabricated_records(tmp_path, timing_on):
    written = charts.write_charts(tmp_path / "run.md", _records())
    names = {p.name for p in written}
    assert names == {f"run-{name}.png" for name in ALL_CHARTS}, names
    for path in written:
        _check_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names), "stray files beside the charts"


def test_charts_plot_the_records_figures(timing_on):
    data = _records()
    pairs = dict(charts.speedup_pairs(data.rows))
    assert pairs["patch_embed fwd: vs nn.Conv3d"] == pytest.approx(1.5)
    assert pairs["attention temporal fwd: vs SDPA"] == pytest.approx(0.5)
    assert pairs["Model 1 train: vs HF eager"] == pytest.approx(1.25)
    bars = dict(charts.ceiling_bars(data.rows, data.ceilings))
    assert bars["patch_embed fwd: ours (matmul)"] == pytest.approx(0.5)  # 1e8 FLOP / 2 ms / 100 GFLOP/s
    assert bars["attention temporal fwd: ours (copy)"] == pytest.approx(0.1)  # 4e6 B / 1 ms / 40 GB/s
    assert bars["Model 1 train: ours (matmul)"] == pytest.approx(0.5)  # 1e10 FLOP / 0.2 s / 100 GFLOP/s
    assert len(bars) == 4, "a row without work has a share"


def test_different_records_draw_different_charts(tmp_path, timing_on):
    a = charts.speedup_chart([("op: vs x", 1.5)], tmp_path / "a.png", title="t")
    b = charts.speedup_chart([("op: vs x", 0.5)], tmp_path / "b.png", title="t")
    assert a.read_bytes() != b.read_bytes()


def test_timing_disabled_draws_no_timing_chart(tmp_path):
    written = charts.write_charts(tmp_path / "smoke.md", _records(timing=False))
    assert {p.name for p in written} == {"smoke-memory.png", "smoke-roofline-modeled.png"}


def test_compact_copy(tmp_path, timing_on):
    src = charts.speedup_chart(charts.speedup_pairs(_records().rows), tmp_path / "big.png", title="t")
    dst = charts.compact_png(src, tmp_path / "small.png")
    _check_png(dst)
    assert dst.stat().st_size < src.stat().st_size
    with pytest.raises(ValueError, match="colors must be between 2 and 256, got 1"):
        charts.compact_png(src, tmp_path / "bad.png", colors=1)
    assert not (tmp_path / "bad.png").exists()


def test_chart_names_and_empty_input(tmp_path):
    assert charts.chart_path("/x/bench.md", "scaling") == Path("/x/bench-scaling.png")
    assert charts.chart_path("/x/bench.txt", "scaling") == Path("/x/bench.txt-scaling.png")
    with pytest.raises(ValueError, match="pairs must hold at least one"):
        charts.speedup_chart([], tmp_path / "e.png", title="t")
    with pytest.raises(ValueError, match="scaling must hold at least one"):
        charts.scaling_chart([], tmp_path / "e.png")
    assert not list(tmp_path.iterdir())


def test_scaling_table_ratios(timing_on):
    headers, rows = H.scaling_table(_records().scaling)
    assert headers[:3] == ["frames", "ours median", "HF sdpa time / ours"]
    assert rows[0][:3] == ["8", "8.000 ms", "1.30x"]
    assert rows[3][headers.index("ours peak MiB")] == "64.0"
    assert rows[3][headers.index("HF sdpa memory / ours")] == "2.00x"


def test_frame_counts_from_the_environment(monkeypatch):
    import bench_scaling

    monkeypatch.setenv("VIVIT_BENCH_FRAMES", "16,32")
    assert bench_scaling.frame_counts() == (16, 32)
    for bad in ("", "8,x", "7", "0"):
        monkeypatch.setenv("VIVIT_BENCH_FRAMES", bad)
        with pytest.raises(ValueError, match=f"VIVIT_BENCH_FRAMES .* got {bad!r}"):
            bench_scaling.frame_counts()


@pytest.mark.slow
def test_report_run_writes_the_charts(tmp_path):
    """End to end: a short timed run of bench_scaling.py with --bench-report writes the Markdown and its charts (the
    other charts are covered above; a child process is kept to one small file to keep the smoke run short)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), VIVIT_BENCH_SECONDS="0.05", VIVIT_BENCH_FRAMES="8")
    env.pop("TRITON_INTERPRET", None)
    report = tmp_path / "bench.md"
    cmd = [sys.executable, "-m", "pytest", "bench/bench_scaling.py", "-q", "-p", "no:cacheprovider"]
    cmd.append(f"--bench-report={report}")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["bench-roofline-modeled.png", "bench-scaling.png"]
    for name in ("scaling", "roofline-modeled"):
        _check_png(tmp_path / f"bench-{name}.png")
    text = report.read_text()
    assert "![bench-scaling](bench-scaling.png)" in text
    assert "| 8 |" in text, "the scaling table is missing from the report"
