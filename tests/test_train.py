"""The trainer (vivit/training/train.py) and its helpers: synthetic data, mixup, EMA, schedule, resume, compile, CLI."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import TINY
from safetensors.torch import load_file

from vivit.cli import main as cli
from vivit.data.synthetic import SyntheticMotion
from vivit.models.configuration import VivitConfig
from vivit.models.modeling import VivitForVideoClassification
from vivit.training.ema import ModelEMA
from vivit.training.mixup import Mixup, smooth_one_hot, soft_cross_entropy
from vivit.training.train import build_optimizer, forward_backward, main_process_threads, parse_args, warmup_cosine

ROOT = Path(__file__).resolve().parents[1]


def main(argv) -> int:
    """`vivit train ARGV` through the command's error handler (one stderr line and an exit status)."""
    return cli(["train", *argv])


@pytest.fixture()
def tiny_config(tmp_path) -> str:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def _run(argv, capsys) -> dict:
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------------------------------
# data


def test_synthetic_is_deterministic_and_labelled():
    a, b = SyntheticMotion(16, seed=3), SyntheticMotion(16, seed=3)
    for i in (0, 7, 15):
        assert torch.equal(a[i][0], b[i][0]) and a[i][1] == b[i][1]
    assert not torch.equal(a[0][0], SyntheticMotion(16, seed=4)[0][0])
    assert not torch.equal(a[0][0], SyntheticMotion(16, seed=3, split="validation")[0][0])
    x, y = a[5]
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and 0 <= y < a.num_classes
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert len(a.class_names) == a.num_classes == 8
    labels = {SyntheticMotion(400)[i][1] for i in range(400)}
    assert labels == set(range(8))


def test_synthetic_motion_follows_the_label():
    """The bright pixels' centroid moves by `speed` per frame in the labelled direction (on a torus)."""
    data = SyntheticMotion(32, noise=0.0, num_shapes=2, image_size=32)
    steps = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
    for i in range(32):
        clip, label = data.render(i)
        direction = data.class_names[label].split("-")[1]
        colour = clip.max(axis=(2, 3), keepdims=True)
        masks = (clip == colour).all(axis=1)  # (T, H, W): the shape's pixels
        for f in range(1, clip.shape[0]):
            dr, dc = steps[direction]
            shifted = [torch.roll(torch.from_numpy(masks[0]), (s * dr * f, s * dc * f), (0, 1)) for s in (1, 2)]
            assert any(torch.equal(torch.from_numpy(masks[f]), m) for m in shifted), (i, f, direction)


def test_synthetic_views_are_shifted_windows_and_bad_input_is_named():
    one = SyntheticMotion(4, num_views=1, num_frames=4, seed=1)
    multi = SyntheticMotion(4, num_views=3, num_frames=4, view_stride=2, seed=1)
    x, _ = multi[2]
    assert x.shape == (3, 4, 3, 32, 32)
    assert torch.equal(x[1, :2], x[0, 2:])  # the second window starts 2 frames later
    assert one[0][0].shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="split"):
        SyntheticMotion(4, split="dev")
    with pytest.raises(ValueError, match="num_shapes"):
        SyntheticMotion(4, num_shapes=9)
    with pytest.raises(IndexError, match="index"):
        SyntheticMotion(4)[4]


# ---------------------------------------------------------------------------------------------------------------------
# pieces of the loop


def test_mixup_targets_and_cutmix_box():
    labels = torch.tensor([0, 1, 2, 3])
    t = smooth_one_hot(labels, 5, 0.1)
    assert torch.allclose(t.sum(1), torch.ones(4)) and math.isclose(t[0, 0].item(), 0.92, rel_tol=1e-6)
    x = torch.randn(4, 2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    mixed, soft = Mixup(5, mixup_alpha=0.8, generator=g)(x, labels)
    assert mixed.shape == x.shape and torch.allclose(soft.sum(1), torch.ones(4))
    g = torch.Generator().manual_seed(1)
    mixed, soft = Mixup(5, cutmix_alpha=1.0, generator=g)(x, labels)
    changed = mixed != x
    # one box, the same in every frame and channel
    assert torch.equal(changed[:, :1, :1].expand_as(changed), changed)
    assert torch.allclose(soft.sum(1), torch.ones(4))
    pasted = 0
    for i in range(4):
        kept = 1.0 - changed[i, 0, 0].float().mean().item()
        if kept < 1.0:  # its own label keeps the weight of the area not pasted over
            pasted += 1
            assert math.isclose(soft[i, labels[i]].item(), kept, abs_tol=1e-6)
    assert pasted > 0
    plain, targets = Mixup(5)(x, labels)
    assert plain is x and torch.equal(targets, torch.eye(5)[:4])


def test_soft_cross_entropy_equals_torch_with_smoothing():
    logits, labels = torch.randn(6, 7), torch.randint(0, 7, (6,))
    ours = soft_cross_entropy(logits, smooth_one_hot(labels, 7, 0.2))
    torch.testing.assert_close(ours, torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.2))


