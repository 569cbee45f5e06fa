"""`VivitImageProcessor`: Hugging Face's ViViT preprocessing as a transformers image processor, computed on whole
clips with torch.

It is a `transformers.BaseImageProcessor`: `from_pretrained` (local directories, Hub ids, the cache),
`save_pretrained` / `push_to_hub`, `to_dict` / `to_json_string` / `to_json_file` / `from_dict` / `from_json_file`,
`AutoImageProcessor` and HF's `BatchFeature` all come from transformers. Arguments, defaults and the config file are
those of `transformers.VivitImageProcessor`, but `preprocess` runs every frame of every video through one batched
torch pipeline (resize -> center crop -> rescale -> normalize, see `vivit.data.frame_ops`) instead of a per-frame
numpy/PIL loop, on whatever device the input tensor lives.

Config files. `save_pretrained` writes HF's `preprocessor_config.json` with `image_processor_type`
"VivitTorchImageProcessor" (the class's name; `VivitImageProcessor` is the same class under the name vivit has always
exported). A distinct name is what lets `AutoImageProcessor` return this class for a directory we saved, once
`vivit.data.processing` is imported, while HF's own ViViT configs keep loading HF's class. Every other key is HF's, so
`transformers.VivitImageProcessor.from_pretrained(directory)` reads a directory saved here, and this class reads
HF's. Without vivit installed, `AutoImageProcessor` does not know the name: use HF's class directly there.

Numerics: within one 8-bit level per pixel of HF's PIL-based output (see `vivit.data.frame_ops`). Float input is
resized in float (HF would first quantize it to uint8), so float results are close to HF's but not bit-level
comparable.

The [-3, 1] quirk. HF's defaults rescale with `x / 127.5 - 1` (already [-1, 1]) and then normalize with
mean = std = 0.5, giving values in [-3, 1]. The published HF checkpoints' expected logits are computed that way, so
it stays the default here. The original (scenic / Flax) ViViT saw [-1, 1]: use
`VivitImageProcessor.from_preset("original")` for that.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.processing_utils import ImagesKwargs
from transformers.utils import filter_out_non_signature_kwargs

# Re-exported: these lived here before `vivit.data.frame_ops` existed.
from vivit.data.frame_ops import (  # noqa: F401
    BICUBIC,
    BILINEAR,
    BOX,
    HAMMING,
    LANCZOS,
    MAX_EDGE,
    NEAREST,
    _per_channel,
    _resize_uint8_in_float,
    center_crop,
    center_offsets,
    crop,
    resample_id,
    rescale_and_normalize,
    resize,
    shortest_edge_size,
)

PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"

IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)

# Named settings. "hf" is HF's default ([-3, 1] output); "original" is the scenic model's [-1, 1] input.
PRESETS: dict[str, dict[str, Any]] = {
    "hf": {},
    "original": {"do_normalize": False},
}


# ---------------------------------------------------------------------------------------------------------------------
# Input normalization: everything becomes a list of (T, C, H, W) tensors (one per video).


def _format_name(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """'channels_first' / 'channels_last' / 'none' from a string or HF's `ChannelDimension`."""
    fmt = str(getattr(value, "value", value))
    if fmt not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")
    return fmt


def _channel_layout(shape: tuple[int, ...], input_data_format: Any, name: str = "videos") -> str:
    """'first' or 'last' for the trailing 3 dims of `shape` (C, H, W) / (H, W, C)."""
    if input_data_format is not None:
        fmt = _format_name(input_data_format, "input_data_format", ("channels_first", "channels_last"))
        return "first" if fmt == "channels_first" else "last"
    first, last = shape[-3] in (1, 3), shape[-1] in (1, 3)
    if first and last:
        raise ValueError(
            f"{name}: cannot tell whether the channels of shape {tuple(shape)} are first or last (both have size 1 "
            "or 3); pass input_data_format='channels_first' or 'channels_last'"
        )
    if not (first or last):
        raise ValueError(
            f"{name}: expected frames with 1 or 3 channels, (C, H, W) or (H, W, C), got shape {tuple(shape)} "
            "(pass input_data_format for other channel counts)"
        )
    return "first" if first else "last"


