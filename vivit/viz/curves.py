"""Training curves of one or more runs (their `metrics.jsonl`), drawn as one PNG; `vivit plot` on the command line.

    vivit plot RUN [RUN ...] [--out curves.png] [--title T] [--overwrite]

Each line of a run's metrics.jsonl is one epoch: `epoch`, `step` (optimizer steps so far), `train_loss` (the epoch's
mean), `lr`, `val_top1`, `val_top5`, optionally `ema_val_top1`/`ema_val_top5`, and `step_curve`: up to 50
[step, loss, lr] points of the epoch, each the mean loss over the steps since the previous point and the learning
rate its last step used. The figure
has four panels: training loss and learning rate against optimizer steps (the per-step points where the metrics
have them, else one point per epoch), validation top-1 and top-5 against epochs (EMA weights dashed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

from vivit.viz.figures import new_figure, save_png

METRICS = "metrics.jsonl"


class CurvesError(ValueError):
    """A run whose metrics cannot be drawn (a one-line message naming the run and the line)."""


def _number(value, where: str, name: str) -> float:
    """A float from a JSON value (None -> NaN: a gap in the curve); anything else is an error naming the field."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CurvesError(f"{where}: field {name!r}: expected a number or null, got {value!r}")
    return float(value)


def _parse_record(text: str, where: str) -> dict:
    try:
        record = json.loads(text)
    except ValueError as e:
        raise CurvesError(f"{where}: expected a JSON object, got unreadable text ({e})") from None
    if not isinstance(record, dict):
        raise CurvesError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("epoch", "step"):
        if isinstance(record.get(name), bool) or not isinstance(record.get(name), int):
            raise CurvesError(f"{where}: field {name!r}: expected an integer, got {record.get(name)!r}")
    parsed = {"epoch": record["epoch"], "step": record["step"]}
    for name in ("train_loss", "lr", "val_top1", "val_top5", "ema_val_top1", "ema_val_top5"):
        if name in record:
            parsed[name] = _number(record[name], where, name)
    curve = record.get("step_curve")
    if curve is not None:
        if not isinstance(curve, list) or not all(isinstance(p, list) and len(p) == 3 for p in curve):
            raise CurvesError(f"{where}: field 'step_curve': expected a list of [step, loss, lr], got {curve!r:.80}")
        parsed["step_curve"] = [tuple(_number(v, where, "step_curve") for v in p) for p in curve]
    return parsed


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The epochs recorded in `run_dir`/metrics.jsonl (or in the file itself when given one), oldest first.

    Raises CurvesError naming the run when the file is missing, empty or holds a line that is not an epoch record.
    A last line without its newline is one the trainer is still writing: it is left out, with a warning.
    """
    run_dir = Path(run_dir)
    path = run_dir if run_dir.is_file() else run_dir / METRICS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CurvesError(f"{run_dir}: no {METRICS} (expected a run directory written by `vivit train`)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CurvesError(f"{path}: cannot be read ({e})") from None
    lines = text.split("\n")
    if lines[-1].strip():  # no final newline: an epoch being appended right now
        warnings.warn(f"{path}: line {len(lines)} is incomplete (still being written); left out", stacklevel=2)
    records = [_parse_record(line, f"{path} line {n}") for n, line in enumerate(lines[:-1], 1) if line.strip()]
    if not records:
        raise CurvesError(f"{path}: expected at least one epoch record, found none")
    return records


def _series(records: list[dict], name: str) -> tuple[list[float], list[float]]:
    """(steps, values) of a per-step quantity: the step curves where every epoch has one, else one point per epoch."""
    column = {"loss": 1, "lr": 2}[name]
    if all(r.get("step_curve") for r in records):
        points = [p for r in records for p in r["step_curve"]]
        return [p[0] for p in points], [p[column] for p in points]
    key = "train_loss" if name == "loss" else "lr"
    return [r["step"] for r in records], [r.get(key, math.nan) for r in records]


def _labels(run_dirs: list[Path]) -> list[str]:
    """Legend names: the run folders' names, or their paths where two names are the same."""
    names = [p.resolve().name if p.name in ("", ".") else p.name for p in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in run_dirs]


