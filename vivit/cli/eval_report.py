"""What `vivit eval` reports beyond top-1/top-k: per-class accuracy, mean class accuracy, every video's top-k
predictions (a JSON-lines file) and the confusion matrix (vivit/viz/confusion.py).

preds.jsonl: one line per video, in dataset order: {"path": the video file, "label": its true class name,
"topk": [{"label": class name, "score": probability}, ...]} (scores: softmax of the logits averaged over the views,
best first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vivit.cli.args import check_new_output
from vivit.viz.confusion import confusion_matrix, confusion_paths, write_confusion


def collect_scores(model, loader, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (N, classes), labels (N,)) on the CPU, one row per video of `loader`, in its order; `kwargs`
    go to `vivit.cli.evaluate.video_logits` (device, autocast_dtype, progress)."""
    from vivit.cli.evaluate import video_logits  # here: vivit.cli.evaluate imports this module

    probs, labels = [], []
    for logits, batch_labels in video_logits(model, loader, **kwargs):
        probs.append(logits.softmax(-1).cpu())
        labels.append(batch_labels.cpu())
    if not probs:
        raise ValueError("data: expected at least one video, got an empty dataset")
    return torch.cat(probs), torch.cat(labels)


def classification_report(probs: torch.Tensor, labels: torch.Tensor, class_names, topk: int = 5) -> dict:
    """Accuracy figures from per-video probabilities (N, C) and true labels (N,).

    Returns {"top1", "top5", f"top{topk}" (when topk != 5), "mean_class_accuracy", "num_samples", "per_class",
    "confusion"}: top-k counts a video as right when its label is among its min(k, C) best classes; "per_class" lists,
    for every class with at least one video, {"label", "id", "videos", "correct" (top-1), "accuracy"};
    "mean_class_accuracy" is the mean of those accuracies (each class weighs the same, however many videos it has);
    "confusion" is the (C, C) count matrix, rows true class, columns top-1 prediction.
    """
    if topk < 1:
        raise ValueError(f"--topk: expected >= 1, got {topk}")
    num_classes = probs.shape[-1]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names: expected {num_classes} (one per class), got {len(class_names)}")
    ranked = probs.argsort(dim=-1, descending=True)

    def top(k: int) -> float:
        return int((ranked[:, : min(k, num_classes)] == labels[:, None]).any(-1).sum()) / labels.shape[0]

    predicted = ranked[:, 0]
    matrix = confusion_matrix(labels.numpy(), predicted.numpy(), num_classes)
    per_class = []
    for c in range(num_classes):
        videos = int(matrix[c].sum())
        if videos:
            correct = int(matrix[c, c])
            per_class.append(
                {
                    "label": str(class_names[c]),
                    "id": c,
                    "videos": videos,
                    "correct": correct,
                    "accuracy": correct / videos,
                }
            )
    report = {"top1": top(1), "top5": top(5)}
    if topk != 5:
        report[f"top{topk}"] = top(topk)
    report["mean_class_accuracy"] = sum(p["accuracy"] for p in per_class) / len(per_class)
    report["num_samples"] = int(labels.shape[0])
    report["per_class"] = per_class
    report["confusion"] = matrix
    return report


def format_table(per_class: list[dict]) -> str:
    """The per-class numbers as an aligned text table."""
    width = max([len("class")] + [len(p["label"]) for p in per_class])
    lines = [f"{'class':<{width}}  {'videos':>6}  {'correct':>7}  {'accuracy':>8}"]
    for p in per_class:
        lines.append(f"{p['label']:<{width}}  {p['videos']:>6}  {p['correct']:>7}  {p['accuracy']:>8.4f}")
    return "\n".join(lines)


def prediction_lines(paths, labels, probs: torch.Tensor, class_names, topk: int) -> list[str]:
    """preds.jsonl's lines: one JSON object per video (path, true label, top-k labels with their scores)."""
    scores, ids = probs.topk(min(topk, probs.shape[-1]), dim=-1)
    lines = []
    for path, label, row_scores, row_ids in zip(paths, labels.tolist(), scores.tolist(), ids.tolist()):
        best = [{"label": str(class_names[i]), "score": s} for s, i in zip(row_scores, row_ids)]
        lines.append(json.dumps({"path": path, "label": str(class_names[label]), "topk": best}))
    return lines


def output_files(out: str | None, confusion: str | None, overwrite: bool) -> dict:
    """The files `vivit eval` will write: {"predictions": path or None, "confusion": prefix or None}; the confusion
    prefix defaults to --out without its extension. Refuses, by name, a file that exists unless `overwrite`."""
    prefix = confusion if confusion is not None else (None if out is None else os.path.splitext(out)[0])
    files = {"predictions": None if out is None else Path(out), "confusion": prefix}
    targets = [("--out", files["predictions"])] if out is not None else []
    if prefix is not None:
        flag = "--confusion" if confusion is not None else "--out"
        targets += [(flag, p) for p in confusion_paths(prefix)]
    for flag, path in targets:
        check_new_output(flag, path, overwrite)
    return files


def write_outputs(files: dict, report: dict, paths, labels, probs, class_names, topk: int) -> None:
    """preds.jsonl and the confusion files named by `files` (from `output_files`), each written atomically."""
    from vivit.training.checkpointing import write_text_durably

    if files["predictions"] is not None:
        path = files["predictions"]
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = prediction_lines(paths, labels, probs, class_names, topk)
        write_text_durably(path, "".join(line + "\n" for line in lines))
    if files["confusion"] is not None:
        write_confusion(files["confusion"], report["confusion"], class_names)


def video_paths(dataset, count: int) -> list:
    """The file of each of the dataset's videos (None where the dataset does not say)."""
    samples = getattr(dataset, "samples", None)
    if samples is None or len(samples) != count:
        return [None] * count
    return [str(getattr(s, "path", None)) for s in samples]


def run_report(model, dataset, loader, *, topk: int, files: dict, device=None, progress: bool = True) -> dict:
    """Evaluate `model` over `loader` (built on `dataset`, unshuffled), write the files in `files` and return the
    JSON-ready report (no confusion matrix: that goes to its own file)."""
    probs, labels = collect_scores(model, loader, device=device, progress=progress)
    names = [model.config.id2label.get(i, str(i)) for i in range(probs.shape[-1])]
    report = classification_report(probs, labels, names, topk)
    write_outputs(files, report, video_paths(dataset, len(labels)), labels, probs, names, topk)
    report.pop("confusion")
    return {**report, "topk": topk}


__all__ = [
    "classification_report",
    "collect_scores",
    "format_table",
    "output_files",
    "prediction_lines",
    "run_report",
    "video_paths",
    "write_outputs",
]
