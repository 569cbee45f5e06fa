"""Bad input to the processor, `vivit.data.frame_ops` and the model's forward: each case is refused with a one-line
error naming the argument (and the clip / frame / batch row), or handled correctly."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import TINY, randomize
from PIL import Image

from vivit import VivitConfig, VivitForVideoClassification
from vivit.data import frame_ops
from vivit.data.processing import VivitImageProcessor
from vivit.models.modeling import values_checkable

SMALL = dict(size={"shortest_edge": 8}, crop_size=8)


def _raises(error, call, *patterns):
    """`call()` raises `error` with a one-line message containing every pattern (regular expressions)."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for pattern in patterns:
        assert __import__("re").search(pattern, message), (pattern, message)
    return message


def _float_video(seed=0, frames=3, height=10, width=12):
    return np.random.default_rng(seed).uniform(0, 255, (frames, height, width, 3)).astype(np.float32)


def _run(value, **kwargs):
    return VivitImageProcessor(**SMALL)(value, return_tensors="pt", **kwargs).pixel_values


# ------------------------------------------------------------------------------------------------ pixel values


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_pixels_name_the_clip_and_frame(bad):
    videos = [_float_video(1), _float_video(2)]
    videos[1][2, 4, 5, 1] = bad
    _raises(ValueError, lambda: _run(videos), r"^videos: clip 1 frame 2 has NaN or infinite pixel values")
    # also when the frames are not rescaled (any float scale), and for float64 beyond float32's range
    _raises(ValueError, lambda: _run(videos, do_rescale=False, offset=False), "clip 1 frame 2")
    huge = _float_video(3).astype(np.float64)
    huge[1, 0, 0, 0] = 1e300
    _raises(ValueError, lambda: _run(huge, do_rescale=False, offset=False), "clip 0 frame 1 has NaN or infinite")


@pytest.mark.parametrize("value", [255.5, -0.5, 1000.0])
def test_float_pixels_outside_0_255_refused_when_rescaling(value):
    video = _float_video(4)
    video[2, 1, 1, 0] = value
    _raises(
        ValueError, lambda: _run(video), r"^videos: clip 0 frame 2: float pixels must lie in \[0, 255\]", "do_rescale"
    )
    # already scaled frames are the caller's to declare
    assert _run(video, do_rescale=False, offset=False).shape == (1, 3, 3, 8, 8)


