"""Resize / crop / rescale / normalize on batches of (N, C, H, W) frame tensors, in torch.

The pieces of `vivit.processing.VivitImageProcessor`'s pipeline, kept free of `transformers` so that the clip
transforms (`vivit.transforms`) and the data-loading workers (`vivit.data`) can use them without importing it.

Numerics. HF resizes uint8 frames with PIL's antialiased filter. On the CPU, torch's `F.interpolate(antialias=True)`
on uint8 tensors implements the same fixed-point filter: almost all pixels equal PIL's, the others are within one
8-bit level, except about one pixel in 10^7 at two levels (torch rounds the filter weights more coarsely than PIL).
That is what we use for bilinear and bicubic. Other devices resize in float and
round back to uint8, so they may differ from PIL by one level. The nearest/box/hamming/lanczos filters fall back to
PIL itself, frame by frame (CPU uint8 input only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# PIL's resampling filter ids (PIL.Image.Resampling), as HF stores them in preprocessor_config.json.
NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = 0, 1, 2, 3, 4, 5
_RESAMPLE_NAMES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
_TORCH_MODES = {BILINEAR: "bilinear", BICUBIC: "bicubic"}


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
