"""Clip augmentations for fine-tuning, written in plain torch (torchvision's transforms are not a dependency). Every
random draw is made once per clip, so all frames of a clip get the same crop, the same operations with the same
magnitudes and the same erased box: the motion between frames is left as it was.

Clips are (T, C, H, W) tensors; the colour and geometry operations take floats in [0, 1] or uint8 in [0, 255] and
return the same dtype, shape and range.

- `RandomResizedCrop`: a box of random area (`scale`, fraction of the frame) and aspect ratio (`ratio`), resized to
  the output size.
- `RandAugment`: `num_ops` operations drawn per clip (with replacement) from `RAND_AUGMENT_OPS`, each applied with
  probability 0.5 at magnitude `magnitude` (0..10) plus Gaussian noise of std `magnitude_std`, solarize and posterize
  growing stronger with the magnitude (timm's `rand-mM-nN-mstd0.5-inc1`).
- `RandomErasing`: with probability `p`, one box (area fraction in `scale`, log-uniform aspect ratio in `ratio`)
  filled with per-pixel Gaussian noise; meant for normalized clips.
- `HorizontalFlip`: a batch-level flip with an optional label map (a flipped clip of a left/right class becomes the
  mirrored class).
- `VideoMAETrainTransform`: RandomResizedCrop -> RandAugment -> rescale/normalize -> RandomErasing, the drop-in for
  `TrainTransform` that `--augment videomae` uses (the flip is applied per batch, see `HorizontalFlip`);
  `UnitRangeAugment` is the same recipe applied per batch to clips that are already model input (synthetic task).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from vivit.data.transforms import _as_frames, _crop_hw, _default_processor, _normalize

# The recipe values of VideoMAE's fine-tuning (MCG-NJU/VideoMAE, run_class_finetuning.py defaults: --aa
# rand-m7-n4-mstd0.5-inc1, --reprob 0.25 (remode pixel, recount 1), --layer_decay 0.75; kinetics.py: training crops
# with scale (0.08, 1.0) and aspect ratio (0.75, 1.3333), then a horizontal flip).
VIDEOMAE_RRC_SCALE = (0.08, 1.0)
VIDEOMAE_RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
VIDEOMAE_RAND_AUGMENT = dict(num_ops=4, magnitude=7, magnitude_std=0.5)
VIDEOMAE_ERASE_P = 0.25

_MAX_LEVEL = 10.0
_FILL = 0.5  # the grey that geometric operations bring in at the borders (timm fills with the image mean)


# ---------------------------------------------------------------------------------------------------------------------
# dtype handling


def _to_unit(clip: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    if clip.dtype == torch.uint8:
        return clip.float() / 255.0, torch.uint8
    if not clip.is_floating_point():
        raise ValueError(f"clip: expected uint8 or a float dtype, got {clip.dtype}")
    return clip, clip.dtype


def _from_unit(clip: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    clip = clip.clamp(0.0, 1.0)
    if dtype == torch.uint8:
        return clip.mul(255.0).round().to(torch.uint8)
    return clip.to(dtype)


def _check_clip(clip: torch.Tensor) -> None:
    if clip.dim() != 4 or clip.shape[1] not in (1, 3):
        raise ValueError(f"clip: expected (T, C, H, W) with C 1 or 3, got shape {tuple(clip.shape)}")


def _grey(clip: torch.Tensor) -> torch.Tensor:
    """(T, 1, H, W) luma (ITU-R 601), the weights PIL and torchvision use."""
    if clip.shape[1] == 1:
        return clip
    r, g, b = clip.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """b + factor * (a - b): factor 1 gives a, 0 gives b (PIL's ImageEnhance convention)."""
    return (b + factor * (a - b)).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------------
# operations on a [0, 1] float clip (T, C, H, W), one parameter each


def autocontrast(clip: torch.Tensor) -> torch.Tensor:
    """Stretch each channel to [0, 1] with the clip's own min and max (over all frames)."""
    low = clip.amin(dim=(0, 2, 3), keepdim=True)
    high = clip.amax(dim=(0, 2, 3), keepdim=True)
    scale = torch.where(high > low, 1.0 / (high - low).clamp_min(1e-12), torch.ones_like(high))
    low = torch.where(high > low, low, torch.zeros_like(low))
    return ((clip - low) * scale).clamp(0.0, 1.0)


def equalize(clip: torch.Tensor) -> torch.Tensor:
    """Histogram equalization of each channel over the whole clip (256 levels, PIL's mapping)."""
    levels = clip.mul(255.0).round().long()
    out = torch.empty_like(clip)
    for c in range(clip.shape[1]):
        values = levels[:, c].flatten()
        hist = torch.bincount(values, minlength=256)
        nonzero = hist[hist > 0]
        step = (nonzero.sum() - nonzero[-1]) // 255 if len(nonzero) else 0
        if step == 0:
            out[:, c] = clip[:, c]
            continue
        lut = ((torch.cumsum(hist, 0) + step // 2) // step).roll(1)
        lut[0] = 0
        out[:, c] = lut.clamp(0, 255)[levels[:, c]].float() / 255.0
    return out


def solarize(clip: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert the pixels at or above `threshold` (in [0, 1])."""
    return torch.where(clip >= threshold, 1.0 - clip, clip)


def posterize(clip: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the `bits` most significant bits of each 8-bit value."""
    mask = (0xFF << (8 - bits)) & 0xFF
    return (clip.mul(255.0).round().to(torch.uint8) & mask).float() / 255.0


def color(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """Saturation: blend with the grey clip (0: grey, 1: unchanged)."""
    return _blend(clip, _grey(clip).expand_as(clip), factor)


def contrast(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the clip's mean grey level (0: flat grey, 1: unchanged)."""
    return _blend(clip, _grey(clip).mean().expand_as(clip), factor)


def brightness(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with black (0: black, 1: unchanged)."""
    return _blend(clip, torch.zeros_like(clip), factor)


def sharpness(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with PIL's SMOOTH-filtered clip (3x3, centre weight 5 of 13), border pixels left as they are."""
    channels = clip.shape[1]
    kernel = torch.ones(3, 3, dtype=clip.dtype, device=clip.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    smooth = clip.clone()
    if clip.shape[-1] > 2 and clip.shape[-2] > 2:
        smooth[..., 1:-1, 1:-1] = F.conv2d(clip, kernel, groups=channels)
    return _blend(clip, smooth, factor)


def affine(clip: torch.Tensor, matrix: Sequence[Sequence[float]]) -> torch.Tensor:
    """Resample every frame through the 2x3 `matrix` mapping output pixel coordinates (centred, in pixels) to input
    coordinates; bilinear, the border filled with grey."""
    height, width = clip.shape[-2:]
    (a, b, tx), (c, d, ty) = matrix
    # pixels -> the [-1, 1] coordinates of affine_grid (align_corners=False)
    theta = torch.tensor(
        [[a, b * height / width, 2.0 * tx / width], [c * width / height, d, 2.0 * ty / height]],
        dtype=clip.dtype,
        device=clip.device,
    )
    grid = F.affine_grid(theta.expand(clip.shape[0], 2, 3), list(clip.shape), align_corners=False)
    out = F.grid_sample(clip - _FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + _FILL).clamp(0.0, 1.0)


def rotate(clip: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre by `degrees` (counter-clockwise on screen)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    return affine(clip, [[cos, -sin, 0.0], [sin, cos, 0.0]])


def shear_x(clip: torch.Tensor, shear: float) -> torch.Tensor:
    return affine(clip, [[1.0, shear, 0.0], [0.0, 1.0, 0.0]])


def shear_y(clip: torch.Tensor, shear: float) -> torch.Tensor:
    return affine(clip, [[1.0, 0.0, 0.0], [shear, 1.0, 0.0]])


def translate_x(clip: torch.Tensor, pixels: float) -> torch.Tensor:
    return affine(clip, [[1.0, 0.0, -pixels], [0.0, 1.0, 0.0]])


def translate_y(clip: torch.Tensor, pixels: float) -> torch.Tensor:
    return affine(clip, [[1.0, 0.0, 0.0], [0.0, 1.0, -pixels]])


# ---------------------------------------------------------------------------------------------------------------------
# RandAugment


def _signed(value: float, generator: torch.Generator | None) -> float:
    return -value if torch.rand((), generator=generator).item() < 0.5 else value


def _enhance_factor(level: float, generator) -> float:
    return 1.0 + _signed(level * 0.9, generator)


# name -> f(clip, level in [0, 1], generator); the magnitudes follow timm's RandAugment ("inc1": solarize and
# posterize grow stronger with the level)
RAND_AUGMENT_OPS = {
    "identity": lambda x, level, g: x,
    "autocontrast": lambda x, level, g: autocontrast(x),
    "equalize": lambda x, level, g: equalize(x),
    "rotate": lambda x, level, g: rotate(x, _signed(30.0 * level, g)),
    "solarize": lambda x, level, g: solarize(x, 1.0 - level),
    "color": lambda x, level, g: color(x, _enhance_factor(level, g)),
    "posterize": lambda x, level, g: posterize(x, 8 - int(4 * level)),
    "contrast": lambda x, level, g: contrast(x, _enhance_factor(level, g)),
    "brightness": lambda x, level, g: brightness(x, _enhance_factor(level, g)),
    "sharpness": lambda x, level, g: sharpness(x, _enhance_factor(level, g)),
    "shear_x": lambda x, level, g: shear_x(x, _signed(0.3 * level, g)),
    "shear_y": lambda x, level, g: shear_y(x, _signed(0.3 * level, g)),
    "translate_x": lambda x, level, g: translate_x(x, _signed(0.45 * level * x.shape[-1], g)),
    "translate_y": lambda x, level, g: translate_y(x, _signed(0.45 * level * x.shape[-2], g)),
}


class RandAugment:
    """`num_ops` operations per clip from `ops` (default: all of RAND_AUGMENT_OPS), each applied with probability
    `prob` at magnitude `magnitude` in [0, 10] (plus N(0, magnitude_std) noise per operation, clipped to [0, 10])."""

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 9.0,
        *,
        magnitude_std: float = 0.0,
        prob: float = 0.5,
        ops: Sequence[str] | None = None,
    ):
        if num_ops < 0:
            raise ValueError(f"num_ops: expected >= 0, got {num_ops}")
        if not 0.0 <= magnitude <= _MAX_LEVEL:
            raise ValueError(f"magnitude: expected a number in [0, {_MAX_LEVEL:g}], got {magnitude}")
        if magnitude_std < 0:
            raise ValueError(f"magnitude_std: expected >= 0, got {magnitude_std}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob: expected a probability in [0, 1], got {prob}")
        ops = list(RAND_AUGMENT_OPS) if ops is None else list(ops)
        unknown = [name for name in ops if name not in RAND_AUGMENT_OPS]
        if unknown or not ops:
            raise ValueError(f"ops: expected names from {', '.join(RAND_AUGMENT_OPS)}, got {ops}")
        self.num_ops, self.magnitude, self.magnitude_std, self.prob, self.ops = (
            num_ops,
            magnitude,
            magnitude_std,
            prob,
            ops,
        )

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_clip(clip)
        x, dtype = _to_unit(clip)
        for _ in range(self.num_ops):
            name = self.ops[int(torch.randint(len(self.ops), (), generator=generator).item())]
            if torch.rand((), generator=generator).item() >= self.prob:
                continue
            level = self.magnitude
            if self.magnitude_std > 0:
                level += self.magnitude_std * torch.randn((), generator=generator).item()
            level = min(max(level, 0.0), _MAX_LEVEL) / _MAX_LEVEL
            x = RAND_AUGMENT_OPS[name](x, level, generator)
        return _from_unit(x, dtype)


# ---------------------------------------------------------------------------------------------------------------------
# crop and erase


class RandomResizedCrop:
    """A box of area fraction in `scale` and aspect ratio (w / h, log-uniform) in `ratio`, resized to `size`
    (bilinear, antialiased); after 10 failed draws, the central box of the nearest allowed ratio (torchvision's rule).
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = VIDEOMAE_RRC_SCALE,
        ratio: tuple[float, float] = VIDEOMAE_RRC_RATIO,
    ):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale: expected 0 < min <= max <= 1, got {tuple(scale)}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio: expected 0 < min <= max, got {tuple(ratio)}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def box(self, height: int, width: int, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
        """(top, left, box height, box width)."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * torch.empty(()).uniform_(*self.scale, generator=generator).item()
            aspect = math.exp(torch.empty(()).uniform_(*log_ratio, generator=generator).item())
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (), generator=generator).item())
                left = int(torch.randint(0, width - w + 1, (), generator=generator).item())
                return top, left, h, w
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_clip(clip)
        top, left, h, w = self.box(*clip.shape[-2:], generator)
        x, dtype = _to_unit(clip[..., top : top + h, left : left + w])
        x = F.interpolate(x.float(), size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return _from_unit(x, dtype)


class RandomErasing:
    """With probability `p`, one box per clip (area fraction in `scale`, log-uniform aspect ratio in `ratio`) replaced
    by N(0, 1) noise in every frame: the "pixel" mode of timm, on normalized clips. VideoMAE draws a box per frame;
    one box for the whole clip keeps an occluder where it is, as in a real video."""

    def __init__(
        self, p: float = VIDEOMAE_ERASE_P, *, scale: tuple[float, float] = (0.02, 1 / 3), ratio=(0.3, 1 / 0.3)
    ):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale: expected 0 < min <= max <= 1, got {tuple(scale)}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio: expected 0 < min <= max, got {tuple(ratio)}")
        self.p, self.scale, self.ratio = p, tuple(scale), tuple(ratio)

    def box(
        self, height: int, width: int, generator: torch.Generator | None = None
    ) -> tuple[int, int, int, int] | None:
        """(top, left, h, w) with h * w / (height * width) in `scale`, or None after 10 draws that do not fit."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * torch.empty(()).uniform_(*self.scale, generator=generator).item()
            aspect = math.exp(torch.empty(()).uniform_(*log_ratio, generator=generator).item())
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            fraction = h * w / area
            if 0 < h <= height and 0 < w <= width and self.scale[0] <= fraction <= self.scale[1]:
                top = int(torch.randint(0, height - h + 1, (), generator=generator).item())
                left = int(torch.randint(0, width - w + 1, (), generator=generator).item())
                return top, left, h, w
        return None

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_clip(clip)
        if not clip.is_floating_point():
            raise ValueError(f"clip: expected a normalized float clip, got {clip.dtype}")
        if torch.rand((), generator=generator).item() >= self.p:
            return clip
        found = self.box(*clip.shape[-2:], generator)
        if found is None:
            return clip
        top, left, h, w = found
        out = clip.clone()
        noise = torch.randn((clip.shape[0], clip.shape[1], h, w), generator=generator, dtype=torch.float32)
        out[..., top : top + h, left : left + w] = noise.to(clip.dtype)
        return out


# ---------------------------------------------------------------------------------------------------------------------
# flip with a label map


def load_flip_label_map(path: str | Path, class_names: Sequence[str], option: str = "--flip-label-map") -> list[int]:
    """The label each class takes when its clip is flipped, from a JSON object {"class a": "class b", ...} (class
    names, or indices as numbers or digit strings). The map is made symmetric (b -> a is implied); classes not named
    keep their label. Errors are one line naming `option`, the file, what was expected and what was found."""
    where = f"{option} {path}"
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{where}: expected a readable JSON file, got {type(e).__name__}: {e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: expected JSON, got a syntax error at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f'{where}: expected a JSON object {{"class": "mirrored class", ...}}, got {type(data).__name__}'
        )
    index = {name: i for i, name in enumerate(class_names)}

    def resolve(value) -> int:
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a class name or index, got {value!r}")
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit() and value not in index):
            number = int(value)
            if not 0 <= number < len(class_names):
                raise ValueError(f"{where}: expected a class index in [0, {len(class_names) - 1}], got {value!r}")
            return number
        if isinstance(value, str) and value in index:
            return index[value]
        shown = ", ".join(class_names[:8]) + (", ..." if len(class_names) > 8 else "")
        raise ValueError(f"{where}: expected a class name ({shown}) or index, got {value!r}")

    mirror = list(range(len(class_names)))
    named: dict[int, int] = {}
    for key, value in data.items():
        a, b = resolve(key), resolve(value)
        for src, dst in ((a, b), (b, a)):
            if named.get(src, dst) != dst:
                raise ValueError(
                    f"{where}: expected a symmetric map, got {class_names[src]!r} -> {class_names[named[src]]!r} "
                    f"and -> {class_names[dst]!r}"
                )
            named[src] = dst
    for src, dst in named.items():
        mirror[src] = dst
    return mirror


class HorizontalFlip:
    """Flip each clip of a batch (B, ..., W) with probability `p`; with `label_map` (class -> mirrored class, see
    `load_flip_label_map`) a flipped clip's label becomes its mirror. Draws come from `generator` (seeded by the
    trainer per epoch, so a resumed run flips the same clips)."""

    def __init__(self, p: float = 0.5, label_map: Sequence[int] | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        self.p = p
        self.label_map = None if label_map is None else torch.as_tensor(list(label_map), dtype=torch.long)
        self.generator = torch.Generator()

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flip = torch.rand(clips.shape[0], generator=self.generator) < self.p
        if not flip.any():
            return clips, labels
        flip = flip.to(clips.device)
        shape = (clips.shape[0],) + (1,) * (clips.dim() - 1)
        clips = torch.where(flip.view(shape), clips.flip(-1), clips)
        if self.label_map is not None:
            labels = torch.where(flip, self.label_map.to(labels.device)[labels], labels)
        return clips, labels


# ---------------------------------------------------------------------------------------------------------------------
# the videomae recipe


class VideoMAETrainTransform:
    """uint8 (T, H, W, C) clip -> float32 (T, C, h, w): RandomResizedCrop -> RandAugment(n=4, m=7, mstd 0.5) ->
    rescale/normalize (the processor's) -> RandomErasing(0.25). The flip is applied per batch by the trainer."""

    def __init__(self, processor=None):
        self.processor = processor if processor is not None else _default_processor()
        self.crop = RandomResizedCrop(_crop_hw(self.processor))
        self.rand_augment = RandAugment(**VIDEOMAE_RAND_AUGMENT)
        self.erase = RandomErasing(VIDEOMAE_ERASE_P)

    def __call__(self, clip) -> torch.Tensor:
        frames = _as_frames(clip)
        if frames.dim() != 4:
            raise ValueError(f"clip: expected one (T, H, W, C) clip, got shape {tuple(clip.shape)}")
        frames = self.rand_augment(self.crop(frames.contiguous()))
        return self.erase(_normalize(frames, self.processor))


class UnitRangeAugment:
    """The videomae recipe for batches that are already float model input in [low, high] (the synthetic task's
    [-1, 1]), applied in the training step: each clip mapped to [0, 1], RandomResizedCrop (to the same size) and
    RandAugment, mapped back, RandomErasing. Draws come from `generator` (seeded by the trainer per epoch and rank,
    so a resumed run draws the same), not from data-loading workers."""

    def __init__(self, low: float = -1.0, high: float = 1.0):
        self.low, self.high = low, high
        self.rand_augment = RandAugment(**VIDEOMAE_RAND_AUGMENT)
        self.erase = RandomErasing(VIDEOMAE_ERASE_P)
        self.generator = torch.Generator()

    def augment_clip(self, clip: torch.Tensor) -> torch.Tensor:
        g = self.generator
        unit = (clip.float().cpu() - self.low) / (self.high - self.low)
        unit = RandomResizedCrop(tuple(clip.shape[-2:]))(unit, g)
        unit = self.rand_augment(unit, g)
        return self.erase(unit * (self.high - self.low) + self.low, g).to(clip.device, clip.dtype)

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> the same shape, each clip augmented on its own."""
        return torch.stack([self.augment_clip(clip) for clip in clips])


AUGMENT_RECIPES = ("light", "videomae")


def configure_train_set(dataset, recipe: str, *, keep_own_flip: bool = True):
    """(training set, batch augmentation or None) for `recipe`: `light` keeps the dataset's own transform; `videomae`
    replaces a video dataset's transform with VideoMAETrainTransform (which does not flip), and for a dataset of ready
    float clips without a transform (the synthetic task) returns a UnitRangeAugment for the training step. Without
    `keep_own_flip` the dataset's own flip is turned off (no flip, or the trainer flips per batch instead)."""
    if recipe not in AUGMENT_RECIPES:
        raise ValueError(f"--augment: expected one of {', '.join(AUGMENT_RECIPES)}, got {recipe!r}")
    transform = getattr(dataset, "transform", None)
    if recipe == "videomae":
        if transform is None:
            return dataset, UnitRangeAugment()
        dataset.transform = VideoMAETrainTransform(dataset.processor)
        return dataset, None
    if not keep_own_flip and transform is not None and hasattr(transform, "flip_p"):
        transform.flip_p = 0.0
    return dataset, None


def has_own_flip(dataset) -> bool:
    """Whether the dataset's transform flips clips itself (the video folders' TrainTransform)."""
    return getattr(getattr(dataset, "transform", None), "flip_p", 0.0) > 0.0


__all__ = [
    "AUGMENT_RECIPES",
    "RAND_AUGMENT_OPS",
    "HorizontalFlip",
    "RandAugment",
    "RandomErasing",
    "RandomResizedCrop",
    "UnitRangeAugment",
    "VideoMAETrainTransform",
    "configure_train_set",
    "has_own_flip",
    "load_flip_label_map",
]
