"""Clip transforms: uint8 (T, H, W, C) clips from `vivit.data.io` -> float32 (T, C, H, W) model input.

`TrainTransform`: scale jitter (random shortest edge), random crop, horizontal flip, then the processor's
rescale/normalize. `EvalTransform`: the processor's resize, then 1 center crop or m crops spread along the long side
(the paper's 3-crop test), for each of the temporal views. Both reuse `VivitImageProcessor`'s settings so training,
evaluation and `vivit predict` feed the model identically scaled pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

# The functional pieces, not `vivit.data.processing`: data-loading workers import this module and should not pay for
# importing transformers.
from vivit.data.frame_ops import center_offsets, crop, rescale_and_normalize, resize, shortest_edge_size

if TYPE_CHECKING:
    from vivit.data.processing import VivitImageProcessor


def _default_processor() -> VivitImageProcessor:
    from vivit.data.processing import VivitImageProcessor

    return VivitImageProcessor()


def parse_views(views: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """'4x3' (temporal clips x spatial crops) -> (4, 3)."""
    if isinstance(views, str):
        parts = views.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"views: expected 'NxM' (temporal clips x spatial crops, e.g. '4x3'), got {views!r}")
        views = (int(parts[0]), int(parts[1]))
    clips, crops = (int(v) for v in views)
    if clips < 1 or crops < 1:
        raise ValueError(f"views: both counts must be >= 1, got {clips}x{crops}")
    return clips, crops


def _as_frames(clip) -> torch.Tensor:
    """(..., T, H, W, C) uint8 array/tensor -> (..., T, C, H, W) tensor view."""
    tensor = clip if torch.is_tensor(clip) else torch.from_numpy(np.ascontiguousarray(clip))
    if tensor.dim() < 4 or tensor.shape[-1] not in (1, 3):
        raise ValueError(f"clip: expected (T, H, W, C) frames with 1 or 3 channels, got shape {tuple(tensor.shape)}")
    return tensor.movedim(-1, -3)


def _normalize(frames: torch.Tensor, processor: VivitImageProcessor) -> torch.Tensor:
    return rescale_and_normalize(
        frames,
        do_rescale=processor.do_rescale,
        rescale_factor=processor.rescale_factor,
        offset=processor.offset,
        do_normalize=processor.do_normalize,
        image_mean=processor.image_mean,
        image_std=processor.image_std,
    )


def _crop_hw(processor: VivitImageProcessor) -> tuple[int, int]:
    return processor.crop_size["height"], processor.crop_size["width"]


class TrainTransform:
    """Scale jitter -> random crop -> random horizontal flip -> rescale/normalize, the same for all frames of a clip.

    Args:
        processor: rescale/normalize settings and the crop size (defaults: HF's).
        scale_range: (min, max) shortest edge the clip is resized to, drawn uniformly per clip. The default is
            (crop, 1.25 * crop); `min` must be at least the crop's short side.
        flip_p: probability of a horizontal flip.
    """

    def __init__(
        self,
        processor: VivitImageProcessor | None = None,
        *,
        scale_range: tuple[int, int] | None = None,
        flip_p: float = 0.5,
    ):
        self.processor = processor if processor is not None else _default_processor()
        crop_h, crop_w = _crop_hw(self.processor)
        short = min(crop_h, crop_w)
        self.scale_range = tuple(scale_range) if scale_range is not None else (short, int(short * 1.25))
        low, high = self.scale_range
        if not short <= low <= high:
            raise ValueError(f"scale_range: expected crop size {short} <= min <= max, got {self.scale_range}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p: expected a probability in [0, 1], got {flip_p}")
        self.flip_p = flip_p

    def __call__(self, clip) -> torch.Tensor:
        frames = _as_frames(clip)
        crop_h, crop_w = _crop_hw(self.processor)
        low, high = self.scale_range
        edge = int(torch.randint(low, high + 1, ()).item())
        height, width = shortest_edge_size(*frames.shape[-2:], edge)
        frames = resize(frames, (height, width), self.processor.resample)
        top = int(torch.randint(0, max(height - crop_h, 0) + 1, ()).item())
        left = int(torch.randint(0, max(width - crop_w, 0) + 1, ()).item())
        frames = crop(frames, top, left, crop_h, crop_w)
        if torch.rand(()).item() < self.flip_p:
            frames = frames.flip(-1)
        return _normalize(frames, self.processor)


class EvalTransform:
    """Resize like the processor, then `num_crops` crops per clip: 1 = the processor's center crop; m > 1 = crops
    spread evenly along the long side (centred on the short side), e.g. left/center/right for 3.

    Input (T, H, W, C) -> (T, C, h, w) when `num_crops == 1`, else (num_crops, T, C, h, w);
    input (V, T, H, W, C) (temporal views) -> (V * num_crops, T, C, h, w), views in (clip, crop) order.
    """

    def __init__(self, processor: VivitImageProcessor | None = None, *, num_crops: int = 1):
        self.processor = processor if processor is not None else _default_processor()
        if num_crops < 1:
            raise ValueError(f"num_crops: expected >= 1, got {num_crops}")
        self.num_crops = num_crops

    def __call__(self, clips) -> torch.Tensor:
        frames = _as_frames(clips)
        single_clip = frames.dim() == 4
        frames = frames[None] if single_clip else frames
        if frames.dim() != 5:
            raise ValueError(
                f"clips: expected (T, H, W, C) or (V, T, H, W, C), got {tuple(frames.shape)} after moving C"
            )
        num_clips, num_frames = frames.shape[:2]
        flat = frames.reshape(num_clips * num_frames, *frames.shape[2:])
        proc = self.processor
        if proc.do_resize:
            flat = resize(flat, proc.output_size(*flat.shape[-2:]), proc.resample)
        crop_h, crop_w = _crop_hw(proc) if proc.do_center_crop else flat.shape[-2:]
        views = [crop(flat, top, left, crop_h, crop_w) for top, left in self._offsets(*flat.shape[-2:], crop_h, crop_w)]
        out = _normalize(torch.stack(views, dim=0), proc)  # (crops, clips * T, C, h, w)
        out = out.reshape(self.num_crops, num_clips, num_frames, *out.shape[-3:]).transpose(0, 1)
        out = out.reshape(num_clips * self.num_crops, num_frames, *out.shape[-3:])
        return out[0] if single_clip and self.num_crops == 1 else out

    def _offsets(self, height: int, width: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
        center_top, center_left = center_offsets(height, width, crop_h, crop_w)
        if self.num_crops == 1:
            return [(center_top, center_left)]
        if width >= height:
            lefts = np.round(np.linspace(0, max(width - crop_w, 0), self.num_crops)).astype(int)
            return [(center_top, int(left)) for left in lefts]
        tops = np.round(np.linspace(0, max(height - crop_h, 0), self.num_crops)).astype(int)
        return [(int(top), center_left) for top in tops]


__all__ = ["EvalTransform", "TrainTransform", "parse_views"]