def plot_runs(run_dirs, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the training curves of every run in `run_dirs` into the PNG `path` (written atomically); returns it.

    Panels: training loss and learning rate against optimizer steps, validation top-1 and top-5 (%) against
    epochs; one colour per run, named in the legends. Raises CurvesError naming a run whose metrics are missing or
    unreadable, before anything is written.
    """
    run_dirs = [Path(p) for p in ([run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs)]
    if not run_dirs:
        raise CurvesError("run_dirs: expected at least one run directory, got none")
    runs = [read_metrics(p) for p in run_dirs]
    fig, axes = new_figure(12.0, 8.0, nrows=2, ncols=2)
    from matplotlib.ticker import MaxNLocator  # matplotlib is loaded by now (new_figure)

    (ax_loss, ax_lr), (ax_top1, ax_top5) = axes
    for i, (records, label) in enumerate(zip(runs, _labels(run_dirs))):
        colour = f"C{i % 10}"
        steps, loss = _series(records, "loss")
        per_step = all(r.get("step_curve") for r in records)
        ax_loss.plot(steps, loss, color=colour, label=label, marker=None if per_step else "o", markersize=3)
        steps, lr = _series(records, "lr")
        ax_lr.plot(steps, lr, color=colour, label=label, marker=None if per_step else "o", markersize=3)
        epochs = [r["epoch"] for r in records]
        for ax, key in ((ax_top1, "val_top1"), (ax_top5, "val_top5")):
            values = [100.0 * r.get(key, math.nan) for r in records]
            ax.plot(epochs, values, color=colour, label=label, marker="o", markersize=4)
            ema = [100.0 * r.get("ema_" + key, math.nan) for r in records]
            if any(math.isfinite(v) for v in ema):
                ax.plot(epochs, ema, color=colour, linestyle="--", label=f"{label} (EMA)", marker="o", markersize=3)
    ax_loss.set(title="training loss", xlabel="optimizer step", ylabel="cross-entropy (nats)")
    ax_lr.set(title="learning rate", xlabel="optimizer step", ylabel="learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    last_epoch = max(r["epoch"] for records in runs for r in records)
    for ax, name in ((ax_top1, "top-1"), (ax_top5, "top-5")):
        ax.set(title=f"validation {name}", xlabel="epoch", ylabel=f"{name} accuracy (%)")
        ax.set_xlim(0.5, last_epoch + 0.5)  # whole epochs, even for a run of one
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_ylim(-2.0, 102.0)  # the whole 0-100 % scale: runs compare at a glance, small changes look small
    # accuracies rise towards 100 % and losses fall: their legends go where the curves rarely are
    for ax, where in ((ax_loss, "upper right"), (ax_lr, "best"), (ax_top1, "lower right"), (ax_top5, "lower right")):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc=where)
    fig.suptitle(title if title is not None else "training curves: " + ", ".join(_labels(run_dirs)))
    fig.tight_layout()
    return save_png(fig, path)


# ---------------------------------------------------------------------------------------------------------------------
# `vivit plot`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vivit plot", description="Draw the training curves (loss, learning rate, validation accuracy) of runs."
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `vivit train`")
    parser.add_argument("--out", default="curves.png", help="the PNG to write (default: curves.png)")
    parser.add_argument("--title", default=None, help="the figure's title (default: the runs' names)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command; errors propagate to `vivit.cli.run_command`, which prints them as one line (exit status 2 for an
    --out that exists, 1 for runs whose metrics cannot be read)."""
    from vivit.cli.args import check_new_output

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    check_new_output("--out", out, args.overwrite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_runs(args.runs, out, title=args.title)
    for w in caught:
        print(f"vivit plot: warning: {w.message}", file=sys.stderr)
    print(out)
    return 0


__all__ = ["CurvesError", "main", "plot_runs", "read_metrics"]


if __name__ == "__main__":
    from vivit.cli import run_command

    sys.exit(run_command("plot", main))
