"""Fuzz tests: random arrays, dtypes, shapes, layouts and settings to `VivitImageProcessor`, and random shapes, masks
and labels to a tiny model's forward. Every input gives either a valid output (the documented shape, finite) or a
ValueError / TypeError with a one-line message; any other exception is a failure. Each test prints how many inputs it
tried, how many were valid and how many were refused (run pytest with -s to see the counts)."""

import collections
import functools
import math

import numpy as np
import pytest
import torch
from _helpers import VARIANTS, randomize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vivit import VivitConfig, VivitForVideoClassification
from vivit.data.frame_ops import shortest_edge_size
from vivit.data.processing import VivitImageProcessor

FUZZ = settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)

DTYPES = ["uint8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool", "complex64"]
SPECIALS = [math.nan, math.inf, -math.inf, -1.0, 256.0, 1e30]


def _classify(counts, errors, call):
    """Run `call`: the result, or None after a clear ValueError / TypeError; count what happened."""
    counts["tried"] += 1
    try:
        result = call()
    except (ValueError, TypeError) as error:
        message = str(error)
        assert message and "\n" not in message, f"not a one-line message: {message!r}"
        counts["clear errors"] += 1
        errors[message.split()[0].rstrip(":")] += 1  # by the argument the message names first
        return None
    except Exception:
        counts["crashes"] += 1
        raise
    counts["valid"] += 1
    return result


def _mostly(good, bad, hostile=True):
    """A strategy drawing from `good` three times in four, else from `bad`; only from `good` unless `hostile`."""
    if not hostile:
        return st.sampled_from(good)
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), st.sampled_from(bad))


