"""VivitImageProcessor: parity with Hugging Face's processor on every input type, config files, presets, errors, and
the behaviours HF's own image-processor tests check (properties, from_dict / JSON / save-load round trips,
AutoImageProcessor, numpy / PIL / torch videos batched or not, the per-image methods)."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor

# The class itself: 5.17's `transformers.AutoImageProcessor` is a placeholder demanding torchvision.
from transformers.models.auto.image_processing_auto import AutoImageProcessor
from transformers.utils import TensorType
from transformers.utils.hub import PushToHubMixin

from vivit.data.processing import VivitImageProcessor, VivitTorchImageProcessor

HFProcessor = transformers.VivitImageProcessor

# One 8-bit input level after HF's default rescale (1/127.5) and normalize (std 0.5).
LEVEL = (1 / 127.5) / 0.5


def _video(rng, frames, height, width, channels=3):
    return rng.integers(0, 256, (frames, height, width, channels), dtype=np.uint8)


def _hf(video_hwc, **kwargs):
    return HFProcessor(**kwargs)(list(video_hwc), return_tensors="np")["pixel_values"]


def _assert_close_levels(ours, ref, level=LEVEL, max_levels=1.0, mean=0.002, rare=1e-4):
    """Within `max_levels` 8-bit levels per pixel, except a `rare` fraction of pixels one level further when
    `max_levels` >= 1 (0 stays exact): torch's uint8 resize kernel rounds its fixed-point weights more coarsely than
    PIL, which puts about one pixel in 10^7 two levels from PIL's result."""
    assert ours.shape == ref.shape
    diff = np.abs(np.asarray(ours, np.float64) - np.asarray(ref, np.float64))
    extra = 1 if max_levels >= 1 else 0  # exact comparisons (max_levels=0) stay exact
    assert diff.max() <= (max_levels + extra) * level + 1e-5, diff.max() / level
    assert (diff > max_levels * level + 1e-5).mean() <= rare, (diff > max_levels * level + 1e-5).mean()
    assert diff.mean() <= mean


@pytest.mark.parametrize("size", [(37, 53), (101, 77), (300, 211), (256, 256)])
def test_parity_with_hf_every_input_type(size):
    rng = np.random.default_rng(sum(size))
    video = _video(rng, 3, *size)
    ref = _hf(video)
    assert ref.shape == (1, 3, 3, 224, 224)
    proc = VivitImageProcessor()
    inputs = {
        "numpy THWC": video,
        "list of numpy HWC": list(video),
        "list of PIL": [Image.fromarray(f) for f in video],
        "list of CHW tensors": [torch.from_numpy(f).permute(2, 0, 1) for f in video],
        "TCHW tensor": torch.from_numpy(video).permute(0, 3, 1, 2),
        "THWC tensor": torch.from_numpy(video),
        "strided TCHW view": torch.from_numpy(np.repeat(video, 2, axis=0)).permute(0, 3, 1, 2)[::2],
    }
    for name, value in inputs.items():
        out = proc(value, return_tensors="np")["pixel_values"]
        assert out.dtype == np.float32, name
        _assert_close_levels(out, ref)


def test_batches_and_output_formats():
    rng = np.random.default_rng(1)
    a, b = _video(rng, 2, 45, 61), _video(rng, 2, 45, 61)
    proc = VivitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 33, "width": 35})
    kwargs = dict(size={"shortest_edge": 40}, crop_size={"height": 33, "width": 35})
    ref = np.concatenate([_hf(a, **kwargs), _hf(b, **kwargs)])
    batch5 = np.stack([a, b])
    for value in (batch5, torch.from_numpy(batch5), [list(a), list(b)], [a, b]):
        out = proc(value, return_tensors="pt")["pixel_values"]
        assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 3, 33, 35)
        _assert_close_levels(out.numpy(), ref)
    # return_tensors=None: HF's nested lists (videos -> frames -> (C, H, W) arrays)
    nested = proc([list(a), list(b)])["pixel_values"]
    hf_nested = HFProcessor(**kwargs)([list(a), list(b)])["pixel_values"]
    assert len(nested) == len(hf_nested) == 2 and len(nested[0]) == len(hf_nested[0]) == 2
    assert nested[1][0].shape == hf_nested[1][0].shape == (3, 33, 35)
    last = proc(a, return_tensors="np", data_format="channels_last").pixel_values
    ref_last = HFProcessor(**kwargs)(list(a), return_tensors="np", data_format="channels_last")["pixel_values"]
    _assert_close_levels(last, ref_last)


