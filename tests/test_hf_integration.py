"""vivit inside the transformers ecosystem: Auto classes, pipeline("video-classification"), a Hub id served from an
offline cache, transformers.Trainer, and what a transformers user without vivit sees."""

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import transformers
from _helpers import VARIANTS, randomize
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

import vivit  # noqa: F401  (registers the variants with the Auto classes)
from vivit import VivitConfig, VivitForVideoClassification, VivitModel

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    image_size=16,
    num_frames=4,
    tubelet_size=[2, 8, 8],
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    num_temporal_layers=1,
    id2label={0: "walk", 1: "run", 2: "jump"},
)
pytestmark = pytest.mark.filterwarnings("ignore:.*tubelet_size")


def save(tmp_path, variant, cls=VivitForVideoClassification):
    model = randomize(cls(VivitConfig(**TINY, variant=variant)), std=0.2).eval()
    model.save_pretrained(tmp_path)
    return model


def video(batch=2):
    return torch.randn(batch, 4, 3, 16, 16)


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_auto_classes_load_models_2_to_4_as_ours(tmp_path, variant):
    model = save(tmp_path, variant)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, VivitConfig) and config.variant == variant
    head = AutoModelForVideoClassification.from_pretrained(tmp_path)
    body, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(head, VivitForVideoClassification) and isinstance(body, VivitModel)
    assert set(info["missing_keys"]) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert set(info["unexpected_keys"]) == {"classifier.weight", "classifier.bias"}
    x = video()
    with torch.no_grad():
        assert torch.equal(head(x).logits, model(x).logits)
        assert torch.equal(body(x).last_hidden_state, model.vivit(x).last_hidden_state)
    assert type(AutoModelForVideoClassification.from_config(config)).__name__ == type(head).__name__


def test_model_1_directory_loads_in_transformers_own_classes(tmp_path):
    model = save(tmp_path, "spatiotemporal")
    assert type(AutoConfig.from_pretrained(tmp_path)) is transformers.VivitConfig
    theirs, info = AutoModelForVideoClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert type(theirs) is transformers.VivitForVideoClassification and not any(info.values()), info
    x = video()
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(x).logits, model(x).logits, atol=1e-5, rtol=1e-5)


