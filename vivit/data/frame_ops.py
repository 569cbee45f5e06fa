"""Resize / crop / rescale / normalize on batches of (N, C, H, W) frame tensors, in torch.

The pieces of `vivit.data.processing.VivitImageProcessor`'s pipeline, kept free of `transformers` so that the clip
transforms (`vivit.data.transforms`) and the data-loading workers (`vivit.data.datasets`) can use them without
importing it.

Numerics. HF resizes uint8 frames with PIL's antialiased filter. On the CPU, torch's `F.interpolate(antialias=True)`
on uint8 tensors implements the same fixed-point filter: almost all pixels equal PIL's, the others are within one
8-bit level, except about one pixel in 10^7 at two levels (torch rounds the filter weights more coarsely than PIL).
That is what we use for bilinear and bicubic. Other devices resize in float and
round back to uint8, so they may differ from PIL by one level. The nearest/box/hamming/lanczos filters fall back to
PIL itself, frame by frame (CPU uint8 input only).

Sizes. Every public function here refuses, with a one-line ValueError, an output or crop size that is not a positive
integer or exceeds `MAX_EDGE` pixels (larger is a mistake, and would overflow the allocation), and frames with an
empty height or width. They do not look at pixel values: `VivitImageProcessor` checks those.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# PIL's resampling filter ids (PIL.Image.Resampling), as HF stores them in preprocessor_config.json.
NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = 0, 1, 2, 3, 4, 5
_RESAMPLE_NAMES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
_TORCH_MODES = {BILINEAR: "bilinear", BICUBIC: "bicubic"}

# The largest output/crop edge accepted, in pixels.
MAX_EDGE = 65536


def check_edge(value: Any, name: str, limit: int | None = MAX_EDGE) -> int:
    """`value` as an int in [1, limit] (limit None: any positive int), or a one-line ValueError naming `name`."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1
    if not ok or (limit is not None and value > limit):
        expected = "a positive integer" if limit is None else f"an integer in [1, {limit}]"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return int(value)


def check_frames(frames: Any, name: str = "frames") -> torch.Tensor:
    """`frames` must be a (N, C, H, W) tensor with at least one channel, row and column."""
    if not torch.is_tensor(frames):
        raise ValueError(f"{name}: expected a torch tensor (N, C, H, W), got {type(frames).__name__}")
    if frames.dim() != 4:
        raise ValueError(f"{name}: expected a 4-D (N, C, H, W) tensor, got shape {tuple(frames.shape)}")
    if min(frames.shape[1:]) == 0:
        raise ValueError(f"{name}: expected non-empty (C, H, W) frames, got shape {tuple(frames.shape)}")
    return frames


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
    height, width = check_edge(height, "height", None), check_edge(width, "width", None)
    shortest_edge = check_edge(shortest_edge, "shortest_edge")
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    if new_long > MAX_EDGE:
        raise ValueError(
            f"shortest_edge: {shortest_edge} on a {height}x{width} frame gives a long edge of {new_long} pixels, "
            f"more than {MAX_EDGE}"
        )
    return (new_long, new_short) if width <= height else (new_short, new_long)


def resize(frames: torch.Tensor, size: tuple[int, int], resample: int = BILINEAR) -> torch.Tensor:
    """Antialiased resize of (N, C, H, W) frames to `size` = (height, width), PIL-compatible on uint8.

    uint8 in -> uint8 out (float math on non-CPU devices, rounded back); float in -> float out.
    """
    check_frames(frames)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size: expected (height, width), got {size!r}")
    size = (check_edge(size[0], "size height"), check_edge(size[1], "size width"))
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
    height, width = check_edge(height, "crop height"), check_edge(width, "crop width")
    for name, value in (("top", top), ("left", left)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"crop: {name}: expected an integer, got {value!r}")
    if frames.dim() < 2 or min(frames.shape[-2:]) == 0:
        raise ValueError(f"crop: expected non-empty (..., H, W) frames, got shape {tuple(frames.shape)}")
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
    in_h, in_w = check_edge(in_h, "frame height", None), check_edge(in_w, "frame width", None)
    height, width = check_edge(height, "crop height"), check_edge(width, "crop width")
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
    """float32 `((x * rescale_factor - offset) - mean) / std`, folded into one multiply-add per channel.

    rescale_factor must be finite and > 0 (when do_rescale), image_mean finite and image_std finite and non-zero
    (when do_normalize), and the folded scale and shift must fit float32."""
    num_channels = frames.shape[channel_dim]
    scale = torch.ones(num_channels, dtype=torch.float64)
    shift = torch.zeros(num_channels, dtype=torch.float64)
    if do_rescale:
        if isinstance(rescale_factor, bool) or not isinstance(rescale_factor, numbers.Real):
            raise ValueError(f"rescale_factor: expected a finite number > 0, got {rescale_factor!r}")
        if not (math.isfinite(rescale_factor) and rescale_factor > 0):
            raise ValueError(f"rescale_factor: expected a finite number > 0, got {rescale_factor!r}")
        scale *= rescale_factor
        shift -= 1.0 if offset else 0.0
    if do_normalize:
        mean = _per_channel(image_mean, num_channels, "image_mean")
        std = _per_channel(image_std, num_channels, "image_std")
        if not bool(torch.isfinite(mean).all()):
            raise ValueError(f"image_mean: expected finite values, got {mean.tolist()}")
        if not bool((torch.isfinite(std) & (std != 0)).all()):
            raise ValueError(f"image_std: expected finite non-zero values (it divides), got {std.tolist()}")
        scale, shift = scale / std, (shift - mean) / std
    limit = torch.finfo(torch.float32).max
    if not bool(((scale.abs() <= limit) & (shift.abs() <= limit)).all()):
        raise ValueError(
            f"image_std / rescale_factor: the folded per-channel scale {scale.tolist()} and shift {shift.tolist()} "
            "do not fit float32"
        )
    view = [1] * frames.dim()
    view[channel_dim] = num_channels
    out = frames.to(torch.float32, memory_format=torch.contiguous_format)
    if do_rescale or do_normalize:
        device = frames.device
        out.mul_(scale.to(device, torch.float32).view(view)).add_(shift.to(device, torch.float32).view(view))
    return out


def _per_channel(value: Sequence[float] | float, num_channels: int, name: str) -> torch.Tensor:
    try:
        values = torch.as_tensor(value, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}: expected a number or a list of numbers (one per channel), got {value!r}") from None
    if values.numel() == 1:
        return values.expand(num_channels)
    if values.numel() != num_channels:
        raise ValueError(f"{name}: expected 1 or {num_channels} values (one per channel), got {list(values.tolist())}")
    return values
