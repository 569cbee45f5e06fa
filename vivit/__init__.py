"""vivit: ViViT video transformers in PyTorch, all four variants, Hugging Face compatible, Triton-accelerated.

`import vivit` registers the four variants with transformers (Auto classes, the image processor, checkpoint key
conversion), deferred to the first use of transformers' Auto classes (see vivit.models._autoload) so that importing
vivit, or its decoding and data modules in data-loader workers, does not import transformers. Public names load on
first use.
"""

from __future__ import annotations

import importlib

from vivit.models import _autoload

__version__ = "0.1.0"

_autoload.install()

# Public name -> module that defines it.
_EXPORTS = {
    "VivitConfig": "vivit.models.configuration",
    "InvalidConfigError": "vivit.models.config_checks",
    "UnbuildableConfigError": "vivit.models.config_checks",
    "CheckpointFileError": "vivit.models.checkpoint_files",
    "VivitModel": "vivit.models.modeling",
    "VivitForVideoClassification": "vivit.models.modeling",
    "VivitImageProcessor": "vivit.data.processing",
    "VivitTorchImageProcessor": "vivit.data.processing",
    "read_video": "vivit.data.io",
    "read_clips": "vivit.data.io",
    "decode_frames": "vivit.data.io",
    "VideoReadError": "vivit.data.io",
    "set_video_backend": "vivit.data.video_backend",
    "VideoFolder": "vivit.data.datasets",
    "VideoCSV": "vivit.data.datasets",
    "AnnotationError": "vivit.data.datasets",
    "read_annotations": "vivit.data.datasets",
    "write_annotations": "vivit.data.datasets",
    "open_dataset": "vivit.data.spec",
    "DatasetSpecError": "vivit.data.spec",
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
