"""The errors the `vivit` commands turn into one line on stderr and an exit status (see vivit/cli.py). No heavy
imports here: `vivit --help` and the argument checks load without torch."""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint or run directory that cannot be used as asked (a one-line message naming it); exit status 1."""

    code = 1


class UsageError(CheckpointError, ValueError):
    """Arguments or option values that cannot work (exit status 2): raised by the commands' argument checks, and for
    argparse errors by `vivit.cli.run_command`."""

    code = 2


__all__ = ["CheckpointError", "UsageError"]
