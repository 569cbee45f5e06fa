"""`VivitImageProcessor`: Hugging Face's ViViT preprocessing as a transformers image processor, computed on whole
clips with torch.

It is a `transformers.BaseImageProcessor`: `from_pretrained` (local directories, Hub ids, the cache),
`save_pretrained` / `push_to_hub`, `to_dict` / `to_json_string` / `to_json_file` / `from_dict` / `from_json_file`,
`AutoImageProcessor` and HF's `BatchFeature` all come from transformers. Arguments, defaults and the config file are
those of `transformers.VivitImageProcessor`, but `preprocess` runs every frame of every video through one batched
torch pipeline (resize -> center crop -> rescale -> normalize, see `vivit.frame_ops`) instead of a per-frame
numpy/PIL loop, on whatever device the input tensor lives.

Config files. `save_pretrained` writes HF's `preprocessor_config.json` with `image_processor_type`
"VivitTorchImageProcessor" (the class's name; `VivitImageProcessor` is the same class under the name vivit has always
exported). A distinct name is what lets `AutoImageProcessor` return this class for a directory we saved, once
`vivit.processing` is imported, while HF's own ViViT configs keep loading HF's class. Every other key is HF's, so
`transformers.VivitImageProcessor.from_pretrained(directory)` reads a directory saved here, and this class reads
HF's. Without vivit installed, `AutoImageProcessor` does not know the name: use HF's class directly there.

Numerics: within one 8-bit level per pixel of HF's PIL-based output (see `vivit.frame_ops`). Float input is
resized in float (HF would first quantize it to uint8), so float results are close to HF's but not bit-level
comparable.

The [-3, 1] quirk. HF's defaults rescale with `x / 127.5 - 1` (already [-1, 1]) and then normalize with
mean = std = 0.5, giving values in [-3, 1]. The published HF checkpoints' expected logits are computed that way, so
it stays the default here. The original (scenic / Flax) ViViT saw [-1, 1]: use
`VivitImageProcessor.from_preset("original")` for that.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.processing_utils import ImagesKwargs
from transformers.utils import filter_out_non_signature_kwargs

# Re-exported: these lived here before `vivit.frame_ops` existed.
from vivit.frame_ops import (  # noqa: F401
    BICUBIC,
    BILINEAR,
    BOX,
    HAMMING,
    LANCZOS,
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


def _to_tensor(array: Any) -> torch.Tensor:
    if torch.is_tensor(array):
        tensor = array
    else:
        array = np.asarray(array)
        if array.dtype == object:
            raise ValueError("videos: got a ragged or object array; pass frames of one size per video")
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"videos: expected uint8 or float pixels, got dtype {tensor.dtype}")
    if not tensor.is_floating_point() and tensor.dtype != torch.uint8:
        low, high = int(tensor.min()), int(tensor.max())
        if low < 0 or high > 255:
            raise ValueError(f"videos: integer pixels must lie in [0, 255], got values in [{low}, {high}]")
        tensor = tensor.to(torch.uint8)
    return tensor


def _frames_to_video(frames: Sequence[Any], input_data_format: Any, layouts: list[str]) -> torch.Tensor:
    """A list of frames (PIL images, HWC/CHW arrays or tensors) -> (T, C, H, W)."""
    tensors = []
    layout = "first"
    for i, frame in enumerate(frames):
        is_pil = _is_pil(frame)
        tensor = _to_tensor(_pil_to_array(frame))
        if tensor.dim() == 2:
            tensor = tensor[None]
        elif tensor.dim() != 3:
            raise ValueError(f"videos: frame {i} has shape {tuple(tensor.shape)}; expected (H, W, C) or (C, H, W)")
        # A PIL image is (H, W, C) whatever input_data_format says about the arrays.
        layout = "last" if is_pil else _channel_layout(tuple(tensor.shape), input_data_format)
        if layout == "last":
            tensor = tensor.permute(2, 0, 1)
        tensors.append(tensor)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"videos: all frames of a video must have one shape, got {sorted(shapes)}")
    layouts.append(layout)
    return torch.stack(tensors)


def _is_pil(frame: Any) -> bool:
    return hasattr(frame, "getbands") and hasattr(frame, "convert")


def _pil_to_array(frame: Any) -> Any:
    if _is_pil(frame):
        if frame.mode not in ("RGB", "L"):
            frame = frame.convert("RGB")
        return np.asarray(frame)
    return frame


def _is_frame_like(x: Any) -> bool:
    return torch.is_tensor(x) or isinstance(x, np.ndarray) or _is_pil(x)


def to_videos(videos: Any, input_data_format: Any = None, layouts: list[str] | None = None) -> list[torch.Tensor]:
    """Any accepted input -> a list of (T, C, H, W) uint8 or float tensors, one per video.

    Accepted: one frame (PIL, (H, W, C)/(C, H, W) array or tensor), a list of frames (one video), a list of videos,
    a 4-D (T, H, W, C)/(T, C, H, W) array or tensor (one video), a 5-D batch, or a list of 4-D videos.
    `layouts`, when given, receives each video's input channel layout ('first' / 'last').
    """
    layouts = [] if layouts is None else layouts
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("videos: got an empty list")
        first = videos[0]
        if isinstance(first, (list, tuple)):  # a list of videos, each a list of frames
            return [_frames_to_video(v, input_data_format, layouts) for v in videos]
        if not _is_frame_like(first):
            raise ValueError(f"videos: expected frames (PIL, numpy or torch) or lists of them, got {type(first)}")
        ndim = np.ndim(first) if not torch.is_tensor(first) else first.dim()
        if ndim == 4:  # a list of 4-D videos
            return [v for video in videos for v in to_videos(video, input_data_format, layouts)]
        return [_frames_to_video(videos, input_data_format, layouts)]
    if _is_frame_like(videos):
        if _is_pil(videos) or np.ndim(videos) in (2, 3):
            return [_frames_to_video([videos], input_data_format, layouts)]
        tensor = _to_tensor(videos)
        if tensor.dim() in (4, 5):
            layout = _channel_layout(tuple(tensor.shape), input_data_format)
            videos = tensor[None] if tensor.dim() == 4 else tensor
            layouts.extend([layout] * len(videos))
            return list(videos.permute(0, 1, 4, 2, 3) if layout == "last" else videos)
        raise ValueError(
            f"videos: expected a frame (3-D), a video (T, H, W, C)/(T, C, H, W) or a batch of videos (5-D), "
            f"got shape {tuple(tensor.shape)}"
        )
    raise ValueError(
        f"videos: expected PIL images, numpy arrays or torch tensors (or lists of them), got {type(videos)}"
    )


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
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) and size > 0:
        return {"height": int(size), "width": int(size)} if default_to_square else {"shortest_edge": int(size)}
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(_positive_int(v) for v in size):
        return {"height": int(size[0]), "width": int(size[1])}
    if isinstance(size, dict) and all(_positive_int(v) for v in size.values()):
        if set(size) == {"shortest_edge"} or set(size) == {"height", "width"}:
            return {k: int(v) for k, v in size.items()}
    expected = "{'height': h, 'width': w}" if default_to_square else "{'shortest_edge': s} or {'height': h, 'width': w}"
    raise ValueError(f"{name}: expected {expected} with positive integers, got {size!r}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


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
    if name.endswith("std") and any(v == 0 for v in (values if isinstance(values, list) else [values])):
        raise ValueError(f"{name}: expected non-zero values (it divides), got {value!r}")
    return values


def _rescale_factor(value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"rescale_factor: expected a positive number, got {value!r}")
    return value


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

    Call it on one frame, a list of frames, a list of videos, a (T, H, W, C)/(T, C, H, W) array or tensor, or a 5-D
    batch (uint8 in [0, 255], or float in the same scale). Returns HF's `BatchFeature(pixel_values=...)` of shape
    (videos, frames, C, H, W) (float32): a tensor for `return_tensors="pt"` (on the input's device), an array for
    "np", HF's nested lists of (C, H, W) arrays for None.
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
        self.do_resize = do_resize
        self.size = _size_dict(size if size is not None else {"shortest_edge": 256}, "size", False)
        self.resample = resample_id(resample)
        self.do_center_crop = do_center_crop
        self.crop_size = _crop_size_dict(crop_size if crop_size is not None else {"height": 224, "width": 224})
        self.do_rescale = do_rescale
        self.rescale_factor = _rescale_factor(rescale_factor)
        self.offset = offset
        self.do_normalize = do_normalize
        self.image_mean = _mean_or_std(image_mean if image_mean is not None else IMAGENET_STANDARD_MEAN, "image_mean")
        self.image_std = _mean_or_std(image_std if image_std is not None else IMAGENET_STANDARD_STD, "image_std")
        # Like HF, offset=True with do_rescale=False is only rejected when preprocessing.

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
        for video, layout in zip(to_videos(videos, input_data_format, layouts), layouts, strict=True):
            if video.is_floating_point() and video.dtype != torch.float32:
                video = video.float()  # resize and normalize in float32 whatever the float input
            if do_rescale and video.is_floating_point() and video.numel() and 0 <= video.min() and video.max() <= 1:
                warnings.warn(
                    "VivitImageProcessor: float frames in [0, 1] look already rescaled; pass do_rescale=False if so "
                    "(frames are expected in [0, 255])",
                    stacklevel=3,
                )
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
