"""Figure plumbing shared by every picture vivit draws: headless matplotlib, a minimum size, atomic PNG writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Every figure is at least this large (pixels) so that it stays legible when embedded in a README.
MIN_WIDTH, MIN_HEIGHT = 640, 480
DPI = 100


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float = 8.0, height: float = 6.0, **subplots_kwargs):
    """(figure, axes) of at least MIN_WIDTH x MIN_HEIGHT pixels; `subplots_kwargs` go to `plt.subplots`."""
    plt = pyplot()
    width = max(width, MIN_WIDTH / DPI)
    height = max(height, MIN_HEIGHT / DPI)
    return plt.subplots(figsize=(width, height), dpi=DPI, **subplots_kwargs)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write `fig` to `path` as PNG atomically (a temporary file in the same folder, fsync, rename); close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file 0600; a figure is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        pyplot().close(fig)
    return path


__all__ = ["DPI", "MIN_HEIGHT", "MIN_WIDTH", "new_figure", "pyplot", "save_png"]
