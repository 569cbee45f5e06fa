"""MODELED: how many CPU cores keep one GPU fed with ViViT-B/16x2 (Model 1, 32x224^2) training clips.

GPU side: a training step costs ~3x the forward FLOPs (backward ~2x); clips/s = peak x MFU / step FLOPs. The forward
FLOPs come from the formula below and are checked against `torch.utils.flop_counter` on the meta device (no compute).
CPU side: the per-core seconds of one clip, decode + augment, as measured by bench/bench_loader.py
(`test_vivit_b_clip_cost_per_core`), given on the command line. Cores needed = GPU clips/s x core-seconds per clip.

    python bench/gpu_feeding_model.py --clip-ms light=600 videomae=1450 [--mfu 0.4 0.15] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse

# ViViT-B/16x2: 32 frames of 224^2, tubelets 2x16x16, 12 layers of width 768 and MLP 3072, Kinetics-400 head
FRAMES, SIZE, TUBELET, WIDTH, LAYERS, MLP, LABELS = 32, 224, (2, 16, 16), 768, 12, 3072, 400
H100_BF16_DENSE_TFLOPS = 989  # spec sheet, SXM, dense (the H200 has the same compute peak)


def forward_flops() -> float:
    """FLOPs of one clip's forward pass (a multiply-add is 2 FLOPs); every matmul, attention's two included."""
    t, p, q = TUBELET
    patches = (FRAMES // t) * (SIZE // p) * (SIZE // q)
    tokens = patches + 1  # + CLS
    embed = 2 * patches * (3 * t * p * q) * WIDTH
    linear = 2 * tokens * WIDTH * (3 * WIDTH + WIDTH + 2 * MLP)  # QKV, output projection, MLP in and out
    attention = 4 * tokens**2 * WIDTH  # QK^T and AV over all heads
    return embed + LAYERS * (linear + attention) + 2 * WIDTH * LABELS


def counted_forward_flops() -> float:
    """The same by torch.utils.flop_counter on the meta device: a check of the formula."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vivit import VivitConfig, VivitForVideoClassification

    config = VivitConfig.from_preset("vivit-b-16x2", backend="eager", num_labels=LABELS)
    with torch.device("meta"):
        model = VivitForVideoClassification(config)
        clip = torch.empty(1, FRAMES, 3, SIZE, SIZE)
    with FlopCounterMode(display=False) as counter:
        model(pixel_values=clip)
    return float(counter.get_total_flops())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip-ms", nargs="+", required=True, metavar="RECIPE=MS", help="core-ms per clip, per recipe")
    p.add_argument("--mfu", nargs="+", type=float, default=[0.4], help="model FLOP utilisation(s) to assume")
    p.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS, help="bf16 dense peak")
    args = p.parse_args(argv)
    clip_ms = {}
    for item in args.clip_ms:
        recipe, _, ms = item.partition("=")
        try:
            clip_ms[recipe] = float(ms)
        except ValueError:
            p.error(f"--clip-ms: expected RECIPE=MS (e.g. light=600), got {item!r}")
    fwd, counted = forward_flops(), counted_forward_flops()
    if abs(fwd - counted) > 1e-6 * counted:
        raise SystemExit(f"formula {fwd / 1e9:.2f} GFLOP != flop_counter {counted / 1e9:.2f} GFLOP")
    step = 3 * fwd
    print(
        f"MODELED: forward {fwd / 1e9:.1f} GFLOP/clip (formula = flop_counter), training step ~3x = "
        f"{step / 1e12:.2f} TFLOP/clip, peak {args.peak_tflops:g} TFLOP/s bf16 dense"
    )
    print(
        "| MFU | GPU step clips/s (model) | "
        + " | ".join(f"cores for {r} ({ms:.0f} core-ms/clip)" for r, ms in clip_ms.items())
        + " |"
    )
    print("|---|---|" + "---|" * len(clip_ms))
    for mfu in args.mfu:
        rate = args.peak_tflops * 1e12 * mfu / step
        cores = " | ".join(f"{rate * ms / 1e3:.0f}" for ms in clip_ms.values())
        print(f"| {100 * mfu:.0f} % | {rate:.0f} | {cores} |")


if __name__ == "__main__":
    main()
