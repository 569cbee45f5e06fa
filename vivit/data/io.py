"""Video decoding (torchcodec or PyAV) and temporal sampling.

Backends: `backend="auto"` (default) decodes with PyAV, chosen by measurement (see
vivit.data.video_backend); "torchcodec" or "pyav" picks one (an unusable torchcodec then raises). The process-wide
default is `set_video_backend(name)` or the environment variable VIVIT_VIDEO_BACKEND. torchcodec reads MP4/MOV and
Matroska/WebM files (in other containers its seeks are not exact) and refuses the rest. Both backends number frames
the same way (below), so a clip is the same frames whichever decodes it; pixel values can differ by a few levels
(different FFmpeg builds). Each read opens the file once. Decoder threads: `num_threads=`, by default 1 inside a
DataLoader worker and min(4, cores) in the main process.

`read_video(path, num_frames, stride=2)` returns one uint8 (T, H, W, C) RGB clip; `read_clips` returns the n temporal
views of multi-view evaluation, (n, T, H, W, C). Frame index i is the i-th frame in presentation order, also on
variable-frame-rate video and with B-frames: in MP4/MOV, Matroska/WebM, AVI and NUT files the stream's presentation
timestamps are indexed once per file (packets demuxed, not decoded; cached per file version), the reader seeks to
the key frame before the first wanted frame and matches decoded frames to indices by timestamp; other containers,
and streams whose packets lack timestamps, are decoded from their start, counting frames. Either way decoding
stops after the last wanted frame. Segment times (`start_sec`, `end_sec`) select the frames whose presentation
time lies in [start_sec, end_sec).

Sampling (`sample_indices`):
- "strided": T frames `stride` apart (span (T - 1) * stride + 1). One clip is centred (or placed at random with
  `random_offset`); n clips are spread evenly from the first possible start to the last.
- "uniform": the video (or the [start_sec, end_sec) segment) cut into T equal segments, one frame from each: the
  middle one, or a random one with `random_offset`; clip k of n takes the frame at fraction (k + 0.5) / n of every
  segment. A video with fewer than T frames has frames repeated evenly.

Short-clip policy (strided sampling when the video has fewer frames than the span): `short_clip="loop"` (default)
wraps the indices around to the start of the video; "repeat_last" repeats the last frame; "error" raises. Either way
the result has exactly T frames: nothing is silently truncated.

Frame counts are the number of indexed timestamps, else the container header's count, else the packet count.
Only regular files are opened: a FIFO, socket or device raises `VideoReadError` at once instead of blocking.
When a file decodes a frame or two fewer than its header declares (common, harmless header slop), the clip is
re-sampled over the frames that do decode and a warning names the file; a larger gap (a truncated file) and any
missing, unreadable or corrupt file raise `VideoReadError` naming the file.
"""

from __future__ import annotations

import bisect
import os
import stat
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from vivit.data.video_backend import decoder_threads, get_video_backend, resolve_backend, set_video_backend

