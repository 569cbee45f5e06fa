"""Decoding (videos the test encodes itself with PyAV) and temporal sampling."""

import dataclasses

import av
import numpy as np
import pytest
from _helpers import decode_all

import vivit.data.io as vio
from vivit.data.io import VideoReadError, decode_frames, read_clips, read_video, sample_indices, video_info

# (file name, codec, pixel format): several containers and codecs, with and without header frame counts.
FORMATS = [
    ("h264.mp4", "libx264", "yuv420p"),
    ("mpeg4.avi", "mpeg4", "yuv420p"),
    ("ffv1.mkv", "ffv1", "yuv444p"),
    ("vp9.webm", "libvpx-vp9", "yuv420p"),
    ("mjpeg.avi", "mjpeg", "yuvj420p"),
    ("mpeg2.mpg", "mpeg2video", "yuv420p"),  # MPEG-PS: not seekable by timestamp, decoded from the start
]
NUM_FRAMES = 37  # odd on purpose


def encode(path, codec, pix_fmt, num_frames=NUM_FRAMES, height=48, width=64, gop=8):
    """Frame i: red level 6 * i and a green bar i pixels wide, so every frame is distinct."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width, stream.pix_fmt = height, width, pix_fmt
        stream.codec_context.gop_size = gop
        for i in range(num_frames):
            frame = np.zeros((height, width, 3), np.uint8)
            frame[..., 0] = 6 * i
            frame[:, : i + 1, 1] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {name: encode(root / name, codec, pix) for name, codec, pix in FORMATS}


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_decode_matches_full_decode(videos, name):
    path = videos[name]
    reference = decode_all(path)
    assert len(reference) == NUM_FRAMES
    info = video_info(path)
    assert (info.num_frames, info.height, info.width, info.fps) == (NUM_FRAMES, 48, 64, 25.0)
    for indices in ([0], [36], [5, 6, 30], [33, 2, 17, 17], list(range(NUM_FRAMES))):
        np.testing.assert_array_equal(decode_frames(path, indices), reference[indices])
    clip = read_video(path, 8, stride=3)  # span 22, centred: start (37 - 22) // 2 = 7
    assert clip.dtype == np.uint8 and clip.shape == (8, 48, 64, 3)
    np.testing.assert_array_equal(clip, reference[7 + 3 * np.arange(8)])
    np.testing.assert_array_equal(read_video(path), reference)
    clips = read_clips(path, 4, 3, stride=2)  # span 7: starts 0, 15, 30
    assert clips.shape == (3, 4, 48, 64, 3)
    for clip, start in zip(clips, (0, 15, 30)):
        np.testing.assert_array_equal(clip, reference[start + 2 * np.arange(4)])


class _CountingContainer:
    """Wraps a PyAV container to count seeks and decoded frames."""

    def __init__(self, container, stats):
        self._container, self._stats = container, stats

    def __getattr__(self, name):
        return getattr(self._container, name)

    def seek(self, *args, **kwargs):
        self._stats["seeks"] += 1
        return self._container.seek(*args, **kwargs)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self._stats["decoded"] += 1
            yield frame


def test_decodes_only_needed_frames(videos, monkeypatch):
    stats = {"seeks": 0, "decoded": 0}
    real_open = vio._open
    monkeypatch.setattr(vio, "_open", lambda path: _CountingContainer(real_open(path), stats))
    path = videos["h264.mp4"]
    reference = decode_all(path)
    np.testing.assert_array_equal(decode_frames(path, [3], backend="pyav"), reference[[3]])
    assert stats["decoded"] == 4  # frames 0..3 (the key frame is frame 0), stopping right after frame 3
    stats.update(seeks=0, decoded=0)
    np.testing.assert_array_equal(decode_frames(path, [33, 35], backend="pyav"), reference[[33, 35]])
    assert stats["seeks"] == 1 and stats["decoded"] <= 35 - 32 + 1 + 8  # from the key frame before 33 (GOP 8)


def test_sample_indices_strided_and_multiview():
    np.testing.assert_array_equal(sample_indices(100, 4, stride=2), [[46, 48, 50, 52]])  # centred, span 7
    views = sample_indices(100, 4, stride=2, num_clips=4)
    np.testing.assert_array_equal(views[:, 0], [0, 31, 62, 93])
    np.testing.assert_array_equal(views[-1], [93, 95, 97, 99])
    rng = np.random.default_rng(0)
    for _ in range(20):
        clip = sample_indices(10, 3, stride=4, random_offset=True, generator=rng)[0]
        assert 0 <= clip[0] <= 1 and np.all(np.diff(clip) == 4)
    np.testing.assert_array_equal(sample_indices(9, 9, stride=1), [np.arange(9)])  # exact fit


def test_sample_indices_uniform():
    np.testing.assert_array_equal(sample_indices(40, 4, sampling="uniform"), [[5, 15, 25, 35]])
    two = sample_indices(40, 4, sampling="uniform", num_clips=2)
    np.testing.assert_array_equal(two, [[2, 12, 22, 32], [7, 17, 27, 37]])
    stretched = sample_indices(3, 6, sampling="uniform")[0]  # fewer frames than asked: each repeated evenly
    np.testing.assert_array_equal(stretched, [0, 0, 1, 1, 2, 2])
    rng = np.random.default_rng(1)
    random = sample_indices(40, 4, sampling="uniform", random_offset=True, generator=rng)[0]
    assert np.all(random // 10 == np.arange(4))


def test_short_clip_policies():
    np.testing.assert_array_equal(sample_indices(5, 4, stride=2, short_clip="loop"), [[0, 2, 4, 1]])
    np.testing.assert_array_equal(sample_indices(5, 4, stride=2, short_clip="repeat_last"), [[0, 2, 4, 4]])
    with pytest.raises(ValueError, match="5 frames, fewer than the 7"):
        sample_indices(5, 4, stride=2, short_clip="error")
    views = sample_indices(5, 4, stride=2, num_clips=3)
    assert views.shape == (3, 4)


def test_short_video_is_looped_not_truncated(videos):
    path = videos["ffv1.mkv"]
    reference = decode_all(path)
    clip = read_video(path, 16, stride=3)  # span 46 > 37 frames
    assert clip.shape[0] == 16
    np.testing.assert_array_equal(clip, reference[(3 * np.arange(16)) % NUM_FRAMES])
    clip = read_video(path, 16, stride=3, short_clip="repeat_last")
    np.testing.assert_array_equal(clip, reference[np.minimum(3 * np.arange(16), NUM_FRAMES - 1)])
    with pytest.raises(ValueError, match="short_clip"):
        read_video(path, 16, stride=3, short_clip="error")


def test_segment_seconds(videos):
    path = videos["h264.mp4"]
    reference = decode_all(path)
    clip = read_video(path, start_sec=0.4, end_sec=0.8)  # frames [10, 20) at 25 fps
    np.testing.assert_array_equal(clip, reference[10:20])
    clip = read_video(path, 2, stride=4, start_sec=0.4, end_sec=0.8)  # span 5 in 10 frames: start 10 + 2
    np.testing.assert_array_equal(clip, reference[[12, 16]])
    with pytest.raises(ValueError, match="holds no frames"):
        read_video(path, 2, start_sec=5.0)


def test_missing_corrupt_and_truncated_files(videos, tmp_path):
    with pytest.raises(VideoReadError, match="nope.mp4: no such file"):
        read_video(tmp_path / "nope.mp4", 4)
    with pytest.raises(VideoReadError, match="is a directory"):
        read_video(tmp_path, 4)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="garbage.mp4"):
        read_video(garbage, 4)
    for name in ("h264.mp4", "mpeg4.avi"):  # index at the end (MP4 moov, AVI header count): unreadable when cut
        data = open(videos[name], "rb").read()
        truncated = tmp_path / f"truncated_{name}"
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(VideoReadError, match=f"truncated_{name}"):
            read_video(truncated, 4)
    # Matroska has no frame count in its header: a cut file is just a shorter video, read consistently
    data = open(videos["ffv1.mkv"], "rb").read()
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(data[: len(data) // 2])
    available = decode_all(truncated)
    assert 0 < len(available) < NUM_FRAMES
    assert video_info(truncated).num_frames in (len(available), len(available) + 1)
    np.testing.assert_array_equal(read_video(truncated), available)


def test_header_off_by_one_is_resampled_with_a_warning(videos, monkeypatch):
    path = videos["mpeg4.avi"]
    real_info = vio._PyAVVideo.info
    monkeypatch.setattr(
        vio._PyAVVideo, "info", lambda self: dataclasses.replace(real_info(self), num_frames=NUM_FRAMES + 1)
    )
    with pytest.warns(UserWarning, match="declares 38 frames but only 37 decode"):
        clip = read_video(path, backend="pyav")
    np.testing.assert_array_equal(clip, decode_all(path))


def test_bad_arguments():
    for kwargs, match in [
        (dict(num_available=0, num_frames=4), "num_available"),
        (dict(num_available=9, num_frames=0), "num_frames"),
        (dict(num_available=9, num_frames=2, stride=0), "stride"),
        (dict(num_available=9, num_frames=2, sampling="dense"), "sampling"),
        (dict(num_available=9, num_frames=2, short_clip="pad"), "short_clip"),
        (dict(num_available=9, num_frames=2, num_clips=0), "num_clips"),
    ]:
        with pytest.raises(ValueError, match=match):
            sample_indices(**kwargs)
