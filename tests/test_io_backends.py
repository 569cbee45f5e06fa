"""Decoding backends: PyAV and torchcodec return the same frames for the same indices; selection, errors, decoder
threads and one open per read. Frames carry their number (test_vfr's binary stripes), so a test sees which came back."""

import builtins
import os
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from test_vfr import GAP_PTS, QUERIES, encode, frame_number

import vivit.data.io as vio
import vivit.data.video_backend as vb
from vivit.data.io import VideoReadError, decode_frames, read_clips, read_video, video_info

PROBLEM = vb.torchcodec_problem()
needs_torchcodec = pytest.mark.skipif(PROBLEM is not None, reason=f"torchcodec unusable here: {PROBLEM}")
BOTH = ["pyav", pytest.param("torchcodec", marks=needs_torchcodec)]
# Largest per-pixel difference allowed between the backends' RGB (their FFmpeg builds may convert colours a little
# differently); a wrong frame differs by 255 on whole stripes.
PIXEL_TOLERANCE = 4

CASES = [  # (file, codec, timestamps in 1/30 s, B-frames): constant and variable frame rate, MP4 and Matroska
    ("cfr_h264.mp4", "libx264", list(range(60)), 0),
    ("vfr_h264.mp4", "libx264", GAP_PTS, 0),
    ("vfr_h264_b.mkv", "libx264", GAP_PTS, 2),
    ("vfr_mpeg4_b.mp4", "mpeg4", GAP_PTS, 2),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("backends")
    return {name: encode(root / name, codec, pts, b_frames=b) for name, codec, pts, b in CASES}


@pytest.fixture(autouse=True)
def default_backend(monkeypatch):
    monkeypatch.delenv(vb.ENV_VAR, raising=False)
    vb.set_video_backend(None)
    yield
    vb.set_video_backend(None)


def numbers(frames):
    return [frame_number(f) for f in np.asarray(frames).reshape(-1, *np.asarray(frames).shape[-3:])]


@pytest.mark.parametrize("backend", BOTH)
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_frame_i_is_the_ith_in_presentation_order(clips, name, backend):
    path = clips[name]
    assert video_info(path, backend=backend).num_frames == 60
    for indices in QUERIES:
        assert numbers(decode_frames(path, indices, backend=backend)) == indices


@needs_torchcodec
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_backends_sample_the_same_clips(clips, name):
    path = clips[name]
    reads = [
        lambda b: read_video(path, 8, stride=2, backend=b),
        lambda b: read_video(path, 6, sampling="uniform", backend=b),
        lambda b: read_video(path, 40, stride=2, short_clip="loop", backend=b),  # span 79 > 60 frames
        lambda b: read_video(path, 40, stride=2, short_clip="repeat_last", backend=b),
        lambda b: read_clips(path, 4, 3, stride=3, backend=b),
        lambda b: read_video(path, start_sec=0.5, end_sec=2.1, backend=b),
        lambda b: read_video(path, 5, random_offset=True, generator=np.random.default_rng(7), backend=b),
    ]
    for read in reads:
        pyav, torchcodec = read("pyav"), read("torchcodec")
        assert numbers(pyav) == numbers(torchcodec)
        assert np.abs(pyav.astype(int) - torchcodec.astype(int)).max() <= PIXEL_TOLERANCE
    if "vfr" in name:  # [0.5, 2.1) s: frames 15-29 (0.5-0.97 s) and 30-32 (2.0-2.07 s) by presentation time
        assert numbers(read_video(path, start_sec=0.5, end_sec=2.1, backend="torchcodec")) == list(range(15, 33))
    info = video_info(path, backend="pyav"), video_info(path, backend="torchcodec")
    codec = "h264" if "h264" in name else "mpeg4"
    assert [(i.num_frames, i.height, i.width, i.codec) for i in info] == [(60, 32, 48, codec)] * 2
    if name.startswith("cfr"):  # on variable frame rate the header's rate and PyAV's average may differ
        assert info[0].fps == info[1].fps == 30.0


@needs_torchcodec
@pytest.mark.parametrize("name", ["h264.mp4", "ffv1.mkv", "vp9.webm"])
def test_torchcodec_on_other_codecs(tmp_path, name):
    """test_io's files (frame i: red level 6 * i, a green bar i + 1 pixels wide): the same frames as PyAV's."""
    from test_io import FORMATS, NUM_FRAMES
    from test_io import encode as encode_numbered

    codec, pix_fmt = {f[0]: f[1:] for f in FORMATS}[name]
    path = encode_numbered(tmp_path / name, codec, pix_fmt)
    assert video_info(path, backend="torchcodec").num_frames == NUM_FRAMES
    indices = [0, 36, 5, 6, 30, 33, 2, 17, 17]
    pyav, torchcodec = (decode_frames(path, indices, backend=b).astype(int) for b in ("pyav", "torchcodec"))
    assert np.abs(pyav - torchcodec).max() <= PIXEL_TOLERANCE
    bar_widths = (torchcodec[..., 1] > 128).sum(2).mean(1).round().astype(int)
    assert bar_widths.tolist() == [i + 1 for i in indices]


@needs_torchcodec
def test_explicit_torchcodec_refuses_containers_it_seeks_inexactly(tmp_path, monkeypatch):
    monkeypatch.setattr(vb, "AUTO_CHOICE", "torchcodec")  # "auto" tries torchcodec first
    path = encode(tmp_path / "program_stream.mpg", "mpeg2video", list(range(40)))
    with pytest.raises(VideoReadError, match=r"program_stream\.mpg: torchcodec seeks exactly only in MP4/MOV"):
        decode_frames(path, [5], backend="torchcodec")
    # "auto" reads it with PyAV, which decodes MPEG program streams from the start
    assert numbers(decode_frames(path, [5, 6, 30, 39])) == [5, 6, 30, 39]


def test_bad_backend_names(monkeypatch, clips):
    with pytest.raises(ValueError, match=r"backend: expected one of \('auto', 'torchcodec', 'pyav'\), got 'ffmpeg'"):
        read_video(clips["cfr_h264.mp4"], 4, backend="ffmpeg")
    with pytest.raises(ValueError, match="backend: expected one of .*got 'gpu'"):
        vb.set_video_backend("gpu")
    monkeypatch.setenv(vb.ENV_VAR, "torch")
    with pytest.raises(ValueError, match="VIVIT_VIDEO_BACKEND: expected one of .*got 'torch'"):
        video_info(clips["cfr_h264.mp4"])


def test_unusable_torchcodec(monkeypatch, clips):
    """An import that fails loading FFmpeg: "auto" decodes with PyAV, an explicit "torchcodec" says how to install."""
    real_import = builtins.__import__

    def no_ffmpeg(name, *args, **kwargs):
        if name.startswith("torchcodec"):
            raise OSError("libavutil.so.59: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(vb, "AUTO_CHOICE", "torchcodec")  # "auto" would take torchcodec if it could
    monkeypatch.setattr(vb, "_torchcodec_problem", [])  # probe again, under the failing import
    monkeypatch.setattr(builtins, "__import__", no_ffmpeg)
    opened = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    path = clips["vfr_h264.mp4"]
    assert numbers(read_video(path, 3, stride=10)) == [19, 29, 39]  # span 21 of 60, centred: start 39 // 2
    assert opened == [path]
    with pytest.raises(RuntimeError) as error:
        read_video(path, 3, backend="torchcodec")
    message = str(error.value)
    assert "\n" not in message and 'backend="torchcodec" is unavailable' in message
    assert "cannot load FFmpeg (libavutil.so.59" in message and 'pip install "vivit[torchcodec]"' in message
    vb.set_video_backend("torchcodec")  # the process-wide default is as explicit as the argument
    with pytest.raises(RuntimeError, match="torchcodec"):
        video_info(path)


@needs_torchcodec
@pytest.mark.parametrize("auto_choice", ["pyav", "torchcodec"])
def test_process_wide_default(monkeypatch, clips, auto_choice):
    monkeypatch.setattr(vb, "AUTO_CHOICE", auto_choice)  # the measured choice (vivit.data.video_backend)
    made = count_torchcodec_decoders(monkeypatch)
    path = clips["cfr_h264.mp4"]
    for setting in ("pyav", "auto", "torchcodec"):
        vb.set_video_backend(setting)
        read_video(path, 2)
    expected = 2 if auto_choice == "torchcodec" else 1  # "torchcodec", and "auto" when it means torchcodec
    assert len(made) == expected
    vb.set_video_backend(None)
    monkeypatch.setenv(vb.ENV_VAR, "pyav")
    read_video(path, 2)
    monkeypatch.setenv(vb.ENV_VAR, "torchcodec")
    read_video(path, 2)
    assert len(made) == expected + 1


def test_import_vivit_does_not_import_torchcodec():
    code = "import sys, vivit, vivit.data.io, vivit.data.datasets; print('torchcodec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------------------------
# Decoder threads


class _WorkerDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return vb.decoder_threads(None)


def test_thread_cap_in_and_out_of_workers():
    cores = len(os.sched_getaffinity(0))
    assert vb.decoder_threads(None) == min(4, cores)
    assert vb.decoder_threads(3) == 3
    loader = torch.utils.data.DataLoader(_WorkerDataset(), num_workers=1, multiprocessing_context="fork")
    assert [int(t) for t in loader] == [1]
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"num_threads: expected an int >= 1 or None, got {bad!r}"):
            vb.decoder_threads(bad)


def test_pyav_thread_count_applied(monkeypatch, clips):
    seen = []
    real_open = vio._open

    def recording_open(path):
        container = real_open(path)
        seen.append(container.streams.video[0].codec_context)
        return container

    monkeypatch.setattr(vio, "_open", recording_open)
    read_video(clips["cfr_h264.mp4"], 4, backend="pyav", num_threads=3)
    assert [c.thread_count for c in seen] == [3]
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())  # as inside a DataLoader worker
    read_video(clips["cfr_h264.mp4"], 4, backend="pyav")
    assert [c.thread_count for c in seen] == [3, 1] and seen[1].thread_type.name in ("AUTO", "FRAME|SLICE")


