"""Video classification datasets: `VideoFolder` (one sub-folder per class) and `VideoCSV` (annotation lists).

Both return `(pixel_values, label)`: float32 (T, C, H, W) for training and single-view evaluation, or
(V, T, C, H, W) for multi-view evaluation (V = temporal clips x spatial crops, clip-major), so a DataLoader batch is
(B, T, C, H, W) or (B, V, T, C, H, W) - what `vivit.evaluate.evaluate` takes. Decoding happens in `__getitem__`,
so `DataLoader(num_workers>0)` parallelizes it; a file that cannot be decoded raises `VideoReadError` naming it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from vivit.io import VideoReadError, read_clips, read_video
from vivit.transforms import EvalTransform, TrainTransform, parse_views

if TYPE_CHECKING:  # the processor module imports transformers; decoding does not need it
    from vivit.processing import VivitImageProcessor

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".wmv", ".nut")


@dataclass(frozen=True)
class VideoSample:
    path: str
    label: int
    start_sec: float | None = None
    end_sec: float | None = None


class VideoDataset(Dataset):
    """Decodes and transforms `samples`; the base of `VideoFolder` and `VideoCSV`.

    Args:
        samples: the videos with their class index and optional [start_sec, end_sec) segment.
        classes: class names, index = label.
        num_frames, stride, sampling, short_clip: temporal sampling (see `vivit.io`); ViViT-B/16x2:
            32 frames at stride 2.
        train: random clip position + `TrainTransform` (scale jitter, random crop, flip); otherwise the evaluation
            views with `EvalTransform`.
        views: evaluation views "NxM" or (N, M): N temporal clips x M spatial crops ("1x1": one center clip).
        processor: resize/crop/normalize settings (default: HF's `VivitImageProcessor`).
        image_size: instead of a processor: HF's settings with a crop of this size (resize to 256/224 of it).
        transform: replaces the default train/eval transform; gets the uint8 (T, H, W, C) clip, or the
            (N, T, H, W, C) clips when N > 1.
    """

    def __init__(
        self,
        samples: Sequence[VideoSample],
        classes: Sequence[str],
        *,
        num_frames: int = 32,
        stride: int = 2,
        sampling: str = "strided",
        short_clip: str = "loop",
        train: bool = False,
        views: str | tuple[int, int] = "1x1",
        processor: VivitImageProcessor | None = None,
        image_size: int | None = None,
        transform: Callable | None = None,
    ):
        self.samples = list(samples)
        self.classes = list(classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.num_frames, self.stride, self.sampling, self.short_clip = num_frames, stride, sampling, short_clip
        self.train = train
        self.num_clips, self.num_crops = parse_views(views)
        if train and (self.num_clips, self.num_crops) != (1, 1):
            raise ValueError(f"views: training samples one random clip, got views {views!r} with train=True")
        if processor is not None and image_size is not None:
            raise ValueError("image_size: give either a processor or an image_size, not both")
        if processor is None:
            # HF's 256 -> 224 resize/crop ratio, scaled to the requested crop.
            processor = _processor_for(image_size)
        self.processor = processor
        if transform is None:
            transform = (
                TrainTransform(self.processor) if train else EvalTransform(self.processor, num_crops=self.num_crops)
            )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [s.label for s in self.samples]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        try:
            if self.num_clips == 1:
                # Random draws come from torch's RNG, which DataLoader seeds differently in every worker.
                generator = np.random.default_rng(int(torch.randint(0, 2**62, ()).item())) if self.train else None
                clips = read_video(
                    sample.path,
                    self.num_frames,
                    stride=self.stride,
                    sampling=self.sampling,
                    random_offset=self.train,
                    short_clip=self.short_clip,
                    start_sec=sample.start_sec,
                    end_sec=sample.end_sec,
                    generator=generator,
                )
            else:
                clips = read_clips(
                    sample.path,
                    self.num_frames,
                    self.num_clips,
                    stride=self.stride,
                    sampling=self.sampling,
                    short_clip=self.short_clip,
                    start_sec=sample.start_sec,
                    end_sec=sample.end_sec,
                )
            return self.transform(clips), sample.label
        except VideoReadError:
            raise
        except Exception as e:  # name the file whatever went wrong inside decoding or the transform
            raise VideoReadError(sample.path, f"failed to load sample {index} ({type(e).__name__}: {e})") from e


def _processor_for(image_size: int | None) -> VivitImageProcessor:
    from vivit.processing import VivitImageProcessor

    if image_size is None:
        return VivitImageProcessor()
    if image_size < 1:
        raise ValueError(f"image_size: expected >= 1, got {image_size}")
    return VivitImageProcessor(size={"shortest_edge": round(image_size * 256 / 224)}, crop_size=image_size)


def _resolve_classes(names: Sequence[str], class_to_idx: Mapping[str, int] | None, where: str) -> dict[str, int]:
    if class_to_idx is None:
        return {name: i for i, name in enumerate(sorted(set(names)))}
    missing = sorted(set(names) - set(class_to_idx))
    if missing:
        raise ValueError(
            f"{where}: class(es) {missing[:5]} are not in class_to_idx (known: {sorted(class_to_idx)[:10]})"
        )
    return {str(k): int(v) for k, v in class_to_idx.items()}


def _classes_list(class_to_idx: Mapping[str, int]) -> list[str]:
    size = max(class_to_idx.values()) + 1 if class_to_idx else 0
    names = [str(i) for i in range(size)]
    for name, i in class_to_idx.items():
        names[i] = name
    return names


class VideoFolder(VideoDataset):
    """`root/<class>/**/<video>` (the UCF101 / torchvision ImageFolder layout), or `root/<split>/<class>/...` with
    `split`. Classes are the sorted sub-folder names, or the given `class_to_idx` (e.g. a model's
    `config.label2id`). Other arguments: see `VideoDataset`."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        split: str | None = None,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
        class_to_idx: Mapping[str, int] | None = None,
        **kwargs,
    ):
        root = os.fspath(root) if split is None else os.path.join(os.fspath(root), split)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"root: {root} is not a directory")
        folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        if not folders:
            raise ValueError(f"root: {root} has no class sub-folders (expected root/<class>/<video files>)")
        mapping = _resolve_classes(folders, class_to_idx, f"VideoFolder({root})")
        extensions = tuple(e.lower() for e in extensions)
        samples = []
        for name in folders:
            for dirpath, dirnames, filenames in os.walk(os.path.join(root, name), followlinks=True):
                dirnames.sort()
                for filename in sorted(filenames):
                    if filename.lower().endswith(extensions):
                        samples.append(VideoSample(os.path.join(dirpath, filename), mapping[name]))
        if not samples:
            raise ValueError(f"root: no video files with extensions {extensions} under {root}")
        self.root = root
        super().__init__(samples, _classes_list(mapping), **kwargs)
        self.class_to_idx = mapping


