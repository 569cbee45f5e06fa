"""Processor row: our batched torch VivitImageProcessor against Hugging Face's per-frame one.

Input: one 32-frame 360x640 uint8 clip as a (T, H, W, C) numpy array (what a decoder returns); both processors use
their defaults (shortest edge 256, center crop 224, rescale with offset, normalize), `return_tensors="pt"`. HF gets
`list(clip)` (it rejects a 4-D array). Throughput is on the bytes of the input clip.
"""

from __future__ import annotations

import _harness as H
import numpy as np
import pytest
import torch


def test_processor_vs_hf(benchmark):
    transformers = pytest.importorskip("transformers")
    from vivit.data.processing import VivitImageProcessor

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, size=(32, 360, 640, 3), dtype=np.uint8)
    ours = VivitImageProcessor()
    hf = transformers.VivitImageProcessor()

    def run_ours():
        return ours(clip, return_tensors="pt")["pixel_values"]

    def run_hf():
        return hf(list(clip), return_tensors="pt")["pixel_values"]

    # Same output (the processor's parity tests bound it per pixel; here a coarse guard that we time the same job).
    a, b = run_ours(), run_hf()
    assert a.shape == b.shape == (1, 32, 3, 224, 224), (a.shape, b.shape)
    assert (a - b).abs().mean().item() < 0.01, "processor output differs from HF's"
    H.compare(
        benchmark,
        "processor 32x360x640 uint8",
        ("vivit", run_ours),
        {"HF VivitImageProcessor": run_hf},
        bytes=clip.nbytes,
        dtype=torch.float32,
        group="processor",
    )