@pytest.mark.parametrize(
    "kwargs, level, max_levels",
    [
        # zero padding: resized frames smaller than the crop (odd differences -> HF's ceil placement)
        ({"size": {"shortest_edge": 20}, "crop_size": {"height": 33, "width": 40}}, LEVEL, 1),
        ({"size": {"height": 50, "width": 31}, "do_center_crop": False}, LEVEL, 1),
        (
            {
                "offset": False,
                "rescale_factor": 1 / 255,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
            },
            1 / 255 / 0.224,
            1,
        ),
        ({"do_normalize": False, "do_rescale": False, "offset": False}, 1.0, 1),
        ({"resample": 0}, LEVEL, 0),  # nearest: PIL itself
        ({"resample": 1, "size": {"shortest_edge": 64}, "crop_size": 48}, LEVEL, 0),  # lanczos: PIL itself
        ({"resample": 3}, LEVEL, 2),  # bicubic in torch: PIL's filter, rounding may differ by 2 levels
    ],
)
def test_parity_with_hf_options(kwargs, level, max_levels):
    rng = np.random.default_rng(2)
    video = _video(rng, 2, 41, 29)
    ref = _hf(video, **kwargs)
    out = VivitImageProcessor(**kwargs)(video, return_tensors="np")["pixel_values"]
    _assert_close_levels(out, ref, level=level, max_levels=max_levels)


def test_grayscale_and_float_inputs():
    rng = np.random.default_rng(3)
    video = _video(rng, 2, 30, 47)
    proc = VivitImageProcessor(size={"shortest_edge": 32}, crop_size=28)
    ref = proc(video, return_tensors="np").pixel_values
    # float frames in [0, 255] are resized in float (no rounding to uint8): within one level of the uint8 path,
    # and within half a level on average (the uint8 path's rounding error)
    for dtype in (np.float32, np.float64):
        _assert_close_levels(proc(video.astype(dtype), return_tensors="np").pixel_values, ref, mean=LEVEL / 2)
    half = proc(torch.from_numpy(video).half(), return_tensors="pt").pixel_values
    assert half.dtype == torch.float32
    _assert_close_levels(half.numpy(), ref, mean=LEVEL / 2)
    with pytest.warns(UserWarning, match="already rescaled"):
        proc(video.astype(np.float32) / 255, return_tensors="np")
    gray = proc(video[..., :1], return_tensors="np", image_mean=0.5, image_std=0.5).pixel_values
    assert gray.shape == (1, 2, 1, 28, 28)
    # integer tensors in [0, 255] count as uint8
    _assert_close_levels(proc(torch.from_numpy(video).long(), return_tensors="np").pixel_values, ref, max_levels=0)


def test_default_range_quirk_and_original_preset():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[1] = 255
    hf = VivitImageProcessor(size={"shortest_edge": 8}, crop_size=8)(frames, return_tensors="pt").pixel_values
    assert hf[0, 0].min() == -3 and hf[0, 1].max() == 1  # HF's defaults: [-3, 1]
    original = VivitImageProcessor.from_preset("original", size={"shortest_edge": 8}, crop_size=8)
    out = original(frames, return_tensors="pt").pixel_values
    assert out[0, 0].min() == -1 and out[0, 1].max() == 1  # the scenic model's [-1, 1]
    with pytest.raises(ValueError, match="preset"):
        VivitImageProcessor.from_preset("nope")


def test_config_round_trip_with_hf(tmp_path):
    hf = HFProcessor(
        size={"shortest_edge": 40},
        crop_size={"height": 32, "width": 36},
        offset=False,
        rescale_factor=1 / 255,
        image_mean=[0.4, 0.5, 0.6],
    )
    hf.save_pretrained(tmp_path / "hf")
    ours = VivitImageProcessor.from_pretrained(tmp_path / "hf")
    assert ours.size == {"shortest_edge": 40} and ours.crop_size == {"height": 32, "width": 36}
    assert ours.offset is False and ours.image_mean == [0.4, 0.5, 0.6]
    video = _video(np.random.default_rng(4), 2, 50, 70)
    _assert_close_levels(
        ours(video, return_tensors="np").pixel_values,
        hf(list(video), return_tensors="np")["pixel_values"],
        level=1 / 255 / 0.5,
    )
    ours.save_pretrained(tmp_path / "ours")
    back = HFProcessor.from_pretrained(tmp_path / "ours")
    for key in ("size", "crop_size", "offset", "rescale_factor", "image_mean", "image_std", "resample"):
        assert getattr(back, key) == getattr(ours, key), key
    with pytest.raises(OSError, match="missing"):  # HF's loader: not a directory, not a valid Hub id
        VivitImageProcessor.from_pretrained(tmp_path / "missing")