def test_without_vivit_models_2_to_4_are_an_unknown_model_type(tmp_path):
    save(tmp_path / "m2", "factorized_encoder")
    save(tmp_path / "m1", "spatiotemporal")
    code = (
        "import sys, transformers\n"
        "assert transformers.AutoConfig.from_pretrained(sys.argv[2]).model_type == 'vivit'\n"
        "try:\n"
        "    transformers.AutoModelForVideoClassification.from_pretrained(sys.argv[1])\n"
        "except (ValueError, KeyError) as e:\n"
        "    print(type(e).__name__, str(e).splitlines()[0])\n"
        "else:\n"
        "    print('LOADED')\n"
        "assert 'vivit' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no vivit on the path
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m2"), str(tmp_path / "m1")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "vivit_factorized_encoder" in out.stdout and "LOADED" not in out.stdout, out.stdout


@pytest.mark.parametrize("first", ["vivit", "transformers"])
def test_registration_waits_for_the_auto_classes(tmp_path, first):
    """`import vivit` does not import transformers; the Auto classes still know Models 2-4 on first use, whichever of
    vivit and transformers' Auto classes was imported first."""
    save(tmp_path / "m3", "factorized_self_attention")
    vivit_first = ["import vivit", "assert 'transformers' not in sys.modules, 'import vivit loaded transformers'"]
    auto = ["from transformers import AutoConfig, AutoModelForVideoClassification"]
    code = "\n".join(
        [
            "import sys",
            *(vivit_first + auto if first == "vivit" else auto + ["import vivit"]),
            "model = AutoModelForVideoClassification.from_pretrained(sys.argv[1])",
            "print(type(AutoConfig.from_pretrained(sys.argv[1])).__name__, type(model).__module__)",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m3"), first],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["VivitFactorizedSelfAttentionConfig", "vivit.models.auto"], out.stdout


def write_clip(path, frames=6, size=24):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.height = stream.width = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = np.full((size, size, 3), 20 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("processor_class", [vivit.VivitImageProcessor, transformers.VivitImageProcessor])
def test_pipeline_video_classification(tmp_path, variant, processor_class):
    save(tmp_path, variant)
    # the pipeline needs an image processor in the directory: ours (registered by vivit) or transformers' own
    processor = processor_class(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor.save_pretrained(tmp_path)
    classify = transformers.pipeline("video-classification", model=str(tmp_path), device="cpu")
    assert type(classify.image_processor) is processor_class
    # Model 1 directories are transformers' own model type: its class runs them
    ours = variant != "spatiotemporal"
    assert isinstance(classify.model, VivitForVideoClassification if ours else transformers.VivitForVideoClassification)
    assert classify.model.config.variant == variant
    result = classify(write_clip(tmp_path / "clip.mp4"), top_k=3)
    assert sorted(r["label"] for r in result) == ["jump", "run", "walk"]
    assert abs(sum(r["score"] for r in result) - 1.0) < 1e-4


def _hub_cache(home: Path, repo: str, source: Path) -> None:
    """huggingface_hub's cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_hub_ids_from_an_offline_cache(tmp_path):
    model1 = save(tmp_path / "m1", "spatiotemporal")
    model2 = save(tmp_path / "m2", "factorized_encoder")
    home = tmp_path / "hf_home"
    _hub_cache(home, "google/vivit-b-16x2-kinetics400", tmp_path / "m1")
    _hub_cache(home, "someone/vivit-factorised-encoder-tiny", tmp_path / "m2")
    x = video()
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save({"m1": model1(x).logits, "m2": model2(x).logits}, tmp_path / "want.pt")
    code = (
        "import sys, torch, transformers, vivit\n"
        "x, want = torch.load(sys.argv[1]), torch.load(sys.argv[2])\n"
        "m1 = vivit.VivitForVideoClassification.from_pretrained('google/vivit-b-16x2-kinetics400')\n"
        "hf = transformers.VivitForVideoClassification.from_pretrained('google/vivit-b-16x2-kinetics400')\n"
        "m2 = transformers.AutoModelForVideoClassification.from_pretrained('someone/vivit-factorised-encoder-tiny')\n"
        "with torch.no_grad():\n"
        "    assert torch.equal(m1(x).logits, want['m1'])\n"
        "    torch.testing.assert_close(hf.eval()(x).logits, want['m1'], atol=1e-5, rtol=1e-5)\n"
        "    assert torch.equal(m2(x).logits, want['m2']) and type(m2).__module__ == 'vivit.models.auto'\n"
        "print('OK')\n"
    )
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None), env.pop("TRANSFORMERS_CACHE", None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.pt"), str(tmp_path / "want.pt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout[-2000:] + out.stderr[-3000:]


class _Clips(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, 3, 16, 16, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


@pytest.mark.parametrize("variant", ["spatiotemporal", "factorized_self_attention"])
def test_transformers_trainer_trains_saves_and_reloads(tmp_path, variant):
    model = randomize(VivitForVideoClassification(VivitConfig(**TINY, variant=variant)), std=0.1)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=_Clips(12))
    result = trainer.train()
    assert np.isfinite(result.training_loss)
    assert any(not torch.equal(p, start[n]) for n, p in model.named_parameters())
    trainer.save_model(str(tmp_path / "saved"))
    reloaded, info = VivitForVideoClassification.from_pretrained(tmp_path / "saved", output_loading_info=True)
    assert not any(info.values()), info
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["variant"] == variant
    model.eval()
    x = video()
    with torch.no_grad():
        assert torch.equal(reloaded(x).logits, model(x).logits)
