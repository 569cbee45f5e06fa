"""Training curves: `plot_runs` / `vivit plot` on fabricated metrics, the trainer's curves.png and step curves, and
TensorBoard logging."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from _helpers import TINY
from PIL import Image

import vivit.viz.curves as curves
from vivit.cli import main as cli
from vivit.training.run_log import MAX_CURVE_POINTS


def _fabricate(run: Path, epochs: int = 3, steps_per_epoch: int = 4, offset: float = 0.0, per_step: bool = True):
    """A metrics.jsonl as the trainer writes it; returns the records."""
    run.mkdir(parents=True, exist_ok=True)
    records, step = [], 0
    for epoch in range(1, epochs + 1):
        curve = []
        for _ in range(steps_per_epoch):
            step += 1
            curve.append([step, 2.0 - 0.1 * step + offset, 1e-3 / step])
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": sum(p[1] for p in curve) / len(curve),
            "lr": curve[-1][2],
            "val_top1": 0.2 * epoch + offset,
            "val_top5": 0.3 * epoch,
            "seconds": 1.5 * epoch,
        }
        if per_step:
            record["step_curve"] = curve
        records.append(record)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _check_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 640 and image.height >= 480, image.size
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # a drawing, not one colour
    return pixels


@pytest.fixture()
def captured(monkeypatch):
    """plot_runs's figure, kept open instead of written."""
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return Path(path)

    monkeypatch.setattr(curves, "save_png", keep)
    yield figures
    from vivit.viz.figures import pyplot

    for fig in figures:
        pyplot().close(fig)


def test_plot_runs_writes_a_png(tmp_path):
    _fabricate(tmp_path / "run")
    out = curves.plot_runs([tmp_path / "run"], tmp_path / "c.png", title="tiny")
    assert out == tmp_path / "c.png"
    _check_png(out)


def test_two_runs_are_overlaid_with_their_data_and_names(tmp_path, captured):
    a = _fabricate(tmp_path / "a")
    b = _fabricate(tmp_path / "b", offset=0.05, per_step=False)  # no step curves: one point per epoch
    curves.plot_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "c.png", title="two runs")
    (fig,) = captured
    assert fig._suptitle.get_text() == "two runs"
    ax_loss, ax_lr, ax_top1, ax_top5 = fig.axes[:4]
    for ax in (ax_loss, ax_lr, ax_top1, ax_top5):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
        assert ax.get_xlabel() and ax.get_ylabel()
    loss_a, loss_b = ax_loss.get_lines()
    assert list(loss_a.get_xdata()) == list(range(1, 13))  # every step of run a
    assert np.allclose(loss_a.get_ydata(), [2.0 - 0.1 * s for s in range(1, 13)])
    assert list(loss_b.get_xdata()) == [4, 8, 12]  # run b: its epochs' mean losses at their last step
    assert np.allclose(loss_b.get_ydata(), [r["train_loss"] for r in b])
    assert np.allclose(ax_lr.get_lines()[0].get_ydata(), [1e-3 / s for s in range(1, 13)])
    top1_a, top1_b = ax_top1.get_lines()
    assert list(top1_a.get_xdata()) == [1, 2, 3]
    assert np.allclose(top1_a.get_ydata(), [100 * r["val_top1"] for r in a])
    assert np.allclose(top1_b.get_ydata(), [100 * r["val_top1"] for r in b])
    assert "%" in ax_top1.get_ylabel() and ax_top1.get_xlabel() == "epoch"