def _dtype_error(where: str, dtype: Any) -> ValueError:
    return ValueError(
        f"{where}: unsupported pixel dtype {dtype}; expected uint8, an integer type with values in [0, 255], or "
        "float (16-bit images: convert to uint8 or to float in [0, 255] first)"
    )


def _to_tensor(array: Any, where: str = "videos") -> torch.Tensor:
    """An array or tensor of pixels -> a uint8 or floating-point tensor (integers in [0, 255] become uint8)."""
    if torch.is_tensor(array):
        tensor = array
    else:
        array = np.asarray(array)
        if array.dtype == object:
            raise ValueError(f"{where}: got a ragged or object array; pass frames of one size per video")
        # bool, complex, unsigned types wider than 8 bits (16-bit images), strings, dates, long double
        kind, size = array.dtype.kind, array.dtype.itemsize
        if not (kind == "i" or (kind == "u" and size == 1) or (kind == "f" and size <= 8)):
            raise _dtype_error(where, array.dtype)
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.is_floating_point() or tensor.dtype == torch.uint8:
        return tensor
    if tensor.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64):
        raise _dtype_error(where, tensor.dtype)
    if tensor.numel():
        low, high = int(tensor.min()), int(tensor.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"{where}: integer pixels (dtype {tensor.dtype}) must lie in [0, 255], got values in [{low}, {high}]"
            )
    return tensor.to(torch.uint8)


# PIL modes converted to RGB (alpha dropped, palette and gray expanded); others (16/32-bit integer, float) refused.
_PIL_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")


def _frame_tensor(frame: Any, input_data_format: Any, where: str) -> tuple[torch.Tensor, str]:
    """One frame -> ((C, H, W) tensor, its input layout). PIL images and 2-D (H, W) gray frames become RGB."""
    if _is_pil(frame):
        if frame.mode not in _PIL_MODES:
            raise ValueError(
                f"{where}: unsupported PIL image mode {frame.mode!r}; expected one of {list(_PIL_MODES)} "
                "(convert 16-bit, 32-bit and float images to 'RGB' or 'L' first)"
            )
        frame = np.asarray(frame if frame.mode == "RGB" else frame.convert("RGB"))
        layout = "last"  # a PIL image is (H, W, C) whatever input_data_format says about the arrays
    else:
        layout = None
    tensor = _to_tensor(frame, where)
    if tensor.dim() == 2:  # a gray (H, W) frame: replicated to 3 channels, as PIL's "L" -> "RGB"
        tensor, layout = tensor[None].expand(3, -1, -1), "first"
    elif tensor.dim() != 3:
        raise ValueError(f"{where}: expected a frame (H, W, C), (C, H, W) or (H, W), got shape {tuple(tensor.shape)}")
    if layout is None:
        layout = _channel_layout(tuple(tensor.shape), input_data_format, where)
    if layout == "last":
        tensor = tensor.permute(2, 0, 1)
    if min(tensor.shape) == 0:
        raise ValueError(f"{where}: empty frame of (C, H, W) = {tuple(tensor.shape)}")
    return tensor, layout


def _frames_to_video(frames: Sequence[Any], input_data_format: Any, layouts: list[str], clip: int) -> torch.Tensor:
    """A list of frames (PIL images, HWC/CHW/HW arrays or tensors) -> (T, C, H, W)."""
    if len(frames) == 0:
        raise ValueError(f"videos: clip {clip} has no frames")
    tensors = []
    layout = "first"
    for i, frame in enumerate(frames):
        tensor, layout = _frame_tensor(frame, input_data_format, f"videos: clip {clip} frame {i}")
        if tensors and tensor.shape != tensors[0].shape:
            raise ValueError(
                f"videos: clip {clip} frame {i} has (C, H, W) = {tuple(tensor.shape)} but frame 0 has "
                f"{tuple(tensors[0].shape)}; all frames of a clip must have one size (resize them first)"
            )
        if tensors and tensor.dtype != tensors[0].dtype:
            tensor = tensor.to(torch.promote_types(tensor.dtype, tensors[0].dtype))
            tensors = [t.to(tensor.dtype) for t in tensors]
        tensors.append(tensor)
    layouts.append(layout)
    return torch.stack(tensors)


