"""Every `vivit` command reports a bad invocation as one stderr line `vivit CMD: error: ...` naming the option, file or
value, with exit status 2 (usage) or 1 (runtime); --debug / VIVIT_DEBUG=1 add the traceback; Ctrl-C exits 130."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import TINY

import vivit.cli as cli
from vivit.cli import args as cli_args
from vivit.training.checkpointing import CheckpointError, UsageError

ROOT = Path(__file__).resolve().parents[1]
CUDA_BAD = "cuda:99"  # no machine has 100 GPUs: refused with or without CUDA


@pytest.fixture()
def paths(tmp_path) -> dict[str, str]:
    """Placeholders of the invocation table: a file, an empty and a non-empty directory, a missing path, ..."""
    (tmp_path / "file.txt").write_text("not a video, not a checkpoint\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    (tmp_path / "bad.json").write_text("{not json")
    return {
        "file": str(tmp_path / "file.txt"),
        "dir": str(tmp_path / "dir"),
        "full": str(tmp_path / "full"),
        "missing": str(tmp_path / "missing"),
        "out": str(tmp_path / "out"),
        "tiny": str(tmp_path / "tiny.json"),
        "bad": str(tmp_path / "bad.json"),
    }


# (argv, exit status, substrings the error line must contain); {name} is a path of the `paths` fixture
TRAIN = [
    (["--lr", "-1"], 2, ["--lr", "> 0", "-1"]),
    (["--lr", "0"], 2, ["--lr", "got 0"]),
    (["--lr", "nan"], 2, ["--lr", "nan"]),
    (["--lr", "fast"], 2, ["--lr", "'fast'"]),
    (["--min-lr=-1e-5"], 2, ["--min-lr", ">= 0", "-1e-5"]),
    (["--lr", "0.001", "--min-lr", "0.01"], 2, ["--min-lr", "--lr", "0.01"]),
    (["--epochs", "0"], 2, ["--epochs", ">= 1", "got 0"]),
    (["--epochs", "1.5"], 2, ["--epochs", "'1.5'"]),
    (["--max-steps", "0"], 2, ["--max-steps", ">= 1"]),
    (["--stop-after-epochs", "-2"], 2, ["--stop-after-epochs", "-2"]),
    (["--batch-size", "0"], 2, ["--batch-size", ">= 1"]),
    (["--accum-steps", "0"], 2, ["--accum-steps", "got 0"]),
    (["--label-smoothing", "1"], 2, ["--label-smoothing", "[0, 1)", "got 1"]),
    (["--label-smoothing", "-0.1"], 2, ["--label-smoothing", "-0.1"]),
    (["--workers", "-1"], 2, ["--workers", ">= 0", "-1"]),
    (["--mixup", "-0.5"], 2, ["--mixup", ">= 0", "-0.5"]),
    (["--cutmix", "-1"], 2, ["--cutmix", "-1"]),
    (["--mixup-prob", "1.5"], 2, ["--mixup-prob", "[0, 1]", "1.5"]),
    (["--drop-path", "1.0"], 2, ["--drop-path", "[0, 1)"]),
    (["--weight-decay", "-0.01"], 2, ["--weight-decay", "-0.01"]),
    (["--warmup-steps", "-1"], 2, ["--warmup-steps", ">= 0"]),
    (["--clip-grad", "-1"], 2, ["--clip-grad", "-1"]),
    (["--ema-decay", "1"], 2, ["--ema-decay", "[0, 1)"]),
    (["--num-labels", "0"], 2, ["--num-labels", ">= 1"]),
    (["--train-samples", "0"], 2, ["--train-samples", "got 0"]),
    (["--val-samples", "-4"], 2, ["--val-samples", "-4"]),
    (["--eval-views", "0"], 2, ["--eval-views", "got 0"]),
    (["--seed", "-1"], 2, ["--seed", "-1"]),
    (["--variant", "model5"], 2, ["--variant", "spatiotemporal", "'model5'"]),
    (["--preset", "vivit-x"], 2, ["--preset", "vivit-b-16x2", "'vivit-x'"]),
    (["--config", "{missing}"], 2, ["--config", "{missing}", "no such file"]),
    (["--config", "{dir}"], 2, ["--config", "{dir}", "a directory"]),
    (["--config", "{tiny}", "--preset", "vivit-b-16x2"], 2, ["--preset", "not allowed with", "--config"]),
    (["--init", "{missing}"], 2, ["--init", "{missing}"]),
    (["--init-tubelet", "mean"], 2, ["--init-tubelet", "'mean'"]),
    (["--init-pos", "stretch"], 2, ["--init-pos", "'stretch'"]),
    (["--precision", "fp8"], 2, ["--precision", "'fp8'"]),
    (["--distributed", "zero"], 2, ["--distributed", "'zero'"]),
    (["--device", "gpu"], 2, ["--device", "'gpu'"]),
    (["--device", CUDA_BAD], 2, ["--device", CUDA_BAD]),
    (["--resume", "{missing}"], 2, ["--resume", "{missing}"]),
    (["--resume", "{file}"], 2, ["--resume", "{file}", "a file"]),
    (["--output-dir", "{file}"], 2, ["--output-dir", "{file}", "a file"]),
    (["--output-dir", "{file}/run"], 2, ["--output-dir", "{file}"]),
    (["--data", "{missing}"], 2, ["--data", "synthetic", "{missing}"]),
    (["--compile", "no_such_backend"], 2, ["--compile", "inductor", "'no_such_backend'"]),
    (["--no-such-option"], 2, ["unrecognized arguments", "--no-such-option"]),
    (["stray"], 2, ["unrecognized arguments", "stray"]),
    (["--epochs"], 2, ["--epochs", "expected one argument"]),
    # runtime: a file the model builder cannot use (exit 1, named)
    (["--config", "{bad}", "--output-dir", "{out}"], 1, ["{bad}"]),
]

PREDICT = [
    ([], 2, ["required", "video", "--model"]),
    (["{file}"], 2, ["required", "--model"]),
    (["{missing}", "--model", "{dir}"], 2, ["video", "{missing}", "no such file"]),
    (["{dir}", "--model", "{dir}"], 2, ["video", "{dir}", "a directory"]),
    (["{file}", "--model", "{missing}"], 2, ["--model", "{missing}"]),
    (["{file}", "--model", "{file}"], 2, ["--model", "{file}", "a file"]),
    (["{file}", "--model", "{dir}", "--views", "4by3"], 2, ["--views", "NxM", "'4by3'"]),
    (["{file}", "--model", "{dir}", "--views", "0x3"], 2, ["--views", "'0x3'"]),
    (["{file}", "--model", "{dir}", "--topk", "0"], 2, ["--topk", ">= 1", "got 0"]),
    (["{file}", "--model", "{dir}", "--num-frames", "0"], 2, ["--num-frames", "got 0"]),
    (["{file}", "--model", "{dir}", "--stride", "-2"], 2, ["--stride", "-2"]),
    (["{file}", "--model", "{dir}", "--sampling", "random"], 2, ["--sampling", "'random'"]),
    (["{file}", "--model", "{dir}", "--batch-size", "0"], 2, ["--batch-size", "got 0"]),
    (["{file}", "--model", "{dir}", "--device", "tpu:x"], 2, ["--device", "'tpu:x'"]),
    (["{file}", "--model", "{dir}", "--device", CUDA_BAD], 2, ["--device", CUDA_BAD]),
    (["{file}", "--model", "{dir}", "--bogus"], 2, ["unrecognized arguments", "--bogus"]),
    # runtime: a directory without a model in it (exit 1, named)
    (["{file}", "--model", "{full}"], 1, ["--model", "{full}", "config.json"]),
]

EVAL = [
    ([], 2, ["required", "--model", "--data"]),
    (["--model", "{dir}"], 2, ["required", "--data"]),
    (["--model", "{missing}", "--data", "{dir}"], 2, ["--model", "{missing}"]),
    (["--model", "{dir}", "--data", "{missing}"], 2, ["--data", "{missing}"]),
    (["--model", "{dir}", "--data", "{file}", "--root", "{missing}"], 2, ["--root", "{missing}"]),
    (["--model", "{dir}", "--data", "{dir}", "--root", "{dir}"], 2, ["--root", "--data", "annotation list"]),
    (["--model", "{dir}", "--data", "{dir}", "--views", "2"], 2, ["--views", "'2'"]),
    (["--model", "{dir}", "--data", "{dir}", "--batch-size", "0"], 2, ["--batch-size", "got 0"]),
    (["--model", "{dir}", "--data", "{dir}", "--workers", "-2"], 2, ["--workers", ">= 0", "-2"]),
    (["--model", "{dir}", "--data", "{dir}", "--num-frames", "x"], 2, ["--num-frames", "'x'"]),
    (["--model", "{dir}", "--data", "{dir}", "--stride", "0"], 2, ["--stride", "got 0"]),
    (["--model", "{dir}", "--data", "{dir}", "--device", "?"], 2, ["--device", "'?'"]),
    # runtime: no model in the directory
    (["--model", "{full}", "--data", "{dir}"], 1, ["--model", "{full}"]),
]

CONVERT = [
    ([], 2, ["required", "src", "dst"]),
    (["{missing}", "{out}"], 2, ["src", "{missing}", "no such file"]),
    (["{dir}", "{out}"], 2, ["src", "{dir}", "a directory"]),
    (["{file}", "{file}"], 2, ["dst", "{file}", "a file"]),
    (["{file}", "{file}/sub"], 2, ["dst", "{file}"]),
    (["{file}", "{full}"], 2, ["{full}", "--overwrite"]),
    (["{file}", "{out}", "--num-frames", "0"], 2, ["--num-frames", "got 0"]),
    (["{file}", "{out}", "--num-frames", "many"], 2, ["--num-frames", "'many'"]),
    # runtime: a file that is not a checkpoint
    (["{file}", "{out}"], 1, ["{file}", "not a flax msgpack checkpoint"]),
]

TABLE = (
    [("train", *row) for row in TRAIN]
    + [("predict", *row) for row in PREDICT]
    + [("eval", *row) for row in EVAL]
    + [("convert", *row) for row in CONVERT]
)


def _fill(items, paths):
    return [item.format(**paths) for item in items]


def _one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"vivit {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command, argv, code, needles", TABLE, ids=[f"{c}-{i}" for i, (c, *_) in enumerate(TABLE)])
def test_a_bad_invocation_is_one_named_line(command, argv, code, needles, paths, capsys, monkeypatch):
    monkeypatch.delenv("VIVIT_DEBUG", raising=False)
    got = cli.main([command, *_fill(argv, paths)])
    out, err = capsys.readouterr()
    line = _one_error_line(err, command)
    assert got == code, err
    for needle in _fill(needles, paths):
        assert needle in line, (needle, line)
    assert out == ""


def test_the_table_is_large_enough():
    assert len(TABLE) >= 60


@pytest.mark.parametrize("command", ["explain", "plot"])
def test_the_figure_commands_report_argparse_errors_as_one_line(command, capsys, monkeypatch):
    pytest.importorskip(cli.COMMANDS[command][0])
    monkeypatch.delenv("VIVIT_DEBUG", raising=False)
    assert cli.main([command, "--no-such-option-anywhere"]) == 2
    line = _one_error_line(capsys.readouterr().err, command)
    assert "required" in line or "--no-such-option-anywhere" in line


def test_a_command_that_is_not_installed_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("vivit.no_such_module", "nothing"))
    assert cli.main(["ghost"]) == 1
    line = _one_error_line(capsys.readouterr().err, "ghost")
    assert "vivit.no_such_module" in line and "not available" in line


def test_an_unknown_command_is_a_usage_error(capsys):
    assert cli.main(["trian", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vivit: error: unknown command 'trian'") and "train" in err[0]


# ---------------------------------------------------------------------------------------------------------------------
# --debug, VIVIT_DEBUG, Ctrl-C, exit statuses of the handler


@pytest.mark.parametrize("argv", [["--debug", "train", "--lr", "0"], ["train", "--lr", "0", "--debug"]])
def test_debug_before_or_after_the_command_shows_the_traceback(argv, capsys, monkeypatch):
    monkeypatch.delenv("VIVIT_DEBUG", raising=False)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "UsageError" in err
    assert err.strip().splitlines()[-1] == "vivit train: error: argument --lr: expected a number > 0, got 0"


def test_vivit_debug_environment_variable_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv("VIVIT_DEBUG", "1")
    assert cli.main(["predict", "--topk", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("vivit predict: ")
    monkeypatch.setenv("VIVIT_DEBUG", "0")
    assert cli.main(["predict", "--topk", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_debug_is_removed_before_the_command_sees_it_but_not_after_a_double_dash(monkeypatch):
    seen = []
    monkeypatch.setattr("vivit.models.convert.main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["--debug", "convert", "a", "--debug", "b", "--", "--debug"]) == 0
    assert seen == [["a", "b", "--", "--debug"]]


def test_ctrl_c_exits_130_with_one_line(capsys, monkeypatch):
    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr("vivit.cli.predict.main", interrupted)
    monkeypatch.delenv("VIVIT_DEBUG", raising=False)
    assert cli.main(["predict", "x"]) == 130
    assert capsys.readouterr().err == "vivit predict: interrupted\n"


@pytest.mark.parametrize(
    "error, code, line",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/runs/a/model.safetensors"), 1,
         "/runs/a/model.safetensors: No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied", "/x"), 1, "/x: Permission denied"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), 1, "/a -> /b: Invalid cross-device link"),
        (FileNotFoundError("--model m: no such model directory"), 1, "--model m: no such model directory"),
        (UsageError("--x: expected 1, got 2"), 2, "--x: expected 1, got 2"),
        (CheckpointError("--resume r: expected a checkpoint"), 1, "--resume r: expected a checkpoint"),
        (argparse.ArgumentError(None, "bad"), 2, "bad"),
        (ValueError("first line\n  second line"), 1, "first line second line"),
        (KeyError("weights"), 1, "KeyError: 'weights'"),
        (AssertionError(), 1, "AssertionError"),
        (RuntimeError(""), 1, "RuntimeError"),
    ],
)  # fmt: skip
def test_exceptions_become_one_line_and_an_exit_status(error, code, line, capsys, monkeypatch):
    def raising(argv):
        raise error

    monkeypatch.delenv("VIVIT_DEBUG", raising=False)
    assert cli.run_command("eval", raising, []) == code
    assert capsys.readouterr().err == f"vivit eval: error: {line}\n"


def test_a_dataloader_worker_error_shows_the_original_line(capsys, monkeypatch):
    import torch

    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise ValueError(f"clip{i}.mp4: expected a video file, got 3000 bytes of zeros")

    def main(argv):
        list(torch.utils.data.DataLoader(Broken(), num_workers=1))

    monkeypatch.delenv("VIVIT_DEBUG", raising=False)
    assert cli.run_command("eval", main, []) == 1
    assert capsys.readouterr().err == "vivit eval: error: clip0.mp4: expected a video file, got 3000 bytes of zeros\n"


class _Unreadable:
    """A dataset whose every item is a corrupt video file (module level: DataLoader workers pickle it)."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        from vivit.data.io import VideoReadError

        raise VideoReadError(f"clip{i}.mp4", "expected a video stream, found none")


