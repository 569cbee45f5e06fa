"""Top-1/top-5 accuracy: `evaluate(model, loader)` for training loops and `vivit eval` for saved models.

    vivit eval --model DIR --data (FOLDER|LIST.csv|KINETICS.csv|SSV2.json) [--split val] [--views 4x3]
               [--batch-size 2] [--workers 2] [--json] [--topk 5] [--out preds.jsonl] [--confusion PREFIX]
               [--overwrite]

--data is any dataset spec `vivit.data.spec.open_dataset` reads: a class folder (with or without split folders), an
annotation list (`vivit.data.datasets.read_annotations`: CSV/TSV path,label[,start,end]; integer labels must be below
the model's number of labels), a Kinetics CSV or a Something-Something v2 JSON; class names are looked up in the
model's `label2id`. It evaluates `--split`: by default the val split where the data has one, else every video. Each
video's logits are averaged over its views (temporal clips x spatial crops) before ranking. It prints a per-class
table (videos, top-1 correct, accuracy), top-1, top-k and the mean class accuracy; `--out` writes every video's top-k
predictions and, with `--confusion` or beside `--out`, the confusion matrix (vivit/cli/eval_report.py,
vivit/viz/confusion.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from tqdm import tqdm

from vivit.cli import args as cli_args
from vivit.cli.eval_report import format_table, output_files, run_report
from vivit.cli.predict import add_clip_arguments, add_model_arguments, load_model_and_processor, pick_device


@torch.no_grad()
def video_logits(
    model: torch.nn.Module,
    loader,
    *,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = True,
    desc: str = "eval",
):
    """Yield (logits, labels) per batch of `loader`: fp32 logits (B, classes) averaged over each video's views, and
    the labels (B,) checked against the classes, both on `device`.

    pixel_values: (B, F, C, H, W), or (B, V, F, C, H, W) with V views per video whose logits are averaged.
    The model is put in eval mode for the loop and restored afterwards.
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress, file=sys.stderr)
    try:
        for pixel_values, labels in bar:
            if pixel_values.dim() not in (5, 6):
                raise ValueError(
                    "pixel_values: expected (B, F, C, H, W) or multi-view (B, V, F, C, H, W), got shape "
                    f"{tuple(pixel_values.shape)}"
                )
            batch = pixel_values.shape[0]
            views = pixel_values.shape[1] if pixel_values.dim() == 6 else 1
            clips = pixel_values.flatten(0, 1) if pixel_values.dim() == 6 else pixel_values
            clips = clips.to(device, non_blocking=True)
            labels = torch.as_tensor(labels).to(device).view(-1)
            if labels.shape[0] != batch:
                raise ValueError(f"labels: expected {batch} labels for the batch, got {labels.shape[0]}")
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(pixel_values=clips).logits
            logits = logits.float().view(batch, views, -1).mean(1)
            bad = (labels < 0) | (labels >= logits.shape[-1])
            if bad.any():
                raise ValueError(
                    f"labels: expected class indices in [0, {logits.shape[-1]}) (the model's classes), got "
                    f"{int(labels[bad][0])}"
                )
            yield logits, labels
    finally:
        bar.close()  # ends the bar's line, so that an error message starts on its own line
        model.train(was_training)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader,
    *,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> dict:
    """Top-1 and top-5 accuracy of `model` over `loader`'s (pixel_values, labels) batches.

    pixel_values: (B, F, C, H, W), or (B, V, F, C, H, W) with V views per video whose logits are averaged.
    Returns {"top1": float, "top5": float, "num_samples": int}; top-5 is top-k with k = min(5, classes).
    The model is put in eval mode for the loop and restored afterwards.
    """
    top1 = top5 = count = 0
    batches = video_logits(model, loader, device=device, autocast_dtype=autocast_dtype, progress=progress)
    for logits, labels in batches:
        best = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        top1 += (best[:, 0] == labels).sum().item()
        top5 += (best == labels[:, None]).any(-1).sum().item()
        count += labels.shape[0]
    return {"top1": top1 / max(count, 1), "top5": top5 / max(count, 1), "num_samples": count}