def _is_pil(frame: Any) -> bool:
    return hasattr(frame, "getbands") and hasattr(frame, "convert")


def _is_frame_like(x: Any) -> bool:
    return torch.is_tensor(x) or isinstance(x, np.ndarray) or _is_pil(x)


def _ndim(x: Any) -> int:
    return x.dim() if torch.is_tensor(x) else 2 if _is_pil(x) else np.ndim(x)


_SINGLE_IMAGE = (
    "videos: got a single image of shape {shape} with no frame axis; pass a clip as a (T, H, W, C) or (T, C, H, W) "
    "array, a list of frames or a list of clips, or pass input_data_format ('channels_first', 'channels_last') to "
    "read it as one frame"
)


def to_videos(videos: Any, input_data_format: Any = None, layouts: list[str] | None = None) -> list[torch.Tensor]:
    """Any accepted input -> a list of (T, C, H, W) uint8 or float tensors, one per video.

    Accepted: a list of frames (one video), a list of videos (lists of frames), a 4-D (T, H, W, C)/(T, C, H, W)
    array or tensor (one video), a 5-D batch, a list of 4-D videos, and one PIL image (a one-frame video). Frames
    are (H, W, C), (C, H, W), gray (H, W) or PIL images; gray (H, W) frames and PIL images (modes 1, L, LA, La, P,
    PA, RGB, RGBA, RGBa, RGBX, CMYK, YCbCr; alpha dropped) become 3-channel RGB. A bare 2-D or 3-D array or tensor
    is refused as ambiguous (one image, or a clip of gray frames?) unless `input_data_format` is given, which reads
    it as one frame.
    `layouts`, when given, receives each video's input channel layout ('first' / 'last').
    """
    layouts = [] if layouts is None else layouts
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("videos: got an empty list")
        first = videos[0]
        if isinstance(first, (list, tuple)):  # a list of videos, each a list of frames
            for i, video in enumerate(videos):
                if not isinstance(video, (list, tuple)):
                    raise ValueError(f"videos: clip {i} is a {type(video).__name__}; expected a list of frames")
            return [_frames_to_video(v, input_data_format, layouts, i) for i, v in enumerate(videos)]
        if not _is_frame_like(first):
            raise ValueError(f"videos: expected frames (PIL, numpy or torch) or lists of them, got {type(first)}")
        if _ndim(first) == 4:  # a list of 4-D videos
            out: list[torch.Tensor] = []
            for i, video in enumerate(videos):
                if not _is_frame_like(video) or _ndim(video) != 4:
                    shape = tuple(np.shape(video)) if _is_frame_like(video) else type(video).__name__
                    raise ValueError(f"videos: clip {i}: expected a 4-D video like clip 0, got {shape}")
                out.extend(_tensor_videos(_to_tensor(video, f"videos: clip {i}"), input_data_format, layouts, i))
            return out
        return [_frames_to_video(videos, input_data_format, layouts, 0)]
    if _is_pil(videos):
        return [_frames_to_video([videos], input_data_format, layouts, 0)]
    if _is_frame_like(videos):
        if _ndim(videos) in (2, 3):
            if input_data_format is None:
                raise ValueError(_SINGLE_IMAGE.format(shape=tuple(np.shape(videos))))
            if _ndim(videos) == 2:
                _format_name(input_data_format, "input_data_format", _FORMATS)
            return [_frames_to_video([videos], input_data_format, layouts, 0)]
        return _tensor_videos(_to_tensor(videos), input_data_format, layouts, 0)
    raise ValueError(
        f"videos: expected PIL images, numpy arrays or torch tensors (or lists of them), got {type(videos)}"
    )