def test_worker_errors_keep_their_type_and_whole_message(capsys, monkeypatch):
    import torch

    monkeypatch.delenv("VIVIT_DEBUG", raising=False)
    assert (
        cli.run_command("eval", lambda argv: list(torch.utils.data.DataLoader(_Unreadable(), num_workers=1)), []) == 1
    )
    assert capsys.readouterr().err == "vivit eval: error: clip0.mp4: expected a video stream, found none\n"
    # a message of several lines, the later ones looking like "name: text": all of it, nothing stripped
    worker = (
        "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise ValueError(m)\nValueError: a.mp4: first line\nb.mp4: second line'
    )
    assert cli.describe(ValueError(worker)) == "a.mp4: first line b.mp4: second line"


def test_sys_exit_codes_pass_through(capsys):
    assert cli.run_command("plot", lambda argv: sys.exit(0), []) == 0
    assert cli.run_command("plot", lambda argv: sys.exit(3), []) == 3
    assert cli.run_command("plot", lambda argv: sys.exit("no runs found"), []) == 1
    assert capsys.readouterr().err == "vivit plot: error: no runs found\n"


def test_help_exits_0_and_argparse_is_restored(capsys):
    assert cli.main(["predict", "--help"]) == 0
    assert "--topk" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # outside the handler argparse behaves as usual
        argparse.ArgumentParser().parse_args(["--nope"])


