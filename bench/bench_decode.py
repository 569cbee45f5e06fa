"""Decode row: one training sample (32 frames at stride 2, random offset) per call, PyAV against torchcodec.

Input: a 10 s 1280x720 25 fps H.264 file (key frame every 2 s, a moving gradient) encoded once into a temporary
folder; under `--benchmark-disable` (the CI smoke pass) a 1 s 128x96 file instead. Each candidate draws its clip
offsets from its own generator with the same seed, so all see the same sequence of clips. One process, no DataLoader
workers: "1 thread" is a worker's setting, "default threads" the main process's (min(4, cores)). The note gives
clips/s (1 / median wall seconds per clip) and the CPU seconds per clip (all threads, median of CPU_CALLS calls
each, interleaved), which a shared machine's load disturbs less than wall time and which is what DataLoader workers
that fill the cores pay.
"""

from __future__ import annotations

import time
from fractions import Fraction

import _harness as H
import numpy as np
import pytest

from vivit.data.io import read_video
from vivit.data.video_backend import torchcodec_problem

NUM_FRAMES, STRIDE, FPS, GOP = 32, 2, 25, 50
CPU_CALLS = 9


def encode(path, seconds: int, height: int, width: int) -> str:
    import av

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.codec_context.time_base = Fraction(1, FPS)
        for t in range(seconds * FPS):
            # a gradient that moves every frame: motion for the encoder, not noise (which no real video looks like)
            red = 127 + 120 * np.sin((x + 6 * t) / 40)
            green = 127 + 120 * np.cos((y - 3 * t) / 30)
            blue = (x + y + 4 * t) % 256
            frame = np.stack([red, green, blue], -1).astype(np.uint8)
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = t
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    if H.timing_disabled():
        return encode(tmp_path_factory.mktemp("decode") / "smoke.mp4", 1, 96, 128)
    return encode(tmp_path_factory.mktemp("decode") / "720p.mp4", 10, 720, 1280)


def sampler(path, backend, num_threads):
    rng = np.random.default_rng(0)

    def decode():
        return read_video(
            path, NUM_FRAMES, stride=STRIDE, random_offset=True, generator=rng, backend=backend, num_threads=num_threads
        )

    return decode


def test_decode_pyav_vs_torchcodec(benchmark, video):
    problem = torchcodec_problem()
    candidates = {
        "PyAV, default threads": sampler(video, "pyav", None),
        "torchcodec, 1 thread": sampler(video, "torchcodec", 1),
        "torchcodec, default threads": sampler(video, "torchcodec", None),
    }
    skipped = {}
    if problem is not None:
        skipped = {name: problem for name in candidates if name.startswith("torchcodec")}
        candidates = {name: fn for name, fn in candidates.items() if name not in skipped}
    ours = ("PyAV, 1 thread", sampler(video, "pyav", 1))
    clip = ours[1]()
    assert clip.shape[:1] == (NUM_FRAMES,) and clip.dtype == np.uint8, clip.shape
    row = H.compare(
        benchmark,
        f"decode {NUM_FRAMES}x stride {STRIDE} {clip.shape[2]}x{clip.shape[1]} H.264",
        ours,
        candidates,
        bytes=clip.nbytes,
        skipped=skipped,
        group="decode",
    )
    if not H.timing_disabled():
        cpu = cpu_seconds({ours[0]: ours[1], **candidates})
        row.note = "clips/s: " + ", ".join(f"{name} {1 / s:.2f}" for name, s in row.seconds.items())
        row.note += "; CPU s/clip: " + ", ".join(f"{name} {s:.3f}" for name, s in cpu.items())
        print(f"\n{row.op}: {row.note}")


def cpu_seconds(candidates: dict) -> dict:
    """Median process CPU time (all threads) per call of each candidate, calls interleaved."""
    spent = {name: [] for name in candidates}
    for _ in range(CPU_CALLS):
        for name, fn in candidates.items():
            start = time.process_time()
            fn()
            spent[name].append(time.process_time() - start)
    return {name: float(np.median(s)) for name, s in spent.items()}