def _tensor_videos(tensor: torch.Tensor, input_data_format: Any, layouts: list[str], first: int) -> list[torch.Tensor]:
    """A 4-D video or a 5-D batch tensor -> (T, C, H, W) views; `first` is the index of its first clip."""
    if tensor.dim() not in (4, 5):
        raise ValueError(
            "videos: expected a video (T, H, W, C)/(T, C, H, W) or a batch of videos (5-D), "
            f"got shape {tuple(tensor.shape)}"
        )
    layout = _channel_layout(tuple(tensor.shape), input_data_format)
    batch = tensor[None] if tensor.dim() == 4 else tensor
    batch = batch.permute(0, 1, 4, 2, 3) if layout == "last" else batch
    if batch.shape[0] == 0:
        raise ValueError(f"videos: got a batch of 0 clips (shape {tuple(tensor.shape)})")
    for i, video in enumerate(batch):
        if min(video.shape) == 0:
            raise ValueError(f"videos: clip {first + i} is empty: (T, C, H, W) = {tuple(video.shape)}")
    layouts.extend([layout] * len(batch))
    return list(batch)


# ---------------------------------------------------------------------------------------------------------------------
# One image (or a tensor batch of them) for the per-image methods HF's processors have.


def _image_frames(image: Any, input_data_format: Any, method: str) -> tuple[torch.Tensor, Callable, str]:
    """numpy/torch image -> ((N, C, H, W) tensor, a function giving an output back in the input's kind, layout)."""
    is_numpy = isinstance(image, np.ndarray)
    if not is_numpy and not torch.is_tensor(image):
        raise ValueError(f"{method}: image: expected a numpy array or a torch tensor, got {type(image).__name__}")
    tensor = torch.from_numpy(image if image.flags.writeable else image.copy()) if is_numpy else image
    if tensor.dim() < 2:
        raise ValueError(f"{method}: image: expected (H, W), (C, H, W) or (H, W, C), got shape {tuple(tensor.shape)}")
    if tensor.dim() == 2:
        if input_data_format is not None:
            _format_name(input_data_format, "input_data_format", ("none",))
        layout, frames = "none", tensor[None, None]
    else:
        if (
            input_data_format is not None
            and _format_name(input_data_format, "input_data_format", ("channels_first", "channels_last", "none"))
            == "none"
        ):
            raise ValueError(f"input_data_format: 'none' is for 2-D images, got shape {tuple(tensor.shape)}")
        layout = _channel_layout(tuple(tensor.shape), input_data_format, f"{method}: image")
        frames = tensor.movedim(-1, -3) if layout == "last" else tensor
        frames = frames.reshape(-1, *frames.shape[-3:])
    lead = tensor.shape[:-3] if tensor.dim() > 3 else ()

    def give_back(out: torch.Tensor, data_format: Any) -> Any:
        fmt = layout if data_format is None else _format_name(data_format, "data_format", _FORMATS)
        fmt = {"first": "channels_first", "last": "channels_last"}.get(fmt, fmt)
        if fmt == "none":
            if out.shape[-3] != 1:
                raise ValueError(f"data_format: 'none' needs 1 channel, got {out.shape[-3]}")
            out = out[:, 0]
        elif fmt == "channels_last":
            out = out.movedim(-3, -1)
        out = out.reshape(*lead, *out.shape[1:]) if tensor.dim() > 2 else out[0]
        return out.numpy() if is_numpy else out

    return frames, give_back, layout


_FORMATS = ("channels_first", "channels_last", "none")


def _no_extra_kwargs(method: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"{method}: unsupported keyword arguments {sorted(kwargs)}")


# ---------------------------------------------------------------------------------------------------------------------