SAMPLING_MODES = ("strided", "uniform")
SHORT_CLIP_POLICIES = ("loop", "repeat_last", "error")
# Containers whose seeking and timestamps place frames exactly. Others (MPEG-PS/TS, raw streams) rebuild
# timestamps after a seek, so they are decoded from the start (still stopping after the last needed frame).
_SEEKABLE_FORMATS = ("mov", "mp4", "matroska", "webm", "avi", "nut")
# Headers are often off by a frame or two; a larger gap between declared and decodable frames means a damaged file.
# Seconds given as floats (0.4 is not exactly 10/25): a frame this close to a segment boundary counts as on it.
_TIME_EPS = 1e-6
# Seeks aimed one more key frame earlier when one lands past the first wanted frame, before decoding from the start.
_SEEK_RETRIES = 2
_SHORTFALL_TOLERANCE = lambda declared: max(2, declared // 100)


class VideoReadError(OSError):
    """A video file is missing, unreadable or corrupt. The message starts with the file's path."""

    def __init__(self, path: str | os.PathLike, reason: str | None = None):
        self.path = os.fspath(path)
        # one argument: an already formatted message (how DataLoader workers re-raise it in the main process)
        super().__init__(self.path if reason is None else f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    codec: str

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0


# ---------------------------------------------------------------------------------------------------------------------
# Sampling (pure functions on frame counts).


def sample_indices(
    num_available: int,
    num_frames: int,
    *,
    stride: int = 1,
    sampling: str = "strided",
    num_clips: int = 1,
    random_offset: bool = False,
    short_clip: str = "loop",
    generator: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of `num_clips` clips of `num_frames` frames out of `num_available`: int64 (num_clips, num_frames)."""
    if num_available < 1:
        raise ValueError(f"num_available: expected a video with at least 1 frame, got {num_available}")
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    if stride < 1:
        raise ValueError(f"stride: expected >= 1, got {stride}")
    if num_clips < 1:
        raise ValueError(f"num_clips: expected >= 1, got {num_clips}")
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"sampling: expected one of {SAMPLING_MODES}, got {sampling!r}")
    if short_clip not in SHORT_CLIP_POLICIES:
        raise ValueError(f"short_clip: expected one of {SHORT_CLIP_POLICIES}, got {short_clip!r}")
    rng = generator if generator is not None else np.random.default_rng()
    steps = np.arange(num_frames, dtype=np.int64)

    if sampling == "uniform":
        segment = num_available / num_frames
        if random_offset:
            fractions = rng.random((num_clips, num_frames))
        else:
            fractions = np.broadcast_to(((np.arange(num_clips) + 0.5) / num_clips)[:, None], (num_clips, num_frames))
        indices = np.floor((steps[None] + fractions) * segment).astype(np.int64)
        return np.minimum(indices, num_available - 1)

    span = (num_frames - 1) * stride + 1
    if num_available < span:
        if short_clip == "error":
            raise ValueError(
                f"the video has {num_available} frames, fewer than the {span} that {num_frames} frames at stride "
                f"{stride} span (short_clip='error')"
            )
        offsets = steps * stride
        clip = offsets % num_available if short_clip == "loop" else np.minimum(offsets, num_available - 1)
        return np.broadcast_to(clip, (num_clips, num_frames)).copy()
    room = num_available - span
    if random_offset:
        starts = rng.integers(0, room + 1, size=num_clips)
    elif num_clips == 1:
        starts = np.array([room // 2])
    else:
        starts = np.round(np.linspace(0, room, num_clips)).astype(np.int64)
    return starts[:, None].astype(np.int64) + steps[None] * stride


def segment_frames(num_available: int, fps: float, start_sec: float | None, end_sec: float | None) -> tuple[int, int]:
    """[first, last) frame range of the [start_sec, end_sec) segment, clipped to the video."""
    first = 0 if start_sec is None else max(0, int(round(start_sec * fps)))
    last = num_available if end_sec is None else min(num_available, int(round(end_sec * fps)))
    return first, last


# ---------------------------------------------------------------------------------------------------------------------
# Decoding.


def _check_file(path: str) -> None:
    """Raises VideoReadError unless `path` is a regular file (opening a FIFO would block until a writer appears;
    devices and sockets never end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VideoReadError(path, "no such file") from None
    except OSError as e:
        raise VideoReadError(path, f"cannot access ({type(e).__name__}: {e})") from e
    if stat.S_ISDIR(mode):
        raise VideoReadError(path, "is a directory, not a video file")
    if not stat.S_ISREG(mode):
        raise VideoReadError(path, f"expected a regular file, got a {_file_kind(mode)}")


def _open(path: str):
    import av

    _check_file(path)
    try:
        container = av.open(path)
    except Exception as e:  # PyAV raises a family of FFmpegError/OSError subclasses
        raise VideoReadError(path, f"cannot open as a video ({type(e).__name__}: {e})") from e
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "has no video stream")
    return container


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def _frame_rate(stream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def _count_frames(path: str, container, stream) -> int:
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    try:  # no count in the header: demux (no decoding) and count the video packets
        count = sum(1 for packet in container.demux(stream) if packet.size)
    except Exception as e:
        raise VideoReadError(path, f"corrupt video stream ({type(e).__name__}: {e})") from e
    return count


@dataclass(frozen=True)
class _FrameIndex:
    """Presentation timestamps of a stream's frames, sorted: pts[i] is frame i's. None when they cannot be known
    without decoding (packets without timestamps, repeated timestamps, unseekable container)."""

    pts: np.ndarray | None
    time_base: Fraction | None
    start_pts: int
    packets: int | None = None  # video packets counted while indexing (None: not demuxed)
    key_pts: np.ndarray | None = None  # key frames' presentation timestamps, sorted


_INDEX_CACHE: OrderedDict[tuple, _FrameIndex] = OrderedDict()
_INDEX_CACHE_SIZE = 256  # files
_INDEX_CACHE_FRAMES = 4_000_000  # timestamps held in all (32 MB), so that long videos cannot grow it without bound


def _index_key(path: str) -> tuple:
    st = os.stat(path)  # a new version of the file (size, modification time, inode) gets a new index
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _cached_index(key: tuple) -> _FrameIndex | None:
    cached = _INDEX_CACHE.get(key)
    if cached is not None:
        _INDEX_CACHE.move_to_end(key)
    return cached


def _frame_index(path: str, container, stream) -> _FrameIndex:
    """Demuxes (no decoding) the stream's packets once per file version and sorts their timestamps."""
    key = _index_key(path)
    cached = _cached_index(key)
    if cached is not None:
        return cached
    time_base = Fraction(stream.time_base) if stream.time_base else None
    index = _FrameIndex(None, time_base, stream.start_time or 0)
    if _seekable(container) and time_base is not None:
        try:
            stamps, keys = [], []
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:
                    stamps.append(packet.pts)
                    if packet.is_keyframe and packet.pts is not None:
                        keys.append(packet.pts)
        except Exception:  # damaged packets: no index; counting and decoding from the start report the damage
            stamps = []
        if stamps and all(s is not None for s in stamps):
            pts = np.sort(np.asarray(stamps, dtype=np.int64))
            keys.sort()
            index = _FrameIndex(
                pts if np.all(np.diff(pts) > 0) else None,
                time_base,
                index.start_pts,
                len(stamps),
                np.asarray(keys, dtype=np.int64),
            )
    _INDEX_CACHE[key] = index
    held = lambda: sum(0 if i.pts is None else len(i.pts) for i in _INDEX_CACHE.values())
    while len(_INDEX_CACHE) > 1 and (len(_INDEX_CACHE) > _INDEX_CACHE_SIZE or held() > _INDEX_CACHE_FRAMES):
        _INDEX_CACHE.popitem(last=False)
    return index


def _index_of(path: str) -> _FrameIndex:
    try:
        cached = _cached_index(_index_key(path))
    except OSError:
        cached = None  # _open names the problem
    if cached is not None:
        return cached
    container = _open(path)
    try:
        return _frame_index(path, container, container.streams.video[0])
    finally:
        container.close()


def _seekable(container) -> bool:
    return any(name in _SEEKABLE_FORMATS for name in container.format.name.split(","))


class _Shortfall(Exception):
    def __init__(self, decoded: int):
        self.decoded = decoded


class _SeekMissed(Exception):
    def __init__(self, landed_late: bool = False):
        self.landed_late = landed_late  # the seek landed on a frame after the first wanted one: aim earlier


class _PyAVVideo:
    """A video opened with PyAV for one read: the frame count, the timestamp index and the decoding share the open
    container. Only decoding from the start after the container was demuxed or seeked reopens the file."""

    def __init__(self, path: str, num_threads: int):
        self.path, self.num_threads = path, num_threads
        self._index: _FrameIndex | None = None
        self._open_container()

    def _open_container(self) -> None:
        self.container = _open(self.path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = self.num_threads
        self.at_start = True  # nothing demuxed, seeked or decoded yet

    def close(self) -> None:
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def index(self) -> _FrameIndex:
        if self._index is None:
            if _seekable(self.container) and _cached_index(_index_key(self.path)) is None:
                self.at_start = False  # _frame_index demuxes the whole stream
            self._index = _frame_index(self.path, self.container, self.stream)
        return self._index

    def info(self) -> VideoInfo:
        stream = self.stream
        rate = _frame_rate(stream)
        index = self.index()
        if index.pts is not None:
            num_frames = len(index.pts)
        elif index.packets is not None and not (stream.frames and stream.frames > 0):
            num_frames = index.packets
        else:
            if not (stream.frames and stream.frames > 0):
                self.at_start = False  # _count_frames demuxes
            num_frames = _count_frames(self.path, self.container, stream)
        return VideoInfo(
            path=self.path,
            num_frames=num_frames,
            fps=float(rate) if rate else 0.0,
            height=stream.codec_context.height,
            width=stream.codec_context.width,
            codec=stream.codec_context.name,
        )

    def decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Frames at the sorted unique indices `wanted`; raises _Shortfall when the video ends before the last."""
        for back in range(_SEEK_RETRIES + 1):
            try:
                return self._decode_wanted(wanted, seek=True, back=back)
            except _SeekMissed as e:
                if not e.landed_late:
                    break
            except _Shortfall:
                break
        # timestamps that did not place frames: count frames from the start instead
        if not self.at_start:
            self.close()
            self._open_container()
        return self._decode_wanted(wanted, seek=False)

    def _decode_wanted(self, wanted: np.ndarray, *, seek: bool, back: int = 0) -> dict[int, np.ndarray]:
        path, container, stream = self.path, self.container, self.stream
        pts = None
        if seek:
            index = self.index()
            if index.pts is None:
                raise _SeekMissed  # nothing to place frames by: the caller decodes from the start
            if wanted[-1] >= len(index.pts):
                raise _Shortfall(len(index.pts))
            pts = index.pts
            # The key frame before the first wanted frame's timestamp. Containers that seek by decoding time can land
            # on a key frame presented after it (B-frames): each retry (`back`) aims one key frame earlier.
            target = int(index.pts[wanted[0]])
            if back:
                k = int(np.searchsorted(index.key_pts, target, side="right")) - 1 - back
                target = int(index.key_pts[k]) if k >= 0 else int(index.pts[0])
            self.at_start = False
            container.seek(target, stream=stream, backward=True, any_frame=False)
        self.at_start = False

        out: dict[int, np.ndarray] = {}
        pos, last_index = 0, -1
        try:
            for counter, frame in enumerate(container.decode(stream)):
                if pts is not None:
                    position = None if frame.pts is None else int(np.searchsorted(pts, frame.pts))
                    if position is None or position >= len(pts) or pts[position] != frame.pts:
                        raise _SeekMissed  # a timestamp the index does not hold
                    if counter == 0 and position > wanted[0]:
                        raise _SeekMissed(landed_late=True)
                else:
                    position = counter
                last_index = max(last_index, position)
                if position < wanted[pos]:
                    continue
                image = frame.to_ndarray(format="rgb24")
                while pos < len(wanted) and wanted[pos] <= position:
                    out[int(wanted[pos])] = image
                    pos += 1
                if pos == len(wanted):
                    return out
        except _SeekMissed:
            raise
        except Exception as e:
            raise VideoReadError(path, f"corrupt video data ({type(e).__name__}: {e})") from e
        raise _Shortfall(last_index + 1)


def _with_video(path: str, backend: str | None, num_threads: int | None, work):
    """`work(video)` on the file opened once with the backend `backend` resolves to (vivit.data.video_backend).

    When "auto" means torchcodec (vivit.data.video_backend.AUTO_CHOICE), a file torchcodec cannot read (containers
    other than MP4/MOV and Matroska/WebM, see vivit.data.torchcodec_video) is read with PyAV; a file neither reads
    raises PyAV's error. A backend named explicitly is never replaced.
    """
    name = resolve_backend(backend)
    threads = decoder_threads(num_threads)
    if name == "torchcodec":
        from vivit.data.torchcodec_video import TorchCodecVideo

        try:
            with TorchCodecVideo(path, threads) as video:
                return work(video)
        except VideoReadError:
            if (backend or get_video_backend()) != "auto":
                raise
    with _PyAVVideo(path, threads) as video:
        return work(video)


def video_info(path: str | os.PathLike, *, backend: str | None = None, num_threads: int | None = None) -> VideoInfo:
    """Frame count, frame rate, size and codec of a video file.

    The frame count is the number of frames with a presentation timestamp in seekable containers (exact on
    variable-frame-rate video), else the header's count, else the number of video packets. `backend`: "auto",
    "torchcodec" or "pyav" (None: the process-wide default, see `set_video_backend`).
    """
    path = os.fspath(path)
    return _with_video(path, backend, num_threads, lambda video: video.info())


def _check_indices(indices) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError("indices: expected at least one frame index")
    if indices.min() < 0:
        raise ValueError(f"indices: frame indices must be >= 0, got {int(indices.min())}")
    return indices


def decode_frames(
    path: str | os.PathLike,
    indices: np.ndarray | list[int],
    *,
    backend: str | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """The frames at `indices` (any order, repeats allowed) as uint8 RGB (len(indices), H, W, 3).

    Frame i is the i-th frame in presentation order, also on variable-frame-rate video: in MP4/MOV, Matroska/WebM,
    AVI and NUT files the stream's presentation timestamps are indexed once (packets are demuxed, not decoded), the
    reader seeks to the key frame before the first wanted frame, matches decoded frames to indices by timestamp
    and stops after the last wanted one. Other containers, and files whose packets lack timestamps, are decoded
    from the start, counting frames (still stopping after the last wanted one). With `backend="torchcodec"`,
    torchcodec's exact seek mode numbers the frames the same way (it scans the file's packets when it opens it).
    `num_threads`: decoder threads (None: 1 in a DataLoader worker, else min(4, cores)).
    """
    path = os.fspath(path)
    indices = _check_indices(indices)
    frames = _with_video(path, backend, num_threads, lambda video: video.decode(np.unique(indices)))
    return np.stack([frames[int(i)] for i in indices])


def _read(
    path: str | os.PathLike,
    num_frames: int | None,
    *,
    stride: int,
    sampling: str,
    num_clips: int,
    random_offset: bool,
    short_clip: str,
    start_sec: float | None,
    end_sec: float | None,
    generator: np.random.Generator | None,
    backend: str | None,
    num_threads: int | None,
) -> np.ndarray:
    path = os.fspath(path)

    def sample_and_decode(video):  # one open: counting, indexing and decoding share it
        info = video.info()
        available = info.num_frames
        times = None
        if start_sec is not None or end_sec is not None:
            index = video.index()
            if index.pts is not None and len(index.pts) == available:  # exact times, also on variable frame rate
                times = [float((int(p) - index.start_pts) * index.time_base) for p in index.pts]
        for _ in range(2):  # a second pass only when the file decodes fewer frames than its header says
            if available < 1:
                raise VideoReadError(path, "contains no decodable video frames")
            if times is not None:  # the frames whose presentation time lies in [start_sec, end_sec)
                first = 0 if start_sec is None else bisect.bisect_left(times, start_sec - _TIME_EPS)
                last = available if end_sec is None else bisect.bisect_left(times, end_sec - _TIME_EPS)
            else:
                first, last = segment_frames(available, info.fps or 1.0, start_sec, end_sec)
            if last <= first:
                raise ValueError(
                    f"{path}: the segment [{start_sec}, {end_sec}) s holds no frames (the video has {available} "
                    f"frames at {info.fps:g} fps)"
                )
            if num_frames is None:
                indices = np.arange(first, last)[None].repeat(num_clips, 0)
            else:
                indices = first + sample_indices(
                    last - first,
                    num_frames,
                    stride=stride,
                    sampling=sampling,
                    num_clips=num_clips,
                    random_offset=random_offset,
                    short_clip=short_clip,
                    generator=generator,
                )
            try:
                decoded = video.decode(np.unique(indices))
            except _Shortfall as e:
                if e.decoded < 1 or e.decoded >= available or available - e.decoded > _SHORTFALL_TOLERANCE(available):
                    raise VideoReadError(
                        path,
                        f"truncated or corrupt: the header declares {available} frames but decoding ends after "
                        f"{e.decoded}",
                    ) from None
                warnings.warn(
                    f"{path}: header declares {available} frames but only {e.decoded} decode (truncated file?); "
                    "sampling over the frames that decode",
                    stacklevel=5,  # read_video's caller
                )
                available, times = e.decoded, None
                continue
            frames = np.stack([decoded[int(i)] for i in indices.reshape(-1)])
            return frames.reshape(indices.shape + frames.shape[1:])
        raise VideoReadError(path, "the number of decodable frames keeps changing between reads")

    return _with_video(path, backend, num_threads, sample_and_decode)


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    *,
    stride: int = 1,
    sampling: str = "strided",
    random_offset: bool = False,
    short_clip: str = "loop",
    start_sec: float | None = None,
    end_sec: float | None = None,
    generator: np.random.Generator | None = None,
    backend: str | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """One clip of a video file as uint8 RGB (T, H, W, 3).

    Args:
        path: the video file (anything FFmpeg reads).
        num_frames: frames to sample; None decodes every frame (of the segment).
        stride: frame step of "strided" sampling (ViViT-B/16x2: 32 frames at stride 2).
        sampling: "strided" or "uniform" (see the module docstring).
        random_offset: random clip position / random frame per segment (training) instead of the centred one.
        short_clip: policy when a strided clip spans more frames than the video holds: "loop", "repeat_last", "error".
        start_sec, end_sec: restrict sampling to this segment (Kinetics-style annotations).
        generator: numpy Generator for the random choices.
        backend: "auto", "torchcodec" or "pyav"; None: the process-wide default (`set_video_backend`).
        num_threads: decoder threads; None: 1 inside a DataLoader worker, else min(4, cores).
    """
    clips = _read(
        path,
        num_frames,
        stride=stride,
        sampling=sampling,
        num_clips=1,
        random_offset=random_offset,
        short_clip=short_clip,
        start_sec=start_sec,
        end_sec=end_sec,
        generator=generator,
        backend=backend,
        num_threads=num_threads,
    )
    return clips[0]


def read_clips(
    path: str | os.PathLike,
    num_frames: int,
    num_clips: int,
    *,
    stride: int = 1,
    sampling: str = "strided",
    short_clip: str = "loop",
    start_sec: float | None = None,
    end_sec: float | None = None,
    backend: str | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """`num_clips` evenly spread temporal views of a video as uint8 (num_clips, T, H, W, 3) (one decoding pass).

    `backend` and `num_threads` as in `read_video`."""
    return _read(
        path,
        num_frames,
        stride=stride,
        sampling=sampling,
        num_clips=num_clips,
        random_offset=False,
        short_clip=short_clip,
        start_sec=start_sec,
        end_sec=end_sec,
        generator=None,
        backend=backend,
        num_threads=num_threads,
    )


def write_video(path: str | os.PathLike, frames: np.ndarray, *, fps: int = 25, codec: str = "libx264") -> None:
    """Encode uint8 RGB frames (T, H, W, 3) to a file (even H and W for 4:2:0 codecs). For tests and examples."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p" if codec not in ("ffv1", "png", "rawvideo") else "rgb24"
        if codec == "ffv1":
            stream.pix_fmt = "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


__all__ = [
    "VideoInfo",
    "VideoReadError",
    "decode_frames",
    "read_clips",
    "read_video",
    "sample_indices",
    "segment_frames",
    "get_video_backend",
    "set_video_backend",
    "video_info",
    "write_video",
]
