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


def write_atomically(path: str | os.PathLike, write) -> Path:
    """Call `write(binary file)` on a temporary file beside `path`, fsync it, then rename it over `path`: readers see
    the old file or the whole new one, never a part. The file gets the umask's permissions (mkstemp's are 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write `fig` to `path` as PNG atomically (see `write_atomically`); close it."""
    try:
        return write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    finally:
        pyplot().close(fig)


__all__ = ["DPI", "MIN_HEIGHT", "MIN_WIDTH", "new_figure", "pyplot", "save_png", "write_atomically"]
