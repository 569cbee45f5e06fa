"""Files that survive a crash and run no code when read: atomic, durable directories, run-directory locks, and
nested state (optimizer, RNG, EMA) stored as safetensors (every tensor) + JSON (everything else), never pickle.

Checkpoint scheme inside a run directory:
    checkpoint-<epoch>/            complete checkpoints; each holds COMPLETE, written last
    checkpoint-<epoch>.partial/    being written (or left by a crash): ignored and removed by the next save
A new checkpoint is written under its `.partial` name, every file and the directory are fsynced, COMPLETE is written
and fsynced, the directory is renamed to its final name and the run directory fsynced; only then are older
checkpoints deleted. So at every instant the newest complete checkpoint is intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vivit.errors import CheckpointError, UsageError
from vivit.models.checkpoint_files import check_safetensors

COMPLETE = "COMPLETE"
PARTIAL = ".partial"
_NAME = re.compile(r"checkpoint-(\d+)")


# ---------------------------------------------------------------------------------------------------------------------
# durability


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (the directory's entries: names created, renamed or removed in it)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under root (root included)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def write_text_durably(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (temporary sibling, fsync, os.replace, fsync of the directory)."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def remove_leftovers(path: Path) -> None:
    """Delete the temporary files write_text_durably(path, ...) leaves when interrupted."""
    for tmp in path.parent.glob(path.name + ".tmp-*"):
        tmp.unlink(missing_ok=True)


def append_line_durably(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def replace_directory(tmp: Path, dst: Path) -> None:
    """Move the complete directory `tmp` to `dst`; an existing `dst` is moved aside first and deleted only after the
    new one is in place (a crash in between leaves the old copy under `.<name>.old-<pid>` beside it)."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.rename(dst, old)
    os.rename(tmp, dst)
    fsync_path(dst.parent)
    if old is not None:
        shutil.rmtree(old)


# ---------------------------------------------------------------------------------------------------------------------
# versioned checkpoints in a run directory


def checkpoint_epoch(path: Path) -> int | None:
    m = _NAME.fullmatch(path.name)
    return int(m.group(1)) if m else None


def is_complete(path: Path) -> bool:
    return path.is_dir() and (path / COMPLETE).is_file()


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints of a run directory, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if checkpoint_epoch(p) is not None and is_complete(p)]
    return sorted(found, key=checkpoint_epoch)


def latest_checkpoint(path: Path) -> Path:
    """`path` itself when it is a complete checkpoint, else the newest complete checkpoint in the run directory."""
    if is_complete(path):
        return path
    if not path.is_dir():
        raise UsageError(f"--resume {path}: expected a run or checkpoint directory, found no such directory")
    found = complete_checkpoints(path)
    if found:
        return found[-1]
    if (path / "trainer_state.pt").exists() or (path / "checkpoint" / "trainer_state.pt").exists():
        raise CheckpointError(
            f"--resume {path}: expected a checkpoint with {COMPLETE} and trainer_state.json, found only the old "
            "pickle format (trainer_state.pt), which is not loaded because unpickling can run code"
        )
    if path.name.endswith(PARTIAL) or (path / "trainer_state.json").exists():
        raise CheckpointError(f"--resume {path}: expected a complete checkpoint, found one without its {COMPLETE} mark")
    raise CheckpointError(f"--resume {path}: expected a run directory holding checkpoint-<epoch>/, found none complete")


def model_directory(path: str | Path, option: str = "--model") -> Path:
    """A model directory (config.json inside) as given, or the newest complete checkpoint of a run directory."""
    path = Path(path)
    if (path / "config.json").is_file() or not path.is_dir():
        return path  # the loader names what is missing
    found = complete_checkpoints(path)
    if found:
        return found[-1]
    raise CheckpointError(
        f"{option} {path}: expected a model directory (config.json) or a run directory holding a complete "
        "checkpoint-<epoch>/, found neither"
    )


def save_versioned(run_dir: Path, epoch: int, write) -> Path:
    """Write checkpoint-<epoch>/ through `write(directory)`, durably and atomically, then delete older ones."""
    final = run_dir / f"checkpoint-{epoch}"
    tmp = run_dir / f"checkpoint-{epoch}{PARTIAL}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    fsync_tree(tmp)
    (tmp / COMPLETE).write_text(json.dumps({"epoch": epoch}) + "\n")
    fsync_path(tmp / COMPLETE)
    fsync_path(tmp)
    if final.exists():  # a checkpoint of the same epoch (an earlier, overwritten attempt): moved aside, then deleted
        replace_directory(tmp, final)
    else:
        os.rename(tmp, final)
        fsync_path(run_dir)
    for old in run_dir.iterdir():  # only now: every older checkpoint and leftover partial copy
        if old == final:
            continue
        partial = old.name.startswith("checkpoint-") and old.name.endswith(PARTIAL)
        moved_aside = old.name.startswith(".checkpoint-") and ".old-" in old.name  # by an interrupted replace
        if checkpoint_epoch(old) is not None or partial or moved_aside:
            shutil.rmtree(old, ignore_errors=True)
    fsync_path(run_dir)
    return final


# ---------------------------------------------------------------------------------------------------------------------
# a lock per run directory


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """An exclusive `flock` on run_dir/.lock for as long as the block runs; the kernel drops it when the process dies.
    Raises CheckpointError when another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(
                f"--output-dir {run_dir}: expected an unused directory, found another trainer running in it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------------
# nested state as safetensors + JSON


def _split(obj, key: str, tensors: dict, seen: dict):
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:  # safetensors refuses tensors that share memory
            t = t.clone()
        elif ptr is not None:
            seen[ptr] = key
        tensors[key] = t
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype.kind in "ui" else obj.copy())
        return {"__ndarray__": key, "dtype": obj.dtype.str}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: _split(v, f"{key}.{k}", tensors, seen) for k, v in obj.items()}}
        return {"__items__": [[k, _split(v, f"{key}.{i}", tensors, seen)] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_split(v, f"{key}.{i}", tensors, seen) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"{key}: cannot store a {type(obj).__name__} without pickle")


def _join(obj, tensors: dict, source: str):
    if isinstance(obj, list):
        return [_join(v, tensors, source) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy().astype(np.dtype(obj["dtype"]))
    if "__dict__" in obj:
        return {k: _join(v, tensors, source) for k, v in obj["__dict__"].items()}
    if "__items__" in obj:
        return {k: _join(v, tensors, source) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(_join(v, tensors, source) for v in obj["__tuple__"])
    raise CheckpointError(f"{source}: expected an encoded value, found keys {sorted(obj)}")


def save_state(directory: Path, name: str, state) -> None:
    """`state` (nested dicts/lists/tuples of tensors, numpy arrays and JSON scalars) as name.json + name.safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = _split(state, "s", tensors, {})
    save_file(tensors, directory / f"{name}.safetensors", metadata={"format": "pt"})
    (directory / f"{name}.json").write_text(json.dumps(encoded) + "\n")


def load_state(directory: Path, name: str):
    source = directory / f"{name}.json"
    try:
        encoded = json.loads(source.read_text())
        check_safetensors(directory / f"{name}.safetensors")  # a corrupt file: one line naming it
        tensors = load_file(directory / f"{name}.safetensors")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{source}: expected a readable trainer state, got {type(e).__name__}: {e}") from None
    return _join(encoded, tensors, str(source))
