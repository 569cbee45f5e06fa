"""A video opened with torchcodec for one read (`backend="torchcodec"` in vivit.data.io).

torchcodec's exact seek mode scans the file's packets when it opens it and numbers frames in presentation order,
the numbering the PyAV reader builds from its timestamp index, so both backends return the same frames for the same
indices, also on variable-frame-rate video. Segment times (`start_sec`, `end_sec`) come from the same
presentation-timestamp index as the PyAV reader's (demuxed with PyAV once per file version and cached), so a segment
selects the same frames whichever backend decodes it.

Only MP4/MOV and Matroska/WebM files are read: in MPEG program streams, and in AVI files with B-frames, torchcodec's
seeks land on the wrong frames without an error (the PyAV reader decodes the former from the start and matches the
latter by timestamp), so other containers are refused.
"""

from __future__ import annotations

import numpy as np

from vivit.data.io import VideoInfo, VideoReadError, _check_file, _FrameIndex, _index_of


class TorchCodecVideo:
    def __init__(self, path: str, num_threads: int):
        from torchcodec.decoders import VideoDecoder

        _check_file(path)
        self.path = path
        with open(path, "rb") as f:  # 12 bytes, to know the container before torchcodec seeks in it
            head = f.read(12)
        if not exact_seek_container(head):
            raise VideoReadError(
                path,
                "torchcodec seeks exactly only in MP4/MOV and Matroska/WebM files; read this one with "
                "backend='pyav' or 'auto'",
            )
        try:
            self.decoder = VideoDecoder(
                path, seek_mode="exact", num_ffmpeg_threads=num_threads, dimension_order="NHWC", device="cpu"
            )
        except Exception as e:  # torchcodec raises ValueError/RuntimeError for unreadable files and missing streams
            raise VideoReadError(path, f"cannot open as a video ({type(e).__name__}: {_one_line(e)})") from e

    def close(self) -> None:
        self.decoder = None  # torchcodec closes the file when its decoder is freed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> VideoInfo:
        meta = self.decoder.metadata
        fps = meta.average_fps_from_header or meta.average_fps or 0.0  # the header's, as PyAV reports it
        return VideoInfo(
            path=self.path,
            num_frames=int(meta.num_frames or 0),
            fps=float(fps),
            height=int(meta.height),
            width=int(meta.width),
            codec=str(meta.codec),
        )

    def index(self) -> _FrameIndex:
        return _index_of(self.path)

    def decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Frames at the sorted unique indices `wanted` (all within the frame count `info` reports)."""
        try:
            batch = self.decoder.get_frames_at(wanted.tolist())
        except Exception as e:
            raise VideoReadError(self.path, f"corrupt video data ({type(e).__name__}: {_one_line(e)})") from e
        frames = batch.data.numpy()
        return {int(i): frames[k] for k, i in enumerate(wanted)}


def exact_seek_container(head: bytes) -> bool:
    """Whether a file starting with `head` is MP4/MOV (an ISO box type at bytes 4-8) or Matroska/WebM (EBML magic)."""
    iso_box = head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
    return iso_box or head[:4] == b"\x1aE\xdf\xa3"


def _one_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""
