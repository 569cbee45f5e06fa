"""`vivit predict` / `vivit eval` end to end on tiny random models saved to temporary directories, and evaluate()."""

import json
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
import transformers
from _helpers import random_frames

from vivit.cli import main as cli
from vivit.cli.evaluate import evaluate
from vivit.data.io import write_video
from vivit.data.processing import VivitImageProcessor
from vivit.models.configuration import VivitConfig
from vivit.models.modeling import VivitForVideoClassification, VivitModel

LABELS = {0: "walk", 1: "jump", 2: "run", 3: "swim", 4: "sit", 5: "wave"}
TINY = dict(
    image_size=16,
    num_frames=4,
    tubelet_size=[2, 8, 8],
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=24,
)
PROC = VivitImageProcessor(size={"shortest_edge": 18}, crop_size=16)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    model = VivitForVideoClassification(VivitConfig(**TINY, id2label=LABELS, backend="eager"))
    model.save_pretrained(root / "model")
    PROC.save_pretrained(root / "model")
    write_video(root / "clip.mp4", random_frames(0, 13))
    return root, model.eval()


def _run(argv, capsys):
    code = cli(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _decode(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_predict_json_matches_manual_pipeline(setup, capsys):
    root, model = setup
    code, out, err = _run(
        ["predict", str(root / "clip.mp4"), "--model", str(root / "model"), "--views", "2x1", "--topk", "3", "--json"],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert [p["label"] for p in result["predictions"]] == [LABELS[p["id"]] for p in result["predictions"]]
    assert len(result["predictions"]) == 3
    # oracle: full decode with PyAV, 2 clips of 4 frames at stride 2 (span 7 of 13: starts 0 and 6),
    # HF's own processor (center crop), our model, mean of the logits
    hf_processor = transformers.VivitImageProcessor(size={"shortest_edge": 18}, crop_size={"height": 16, "width": 16})
    frames = _decode(root / "clip.mp4")
    with torch.no_grad():
        logits = [
            model(
                pixel_values=hf_processor(list(frames[s + 2 * np.arange(4)]), return_tensors="pt")["pixel_values"]
            ).logits
            for s in (0, 6)
        ]
    probs = torch.cat(logits).mean(0).softmax(-1)
    scores, ids = probs.topk(3)
    assert [p["id"] for p in result["predictions"]] == ids.tolist()
    np.testing.assert_allclose([p["score"] for p in result["predictions"]], scores.numpy(), atol=2e-4)
    # text output: one line per label, then the JSON line
    assert out.strip().splitlines()[0].endswith(result["predictions"][0]["label"])


def test_predict_multiview_and_hf_directory(setup, tmp_path, capsys):
    root, _ = setup
    torch.manual_seed(1)
    hf_config = transformers.VivitConfig(**TINY, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    hf_model = transformers.VivitForVideoClassification(hf_config).eval()
    hf_model.save_pretrained(tmp_path / "hf")
    transformers.VivitImageProcessor(size={"shortest_edge": 18}, crop_size={"height": 16, "width": 16}).save_pretrained(
        tmp_path / "hf"
    )
    code, out, err = _run(
        ["predict", str(root / "clip.mp4"), "--model", str(tmp_path / "hf"), "--views", "1x3", "--json"], capsys
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["views"] == "1x3" and len(result["predictions"]) == 5
    # the same three crops through HF's model give the same probabilities
    from vivit.data.io import read_video
    from vivit.data.transforms import EvalTransform

    views = EvalTransform(PROC, num_crops=3)(read_video(root / "clip.mp4", 4, stride=2))
    with torch.no_grad():
        probs = hf_model(pixel_values=views).logits.mean(0).softmax(-1)
    np.testing.assert_allclose([p["score"] for p in result["predictions"]], probs.topk(5).values.numpy(), atol=2e-4)


def test_predict_errors_are_one_line(setup, tmp_path, capsys):
    root, _ = setup
    video, model_dir = str(root / "clip.mp4"), str(root / "model")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x01" * 3000)
    no_labels = tmp_path / "no_labels"
    VivitForVideoClassification(VivitConfig(**TINY, backend="eager")).save_pretrained(no_labels)
    config = json.loads((no_labels / "config.json").read_text())
    config.pop("id2label", None), config.pop("label2id", None)
    (no_labels / "config.json").write_text(json.dumps(config))
    base = tmp_path / "base"
    VivitModel(VivitConfig(**TINY, id2label=LABELS, backend="eager")).save_pretrained(base)
    PROC.save_pretrained(base)
    cases = [
        (
            [video, "--model", str(tmp_path / "missing")],
            f"--model: expected an existing directory, got '{tmp_path}/missing'",
        ),
        ([video, "--model", str(no_labels)], "no labels"),
        ([video, "--model", str(base)], "no trained classification head"),
        ([str(garbage), "--model", model_dir], "garbage.mp4"),
        ([str(tmp_path / "nope.mp4"), "--model", model_dir], "nope.mp4' (no such file"),
        ([video, "--model", model_dir, "--views", "4by3"], "views"),
    ]
    for argv, message in cases:
        code, out, err = _run(["predict", *argv], capsys)
        assert code != 0 and out == ""
        lines = [line for line in err.splitlines() if line.startswith("vivit predict: error:")]
        assert len(lines) == 1 and message in lines[0], err
        assert "Traceback" not in err


def test_predict_without_processor_config_uses_defaults(tmp_path, capsys):
    model = VivitForVideoClassification(
        VivitConfig(**{**TINY, "image_size": 224, "tubelet_size": [2, 112, 112]}, id2label=LABELS, backend="eager")
    )
    model.save_pretrained(tmp_path / "m")
    write_video(tmp_path / "v.mp4", random_frames(3, 8))
    code, out, err = _run(["predict", str(tmp_path / "v.mp4"), "--model", str(tmp_path / "m"), "--json"], capsys)
    assert code == 0, err
    assert "no preprocessor_config.json" in err and "default preprocessing" in err
    assert len(json.loads(out.splitlines()[-1])["predictions"]) == 5


def test_cli_subprocess_exit_code_and_stderr(setup):
    root, _ = setup
    proc = subprocess.run(
        [sys.executable, "-m", "vivit", "predict", str(root / "clip.mp4"), "--model", str(root / "absent")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""  # a --model that does not exist: a bad option value
    assert proc.stderr.strip().count("\n") == 0 and "--model" in proc.stderr and "absent" in proc.stderr


def test_eval_cli_matches_per_video_predictions(setup, tmp_path, capsys):
    root, model = setup
    data = tmp_path / "data"
    for c, name in [(0, "walk"), (2, "run")]:
        (data / name).mkdir(parents=True)
        for i in range(2):
            write_video(data / name / f"{i}.mp4", random_frames(10 * c + i, 9 + 2 * i))
    code, out, err = _run(
        [
            "eval",
            "--model",
            str(root / "model"),
            "--data",
            str(data),
            "--views",
            "2x3",
            "--batch-size",
            "3",
            "--workers",
            "0",
            "--json",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["num_samples"] == 4
    from vivit.cli.predict import classify

    hits = 0
    for c, name in [(0, "walk"), (2, "run")]:
        for i in range(2):
            hits += int(classify(model, PROC, str(data / name / f"{i}.mp4"), views="2x3").argmax()) == c
    assert result["top1"] == pytest.approx(hits / 4)
    assert 0 <= result["top1"] <= result["top5"] <= 1
    # an annotation list with text labels goes through the model's label2id
    listing = tmp_path / "val.csv"
    listing.write_text("path,label\nwalk/0.mp4,walk\nrun/1.mp4,run\n")
    code, out, err = _run(
        ["eval", "--model", str(root / "model"), "--data", str(listing), "--root", str(data), "--workers", "0"]
        + ["--json", "--no-progress"],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["num_samples"] == 2
    # a corrupt video read in a DataLoader worker: one line naming the file, no worker traceback
    (data / "walk" / "broken.mp4").write_bytes(b"\x00" * 3000)
    code, out, err = _run(
        ["eval", "--model", str(root / "model"), "--data", str(data), "--workers", "1", "--no-progress"], capsys
    )
    assert code == 1 and err.count("\n") == 1 and "broken.mp4" in err and "Traceback" not in err, err
    listing.write_text("path,label\nwalk/0.mp4,fly\n")
    code, out, err = _run(["eval", "--model", str(root / "model"), "--data", str(listing), "--workers", "0"], capsys)
    assert code == 1 and "fly" in err and err.count("\n") == 1


class _Lookup(torch.nn.Module):
    """logits = the first pixel's values over classes: lets a test choose every view's logits."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, pixel_values):
        assert pixel_values.dim() == 5
        return type("Out", (), {"logits": pixel_values[:, 0, 0, 0, :7] + self.dummy})()


def test_evaluate_averages_logits_over_views():
    pixel_values = torch.zeros(2, 3, 1, 1, 1, 7)  # (B, V, F, C, H, W): W carries the 7 class logits
    pixel_values[0, :, ..., 1] = torch.tensor([3.0, 3.0, -10.0]).view(3, 1, 1, 1)  # class 1: one bad view, mean -1.33
    pixel_values[0, :, ..., 2] = 0.5  # class 2 wins on the average, not in views 0 and 1
    pixel_values[1, :, ..., 4] = 1.0
    pixel_values[1, :, ..., 5] = torch.tensor([9.0, 0.0, 0.0]).view(3, 1, 1, 1)  # class 5 wins the mean
    model = _Lookup().train()
    result = evaluate(model, [(pixel_values, torch.tensor([2, 4]))], progress=False)
    assert result == {"top1": 0.5, "top5": 1.0, "num_samples": 2}
    assert model.training  # restored
    single = evaluate(model, [(pixel_values[:, 0], torch.tensor([1, 5]))], progress=False)
    assert single["top1"] == 1.0
    with pytest.raises(ValueError, match=r"\(2, 7\)"):
        evaluate(model, [(torch.zeros(2, 7), torch.tensor([0, 1]))], progress=False)
