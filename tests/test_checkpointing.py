"""Trainer files: no code runs from a loaded file, checkpoints survive a crash at any file-system step, one trainer per
output directory, and a resume continues only the run it was asked to."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _helpers import TINY
from safetensors.torch import load_file

import vivit.training.checkpointing as ckpt
import vivit.training.train as train
from vivit.cli import main as cli
from vivit.models.modeling import VivitForVideoClassification

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def common(tmp_path) -> list[str]:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    return [
        "--config", str(config), "--train-samples", "32", "--val-samples", "16", "--batch-size", "16",
        "--no-progress", "--epochs", "3", "--mixup", "0.5", "--ema-decay", "0.9",
    ]  # fmt: skip


def _strict_json(line: str) -> dict:
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


def _run(argv, capsys) -> dict:
    assert cli(["train", *argv]) == 0
    return _strict_json(capsys.readouterr().out.strip().splitlines()[-1])


def _fails(argv, capsys, code: int) -> str:
    assert cli(["train", *argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


def _snapshot(run: Path) -> list:
    """Every file and its modification time, but the lock file (each trainer writes its process id there)."""
    return sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*") if p.name != ".lock")


def _epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _same_files(a: Path, b: Path, names=("model.safetensors", "ema/model.safetensors", "trainer_state.safetensors")):
    for name in names:
        x, y = load_file(a / name), load_file(b / name)
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), (name, k)


class _Payload:
    """Unpickling this creates `marker`: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


# ---------------------------------------------------------------------------------------------------------------------
# nothing executed from a loaded file


def test_a_pickle_payload_in_a_checkpoint_runs_nothing(tmp_path, common, capsys):
    marker = tmp_path / "code-ran"
    payload = pickle.dumps({"optimizer": _Payload(marker)})
    # the old layout (OUTPUT_DIR/checkpoint/trainer_state.pt): refused by name, never unpickled
    legacy = tmp_path / "legacy"
    VivitForVideoClassification(train.VivitConfig(**TINY, num_labels=8)).save_pretrained(legacy / "checkpoint")
    (legacy / "checkpoint" / "trainer_state.pt").write_bytes(payload)
    capsys.readouterr()
    for target in (legacy, legacy / "checkpoint"):
        out = tmp_path / "out"
        err = _fails(common + ["--output-dir", str(out), "--resume", str(target)], capsys, 1)
        assert "trainer_state.pt" in err and str(target) in err
        assert not marker.exists()
    # a current checkpoint with the payload planted beside its state: ignored, the run resumes from the safe files
    run = tmp_path / "run"
    _run(common + ["--output-dir", str(run), "--stop-after-epochs", "1"], capsys)
    (run / "checkpoint-1" / "trainer_state.pt").write_bytes(payload)
    summary = _run(common + ["--output-dir", str(run), "--resume", str(run)], capsys)
    assert summary["epochs"] == 3 and not marker.exists()
    assert pickle.loads(payload) == {"optimizer": None} and marker.exists()  # unpickled, the payload does run


def test_state_round_trip_keeps_types_and_tensors(tmp_path):
    import random

    import numpy as np

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "numpy": np.random.get_state(), "python": random.getstate()}
    state["shared"] = [state["optimizer"]["state"][0]["exp_avg"]] * 2  # the same tensor twice
    ckpt.save_state(tmp_path, "s", state)
    back = ckpt.load_state(tmp_path, "s")
    assert back["python"] == state["python"]
    assert back["numpy"][0] == "MT19937" and np.array_equal(back["numpy"][1], state["numpy"][1])
    assert back["numpy"][1].dtype == state["numpy"][1].dtype
    assert list(back["optimizer"]["state"]) == [0, 1]  # integer keys stay integers (else AdamW ignores them)
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    for i, s in state["optimizer"]["state"].items():
        for k, v in s.items():
            assert torch.equal(back["optimizer"]["state"][i][k], v)
    assert torch.equal(back["shared"][1], state["shared"][0])
    with pytest.raises(TypeError, match="without pickle"):
        ckpt.save_state(tmp_path, "bad", {"x": object()})


# ---------------------------------------------------------------------------------------------------------------------
# crash safety


class _Crash(BaseException):
    """A kill: nothing in the trainer catches it."""


