"""Frame index i is the i-th frame in presentation order: variable frame rate, B-frames, seek and sequential paths."""

import os
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from _helpers import decode_all

import vivit.data.io as vio
from vivit.data.io import VideoReadError, decode_frames, read_clips, read_video, video_info

H, W = 32, 48


def pattern(i):
    """Frame i: its number in binary, six vertical stripes 8 pixels wide (white = 1), so a decoded frame tells it."""
    frame = np.zeros((H, W, 3), np.uint8)
    for bit in range(6):
        if i >> bit & 1:
            frame[:, 8 * bit : 8 * bit + 8] = 255
    return frame


def frame_number(image):
    return sum(1 << bit for bit in range(6) if image[4:-4, 8 * bit + 2 : 8 * bit + 6].mean() > 128)


def encode(path, codec, pts, *, rate=30, b_frames=0, gop=8):
    """One frame per timestamp of `pts` (in 1/rate s units): gaps make the frame rate variable."""
    with av.open(str(path), "w") as container:
        # x264 places B-frames adaptively (none between frames this different): force them when asked for
        options = {"x264opts": f"bframes={b_frames}:b-adapt=0"} if b_frames and codec == "libx264" else {}
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.height, stream.width, stream.pix_fmt = H, W, "yuv420p"
        stream.codec_context.time_base = Fraction(1, rate)
        stream.codec_context.gop_size = gop
        if b_frames:
            stream.codec_context.max_b_frames = b_frames
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(pattern(i), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def packet_pts(path):
    with av.open(str(path)) as container:
        return [p.pts for p in container.demux(video=0) if p.size]


# 30 fps with a one-second gap after frame 29: frames 0-29 at 0-0.97 s, frames 30-59 at 2-2.97 s.
GAP_PTS = list(range(30)) + list(range(60, 90))
CASES = [
    ("vfr_h264.mp4", "libx264", GAP_PTS, 0),
    ("vfr_h264.mkv", "libx264", GAP_PTS, 0),
    ("vfr_mpeg4_b.mp4", "mpeg4", GAP_PTS, 2),  # B-frames: decode order differs from presentation order
    ("vfr_mpeg4_b.avi", "mpeg4", GAP_PTS, 2),
    ("cfr_mpeg4_b.mp4", "mpeg4", list(range(60)), 2),
    ("cfr_h264.mp4", "libx264", list(range(60)), 0),
    ("vfr_h264_b.mp4", "libx264", GAP_PTS, 2),
    ("vfr_h264_b.mkv", "libx264", GAP_PTS, 2),
]
QUERIES = ([5, 6, 7, 40, 50], [0], [29, 30], [59], [45, 3, 45, 31], list(range(60)), [31, 33])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("vfr")
    return {name: encode(root / name, codec, pts, b_frames=b) for name, codec, pts, b in CASES}


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_indices_are_presentation_order(clips, name):
    path = clips[name]
    reference = decode_all(path)  # PyAV decoding the whole file: frames come out in presentation order
    assert len(reference) == 60
    assert [frame_number(f) for f in reference] == list(range(60))  # the encoded pattern survives the codec
    assert video_info(path).num_frames == 60
    for indices in QUERIES:
        frames = decode_frames(path, indices)
        assert [frame_number(f) for f in frames] == indices
        np.testing.assert_array_equal(frames, reference[indices])


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_sequential_path_agrees(clips, name, monkeypatch):
    path = clips[name]
    monkeypatch.setattr(vio, "_SEEKABLE_FORMATS", ())  # no timestamp index: count frames from the start
    vio._INDEX_CACHE.clear()
    try:
        for indices in QUERIES:
            assert [frame_number(f) for f in decode_frames(path, indices, backend="pyav")] == indices
    finally:
        vio._INDEX_CACHE.clear()


def test_b_frames_present(clips):
    for name in ("vfr_mpeg4_b.mp4", "cfr_mpeg4_b.mp4", "vfr_h264_b.mp4", "vfr_h264_b.mkv"):
        stamps = packet_pts(clips[name])
        assert stamps != sorted(stamps), f"{name}: no B-frames, decode order equals presentation order"


def test_vfr_seek_lands_on_the_right_frames(clips, monkeypatch):
    """The seek path, not a decode from the start: one seek, and fewer frames decoded than the whole file."""
    path = clips["vfr_h264.mkv"]
    stats = {"seeks": 0, "decoded": 0}
    real_open = vio._open

    class Counting:
        def __init__(self, container):
            self._c = container

        def __getattr__(self, name):
            return getattr(self._c, name)

        def seek(self, *args, **kwargs):
            stats["seeks"] += 1
            return self._c.seek(*args, **kwargs)

        def decode(self, *args, **kwargs):
            for frame in self._c.decode(*args, **kwargs):
                stats["decoded"] += 1
                yield frame

    monkeypatch.setattr(vio, "_open", lambda p: Counting(real_open(p)))
    frames = decode_frames(path, [40, 50], backend="pyav")
    assert [frame_number(f) for f in frames] == [40, 50]
    assert stats["seeks"] == 1 and stats["decoded"] <= 50 - 40 + 1 + 8  # from the key frame before 40 (GOP 8)


def test_read_video_on_vfr(clips):
    path = clips["vfr_h264.mp4"]
    assert [frame_number(f) for f in read_video(path, 4, stride=10)] == [14, 24, 34, 44]  # span 31 of 60, centred
    assert [frame_number(f) for f in read_video(path, 6, sampling="uniform")] == [5, 15, 25, 35, 45, 55]
    views = read_clips(path, 2, 2, stride=1)
    assert [[frame_number(f) for f in v] for v in views] == [[0, 1], [58, 59]]
    # seconds are presentation times: [0.5, 2.1) s holds frames 15-29 (0.5-0.97 s) and 30-32 (2.0-2.07 s)
    segment = read_video(path, start_sec=0.5, end_sec=2.1)
    assert [frame_number(f) for f in segment] == list(range(15, 33))
    with pytest.raises(ValueError, match="holds no frames"):  # inside the gap
        read_video(path, start_sec=1.2, end_sec=2.0)


def test_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    started = time.monotonic()
    for call in (lambda: read_video(fifo, 4), lambda: video_info(fifo), lambda: decode_frames(fifo, [0])):
        with pytest.raises(VideoReadError, match=r"pipe\.mp4: expected a regular file, got a FIFO"):
            call()
    assert time.monotonic() - started < 5


def test_index_cache_follows_file_changes(tmp_path, clips):
    path = tmp_path / "changing.mkv"
    encode(path, "libx264", list(range(20)))
    assert video_info(path).num_frames == 20
    os.remove(path)
    encode(path, "libx264", GAP_PTS)
    os.utime(path, ns=(1, 1))  # a different version of the file, even on coarse timestamps
    assert video_info(path).num_frames == 60
    assert [frame_number(f) for f in decode_frames(path, [30, 59])] == [30, 59]


@pytest.mark.parametrize(
    "name",
    ["vfr_mpeg4_b.mp4", "vfr_mpeg4_b.avi", "cfr_mpeg4_b.mp4", "vfr_h264.mkv", "vfr_h264_b.mp4", "vfr_h264_b.mkv"],
)
def test_every_frame_found_by_seeking(clips, name, monkeypatch):
    """With B-frames, frames presented before a key frame are decoded before it: the seek must still land early
    enough that no single-frame read falls back to decoding from the start."""
    path = clips[name]
    calls = []
    real = vio._PyAVVideo._decode_wanted
    monkeypatch.setattr(
        vio._PyAVVideo,
        "_decode_wanted",
        lambda self, w, seek, back=0: calls.append(seek) or real(self, w, seek=seek, back=back),
    )
    for i in range(60):
        assert [frame_number(f) for f in decode_frames(path, [i], backend="pyav")] == [i]
    assert False not in calls  # a retry aiming one key frame earlier is allowed, never a decode from the start


def test_index_cache_is_bounded(clips, monkeypatch):
    monkeypatch.setattr(vio, "_INDEX_CACHE_FRAMES", 100)  # room for one 60-frame index, not two
    vio._INDEX_CACHE.clear()
    try:
        for name in ("vfr_h264.mp4", "vfr_h264.mkv", "cfr_h264.mp4"):
            video_info(clips[name], backend="pyav")
            assert sum(len(i.pts) for i in vio._INDEX_CACHE.values()) <= 100 and len(vio._INDEX_CACHE) == 1
    finally:
        vio._INDEX_CACHE.clear()