def test_float_frames_all_at_most_one_warn_once_per_call():
    videos = [_float_video(s) / 255 for s in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(videos)
    assert [str(w.message) for w in caught if "already rescaled" in str(w.message)] != []
    assert len([w for w in caught if "already rescaled" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0..255 floats, uint8 and already-scaled input with do_rescale=False: quiet
        _run(_float_video(5))
        _run(np.zeros((2, 10, 12, 3), np.uint8))
        _run(videos, do_rescale=False, offset=False)


@pytest.mark.parametrize(
    "array, pattern",
    [
        (np.zeros((2, 10, 12, 3), np.uint16), "dtype uint16"),
        (np.zeros((2, 10, 12, 3), np.uint32), "dtype uint32"),
        (np.zeros((2, 10, 12, 3), np.complex64), "dtype complex64"),
        (np.zeros((2, 10, 12, 3), bool), "dtype bool"),
        (np.zeros((2, 10, 12, 3), "<U1"), "dtype <U1"),
        (torch.zeros(2, 10, 12, 3, dtype=torch.uint16), r"dtype torch\.uint16"),
        (torch.zeros(2, 10, 12, 3, dtype=torch.bool), r"dtype torch\.bool"),
        (np.full((2, 10, 12, 3), 256, np.int32), r"int32\) must lie in \[0, 255\], got values in \[256, 256\]"),
        (np.full((2, 10, 12, 3), -1, np.int16), r"int16\) must lie in \[0, 255\], got values in \[-1, -1\]"),
    ],
)
def test_unsupported_dtypes_refused_naming_the_dtype(array, pattern):
    _raises(ValueError, lambda: _run(array), "^videos", pattern)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_integer_types_within_0_255_equal_uint8(dtype):
    video = np.random.default_rng(6).integers(0, 128 if dtype == np.int8 else 256, (2, 10, 12, 3), dtype=np.uint8)
    assert torch.equal(_run(video.astype(dtype)), _run(video))


# ------------------------------------------------------------------------------------------------ shapes and layouts


@pytest.mark.parametrize("shape", [(3, 10, 12), (10, 12, 3), (4, 10, 12), (10, 12), (1, 10, 12)])
def test_a_bare_image_without_frame_axis_is_refused(shape):
    image = np.zeros(shape, np.uint8)
    for value in (image, torch.from_numpy(image)):
        _raises(
            ValueError,
            lambda value=value: _run(value),
            r"^videos: got a single image of shape",
            "no frame axis",
            "list of",
        )


def test_a_bare_image_is_one_frame_with_input_data_format():
    rng = np.random.default_rng(7)
    chw = rng.integers(0, 256, (3, 10, 12), dtype=np.uint8)
    out = _run(chw, input_data_format="channels_first")
    assert out.shape == (1, 1, 3, 8, 8)
    assert torch.equal(out, _run(chw.transpose(1, 2, 0)[None]))  # the same frame as a one-frame (T, H, W, C) clip
    gray = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    out = _run(gray, input_data_format="none")
    assert out.shape == (1, 1, 3, 8, 8)
    assert torch.equal(out, _run(np.repeat(gray[None, :, :, None], 3, axis=-1)))


def test_gray_hw_frames_become_three_identical_channels():
    gray = np.random.default_rng(8).integers(0, 256, (2, 10, 12), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    for frames in (list(gray), [torch.from_numpy(f) for f in gray]):
        out = _run(frames)
        assert out.shape == (1, 2, 3, 8, 8)
        assert torch.equal(out, _run(rgb))
    # frames with an explicit single channel keep it
    assert _run(gray[..., None], image_mean=0.5, image_std=0.5).shape == (1, 2, 1, 8, 8)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "1", "CMYK"])
def test_pil_modes_become_rgb(mode):
    rng = np.random.default_rng(9)
    rgb = [Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)) for _ in range(2)]
    images = [im.convert(mode) for im in rgb]
    # expected: PIL's own conversion to RGB, as (T, H, W, C) arrays
    expected = np.stack([np.asarray(im.convert("RGB")) for im in images])
    out = _run(images)
    assert out.shape == (1, 2, 3, 8, 8)
    assert torch.equal(out, _run(expected))
    if mode == "L":  # gray: three equal channels, each the gray value
        assert torch.equal(out[:, :, 0], out[:, :, 1]) and torch.equal(out[:, :, 0], out[:, :, 2])


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_pil_high_bit_depth_modes_refused(mode):
    images = [Image.new(mode, (12, 10))] * 2
    _raises(ValueError, lambda: _run(images), rf"^videos: clip 0 frame 0: unsupported PIL image mode '{mode}'")


def test_resolution_change_mid_clip_names_the_frame_and_both_sizes():
    frames = [np.zeros((10, 12, 3), np.uint8)] * 3 + [np.zeros((11, 12, 3), np.uint8)]
    _raises(
        ValueError,
        lambda: _run(frames),
        r"^videos: clip 0 frame 3 has \(C, H, W\) = \(3, 11, 12\) but frame 0 has \(3, 10, 12\)",
    )
    videos = [frames[:2], frames[1:]]
    _raises(ValueError, lambda: _run(videos), r"clip 1 frame 2 has .*\(3, 11, 12\).*\(3, 10, 12\)")


@pytest.mark.parametrize(
    "value, pattern",
    [
        (np.zeros((0, 10, 12, 3), np.uint8), r"clip 0 is empty: \(T, C, H, W\) = \(0, 3, 10, 12\)"),
        (np.zeros((2, 0, 12, 3), np.uint8), "clip 0 is empty"),
        (np.zeros((2, 2, 10, 0, 3), np.uint8), "clip 0 is empty"),
        (np.zeros((0, 2, 10, 12, 3), np.uint8), "batch of 0 clips"),
        ([[np.zeros((10, 12, 3), np.uint8)], []], "clip 1 has no frames"),
        ([np.zeros((0, 12, 3), np.uint8)], "clip 0 frame 0: empty frame"),
    ],
)
def test_empty_clips_and_frames_refused(value, pattern):
    _raises(ValueError, lambda: _run(value), "^videos: ", pattern)


