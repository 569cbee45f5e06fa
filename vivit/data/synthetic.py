"""The built-in synthetic video task: a shape moving in one direction; the class is (shape, direction).

A single frame shows the shape but not where it is going, so a model has to compare frames to get the class right:
this is what makes it a video task rather than an image task in disguise. Every clip is generated on the fly from
(seed, split, index), so the dataset needs no download, no disk and is identical on every machine and every rank.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

SHAPES = ("square", "plus", "ring", "diagonal")
DIRECTIONS = ("right", "left", "down", "up")
_STEP = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}  # (row, column) per unit of speed
_SPLITS = {"train": 0, "validation": 1, "test": 2}


def _shape_mask(name: str, size: int) -> np.ndarray:
    """A (size, size) boolean stencil."""
    r = np.arange(size)
    mid = size // 2
    if name == "square":
        return np.ones((size, size), dtype=bool)
    if name == "plus":
        m = np.zeros((size, size), dtype=bool)
        m[mid - 1 : mid + 2, :] = True
        m[:, mid - 1 : mid + 2] = True
        return m
    if name == "ring":
        m = np.ones((size, size), dtype=bool)
        m[2:-2, 2:-2] = False
        return m
    if name == "diagonal":
        return np.abs(r[:, None] - r[None, :]) <= 1
    raise ValueError(f"shape: expected one of {SHAPES}, got {name!r}")


class SyntheticMotion(Dataset):
    """Procedural clips of a coloured shape sliding across a noisy background.

    Args:
        num_samples: clips in the split.
        num_frames: frames per clip (per view).
        image_size: frame height and width.
        num_channels: 1 or 3.
        num_shapes / num_directions: the classes are the num_shapes x num_directions combinations, label =
            shape * num_directions + direction.
        object_size: side of the shape's square stencil in pixels.
        speeds: pixels per frame, one drawn per clip.
        noise: standard deviation of the per-pixel Gaussian noise (in [0, 1] units, before mapping to [-1, 1]).
        num_views: > 1 returns (num_views, F, C, H, W): temporally shifted windows of one longer clip, for
            multi-view evaluation; 1 returns (F, C, H, W).
        seed, split: clips are a pure function of (seed, split, index).

    Items are (pixel_values float32 in [-1, 1], label int), frames before channels like Hugging Face.
    """

    def __init__(
        self,
        num_samples: int = 2048,
        *,
        num_frames: int = 8,
        image_size: int = 32,
        num_channels: int = 3,
        num_shapes: int = 2,
        num_directions: int = 4,
        object_size: int = 7,
        speeds: tuple[int, ...] = (1, 2),
        noise: float = 0.05,
        num_views: int = 1,
        view_stride: int = 2,
        seed: int = 0,
        split: str = "train",
    ):
        if split not in _SPLITS:
            raise ValueError(f"split: expected one of {tuple(_SPLITS)}, got {split!r}")
        if not 1 <= num_shapes <= len(SHAPES):
            raise ValueError(f"num_shapes: expected 1..{len(SHAPES)}, got {num_shapes}")
        if not 1 <= num_directions <= len(DIRECTIONS):
            raise ValueError(f"num_directions: expected 1..{len(DIRECTIONS)}, got {num_directions}")
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels: expected 1 or 3, got {num_channels}")
        if num_samples < 1 or num_frames < 1 or num_views < 1 or view_stride < 1:
            raise ValueError(
                "num_samples, num_frames, num_views and view_stride must be >= 1, got "
                f"{num_samples}, {num_frames}, {num_views}, {view_stride}"
            )
        if not 1 <= object_size <= image_size:
            raise ValueError(f"object_size: expected 1..image_size ({image_size}), got {object_size}")
        self.length = num_frames + (num_views - 1) * view_stride  # frames rendered per clip
        self.num_samples = num_samples
        self.num_frames = num_frames
        self.image_size = image_size
        self.num_channels = num_channels
        self.num_shapes = num_shapes
        self.num_directions = num_directions
        self.object_size = object_size
        self.speeds = tuple(speeds)
        self.noise = noise
        self.num_views = num_views
        self.view_stride = view_stride
        self.seed = seed
        self.split = split
        self.masks = [_shape_mask(s, object_size) for s in SHAPES[:num_shapes]]

    @property
    def num_classes(self) -> int:
        return self.num_shapes * self.num_directions

    @property
    def class_names(self) -> list[str]:
        return [f"{s}-{d}" for s in SHAPES[: self.num_shapes] for d in DIRECTIONS[: self.num_directions]]

    def __len__(self) -> int:
        return self.num_samples

    def render(self, index: int) -> tuple[np.ndarray, int]:
        """The whole clip as (length, C, H, W) float32 in [0, 1], and its label."""
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        shape = int(rng.integers(self.num_shapes))
        direction = int(rng.integers(self.num_directions))
        speed = int(rng.choice(self.speeds))
        size, n, k = self.image_size, self.length, self.object_size
        dr, dc = (speed * s for s in _STEP[DIRECTIONS[direction]])
        # The shape moves on a torus (it leaves one edge and re-enters at the opposite one) from a uniform start:
        # every single frame then has the same distribution for all directions, so only motion tells them apart.
        stencil = np.zeros((size, size), dtype=bool)
        stencil[:k, :k] = self.masks[shape]
        stencil = np.roll(stencil, (int(rng.integers(size)), int(rng.integers(size))), axis=(0, 1))

        background = rng.uniform(0.0, 0.4, size=(self.num_channels, 1, 1))
        colour = rng.uniform(0.6, 1.0, size=(self.num_channels, 1, 1))
        clip = np.broadcast_to(background, (n, self.num_channels, size, size)).copy()
        for f in range(n):
            where = np.roll(stencil, (dr * f, dc * f), axis=(0, 1))
            clip[f][:, where] = np.broadcast_to(colour, clip[f].shape)[:, where]
        clip += rng.normal(0.0, self.noise, size=clip.shape)
        return np.clip(clip, 0.0, 1.0).astype(np.float32), shape * self.num_directions + direction

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index: expected 0 <= index < {self.num_samples}, got {index}")
        clip, label = self.render(index)
        pixels = torch.from_numpy(clip).mul_(2.0).sub_(1.0)  # [0, 1] -> [-1, 1], the range ViViT was trained on
        if self.num_views == 1:
            return pixels, label
        starts = [v * self.view_stride for v in range(self.num_views)]
        return torch.stack([pixels[s : s + self.num_frames] for s in starts]), label