def test_warmup_cosine_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = warmup_cosine(opt, total_steps=20, warmup_steps=4, lr=1.0, min_lr=0.1)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_ema_tracks_and_swaps_back():
    model = torch.nn.Linear(3, 2)
    ema = ModelEMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()  # decay_t = min(0.5, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.shadow["weight"], d * start + (1 - d) * (start + 1))
    live = model.weight.detach().clone()
    with ema.swapped_in():
        torch.testing.assert_close(model.weight.detach(), ema.shadow["weight"])
    assert torch.equal(model.weight, live)


def _tiny_model(**overrides):
    return VivitForVideoClassification(VivitConfig(**{**TINY, "num_labels": 8, **overrides}))


def test_gradient_accumulation_equals_the_big_batch():
    torch.manual_seed(0)
    model = _tiny_model()
    twin = copy.deepcopy(model)
    x, y = torch.randn(8, 4, 3, 16, 16), torch.randint(0, 8, (8,))
    t = smooth_one_hot(y, 8)
    forward_backward(model, x, t)
    for half in (slice(0, 4), slice(4, 8)):
        forward_backward(twin, x[half], t[half], loss_scale=0.5)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = _tiny_model(num_hidden_layers=2)
    twin = copy.deepcopy(model)
    twin.gradient_checkpointing_enable()
    x, t = torch.randn(2, 4, 3, 16, 16), smooth_one_hot(torch.tensor([1, 5]), 8)
    la, lb = forward_backward(model.train(), x, t), forward_backward(twin.train(), x, t)
    torch.testing.assert_close(la, lb)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_compiled_training_step_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _tiny_model()
    compiled = copy.deepcopy(model)
    compiled.compile(backend="aot_eager")
    x, t = torch.randn(3, 4, 3, 16, 16), smooth_one_hot(torch.tensor([0, 3, 7]), 8, 0.1)
    opt_a, opt_b = build_optimizer(model, 1e-3, 0.05), build_optimizer(compiled, 1e-3, 0.05)
    for _ in range(2):  # two steps: the second runs on weights the compiled step itself updated
        la, lb = forward_backward(model.train(), x, t), forward_backward(compiled.train(), x, t)
        torch.testing.assert_close(la, lb, atol=1e-6, rtol=1e-6)
        for (name, a), b in zip(model.named_parameters(), compiled.parameters()):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)
        opt_a.step(), opt_b.step(), opt_a.zero_grad(), opt_b.zero_grad()
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------------------------------
# whole runs


def _common(tiny_config, out) -> list[str]:
    return [
        "--config", tiny_config, "--train-samples", "64", "--val-samples", "32", "--batch-size", "16",
        "--output-dir", str(out), "--no-progress",
    ]  # fmt: skip


def test_short_synthetic_run_lowers_the_loss(tiny_config, tmp_path, capsys):
    argv = _common(tiny_config, tmp_path) + ["--epochs", "6", "--lr", "5e-3", "--train-samples", "128"]
    summary = _run(argv + ["--batch-size", "8"], capsys)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    losses = [r["train_loss"] for r in records]
    assert math.isclose(losses[0], math.log(8), rel_tol=0.1)  # starts near chance: ln(classes)
    assert losses[-1] < 0.85 * losses[0], losses
    assert summary["epochs"] == 6 and summary["steps"] == 6 * 16
    assert 0.0 <= summary["val_top1"] <= 1.0


def test_main_process_threads_leave_cores_to_the_workers():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert main_process_threads(8, 2, {}, cpu)[0] == 6
    assert main_process_threads(2, 2, {}, cpu)[0] == 1
    assert main_process_threads(2, 8, {}, cpu)[0] == 1  # more workers than cores: still one thread
    assert main_process_threads(1, 1, {}, cpu)[0] == 1
    assert main_process_threads(8, 2, {"OMP_NUM_THREADS": ""}, cpu)[0] == 6  # empty: not a choice
    # left to torch: the user's (or torchrun's) OMP_NUM_THREADS, no workers, a model on a GPU
    assert main_process_threads(8, 2, {"OMP_NUM_THREADS": "3"}, cpu) == (None, "OMP_NUM_THREADS=3 is set")
    assert main_process_threads(8, 0, {}, cpu) == (None, "no DataLoader workers")
    assert main_process_threads(8, 2, {}, cuda) == (None, "the model is on cuda")