# ------------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "settings, pattern",
    [
        ({"crop_size": -5}, r"^crop_size: expected .* got -5"),
        ({"crop_size": {"height": 0, "width": 8}}, "^crop_size: expected"),
        ({"crop_size": 70000}, r"^crop_size: expected .*\[1, 65536\]"),
        ({"size": -1}, "^size: expected"),
        ({"size": 2**40}, r"^size: expected .*\[1, 65536\]"),
        ({"size": {"shortest_edge": 8, "height": 8}}, "^size: expected"),
        ({"size": 8.0}, "^size: expected"),
        ({"image_std": 0}, r"^image_std: expected non-zero values"),
        ({"image_std": [0.5, 0.0, 0.5]}, r"^image_std: expected non-zero values"),
        ({"image_std": math.nan}, r"^image_std: expected finite values"),
        ({"image_std": [0.5, math.inf, 0.5]}, r"^image_std: expected finite values"),
        ({"image_mean": math.inf}, r"^image_mean: expected finite values"),
        ({"image_mean": [math.nan] * 3}, r"^image_mean: expected finite values"),
        ({"resample": 6}, r"^resample: expected a PIL filter id"),
        ({"resample": "area"}, r"^resample: expected one of"),
        ({"rescale_factor": math.inf}, r"^rescale_factor: expected a finite number, got inf"),
        ({"rescale_factor": math.nan}, r"^rescale_factor: expected a positive number, got nan"),
        ({"rescale_factor": -1 / 255}, r"^rescale_factor: expected a positive number"),
    ],
)
def test_bad_settings_refused_when_set_and_when_called(settings, pattern):
    video = np.zeros((1, 10, 12, 3), np.uint8)
    _raises(ValueError, lambda: VivitImageProcessor(**settings), pattern)  # at construction
    _raises(ValueError, lambda: VivitImageProcessor()(video, **settings), pattern)  # as call arguments
    ((name, value),) = settings.items()
    processor = VivitImageProcessor()
    _raises(ValueError, lambda: setattr(processor, name, value), pattern)  # on assignment
    _raises(ValueError, lambda: VivitImageProcessor.from_dict({}, **settings), pattern)  # HF's from_dict kwargs
    processor.__dict__[name] = value  # bypassing the checks: the call checks again
    _raises(ValueError, lambda: processor(video), pattern)


def test_settings_are_normalized_when_set():
    processor = VivitImageProcessor()
    processor.crop_size = 16
    processor.size = 20
    processor.resample = "bicubic"
    assert processor.crop_size == {"height": 16, "width": 16} and processor.size == {"shortest_edge": 20}
    assert processor.resample == 3


def test_sizes_that_would_overflow_refused():
    # a 4 x 1000 frame with a shortest edge of 300 would be 300 x 75000
    video = np.zeros((1, 4, 1000, 3), np.uint8)
    _raises(ValueError, lambda: _run(video, size={"shortest_edge": 300}), r"^shortest_edge: 300 on a 4x1000 frame")


# ------------------------------------------------------------------------------------------------ frame_ops


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda x: frame_ops.resize(x, (0, 5)), r"^size height: expected an integer in \[1, 65536\], got 0"),
        (lambda x: frame_ops.resize(x, (5, 10**6)), "^size width: expected"),
        (lambda x: frame_ops.resize(x, 5), r"^size: expected \(height, width\)"),
        (lambda x: frame_ops.resize(x[0], (5, 5)), r"^frames: expected a 4-D \(N, C, H, W\) tensor"),
        (lambda x: frame_ops.resize(x[:, :, :0], (5, 5)), r"^frames: expected non-empty"),
        (lambda x: frame_ops.crop(x, 0, 0, -1, 4), "^crop height: expected"),
        (lambda x: frame_ops.crop(x, 0.5, 0, 4, 4), "^crop: top: expected an integer"),
        (lambda x: frame_ops.center_crop(x, 4, 0), "^crop width: expected"),
        (lambda x: frame_ops.center_crop(x[:, :, :0], 4, 4), "^frame height: expected a positive integer"),
        (lambda x: frame_ops.shortest_edge_size(0, 5, 3), "^height: expected a positive integer"),
        (lambda x: frame_ops.shortest_edge_size(5, 5, True), "^shortest_edge: expected"),
        (lambda x: frame_ops.shortest_edge_size(1, 70000, 2), r"^shortest_edge: 2 on a 1x70000 frame"),
        (lambda x: _normalize(x, image_std=0.0), "^image_std: expected finite non-zero"),
        (lambda x: _normalize(x, image_std=[1, math.nan, 1]), "^image_std: expected finite non-zero"),
        (lambda x: _normalize(x, image_mean=math.inf), "^image_mean: expected finite"),
        (lambda x: _normalize(x, rescale_factor=math.inf), "^rescale_factor: expected a finite number > 0"),
        (lambda x: _normalize(x, rescale_factor=0), "^rescale_factor: expected a finite number > 0"),
        (lambda x: _normalize(x, image_std=1e-300), "do not fit float32"),
        (lambda x: _normalize(x, image_mean="gray"), "^image_mean: expected a number or a list"),
    ],
)
def test_frame_ops_size_and_setting_checks(call, pattern):
    _raises(ValueError, lambda: call(torch.zeros(2, 3, 6, 7, dtype=torch.uint8)), pattern)