@st.composite
def _pixels(draw):
    """(array, spec): spec holds what the expected output shape depends on. Half the arrays are valid input."""
    pick = functools.partial(_mostly, hostile=draw(st.booleans()))
    dtype = draw(pick(["uint8", "float32", "int64", "float16", "float64", "int16"], DTYPES))
    frames = draw(pick([1, 2, 3], [0]))
    height, width = draw(pick([5, 9, 14], [0, 1])), draw(pick([4, 10, 13], [0, 1]))
    channels = draw(pick([3], [1, 2, 4]))
    layout = draw(st.sampled_from(["last", "first"]))
    ndim = draw(pick([4, 5], [2, 3, 6]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    high = draw(pick([255.0], [1.0, 1000.0]))
    frame_shape = (channels, height, width) if layout == "first" else (height, width, channels)
    shape = {2: (height, width), 3: frame_shape, 4: (frames, *frame_shape), 5: (2, frames, *frame_shape)}
    shape = shape.get(ndim, (1, 1, frames, *frame_shape))
    values = rng.uniform(0, high, shape)
    if values.size and draw(pick([False], [True])):
        values.flat[rng.integers(values.size)] = draw(st.sampled_from(SPECIALS))
    if dtype in ("float16", "float32", "float64", "complex64"):
        array = values.astype(dtype)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            array = np.nan_to_num(values, posinf=300, neginf=-1).astype(np.int64).astype(dtype)
    spec = dict(ndim=ndim, channels=channels, layout=layout, height=height, width=width)
    return array, spec


# Each setting: values that are valid, and values that must be refused.
SETTINGS = {
    "do_resize": ([True, False], [True]),
    "size": ([8, {"shortest_edge": 5}, {"height": 6, "width": 9}, (7, 5)], [0, -3, {"longest_edge": 4}, 10**6, 2.5]),
    "resample": ([2, 3, "bilinear"], [0, 1, 9, "nope"]),  # 0, 1: PIL filters, refused for float frames
    "do_center_crop": ([True, False], [True]),
    "crop_size": ([8, {"height": 4, "width": 7}, 20], [-5, 0, {"height": 3}, 10**6]),
    "do_rescale": ([True, False], [True]),
    "rescale_factor": ([1 / 255, 1 / 127.5, 2.0], [0, -1.0, math.inf]),
    "offset": ([True, False], [True]),
    "do_normalize": ([True, False], [True]),
    "image_mean": ([0.5, [0.4, 0.5, 0.6], [0.5]], [math.nan, "x", [0.5, 0.5]]),
    "image_std": ([0.5, [0.2, 0.3, 0.4]], [0, math.inf, 1e-40, [0.5, 0.5]]),
}


@st.composite
def _settings(draw):
    """All settings valid half the time, else one or more drawn from the bad values."""
    hostile = draw(st.booleans())
    drawn = {name: draw(_mostly(good, bad, hostile)) for name, (good, bad) in SETTINGS.items()}
    if not hostile and not drawn["do_rescale"]:
        drawn["offset"] = False  # offset=True needs do_rescale=True
    return drawn


def _expected_shape(frame_shape, input_data_format, kw, num_videos, frames):
    """(videos, frames, C, H, W) from one input frame's shape and the settings, by the documented rules."""
    if len(frame_shape) == 2:  # gray (H, W) frames become RGB
        (height, width), channels = frame_shape, 3
    else:
        first, last = frame_shape[0] in (1, 3), frame_shape[-1] in (1, 3)
        layout = {"channels_first": "first", "channels_last": "last"}.get(input_data_format)
        layout = layout or ("first" if first and not last else "last")
        channels, height, width = frame_shape if layout == "first" else (frame_shape[2], *frame_shape[:2])
    if kw["do_resize"]:
        size = kw["size"]
        size = {"shortest_edge": size} if isinstance(size, int) else size
        size = {"height": size[0], "width": size[1]} if isinstance(size, tuple) else size
        if "shortest_edge" in size:
            height, width = shortest_edge_size(height, width, size["shortest_edge"])
        else:
            height, width = size["height"], size["width"]
    if kw["do_center_crop"]:
        crop = kw["crop_size"]
        height, width = (crop, crop) if isinstance(crop, int) else (crop["height"], crop["width"])
    return (num_videos, frames, channels, height, width)


PROCESSOR_COUNTS, PROCESSOR_ERRORS = collections.Counter(), collections.Counter()


@FUZZ
@given(
    pixels=_pixels(),
    kw=_settings(),
    kind=st.sampled_from(["array", "tensor", "list of frames", "list of videos", "gray frames"]),
    input_data_format=_mostly([None], ["channels_first", "channels_last", "none", "bad"]),
    where=st.sampled_from(["call", "init"]),
)
def _fuzz_processor(pixels, kw, kind, input_data_format, where):
    array, spec = pixels
    value, num_videos, frames = array, 1, array.shape[0] if array.ndim >= 4 else 1
    frame_shape = array.shape[-3:] if array.ndim >= 3 else array.shape
    if array.ndim == 5:
        num_videos, frames = array.shape[0], array.shape[1]
    if kind == "tensor" and array.dtype.kind in "uifb":
        value = torch.from_numpy(array)
    elif kind in ("list of frames", "list of videos") and array.ndim == 4:
        value = list(array) if kind == "list of frames" else [list(array), list(array)]
        num_videos = 2 if kind == "list of videos" else 1
    elif kind == "gray frames" and array.ndim == 4:
        value = [f[..., 0] if spec["layout"] == "last" else f[0] for f in array]  # (H, W) frames
        frame_shape = value[0].shape if value else ()
    else:
        kind = "array"

    def call():
        if where == "init":
            return VivitImageProcessor(**kw)(value, return_tensors="pt", input_data_format=input_data_format)
        return VivitImageProcessor()(value, return_tensors="pt", input_data_format=input_data_format, **kw)

    out = _classify(PROCESSOR_COUNTS, PROCESSOR_ERRORS, call)
    if out is not None:
        pixel_values = out.pixel_values
        assert pixel_values.dtype == torch.float32 and bool(torch.isfinite(pixel_values).all())
        expected = _expected_shape(frame_shape, input_data_format, kw, num_videos, frames)
        assert tuple(pixel_values.shape) == expected


def test_fuzz_processor():
    PROCESSOR_COUNTS.clear(), PROCESSOR_ERRORS.clear()
    _fuzz_processor()
    print(f"\nprocessor fuzz: {dict(PROCESSOR_COUNTS)}; errors by argument: {dict(PROCESSOR_ERRORS)}")
    assert PROCESSOR_COUNTS["crashes"] == 0
    # the generator must reach both outcomes often, or the test checks little
    assert PROCESSOR_COUNTS["valid"] >= 10 and PROCESSOR_COUNTS["clear errors"] >= 10


# ------------------------------------------------------------------------------------------------ model forward

TINY = dict(image_size=16, num_frames=4, tubelet_size=[2, 8, 8], hidden_size=32, num_hidden_layers=1)
TINY.update(num_attention_heads=2, intermediate_size=64, num_labels=3, num_temporal_layers=1)


@pytest.fixture(scope="module")
def models():
    return {v: randomize(VivitForVideoClassification(VivitConfig(**TINY, variant=v))).eval() for v in VARIANTS}


MODEL_COUNTS, MODEL_ERRORS = collections.Counter(), collections.Counter()


@st.composite
def _model_inputs(draw):
    """Valid inputs half the time, else with some of their parts drawn from refused values."""
    pick = functools.partial(_mostly, hostile=draw(st.booleans()))
    batch = draw(st.integers(1, 3))
    frames = draw(pick([4], [1, 2, 5, 6]))
    height, width = draw(pick([(16, 16)], [(8, 24), (7, 16), (24, 17)]))
    channels = draw(pick([3], [1]))
    dtype = draw(pick([torch.float32], [torch.float64, torch.int64]))
    pixels = torch.randn(batch, frames, channels, height, width, generator=torch.Generator().manual_seed(batch))
    if draw(pick([False], [True])):
        index = tuple(draw(st.integers(0, n - 1)) for n in pixels.shape)
        pixels[index] = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e6]))
    pixels = pixels.to(dtype)
    mask_kind = draw(pick(["none", "random", "float"], ["wrong shape", "all false row"]))
    mask = None
    if mask_kind == "random":
        mask = torch.tensor([[draw(st.booleans()) for _ in range(frames)] for _ in range(batch)])
    elif mask_kind == "wrong shape":
        mask = torch.ones(batch, frames + 1, dtype=torch.bool)
    elif mask_kind == "all false row":
        mask = torch.ones(batch, frames, dtype=torch.bool)
        mask[draw(st.integers(0, batch - 1))] = False
    elif mask_kind == "float":
        mask = torch.ones(batch, frames)
    label_kind = draw(pick(["none", "ints", "multi"], ["wrong shape", "list"]))
    labels = None
    if label_kind == "ints":
        labels = torch.tensor([draw(pick([0, 1, 2, -100], [3, -1, 99])) for _ in range(batch)])
    elif label_kind == "wrong shape":
        labels = torch.zeros(batch + 1, dtype=torch.long)
    elif label_kind == "multi":
        labels = torch.rand(batch, draw(pick([3], [2])))
    elif label_kind == "list":
        labels = [0] * batch
    return dict(pixel_values=pixels, frame_mask=mask, labels=labels), frames


@settings(FUZZ, max_examples=60)
@given(inputs=_model_inputs(), variant=st.sampled_from(VARIANTS), interpolate=st.booleans())
def _fuzz_model(models, inputs, variant, interpolate):
    kwargs, _ = inputs
    model = models[variant]
    with torch.no_grad():
        out = _classify(MODEL_COUNTS, MODEL_ERRORS, lambda: model(**kwargs, interpolate_pos_encoding=interpolate))
    if out is not None:
        assert out.logits.shape == (kwargs["pixel_values"].shape[0], TINY["num_labels"])
        assert bool(torch.isfinite(out.logits).all())
        if kwargs["labels"] is not None:
            assert out.loss.dim() == 0 and bool(torch.isfinite(out.loss))


def test_fuzz_model_forward(models):
    MODEL_COUNTS.clear(), MODEL_ERRORS.clear()
    _fuzz_model(models)
    print(f"\nmodel forward fuzz: {dict(MODEL_COUNTS)}; errors by argument: {dict(MODEL_ERRORS)}")
    assert MODEL_COUNTS["crashes"] == 0
    assert MODEL_COUNTS["valid"] >= 5 and MODEL_COUNTS["clear errors"] >= 5