def test_cpu_run_with_workers_sets_and_restores_main_threads(tiny_config, tmp_path, capsys, caplog, monkeypatch):
    import vivit.training.train as train

    calls = []
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(train, "usable_cores", lambda: 4)
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    before = torch.get_num_threads()
    argv = _common(tiny_config, tmp_path) + ["--train-samples", "16", "--val-samples", "16", "--epochs", "1"]
    with caplog.at_level("INFO", logger="vivit.training.train"):
        _run(argv + ["--workers", "1", "--device", "cpu"], capsys)
    assert calls == [3, before]  # 4 cores - 1 worker, then torch's count again when the run ends
    assert [r.getMessage() for r in caplog.records if "intra-op" in r.getMessage()] == [
        f"main-process intra-op threads: 3 (was {before}; usable cores 4 - DataLoader workers 1; "
        "OMP_NUM_THREADS overrides; set back after the run)"
    ]
    calls.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    _run(argv + ["--workers", "1", "--device", "cpu", "--output-dir", str(tmp_path / "omp")], capsys)
    assert calls == []


def test_resume_continues_bit_identically(tmp_path, capsys):
    """Dropout, drop path, mixup/cutmix, label smoothing, EMA and accumulation all draw randomness or carry state."""
    tiny_config = tmp_path / "two_blocks.json"  # drop path rises from 0 at the first block: it needs two
    tiny_config.write_text(json.dumps({**TINY, "num_hidden_layers": 2, "hidden_dropout_prob": 0.1}))
    tiny_config = str(tiny_config)
    extra = [
        "--epochs", "3", "--drop-path", "0.2", "--mixup", "0.8", "--cutmix", "1.0", "--label-smoothing", "0.1",
        "--ema-decay", "0.9", "--accum-steps", "2", "--batch-size", "8",
    ]  # fmt: skip
    full = _run(_common(tiny_config, tmp_path / "full") + extra, capsys)
    _run(_common(tiny_config, tmp_path / "cut") + extra + ["--stop-after-epochs", "1"], capsys)
    assert json.loads((tmp_path / "cut" / "metrics.jsonl").read_text())["epoch"] == 1
    assert sorted(p.name for p in (tmp_path / "cut").glob("checkpoint*")) == ["checkpoint-1"]
    resumed = _run(_common(tiny_config, tmp_path / "cut") + extra + ["--resume", str(tmp_path / "cut")], capsys)
    ckpt = tmp_path / "cut" / "checkpoint-3"
    assert resumed["checkpoint"] == str(ckpt) and full["checkpoint"] == str(tmp_path / "full" / "checkpoint-3")
    # the weights, the EMA and the whole trainer state (optimizer moments, step counters, EMA shadow, RNG states)
    for name in ("model.safetensors", "ema/model.safetensors", "trainer_state.safetensors"):
        a, b = load_file(tmp_path / "full" / "checkpoint-3" / name), load_file(ckpt / name)
        assert a.keys() == b.keys() and len(a) > 0
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert not list(tmp_path.rglob("*.pt"))  # no pickle anywhere
    sa = json.loads((tmp_path / "full" / "checkpoint-3" / "trainer_state.json").read_text())["__dict__"]
    sb = json.loads((ckpt / "trainer_state.json").read_text())["__dict__"]
    assert sa["step"] == sb["step"] == 3 * 4 and full["val_top1"] == resumed["val_top1"]
    lines_full = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    lines_cut = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
    assert [strip(x) for x in lines_full] == [strip(x) for x in lines_cut]


