"""vivit: ViViT video transformers in PyTorch, all four variants, Hugging Face compatible, Triton-accelerated.

`import vivit` registers the four variants with transformers (Auto classes, the image processor, checkpoint key
conversion), deferred to the first use of transformers' Auto classes (see vivit._autoload) so that importing vivit, or
its decoding and data modules in data-loader workers, does not import transformers. Public names load on first use.
"""

from __future__ import annotations

import importlib

from vivit import _autoload

__version__ = "0.1.0"

_autoload.install()

# Public name -> module that defines it.
_EXPORTS = {
    "VivitConfig": "vivit.configuration",
    "InvalidConfigError": "vivit.config_checks",
    "UnbuildableConfigError": "vivit.config_checks",
    "CheckpointFileError": "vivit.checkpoint_files",
    "VivitModel": "vivit.modeling",
    "VivitForVideoClassification": "vivit.modeling",
    "VivitImageProcessor": "vivit.processing",
    "VivitTorchImageProcessor": "vivit.processing",
    "read_video": "vivit.io",
    "read_clips": "vivit.io",
    "decode_frames": "vivit.io",
    "VideoReadError": "vivit.io",
    "VideoFolder": "vivit.data",
    "VideoCSV": "vivit.data",
    "AnnotationError": "vivit.data",
    "read_annotations": "vivit.data",
    "write_annotations": "vivit.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vivit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
