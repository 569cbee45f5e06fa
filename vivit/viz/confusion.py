"""Confusion matrices: PREFIX.confusion.json (the counts) and PREFIX.confusion.png (the picture), as `vivit eval`
writes them.

The JSON file holds `labels` (class names, in class-index order) and `matrix` (rows: true class, columns: predicted
top-1 class, each cell a number of videos). The picture colours each cell by its share of the row (the fraction of
the true class's videos predicted as that class), so rare and common classes read alike; cells also show their counts
up to TEXT_MAX_CLASSES classes, and tick labels name every class up to TICKS_MAX_CLASSES.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vivit.viz.figures import new_figure, save_png

TEXT_MAX_CLASSES = 30
TICKS_MAX_CLASSES = 60


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: rows true class, columns predicted class."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"predictions: expected {labels.shape[0]} (one per label), got {predictions.shape[0]}")
    for name, values in (("labels", labels), ("predictions", predictions)):
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            raise ValueError(f"{name}: expected class indices in [0, {num_classes}), got {int(values[bad][0])}")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def plot_confusion(matrix, class_names, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw `matrix` (rows true, columns predicted) into the PNG `path` (atomically); returns it."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    if matrix.shape != (n, n):
        raise ValueError(f"matrix: expected shape ({n}, {n}) (one row and column per class), got {matrix.shape}")
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    side = min(20.0, max(6.0, 0.3 * n + 3.0))  # inches: grows with the classes, bounded
    fig, ax = new_figure(side + 1.5, side)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's videos")
    if n <= TICKS_MAX_CLASSES:
        size = "medium" if n <= 12 else "small" if n <= 30 else "x-small"
        ax.set_xticks(range(n), [str(c) for c in class_names], rotation=90, fontsize=size)
        ax.set_yticks(range(n), [str(c) for c in class_names], fontsize=size)
    else:  # a name per tick would overlap: class indices at a readable spacing instead
        ax.set(xlabel="predicted class (index)", ylabel="true class (index)")
    if n <= TEXT_MAX_CLASSES:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    colour = "white" if shares[i, j] > 0.5 else "black"
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=colour, fontsize="small")
    ax.set_xlabel("predicted class" + (" (index)" if n > TICKS_MAX_CLASSES else ""))
    ax.set_ylabel("true class" + (" (index)" if n > TICKS_MAX_CLASSES else ""))
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    ax.set_title(title or f"confusion matrix: {correct}/{total} videos on the diagonal")
    fig.tight_layout()
    return save_png(fig, path)


def confusion_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """(PREFIX.confusion.json, PREFIX.confusion.png)."""
    prefix = str(prefix)
    return Path(prefix + ".confusion.json"), Path(prefix + ".confusion.png")


def write_confusion(prefix: str | os.PathLike, matrix, class_names, title: str | None = None) -> tuple[Path, Path]:
    """PREFIX.confusion.json ({"labels", "matrix"}) and PREFIX.confusion.png, each written atomically."""
    from vivit.training.checkpointing import write_text_durably

    json_path, png_path = confusion_paths(prefix)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(matrix)
    text = json.dumps({"labels": [str(c) for c in class_names], "matrix": matrix.tolist()}) + "\n"
    write_text_durably(json_path, text)
    plot_confusion(matrix, class_names, png_path, title=title)
    return json_path, png_path


__all__ = ["confusion_matrix", "confusion_paths", "plot_confusion", "write_confusion"]
