"""vivit: ViViT video transformers in PyTorch, all four variants, Hugging Face compatible, Triton-accelerated."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it. Imported on first use so that `vivit --help` and the data loaders
# do not pay for the model stack.
_EXPORTS = {
    "VivitConfig": "vivit.configuration",
    "VivitModel": "vivit.modeling",
    "VivitForVideoClassification": "vivit.modeling",
    "VivitImageProcessor": "vivit.processing",
    "VivitTorchImageProcessor": "vivit.processing",
    "read_video": "vivit.io",
    "VideoFolder": "vivit.data",
    "VideoCSV": "vivit.data",
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
