"""Fine-tuning recipes: clip augmentations (vivit/data/augment.py), the flip label map, layer-wise learning-rate decay
(vivit/training/optim.py), fp16 with a gradient scaler and its checkpointed state, and the options' errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _helpers import TINY, VARIANTS
from safetensors.torch import load_file

from vivit.cli import main as cli
from vivit.data import augment as A
from vivit.models.configuration import VivitConfig
from vivit.models.modeling import VivitForVideoClassification
from vivit.training.optim import build_optimizer, param_groups
from vivit.training.train import forward_backward, optimizer_step


def _same_frames(frames: int = 4, dtype=torch.uint8, seed: int = 0) -> torch.Tensor:
    """A clip whose frames are all one random picture: an operation with one set of parameters per clip keeps them
    identical."""
    g = torch.Generator().manual_seed(seed)
    frame = torch.randint(0, 256, (1, 3, 16, 20), generator=g, dtype=torch.uint8)
    frame[..., 4:10, 6:14] = 230  # some structure for the geometric operations to move
    clip = frame.expand(frames, -1, -1, -1).contiguous()
    return clip if dtype == torch.uint8 else clip.to(dtype) / 255.0


def _assert_clip(out: torch.Tensor, like: torch.Tensor, shape=None):
    assert out.dtype == like.dtype and out.shape == (shape or like.shape)
    if out.is_floating_point():
        assert out.min() >= 0.0 and out.max() <= 1.0
    for t in range(1, out.shape[0]):
        assert torch.equal(out[t], out[0]), f"frame {t} differs from frame 0"


# ---------------------------------------------------------------------------------------------------------------------
# augmentations


@pytest.mark.parametrize("name", sorted(A.RAND_AUGMENT_OPS))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_every_rand_augment_op_keeps_shape_dtype_range_and_frames(name, dtype):
    clip = _same_frames(dtype=dtype)
    only = A.RandAugment(num_ops=1, magnitude=9, prob=1.0, ops=[name])
    out = only(clip, torch.Generator().manual_seed(1))
    _assert_clip(out, clip)
    if name != "identity":  # each operation at magnitude 9 changes this picture
        assert not torch.equal(out, clip), name


def test_rand_augment_op_values_against_hand_computed_ones():
    x = _same_frames(dtype=torch.float32, frames=2)
    assert torch.allclose(A.solarize(x, 0.5), torch.where(x >= 0.5, 1 - x, x))
    assert torch.allclose(A.brightness(x, 0.5), x * 0.5)
    levels = A.posterize(x, 2).mul(255).round()
    assert set(levels.unique().tolist()) <= {0.0, 64.0, 128.0, 192.0}
    square = x[..., :16]
    # a quarter turn through the affine resampler lands exactly on the pixel grid: torch.rot90 is the reference
    assert torch.allclose(A.rotate(square, 90.0), torch.rot90(square, 1, dims=(-2, -1)), atol=1e-5)
    moved = A.translate_x(x, 3.0)
    assert torch.allclose(moved[..., 3:], x[..., :-3], atol=1e-5)  # grid coordinates round at ~1e-6
    assert torch.allclose(moved[..., :3], torch.full_like(moved[..., :3], 0.5))
    grey = A.color(x, 0.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    stretched = A.autocontrast(x * 0.5 + 0.25)
    assert torch.allclose(stretched.amin(dim=(0, 2, 3)), torch.zeros(3), atol=1e-6)
    assert torch.allclose(stretched.amax(dim=(0, 2, 3)), torch.ones(3), atol=1e-6)
    flat = A.equalize(x)  # equalized levels spread over the whole range
    assert flat.amin() == 0.0 and flat.amax() > 0.9


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_resized_crop_and_rand_augment_keep_frames_together(dtype):
    clip = _same_frames(dtype=dtype)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        out = A.RandomResizedCrop(8)(clip, g)
        _assert_clip(out, clip, shape=(4, 3, 8, 8))
        out = A.RandAugment(num_ops=4, magnitude=7, magnitude_std=0.5)(clip, g)
        _assert_clip(out, clip)


def test_random_resized_crop_box_follows_scale_and_ratio():
    crop = A.RandomResizedCrop(8, scale=(0.25, 0.5), ratio=(0.5, 2.0))
    g = torch.Generator().manual_seed(3)
    for _ in range(50):
        top, left, h, w = crop.box(64, 80, g)
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 80
        assert 0.2 <= h * w / (64 * 80) <= 0.55  # rounding to whole pixels
        assert 0.45 <= w / h <= 2.2


def test_random_erasing_area_in_range_and_one_box_per_clip():
    erase = A.RandomErasing(1.0, scale=(0.05, 0.2))
    clip = torch.zeros(4, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        out = erase(clip, g)
        mask = out != 0  # N(0, 1) noise is never exactly 0
        fraction = mask[0, 0].float().mean().item()
        assert 0.05 <= fraction <= 0.2, fraction
        assert all(torch.equal(mask[t, c], mask[0, 0]) for t in range(4) for c in range(3))
        rows, cols = mask[0, 0].any(1).nonzero(), mask[0, 0].any(0).nonzero()
        assert mask[0, 0].sum() == len(rows) * len(cols)  # a box
    assert torch.equal(A.RandomErasing(0.0)(clip, g), clip)


def test_videomae_transform_from_uint8_frames():
    from vivit.data.processing import VivitImageProcessor

    processor = VivitImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16})
    transform = A.VideoMAETrainTransform(processor)
    clip = torch.randint(0, 256, (4, 24, 30, 3), dtype=torch.uint8)
    out = transform(clip)
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------------------------------
# flip and its label map

CLASSES = ["square-right", "square-left", "square-down", "square-up"]


def test_flip_label_map_by_name_or_index_is_made_symmetric(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"square-right": "square-left"}))
    assert A.load_flip_label_map(path, CLASSES) == [1, 0, 2, 3]
    path.write_text(json.dumps({"1": 0, "2": "2"}))
    assert A.load_flip_label_map(path, CLASSES) == [1, 0, 2, 3]


@pytest.mark.parametrize(
    "content, needle",
    [
        ({"square-right": "circle-left"}, "'circle-left'"),
        ({"square-right": 9}, "[0, 3]"),
        ({"square-right": "square-left", "square-left": "square-up"}, "symmetric"),
        (["square-right"], "JSON object"),
    ],
)
def test_flip_label_map_errors_are_one_line(tmp_path, content, needle):
    path = tmp_path / "map.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as info:
        A.load_flip_label_map(path, CLASSES)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"--flip-label-map {path}") and needle in message


def test_horizontal_flip_applies_the_label_map():
    clips = torch.arange(4 * 2 * 3 * 2 * 5, dtype=torch.float32).reshape(4, 2, 3, 2, 5)
    labels = torch.tensor([0, 1, 2, 3])
    out, mapped = A.HorizontalFlip(1.0, [1, 0, 2, 3])(clips, labels)
    assert torch.equal(out, clips.flip(-1)) and mapped.tolist() == [1, 0, 2, 3]
    out, kept = A.HorizontalFlip(0.0, [1, 0, 2, 3])(clips, labels)
    assert torch.equal(out, clips) and kept.tolist() == [0, 1, 2, 3]
    flip = A.HorizontalFlip(0.5, [1, 0, 2, 3])
    flip.generator.manual_seed(0)
    out, mapped = flip(clips.repeat(8, 1, 1, 1, 1), labels.repeat(8))
    flipped = torch.tensor([torch.equal(o, c.flip(-1)) for o, c in zip(out, clips.repeat(8, 1, 1, 1, 1))])
    assert 0 < flipped.sum() < 32  # some of each
    assert torch.equal(mapped, torch.where(flipped, torch.tensor([1, 0, 2, 3]).repeat(8), labels.repeat(8)))


# ---------------------------------------------------------------------------------------------------------------------
# layer decay


def _model(variant: str, layers: int = 2, temporal: int = 2) -> VivitForVideoClassification:
    config = VivitConfig(**{**TINY, "num_hidden_layers": layers}, num_temporal_layers=temporal, variant=variant)
    return VivitForVideoClassification(config)


def _expected_depth(name: str, variant: str) -> int:
    """Written out per name for 2 (+ 2 temporal) blocks: 0 embeddings, 1.. blocks, top = L + 1."""
    top = 5 if variant == "factorized_encoder" else 3
    table = {
        "vivit.embeddings.": 0,
        "vivit.layers.0.": 1,
        "vivit.layers.1.": 2,
        "vivit.temporal_embeddings.": 3,
        "vivit.temporal_layers.0.": 3,
        "vivit.temporal_layers.1.": 4,
        "vivit.temporal_layernorm.": top,
        "classifier.": top,
        "vivit.layernorm.": 3 if variant == "factorized_encoder" else top,
    }
    return next(depth for prefix, depth in table.items() if name.startswith(prefix))


@pytest.mark.parametrize("variant", VARIANTS)
def test_layer_decay_group_scales(variant):
    model = _model(variant)
    rate = 0.5
    groups = param_groups(model, 0.05, layer_decay=rate)
    top = 5 if variant == "factorized_encoder" else 3
    seen = {}
    for group in groups:
        for p in group["params"]:
            assert id(p) not in seen
            seen[id(p)] = group
    assert groups[0]["lr_scale"] == 1.0
    for name, p in model.named_parameters():
        group = seen[id(p)]
        assert group["lr_scale"] == rate ** (top - _expected_depth(name, variant)), name
        no_decay = p.ndim <= 1 or "embeddings" in name or "cls" in name
        assert group["weight_decay"] == (0.0 if no_decay else 0.05), name
    assert len(seen) == len(list(model.parameters()))
    # head 1.0, embeddings R^(L+1)
    assert seen[id(model.classifier.weight)]["lr_scale"] == 1.0
    assert seen[id(model.vivit.embeddings.position_embeddings)]["lr_scale"] == rate**top
    optimizer = build_optimizer(model, 1e-3, 0.05, layer_decay=rate)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == sorted({1e-3 * g["lr_scale"] for g in groups})


def test_no_layer_decay_keeps_the_two_groups():
    model = _model("spatiotemporal")
    decay, no_decay = build_optimizer(model, 1e-3, 0.05).param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decay["lr"] == no_decay["lr"] == 1e-3
    assert all(p.ndim > 1 for p in decay["params"]) and len(decay["params"]) + len(no_decay["params"]) == len(
        list(model.parameters())
    )


# ---------------------------------------------------------------------------------------------------------------------
# fp16 and the gradient scaler


def test_fp16_step_with_grad_scaler_on_cpu():
    model = _model("spatiotemporal", layers=1)
    optimizer = build_optimizer(model, 1e-2, 0.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, t = torch.randn(2, 4, 3, 16, 16), torch.softmax(torch.randn(2, 2), -1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = forward_backward(model.train(), x, t, amp_dtype=torch.float16, scaler=scaler)
    assert torch.isfinite(loss)
    grad = model.classifier.weight.grad.clone()
    optimizer_step(model, optimizer, clip_grad=1.0, scaler=scaler)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert scaler.get_scale() == 2.0**8  # a finite step keeps the scale
    # the gradients were scaled by 256 and unscaled before clipping and the step
    assert grad.abs().max() > 0
    # an overflowing step is skipped and halves the scale
    huge = torch.amp.GradScaler("cpu", init_scale=2.0**127)
    before = [p.detach().clone() for p in model.parameters()]
    forward_backward(model, x, t, amp_dtype=torch.float16, scaler=huge)
    optimizer_step(model, optimizer, clip_grad=1.0, scaler=huge)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert huge.get_scale() == 2.0**126


def _train(argv) -> int:
    return cli(["train", *argv])


def _common(config: str, out) -> list[str]:
    return [
        "--config", config, "--train-samples", "32", "--val-samples", "16", "--batch-size", "8",
        "--output-dir", str(out), "--no-progress",
    ]  # fmt: skip


@pytest.mark.slow  # three short training runs: ~10 s on 2 CPU cores
def test_fp16_videomae_layer_decay_resume_is_bit_identical(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "num_hidden_layers": 2}))
    labels = tmp_path / "map.json"
    labels.write_text(json.dumps({"square-right": "square-left", "square-down": "square-up"}))
    extra = [
        "--epochs", "2", "--precision", "fp16", "--augment", "videomae", "--layer-decay", "0.75",
        "--flip-label-map", str(labels),
    ]  # fmt: skip
    assert _train(_common(str(config), tmp_path / "full") + extra) == 0
    assert _train(_common(str(config), tmp_path / "cut") + extra + ["--stop-after-epochs", "1"]) == 0
    state = json.loads((tmp_path / "cut" / "checkpoint-1" / "trainer_state.json").read_text())["__dict__"]
    scaler = state["scaler"]["__dict__"]
    assert scaler["scale"] <= 65536.0 and scaler["_growth_tracker"] >= 0
    assert _train(_common(str(config), tmp_path / "cut") + extra + ["--resume", str(tmp_path / "cut")]) == 0
    capsys.readouterr()
    for name in ("model.safetensors", "trainer_state.safetensors"):
        a = load_file(tmp_path / "full" / "checkpoint-2" / name)
        b = load_file(tmp_path / "cut" / "checkpoint-2" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    full = json.loads((tmp_path / "full" / "checkpoint-2" / "trainer_state.json").read_text())["__dict__"]
    cut = json.loads((tmp_path / "cut" / "checkpoint-2" / "trainer_state.json").read_text())["__dict__"]
    assert full["scaler"] == cut["scaler"]
    lrs = [g["__dict__"]["lr_scale"] for g in full["optimizer"]["__dict__"]["param_groups"]]
    assert math.isclose(min(lrs), 0.75**3) and max(lrs) == 1.0
    # resuming with another recipe is refused by name
    assert _train(_common(str(config), tmp_path / "cut") + ["--epochs", "3", "--resume", str(tmp_path / "cut")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--augment: expected 'videomae'" in err[0]


# ---------------------------------------------------------------------------------------------------------------------
# option errors


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--layer-decay", "0"], ["--layer-decay", "(0, 1]", "got 0"]),
        (["--layer-decay", "1.5"], ["--layer-decay", "got 1.5"]),
        (["--precision", "fp8"], ["--precision", "fp16", "'fp8'"]),
        (["--augment", "heavy"], ["--augment", "light, videomae", "'heavy'"]),
        (["--flip-label-map", "missing.json"], ["--flip-label-map", "missing.json"]),
    ],
)
def test_option_errors_are_one_line(argv, needles, capsys):
    assert _train(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vivit train: error:"), err
    assert all(n in err[0] for n in needles), err[0]


def test_flip_label_map_against_the_classes_is_a_one_line_usage_error(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    labels = tmp_path / "map.json"
    labels.write_text(json.dumps({"square-right": "triangle-left"}))
    assert _train(_common(str(config), tmp_path / "run") + ["--flip-label-map", str(labels)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--flip-label-map" in err[0] and "'triangle-left'" in err[0] and "square-left" in err[0]
    assert _train(_common(str(config), tmp_path / "run") + ["--flip-label-map", str(labels), "--no-flip"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-flip" in err[0]


class _Folder:
    """Stands in for a VideoFolder training set: a processor and a flipping TrainTransform."""

    def __init__(self):
        from vivit.data.processing import VivitImageProcessor
        from vivit.data.transforms import TrainTransform

        self.processor = VivitImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16})
        self.transform = TrainTransform(self.processor)


@pytest.mark.parametrize(
    "argv, own_flip, batch_flip, transform",
    [
        ([], 0.5, False, "TrainTransform"),
        (["--no-flip"], 0.0, False, "TrainTransform"),
        (["--augment", "videomae"], None, True, "VideoMAETrainTransform"),
        (["--augment", "videomae", "--no-flip"], None, False, "VideoMAETrainTransform"),
        (["--flip-label-map", "MAP"], 0.0, True, "TrainTransform"),
    ],
)
def test_which_flip_runs_for_video_folders(tmp_path, argv, own_flip, batch_flip, transform):
    from vivit.training.train import parse_args, setup_augment

    labels = tmp_path / "map.json"
    labels.write_text(json.dumps({"a": "b"}))
    args = parse_args([str(labels) if a == "MAP" else a for a in argv])
    data, batch_augment, flip = setup_augment(args, _Folder(), ["a", "b", "c"])
    assert batch_augment is None
    assert type(data.transform).__name__ == transform
    assert getattr(data.transform, "flip_p", None) == own_flip
    assert (flip is not None) == batch_flip
    if "--flip-label-map" in argv:
        assert flip.label_map.tolist() == [1, 0, 2]


def test_synthetic_data_is_not_flipped_without_a_map():
    from vivit.data.synthetic import SyntheticMotion
    from vivit.training.train import parse_args, setup_augment

    data = SyntheticMotion(4, num_frames=4, image_size=16)
    kept, batch_augment, flip = setup_augment(parse_args([]), data, data.class_names)
    assert kept is data and batch_augment is None and flip is None
    kept, batch_augment, flip = setup_augment(parse_args(["--augment", "videomae"]), data, data.class_names)
    assert kept is data and flip is None and isinstance(batch_augment, A.UnitRangeAugment)
    clips = torch.stack([data[i][0] for i in range(4)])
    batch_augment.generator.manual_seed(0)
    out = batch_augment(clips)
    assert out.shape == clips.shape and out.dtype == clips.dtype and not torch.equal(out, clips)
    batch_augment.generator.manual_seed(0)
    assert torch.equal(batch_augment(clips), out)  # a function of the generator's seed
