"""VivitImageProcessor: parity with Hugging Face's processor on every input type, config files, presets, errors."""

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from vivit.processing import VivitImageProcessor

HFProcessor = transformers.VivitImageProcessor

# One 8-bit input level after HF's default rescale (1/127.5) and normalize (std 0.5).
LEVEL = (1 / 127.5) / 0.5


def _video(rng, frames, height, width, channels=3):
    return rng.integers(0, 256, (frames, height, width, channels), dtype=np.uint8)


def _hf(video_hwc, **kwargs):
    return HFProcessor(**kwargs)(list(video_hwc), return_tensors="np")["pixel_values"]


def _assert_close_levels(ours, ref, level=LEVEL, max_levels=1.0, mean=0.002):
    assert ours.shape == ref.shape
    diff = np.abs(np.asarray(ours, np.float64) - np.asarray(ref, np.float64))
    assert diff.max() <= max_levels * level + 1e-5, diff.max() / level
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
        ([np.zeros((9, 9, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)], "one shape"),
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
    from vivit.processing import _resize_uint8_in_float

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