def _arm(monkeypatch, fail_at: int | None) -> list[str]:
    """Count (and at call `fail_at`, crash) every file-system step of a save: writes, fsyncs, renames, deletions.
    A crash inside rmtree first deletes one file of the tree (a half-deleted directory)."""
    calls: list[str] = []

    def wrap(name, fn, partial_rmtree=False):
        def step(*a, **kw):
            calls.append(name)
            if len(calls) == fail_at:
                if partial_rmtree:
                    files = sorted(p for p in Path(a[0]).rglob("*") if p.is_file())
                    if files:
                        files[0].unlink()
                raise _Crash(f"{name} #{fail_at}")
            return fn(*a, **kw)

        return step

    monkeypatch.setattr(os, "fsync", wrap("fsync", os.fsync))
    monkeypatch.setattr(os, "rename", wrap("rename", os.rename))
    monkeypatch.setattr(os, "replace", wrap("replace", os.replace))
    monkeypatch.setattr(shutil, "rmtree", wrap("rmtree", shutil.rmtree, partial_rmtree=True))
    monkeypatch.setattr(Path, "write_text", wrap("write_text", Path.write_text))
    monkeypatch.setattr(train, "save_file", wrap("save_file", train.save_file))
    monkeypatch.setattr(ckpt, "save_file", wrap("save_file", ckpt.save_file))
    return calls


def test_a_crash_at_any_file_system_step_leaves_a_complete_checkpoint(tmp_path, common, capsys, monkeypatch):
    reference = tmp_path / "reference"
    _run(common + ["--output-dir", str(reference)], capsys)
    first = tmp_path / "first"
    _run(common + ["--output-dir", str(first), "--stop-after-epochs", "1"], capsys)
    second = common + ["--stop-after-epochs", "2"]

    # how many steps a resume that saves epoch 2 takes
    with monkeypatch.context() as m:
        counted = tmp_path / "counted"
        shutil.copytree(first, counted)
        calls = _arm(m, None)
        _run(second + ["--output-dir", str(counted), "--resume", str(counted)], capsys)
        steps = list(calls)
    assert {"fsync", "rename", "rmtree", "save_file", "write_text"} <= set(steps), steps

    for k in range(1, len(steps) + 1):
        run = tmp_path / f"crash-{k}"
        shutil.copytree(first, run)
        with monkeypatch.context() as m:
            _arm(m, k)
            with pytest.raises(_Crash):
                train.main(second + ["--output-dir", str(run), "--resume", str(run)])
        capsys.readouterr()
        # at every instant a complete checkpoint, loadable as a model
        found = ckpt.latest_checkpoint(run)
        assert ckpt.checkpoint_epoch(found) in (1, 2), (k, steps[k - 1])
        VivitForVideoClassification.from_pretrained(found)
        # continuing gives the uninterrupted run: no epoch lost or repeated, the same weights and state
        summary = _run(common + ["--output-dir", str(run), "--resume", str(run)], capsys)
        assert _epochs(run) == [1, 2, 3], (k, steps[k - 1])
        assert summary["checkpoint"] == str(run / "checkpoint-3")
        assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint-3", "curves.png", "metrics.jsonl"], (
            k,
            steps[k - 1],
        )
        _same_files(run / "checkpoint-3", reference / "checkpoint-3")


def test_resume_ignores_partial_checkpoints(tmp_path, common, capsys):
    run = tmp_path / "run"
    _run(common + ["--output-dir", str(run), "--stop-after-epochs", "2"], capsys)
    partial = run / "checkpoint-2"
    (partial / ckpt.COMPLETE).unlink()
    err = _fails(common + ["--output-dir", str(run), "--resume", str(partial)], capsys, 1)
    assert "without its COMPLETE mark" in err and str(partial) in err
    with pytest.raises(ckpt.CheckpointError, match="none complete"):
        ckpt.latest_checkpoint(run)  # the only one is partial


# ---------------------------------------------------------------------------------------------------------------------
# one trainer per directory, no silent reuse