def _size_dict(size: Any, name: str, default_to_square: bool) -> dict[str, int]:
    if _positive_int(size):
        return {"height": int(size), "width": int(size)} if default_to_square else {"shortest_edge": int(size)}
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(_positive_int(v) for v in size):
        return {"height": int(size[0]), "width": int(size[1])}
    if isinstance(size, dict) and all(_positive_int(v) for v in size.values()):
        if set(size) == {"shortest_edge"} or set(size) == {"height", "width"}:
            return {k: int(v) for k, v in size.items()}
    expected = "{'height': h, 'width': w}" if default_to_square else "{'shortest_edge': s} or {'height': h, 'width': w}"
    raise ValueError(f"{name}: expected {expected} with integers in [1, {MAX_EDGE}], got {size!r}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 < value <= MAX_EDGE


def _crop_size_dict(crop_size: Any) -> dict[str, int]:
    size = _size_dict(crop_size, "crop_size", True)
    if "shortest_edge" in size:
        raise ValueError(f"crop_size: expected {{'height': h, 'width': w}}, got {crop_size!r}")
    return size


def _mean_or_std(value: Any, name: str) -> float | list[float]:
    values = value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else value
    if isinstance(values, (list, tuple)):
        if not values or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{name}: expected a number or a list of numbers (one per channel), got {value!r}")
        values = [float(v) for v in values]
    elif not isinstance(values, numbers.Real) or isinstance(values, bool):
        raise ValueError(f"{name}: expected a number or a list of numbers (one per channel), got {value!r}")
    flat = values if isinstance(values, list) else [values]
    if not all(math.isfinite(v) for v in flat):
        raise ValueError(f"{name}: expected finite values, got {value!r}")
    if name.endswith("std") and any(v == 0 for v in flat):
        raise ValueError(f"{name}: expected non-zero values (it divides), got {value!r}")
    return values


def _rescale_factor(value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"rescale_factor: expected a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"rescale_factor: expected a finite number, got {value!r}")
    return value


def _check_pixel_values(video: torch.Tensor, clip: int, do_rescale: bool) -> float:
    """Float frames: no NaN/Inf, and in [0, 255] when they are to be rescaled. Returns the clip's largest value."""
    low, high = video.flatten(1).aminmax(dim=1)  # per frame; NaN propagates, so one pass finds both
    finite = torch.isfinite(low) & torch.isfinite(high)
    if not bool(finite.all()):
        frame = int((~finite).nonzero()[0, 0])
        raise ValueError(f"videos: clip {clip} frame {frame} has NaN or infinite pixel values")
    if do_rescale:
        outside = (low < 0) | (high > 255)
        if bool(outside.any()):
            frame = int(outside.nonzero()[0, 0])
            raise ValueError(
                f"videos: clip {clip} frame {frame}: float pixels must lie in [0, 255] when do_rescale=True, got "
                f"values in [{float(low[frame]):g}, {float(high[frame]):g}] (pass do_rescale=False for frames "
                "already scaled)"
            )
    return float(high.max())


# Settings checked whenever they are assigned (in __init__, by from_dict's keyword arguments or by hand).
_SETTING_CHECKS: dict[str, Callable[[Any], Any]] = {
    "size": lambda v: _size_dict(v, "size", False),
    "crop_size": lambda v: _crop_size_dict(v),
    "resample": resample_id,
    "rescale_factor": _rescale_factor,
    "image_mean": lambda v: _mean_or_std(v, "image_mean"),
    "image_std": lambda v: _mean_or_std(v, "image_std"),
}


class VivitImageProcessorKwargs(ImagesKwargs, total=False):
    """HF's image-processor keyword arguments plus ViViT's `offset` (so `from_dict(..., offset=...)` applies it)."""

    offset: bool


class VivitTorchImageProcessor(BaseImageProcessor):
    r"""ViViT video preprocessing with HF's arguments, defaults and config file, computed in batched torch.

    Args:
        do_resize: resize frames to `size`.
        size: `{"shortest_edge": 256}` (aspect kept, long side truncated) or `{"height": h, "width": w}`; an int
            means a shortest edge.
        resample: PIL filter id (2 = bilinear). Bilinear and bicubic run in torch; the others in PIL per frame.
        do_center_crop: crop the center `crop_size` window (zero-padded where the frame is smaller).
        crop_size: `{"height": 224, "width": 224}`; an int means a square.
        do_rescale: multiply by `rescale_factor` (and subtract 1 when `offset`).
        rescale_factor: 1/127.5.
        offset: subtract 1 after rescaling (1/127.5 then maps [0, 255] to [-1, 1]).
        do_normalize: `(x - image_mean) / image_std`.
        image_mean, image_std: 0.5 per channel. With HF's defaults the output lies in [-3, 1]; the original ViViT
            used [-1, 1]: `VivitImageProcessor.from_preset("original")`.

    Call it on a list of frames, a list of videos, a (T, H, W, C)/(T, C, H, W) array or tensor, a 5-D batch or one
    PIL image (uint8, integers in [0, 255], or float in the same scale). A bare 2-D or 3-D array is ambiguous (one
    image, or a clip of gray frames?) and is refused unless `input_data_format` says how to read it (as one frame);
    HF's processor reads it as one frame. Gray (H, W) frames and PIL images are converted to RGB. Returns HF's
    `BatchFeature(pixel_values=...)` of shape (videos, frames, C, H, W) (float32): a tensor for
    `return_tensors="pt"` (on the input's device), an array for "np", HF's nested lists of (C, H, W) arrays for None.

    Settings (size, crop_size, resample, rescale_factor, image_mean, image_std) are checked when set and again when
    called: sizes are integers in [1, 65536], rescale_factor finite and > 0, image_mean finite, image_std finite
    and non-zero. See `preprocess` for the checks on the frames.
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = VivitImageProcessorKwargs

    def __init__(
        self,
        do_resize: bool = True,
        size: dict[str, int] | int | None = None,
        resample: int = BILINEAR,
        do_center_crop: bool = True,
        crop_size: dict[str, int] | int | None = None,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 127.5,
        offset: bool = True,
        do_normalize: bool = True,
        image_mean: float | Sequence[float] | None = None,
        image_std: float | Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        # Written by `to_dict` (HF's or ours); the class being built is what names the type.
        kwargs.pop("image_processor_type", None)
        # Like HF's processors, other keys (bookkeeping from other versions) are kept as attributes and saved back.
        super().__init__(**kwargs)
        # Each of size, crop_size, resample, rescale_factor, image_mean and image_std is checked and put in its
        # canonical form by __setattr__.
        self.do_resize = do_resize
        self.size = size if size is not None else {"shortest_edge": 256}
        self.resample = resample
        self.do_center_crop = do_center_crop
        self.crop_size = crop_size if crop_size is not None else {"height": 224, "width": 224}
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.offset = offset
        self.do_normalize = do_normalize
        self.image_mean = image_mean if image_mean is not None else IMAGENET_STANDARD_MEAN
        self.image_std = image_std if image_std is not None else IMAGENET_STANDARD_STD
        # Like HF, offset=True with do_rescale=False is only rejected when preprocessing.

    def __setattr__(self, name: str, value: Any) -> None:
        # A bad setting fails where it is set, not at the first call (which checks again: __dict__ can be edited).
        check = _SETTING_CHECKS.get(name)
        super().__setattr__(name, check(value) if check is not None else value)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VivitTorchImageProcessor:
        """`"hf"`: HF's defaults ([-3, 1] output). `"original"`: the scenic ViViT's [-1, 1] input (x / 127.5 - 1)."""
        if name not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **overrides})

    def output_size(self, height: int, width: int, size: dict[str, int] | int | None = None) -> tuple[int, int]:
        """(height, width) after the resize step for an input frame of (height, width)."""
        size = _size_dict(size if size is not None else self.size, "size", False)
        if "shortest_edge" in size:
            return shortest_edge_size(height, width, size["shortest_edge"])
        return size["height"], size["width"]

    # --- HF's per-image steps (one frame, numpy or torch; a torch batch (..., C, H, W) works too) -------------------

    def resize(
        self,
        image: np.ndarray | torch.Tensor,
        size: dict[str, int] | int,
        resample: int = BILINEAR,
        data_format: str | None = None,
        input_data_format: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray | torch.Tensor:
        """Resize to `size` ({"shortest_edge": s}: aspect kept; {"height", "width"}: exactly). uint8 stays uint8
        (within one level of HF's PIL result); float is resized in float. `data_format=None` keeps the layout."""
        _no_extra_kwargs("resize", kwargs)
        frames, give_back, _ = _image_frames(image, input_data_format, "resize")
        out = resize(frames, self.output_size(*frames.shape[-2:], size), resample_id(resample))
        return give_back(out, data_format)

    def center_crop(
        self,
        image: np.ndarray | torch.Tensor,
        size: dict[str, int] | int,
        data_format: str | None = None,
        input_data_format: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray | torch.Tensor:
        """The center (size["height"], size["width"]) window, zero-padded where the image is smaller (as HF)."""
        _no_extra_kwargs("center_crop", kwargs)
        size = _size_dict(size, "size", True)
        if "shortest_edge" in size:
            raise ValueError(f"center_crop: size: expected {{'height': h, 'width': w}}, got {size!r}")
        frames, give_back, _ = _image_frames(image, input_data_format, "center_crop")
        return give_back(center_crop(frames, size["height"], size["width"]), data_format)

    def rescale(
        self,
        image: np.ndarray | torch.Tensor,
        scale: float,
        offset: bool = True,
        data_format: str | None = None,
        input_data_format: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray | torch.Tensor:
        """float32 `image * scale`, minus 1 when `offset` (1/127.5 then maps [0, 255] to [-1, 1]); computed like
        HF: the product in float64, rounded to float32, then the offset."""
        _no_extra_kwargs("rescale", kwargs)
        is_numpy = isinstance(image, np.ndarray)
        if not is_numpy and not torch.is_tensor(image):
            raise ValueError(f"rescale: image: expected a numpy array or a torch tensor, got {type(image).__name__}")
        if not isinstance(scale, numbers.Real) or isinstance(scale, bool):
            raise ValueError(f"rescale: scale: expected a number, got {scale!r}")
        if is_numpy:
            out = (image.astype(np.float64) * scale).astype(np.float32)
        else:
            out = (image.to(torch.float64) * scale).to(torch.float32)
        if offset:
            out = out - 1
        if data_format is None:
            return out
        frames, give_back, _ = _image_frames(out, input_data_format, "rescale")
        return give_back(frames, data_format)

    def normalize(
        self,
        image: np.ndarray | torch.Tensor,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        data_format: str | None = None,
        input_data_format: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray | torch.Tensor:
        """`(image - mean) / std` per channel; integer images become float32, float ones keep their dtype (as HF)."""
        _no_extra_kwargs("normalize", kwargs)
        frames, give_back, _ = _image_frames(image, input_data_format, "normalize")
        if not frames.is_floating_point():
            frames = frames.to(torch.float32)
        channels = frames.shape[1]
        mean_t = _per_channel(_mean_or_std(mean, "mean"), channels, "mean").to(frames.device, frames.dtype)
        std_t = _per_channel(_mean_or_std(std, "std"), channels, "std").to(frames.device, frames.dtype)
        out = (frames - mean_t.view(1, -1, 1, 1)) / std_t.view(1, -1, 1, 1)
        return give_back(out, data_format)

    # --- the batched pipeline ---------------------------------------------------------------------------------------

    @filter_out_non_signature_kwargs()
    def preprocess(
        self,
        videos: Any,
        do_resize: bool | None = None,
        size: dict[str, int] | int | None = None,
        resample: int | None = None,
        do_center_crop: bool | None = None,
        crop_size: dict[str, int] | int | None = None,
        do_rescale: bool | None = None,
        rescale_factor: float | None = None,
        offset: bool | None = None,
        do_normalize: bool | None = None,
        image_mean: float | Sequence[float] | None = None,
        image_std: float | Sequence[float] | None = None,
        return_tensors: str | None = None,
        data_format: str | None = "channels_first",
        input_data_format: str | None = None,
    ) -> BatchFeature:
        """Every frame of every video: resize -> center crop -> rescale (with offset) -> normalize, batched in torch.

        Arguments left None take the processor's settings. `data_format`: the output frames' layout,
        "channels_first" (C, H, W) by default, "channels_last", or None for each video's input layout.
        Keyword arguments that are not in this signature are ignored with a warning naming them (as HF's).

        Checked, each failure a one-line ValueError naming the clip and frame where it applies: the pixel dtype
        (uint8, an integer type with values in [0, 255], or float; bool, complex and 16-bit or wider unsigned
        integers are refused), PIL modes (16/32-bit and float modes are refused), that float frames hold no NaN or
        Inf, that with `do_rescale=True` float frames lie in [0, 255], that all frames of a clip have one size and
        that no clip or frame is empty. Warned (`UserWarning`, once per call): with `do_rescale=True`, float frames
        whose values are all <= 1, which look already rescaled.
        """
        pick = lambda value, default: default if value is None else value
        do_resize = pick(do_resize, self.do_resize)
        size = _size_dict(pick(size, self.size), "size", False)
        resample = resample_id(pick(resample, self.resample))
        do_center_crop = pick(do_center_crop, self.do_center_crop)
        crop_size = _crop_size_dict(pick(crop_size, self.crop_size))
        do_rescale = pick(do_rescale, self.do_rescale)
        rescale_factor = _rescale_factor(pick(rescale_factor, self.rescale_factor))
        offset = pick(offset, self.offset)
        do_normalize = pick(do_normalize, self.do_normalize)
        image_mean = _mean_or_std(pick(image_mean, self.image_mean), "image_mean")
        image_std = _mean_or_std(pick(image_std, self.image_std), "image_std")
        if offset and not do_rescale:
            raise ValueError("offset=True requires do_rescale=True (the offset is applied after rescaling)")
        return_tensors = str(getattr(return_tensors, "value", return_tensors)) if return_tensors is not None else None
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors: expected 'pt', 'np' or None, got {return_tensors!r}")
        if data_format is not None:
            data_format = _format_name(data_format, "data_format", ("channels_first", "channels_last"))

        layouts: list[str] = []
        outputs = []
        largest = None  # the largest float pixel: all <= 1 suggests frames already rescaled
        for clip, (video, layout) in enumerate(
            zip(to_videos(videos, input_data_format, layouts), layouts, strict=True)
        ):
            if video.is_floating_point():
                # resize and normalize in float32 whatever the float input (float64 beyond float32's range: Inf)
                video = video.float()
                high = _check_pixel_values(video, clip, do_rescale)
                largest = high if largest is None else max(largest, high)
            if do_resize:
                video = resize(video, self.output_size(*video.shape[-2:], size), resample)
            if do_center_crop:
                video = center_crop(video, crop_size["height"], crop_size["width"])
            video = rescale_and_normalize(
                video,
                do_rescale=do_rescale,
                rescale_factor=rescale_factor,
                offset=offset,
                do_normalize=do_normalize,
                image_mean=image_mean,
                image_std=image_std,
            )
            if data_format == "channels_last" or (data_format is None and layout == "last"):
                video = video.permute(0, 2, 3, 1)
            outputs.append(video)
        if do_rescale and largest is not None and largest <= 1:
            warnings.warn(
                "VivitImageProcessor: every float pixel is <= 1, so the frames look already rescaled; pass "
                "do_rescale=False if so (with do_rescale=True frames are expected in [0, 255])",
                stacklevel=3,
            )

        if return_tensors is None:
            nested = [[frame.cpu().numpy() for frame in video] for video in outputs]
            return BatchFeature(data={"pixel_values": nested})
        shapes = {tuple(v.shape[1:]) for v in outputs}
        if len(shapes) > 1:
            raise ValueError(
                f"return_tensors={return_tensors!r}: the videos have different frame shapes {sorted(shapes)} and "
                "cannot be stacked; enable do_center_crop or use a {'height', 'width'} size"
            )
        lengths = {v.shape[0] for v in outputs}
        if len(lengths) > 1:
            raise ValueError(
                f"return_tensors={return_tensors!r}: the videos have different frame counts {sorted(lengths)} and "
                "cannot be stacked"
            )
        batch = outputs[0][None] if len(outputs) == 1 else torch.stack(outputs)
        if return_tensors == "np":
            batch = batch.cpu().numpy()
        return BatchFeature(data={"pixel_values": batch}, tensor_type=return_tensors)


# The name vivit has always exported. The class itself is named differently from HF's `VivitImageProcessor` so that the
# `image_processor_type` it saves resolves to it (not to HF's class) in `AutoImageProcessor`.
VivitImageProcessor = VivitTorchImageProcessor


__all__ = ["PRESETS", "VivitImageProcessor", "VivitTorchImageProcessor"]