def test_cli_end_to_end(tiny_config, tmp_path):
    """`vivit train` (through the `vivit` dispatcher) in a fresh process: the last stdout line is the JSON summary;
    the checkpoint loads and reproduces the reported accuracy."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vivit", "train", *_common(tiny_config, out), "--epochs", "1", "--ema-decay", "0.9"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"val_top1", "epochs", "seconds", "checkpoint"} <= summary.keys()
    assert 0.0 <= summary["val_top1"] <= 1.0 and summary["epochs"] == 1 and summary["seconds"] > 0
    ckpt = Path(summary["checkpoint"])
    assert ckpt == out / "checkpoint-1" and (ckpt / "COMPLETE").is_file()
    for directory in (ckpt, ckpt / "ema"):
        model = VivitForVideoClassification.from_pretrained(directory)
        assert model.config.num_labels == 8 and model.config.hidden_size == 32
    weights, averaged = load_file(ckpt / "model.safetensors"), load_file(ckpt / "ema" / "model.safetensors")
    assert all(not torch.equal(weights[k], averaged[k]) for k in weights)  # the EMA is not the live model
    # the saved weights are the trained ones: evaluating them reproduces the reported accuracy
    from torch.utils.data import DataLoader

    from vivit.cli.evaluate import evaluate

    val = SyntheticMotion(32, num_frames=4, image_size=16, split="validation")
    result = evaluate(VivitForVideoClassification.from_pretrained(ckpt), DataLoader(val, batch_size=16), progress=False)
    assert result["top1"] == summary["val_top1"]


def test_fine_tune_from_a_vivit_checkpoint_with_a_new_head_compiled(tiny_config, tmp_path, capsys):
    """--init HF_VIVIT_DIR with a different number of classes, trained through --compile and checkpointing."""
    source = _tiny_model(num_labels=5)
    source.save_pretrained(tmp_path / "pretrained")
    torch._dynamo.reset()
    argv = ["--epochs", "1", "--init", str(tmp_path / "pretrained"), "--compile", "aot_eager"]
    with pytest.warns(UserWarning, match="re-initialised"):  # the 5-class head does not fit 8 classes
        summary = _run(_common(tiny_config, tmp_path / "ft") + argv + ["--gradient-checkpointing"], capsys)
    torch._dynamo.reset()
    tuned = VivitForVideoClassification.from_pretrained(summary["checkpoint"])
    assert tuned.config.num_labels == 8 and tuned.classifier.weight.shape == (8, 32)
    body = "vivit.layers.0.mlp.fc2.weight"
    assert not torch.equal(tuned.state_dict()[body], source.state_dict()[body])  # trained, from the source weights
    torch.testing.assert_close(tuned.state_dict()[body], source.state_dict()[body], atol=0.05, rtol=0)


@pytest.mark.parametrize(
    "variant", ["spatiotemporal", "factorized_encoder", "factorized_self_attention", "factorized_dot_product"]
)
def test_every_variant_trains_and_saves(tiny_config, tmp_path, capsys, variant):
    argv = _common(tiny_config, tmp_path) + ["--variant", variant, "--epochs", "1", "--drop-path", "0.1"]
    summary = _run(argv + ["--train-samples", "32"], capsys)
    model = VivitForVideoClassification.from_pretrained(summary["checkpoint"])
    assert model.config.variant == variant and model.config.drop_path_rate == 0.1
    assert model.config.pooling == ("cls" if variant in ("spatiotemporal", "factorized_encoder") else "mean")


def test_bad_arguments_are_named(tiny_config, tmp_path, capsys):
    assert main(["--epochs", "0"]) == 2
    assert capsys.readouterr().err == "vivit train: error: argument --epochs: expected an integer >= 1, got 0\n"
    assert main(_common(tiny_config, tmp_path) + ["--batch-size", "65"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch-size 65" in err[0] and "64 training clips" in err[0]
    oblong = tmp_path / "oblong.json"
    oblong.write_text(json.dumps({**TINY, "image_size": [16, 24]}))
    assert main(_common(str(oblong), tmp_path / "oblong") + ["--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data synthetic" in err[0] and "[16, 24]" in err[0]


def test_trains_on_a_video_folder(tiny_config, tmp_path, capsys):
    """--data ROOT with ROOT/{train,val}/<class>/*.mp4 (real encoded videos); the model names its classes."""
    from _helpers import random_frames

    from vivit.data.io import write_video

    root = tmp_path / "videos"
    for split, count in (("train", 4), ("val", 2)):
        for label in ("jumping", "waving"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                write_video(root / split / label / f"{i}.mp4", random_frames(100 * i + len(label), 9, 20, 22))
    argv = [
        "--config", tiny_config, "--data", str(root), "--batch-size", "4", "--epochs", "1",
        "--output-dir", str(tmp_path / "run"), "--no-progress",
    ]  # fmt: skip
    summary = _run(argv, capsys)
    assert summary["epochs"] == 1 and 0.0 <= summary["val_top1"] <= 1.0
    model = VivitForVideoClassification.from_pretrained(summary["checkpoint"])
    assert sorted(model.config.id2label.values()) == ["jumping", "waving"]
    # the checkpoint carries its preprocessing, so `vivit predict` runs on it as saved
    from vivit.cli.predict import main as predict

    video = root / "val" / "waving" / "0.mp4"
    assert predict([str(video), "--model", summary["checkpoint"], "--topk", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == summary["checkpoint"]
    assert sorted(p["label"] for p in result["predictions"]) == ["jumping", "waving"]


def test_init_accepts_a_run_directory(tmp_path):
    # --init RUN_DIR means the run's newest complete checkpoint; an incomplete newer one is passed over
    run = tmp_path / "run"
    for epoch, complete in ((1, True), (2, True), (3, False)):
        ckpt_dir = run / f"checkpoint-{epoch}"
        ckpt_dir.mkdir(parents=True)
        (ckpt_dir / "config.json").write_text("{}")
        if complete:
            (ckpt_dir / "COMPLETE").write_text("")
    args = parse_args(["--init", str(run), "--output-dir", str(tmp_path / "out")])
    assert Path(args.init) == run / "checkpoint-2"
    model_dir = run / "checkpoint-1"
    assert Path(parse_args(["--init", str(model_dir), "--output-dir", str(tmp_path / "o")]).init) == model_dir
