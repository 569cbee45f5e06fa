"""Checks of checkpoint files before anything reads their tensors: shard indexes name only files inside the
checkpoint directory, and safetensors headers are well formed, so a hostile or corrupt file gives a one-line error
naming it instead of opening a file elsewhere or failing deep inside a loader.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path, PurePosixPath, PureWindowsPath

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"

# safetensors' own limit on the JSON header; also bounds what is read here before anything is checked.
MAX_HEADER_BYTES = 100_000_000
MAX_INDEX_BYTES = 64 * 1024 * 1024
# bytes per element of every dtype torch reads from safetensors
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_DRIVE = re.compile(r"^[A-Za-z]:")


class CheckpointFileError(ValueError):
    """A checkpoint file that must not or cannot be used (a one-line message naming the file and the entry)."""


class CheckpointShapeError(CheckpointFileError, RuntimeError):
    """Tensors whose shapes differ from the model's (a RuntimeError too, as transformers raises for them)."""


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------- indexes
def check_relative_name(name, index: Path, root: Path) -> Path:
    """The file `name` (from `index`'s weight_map) inside index's directory, or CheckpointFileError.

    Refused: non-strings, empty names, absolute paths, drive letters, backslashes, `..` components, and names that,
    symlinks resolved, leave `root` (the checkpoint directory; for a Hub cache the repository's cache folder, whose
    snapshot files are links into its blobs)."""
    where = f"{index}: weight_map entry {_short(name)}"
    if not isinstance(name, str) or not name:
        raise CheckpointFileError(f"{where} must be a non-empty file name")
    if "\x00" in name or "\\" in name or _DRIVE.match(name) or PureWindowsPath(name).is_absolute():
        raise CheckpointFileError(f"{where} must be a plain relative file name (no drive, backslash or NUL)")
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or any(part in ("..", ".") for part in parts) or name.endswith("/"):
        raise CheckpointFileError(
            f"{where} must be a relative name inside the checkpoint directory (no '/' at the start, no '..')"
        )
    path = index.parent / name
    try:
        resolved = path.resolve()
        inside = resolved.is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a link loop
        inside = False
    if not inside:
        raise CheckpointFileError(f"{where} resolves outside the checkpoint directory {root}")
    return path


