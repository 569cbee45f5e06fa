"""Video classification datasets: `VideoFolder` (one sub-folder per class) and `VideoCSV` (annotation lists).

Both return `(pixel_values, label)`: float32 (T, C, H, W) for training and single-view evaluation, or
(V, T, C, H, W) for multi-view evaluation (V = temporal clips x spatial crops, clip-major), so a DataLoader batch is
(B, T, C, H, W) or (B, V, T, C, H, W) - what `vivit.cli.evaluate.evaluate` takes. Decoding happens in `__getitem__`,
so `DataLoader(num_workers>0)` parallelizes it; a file that cannot be decoded raises `VideoReadError` naming it.
"""

from __future__ import annotations

import csv
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from vivit.data.io import VideoReadError, _file_kind, read_clips, read_video
from vivit.data.transforms import EvalTransform, TrainTransform, parse_views

if TYPE_CHECKING:  # the processor module imports transformers; decoding does not need it
    from vivit.data.processing import VivitImageProcessor

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
        num_frames, stride, sampling, short_clip: temporal sampling (see `vivit.data.io`); ViViT-B/16x2:
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
    from vivit.data.processing import VivitImageProcessor

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
            for path in _walk_videos(os.path.join(root, name), extensions):
                samples.append(VideoSample(path, mapping[name]))
        if not samples:
            raise ValueError(f"root: no video files with extensions {extensions} under {root}")
        self.root = root
        super().__init__(samples, _classes_list(mapping), **kwargs)
        self.class_to_idx = mapping


def _walk_videos(top: str, extensions: tuple[str, ...]) -> list[str]:
    """Video files under `top`, sorted, following links to folders but never into a folder already walked (a link
    loop, or two links to one folder, would otherwise repeat forever or list videos twice: a warning names each
    link skipped). Entries that are not regular files (FIFO, socket, device) are refused by name."""
    found, visited = [], set()
    stack = [top]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in visited:
            warnings.warn(
                f"VideoFolder: skipping {folder}: it leads to {real}, already listed (a link loop?)", stacklevel=3
            )
            continue
        visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise OSError(f"VideoFolder: cannot list {folder} ({type(e).__name__}: {e})") from e
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(entry.path)
            elif entry.name.lower().endswith(extensions):
                try:
                    mode = os.stat(entry.path).st_mode
                except OSError:  # a dangling link: reading it reports the missing file by name
                    found.append(entry.path)
                    continue
                if not stat.S_ISREG(mode):
                    raise ValueError(
                        f"VideoFolder: {entry.path}: expected a regular video file, got a {_file_kind(mode)}"
                    )
                found.append(entry.path)
        stack.extend(reversed(subfolders))  # depth first, in name order
    return found


# Column names accepted in a header (first match wins).
_PATH_COLUMNS = ("path", "video", "filename", "file", "video_path")
_LABEL_COLUMNS = ("label", "class", "label_id", "target")
_START_COLUMNS = ("start", "start_sec", "time_start")
_END_COLUMNS = ("end", "end_sec", "time_end")
# Without a class list an integer label is a class index, and the class list grows to max label + 1: bound it.
MAX_CLASSES = 100_000
_INT_LABEL = re.compile(r"[+-]?[0-9]+")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


class AnnotationError(ValueError):
    """An annotation list that cannot be read or labels that do not fit the classes. The message names the file,
    the line where it applies, what was expected and what the list holds."""


def _kind(label: str) -> str:
    return "integer" if _INT_LABEL.fullmatch(label) else "text"