@pytest.mark.parametrize(
    "value, match",
    [
        (np.zeros((4, 3, 9, 3), np.uint8), r"\(4, 3, 9, 3\)"),  # channels first or last?
        (np.zeros((4, 9, 9, 2), np.uint8), r"\(4, 9, 9, 2\)"),  # 2 channels
        (np.zeros((1, 2, 4, 9, 9, 3), np.uint8), r"\(1, 2, 4, 9, 9, 3\)"),  # 6-D
        (np.full((2, 9, 9, 3), 300, np.int64), r"\[0, 255\]"),
        (np.zeros((2, 9, 9, 3), bool), "dtype"),
        ([], "empty"),
        ("video.mp4", "str"),
        (
            [np.zeros((9, 9, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)],
            r"frame 1 has .*\(3, 8, 9\) but frame 0 has \(3, 9, 9\)",
        ),
    ],
)
def test_bad_input_errors_name_the_shape(value, match):
    with pytest.raises(ValueError, match=match):
        VivitImageProcessor()(value, return_tensors="pt")


def test_ambiguous_shape_resolved_by_input_data_format():
    video = np.random.default_rng(5).integers(0, 256, (2, 3, 20, 3), dtype=np.uint8)  # (T, H=3, W=20, C=3)
    proc = VivitImageProcessor(size={"shortest_edge": 8}, crop_size=8)
    out = proc(video, input_data_format="channels_last", return_tensors="np").pixel_values
    ref = _hf(video, size={"shortest_edge": 8}, crop_size=8)  # HF decides per frame; (3, 20, 3) -> channels first!
    assert out.shape == (1, 2, 3, 8, 8)
    ref_last = HFProcessor(size={"shortest_edge": 8}, crop_size=8)(
        list(video), input_data_format="channels_last", return_tensors="np"
    )["pixel_values"]
    _assert_close_levels(out, ref_last)
    assert ref.shape != ref_last.shape or not np.allclose(ref, ref_last)


def test_mixed_sizes_need_a_crop_to_stack():
    rng = np.random.default_rng(6)
    videos = [_video(rng, 2, 20, 30), _video(rng, 2, 24, 24)]
    proc = VivitImageProcessor(size={"shortest_edge": 16}, do_center_crop=False)
    with pytest.raises(ValueError, match="cannot be stacked"):
        proc(videos, return_tensors="pt")
    assert VivitImageProcessor(size={"shortest_edge": 16}, crop_size=16)(
        videos, return_tensors="pt"
    ).pixel_values.shape[:2] == (2, 2)


def test_float_resize_of_uint8_other_devices_within_one_level():
    # GPUs resize uint8 frames in float and round back (no uint8 antialias kernel there); checked here on the CPU
    from vivit.data.processing import _resize_uint8_in_float

    rng = np.random.default_rng(7)
    for height, width, out_size in [(45, 61, (32, 43)), (20, 30, (41, 61)), (360, 640, (256, 455))]:
        video = _video(rng, 1, height, width)
        ref = np.array(Image.fromarray(video[0]).resize(out_size[::-1], resample=Image.BILINEAR))
        out = _resize_uint8_in_float(torch.from_numpy(video).permute(0, 3, 1, 2), out_size, "bilinear")
        diff = np.abs(out[0].permute(1, 2, 0).numpy().astype(int) - ref.astype(int))
        assert diff.max() <= 1


def test_offset_without_rescale_rejected_when_preprocessing_like_hf():
    proc = VivitImageProcessor(do_rescale=False)  # HF accepts the config too, and fails at preprocess time
    with pytest.raises(ValueError, match="offset=True requires do_rescale=True"):
        proc(np.zeros((1, 8, 8, 3), np.uint8))
    out = VivitImageProcessor(
        do_rescale=False, offset=False, do_normalize=False, do_resize=False, do_center_crop=False
    )(np.full((1, 5, 6, 3), 7, np.uint8), return_tensors="pt").pixel_values
    assert out.shape == (1, 1, 3, 5, 6) and bool((out == 7).all())


# ---------------------------------------------------------------------------------------------------------------------
# What HF's image-processor tests check, on the small settings they use (18-pixel crops).

SMALL = {
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "do_normalize": True,
    "do_resize": True,
    "size": {"shortest_edge": 18},
    "crop_size": {"height": 18, "width": 18},
}
SETTINGS = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor", "offset")
SETTINGS += ("do_normalize", "image_mean", "image_std")


def _hf_style_videos(kind, rng, batch=3, frames=4, channels=3, low=20, high=60):
    """Videos as HF's tests build them: lists of frames, each video its own size; numpy and torch frames are
    (C, H, W), PIL frames RGB."""
    videos = []
    for _ in range(batch):
        height, width = (int(v) for v in rng.integers(low, high, 2))
        video = [rng.integers(0, 256, (channels, height, width), dtype=np.uint8) for _ in range(frames)]
        if kind == "pil":
            video = [Image.fromarray(np.moveaxis(frame, 0, -1)) for frame in video]
        elif kind == "torch":
            video = [torch.from_numpy(frame) for frame in video]
        videos.append(video)
    return videos


def _without_type(config):
    return {k: v for k, v in config.items() if k != "image_processor_type"}


def test_is_a_transformers_image_processor():
    proc = VivitImageProcessor()
    assert VivitImageProcessor is VivitTorchImageProcessor
    assert isinstance(proc, BaseImageProcessor)
    # saving, loading and Hub uploads are transformers' own code, not copies
    assert PushToHubMixin in type(proc).__mro__ and "push_to_hub" not in vars(VivitTorchImageProcessor)
    assert type(proc).from_pretrained.__func__ is BaseImageProcessor.from_pretrained.__func__
    assert type(proc).save_pretrained is BaseImageProcessor.save_pretrained


def test_init_without_params_has_hf_defaults():
    ours, hf = VivitImageProcessor(), HFProcessor()
    for key in SETTINGS:
        assert getattr(ours, key) == getattr(hf, key), key
    assert _without_type(ours.to_dict()) == _without_type(hf.to_dict())
    assert ours.to_dict()["image_processor_type"] == "VivitTorchImageProcessor"


def test_from_dict_with_kwargs():
    config = dict(SMALL)
    proc = VivitImageProcessor.from_dict(config)
    assert proc.size == {"shortest_edge": 18} and proc.crop_size == {"height": 18, "width": 18}
    proc = VivitImageProcessor.from_dict(config, size=42, crop_size=84, offset=False)
    assert proc.size == {"shortest_edge": 42} and proc.crop_size == {"height": 84, "width": 84}
    assert proc.offset is False
    assert config == SMALL  # the dict given is not modified
    hf = HFProcessor.from_dict(config, size=42, crop_size=84)
    assert _without_type(VivitImageProcessor.from_dict(config, size=42, crop_size=84).to_dict()) == _without_type(
        hf.to_dict()
    )
    proc, unused = VivitImageProcessor.from_dict(config, do_rescale=False, foo=1, return_unused_kwargs=True)
    assert proc.do_rescale is False and unused["foo"] == 1


def test_to_json_string_and_json_file_round_trip(tmp_path):
    proc = VivitImageProcessor(**SMALL)
    obj = json.loads(proc.to_json_string())
    for key, value in SMALL.items():
        assert obj[key] == value, key
    assert obj["image_processor_type"] == "VivitTorchImageProcessor"
    path = tmp_path / "image_processor.json"
    proc.to_json_file(path)
    again = VivitImageProcessor.from_json_file(path)
    assert again.to_dict() == proc.to_dict()
    assert json.loads(path.read_text()) == obj


def test_save_pretrained_returns_the_file_list_and_round_trips(tmp_path):
    proc = VivitImageProcessor(**SMALL, offset=False, rescale_factor=1 / 255, resample=3)
    files = proc.save_pretrained(tmp_path / "saved")
    assert files == [os.path.join(tmp_path / "saved", "preprocessor_config.json")]
    with open(files[0], encoding="utf-8") as f:
        assert json.load(f)["image_processor_type"] == "VivitTorchImageProcessor"
    assert VivitImageProcessor.from_pretrained(tmp_path / "saved").to_dict() == proc.to_dict()
    assert VivitImageProcessor.from_pretrained(files[0]).to_dict() == proc.to_dict()  # the file itself
    assert VivitImageProcessor.from_pretrained(tmp_path / "saved", do_normalize=False).do_normalize is False


def test_pickles_for_data_loader_workers():
    proc = VivitImageProcessor(**SMALL, offset=False)
    again = pickle.loads(pickle.dumps(proc))
    assert type(again) is VivitTorchImageProcessor and again.to_dict() == proc.to_dict()


def test_auto_image_processor_loads_ours_and_leaves_hf_configs_to_hf(tmp_path):
    proc = VivitImageProcessor(**SMALL, offset=False)
    proc.save_pretrained(tmp_path / "ours")
    loaded = AutoImageProcessor.from_pretrained(tmp_path / "ours")
    assert type(loaded) is VivitTorchImageProcessor
    assert loaded.to_dict() == proc.to_dict()
    # registering ours does not take over HF's own ViViT configs
    HFProcessor(**SMALL).save_pretrained(tmp_path / "hf")
    assert type(AutoImageProcessor.from_pretrained(tmp_path / "hf")) is HFProcessor


def test_hf_class_loads_our_saved_config_and_gives_the_same_pixels(tmp_path):
    ours = VivitImageProcessor(
        size={"shortest_edge": 40}, crop_size={"height": 32, "width": 36}, offset=False, rescale_factor=1 / 255
    )
    ours.save_pretrained(tmp_path)
    hf = HFProcessor.from_pretrained(tmp_path)
    for key in SETTINGS:
        assert getattr(hf, key) == getattr(ours, key), key
    video = _video(np.random.default_rng(8), 3, 50, 70)
    _assert_close_levels(
        ours(video, return_tensors="np").pixel_values,
        hf(list(video), return_tensors="np")["pixel_values"],
        level=1 / 255 / 0.5,
    )


@pytest.mark.parametrize("kind", ["pil", "numpy", "torch"])
def test_call_hf_style_videos_batched_and_not(kind):
    rng = np.random.default_rng({"pil": 10, "numpy": 11, "torch": 12}[kind])
    videos = _hf_style_videos(kind, rng)
    proc, hf = VivitImageProcessor(**SMALL), HFProcessor(**SMALL)
    one = proc(videos[0], return_tensors="pt").pixel_values
    assert isinstance(one, torch.Tensor) and one.dtype == torch.float32
    assert tuple(one.shape) == (1, 4, 3, 18, 18)
    batch = proc(videos, return_tensors="pt").pixel_values
    assert tuple(batch.shape) == (3, 4, 3, 18, 18)
    _assert_close_levels(batch.numpy(), hf(videos, return_tensors="np")["pixel_values"])
    _assert_close_levels(one.numpy(), batch[:1].numpy(), max_levels=0)


def test_call_four_channels_with_input_data_format():
    rng = np.random.default_rng(13)
    videos = _hf_style_videos("numpy", rng, channels=4)
    proc = VivitImageProcessor(**SMALL)
    kwargs = dict(return_tensors="pt", image_mean=0, image_std=1, input_data_format="channels_first")
    assert tuple(proc(videos[0], **kwargs).pixel_values.shape) == (1, 4, 4, 18, 18)
    assert tuple(proc(videos, **kwargs).pixel_values.shape) == (3, 4, 4, 18, 18)
    # HF resizes 4 channels as a PIL RGBA image, which weights colours by alpha: comparable when alpha is opaque
    for video in videos:
        for frame in video:
            frame[3] = 255
    ref = HFProcessor(**SMALL)(videos, **{**kwargs, "return_tensors": "np"})["pixel_values"]
    _assert_close_levels(proc(videos, **kwargs).pixel_values.numpy(), ref, level=1 / 127.5)


def test_return_tensors_and_batch_feature():
    video = _video(np.random.default_rng(14), 2, 20, 30)
    proc = VivitImageProcessor(**SMALL)
    out = proc(video, return_tensors=TensorType.PYTORCH)
    assert isinstance(out, transformers.BatchFeature) and list(out.keys()) == ["pixel_values"]
    assert out.pixel_values is out["pixel_values"]
    assert out.to(torch.float16).pixel_values.dtype == torch.float16
    moved = out.to("cpu", torch.bfloat16).pixel_values
    assert moved.dtype == torch.bfloat16 and moved.device == torch.device("cpu")
    as_np = proc(video, return_tensors=TensorType.NUMPY).pixel_values
    assert isinstance(as_np, np.ndarray) and as_np.dtype == np.float32 and as_np.shape == (1, 2, 3, 18, 18)
    nested = proc(video).pixel_values
    assert isinstance(nested, list) and len(nested) == 1 and len(nested[0]) == 2
    assert isinstance(nested[0][0], np.ndarray) and nested[0][0].shape == (3, 18, 18)
    np.testing.assert_array_equal(np.stack(nested[0])[None], as_np)


def test_data_format_none_keeps_each_input_layout():
    # HF documents data_format=None as "the input's layout" (its 5.x code rejects None): here it works
    rng = np.random.default_rng(15)
    hwc = _video(rng, 2, 20, 30)
    hf = HFProcessor(**SMALL)
    for frames, layout in ((list(hwc), "channels_last"), ([f.transpose(2, 0, 1) for f in hwc], "channels_first")):
        ours = VivitImageProcessor(**SMALL)(frames, return_tensors="np", data_format=None).pixel_values
        _assert_close_levels(ours, hf(frames, return_tensors="np", data_format=layout)["pixel_values"])
    assert ours.shape == (1, 2, 3, 18, 18)


def test_unknown_preprocess_argument_is_ignored_with_a_warning_naming_it():
    video = _video(np.random.default_rng(16), 1, 20, 30)
    with pytest.warns(UserWarning, match="extra_argument"):
        out = VivitImageProcessor(**SMALL)(video, return_tensors="pt", extra_argument=True)
    assert tuple(out.pixel_values.shape) == (1, 1, 3, 18, 18)


def test_rescale_like_hf():
    # ViViT rescales to [-1, 1] with offset=True, not HF's usual [0, 1]
    proc, hf = VivitImageProcessor(**SMALL), HFProcessor(**SMALL)
    image = np.arange(0, 256, dtype=np.uint8).reshape(1, 8, 32)
    scale = 1 / 127.5
    expected = (image * scale).astype(np.float32) - 1
    out = proc.rescale(image, scale=scale)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert np.allclose(out, expected) and out.min() == -1 and out.max() == 1
    np.testing.assert_array_equal(out, hf.rescale(image, scale=scale))
    np.testing.assert_array_equal(proc.rescale(image, 1 / 255, offset=False), hf.rescale(image, 1 / 255, offset=False))
    as_torch = proc.rescale(torch.from_numpy(image), scale=scale)
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float32
    np.testing.assert_array_equal(as_torch.numpy(), out)
    last = proc.rescale(image, scale, data_format="channels_last")
    np.testing.assert_array_equal(last, hf.rescale(image, scale, data_format="channels_last"))
    assert last.shape == (8, 32, 1)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_resize_center_crop_normalize_like_hf(layout):
    proc, hf = VivitImageProcessor(), HFProcessor()
    rng = np.random.default_rng(17)
    image = rng.integers(0, 256, (23, 34, 3), dtype=np.uint8)
    if layout == "channels_first":
        image = np.ascontiguousarray(image.transpose(2, 0, 1))
    for size in ({"shortest_edge": 15}, {"height": 13, "width": 41}):
        for data_format in (None, "channels_first", "channels_last"):
            ours = proc.resize(image, size, data_format=data_format)
            ref = hf.resize(image, size, data_format=data_format)
            assert ours.shape == ref.shape and ours.dtype == ref.dtype == np.uint8, (size, data_format)
            assert np.abs(ours.astype(int) - ref).max() <= 1
    for size in ({"height": 11, "width": 20}, {"height": 30, "width": 41}, 16):  # inside, padded, an int (square)
        for data_format in (None, "channels_last"):
            ours = proc.center_crop(image, size, data_format=data_format)
            ref = hf.center_crop(image, size, data_format=data_format)
            assert ours.dtype == ref.dtype
            np.testing.assert_array_equal(ours, ref)
    for value in (image, image.astype(np.float64)):
        ours = proc.normalize(value, mean=[10, 20, 30], std=[40, 50, 60])
        ref = hf.normalize(value, mean=[10, 20, 30], std=[40, 50, 60])
        assert ours.dtype == ref.dtype
        np.testing.assert_allclose(ours, ref, rtol=1e-6)
    np.testing.assert_allclose(
        proc.normalize(image, 0.5, 2.0, data_format="channels_first"),
        hf.normalize(image, 0.5, 2.0, data_format="channels_first"),
        rtol=1e-6,
    )
    # torch in, torch out: the same numbers
    tensor = torch.from_numpy(image)
    assert torch.equal(proc.center_crop(tensor, 16), torch.from_numpy(proc.center_crop(image, 16)))
    assert torch.equal(proc.resize(tensor, 15), torch.from_numpy(proc.resize(image, 15)))


def test_per_image_methods_on_a_torch_batch():
    # (N, C, H, W) tensors, as transformers' torch processors take them
    frames = torch.from_numpy(_video(np.random.default_rng(18), 3, 20, 30)).permute(0, 3, 1, 2)
    proc = VivitImageProcessor()
    resized = proc.resize(frames, {"shortest_edge": 10})
    assert resized.shape == (3, 3, 10, 15) and resized.dtype == torch.uint8
    for i in range(3):
        assert torch.equal(resized[i], proc.resize(frames[i], {"shortest_edge": 10}))
    assert proc.center_crop(frames, {"height": 8, "width": 9}).shape == (3, 3, 8, 9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": {"longest_edge": 8}}, "size: expected {'shortest_edge': s} or {'height': h, 'width': w} with "),
        ({"size": 0}, "size: expected"),
        ({"crop_size": {"shortest_edge": 8}}, "crop_size: expected {'height': h, 'width': w}, got {'shortest_edge'"),
        ({"resample": 9}, "resample: expected a PIL filter id 0..5, got 9"),
        ({"resample": "cubic"}, "resample: expected one of"),
        ({"rescale_factor": 0}, "rescale_factor: expected a positive number, got 0"),
        ({"image_mean": [0.5, 0.5]}, "image_mean: expected 1 or 3 values (one per channel), got [0.5, 0.5]"),
        ({"image_std": 0}, "image_std: expected non-zero values (it divides), got 0"),
        ({"image_mean": "gray"}, "image_mean: expected a number or a list of numbers"),
        ({"return_tensors": "tf"}, "return_tensors: expected 'pt', 'np' or None, got 'tf'"),
        ({"data_format": "nchw"}, "data_format: expected one of ['channels_first', 'channels_last'], got 'nchw'"),
        ({"input_data_format": "hwc"}, "input_data_format: expected one of"),
    ],
)
def test_bad_arguments_raise_one_line_naming_them(kwargs, message):
    video = _video(np.random.default_rng(19), 1, 20, 30)
    with pytest.raises(ValueError) as call_error:
        VivitImageProcessor(**SMALL)(video, **{"return_tensors": "pt", **kwargs})
    assert message in str(call_error.value) and "\n" not in str(call_error.value)
    settings = {k: v for k, v in kwargs.items() if k not in ("return_tensors", "data_format", "input_data_format")}
    if settings:  # the same check when the setting is the processor's own
        with pytest.raises(ValueError) as init_error:
            VivitImageProcessor(**settings)(video, return_tensors="pt")
        assert message in str(init_error.value)


