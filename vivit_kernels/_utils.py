"""Small facts every kernel module needs: is Triton importable, is the interpreter on, can a tensor run a kernel."""

from __future__ import annotations

import os

import torch

try:
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton is absent on some platforms
    HAS_TRITON = False

# `triton.jit` decides at decoration time whether a kernel is interpreted, so this is read once, at import.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def triton_unavailable_reason(*tensors: torch.Tensor) -> str | None:
    """None when a Triton kernel can run on these tensors, else a short reason why not."""
    if not HAS_TRITON:
        return "triton is not installed"
    devices = {t.device.type for t in tensors}
    if len(devices) != 1:
        return f"tensors are on different devices {sorted(devices)}"
    device = devices.pop()
    if device == "cuda":
        return None
    if device == "cpu" and INTERPRET:
        return None
    if device == "cpu":
        return "CPU tensors need TRITON_INTERPRET=1 set before `vivit_kernels` is imported"
    return f"device type {device!r} is not supported"