def count_torchcodec_decoders(monkeypatch):
    import torchcodec.decoders

    made = []
    real = torchcodec.decoders.VideoDecoder

    def counting(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torchcodec.decoders, "VideoDecoder", counting)
    return made


@needs_torchcodec
def test_torchcodec_thread_count_applied(monkeypatch, clips):
    made = count_torchcodec_decoders(monkeypatch)
    read_video(clips["cfr_h264.mp4"], 4, backend="torchcodec", num_threads=2)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    read_video(clips["cfr_h264.mp4"], 4, backend="torchcodec")
    assert [m["num_ffmpeg_threads"] for m in made] == [2, 1]
    assert {(m["seek_mode"], m["dimension_order"]) for m in made} == {("exact", "NHWC")}


# ---------------------------------------------------------------------------------------------------------------------
# One open per read


@pytest.mark.parametrize("backend", BOTH)
def test_one_open_per_read(monkeypatch, clips, backend):
    opened = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    made = count_torchcodec_decoders(monkeypatch) if backend == "torchcodec" else []
    path = clips["vfr_h264_b.mkv"]
    reads = [
        lambda: read_video(path, 4, stride=2),
        lambda: read_clips(path, 4, 3),
        lambda: video_info(path),
        lambda: decode_frames(path, [3, 50]),
    ]
    for cold in (True, False):  # without and with the file's timestamp index cached
        for read in reads:
            if cold:
                vio._INDEX_CACHE.clear()
            opened.clear(), made.clear()
            with_backend(read, backend)
            assert len(opened) + len(made) == 1, (backend, cold, opened, made)
    # a segment needs presentation times: the timestamp index (PyAV, cached per file version) gives them
    vio._INDEX_CACHE.clear()
    opened.clear(), made.clear()
    with_backend(lambda: read_video(path, 4, start_sec=0.5, end_sec=2.5), backend)
    assert len(opened) + len(made) == (1 if backend == "pyav" else 2)
    opened.clear(), made.clear()
    with_backend(lambda: read_video(path, 4, start_sec=0.5, end_sec=2.5), backend)
    assert len(opened) + len(made) == 1


def with_backend(read, backend):
    vb.set_video_backend(backend)
    try:
        return read()
    finally:
        vb.set_video_backend(None)
