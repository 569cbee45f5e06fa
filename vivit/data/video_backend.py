"""Which library decodes video ("pyav" or "torchcodec"), and how many decoder threads it may use.

The process-wide default is `set_video_backend(name)`, else the environment variable VIVIT_VIDEO_BACKEND, else
"auto". The variable also reaches DataLoader workers started with "spawn", which do not inherit a
`set_video_backend` call. "auto" means AUTO_CHOICE, chosen by measurement: PyAV, which on the CPU decode benchmark
(BENCHMARKS.md, "Decoding") tied with torchcodec on a quiet machine and was faster on a loaded one (a DataLoader whose
workers fill the cores is one). With AUTO_CHOICE = "torchcodec", "auto" would take torchcodec when it imports
and loads FFmpeg here, and read with PyAV the files torchcodec refuses.

torchcodec is imported lazily (never at `import vivit`): it loads FFmpeg's shared libraries at import, and an import
that fails for want of them (OSError/RuntimeError) makes `backend="torchcodec"` raise a one-line error saying how
to install it.

Decoder threads: inside a DataLoader worker 1 (the workers already use the cores; more threads per worker
oversubscribe them), in the main process min(4, usable cores). `num_threads=` overrides both.
"""

from __future__ import annotations

import os

BACKENDS = ("auto", "torchcodec", "pyav")
ENV_VAR = "VIVIT_VIDEO_BACKEND"
# The backend "auto" resolves to, chosen by measurement (see the module docstring).
AUTO_CHOICE = "pyav"
INSTALL_HINT = 'pip install "vivit[torchcodec]" plus FFmpeg\'s shared libraries (e.g. apt-get install ffmpeg)'
MAIN_PROCESS_MAX_THREADS = 4

_default: str | None = None
_torchcodec_problem: list[str | None] = []  # [] until probed, then [None] (usable) or [reason]


def _check_name(name: str, what: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{what}: expected one of {BACKENDS}, got {name!r}")
    return name


def set_video_backend(name: str | None) -> None:
    """Sets the process-wide decoding backend ("auto", "torchcodec", "pyav"); None returns to the environment's."""
    global _default
    _default = None if name is None else _check_name(name, "backend")


def get_video_backend() -> str:
    """The process-wide default backend name (not yet resolved: may be "auto")."""
    if _default is not None:
        return _default
    return _check_name(os.environ.get(ENV_VAR, "auto"), ENV_VAR)


def torchcodec_problem() -> str | None:
    """None when torchcodec imports and loads FFmpeg here, else why not (one line)."""
    if not _torchcodec_problem:
        try:
            import torchcodec.decoders  # noqa: F401  (loads FFmpeg's libraries: the part that fails without them)
        except ImportError as e:
            _torchcodec_problem.append(f"torchcodec is not installed ({e})")
        except (OSError, RuntimeError) as e:
            first_line = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            _torchcodec_problem.append(f"torchcodec cannot load FFmpeg ({first_line})")
        else:
            _torchcodec_problem.append(None)
    return _torchcodec_problem[0]


def resolve_backend(backend: str | None) -> str:
    """ "pyav" or "torchcodec" for a `backend=` argument (None: the process-wide default)."""
    name = get_video_backend() if backend is None else _check_name(backend, "backend")
    if name == "auto":
        return "torchcodec" if AUTO_CHOICE == "torchcodec" and torchcodec_problem() is None else "pyav"
    if name == "torchcodec":
        problem = torchcodec_problem()
        if problem is not None:
            raise RuntimeError(f'backend="torchcodec" is unavailable: {problem}; install it with {INSTALL_HINT}')
    return name


def decoder_threads(num_threads: int | None) -> int:
    """Decoder threads for one open video: `num_threads` if given, else 1 in a DataLoader worker, else a few."""
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads: expected an int >= 1 or None, got {num_threads!r}")
        return num_threads
    from torch.utils.data import get_worker_info

    if get_worker_info() is not None:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAIN_PROCESS_MAX_THREADS, cores))


__all__ = ["BACKENDS", "decoder_threads", "get_video_backend", "resolve_backend", "set_video_backend"]