# Column names accepted in a CSV header (first match wins).
_PATH_COLUMNS = ("path", "video", "filename", "file", "video_path")
_LABEL_COLUMNS = ("label", "class", "label_id", "target")
_START_COLUMNS = ("start", "start_sec", "time_start")
_END_COLUMNS = ("end", "end_sec", "time_end")


class VideoCSV(VideoDataset):
    """An annotation list: one video per line, `path label [start_sec end_sec]`.

    Comma-separated with a header naming the columns (path/video/filename, label/class, optional start/time_start
    and end/time_end, other columns ignored: the layout of Kinetics' CSVs once a path column is added), or a
    headerless list separated by commas or whitespace (the UCF101 / Something-Something / mmaction list files).
    Relative paths are joined to `root` (default: the list's folder). Integer labels are used as class indices;
    text labels are mapped through `class_to_idx` (e.g. a model's `config.label2id`) or sorted.
    """

    def __init__(
        self,
        file: str | os.PathLike,
        root: str | os.PathLike | None = None,
        *,
        class_to_idx: Mapping[str, int] | None = None,
        **kwargs,
    ):
        file = os.fspath(file)
        if not os.path.isfile(file):
            raise FileNotFoundError(f"file: annotation list {file} does not exist")
        root = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(file))
        rows = self._read_rows(file)
        labels = [row[1] for row in rows]
        if all(_is_int(label) for label in labels):
            indices = [int(label) for label in labels]
            if min(indices) < 0:
                raise ValueError(f"{file}: labels must be >= 0, got {min(indices)}")
            mapping = dict(class_to_idx) if class_to_idx else {str(i): i for i in range(max(indices) + 1)}
        else:
            mapping = _resolve_classes(labels, class_to_idx, file)
            indices = [mapping[label] for label in labels]
        samples = [
            VideoSample(os.path.join(root, path), index, start, end)
            for (path, _, start, end), index in zip(rows, indices)
        ]
        self.file, self.root = file, root
        super().__init__(samples, _classes_list(mapping), **kwargs)
        self.class_to_idx = mapping

    @staticmethod
    def _read_rows(file: str) -> list[tuple[str, str, float | None, float | None]]:
        with open(file, encoding="utf-8", newline="") as f:
            lines = [line for line in f.read().splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if not lines:
            raise ValueError(f"{file}: the annotation list is empty")
        if "," in lines[0]:
            table = [[cell.strip() for cell in row] for row in csv.reader(lines)]
        else:
            table = [line.split() for line in lines]
        header = [cell.lower() for cell in table[0]]
        pick = lambda names: next((header.index(n) for n in names if n in header), None)
        path_col, label_col = pick(_PATH_COLUMNS), pick(_LABEL_COLUMNS)
        if path_col is not None or label_col is not None:
            if path_col is None or label_col is None:
                raise ValueError(
                    f"{file}: the header {table[0]} needs a path column {_PATH_COLUMNS} and a label column "
                    f"{_LABEL_COLUMNS}"
                )
            start_col, end_col, body, first_line = pick(_START_COLUMNS), pick(_END_COLUMNS), table[1:], 2
        else:
            path_col, label_col, start_col, end_col, body, first_line = 0, 1, 2, 3, table, 1
        needed = max(path_col, label_col)
        rows = []
        for number, cells in enumerate(body, start=first_line):
            if len(cells) <= needed:
                raise ValueError(f"{file}:{number}: expected 'path label [start end]', got {cells}")
            try:
                start = float(cells[start_col]) if start_col is not None and len(cells) > start_col else None
                end = float(cells[end_col]) if end_col is not None and len(cells) > end_col else None
            except ValueError as e:
                raise ValueError(f"{file}:{number}: start/end must be seconds, got {cells}") from e
            rows.append((cells[path_col], cells[label_col], start, end))
        if not rows:
            raise ValueError(f"{file}: no samples after the header")
        return rows


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


__all__ = ["VIDEO_EXTENSIONS", "VideoCSV", "VideoDataset", "VideoFolder", "VideoSample"]
