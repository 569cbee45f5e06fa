"""`vivit explain`: a video's top labels and where the model's attention goes, drawn over its frames.

    vivit explain VIDEO --model DIR [--out attention.png] [--gif FILE] [--overwrite] [--topk 5]
                  [--num-frames N] [--stride 2] [--sampling strided|uniform] [--device DEV]

One clip is sampled as `vivit predict` samples it (one view), run with `output_attentions=True` on the eager backend
(the only one that materialises attention probabilities), and reduced by attention rollout (vivit.viz.attention) to
a map over each frame's tubelets and weights over time. The picture shows the model's input frames in time order,
each with its tubelet map overlaid, and the weights over time as bars under them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vivit.viz.attention import VARIANT_NAMES, reduce_attentions


@dataclass
class AttentionMaps:
    """What `explain_video` found for one clip.

    frames: uint8 (T, H, W, C), the model's input frames (resized and cropped as the processor does, before
        rescaling). spatial: (T', h, w), per temporal index the share of each tubelet (each map sums to 1).
    temporal: (T',) the share of each temporal index (sums to 1), or None where the model has no attention over
        time. labels: the top-k (label, probability). tubelet_size: (t, ph, pw), so that temporal index i covers
        frames i*t ... i*t + t - 1 and tubelet (r, c) the pixels [r*ph, (r+1)*ph) x [c*pw, (c+1)*pw).
    """

    frames: np.ndarray
    spatial: np.ndarray
    temporal: np.ndarray | None
    labels: list[tuple[str, float]]
    variant: str
    description: str
    tubelet_size: tuple[int, int, int]

    def pixel_maps(self) -> np.ndarray:
        """(T, H, W) float: each frame's tubelet map spread over its pixels (each tubelet's share divided evenly
        among its ph * pw pixels); pixels the tubelet grid leaves out (a remainder of the crop) get 0."""
        t, ph, pw = self.tubelet_size
        T, H, W = self.frames.shape[:3]
        grid_t, h, w = self.spatial.shape
        per_pixel = np.repeat(np.repeat(self.spatial, ph, axis=1), pw, axis=2) / (ph * pw)
        out = np.zeros((T, H, W), dtype=np.float64)
        out[: grid_t * t, : h * ph, : w * pw] = np.repeat(per_pixel, t, axis=0)
        return out


@contextlib.contextmanager
def _eager_backend(model):
    """The eager backend for the duration: only it returns attention probabilities (config is read at call time)."""
    config = model.config
    saved = config.backend
    config.backend = "eager"
    try:
        yield
    finally:
        config.backend = saved


def _display_frames(clip: np.ndarray, processor) -> np.ndarray:
    """The frames the model sees, as uint8 (T, H, W, C): the processor's resize and crop without rescaling."""
    from vivit.data.transforms import EvalTransform

    plain = copy.deepcopy(processor)
    plain.do_rescale = False
    plain.do_normalize = False
    frames = EvalTransform(plain, num_crops=1)(clip)  # (T, C, H, W) float holding 0..255
    return frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def explain_clip(model, processor, clip: np.ndarray, *, topk: int = 5) -> AttentionMaps:
    """Attention maps and top-k labels of one uint8 clip (T, H, W, C), T = the model's num_frames."""
    from vivit.data.transforms import EvalTransform

    if topk < 1:
        raise ValueError(f"topk: expected >= 1, got {topk}")
    clip = np.asarray(clip)
    if clip.dtype != np.uint8 or clip.ndim != 4:
        raise ValueError(f"clip: expected uint8 frames (T, H, W, C), got {clip.dtype} {tuple(clip.shape)}")
    config = model.config
    if clip.shape[0] != config.num_frames:
        raise ValueError(f"num_frames: the model takes {config.num_frames} frames per clip, got {clip.shape[0]}")
    param = next(model.parameters())
    pixel_values = EvalTransform(processor, num_crops=1)(clip)[None].to(device=param.device, dtype=param.dtype)
    with _eager_backend(model):
        out = model(pixel_values=pixel_values, output_attentions=True, return_dict=True)
    t, ph, pw = config.tubelet_size
    grid = (pixel_values.shape[1] // t, pixel_values.shape[3] // ph, pixel_values.shape[4] // pw)
    maps = reduce_attentions(out.attentions, config, grid)
    probs = out.logits[0].float().softmax(-1).cpu()
    scores, ids = probs.topk(min(topk, probs.numel()))
    labels = [(str(config.id2label.get(int(i), int(i))), float(s)) for s, i in zip(scores, ids)]
    return AttentionMaps(
        frames=_display_frames(clip, processor),
        spatial=maps.spatial[0].cpu().numpy(),
        temporal=None if maps.temporal is None else maps.temporal[0].cpu().numpy(),
        labels=labels,
        variant=config.variant,
        description=maps.description,
        tubelet_size=(t, ph, pw),
    )


def explain_video(
    model,
    processor,
    video: str | os.PathLike,
    *,
    num_frames: int | None = None,
    stride: int = 2,
    sampling: str = "strided",
    topk: int = 5,
) -> AttentionMaps:
    """Attention maps and top-k labels of one clip of `video`, sampled as `vivit predict` samples one view."""
    from vivit.data.io import read_clips

    if stride < 1:
        raise ValueError(f"stride: expected >= 1, got {stride}")
    clip = read_clips(video, num_frames or model.config.num_frames, 1, stride=stride, sampling=sampling)[0]
    return explain_clip(model, processor, clip, topk=topk)


# ---------------------------------------------------------------------------------------------------------- drawing
COLORMAP = "inferno"


def _title(maps: AttentionMaps) -> str:
    label, score = maps.labels[0]
    head = f"{VARIANT_NAMES.get(maps.variant, maps.variant)}: {maps.description}"
    return "\n".join(textwrap.wrap(head, 110)) + f"\ntop-1: {label} ({score:.1%})"


def draw_attention(maps: AttentionMaps, path: str | os.PathLike) -> Path:
    """A PNG: the frames in time order with their tubelet maps overlaid (one colour scale for all frames), and the
    weights over time as bars under them. Written atomically; returns the path."""
    from vivit.viz.figures import new_figure, save_png

    T, H, W = maps.frames.shape[:3]
    t, ph, pw = maps.tubelet_size
    h, w = maps.spatial.shape[1:]
    cols = min(T, 4 if T <= 8 else 8)  # at most two rows of four for short clips: tiles large enough to read
    rows = math.ceil(T / cols)
    fig, axes = new_figure(
        2.3 * cols + 1.4,
        2.2 * rows + 2.4,
        nrows=rows + 1,
        ncols=cols,
        squeeze=False,
        gridspec_kw={"height_ratios": [1.0] * rows + [0.9], "hspace": 0.55},
    )
    title = _title(maps)
    fig.suptitle(title, fontsize=9, y=0.98)
    # room for the title's lines (about 0.16 inch each at 9 pt) and the frames' own titles under it
    fig.subplots_adjust(top=0.98 - (0.16 * (title.count("\n") + 1) + 0.3) / fig.get_figheight())
    percent = maps.spatial * 100.0
    vmax = float(percent.max()) or 1.0
    image = None
    for k, ax in enumerate(axes[:rows].flat):
        if k >= T:
            ax.axis("off")
            continue
        frame = maps.frames[k]
        ax.imshow(frame[..., 0] if frame.shape[-1] == 1 else frame, cmap="gray", interpolation="nearest")
        image = ax.imshow(
            percent[k // t],
            cmap=COLORMAP,
            alpha=0.55,
            vmin=0.0,
            vmax=vmax,
            interpolation="nearest",
            extent=(-0.5, w * pw - 0.5, h * ph - 0.5, -0.5),
        )
        ax.set_xlim(-0.5, W - 0.5)
        ax.set_ylim(H - 0.5, -0.5)
        ax.set_title(f"frame {k}", fontsize=9)
        if k == 0:
            ax.set_xlabel("x (pixels)", fontsize=8)
            ax.set_ylabel("y (pixels)", fontsize=8)
            ax.tick_params(labelsize=7)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    colorbar = fig.colorbar(image, ax=axes[:rows].ravel().tolist(), fraction=0.03, pad=0.02)
    colorbar.set_label("share of the frame's\nattention per tubelet (%)", fontsize=8)

    grid_spec = axes[-1, 0].get_gridspec()
    for ax in axes[-1]:
        ax.remove()
    bars = fig.add_subplot(grid_spec[-1, :])
    if maps.temporal is None:
        bars.axis("off")
        bars.text(0.5, 0.5, "no attention over time in this model: its frames are averaged", ha="center")
    else:
        centres = np.arange(len(maps.temporal)) * t + (t - 1) / 2
        bars.bar(centres, maps.temporal * 100.0, width=0.85 * t, color="tab:orange")
        bars.set_xlim(-0.5, T - 0.5)
        bars.set_xticks(range(T))
        bars.set_xlabel(f"frame (one bar per temporal index of {t} frame{'s' if t > 1 else ''})")
        bars.set_ylabel("share of attention\nover time (%)")
        bars.grid(axis="y", alpha=0.3)
    return save_png(fig, path)


def overlay_frames(maps: AttentionMaps, scale: int = 1) -> np.ndarray:
    """uint8 (T, H * scale, W * scale, 3): each frame blended with its tubelet map (one colour scale for all)."""
    from vivit.viz.figures import pyplot

    pyplot()  # matplotlib set up headless before its colormaps are touched
    import matplotlib

    heat = maps.pixel_maps()
    heat = heat / (heat.max() or 1.0)
    colours = matplotlib.colormaps[COLORMAP](heat)[..., :3]
    frames = maps.frames.astype(np.float64) / 255.0
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    blended = np.round((0.45 * frames + 0.55 * colours) * 255.0).astype(np.uint8)
    return np.repeat(np.repeat(blended, scale, axis=1), scale, axis=2)


def save_gif(maps: AttentionMaps, path: str | os.PathLike, *, duration_ms: int = 250, scale: int | None = None) -> Path:
    """An animated GIF of `overlay_frames`, one GIF frame per clip frame, with a bar under each frame showing how
    far into the clip it is. scale: integer upscaling (default: frames at least 256 pixels wide). Atomic."""
    from PIL import Image

    if duration_ms < 1:
        raise ValueError(f"duration_ms: expected >= 1, got {duration_ms}")
    T, H, W = maps.frames.shape[:3]
    scale = scale if scale is not None else max(1, math.ceil(256 / W))
    if scale < 1:
        raise ValueError(f"scale: expected an integer >= 1, got {scale}")
    frames = overlay_frames(maps, scale)
    strip = max(4, scale)
    images = []
    for k, frame in enumerate(frames):
        canvas = np.zeros((frame.shape[0] + strip, frame.shape[1], 3), dtype=np.uint8)
        canvas[: frame.shape[0]] = frame
        canvas[frame.shape[0] :, : round(frame.shape[1] * (k + 1) / T)] = 255  # progress: frame k of T
        images.append(Image.fromarray(canvas))

    from vivit.viz.figures import write_atomically

    def write(f):
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)

    return write_atomically(path, write)


# ---------------------------------------------------------------------------------------------------------- command
def _file_name(suffix: str):
    def parse(text: str) -> str:
        if Path(text).suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"expected a {suffix} file name, got {text!r}")
        return text

    parse.__name__ = f"{suffix[1:]}_file"  # argparse shows it in some messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    from vivit.cli import args as cli_args
    from vivit.cli.predict import add_clip_arguments, add_model_arguments

    parser = argparse.ArgumentParser(
        prog="vivit explain",
        description="Top labels of a video and the model's attention over its frames (attention rollout), as a PNG.",
    )
    parser.add_argument("video", type=cli_args.existing_file, help="the video file")
    add_model_arguments(parser)
    parser.add_argument(
        "--out", type=_file_name(".png"), default="attention.png", help="the PNG to write (default: attention.png)"
    )
    parser.add_argument(
        "--gif", type=_file_name(".gif"), default=None, help="also write an animated GIF of the overlaid frames"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--topk", type=cli_args.positive_int, default=5, help="how many labels to print")
    add_clip_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command; errors propagate to `vivit.cli.run_command`, which prints them as one line."""
    from vivit.cli.args import check_new_output
    from vivit.cli.predict import load_model_and_processor, pick_device
    from vivit.errors import UsageError

    args = build_parser().parse_args(argv)
    check_new_output("--out", args.out, args.overwrite)
    if args.gif is not None:
        check_new_output("--gif", args.gif, args.overwrite)
    device = pick_device(args.device)
    model, processor = load_model_and_processor(args.model, device)
    if args.num_frames is not None and args.num_frames != model.config.num_frames:
        raise UsageError(
            f"--num-frames: expected the model's {model.config.num_frames} frames per clip, got {args.num_frames}"
        )
    maps = explain_video(
        model,
        processor,
        args.video,
        num_frames=args.num_frames,
        stride=args.stride,
        sampling=args.sampling,
        topk=args.topk,
    )
    for label, score in maps.labels:
        print(f"{score:.4f}  {label}")
    draw_attention(maps, args.out)
    print(f"vivit explain: wrote {args.out}", file=sys.stderr)
    if args.gif is not None:
        save_gif(maps, args.gif)
        print(f"vivit explain: wrote {args.gif}", file=sys.stderr)
    return 0


__all__ = ["AttentionMaps", "draw_attention", "explain_clip", "explain_video", "main", "overlay_frames", "save_gif"]


if __name__ == "__main__":
    from vivit.cli import run_command

    sys.exit(run_command("explain", main))
