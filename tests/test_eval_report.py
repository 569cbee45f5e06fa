"""`vivit eval`'s report: per-class and mean class accuracy, top-k, preds.jsonl, the confusion matrix files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import random_frames
from PIL import Image

from vivit.cli import main as cli
from vivit.cli.eval_report import classification_report, prediction_lines
from vivit.data.io import write_video
from vivit.data.processing import VivitImageProcessor
from vivit.models.configuration import VivitConfig
from vivit.models.modeling import VivitForVideoClassification
from vivit.viz import confusion

LABELS = {0: "walk", 1: "jump", 2: "run"}
TINY = dict(
    image_size=16,
    num_frames=4,
    tubelet_size=[2, 8, 8],
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    backend="eager",
)
PROC = VivitImageProcessor(size={"shortest_edge": 18}, crop_size=16)
VIDEOS = {"walk": 3, "run": 2}  # class folder -> number of videos


def _model(seed: int) -> VivitForVideoClassification:
    torch.manual_seed(seed)
    model = VivitForVideoClassification(VivitConfig(**TINY, id2label=LABELS))
    with torch.no_grad():  # spread the logits so that videos get different predictions
        model.classifier.weight.normal_(0.0, 3.0)
    return model.eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_report")
    for seed in (1, 2):  # a run directory with two complete checkpoints: the newer one is the model
        directory = root / "run" / f"checkpoint-{seed}"
        _model(seed).save_pretrained(directory)
        PROC.save_pretrained(directory)
        (directory / "COMPLETE").write_text("{}\n")
    for name, count in VIDEOS.items():
        (root / "data" / name).mkdir(parents=True)
        for i in range(count):
            write_video(root / "data" / name / f"{i}.mp4", random_frames(7 * i + len(name), 6))
    return root


def _eval(argv, capsys):
    code = cli(["eval", "--workers", "0", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _hand_count(model_dir: Path, data: Path):
    """Per video: (path, true id, probabilities), from `vivit.cli.predict.classify`, which decodes each file itself."""
    from vivit.cli.predict import classify

    model = VivitForVideoClassification.from_pretrained(model_dir).eval()
    rows = []
    for name in sorted(VIDEOS):
        for i in range(VIDEOS[name]):
            path = data / name / f"{i}.mp4"
            rows.append((str(path), {v: k for k, v in LABELS.items()}[name], classify(model, PROC, str(path))))
    return rows


def test_eval_report_files_and_per_class_numbers(setup, tmp_path, capsys):
    root = setup
    preds = tmp_path / "out" / "preds.jsonl"
    code, out, err = _eval(
        ["--model", str(root / "run"), "--data", str(root / "data"), "--topk", "2", "--out", str(preds), "--json"],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    # the run directory's newest checkpoint is the model evaluated
    rows = _hand_count(root / "run" / "checkpoint-2", root / "data")
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(lines) == len(rows) == 5
    by_path = {line["path"]: line for line in lines}
    assert set(by_path) == {r[0] for r in rows}
    for path, label, probs in rows:
        line = by_path[path]
        assert set(line) == {"path", "label", "topk"} and line["label"] == LABELS[label]
        assert [p["label"] for p in line["topk"]] == [LABELS[int(i)] for i in probs.topk(2).indices]
        assert [p["score"] for p in line["topk"]] == pytest.approx(probs.topk(2).values.tolist(), abs=1e-5)
    # per class, counted here from the independent predictions
    per_class = {p["label"]: p for p in result["per_class"]}
    assert set(per_class) == {"walk", "run"}  # "jump" has no videos
    accuracies = []
    for name, count in VIDEOS.items():
        correct = sum(int(p.argmax()) == label for _, label, p in rows if LABELS[label] == name)
        assert (per_class[name]["videos"], per_class[name]["correct"]) == (count, correct)
        assert per_class[name]["accuracy"] == pytest.approx(correct / count)
        accuracies.append(correct / count)
    assert result["mean_class_accuracy"] == pytest.approx(sum(accuracies) / 2)
    assert result["top1"] == pytest.approx(sum(int(p.argmax()) == label for _, label, p in rows) / 5)
    top2 = sum(label in p.topk(2).indices.tolist() for _, label, p in rows) / 5
    assert result["top2"] == pytest.approx(top2) and result["topk"] == 2 and result["num_samples"] == 5
    table = out.splitlines()[:4]  # header, walk, run (by class index), the summary line
    assert table[0].split() == ["class", "videos", "correct", "accuracy"]
    assert table[1].split()[:3] == ["walk", "3", str(per_class["walk"]["correct"])]
    assert table[2].split()[:3] == ["run", "2", str(per_class["run"]["correct"])]
    assert "mean class accuracy" in table[3]
    # the confusion matrix beside --out
    matrix_file = tmp_path / "out" / "preds.confusion.json"
    saved = json.loads(matrix_file.read_text())
    assert saved["labels"] == ["walk", "jump", "run"]
    matrix = np.array(saved["matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 5
    assert matrix.sum(1).tolist() == [3, 0, 2]  # rows: true classes
    for _, label, p in rows:
        matrix[label, int(p.argmax())] -= 1
    assert not matrix.any()
    with Image.open(tmp_path / "out" / "preds.confusion.png") as image:
        assert image.format == "PNG" and image.width >= 640 and image.height >= 480
        assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 10


def test_eval_outputs_are_refused_unless_overwrite(setup, tmp_path, capsys):
    root = setup
    prefix = tmp_path / "cm"
    base = ["--model", str(root / "run" / "checkpoint-1"), "--data", str(root / "data")]
    code, _, err = _eval(base + ["--confusion", str(prefix)], capsys)
    assert code == 0, err
    written = (tmp_path / "cm.confusion.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.confusion.json", "cm.confusion.png"]
    code, _, err = _eval(base + ["--confusion", str(prefix), "--topk", "1"], capsys)
    assert (
        code == 2
        and err.count("\n") == 1
        and "cm.confusion.json: expected a new file, found one" in err
        and "--overwrite" in err
    )
    code, _, err = _eval(base + ["--confusion", str(prefix), "--overwrite"], capsys)
    assert code == 0, err
    assert (tmp_path / "cm.confusion.json").read_bytes() == written  # the same model and data: the same counts
    code, _, err = _eval(base + ["--topk", "0"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--topk" in err and "expected an integer >= 1, got 0" in err
    # --model RUN_DIR is its newest checkpoint: checkpoint-1 left alone gives other predictions than the run
    shutil.copytree(root / "run" / "checkpoint-1", tmp_path / "only1" / "checkpoint-1")
    for name, model in (("a", tmp_path / "only1"), ("b", root / "run")):
        assert (
            _eval(["--model", str(model), "--data", str(root / "data"), "--out", str(tmp_path / name)], capsys)[0] == 0
        )
    assert (tmp_path / "a").read_text() != (tmp_path / "b").read_text()


def test_classification_report_by_hand():
    names = ["a", "b", "c", "d"]
    probs = torch.tensor(
        [
            [0.7, 0.2, 0.1, 0.0],  # a -> a (right)
            [0.1, 0.5, 0.4, 0.0],  # a -> b, second c
            [0.2, 0.3, 0.4, 0.1],  # a -> c, second b
            [0.1, 0.6, 0.2, 0.1],  # b -> b (right)
            [0.5, 0.1, 0.3, 0.1],  # c -> a, second c
        ]
    )
    labels = torch.tensor([0, 0, 0, 1, 2])
    report = classification_report(probs, labels, names, topk=2)
    assert report["top1"] == pytest.approx(2 / 5) and report["top2"] == pytest.approx(3 / 5)
    assert report["top5"] == 1.0  # k = min(5, 4 classes)
    assert report["per_class"] == [
        {"label": "a", "id": 0, "videos": 3, "correct": 1, "accuracy": pytest.approx(1 / 3)},
        {"label": "b", "id": 1, "videos": 1, "correct": 1, "accuracy": 1.0},
        {"label": "c", "id": 2, "videos": 1, "correct": 0, "accuracy": 0.0},
    ]
    assert report["mean_class_accuracy"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert report["confusion"].tolist() == [[1, 1, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    line = json.loads(prediction_lines(["x.mp4"], labels[:1], probs[:1], names, 3)[0])
    assert line == {"path": "x.mp4", "label": "a", "topk": [
        {"label": "a", "score": pytest.approx(0.7)}, {"label": "b", "score": pytest.approx(0.2)},
        {"label": "c", "score": pytest.approx(0.1)},
    ]}  # fmt: skip
    with pytest.raises(ValueError, match="--topk"):
        classification_report(probs, labels, names, topk=0)


@pytest.mark.parametrize("classes, texts", [(4, True), (40, False)])
def test_confusion_picture_writes_counts_only_for_few_classes(tmp_path, monkeypatch, classes, texts):
    kept = []
    monkeypatch.setattr(confusion, "save_png", lambda fig, path: kept.append(fig) or Path(path))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, 200)
    predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, classes, 200))
    matrix = confusion.confusion_matrix(labels, predictions, classes)
    assert matrix.sum() == 200 and np.trace(matrix) == int((labels == predictions).sum())
    confusion.write_confusion(tmp_path / "x", matrix, [f"class {i}" for i in range(classes)])
    assert json.loads((tmp_path / "x.confusion.json").read_text())["matrix"] == matrix.tolist()
    (fig,) = kept
    ax = fig.axes[0]
    assert len(ax.texts) == (int((matrix > 0).sum()) if texts else 0)
    if texts:
        assert sorted(int(t.get_text()) for t in ax.texts) == sorted(matrix[matrix > 0].tolist())
    from vivit.viz.figures import pyplot

    pyplot().close(fig)
