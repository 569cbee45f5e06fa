"""How much of `vivit explain`'s attention falls on the moving shape of the built-in synthetic task.

    python docs/attention_on_shape.py --model runs/vivit-train [--video clip.mp4 --index 0] [--clips 256]

The rollout's share of each tubelet is spread evenly over the tubelet's pixels (and frames); the share on the shape
is the sum over the shape's pixels, from a noise-free rendering of the same clip. A map that ignores the content
would put the shape's share of the pixels on it: that is printed beside it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from vivit.cli.predict import load_model_and_processor, pick_device
from vivit.data.synthetic import SyntheticMotion
from vivit.viz.explain import explain_clip, explain_video


def shape_masks(index: int, split: str, num_frames: int, image_size: int) -> np.ndarray:
    """(T, H, W) bool: the shape's pixels in clip `index` (the same clip without its noise)."""
    data = SyntheticMotion(index + 1, num_frames=num_frames, image_size=image_size, split=split, noise=0.0)
    clip, _ = data.render(index)
    return clip[:, 0] > 0.5  # noise-free: the shape's colour is >= 0.6 in every channel, the background <= 0.4


def share_on_shape(maps, mask: np.ndarray) -> tuple[float, float, float, float]:
    """(the clip's attention share on the shape's pixels, the shape's share of the pixels, the share on the tubelets
    holding any of the shape's pixels, those tubelets' share of the pixels)."""
    t = maps.tubelet_size[0]
    per_frame = maps.pixel_maps()  # each frame's map over its pixels (sums to 1 per frame)
    if maps.temporal is None:
        weights = np.full(per_frame.shape[0], 1.0 / per_frame.shape[0])
    else:
        weights = np.repeat(maps.temporal, t) / t  # a temporal index's share, split evenly over its frames
    joint = per_frame * weights[:, None, None]
    t, ph, pw = maps.tubelet_size
    T, h, w = maps.spatial.shape
    grid = mask[: T * t, : h * ph, : w * pw].reshape(T, t, h, ph, w, pw).any(axis=(1, 3, 5))  # tubelets touched
    touched = np.repeat(np.repeat(np.repeat(grid, t, 0), ph, 1), pw, 2)
    return float((joint * mask).sum()), float(mask.mean()), float((joint * touched).sum()), float(touched.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", default=None, help="a clip written from test-split clip --index (stride 1)")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--clips", type=int, default=256, help="test-split clips measured in memory")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model, processor = load_model_and_processor(args.model, pick_device(args.device))
    frames, size = model.config.num_frames, model.config.image_hw[0]
    result = {}
    if args.video:
        maps = explain_video(model, processor, args.video, stride=1)
        on, area, tub, tub_area = share_on_shape(maps, shape_masks(args.index, "test", frames, size))
        result["video"] = {
            "share_on_shape": round(on, 4),
            "shape_area_share": round(area, 4),
            "share_on_shape_tubelets": round(tub, 4),
            "shape_tubelets_area_share": round(tub_area, 4),
        }
    data = SyntheticMotion(args.clips, num_frames=frames, image_size=size, split="test")
    rows = []
    for index in range(args.clips):
        clip, _ = data.render(index)
        clip = np.round(clip.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
        rows.append(share_on_shape(explain_clip(model, processor, clip), shape_masks(index, "test", frames, size)))
    on, area, tub, tub_area = np.array(rows).T
    result["clips"] = {
        "count": args.clips,
        "share_on_shape_mean": round(float(on.mean()), 4),
        "share_on_shape_min": round(float(on.min()), 4),
        "shape_area_share_mean": round(float(area.mean()), 4),
        "share_on_shape_tubelets_mean": round(float(tub.mean()), 4),
        "share_on_shape_tubelets_min": round(float(tub.min()), 4),
        "shape_tubelets_area_share_mean": round(float(tub_area.mean()), 4),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
