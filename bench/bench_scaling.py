"""Scaling with the clip length: a training step's time and peak memory, ours against HF, at 8 to 64 frames.

Model 1 at a small hidden size (image 32, tubelet 2x8x8, hidden 64, 2 layers, 2 heads, MLP 256, batch 2), so that
the token count (16 per frame pair, plus CLS) and with it joint attention's quadratic term dominate: 65 tokens at 8
frames, 513 at 64. Ours and HF (SDPA and eager attention) share the weights (our `save_pretrained`, HF's
`from_pretrained`; logits checked equal before timing). Time: interleaved rounds, as every other row; memory: the
harness's peak-memory method. `VIVIT_BENCH_FRAMES=8,16` picks the frame counts (default 8,16,32,64; with
`--benchmark-disable` only the first, against HF sdpa only, as a smoke pass).
"""

from __future__ import annotations

import os

import _harness as H
import pytest
import torch
from bench_model import _hf_from, _ours_label, _setting, _step

DEFAULT_FRAMES = (8, 16, 32, 64)
TUBELET = (2, 8, 8)


def frame_counts() -> tuple[int, ...]:
    """The frame counts to measure: VIVIT_BENCH_FRAMES (comma-separated), else DEFAULT_FRAMES."""
    text = os.environ.get("VIVIT_BENCH_FRAMES")
    if text is None:
        counts = DEFAULT_FRAMES
    else:
        try:
            counts = tuple(int(part) for part in text.split(","))
        except ValueError:
            counts = ()
        if not counts or any(n < TUBELET[0] or n % TUBELET[0] for n in counts):
            raise ValueError(
                f"VIVIT_BENCH_FRAMES must be comma-separated positive multiples of {TUBELET[0]} (e.g. 8,16,32), "
                f"got {text!r}"
            )
    if H.timing_disabled() and text is None:
        return counts[:1]  # smoke pass: the code path once, at the smallest clip
    return counts


def _model(frames: int):
    from vivit import VivitConfig, VivitForVideoClassification

    config = VivitConfig(
        image_size=32,
        num_frames=frames,
        tubelet_size=list(TUBELET),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        num_labels=10,
        backend="auto" if H.on_gpu() else "eager",
    )
    return VivitForVideoClassification(config).to(H.device(), _setting()["dtype"])


@pytest.mark.parametrize("frames", frame_counts())
def test_train_step_vs_frames(benchmark, frames):
    ours = _model(frames)
    batch, dtype = 2, _setting()["dtype"]
    pixels = torch.randn(batch, frames, 3, 32, 32, device=H.device()).to(dtype)
    labels = torch.randint(0, 10, (batch,), device=H.device())
    # The smoke pass (--benchmark-disable) runs the code path against HF sdpa only, to stay short.
    attns = ("sdpa",) if H.timing_disabled() else ("sdpa", "eager")
    models = {_ours_label(): ours, **{f"HF {attn}": _hf_from(ours, attn) for attn in attns}}
    with torch.no_grad():
        for model in models.values():
            model.eval()
        ref = ours(pixel_values=pixels).logits.float()
        for name, model in list(models.items())[1:]:
            err = (model(pixel_values=pixels).logits.float() - ref).abs().max().item()
            tol = 1e-4 if dtype == torch.float32 else 5e-2 * ref.abs().max().item()
            assert err <= tol, f"{name} logits differ from ours by {err:.3g} (> {tol:.3g}) at {frames} frames"
    steps = {name: _step(model, pixels, labels, "train") for name, model in models.items()}
    ours_name = _ours_label()
    row = H.compare(
        benchmark,
        f"Model 1 train, {frames} frames (scaling config)",
        (ours_name, steps.pop(ours_name)),
        steps,
        dtype=dtype,
        group="scaling",
    )
    peaks = {name: H.peak_bytes(_step(model, pixels, labels, "train")) for name, model in models.items()}
    H.SCALING.append(
        dict(frames=frames, ours=ours_name, seconds=dict(row.seconds), peaks=peaks, method=H.peak_memory_method())
    )
    assert all(v > 0 for v in peaks.values()), peaks