def read_index(index: Path, root: Path | None = None, require_files: bool = True) -> list[Path]:
    """The shard files a `*.index.json` names, each checked with `check_relative_name` (and to be a file, with
    `require_files`); errors name `index`."""
    root = index.parent if root is None else root
    try:
        if index.stat().st_size > MAX_INDEX_BYTES:
            raise CheckpointFileError(f"{index}: larger than {MAX_INDEX_BYTES} bytes, not a shard index")
        data = json.loads(index.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointFileError(f"{index}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise CheckpointFileError(f"{index}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise CheckpointFileError(f"{index}: JSON nested too deeply") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointFileError(f"{index}: must be a JSON object with a 'weight_map' object {{tensor name: file}}")
    if not weight_map:
        raise CheckpointFileError(f"{index}: weight_map is empty")
    files: dict[str, Path] = {}
    for name in weight_map.values():
        if not (isinstance(name, str) and name in files):
            files[name] = check_relative_name(name, index, root)
    if not isinstance(data.get("metadata"), dict):  # transformers indexes it unchecked
        raise CheckpointFileError(f"{index}: must have a 'metadata' object, got {_short(data.get('metadata'))}")
    if require_files:
        for name, path in files.items():
            if not path.is_file():
                raise CheckpointFileError(f"{index}: weight_map names {name!r}, which is not a file in {index.parent}")
    return list(files.values())


# ---------------------------------------------------------------------------------------------------------- safetensors
def check_safetensors(path: Path) -> dict:
    """The header of a safetensors file, checked as safetensors checks it (sizes, JSON, dtypes, shapes, contiguous
    in-range offsets) so a corrupt file gives one CheckpointFileError naming it; returns {tensor: info}."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointFileError(f"{path}: {size} bytes, too short for a safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise CheckpointFileError(
                    f"{path}: header length {n} does not fit the file ({size} bytes; at most {MAX_HEADER_BYTES})"
                )
            raw = f.read(n)
    except OSError as e:
        raise CheckpointFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not raw.startswith(b"{"):
        raise CheckpointFileError(f"{path}: header does not start with a JSON object")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as e:
        raise CheckpointFileError(f"{path}: header is not valid JSON ({_reason(e)})") from None
    if not isinstance(header, dict):
        raise CheckpointFileError(f"{path}: header must be a JSON object")
    data_bytes = size - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise CheckpointFileError(f"{path}: __metadata__ must map strings to strings")
            continue
        spans.append((_check_entry(path, name, info), name))
    end = 0
    for (begin, stop), name in sorted(spans):
        if begin != end:
            raise CheckpointFileError(f"{path}: tensor {_short(name)} starts at byte {begin}, expected {end}")
        end = stop
    if end != data_bytes:
        raise CheckpointFileError(f"{path}: tensors cover {end} bytes of data but the file holds {data_bytes}")
    return header


def _check_entry(path: Path, name: str, info) -> tuple[int, int]:
    where = f"{path}: tensor {_short(name)}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointFileError(f"{where} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise CheckpointFileError(f"{where}: dtype must be one of {sorted(DTYPE_SIZES)}, got {_short(dtype)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise CheckpointFileError(f"{where}: shape must be a list of integers >= 0, got {_short(shape)}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise CheckpointFileError(f"{where}: data_offsets must be [begin, end] integers, got {_short(offsets)}")
    begin, end = offsets
    if end < begin or end - begin != math.prod(shape) * DTYPE_SIZES[dtype]:
        raise CheckpointFileError(f"{where}: data_offsets {offsets} do not hold a {dtype} tensor of shape {shape}")
    return begin, end


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def _unique(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {_short(key)} appears twice")
        out[key] = value
    return out


def _reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at byte {error.pos}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__


# ---------------------------------------------------------------------------------------------------------- directories
def _variant(name: str, variant: str | None) -> str:
    """transformers' file name for a variant: model.safetensors -> model.fp16.safetensors (an index likewise)."""
    if variant is None:
        return name
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.{variant}.{ext}"


def check_directory(directory: Path, variant: str | None = None, use_safetensors: bool | None = None, root=None):
    """Check the weight files transformers would read from `directory` (its order: model.safetensors, its sharded
    index, pytorch_model.bin, its index), before it reads them. `root`: the folder links may point into."""
    directory = Path(directory)
    root = directory if root is None else Path(root)
    order = []
    if use_safetensors is not False:
        order += [(SAFE_WEIGHTS_NAME, False), (SAFE_WEIGHTS_INDEX_NAME, True)]
    if not use_safetensors:
        order += [(WEIGHTS_NAME, False), (WEIGHTS_INDEX_NAME, True)]
    for name, sharded in order:
        path = directory / _variant(name, variant)
        if not path.is_file():
            continue
        files = read_index(path, root) if sharded else [path]
        for file in files:
            if file.name.endswith(".safetensors"):
                check_safetensors(file)
        return


def check_pretrained(pretrained_model_name_or_path, **kwargs) -> None:
    """Run the checks on what `from_pretrained(pretrained_model_name_or_path, **kwargs)` would load: a local
    directory, or the files of a Hub id already in the cache (snapshot files are checked against the repository's
    cache folder). Files not yet downloaded are not checked here."""
    if pretrained_model_name_or_path is None or kwargs.get("gguf_file") or kwargs.get("state_dict") is not None:
        return
    name = os.fspath(pretrained_model_name_or_path)
    subfolder = kwargs.get("subfolder") or ""
    variant, use_safetensors = kwargs.get("variant"), kwargs.get("use_safetensors")
    if os.path.isdir(name):
        check_directory(Path(name) / subfolder, variant, use_safetensors, root=Path(name))
        return
    if os.path.isfile(name):
        if name.endswith(".safetensors"):
            check_safetensors(Path(name))
        return
    _check_hub_cache(name, subfolder, variant, use_safetensors, kwargs)


def _check_hub_cache(repo_id: str, subfolder: str, variant, use_safetensors, kwargs) -> None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return
    candidates = []
    if use_safetensors is not False:
        candidates += [SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME]
    if not use_safetensors:
        candidates += [WEIGHTS_NAME, WEIGHTS_INDEX_NAME]
    for name in candidates:
        filename = f"{subfolder}/{_variant(name, variant)}" if subfolder else _variant(name, variant)
        try:
            cached = try_to_load_from_cache(
                repo_id, filename, cache_dir=kwargs.get("cache_dir"), revision=kwargs.get("revision")
            )
        except Exception:  # not a valid repository id: transformers reports it
            return
        if not isinstance(cached, str):
            continue
        path = Path(cached)  # .../models--org--name/snapshots/<commit>/[subfolder/]file
        snapshot = path
        for _ in PurePosixPath(filename).parts:
            snapshot = snapshot.parent
        repo_folder = snapshot.parent.parent
        if name.endswith(".index.json"):
            for file in read_index(path, repo_folder, require_files=False):
                if file.name.endswith(".safetensors") and file.exists():
                    check_safetensors(file)
        elif name.endswith(".safetensors"):
            check_safetensors(path)
        return