def test_per_image_methods_bad_input():
    proc = VivitImageProcessor()
    with pytest.raises(ValueError, match=r"resize: image: expected a numpy array or a torch tensor, got list"):
        proc.resize([[1, 2], [3, 4]], 8)
    with pytest.raises(ValueError, match=r"normalize: image: cannot tell .* \(3, 5, 3\)"):
        proc.normalize(np.zeros((3, 5, 3), np.uint8), 0.5, 0.5)
    with pytest.raises(ValueError, match=r"mean: expected 1 or 3 values"):
        proc.normalize(np.zeros((4, 5, 3), np.uint8), [0.5, 0.5], 0.5)
    with pytest.raises(ValueError, match=r"center_crop: size: expected \{'height': h, 'width': w\}"):
        proc.center_crop(np.zeros((4, 5, 3), np.uint8), {"shortest_edge": 3})
    with pytest.raises(TypeError, match=r"resize: unsupported keyword arguments \['reducing_gap'\]"):
        proc.resize(np.zeros((4, 5, 3), np.uint8), 8, reducing_gap=2.0)


def test_decoding_modules_do_not_import_transformers():
    # data-loading workers import these; transformers costs seconds per process
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys, vivit, vivit.data.io, vivit.data.datasets, vivit.data.transforms, vivit.data.frame_ops\n"
        "assert 'transformers' not in sys.modules, sorted(m for m in sys.modules if m.startswith('transformers'))[:5]"
    )
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
