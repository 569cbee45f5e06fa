"""`vivit predict`: classify one video file with a saved model.

    vivit predict VIDEO --model DIR [--views 4x3] [--topk 5] [--json]

DIR is a Hugging Face ViViT directory or one of ours (config.json with id2label, weights). Its
preprocessor_config.json sets the preprocessing; without one HF's defaults are used (said on stderr). The video is
sampled as the model's `num_frames` frames at `--stride`, in `--views` temporal clips x spatial crops whose logits
are averaged. Errors print one line on stderr: exit status 2 for bad options, 1 for a missing model, a model
without labels or an unreadable video (see vivit/cli.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import torch

from vivit.cli import args as cli_args
from vivit.training.checkpointing import UsageError, model_directory


def fail(command: str, error: BaseException) -> int:
    """Print `error` as one line on stderr (no traceback), `vivit COMMAND: error: ...`, and return its exit status
    (2 for a usage error, 1 otherwise). The commands themselves go through `vivit.cli.run_command`."""
    from vivit.cli import describe, exit_code

    print(f"vivit {command}: error: {describe(error)}", file=sys.stderr)
    return exit_code(error)


def pick_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: expected a device available on this machine, got {name!r}")
    return device


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    bar, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def load_model_and_processor(directory: str, device: torch.device):
    """The classification model (with trained labels) and its processor from a model directory."""
    from vivit.data.processing import PREPROCESSOR_CONFIG_NAME, VivitImageProcessor
    from vivit.models.modeling import VivitForVideoClassification

    directory = str(model_directory(directory))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--model {directory}: no such model directory")
    config_file = os.path.join(directory, "config.json")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"--model {directory}: no config.json (not a model directory)")
    try:
        with open(config_file, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--model {directory}: config.json is not readable JSON ({e})") from e
    if not raw.get("id2label") or raw.get("num_labels", 1) == 0:
        raise ValueError(f"--model {directory}: config.json has no labels (id2label); cannot name predictions")
    with _quiet_transformers():  # a command-line tool: its own messages below, not the loader's progress bar
        model, info = VivitForVideoClassification.from_pretrained(directory, output_loading_info=True)
    model = model.to(device).eval()
    missing = sorted(info.get("missing_keys", ()))
    if any(key.startswith("classifier.") for key in missing):
        raise ValueError(f"--model {directory}: the checkpoint has no trained classification head (missing {missing})")
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            print(f"vivit: warning: {directory}: {kind.replace('_', ' ')}: {sorted(info[kind])}", file=sys.stderr)

    if os.path.isfile(os.path.join(directory, PREPROCESSOR_CONFIG_NAME)):
        processor = VivitImageProcessor.from_pretrained(directory)
    else:
        processor = VivitImageProcessor()
        print(
            f"vivit: note: {directory} has no {PREPROCESSOR_CONFIG_NAME}; using the default preprocessing "
            "(HF's: shortest edge 256, center crop 224, values in [-3, 1])",
            file=sys.stderr,
        )
    crop = (processor.crop_size["height"], processor.crop_size["width"])
    if processor.do_center_crop and crop != tuple(model.config.image_hw):
        raise ValueError(
            f"--model {directory}: the processor crops {crop[0]}x{crop[1]} but the model expects "
            f"{model.config.image_hw[0]}x{model.config.image_hw[1]} frames"
        )
    return model.eval(), processor


@torch.no_grad()
def classify(
    model,
    processor,
    video: str,
    *,
    views: str = "1x1",
    num_frames: int | None = None,
    stride: int = 2,
    sampling: str = "strided",
    batch_size: int = 4,
) -> torch.Tensor:
    """Class probabilities (num_labels,) of a video file, logits averaged over the views."""
    from vivit.data.io import read_clips
    from vivit.data.transforms import EvalTransform, parse_views

    num_clips, num_crops = parse_views(views)
    clips = read_clips(video, num_frames or model.config.num_frames, num_clips, stride=stride, sampling=sampling)
    pixel_values = EvalTransform(processor, num_crops=num_crops)(clips)  # (V, T, C, H, W)
    if pixel_values.dim() == 4:
        pixel_values = pixel_values[None]
    device = next(model.parameters()).device
    logits = torch.cat(
        [model(pixel_values=chunk.to(device)).logits.float() for chunk in pixel_values.split(batch_size)]
    )
    return logits.mean(0).softmax(-1).cpu()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model and --device, as every command that runs a saved model takes them."""
    parser.add_argument(
        "--model",
        type=cli_args.existing_dir,
        required=True,
        help="model directory (HF or vivit: config.json + weights) or a training run directory",
    )
    parser.add_argument(
        "--device", type=cli_args.device, default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)"
    )


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """The clip-sampling options `vivit predict` and `vivit eval` share."""
    parser.add_argument(
        "--num-frames", type=cli_args.positive_int, default=None, help="frames per clip (default: the model's)"
    )
    parser.add_argument(
        "--stride", type=cli_args.positive_int, default=2, help="frame stride of a clip (ViViT-B/16x2: 2)"
    )
    parser.add_argument("--sampling", choices=("strided", "uniform"), default="strided")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vivit predict", description="Classify a video file with a saved model.")
    parser.add_argument("video", type=cli_args.existing_file, help="the video file")
    add_model_arguments(parser)
    parser.add_argument(
        "--views", type=cli_args.views, default="1x1", help="temporal clips x spatial crops, e.g. 4x3 (default 1x1)"
    )
    parser.add_argument("--topk", type=cli_args.positive_int, default=5, help="how many labels to print")
    add_clip_arguments(parser)
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=4, help="views per forward pass")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line, last on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command; errors propagate to `vivit.cli.run_command`, which prints them as one line."""
    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    model, processor = load_model_and_processor(args.model, device)
    probs = classify(
        model,
        processor,
        args.video,
        views=args.views,
        num_frames=args.num_frames,
        stride=args.stride,
        sampling=args.sampling,
        batch_size=args.batch_size,
    )
    scores, ids = probs.topk(min(args.topk, probs.numel()))
    id2label = model.config.id2label
    predictions = [
        {"label": str(id2label.get(int(i), i)), "id": int(i), "score": float(s)} for s, i in zip(scores, ids)
    ]
    for p in predictions:
        print(f"{p['score']:.4f}  {p['label']}")
    if args.json:
        print(json.dumps({"video": args.video, "model": args.model, "views": args.views, "predictions": predictions}))
    return 0


__all__ = ["classify", "load_model_and_processor", "main"]


if __name__ == "__main__":
    from vivit.cli import run_command

    sys.exit(run_command("predict", main))