def _split_rows(file: str, text: str) -> tuple[list[tuple[int, list[str]]], str]:
    """(line number, cells) of every non-blank, non-comment line, and the format: "csv", "tsv" or "whitespace"."""
    numbered = [
        (number, line)
        for number, line in enumerate(_LINE_BREAK.split(text), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise AnnotationError(f"{file}: the annotation list is empty (expected lines 'path,label[,start,end]')")
    first = numbered[0][1]
    if "\t" in first or "," in first:
        delimiter = "\t" if "\t" in first else ","
        layout = "tsv" if delimiter == "\t" else "csv"
        rows = []
        for number, line in numbered:
            try:
                cells = next(csv.reader([line], delimiter=delimiter, strict=True))
            except csv.Error as e:
                raise AnnotationError(f"{file}:{number}: malformed {layout.upper()} line ({e})") from None
            rows.append((number, [cell.strip() for cell in cells]))
        return rows, layout
    return [(number, line.split()) for number, line in numbered], "whitespace"


def _parse_seconds(file: str, number: int, name: str, cell: str | None) -> float | None:
    if cell is None or cell == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        raise AnnotationError(f"{file}:{number}: {name}: expected seconds (a number), got {cell!r}") from None
    if not math.isfinite(value) or value < 0:
        raise AnnotationError(f"{file}:{number}: {name}: expected finite seconds >= 0, got {cell!r}")
    return value


def _cell(cells: list[str], col: int | None) -> str | None:
    return cells[col] if col is not None and col < len(cells) else None


def _parse_rows(file: str, text: str) -> list[tuple[int, str, str, float | None, float | None]]:
    """(line number, path, label, start, end) of every annotation; one parser for all the layouts."""
    rows, layout = _split_rows(file, text)
    header = [cell.lower() for cell in rows[0][1]]
    pick = lambda names: next((header.index(n) for n in names if n in header), None)
    path_col, label_col = pick(_PATH_COLUMNS), pick(_LABEL_COLUMNS)
    if path_col is not None or label_col is not None:
        if path_col is None or label_col is None:
            raise AnnotationError(
                f"{file}:{rows[0][0]}: the header {rows[0][1]} needs a path column {_PATH_COLUMNS} and a label "
                f"column {_LABEL_COLUMNS}"
            )
        start_col, end_col, body, max_cells = pick(_START_COLUMNS), pick(_END_COLUMNS), rows[1:], None
        if not body:
            raise AnnotationError(f"{file}: no annotations after the header")
    else:
        path_col, label_col, start_col, end_col, body, max_cells = 0, 1, 2, 3, rows, 4
    needed = max(path_col, label_col) + 1
    out = []
    for number, cells in body:
        if layout == "whitespace":
            # Space-separated lists cannot hold a path with spaces: accept only lines that read one way.
            if len(cells) not in (2, 4) or '"' in " ".join(cells):
                raise AnnotationError(
                    f"{file}:{number}: expected 'path label' or 'path label start end' separated by spaces, got "
                    f"{len(cells)} fields {cells[:6]}; write a path with spaces as a quoted CSV field "
                    "(header path,label,start,end)"
                )
        if len(cells) < needed or (max_cells is not None and len(cells) > max_cells):
            raise AnnotationError(
                f"{file}:{number}: expected 'path label [start end]' (CSV: path,label[,start,end]), got "
                f"{len(cells)} field(s) {cells[:6]}"
            )
        if layout == "whitespace" and cells[label_col].lower().endswith(VIDEO_EXTENSIONS):
            raise AnnotationError(
                f"{file}:{number}: the label {cells[label_col]!r} looks like a file name (a path with spaces?); "
                "write the list as CSV with the path quoted"
            )
        path, label = cells[path_col], cells[label_col]
        if not path:
            raise AnnotationError(f"{file}:{number}: expected a video path, got an empty field")
        if "\0" in path:
            raise AnnotationError(f"{file}:{number}: the path {path!r} contains a NUL character")
        if not label:
            raise AnnotationError(f"{file}:{number}: expected a label after the path {path!r}, got an empty field")
        start = _parse_seconds(file, number, "start", _cell(cells, start_col))
        end = _parse_seconds(file, number, "end", _cell(cells, end_col))
        if start is not None and end is not None and end <= start:
            raise AnnotationError(f"{file}:{number}: expected end > start, got start {start:g} s, end {end:g} s")
        out.append((number, path, label, start, end))
    return out


def _read_text(file: str) -> str:
    if not os.path.isfile(file):
        raise FileNotFoundError(f"file: annotation list {file} does not exist (or is not a regular file)")
    try:
        with open(file, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{file}: expected UTF-8 text, got undecodable bytes at offset {e.start}") from None


def read_table(file: str | os.PathLike) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank, non-comment line of a CSV/TSV (standard quoting, cells stripped)
    or space-separated list, header included: the tokenizer `read_annotations` uses, for other column layouts
    (e.g. Kinetics' label,youtube_id,time_start,time_end,split). Raises `AnnotationError` naming the file."""
    file = os.fspath(file)
    return _split_rows(file, _read_text(file))[0]


def read_annotations(
    file: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    class_to_idx: Mapping[str, int] | None = None,
    num_classes: int | None = None,
) -> tuple[list[VideoSample], dict[str, int]]:
    """Reads an annotation list: the samples (paths joined to `root`, default the list's folder) and the class
    mapping (name -> index).

    Layouts (one parser): CSV or TSV with standard quoting, with a header naming the columns (path/video/filename,
    label/class, optional start/time_start and end/time_end in seconds, other columns ignored) or without one
    (path,label[,start,end]); or the space-separated `path label [start end]` of UCF101 / mmaction lists, accepted
    only where a line reads one way (a path with spaces must be a quoted CSV field). Blank lines and lines starting
    with # are skipped; fields are stripped of surrounding spaces.

    Labels are all integers (class indices) or all text (class names), never a mix. Integer labels must lie in
    [0, num_classes), where num_classes is the argument, else the size of `class_to_idx`, else `MAX_CLASSES`. Text
    labels map through `class_to_idx` (e.g. a model's `config.label2id`: an unknown label is an error), or to
    their sorted order. Any problem raises `AnnotationError` naming the file and line.
    """
    file = os.fspath(file)
    root = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(file))
    rows = _parse_rows(file, _read_text(file))
    if class_to_idx is not None:
        class_to_idx = {str(k): int(v) for k, v in class_to_idx.items()}
        if num_classes is None and class_to_idx:
            num_classes = max(class_to_idx.values()) + 1
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
    first_kind = _kind(rows[0][2])
    for number, _, label, _, _ in rows:
        if _kind(label) != first_kind:
            raise AnnotationError(
                f"{file}:{number}: the label {label!r} is {_kind(label)} but line {rows[0][0]}'s "
                f"({rows[0][2]!r}) is {first_kind}; a list's labels are all class indices or all class names"
            )
    if first_kind == "integer":
        bound = num_classes if num_classes is not None else MAX_CLASSES
        for number, _, label, _, _ in rows:
            value = int(label)
            if not 0 <= value < bound:
                known = f"the {bound} classes" if num_classes is not None else f"at most {MAX_CLASSES} classes"
                raise AnnotationError(
                    f"{file}:{number}: label {label}: expected a class index in [0, {bound}) ({known}), got {value}"
                )
        indices = [int(label) for _, _, label, _, _ in rows]
        if class_to_idx:
            mapping = class_to_idx
        else:
            size = num_classes if num_classes is not None else max(indices) + 1
            mapping = {str(i): i for i in range(size)}
    else:
        if class_to_idx is None:
            names = sorted({label for _, _, label, _, _ in rows})
            if num_classes is not None and len(names) > num_classes:
                raise AnnotationError(f"{file}: expected at most {num_classes} classes, got {len(names)} labels")
            mapping = {name: i for i, name in enumerate(names)}
        else:
            mapping = class_to_idx
            for number, _, label, _, _ in rows:
                if label not in mapping:
                    raise AnnotationError(
                        f"{file}:{number}: label {label!r} is not a known class (known: {sorted(mapping)[:10]}"
                        f"{'...' if len(mapping) > 10 else ''})"
                    )
        indices = [mapping[label] for _, _, label, _, _ in rows]
    samples = [
        VideoSample(os.path.join(root, path), index, start, end)
        for (_, path, _, start, end), index in zip(rows, indices)
    ]
    return samples, mapping


def write_annotations(
    file: str | os.PathLike, samples: Sequence[VideoSample], classes: Sequence[str] | None = None
) -> None:
    """Writes `samples` as a CSV annotation list `read_annotations` reads back: header path,label,start,end, every
    field quoted; labels are the class names of `classes` when given, else the class indices. Paths are written as
    given (relative paths are read back relative to the list's folder)."""
    rows = []
    for sample in samples:
        path = os.fspath(sample.path)
        if _LINE_BREAK.search(path) or "\0" in path or path != path.strip() or not path:
            raise ValueError(f"samples: a path cannot be empty, hold line breaks or surrounding spaces, got {path!r}")
        label = str(classes[sample.label]) if classes is not None else str(int(sample.label))
        if _LINE_BREAK.search(label) or "\0" in label or label != label.strip() or not label:
            raise ValueError(f"classes: a label cannot be empty, hold line breaks or surrounding spaces, got {label!r}")
        fmt = lambda value: "" if value is None else repr(float(value))
        rows.append([path, label, fmt(sample.start_sec), fmt(sample.end_sec)])
    with open(file, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["path", "label", "start", "end"])
        writer.writerows(rows)


class VideoCSV(VideoDataset):
    """An annotation list (see `read_annotations` for the layouts and label rules): CSV/TSV with a header naming
    the columns (the layout of Kinetics' CSVs once a path column is added) or headerless `path,label[,start,end]`,
    or the space-separated UCF101 / mmaction lists. Relative paths are joined to `root` (default: the list's
    folder). Integer labels are class indices, checked against `num_classes` or the size of `class_to_idx`; text
    labels map through `class_to_idx` (e.g. a model's `config.label2id`) or their sorted order.
    """

    def __init__(
        self,
        file: str | os.PathLike,
        root: str | os.PathLike | None = None,
        *,
        class_to_idx: Mapping[str, int] | None = None,
        num_classes: int | None = None,
        **kwargs,
    ):
        samples, mapping = read_annotations(file, root, class_to_idx=class_to_idx, num_classes=num_classes)
        self.file = os.fspath(file)
        self.root = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(self.file))
        super().__init__(samples, _classes_list(mapping), **kwargs)
        self.class_to_idx = mapping


__all__ = [
    "MAX_CLASSES",
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "VideoCSV",
    "VideoDataset",
    "VideoFolder",
    "VideoSample",
    "read_annotations",
    "read_table",
    "write_annotations",
]