def test_a_locked_output_directory_is_refused_until_its_holder_dies(tmp_path, common, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from vivit.training.checkpointing import run_lock\n"
         "with run_lock(__import__('pathlib').Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)",
         str(run)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = _fails(common + ["--output-dir", str(run)], capsys, 1)
        assert str(run) in err and "another trainer" in err
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()
    _run(common + ["--output-dir", str(run), "--epochs", "1"], capsys)  # the lock died with its process
    assert _epochs(run) == [1]


def test_a_second_run_into_a_used_directory_needs_resume_or_overwrite(tmp_path, common, capsys):
    run = tmp_path / "run"
    _run(common + ["--output-dir", str(run), "--stop-after-epochs", "2"], capsys)
    before = (run / "metrics.jsonl").read_text()
    weights = (run / "checkpoint-2" / "model.safetensors").read_bytes()
    err = _fails(common + ["--output-dir", str(run)], capsys, 2)
    assert str(run) in err and "--resume" in err and "--overwrite" in err
    assert (run / "metrics.jsonl").read_text() == before
    assert (run / "checkpoint-2" / "model.safetensors").read_bytes() == weights
    summary = _run(common + ["--output-dir", str(run), "--overwrite", "--epochs", "1"], capsys)
    assert _epochs(run) == [1] and summary["checkpoint"] == str(run / "checkpoint-1")
    assert sorted(p.name for p in run.glob("checkpoint*")) == ["checkpoint-1"]


# ---------------------------------------------------------------------------------------------------------------------
# what a resume may change


def test_resume_refuses_options_that_change_the_run(tmp_path, common, capsys):
    run = tmp_path / "run"
    _run(common + ["--output-dir", str(run), "--stop-after-epochs", "1"], capsys)
    files = _snapshot(run)
    resume = common + ["--output-dir", str(run), "--resume", str(run)]
    for extra, flag, saved, given in (
        (["--batch-size", "8"], "--batch-size", "16", "8"),
        (["--seed", "7"], "--seed", "0", "7"),
        (["--lr", "0.01"], "--lr", "0.002", "0.01"),
        (["--variant", "factorized_encoder"], "--variant", "None", "'factorized_encoder'"),
        (["--train-samples", "48"], "--train-samples", "32", "48"),
        (["--val-fraction", "0.2"], "--val-fraction", "0.1", "0.2"),
        (["--epochs", "2"], "--epochs", ">= 3", "2"),
    ):
        err = _fails(resume + extra, capsys, 2)
        assert err.startswith(f"vivit train: error: {flag}:") and saved in err and given in err, err
    assert _snapshot(run) == files
    # --epochs may grow: the run continues to the new end
    summary = _run(resume + ["--epochs", "4"], capsys)
    assert summary["epochs"] == 4 and _epochs(run) == [1, 2, 3, 4]


def test_resuming_a_finished_run_trains_nothing_and_prints_json(tmp_path, common, capsys):
    run = tmp_path / "run"
    done = _run(common + ["--output-dir", str(run)], capsys)
    files = [f for f in _snapshot(run) if f[0].name != "metrics.jsonl"]
    metrics = (run / "metrics.jsonl").read_text()
    time.sleep(0.01)
    again = _run(common + ["--output-dir", str(run), "--resume", str(run)], capsys)
    assert again["epochs"] == 3 and again["steps"] == done["steps"]
    assert again["checkpoint"] == done["checkpoint"] == str(run / "checkpoint-3")
    assert Path(again["checkpoint"]).is_dir()
    last = json.loads(metrics.splitlines()[-1])
    assert again["val_top1"] == last["val_top1"] == done["val_top1"]
    assert [f for f in _snapshot(run) if f[0].name != "metrics.jsonl"] == files
    assert (run / "metrics.jsonl").read_text() == metrics


def test_cli_errors_are_one_line_with_exit_codes(tmp_path, common):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vivit", "train", *common, "--output-dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd + ["--resume", str(tmp_path / "nowhere")], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"vivit train: error: argument --resume: expected an existing directory, got '{tmp_path / 'nowhere'}' "
        "(no such file or directory)"
    ]


def test_an_unusable_output_directory_is_one_line(tmp_path, common, capsys):
    (tmp_path / "file").write_text("")
    err = _fails(common + ["--output-dir", str(tmp_path / "file" / "run")], capsys, 2)
    assert err == (
        f"vivit train: error: argument --output-dir: expected a directory path, got '{tmp_path / 'file' / 'run'}' "
        f"({tmp_path / 'file'} is a file)"
    )
