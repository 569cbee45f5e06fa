"""`type=` helpers for the commands' argparse options: each checks one value and, when it is wrong, raises
`argparse.ArgumentTypeError` with a message naming the expected value and the value received (argparse prefixes the
option's name). They return the plain value (int, float, str) so that options saved with a run stay JSON."""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable, Iterable

from vivit.errors import UsageError


def check_new_output(option: str, path: str | os.PathLike, overwrite: bool) -> None:
    """Refuse, as a usage error, an output file that would replace an existing one without --overwrite."""
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: expected a file name, found a directory")
    if os.path.lexists(path) and not overwrite:
        raise UsageError(f"{option} {path}: expected a new file, found one (pass --overwrite to replace it)")


__all__ = [
    "UsageError",
    "choice",
    "compile_backend",
    "data_source",
    "device",
    "existing_dir",
    "existing_file",
    "existing_path",
    "float_range",
    "int_range",
    "non_negative_float",
    "non_negative_int",
    "output_dir",
    "positive_float",
    "positive_int",
    "probability",
    "unit_interval",
    "views",
]


def _named(name: str, function: Callable) -> Callable:
    function.__name__ = name  # argparse shows it in some messages and in the help
    return function


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high] (None: unbounded on that side)."""
    if low is not None and high is not None:
        expected = f"an integer in [{low}, {high}]"
    elif low is not None:
        expected = f"an integer >= {low}"
    elif high is not None:
        expected = f"an integer <= {high}"
    else:
        expected = "an integer"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return _named("int", parse)


def float_range(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """A finite float between low and high, each end closed unless `*_open` (None: unbounded on that side)."""
    if low is not None and high is not None:
        expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        expected = f"a number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        expected = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        expected = "a finite number"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r} (not finite)")
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text.strip()}")
        return value

    return _named("float", parse)


positive_int = _named("positive_int", int_range(1))
non_negative_int = _named("non_negative_int", int_range(0))
positive_float = _named("positive_float", float_range(0.0, low_open=True))
non_negative_float = _named("non_negative_float", float_range(0.0))
probability = _named("probability", float_range(0.0, 1.0, high_open=True))  # [0, 1)
unit_interval = _named("unit_interval", float_range(0.0, 1.0))  # [0, 1]


def choice(options: Iterable[str]) -> Callable[[str], str]:
    """One of `options` (exact spelling); use with `metavar` to keep the help short."""
    options = tuple(options)

    def parse(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(options)}, got {text!r}")
        return text

    return _named("choice", parse)


def _what_is(path: str) -> str:
    if not os.path.lexists(path):
        return "no such file or directory"
    if os.path.isdir(path):
        return "a directory"
    if not os.path.exists(path):
        return "a broken link"
    if os.path.isfile(path):
        return "a file"
    mode = os.stat(path).st_mode
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def existing_file(text: str) -> str:
    """A path to a regular file that exists and can be read."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"expected an existing file, got {text!r} ({_what_is(text)})")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"expected a readable file, got {text!r} (permission denied)")
    return text


def existing_dir(text: str) -> str:
    """A path to a directory that exists."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected an existing directory, got {text!r} ({_what_is(text)})")
    return text


def existing_path(text: str) -> str:
    """A file or a directory that exists."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"expected an existing file or directory, got {text!r} ({_what_is(text)})")
    return text


def output_dir(text: str) -> str:
    """A directory to write into: an existing directory, or a path whose nearest existing parent is a directory."""
    if not text:
        raise argparse.ArgumentTypeError("expected a directory path, got ''")
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected a directory, got {text!r} ({_what_is(text)})")
    parent = os.path.dirname(os.path.abspath(text))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"expected a directory path, got {text!r} ({parent} is a file)")
    return text


def data_source(text: str) -> str:
    """'synthetic' (the built-in task) or an existing folder or file (a dataset spec, see `vivit.data.spec`)."""
    if text != "synthetic" and not os.path.exists(text):
        raise argparse.ArgumentTypeError(
            f"expected 'synthetic' or an existing folder or file, got {text!r} ({_what_is(text)})"
        )
    return text


def views(text: str) -> str:
    """'NxM': N temporal clips x M spatial crops, both >= 1 (returned as given, e.g. '4x3')."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected NxM (temporal clips x spatial crops, both >= 1, e.g. 4x3), got {text!r}"
        )
    return text


def device(text: str) -> str:
    """A device torch can use on this machine (cpu, cuda, cuda:1, ...), as its canonical name."""
    import torch

    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a device such as cpu, cuda or cuda:1, got {text!r}") from None
    if parsed.type != "cpu":
        backend = getattr(torch, parsed.type, None)
        if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
            raise argparse.ArgumentTypeError(f"expected a device available on this machine, got {text!r}")
        count = backend.device_count() if hasattr(backend, "device_count") else 1
        if parsed.index is not None and parsed.index >= count:
            raise argparse.ArgumentTypeError(
                f"expected a device index below {count} ({count} {parsed.type} device(s) here), got {text!r}"
            )
    return str(parsed)


def compile_backend(text: str) -> str:
    """A torch.compile backend registered in this installation (e.g. inductor, eager, aot_eager)."""
    import torch._dynamo

    names = torch._dynamo.list_backends(exclude_tags=())
    if text not in names:
        raise argparse.ArgumentTypeError(f"expected a torch.compile backend ({', '.join(names)}), got {text!r}")
    return text