def test_fail_is_kept_for_callers():
    from vivit.cli.predict import fail

    assert fail("predict", UsageError("x")) == 2 and fail("predict", OSError("y")) == 1


# ---------------------------------------------------------------------------------------------------------------------
# the type helpers themselves


@pytest.mark.parametrize(
    "parse, good, bad",
    [
        (cli_args.positive_int, {"1": 1, " 7 ": 7}, ["0", "-1", "1.0", "", "x"]),
        (cli_args.non_negative_int, {"0": 0, "3": 3}, ["-1", "0.5"]),
        (cli_args.positive_float, {"1e-3": 1e-3, "2": 2.0}, ["0", "-1e-9", "inf", "nan", "x"]),
        (cli_args.non_negative_float, {"0": 0.0, "0.5": 0.5}, ["-0.1", "-inf"]),
        (cli_args.probability, {"0": 0.0, "0.999": 0.999}, ["1", "1.0", "-0.01", "nan"]),
        (cli_args.unit_interval, {"0": 0.0, "1": 1.0}, ["1.01", "-1"]),
        (cli_args.float_range(0, 1, low_open=True), {"1": 1.0, "0.1": 0.1}, ["0", "2"]),
        (cli_args.int_range(2, 4), {"2": 2, "4": 4}, ["1", "5"]),
        (cli_args.choice(["a", "b"]), {"a": "a"}, ["A", "c", ""]),
        (cli_args.views, {"4x3": "4x3", "1X1": "1X1"}, ["4", "0x1", "2x-1", "axb", "1x2x3"]),
        (cli_args.device, {"cpu": "cpu"}, ["", "gpu", CUDA_BAD]),
    ],
)
def test_type_helpers_accept_and_refuse_with_the_value_named(parse, good, bad):
    for text, value in good.items():
        assert parse(text) == value and type(parse(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected") as info:
            parse(text)
        assert repr(text) in str(info.value) or text.strip() in str(info.value)


def test_path_helpers(paths):
    assert cli_args.existing_file(paths["file"]) == paths["file"]
    assert cli_args.existing_dir(paths["dir"]) == paths["dir"]
    assert cli_args.existing_path(paths["dir"]) == paths["dir"]
    assert cli_args.output_dir(paths["out"] + "/a/b") == paths["out"] + "/a/b"
    assert cli_args.data_source("synthetic") == "synthetic"
    for parse, text in [
        (cli_args.existing_file, paths["dir"]),
        (cli_args.existing_file, paths["missing"]),
        (cli_args.existing_dir, paths["file"]),
        (cli_args.existing_path, paths["missing"]),
        (cli_args.output_dir, paths["file"]),
        (cli_args.output_dir, paths["file"] + "/x/y"),
        (cli_args.data_source, paths["missing"]),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse(text)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_refused(paths):
    os.chmod(paths["file"], 0)
    try:
        with pytest.raises(argparse.ArgumentTypeError, match="permission denied"):
            cli_args.existing_file(paths["file"])
    finally:
        os.chmod(paths["file"], 0o644)


# ---------------------------------------------------------------------------------------------------------------------
# in a fresh process: `python -m vivit ...` and `python -m vivit.training.train` go through the same handler


def _python(args, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "VIVIT_DEBUG"}
    full_env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, *args], env=full_env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_module_entry_points_use_the_handler(tmp_path):
    proc = _python(["-m", "vivit.training.train", "--batch-size", "0"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "vivit train: error: argument --batch-size: expected an integer >= 1, got 0\n"
    proc = _python(["-m", "vivit", "convert", str(tmp_path / "none"), str(tmp_path / "out")], VIVIT_DEBUG="1")
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("vivit convert: error: argument src:")