def _normalize(frames, **overrides):
    settings = dict(do_rescale=True, rescale_factor=1 / 255, offset=False, do_normalize=True)
    settings.update(image_mean=0.5, image_std=0.5)
    return frame_ops.rescale_and_normalize(frames, **{**settings, **overrides})


# ------------------------------------------------------------------------------------------------ the model


@pytest.fixture(scope="module")
def model():
    config = VivitConfig(**{**TINY, "num_labels": 5})
    return randomize(VivitForVideoClassification(config)).eval()


def _clip(batch=2):
    return torch.randn(batch, TINY["num_frames"], 3, TINY["image_size"], TINY["image_size"])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_model_refuses_nan_and_inf_pixels_naming_row_and_frame(model, bad):
    x = _clip(3)
    x[2, 1, 0, 3, 4] = bad
    _raises(ValueError, lambda: model(x), r"^pixel_values has NaN or infinite values \(batch row 2, frame 1\)")
    # large finite values whose sum overflows are not mistaken for Inf
    big = torch.full_like(_clip(), 3e38)
    assert torch.isfinite(model.vivit.embeddings.patch_embeddings.projection.weight).all()
    model.vivit._check_values(big, None, 4)


def test_model_value_checks_are_skipped_where_values_cannot_be_read(model):
    x = _clip()
    assert values_checkable(x, None) and values_checkable(x, torch.ones(2, 4, dtype=torch.bool))
    assert not values_checkable(torch.empty(2, 3, device="meta"))
    assert not values_checkable(x, torch.ones(2, 4, device="meta"))
    inside = []
    torch.func.vmap(lambda t: inside.append(values_checkable(t)) or t)(x)
    assert inside == [False]

    def double_when_checkable(t):
        return t * 2 if values_checkable(t) else t * 3

    compiled = torch.compile(double_when_checkable, backend="eager", fullgraph=True)  # no graph break
    assert torch.equal(compiled(x), x * 3)
    traced = torch.jit.trace(double_when_checkable, (x,), check_trace=False)
    assert torch.equal(traced(x), x * 3)
    # a meta-device forward runs (shape inference) without reading values
    meta = VivitForVideoClassification(model.config).to("meta")
    assert meta(_clip().to("meta"), frame_mask=torch.zeros(2, 4, dtype=torch.bool, device="meta")).logits.shape == (
        2,
        5,
    )


def test_model_refuses_all_false_frame_mask_rows(model):
    x = _clip(3)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    _raises(ValueError, lambda: model(x, frame_mask=mask), r"^frame_mask row 1 has no True value among the 4 frames")
    # a row that is real only in frames the model drops (5 frames, tubelets of 2: frame 4 is not read)
    x5 = torch.randn(1, 5, 3, 16, 16)
    mask5 = torch.tensor([[False, False, False, False, True]])
    _raises(
        ValueError, lambda: model(x5, frame_mask=mask5, interpolate_pos_encoding=True), "frame_mask row 0 .* 4 frames"
    )
    _raises(TypeError, lambda: model(x, frame_mask=[[True] * 4] * 3), "^frame_mask must be a torch.Tensor, got list")
    mask[1, 0] = True
    assert torch.isfinite(model(x, frame_mask=mask).logits).all()


@pytest.mark.parametrize("label", [5, 7, -1, -99, -101])
def test_model_refuses_labels_out_of_range_naming_the_value(model, label):
    labels = torch.tensor([0, label, 4])
    _raises(
        ValueError,
        lambda: model(_clip(3), labels=labels),
        rf"^labels: expected class indices in \[0, 5\) or -100 .*got {label} \(batch row 1\)",
    )


def test_loss_over_all_ignored_labels_is_zero_with_zero_gradients(model):
    model.zero_grad()
    out = model(_clip(), labels=torch.tensor([-100, -100]))
    assert out.loss.item() == 0.0
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool((g == 0).all()) for g in grads)
    model.zero_grad()
    # partly ignored: the mean over the kept labels, as F.cross_entropy computes it on those rows alone
    x, labels = _clip(3), torch.tensor([2, -100, 4])
    logits = model(x).logits
    expected = F.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert torch.allclose(model(x, labels=labels).loss, expected, rtol=1e-6, atol=0)


def test_label_shape_and_type_errors(model):
    _raises(
        ValueError,
        lambda: model(_clip(2), labels=torch.tensor([0, 1, 2])),
        r"^labels for single-label .* \(2\), got shape \(3,\)",
    )
    _raises(TypeError, lambda: model(_clip(2), labels=[0, 1]), "^labels must be a torch.Tensor, got list")
    _raises(
        ValueError,
        lambda: model(_clip(2), labels=torch.zeros(2, 4)),
        r"^labels for multi-label .* \(2, 5\), got \(2, 4\)",
    )