def test_plot_command_refuses_an_existing_output_without_overwrite(tmp_path, capsys):
    _fabricate(tmp_path / "a")
    _fabricate(tmp_path / "b", offset=0.1)
    out = tmp_path / "curves.png"
    assert cli(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--title", "T"]) == 0
    first = _check_png(out)
    capsys.readouterr()
    before = out.read_bytes()
    assert cli(["plot", str(tmp_path / "a"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0]
    assert out.read_bytes() == before
    assert cli(["plot", str(tmp_path / "a"), "--out", str(out), "--overwrite"]) == 0
    assert _check_png(out).shape != first.shape or out.read_bytes() != before  # one run now: another picture
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"epoch": 2, "step": 8, "train_loss": 1.0', "line 2: expected a JSON object"),
        ("[1, 2]", "line 2: expected a JSON object, got list"),
        ('{"epoch": "2", "step": 8}', "line 2: field 'epoch': expected an integer, got '2'"),
        ('{"epoch": 2, "step": 8, "val_top1": "high"}', "line 2: field 'val_top1': expected a number or null"),
        ('{"epoch": 2, "step": 8, "step_curve": [[1, 2]]}', "line 2: field 'step_curve'"),
    ],
)
def test_a_corrupt_metrics_line_is_a_one_line_error_naming_the_run(tmp_path, capsys, line, expected):
    good = tmp_path / "good"
    _fabricate(good)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"epoch": 1, "step": 4, "train_loss": 2.0}\n' + line + "\n")
    out = tmp_path / "c.png"
    assert cli(["plot", str(good), str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vivit plot: error: ") and str(bad / "metrics.jsonl") in err[0]
    assert expected in err[0], err[0]
    assert not out.exists()


def test_missing_metrics_and_a_line_being_written(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "empty") in err[0] and "metrics.jsonl" in err[0]
    run = tmp_path / "running"
    records = _fabricate(run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "st')  # the trainer is appending this line right now
    with pytest.warns(UserWarning, match="line 4 is incomplete"):
        assert [r["epoch"] for r in curves.read_metrics(run)] == [r["epoch"] for r in records]
    assert cli(["plot", str(run), "--out", str(tmp_path / "c.png")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 4 is incomplete" in err[0] and err[0].startswith("vivit plot: warning:")


# ---------------------------------------------------------------------------------------------------------------------
# the trainer


def _train(tmp_path, *extra) -> Path:
    import vivit.training.train as train

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    argv = [
        "--config", str(config), "--train-samples", "48", "--val-samples", "16", "--batch-size", "8",
        "--epochs", "2", "--lr", "3e-3", "--warmup-steps", "2", "--output-dir", str(out), "--no-progress", *extra,
    ]  # fmt: skip
    assert train.main(argv) == 0
    return out


def test_training_draws_curves_and_records_each_step(tmp_path, capsys):
    out = _train(tmp_path)
    _check_png(out / "curves.png")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [[p[0] for p in r["step_curve"]] for r in records] == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]
    for r in records:  # one point per step here: their mean is the epoch's mean loss, computed separately
        losses = [p[1] for p in r["step_curve"]]
        assert math.isclose(sum(losses) / len(losses), r["train_loss"], rel_tol=1e-5)
    lrs = [p[2] for r in records for p in r["step_curve"]]
    assert lrs[:3] == pytest.approx([1.5e-3, 3e-3, 3e-3])  # the rate each step used: linear warm-up over 2 steps
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))  # then cosine decay
    printed = capsys.readouterr().out
    assert "step_curve" not in printed and "epoch=2" in printed


def test_the_step_curve_keeps_at_most_50_window_means():
    from vivit.training.run_log import TrainingLog

    log = TrainingLog("unused", writer=False)
    log.begin_epoch(203)  # windows of 5 steps: 40 full ones and a last one of 3
    for s in range(1, 204):
        log.step(1000 + s, float(s), 0.5 / s)
    points = log.take_step_curve()
    assert len(points) == 41 <= MAX_CURVE_POINTS
    assert points[0] == [1005, 3.0, 0.1] and points[-1] == [1203, 202.0, 0.5 / 203]
    assert log.take_step_curve() == []


def test_a_plotting_failure_warns_once_and_training_goes_on(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(curves, "plot_runs", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _train(tmp_path)
    mine = [w for w in caught if "curves.png" in str(w.message)]
    assert len(mine) == 1 and "no fonts" in str(mine[0].message)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2 and not (out / "curves.png").exists()


def test_tensorboard_logs_steps_and_epochs(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = _train(tmp_path, "--log", "tensorboard")
    events = list((out / "tb").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 13))
    curve = [p for r in records for p in r["step_curve"]]
    assert np.allclose([e.value for e in loss], [p[1] for p in curve], rtol=1e-5)
    assert [e.step for e in acc.Scalars("val/top1")] == [6, 12]
    assert np.allclose([e.value for e in acc.Scalars("val/top1")], [r["val_top1"] for r in records])


def test_a_resumed_run_hides_the_events_a_crash_left_after_its_checkpoint(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    out = _train(tmp_path, "--log", "tensorboard", "--stop-after-epochs", "1")  # checkpoint-1 at step 6
    crashed = SummaryWriter(str(out / "tb"))  # a continuation that logged steps 7-9, then died before saving
    for step in (7, 8, 9):
        crashed.add_scalar("train/loss", 100.0, step)
    crashed.close()
    _train(tmp_path, "--log", "tensorboard", "--resume", str(out))
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 13)) and max(e.value for e in loss) < 10.0
    assert [e.step for e in acc.Scalars("val/top1")] == [6, 12]


def test_missing_tensorboard_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it raises ImportError
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    argv = ["--config", str(config), "--train-samples", "16", "--val-samples", "8", "--batch-size", "8"]
    assert cli(["train", *argv, "--output-dir", str(tmp_path / "run"), "--no-progress", "--log", "tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--log tensorboard" in err[0] and "pip install 'vivit[tensorboard]'" in err[0]
