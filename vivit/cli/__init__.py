"""The `vivit` command: one sub-command per job, each implemented in its own module, all run through one error
handler (`run_command`).

Errors end a command with one line on stderr, `vivit COMMAND: error: MESSAGE`, and an exit status: 2 for a usage
error (an argparse error, a bad option value, options that conflict: `UsageError`), 1 for anything else (a file, the
data, the model; OSError as "PATH: reason"), 130 when interrupted (Ctrl-C). `--debug` (before or after the command
name) or the environment variable VIVIT_DEBUG=1 print the full traceback as well.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence

from vivit.errors import CheckpointError, UsageError

# sub-command -> (module with a `main(argv) -> int`, one-line help)
COMMANDS = {
    "train": ("vivit.training.train", "train or fine-tune a model (default: the built-in synthetic task)"),
    "predict": ("vivit.cli.predict", "classify a video file with a saved model"),
    "eval": ("vivit.cli.evaluate", "top-1/top-5 accuracy of a saved model over a dataset"),
    "convert": ("vivit.models.convert", "convert a scenic (Flax) ViViT checkpoint to a Hugging Face directory"),
    "explain": ("vivit.viz.explain", "top labels and attention over the frames of a video, drawn as a picture"),
    "plot": ("vivit.viz.curves", "draw the training curves of one or more runs"),
}

DEBUG_FLAG = "--debug"
EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

__all__ = ["COMMANDS", "UsageError", "describe", "exit_code", "main", "run_command", "strip_debug"]


def _usage() -> str:
    lines = ["usage: vivit [--debug] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `vivit COMMAND --help` for a command's options; --debug shows the traceback of an error."]
    return "\n".join(lines)


def strip_debug(argv: Sequence[str]) -> tuple[bool, list[str]]:
    """(whether --debug was given, argv without it); arguments after a `--` are left alone (they may be file names)."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    found = DEBUG_FLAG in argv[:end]
    return found, [a for a in argv[:end] if a != DEBUG_FLAG] + argv[end:]


def _debug_from_env() -> bool:
    return os.environ.get("VIVIT_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def describe(error: BaseException) -> str:
    """One line that says what went wrong, for `vivit CMD: error: <line>`."""
    text = str(error).strip()
    if "Original Traceback" in text:
        # re-raised from a DataLoader worker (its traceback as text, same exception type): the original message, from
        # the traceback's "Type: message" line to the end
        lines = text.splitlines()
        own = re.compile(rf"^(?:[\w.]+\.)?{re.escape(type(error).__name__)}(?:: (.*))?$")
        for i in range(len(lines) - 1, -1, -1):
            found = own.match(lines[i].strip())
            if found:
                text = " ".join([found.group(1) or "", *lines[i + 1 :]]).strip() or type(error).__name__
                break
        else:
            text = lines[-1]
    elif isinstance(error, OSError) and error.strerror:
        paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
        text = f"{' -> '.join(paths)}: {error.strerror}" if paths else error.strerror
    elif isinstance(error, KeyError) and len(error.args) == 1:
        text = f"KeyError: {error.args[0]!r}"
    elif not isinstance(error, (ValueError, OSError, RuntimeError, CheckpointError, argparse.ArgumentError)) and text:
        text = f"{type(error).__name__}: {text}"  # an unexpected kind of error: its name helps
    return " ".join(text.split()) or type(error).__name__


def exit_code(error: BaseException) -> int:
    """2 for usage errors, 130 for an interrupt, 1 for the rest."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, (UsageError, argparse.ArgumentError)):
        return EXIT_USAGE
    if isinstance(error, CheckpointError):
        return int(error.code)
    return EXIT_RUNTIME


def _argparse_error(self: argparse.ArgumentParser, message: str):
    raise UsageError(message)


@contextlib.contextmanager
def _argparse_raises():
    """argparse prints its usage and exits on a bad argument; in a command it raises UsageError instead, so the
    handler prints one line. Parsers that define their own `error` are left as they are."""
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _argparse_error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original


def run_command(
    name: str, main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None, *, debug: bool = False
) -> int:
    """Run `main(argv)` (a command's entry point) and turn what it raises into one line on stderr and an exit status
    (see the module docstring). `--debug` in argv is removed before `main` sees it."""
    found, argv = strip_debug(sys.argv[1:] if argv is None else argv)
    debug = debug or found or _debug_from_env()
    prefix = f"vivit {name}"
    try:
        with _argparse_raises():
            return int(main(argv) or 0)
    except SystemExit as e:  # --help (0), or a command that exits by itself
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(f"{prefix}: error: {' '.join(str(e.code).split())}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            traceback.print_exc()
        sys.stdout.flush()
        print(f"{prefix}: error: {describe(e)}", file=sys.stderr)
        return exit_code(e)


def _load(module_name: str) -> Callable[[list[str]], int | None]:
    def main(argv: list[str]) -> int | None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
                raise RuntimeError(f"this command is not available in this installation ({module_name})") from e
            raise  # a dependency of the command: its name is in the message
        return module.main(argv)

    return main


def main(argv: list[str] | None = None) -> int:
    debug, argv = strip_debug(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vivit: error: unknown command {name!r} (expected one of {', '.join(COMMANDS)})", file=sys.stderr)
        return EXIT_USAGE
    return run_command(name, _load(COMMANDS[name][0]), rest, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
