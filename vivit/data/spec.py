"""One way to name a video dataset: `open_dataset(spec, split)` for `vivit train --data/--val-data`, `vivit eval
--data` and Python.

A spec is recognised by its content:

- a folder of class folders, `ROOT/CLASS/...`, or one with split folders, `ROOT/{train,val|validation,test}/CLASS/...`;
- a CSV/TSV/space-separated annotation list (`vivit.data.datasets.read_annotations`: `path,label[,start,end]`, quoted
  paths, paths relative to the list or to `root`);
- a Kinetics CSV, header `label,youtube_id,time_start,time_end[,split]`: the videos are
  `{youtube_id}_{time_start:06d}_{time_end:06d}.mp4` under `root` (default: the CSV's folder) and the `split`
  column, when present, says which rows belong to which split;
- a Something-Something v2 JSON: `labels.json` ({class name: "index"}, or its folder) with `train.json` /
  `validation.json` / `test.json` beside it, or one of those lists ([{"id", "template", ...}]) with `labels.json`
  beside it; the class is the template without its brackets and the videos are `{id}.webm` under `root`.

A source without the requested training/validation split (a plain class folder, a list, a Kinetics CSV without a
`split` column, a tree without `val/`) is split automatically: seeded, stratified, `val_fraction` of every class's
clips (at least one) on the validation side and at least one on the training side.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from vivit.data.datasets import (
    VIDEO_EXTENSIONS,
    AnnotationError,
    VideoDataset,
    VideoSample,
    _classes_list,
    _resolve_classes,
    _walk_videos,
    read_annotations,
    read_table,
)

FORMS = (
    "a class folder (ROOT/CLASS/videos or ROOT/{train,val,test}/CLASS/videos), a CSV/TSV list "
    "(path,label[,start,end]), a Kinetics CSV (label,youtube_id,time_start,time_end[,split]) or a "
    "Something-Something v2 JSON (labels.json, train.json, validation.json)"
)
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "validation": "val", "validate": "val"}
SPLIT_NAMES.update({"valid": "val", "test": "test", "testing": "test"})
_SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
_SSV2_FILES = {"train": "train.json", "val": "validation.json", "test": "test.json"}
_KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


class DatasetSpecError(ValueError):
    """A dataset spec that fits none of the forms, or a split it cannot give. The message names the file."""


def open_dataset(
    spec: str | os.PathLike,
    split: str | None = "train",
    *,
    root: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    class_to_idx: Mapping[str, int] | None = None,
    num_classes: int | None = None,
    skip_missing: bool = False,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    **dataset_kwargs,
) -> VideoDataset:
    """The `split` of the dataset `spec` (see the module docstring for the forms) as a `VideoDataset`.

    Args:
        spec: a folder, a CSV/TSV/TXT list, a Kinetics CSV or a Something-Something v2 JSON (or its folder).
        split: "train", "val" (or "validation"), "test", "all" (every clip), or None: "val" where the source has an
            explicit validation split, else "test" where it has a test split, else every clip.
        root: the folder of a list's relative paths / Kinetics' and SSv2's videos (default: the file's folder).
        val_fraction: the share of every class held out for "val" when the source has no validation split, and
            taken out of "train" then; 0 turns the automatic split off ("train" is then the whole source).
        seed: the automatic split's seed (the same seed gives the same split, train and val complementary).
        class_to_idx: class name -> index (e.g. a model's `config.label2id`); a class outside it is an error.
            Default: the sorted class names of the whole source (every split), so that every split agrees.
        num_classes: bound on integer labels of a list (see `read_annotations`).
        skip_missing: leave out the listed videos that do not exist (their paths are in `dataset.missing`)
            instead of refusing the list.
        extensions: the video file endings of a class folder.
        **dataset_kwargs: `VideoDataset`'s options (num_frames, train, views, processor, image_size, ...).

    The dataset also has `source` (the spec), `split` (the split given) and `missing` (videos left out).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    if split is not None and split != "all":
        if split not in SPLIT_NAMES:
            raise ValueError(f"split: expected one of train, val, validation, test, all, got {split!r}")
        split = SPLIT_NAMES[split]
    spec = os.fspath(spec)
    if class_to_idx is not None:
        class_to_idx = {str(k): int(v) for k, v in class_to_idx.items()}
    source = _open_source(spec, root, class_to_idx, num_classes, tuple(e.lower() for e in extensions))
    if split is None:
        split = "val" if "val" in source.parts else "test" if "test" in source.parts else "all"
    samples = source.select(split, val_fraction, seed)
    missing = []
    if source.check_files:
        present = [s for s in samples if os.path.exists(s.path)]
        missing = [s.path for s in samples if not os.path.exists(s.path)]
        if missing and not skip_missing:
            raise FileNotFoundError(
                f"{spec}: {len(missing)} of {len(samples)} listed videos do not exist (first: "
                f"{', '.join(missing[:3])}); skip_missing (--skip-missing) leaves them out"
            )
        samples = present
    if not samples:
        raise DatasetSpecError(f"{spec}: the {split} split holds no videos")
    dataset = VideoDataset(samples, _classes_list(source.class_to_idx), **dataset_kwargs)
    dataset.class_to_idx = dict(source.class_to_idx)
    dataset.source, dataset.split, dataset.missing = spec, split, missing
    return dataset


def stratified_split(
    labels: Sequence[int], val_fraction: float, seed: int, classes: Sequence[str] | None = None, where: str = "data"
) -> tuple[list[int], list[int]]:
    """(train indices, val indices) of `labels`: for every class present, round(val_fraction x its clips) clips,
    at least 1 and at most all but 1, drawn with `seed`. A class with a single clip is refused by name."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a number in (0, 1) for a validation split, got {val_fraction!r}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            name = classes[label] if classes is not None and label < len(classes) else str(label)
            raise DatasetSpecError(
                f"{where}: class {name!r} has 1 clip; a validation split needs at least 2 per class "
                "(add clips, or name the validation set with --val-data)"
            )
        count = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        chosen = rng.permutation(members)
        val.extend(chosen[:count].tolist())
        train.extend(chosen[count:].tolist())
    return sorted(train), sorted(val)


class _Source:
    """The splits a spec holds (each a function listing its samples) and its class mapping. `parts` has "all"
    when the source has no splits of its own."""

    def __init__(self, spec: str, parts: dict[str, Callable[[], list[VideoSample]]], class_to_idx, check_files):
        self.spec, self.parts, self.class_to_idx, self.check_files = spec, parts, class_to_idx, check_files

    def select(self, split: str, val_fraction: float, seed: int) -> list[VideoSample]:
        if split == "all":
            return [s for name in ("all", "train", "val", "test") if name in self.parts for s in self.parts[name]()]
        if split in self.parts and not (split == "train" and "val" not in self.parts and val_fraction > 0):
            return self.parts[split]()
        pool = "all" if "all" in self.parts else "train"
        if split in ("train", "val") and pool in self.parts and val_fraction > 0:
            samples = self.parts[pool]()
            classes = _classes_list(self.class_to_idx)
            train, val = stratified_split([s.label for s in samples], val_fraction, seed, classes, self.spec)
            return [samples[i] for i in (train if split == "train" else val)]
        if split == "train" and "all" in self.parts:  # val_fraction 0: the whole source trains
            return self.parts["all"]()
        held = f"splits: {', '.join(sorted(self.parts))}" if "all" not in self.parts else "it has no splits"
        automatic = "; val_fraction 0 turns the automatic split off" if split == "val" and val_fraction == 0 else ""
        raise DatasetSpecError(f"{self.spec}: no {split} split ({held}{automatic})")


def _open_source(spec, root, class_to_idx, num_classes, extensions) -> _Source:
    if os.path.isdir(spec):
        if os.path.isfile(os.path.join(spec, "labels.json")):
            return _ssv2_source(os.path.join(spec, "labels.json"), root, class_to_idx)
        if root is not None:
            raise DatasetSpecError(f"root: expected only with a list or JSON file, got the class folder {spec}")
        return _folder_source(spec, class_to_idx, extensions)
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"{spec}: no such dataset folder or file (expected {FORMS})")
    kind = _file_kind(spec)
    if kind == "json":
        return _ssv2_source(spec, root, class_to_idx)
    rows = read_table(spec)
    if any(cell.lower() == "youtube_id" for cell in rows[0][1]):
        return _kinetics_source(spec, rows, root, class_to_idx)
    samples, mapping = read_annotations(spec, root, class_to_idx=class_to_idx, num_classes=num_classes)
    return _Source(spec, {"all": lambda: samples}, mapping, True)


def _file_kind(spec: str) -> str:
    """ "json" or "table" from the file's first bytes; anything else is refused naming the forms."""
    with open(spec, "rb") as f:
        head = f.read(4096)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not a multi-byte character cut by the 4096-byte read
            text = None
        else:
            text = head[: e.start].decode("utf-8-sig", errors="ignore")
    if text is None or "\0" in text:
        raise DatasetSpecError(f"{spec}: not a dataset spec (binary content); expected {FORMS}")
    stripped = text.lstrip()
    if spec.lower().endswith(".json") or stripped[:1] in ("{", "["):
        return "json"
    return "table"


# ---------------------------------------------------------------------------------------------------------------------
# class folders


def _folder_source(spec: str, class_to_idx, extensions) -> _Source:
    folders = sorted(e.name for e in os.scandir(spec) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        raise DatasetSpecError(f"{spec}: no sub-folders; expected {FORMS}")
    named = {f: SPLIT_NAMES.get(f) for f in folders}
    if all(named[f] is not None and f in _SPLIT_FOLDERS[named[f]] for f in folders):
        seen = {}
        for folder in folders:
            if named[folder] in seen:
                raise DatasetSpecError(
                    f"{spec}: both {seen[named[folder]]}/ and {folder}/ hold the {named[folder]} split"
                )
            seen[named[folder]] = folder
        tops = {split: os.path.join(spec, folder) for split, folder in seen.items()}
    else:
        splits = [f for f in folders if named[f] is not None and f in _SPLIT_FOLDERS[named[f]]]
        if len(splits) >= 2:  # split folders beside other folders: neither layout reads it one way
            others = [f for f in folders if f not in splits]
            raise DatasetSpecError(
                f"{spec}: split folders {splits} beside other folders {others[:5]}; expected only split folders "
                "(ROOT/{train,val,test}/CLASS) or only class folders (ROOT/CLASS)"
            )
        tops = {"all": spec}
    names_per_top = {
        split: sorted(e.name for e in os.scandir(top) if e.is_dir() and not e.name.startswith("."))
        for split, top in tops.items()
    }
    for split, names in names_per_top.items():
        if not names:
            raise DatasetSpecError(f"{tops[split]}: no class sub-folders (expected CLASS/videos)")
    all_names = sorted({n for names in names_per_top.values() for n in names})
    mapping = _resolve_classes(all_names, class_to_idx, spec)

    def lister(split: str) -> Callable[[], list[VideoSample]]:
        def walk() -> list[VideoSample]:
            samples = [
                VideoSample(path, mapping[name])
                for name in names_per_top[split]
                for path in _walk_videos(os.path.join(tops[split], name), extensions)
            ]
            if not samples:
                raise DatasetSpecError(f"{tops[split]}: no video files with extensions {extensions}")
            return samples

        return walk

    return _Source(spec, {split: lister(split) for split in tops}, mapping, False)


# ---------------------------------------------------------------------------------------------------------------------
# Kinetics


def _kinetics_source(spec: str, rows, root, class_to_idx) -> _Source:
    (header_line, header), body = rows[0], rows[1:]
    columns = {cell.lower(): i for i, cell in enumerate(header)}
    absent = [name for name in _KINETICS_COLUMNS if name not in columns]
    if absent:
        raise AnnotationError(
            f"{spec}:{header_line}: Kinetics header: expected columns {list(_KINETICS_COLUMNS)} (+ split), "
            f"missing {absent}"
        )
    if not body:
        raise AnnotationError(f"{spec}: no rows after the header")
    root = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(spec))
    split_col = columns.get("split")
    entries = []  # (line, split, label, path)
    for line, cells in body:
        if len(cells) != len(header):
            raise AnnotationError(f"{spec}:{line}: expected {len(header)} fields like the header, got {len(cells)}")
        label, youtube_id = cells[columns["label"]], cells[columns["youtube_id"]]
        if not label or not youtube_id:
            raise AnnotationError(f"{spec}:{line}: expected a label and a youtube_id, got {label!r}, {youtube_id!r}")
        if "/" in youtube_id or "\\" in youtube_id or "\0" in youtube_id:
            raise AnnotationError(f"{spec}:{line}: youtube_id: expected no path separator, got {youtube_id!r}")
        times = [_whole_seconds(spec, line, name, cells[columns[name]]) for name in ("time_start", "time_end")]
        split = "all"
        if split_col is not None:
            value = cells[split_col]
            if value.lower() not in SPLIT_NAMES:
                raise AnnotationError(f"{spec}:{line}: split: expected train, val, validate or test, got {value!r}")
            split = SPLIT_NAMES[value.lower()]
        path = os.path.join(root, f"{youtube_id}_{times[0]:06d}_{times[1]:06d}.mp4")
        entries.append((line, split, label, path))
    if class_to_idx is None:
        mapping = {name: i for i, name in enumerate(sorted({label for _, _, label, _ in entries}))}
    else:
        mapping = class_to_idx
        for line, _, label, _ in entries:
            if label not in mapping:
                raise AnnotationError(
                    f"{spec}:{line}: label {label!r} is not a known class (known: {sorted(mapping)[:10]})"
                )
    parts: dict[str, list[VideoSample]] = {}
    for _, split, label, path in entries:
        parts.setdefault(split, []).append(VideoSample(path, mapping[label]))
    return _Source(spec, {split: (lambda s=samples: s) for split, samples in parts.items()}, mapping, True)


def _whole_seconds(spec: str, line: int, name: str, cell: str) -> int:
    try:
        value = float(cell)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0 and value.is_integer()):
        raise AnnotationError(f"{spec}:{line}: {name}: expected whole seconds >= 0, got {cell!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------------------------------
# Something-Something v2


def _load_json(file: str):
    try:
        with open(file, encoding="utf-8-sig") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetSpecError(f"{file}: not readable JSON ({e}); expected {FORMS}") from None


def _ssv2_labels(file: str) -> dict[str, int]:
    data = _load_json(file)
    if not isinstance(data, dict) or not data:
        raise DatasetSpecError(
            f'{file}: expected a labels.json object {{class name: "index"}}, got {type(data).__name__}'
        )
    mapping = {}
    for name, value in data.items():
        text = str(value)
        if isinstance(value, bool) or not text.isdigit():
            raise DatasetSpecError(f'{file}: class {name!r}: expected an index ("0", "1", ...), got {value!r}')
        mapping[name] = int(text)
    if len(set(mapping.values())) != len(mapping):
        raise DatasetSpecError(f"{file}: expected one index per class, got repeated indices")
    return mapping


def _ssv2_list(file: str, mapping: Mapping[str, int], root: str) -> list[VideoSample]:
    data = _load_json(file)
    if not isinstance(data, list):
        raise DatasetSpecError(f'{file}: expected a list of {{"id", "template", ...}}, got {type(data).__name__}')
    samples = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("id"), (str, int)) or "template" not in item:
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise DatasetSpecError(f'{file}: item {i}: expected an object with "id" and "template", got {got}')
        video_id = str(item["id"])
        if not video_id or "/" in video_id or "\\" in video_id or "\0" in video_id:
            raise DatasetSpecError(f"{file}: item {i}: id: expected a file name without separators, got {video_id!r}")
        name = str(item["template"]).replace("[", "").replace("]", "")
        if name not in mapping:
            raise DatasetSpecError(
                f"{file}: item {i}: class {name!r} (template {item['template']!r}) is not in the labels"
            )
        samples.append(VideoSample(os.path.join(root, f"{video_id}.webm"), mapping[name]))
    return samples


