"""Bad-invocation sweep of the `vivit` commands: every option of train, predict, eval and convert with values outside
its domain (numbers: 0, -1, nan, inf, text, empty, overflow, fractions; paths: missing, wrong kind; choices: unknown).
Counts how many end with exactly one stderr line `vivit CMD: error: ...` naming the option or the value, no traceback
and exit status 2. Values inside an option's domain are skipped (they are not bad invocations).

    PYTHONPATH=$PWD python bench/cli_error_sweep.py [-v]
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import tempfile
from pathlib import Path

import vivit.cli as cli

NUM = ["0", "-1", "nan", "inf", "abc", "", "1e999", "-0.5", "1.5", "2"]
TINY = dict(
    image_size=16, num_frames=4, tubelet_size=[2, 8, 8], hidden_size=32, num_hidden_layers=1, num_attention_heads=2
)


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        return None
    return value if kind is int or math.isfinite(value) else None


def _in(kind: type, low: float, high: float = math.inf, high_open: bool = False):
    def inside(text: str) -> bool:
        value = _number(text, kind)
        return value is not None and low <= value and (value < high if high_open else value <= high)

    return inside


POS_INT, NONNEG_INT = _in(int, 1), _in(int, 0)
DOMAIN = {
    "--drop-path": _in(float, 0, 1, True),
    "--label-smoothing": _in(float, 0, 1, True),
    "--ema-decay": _in(float, 0, 1, True),
    "--mixup-prob": _in(float, 0, 1),
    "--lr": lambda t: _in(float, 0)(t) and float(t) > 0,
    "--min-lr": _in(float, 0),
    "--weight-decay": _in(float, 0),
    "--clip-grad": _in(float, 0),
    "--mixup": _in(float, 0),
    "--cutmix": _in(float, 0),
    "--workers": NONNEG_INT,
    "--val-fraction": lambda t: _in(float, 0, 1, True)(t) and float(t) > 0,
    "--warmup-steps": NONNEG_INT,
    "--seed": NONNEG_INT,
}


def invocations(tmp: Path):
    (tmp / "f.txt").write_text("x")
    (tmp / "d").mkdir()
    (tmp / "tiny.json").write_text(json.dumps(TINY))
    f, d, missing = str(tmp / "f.txt"), str(tmp / "d"), str(tmp / "missing")
    base = {
        "train": ["--config", str(tmp / "tiny.json"), "--epochs", "1", "--train-samples", "8", "--val-samples", "4"]
        + ["--batch-size", "4", "--no-progress", "--output-dir", str(tmp / "out")],
        "predict": [f, "--model", d],
        "eval": ["--model", d, "--data", d],
        "convert": [f, str(tmp / "converted")],
    }
    numeric = {
        "train": "--drop-path --num-labels --train-samples --val-samples --eval-views --workers --epochs --batch-size "
        "--accum-steps --lr --min-lr --weight-decay --warmup-steps --clip-grad --label-smoothing --mixup --cutmix "
        "--mixup-prob --ema-decay --seed --max-steps --stop-after-epochs --val-fraction",
        "predict": "--topk --num-frames --stride --batch-size",
        "eval": "--num-frames --stride --batch-size --workers --val-fraction --seed",
        "convert": "--num-frames",
    }
    other = {
        "train": {
            "--variant": ["model5", ""], "--preset": ["x"], "--config": [missing, d], "--init": [missing],
            "--init-tubelet": ["x"], "--init-pos": ["x"], "--compile": ["nope"], "--data": [missing],
            "--val-data": [missing], "--root": [missing, f], "--val-root": [missing, f],
            "--precision": ["fp8"], "--output-dir": [f, f + "/x"], "--resume": [missing, f], "--distributed": ["x"],
            "--device": ["gpu", "cuda:99", "", "cpu:x"],
        },
        "predict": {
            "--views": ["4", "0x1", "axb", ""], "--sampling": ["x"], "--device": ["gpu", "cuda:99"],
            "--model": [missing, f],
        },
        "eval": {
            "--views": ["4", "0x1"], "--sampling": ["x"], "--device": ["gpu"], "--model": [missing, f],
            "--data": [missing], "--root": [missing, f], "--split": ["dev"],
        },
        "convert": {},
    }  # fmt: skip
    skipped = 0
    for command in base:
        for option in numeric[command].split():
            for value in NUM:
                if DOMAIN.get(option, POS_INT)(value):
                    skipped += 1
                    continue
                yield command, option, value, base[command]
        for option, values in other[command].items():
            for value in values:
                yield command, option, value, base[command]
    print(f"values inside the option's domain, skipped: {skipped}")


def main(verbose: bool) -> int:
    tried = clear = 0
    with tempfile.TemporaryDirectory() as tmp:
        for command, option, value, base in invocations(Path(tmp)):
            # `--opt=VALUE`: argparse reads a lone "-1e-5" as an option, not as a value
            argv = [command, *base, f"{option}={value}"]
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(argv)
            lines = err.getvalue().strip().splitlines()
            ok = (
                code == 2
                and len(lines) == 1
                and lines[0].startswith(f"vivit {command}: error: ")
                and (option in lines[0] or (value and value in lines[0]))
            )
            tried += 1
            clear += ok
            if verbose or not ok:
                print("ok " if ok else "BAD", code, argv[-1], "|", " / ".join(lines))
    print(f"bad invocations: {tried}; one clear line naming the option or value, exit 2: {clear}")
    return 0 if tried == clear else 1


if __name__ == "__main__":
    sys.exit(main("-v" in sys.argv[1:]))