# ---------------------------------------------------------------------------------------------------------------------
# `vivit eval`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vivit eval", description="Top-1/top-5 accuracy of a saved model.")
    add_model_arguments(parser)
    parser.add_argument(
        "--data",
        type=cli_args.existing_path,
        required=True,
        help="a class folder (ROOT/CLASS/*.mp4 or ROOT/{train,val,test}/CLASS/*.mp4), a CSV/TSV list "
        "(path,label[,start,end]), a Kinetics CSV or a Something-Something v2 JSON",
    )
    parser.add_argument(
        "--root",
        type=cli_args.existing_dir,
        default=None,
        help="base folder of the list's relative paths / the Kinetics or SSv2 videos (default: the file's folder)",
    )
    parser.add_argument(
        "--split",
        choices=["train", "val", "validation", "test", "all"],
        default=None,
        help="the split to evaluate (default: val where --data has one, else test, else every video)",
    )
    parser.add_argument(
        "--val-fraction",
        type=cli_args.float_range(0.0, 1.0, low_open=True, high_open=True),
        default=0.1,
        help="with --split train/val on data without that split: the held-out share of every class",
    )
    parser.add_argument("--seed", type=cli_args.non_negative_int, default=0, help="seed of that split")
    parser.add_argument(
        "--skip-missing", action="store_true", help="leave out listed videos that do not exist (reports how many)"
    )
    parser.add_argument(
        "--views", type=cli_args.views, default="1x1", help="temporal clips x spatial crops per video, e.g. 4x3"
    )
    add_clip_arguments(parser)
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=2, help="videos per batch")
    parser.add_argument("--workers", type=cli_args.non_negative_int, default=2, help="DataLoader worker processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line, last on stdout")
    parser.add_argument(
        "--topk", type=cli_args.positive_int, default=5, help="k of the top-k accuracy and of --out's predictions"
    )
    parser.add_argument(
        "--out", default=None, help="write every video's top-k predictions here, one JSON line each (preds.jsonl)"
    )
    parser.add_argument(
        "--confusion",
        default=None,
        metavar="PREFIX",
        help="write the confusion matrix as PREFIX.confusion.json and PREFIX.confusion.png (default with --out: "
        "--out without its extension)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out / --confusion files")
    return parser


def _dataset(args, model, processor, num_frames):
    from vivit.data.spec import open_dataset

    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    dataset = open_dataset(
        args.data,
        args.split,
        root=args.root,
        val_fraction=args.val_fraction,
        seed=args.seed,
        class_to_idx=label2id,
        num_classes=model.config.num_labels,
        skip_missing=args.skip_missing,
        num_frames=num_frames,
        stride=args.stride,
        sampling=args.sampling,
        views=args.views,
        processor=processor,
    )
    if dataset.missing:
        print(f"--data {args.data}: skipped {len(dataset.missing)} missing videos", file=sys.stderr)
    return dataset


def main(argv: list[str] | None = None) -> int:
    """The command; errors propagate to `vivit.cli.run_command`, which prints them as one line."""
    args = build_parser().parse_args(argv)
    if (
        args.root is not None
        and os.path.isdir(args.data)
        and not os.path.isfile(os.path.join(args.data, "labels.json"))
    ):
        raise cli_args.UsageError(
            f"--root {args.root}: expected only with an annotation list, a Kinetics CSV or an SSv2 JSON, got "
            f"--data {args.data}"
        )
    files = output_files(args.out, args.confusion, args.overwrite)
    device = pick_device(args.device)
    model, processor = load_model_and_processor(args.model, device)
    num_frames = args.num_frames or model.config.num_frames
    dataset = _dataset(args, model, processor, num_frames)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, num_workers=args.workers, pin_memory=device.type == "cuda"
    )
    result = run_report(
        model, dataset, loader, topk=args.topk, files=files, device=device, progress=not args.no_progress
    )
    result = {"model": args.model, "data": args.data, "views": args.views, **result}
    print(format_table(result["per_class"]))
    k = args.topk
    print(
        f"top1 {result['top1']:.4f}  top{k} {result[f'top{k}']:.4f}  mean class accuracy "
        f"{result['mean_class_accuracy']:.4f}  ({result['num_samples']} videos, views {args.views})"
    )
    if args.json:
        print(json.dumps(result))
    return 0


__all__ = ["evaluate", "main"]


if __name__ == "__main__":
    from vivit.cli import run_command

    sys.exit(run_command("eval", main))
