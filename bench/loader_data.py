"""Material for bench/bench_loader.py: a class folder of H.264 MP4 clips, and the trainer's own loader and step.

The clips are a smooth gradient with a moving square plus per-frame noise: without the noise H.264 compresses them to
almost nothing and decoding would be unrealistically cheap (the noise sets the bitrate, which the bench reports).
Encoding is slow (seconds per 720p clip), so a few distinct files are written and the rest of the folder are hard
links to them: every path is its own file to the reader (its frame-index cache is keyed by path), so each read pays
the full open + index + decode cost, as a real dataset's would. The files sit in the page cache: disk reads are not
in the figures.

Everything else is `vivit train`'s own code: `parse_args`, `build_config`, `build_datasets`, `setup_augment`,
`make_loader`, `build_model`, `build_optimizer`, `warmup_cosine`, `Mixup` and `train_one_epoch`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NOISE = 6  # +-grey levels of per-frame noise: ~3 Mbit/s at 720p and 25 fps, a typical web video's bitrate
FPS = 25


def clip_frames(seed: int, num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (T, H, W, 3): a drifting colour gradient, a square moving across it, and per-frame noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    t = np.arange(num_frames)[:, None, None]
    base = (x[None] * 255 // width + y[None] * 128 // height + t * 4 + seed * 37) % 256
    frames = np.stack([base, 255 - base, (base + 85) % 256], axis=-1).astype(np.int16)
    side = max(height // 4, 2)
    for i in range(num_frames):
        top = (i * max(height // 16, 1)) % (height - side)
        left = (i * max(width // 16, 1)) % (width - side)
        frames[i, top : top + side, left : left + side] = (200, 60, 30)
    noise = rng.integers(-NOISE, NOISE + 1, frames.shape[:3], dtype=np.int16)[..., None]
    return np.clip(frames + noise, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ClipFolder:
    root: Path
    clips: int  # files in the folder (hard links included)
    distinct: int  # files actually encoded
    height: int
    width: int
    frames: int
    bytes_per_frame: float  # mean encoded size of the distinct files

    @property
    def megabits_per_s(self) -> float:
        return self.bytes_per_frame * 8 * FPS / 1e6

    def label(self) -> str:
        return (
            f"{self.clips} clips of {self.frames}x{self.height}x{self.width} H.264 "
            f"({self.distinct} distinct, {self.megabits_per_s:.2g} Mbit/s at {FPS} fps)"
        )


def write_class_folder(
    root: Path, *, classes: int, per_class: int, distinct: int, frames: int, height: int, width: int
) -> ClipFolder:
    """ROOT/class_<k>/clip_<i>.mp4: `distinct` encoded clips (in ROOT-sources/), hard-linked round-robin into every
    class folder."""
    from vivit.data.io import write_video

    source_dir = root.with_name(root.name + "-sources")
    source_dir.mkdir(parents=True, exist_ok=True)
    sources = []
    for d in range(distinct):
        sources.append(source_dir / f"source_{d}.mp4")
        write_video(sources[-1], clip_frames(d, frames, height, width), fps=FPS)
    for k in range(classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            os.link(sources[(k * per_class + i) % distinct], folder / f"clip_{i}.mp4")
    size = sum(p.stat().st_size for p in sources) / (distinct * frames)
    return ClipFolder(root, classes * per_class, distinct, height, width, frames, size)


# ---------------------------------------------------------------------------------------------------------------------
# the trainer's pieces


def train_args(data: Path | str, *, recipe: str, workers: int, batch_size: int, output_dir: Path):
    from vivit.training.train import parse_args

    argv = ["--data", str(data), "--augment", recipe, "--workers", str(workers), "--batch-size", str(batch_size)]
    return parse_args(argv + ["--output-dir", str(output_dir), "--no-progress"])


def train_loader(args):
    """(loader, per-batch flip or None, number of classes), built as `vivit train` builds them."""
    from vivit.training.train import build_config, build_datasets, make_loader, setup_augment

    shape = build_config(args, 2).to_dict()
    train_set, _, class_names = build_datasets(args, shape)
    train_set, batch_augment, flip = setup_augment(args, train_set, class_names)
    if batch_augment is not None:  # only the synthetic task augments per batch; a video folder never does
        raise AssertionError(f"--augment {args.augment}: expected no per-batch augmentation for video files")
    loader = make_loader(
        train_set, batch_size=args.batch_size, train=True, seed=args.seed, workers=args.workers, rank=0, world=1
    )
    return loader, flip, len(class_names)


class _Epochless:
    def set_epoch(self, epoch: int) -> None:
        pass


class MemoryLoader:
    """Ready batches behind the loader interface `train_one_epoch` uses: the step's cost without any data loading."""

    def __init__(self, batches: list):
        self.batches, self.sampler, self.generator = batches, _Epochless(), None

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class Trainer:
    """The default model, optimizer, schedule and mixup of `vivit train`, and one call = one `train_one_epoch`."""

    def __init__(self, args, num_labels: int, steps: int, flip=None):
        from vivit.training.mixup import Mixup
        from vivit.training.optim import build_optimizer
        from vivit.training.train import build_model, warmup_cosine

        torch.manual_seed(args.seed)
        self.args, self.flip = args, flip
        self.model = build_model(args, num_labels)
        self.optimizer = build_optimizer(self.model, args.lr, args.weight_decay, layer_decay=args.layer_decay)
        # a long schedule: the timed epochs sit in its warm-up, at learning rates the real run also uses
        self.scheduler = warmup_cosine(
            self.optimizer, total_steps=1000 * steps, warmup_steps=100 * steps, lr=args.lr, min_lr=args.min_lr
        )
        self.mixup = Mixup(
            num_labels,
            mixup_alpha=args.mixup,
            cutmix_alpha=args.cutmix,
            prob=args.mixup_prob,
            label_smoothing=args.label_smoothing,
        )
        self.epoch = 0

    def epoch_over(self, loader) -> int:
        """One `train_one_epoch` over `loader`; returns the optimizer steps taken."""
        from vivit.training.train import train_one_epoch

        _, steps = train_one_epoch(
            self.model,
            loader,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            mixup=self.mixup,
            ema=None,
            args=self.args,
            device=torch.device("cpu"),
            amp_dtype=None,
            epoch=self.epoch,
            progress=False,
            flip=self.flip,
        )
        self.epoch += 1
        return steps

    def step_flops(self, pixel_values: torch.Tensor) -> float:
        """FLOPs of one forward + backward on `pixel_values` (torch.utils.flop_counter), on a copy of the model."""
        import copy

        from torch.utils.flop_counter import FlopCounterMode

        model = copy.deepcopy(self.model)
        with FlopCounterMode(display=False) as counter:
            model(pixel_values=pixel_values).logits.sum().backward()
        return float(counter.get_total_flops())