def _ssv2_source(spec: str, root, class_to_idx) -> _Source:
    folder = os.path.dirname(os.path.abspath(spec))
    root = os.fspath(root) if root is not None else folder
    data = _load_json(spec)
    if isinstance(data, list):  # one list: labels.json beside it names the classes
        labels_file = os.path.join(folder, "labels.json")
        if class_to_idx is None and not os.path.isfile(labels_file):
            raise DatasetSpecError(f"{spec}: a Something-Something v2 list needs labels.json beside it ({labels_file})")
        mapping = class_to_idx if class_to_idx is not None else _ssv2_labels(labels_file)
        return _Source(spec, {"all": lambda: _ssv2_list(spec, mapping, root)}, mapping, True)
    if not isinstance(data, dict):
        raise DatasetSpecError(f"{spec}: JSON {type(data).__name__} fits no dataset form; expected {FORMS}")
    labels = _ssv2_labels(spec)
    mapping = labels if class_to_idx is None else _resolve_classes(list(labels), class_to_idx, spec)
    files = {split: os.path.join(folder, name) for split, name in _SSV2_FILES.items()}
    files = {split: file for split, file in files.items() if os.path.isfile(file)}
    if not files:
        raise DatasetSpecError(f"{spec}: no train.json, validation.json or test.json beside it")
    return _Source(spec, {s: (lambda f=f: _ssv2_list(f, mapping, root)) for s, f in files.items()}, mapping, True)


__all__ = ["FORMS", "DatasetSpecError", "open_dataset", "stratified_split"]
