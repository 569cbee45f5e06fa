"""`VivitImageProcessor`: Hugging Face's ViViT preprocessing, computed on whole clips with torch.

Same arguments, defaults, config file and outputs as `transformers.VivitImageProcessor`, but every frame of every
video goes through one batched torch pipeline (resize -> center crop -> rescale -> normalize) instead of a per-frame
numpy/PIL loop, on whatever device the input tensor lives.

Numerics. HF resizes uint8 frames with PIL's antialiased filter. On the CPU, torch's `F.interpolate(antialias=True)`
on uint8 tensors implements the same fixed-point filter: results equal PIL's within one 8-bit level per pixel
(almost all pixels are identical), which is what we use for bilinear and bicubic. Other devices resize in float and
round back to uint8, so they may differ from PIL by one level. The nearest/box/hamming/lanczos filters fall back to
PIL itself, frame by frame (CPU uint8 input only). Float input is resized in float (HF would first quantize it to
uint8), so float results are close to HF's but not bit-level comparable.

The [-3, 1] quirk. HF's defaults rescale with `x / 127.5 - 1` (already [-1, 1]) and then normalize with
mean = std = 0.5, giving values in [-3, 1]. The published HF checkpoints' expected logits are computed that way, so
it stays the default here. The original (scenic / Flax) ViViT saw [-1, 1]: use
`VivitImageProcessor.from_preset("original")` for that.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"

# PIL's resampling filter ids (PIL.Image.Resampling), as HF stores them in preprocessor_config.json.
NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = 0, 1, 2, 3, 4, 5
_RESAMPLE_NAMES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
_TORCH_MODES = {BILINEAR: "bilinear", BICUBIC: "bicubic"}

IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)

# Named settings. "hf" is HF's default ([-3, 1] output); "original" is the scenic model's [-1, 1] input.
PRESETS: dict[str, dict[str, Any]] = {
    "hf": {},
    "original": {"do_normalize": False},
}


class BatchFeature(dict):
    """A dict whose keys are also attributes (like HF's `BatchFeature`); `.to(...)` moves torch tensors."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def to(self, *args, **kwargs) -> BatchFeature:
        return BatchFeature({k: v.to(*args, **kwargs) if torch.is_tensor(v) else v for k, v in self.items()})


# ---------------------------------------------------------------------------------------------------------------------
# Functional pieces on (N, C, H, W) tensors. The clip transforms in `vivit.transforms` reuse them.


def resample_id(resample: Any) -> int:
    """PIL filter id from an int, a `PIL.Image.Resampling`/HF `PILImageResampling` member or a name."""
    if isinstance(resample, str):
        if resample.lower() not in _RESAMPLE_NAMES:
            raise ValueError(f"resample: expected one of {sorted(_RESAMPLE_NAMES)}, got {resample!r}")
        return _RESAMPLE_NAMES[resample.lower()]
    value = int(getattr(resample, "value", resample))
    if value not in _RESAMPLE_NAMES.values():
        raise ValueError(f"resample: expected a PIL filter id 0..5, got {resample!r}")
    return value


def shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """Output (height, width) with the short side = `shortest_edge`, the long side truncated like HF/torchvision."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def resize(frames: torch.Tensor, size: tuple[int, int], resample: int = BILINEAR) -> torch.Tensor:
    """Antialiased resize of (N, C, H, W) frames to `size` = (height, width), PIL-compatible on uint8.

    uint8 in -> uint8 out (float math on non-CPU devices, rounded back); float in -> float out.
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    resample = resample_id(resample)
    if resample not in _TORCH_MODES:
        return _resize_with_pil(frames, size, resample)
    mode = _TORCH_MODES[resample]
    if frames.dtype == torch.uint8 and frames.device.type != "cpu":
        return _resize_uint8_in_float(frames, size, mode)
    if frames.dtype == torch.uint8:
        # The CPU uint8 kernel is fastest (and PIL-exact) on channels-last frames, which HWC video already is.
        frames = frames.contiguous(memory_format=torch.channels_last)
    return F.interpolate(frames, size=size, mode=mode, antialias=True, align_corners=False)


def _resize_uint8_in_float(frames: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    # Devices without a uint8 antialiased kernel: the same filter in float32, rounded back to uint8.
    out = F.interpolate(frames.float(), size=size, mode=mode, antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _resize_with_pil(frames: torch.Tensor, size: tuple[int, int], resample: int) -> torch.Tensor:
    from PIL import Image

    if frames.dtype != torch.uint8 or frames.device.type != "cpu":
        raise ValueError(
            f"resample={resample}: only bilinear (2) and bicubic (3) run in torch; the other PIL filters need uint8 "
            f"frames on the CPU, got {frames.dtype} on {frames.device}"
        )
    height, width = size
    hwc = frames.permute(0, 2, 3, 1).numpy()
    out = []
    for frame in hwc:
        image = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)
        out.append(np.array(image.resize((width, height), resample=resample)).reshape(height, width, -1))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def crop(frames: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Crop (..., H, W) at (top, left); the parts of the window outside the frame are zeros (HF's padding)."""
    in_h, in_w = frames.shape[-2:]
    if top >= 0 and left >= 0 and top + height <= in_h and left + width <= in_w:
        return frames[..., top : top + height, left : left + width]
    out = frames.new_zeros(*frames.shape[:-2], height, width)
    src_t, src_l = max(top, 0), max(left, 0)
    src_b, src_r = min(top + height, in_h), min(left + width, in_w)
    if src_b > src_t and src_r > src_l:
        out[..., src_t - top : src_b - top, src_l - left : src_r - left] = frames[..., src_t:src_b, src_l:src_r]
    return out


def center_offsets(in_h: int, in_w: int, height: int, width: int) -> tuple[int, int]:
    """(top, left) of HF's center crop: floor((in - out) / 2); negative (zero padding) for a frame smaller than the
    crop, with the extra padding row/column at the top/left (as HF's `ceil` padding does)."""
    top = (in_h - height) // 2 if in_h >= height else -math.ceil((height - in_h) / 2)
    left = (in_w - width) // 2 if in_w >= width else -math.ceil((width - in_w) / 2)
    return top, left


def center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """HF's center crop (see `center_offsets`); a frame smaller than the crop is zero-padded."""
    return crop(frames, *center_offsets(*frames.shape[-2:], height, width), height, width)


def rescale_and_normalize(
    frames: torch.Tensor,
    *,
    do_rescale: bool,
    rescale_factor: float,
    offset: bool,
    do_normalize: bool,
    image_mean: Sequence[float] | float,
    image_std: Sequence[float] | float,
    channel_dim: int = -3,
) -> torch.Tensor:
    """float32 `((x * rescale_factor - offset) - mean) / std`, folded into one multiply-add per channel."""
    num_channels = frames.shape[channel_dim]
    scale = torch.ones(num_channels, dtype=torch.float64)
    shift = torch.zeros(num_channels, dtype=torch.float64)
    if do_rescale:
        scale *= rescale_factor
        shift -= 1.0 if offset else 0.0
    if do_normalize:
        mean = _per_channel(image_mean, num_channels, "image_mean")
        std = _per_channel(image_std, num_channels, "image_std")
        scale, shift = scale / std, (shift - mean) / std
    view = [1] * frames.dim()
    view[channel_dim] = num_channels
    out = frames.to(torch.float32, memory_format=torch.contiguous_format)
    if do_rescale or do_normalize:
        device = frames.device
        out.mul_(scale.to(device, torch.float32).view(view)).add_(shift.to(device, torch.float32).view(view))
    return out


def _per_channel(value: Sequence[float] | float, num_channels: int, name: str) -> torch.Tensor:
    values = torch.as_tensor(value, dtype=torch.float64).flatten()
    if values.numel() == 1:
        return values.expand(num_channels)
    if values.numel() != num_channels:
        raise ValueError(f"{name}: expected 1 or {num_channels} values (one per channel), got {list(values.tolist())}")
    return values


# ---------------------------------------------------------------------------------------------------------------------
# Input normalization: everything becomes a list of (T, C, H, W) tensors (one per video).


def _channel_layout(shape: tuple[int, ...], input_data_format: str | None) -> str:
    """'first' or 'last' for the trailing 3 dims of `shape` (C, H, W) / (H, W, C)."""
    if input_data_format is not None:
        fmt = str(getattr(input_data_format, "value", input_data_format))
        if fmt not in ("channels_first", "channels_last"):
            raise ValueError(f"input_data_format: expected 'channels_first' or 'channels_last', got {fmt!r}")
        return "first" if fmt == "channels_first" else "last"
    first, last = shape[-3] in (1, 3), shape[-1] in (1, 3)
    if first and last:
        raise ValueError(
            f"videos: cannot tell whether the channels of shape {tuple(shape)} are first or last (both have size 1 "
            "or 3); pass input_data_format='channels_first' or 'channels_last'"
        )
    if not (first or last):
        raise ValueError(
            f"videos: expected frames with 1 or 3 channels, (C, H, W) or (H, W, C), got shape {tuple(shape)}"
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


def _frames_to_video(frames: Sequence[Any], input_data_format: str | None) -> torch.Tensor:
    """A list of frames (PIL images, HWC/CHW arrays or tensors) -> (T, C, H, W)."""
    tensors = []
    for i, frame in enumerate(frames):
        frame = _pil_to_array(frame)
        tensor = _to_tensor(frame)
        if tensor.dim() == 2:
            tensor = tensor[None]
        elif tensor.dim() != 3:
            raise ValueError(f"videos: frame {i} has shape {tuple(tensor.shape)}; expected (H, W, C) or (C, H, W)")
        if _channel_layout(tuple(tensor.shape), input_data_format) == "last":
            tensor = tensor.permute(2, 0, 1)
        tensors.append(tensor)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"videos: all frames of a video must have one shape, got {sorted(shapes)}")
    return torch.stack(tensors)


def _pil_to_array(frame: Any) -> Any:
    if hasattr(frame, "getbands") and hasattr(frame, "convert"):  # a PIL image
        if frame.mode not in ("RGB", "L"):
            frame = frame.convert("RGB")
        return np.asarray(frame)
    return frame


def _is_frame_like(x: Any) -> bool:
    return torch.is_tensor(x) or isinstance(x, np.ndarray) or (hasattr(x, "getbands") and hasattr(x, "convert"))


def to_videos(videos: Any, input_data_format: str | None = None) -> list[torch.Tensor]:
    """Any accepted input -> a list of (T, C, H, W) uint8 or float tensors, one per video.

    Accepted: one frame (PIL, (H, W, C)/(C, H, W) array or tensor), a list of frames (one video), a list of videos,
    a 4-D (T, H, W, C)/(T, C, H, W) array or tensor (one video), a 5-D batch, or a list of 4-D videos.
    """
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("videos: got an empty list")
        first = videos[0]
        if isinstance(first, (list, tuple)):  # a list of videos, each a list of frames
            return [_frames_to_video(v, input_data_format) for v in videos]
        if not _is_frame_like(first):
            raise ValueError(f"videos: expected frames (PIL, numpy or torch) or lists of them, got {type(first)}")
        ndim = np.ndim(first) if not torch.is_tensor(first) else first.dim()
        if ndim == 4:  # a list of 4-D videos
            return [v for video in videos for v in to_videos(video, input_data_format)]
        return [_frames_to_video(videos, input_data_format)]
    if _is_frame_like(videos):
        videos = _pil_to_array(videos)
        tensor = _to_tensor(videos)
        if tensor.dim() in (2, 3):
            return [_frames_to_video([tensor], input_data_format)]
        if tensor.dim() == 4:
            layout = _channel_layout(tuple(tensor.shape), input_data_format)
            return [tensor.permute(0, 3, 1, 2) if layout == "last" else tensor]
        if tensor.dim() == 5:
            layout = _channel_layout(tuple(tensor.shape), input_data_format)
            return list(tensor.permute(0, 1, 4, 2, 3) if layout == "last" else tensor)
        raise ValueError(
            f"videos: expected a frame (3-D), a video (T, H, W, C)/(T, C, H, W) or a batch of videos (5-D), "
            f"got shape {tuple(tensor.shape)}"
        )
    raise ValueError(
        f"videos: expected PIL images, numpy arrays or torch tensors (or lists of them), got {type(videos)}"
    )


# ---------------------------------------------------------------------------------------------------------------------


def _size_dict(size: Any, name: str, default_to_square: bool) -> dict[str, int]:
    if isinstance(size, int):
        return {"height": size, "width": size} if default_to_square else {"shortest_edge": size}
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return {"height": int(size[0]), "width": int(size[1])}
    if isinstance(size, dict):
        if set(size) == {"shortest_edge"} or set(size) == {"height", "width"}:
            return {k: int(v) for k, v in size.items()}
    raise ValueError(f"{name}: expected {{'shortest_edge': s}} or {{'height': h, 'width': w}}, got {size!r}")


class VivitImageProcessor:
    r"""ViViT video preprocessing with HF's arguments, defaults and config file, computed in batched torch.

    Args:
        do_resize: resize frames to `size`.
        size: `{"shortest_edge": 256}` (aspect kept, long side truncated) or `{"height": h, "width": w}`.
        resample: PIL filter id (2 = bilinear). Bilinear and bicubic run in torch; the others in PIL per frame.
        do_center_crop: crop the center `crop_size` window (zero-padded where the frame is smaller).
        crop_size: `{"height": 224, "width": 224}`.
        do_rescale: multiply by `rescale_factor` (and subtract 1 when `offset`).
        rescale_factor: 1/127.5.
        offset: subtract 1 after rescaling (1/127.5 then maps [0, 255] to [-1, 1]).
        do_normalize: `(x - image_mean) / image_std`.
        image_mean, image_std: 0.5 per channel. With HF's defaults the output lies in [-3, 1]; the original ViViT
            used [-1, 1]: `VivitImageProcessor.from_preset("original")`.

    Call it on one frame, a list of frames, a list of videos, a (T, H, W, C)/(T, C, H, W) array or tensor, or a 5-D
    batch (uint8 in [0, 255], or float in the same scale). Returns `BatchFeature(pixel_values=...)` of shape
    (videos, frames, C, H, W) (float32): a tensor for `return_tensors="pt"` (on the input's device), an array for
    "np", HF's nested lists of (C, H, W) arrays for None.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        do_resize: bool = True,
        size: dict[str, int] | None = None,
        resample: int = BILINEAR,
        do_center_crop: bool = True,
        crop_size: dict[str, int] | None = None,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 127.5,
        offset: bool = True,
        do_normalize: bool = True,
        image_mean: float | Sequence[float] | None = None,
        image_std: float | Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        self.do_resize = do_resize
        self.size = _size_dict(size if size is not None else {"shortest_edge": 256}, "size", False)
        self.resample = resample_id(resample)
        self.do_center_crop = do_center_crop
        self.crop_size = _size_dict(
            crop_size if crop_size is not None else {"height": 224, "width": 224}, "crop_size", True
        )
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.offset = offset
        self.do_normalize = do_normalize
        self.image_mean = list(image_mean) if isinstance(image_mean, (list, tuple)) else image_mean
        self.image_std = list(image_std) if isinstance(image_std, (list, tuple)) else image_std
        if self.image_mean is None:
            self.image_mean = list(IMAGENET_STANDARD_MEAN)
        if self.image_std is None:
            self.image_std = list(IMAGENET_STANDARD_STD)
        # HF configs carry bookkeeping keys (image_processor_type, processor_class, ...): ignore them. Like HF,
        # offset=True with do_rescale=False is only rejected when preprocessing.

    # --- construction / serialization ------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VivitImageProcessor:
        """`"hf"`: HF's defaults ([-3, 1] output). `"original"`: the scenic ViViT's [-1, 1] input (x / 127.5 - 1)."""
        if name not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, config: dict[str, Any], **overrides: Any) -> VivitImageProcessor:
        return cls(**{**config, **overrides})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> VivitImageProcessor:
        """Read HF's `preprocessor_config.json` from a directory (or that file itself)."""
        path = os.fspath(path)
        file = os.path.join(path, PREPROCESSOR_CONFIG_NAME) if os.path.isdir(path) else path
        if not os.path.isfile(file):
            raise FileNotFoundError(f"{file}: no such preprocessor config")
        try:
            with open(file, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{file}: not a readable JSON preprocessor config ({e})") from e
        if not isinstance(config, dict):
            raise ValueError(f"{file}: expected a JSON object, got {type(config).__name__}")
        return cls.from_dict(config, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return {
            "crop_size": dict(self.crop_size),
            "do_center_crop": self.do_center_crop,
            "do_normalize": self.do_normalize,
            "do_rescale": self.do_rescale,
            "do_resize": self.do_resize,
            "image_mean": self.image_mean,
            "image_processor_type": "VivitImageProcessor",
            "image_std": self.image_std,
            "offset": self.offset,
            "resample": self.resample,
            "rescale_factor": self.rescale_factor,
            "size": dict(self.size),
        }

    def save_pretrained(self, directory: str | os.PathLike) -> str:
        os.makedirs(directory, exist_ok=True)
        file = os.path.join(os.fspath(directory), PREPROCESSOR_CONFIG_NAME)
        with open(file, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        return file

    def __repr__(self) -> str:
        return f"{type(self).__name__} {json.dumps(self.to_dict(), indent=2, sort_keys=True)}"

    # --- processing ------------------------------------------------------------------------------------------------

    def __call__(self, videos: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(videos, **kwargs)

    def output_size(self, height: int, width: int, size: dict[str, int] | None = None) -> tuple[int, int]:
        """(height, width) after the resize step for an input frame of (height, width)."""
        size = _size_dict(size if size is not None else self.size, "size", False)
        if "shortest_edge" in size:
            return shortest_edge_size(height, width, size["shortest_edge"])
        return size["height"], size["width"]

    def preprocess(
        self,
        videos: Any,
        do_resize: bool | None = None,
        size: dict[str, int] | None = None,
        resample: int | None = None,
        do_center_crop: bool | None = None,
        crop_size: dict[str, int] | None = None,
        do_rescale: bool | None = None,
        rescale_factor: float | None = None,
        offset: bool | None = None,
        do_normalize: bool | None = None,
        image_mean: float | Sequence[float] | None = None,
        image_std: float | Sequence[float] | None = None,
        return_tensors: str | None = None,
        data_format: str = "channels_first",
        input_data_format: str | None = None,
    ) -> BatchFeature:
        pick = lambda value, default: default if value is None else value
        do_resize = pick(do_resize, self.do_resize)
        size = _size_dict(pick(size, self.size), "size", False)
        resample = resample_id(pick(resample, self.resample))
        do_center_crop = pick(do_center_crop, self.do_center_crop)
        crop_size = _size_dict(pick(crop_size, self.crop_size), "crop_size", True)
        do_rescale = pick(do_rescale, self.do_rescale)
        rescale_factor = pick(rescale_factor, self.rescale_factor)
        offset = pick(offset, self.offset)
        do_normalize = pick(do_normalize, self.do_normalize)
        image_mean = pick(image_mean, self.image_mean)
        image_std = pick(image_std, self.image_std)
        if offset and not do_rescale:
            raise ValueError("offset=True requires do_rescale=True (the offset is applied after rescaling)")
        return_tensors = str(getattr(return_tensors, "value", return_tensors)) if return_tensors is not None else None
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors: expected 'pt', 'np' or None, got {return_tensors!r}")
        data_format = str(getattr(data_format, "value", data_format)) if data_format is not None else "channels_first"
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"data_format: expected 'channels_first' or 'channels_last', got {data_format!r}")

        outputs = []
        for video in to_videos(videos, input_data_format):
            if video.is_floating_point() and video.dtype != torch.float32:
                video = video.float()  # resize and normalize in float32 whatever the float input
            if do_rescale and video.is_floating_point() and video.numel() and 0 <= video.min() and video.max() <= 1:
                warnings.warn(
                    "VivitImageProcessor: float frames in [0, 1] look already rescaled; pass do_rescale=False if so "
                    "(frames are expected in [0, 255])",
                    stacklevel=2,
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
            if data_format == "channels_last":
                video = video.permute(0, 2, 3, 1)
            outputs.append(video)

        if return_tensors is None:
            return BatchFeature(pixel_values=[[frame.cpu().numpy() for frame in video] for video in outputs])
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
        return BatchFeature(pixel_values=batch if return_tensors == "pt" else batch.cpu().numpy())


__all__ = ["VivitImageProcessor", "BatchFeature", "PRESETS"]
