"""`pytest bench/`: set-up shared by the benchmark files, and the closing summary table.

The benchmarks run the real code: no TRITON_INTERPRET here. Without a CUDA GPU the Triton rows skip with a one-line
reason and the CPU rows run. `--benchmark-disable` runs one quick pass of each candidate (the CI smoke test).
`--bench-report FILE.md` also writes the summary as Markdown (for BENCHMARKS.md) and PNG charts of it beside the file
(FILE-<name>.png, bench/charts.py).
"""

from __future__ import annotations

import datetime
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

import _harness as H  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--bench-report",
        default=None,
        metavar="FILE",
        help="write the closing summary as Markdown, and its charts beside it as FILE-<name>.png",
    )


def pytest_configure(config):
    H.OPTIONS["disabled"] = bool(config.getoption("benchmark_disable", False))
    if not torch.cuda.is_available():
        torch.set_num_threads(H.cpu_threads())


@pytest.fixture(scope="session", autouse=True)
def ceilings():
    """The machine's matmul rate and copy bandwidth, measured once at the start of the run."""
    torch.manual_seed(0)
    H.CEILINGS.update(H.measure_ceilings())
    yield H.CEILINGS
    # Measured again at the end: a shared machine drifts; the summary shows both and divides by the higher one.
    H.CEILINGS_END.update(H.measure_ceilings())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _summary_text() -> str:
    lines = [H.ceilings_line()]
    if H.timing_disabled():
        lines.append("timing disabled (--benchmark-disable): one pass of each candidate, no figures")
    lines.append("ratio = baseline median / ours median (> 1: ours is faster); medians of interleaved rounds")
    return "\n".join(lines)


def _write_charts(report: str, where: str) -> list:
    import charts

    data = charts.ChartData(
        rows=list(H.RESULTS),
        ceilings=H.best_ceilings(),
        memory=list(H.MEMORY),
        scaling=list(H.SCALING),
        where=where,
        timing=not H.timing_disabled(),
    )
    return charts.write_charts(report, data)


def pytest_terminal_summary(terminalreporter):
    if not H.RESULTS and not H.CEILINGS and not H.SCALING:
        return
    tr = terminalreporter
    tr.section("vivit benchmark summary")
    tr.write_line(_summary_text())
    tr.write_line("")
    rows = H.summary_rows()  # fills H.NOTES
    for line in H.text_table(H.HEADERS, rows).splitlines():
        tr.write_line(line)
    for line in H.memory_lines():
        tr.write_line(line)
    if H.SCALING:
        tr.write_line("")
        tr.write_line(f"scaling with frames ({H.SCALING[0]['method']} for memory):")
        for line in H.text_table(*H.scaling_table()).splitlines():
            tr.write_line(line)
    for i, note in enumerate(H.NOTES, 1):
        tr.write_line(f"note {i}: {note}")
    path = tr.config.getoption("bench_report")
    if path:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        args = " ".join(tr.config.invocation_params.args)
        with open(path, "w") as f:
            f.write(f"Measured {now} with `pytest {args}` on {H.machine()}.\n\n")
            f.write(_summary_text().replace("\n", "\n\n") + "\n\n")
            f.write(H.markdown_table(H.HEADERS, H.summary_rows()) + "\n\n")
            for line in H.memory_lines():
                f.write(line + "\n\n")
            if H.SCALING:
                f.write(f"Scaling with frames (memory: {H.SCALING[0]['method']}):\n\n")
                f.write(H.markdown_table(*H.scaling_table()) + "\n\n")
            for i, note in enumerate(H.NOTES, 1):
                f.write(f"\nnote {i}: {note}\n")
            f.write("\n")
            charts = _write_charts(path, f"{H.machine()}, {now}")
            for chart in charts:
                f.write(f"![{chart.stem}]({chart.name})\n\n")
        tr.write_line(f"summary written to {path}")
        for chart in charts:
            tr.write_line(f"chart written to {chart}")
