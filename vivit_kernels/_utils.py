"""Small facts every kernel module needs: is Triton importable, is the interpreter on, can a tensor run a kernel, what
autocast does to an operand, which GPU a tensor lives on and whether `auto` should take a kernel there."""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch

try:
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton is absent on some platforms
    HAS_TRITON = False

# `triton.jit` decides at decoration time whether a kernel is interpreted, so this is read once, at import.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

KIB = 1024
# Dynamic shared memory one program may opt into, by architecture (A100 / A30; RTX 30xx-40xx, A10, L4, L40; H100/H200).
SHARED_PER_BLOCK = {80: 163 * KIB, 86: 99 * KIB, 87: 163 * KIB, 89: 99 * KIB, 90: 227 * KIB}
# The oldest architecture whose kernel configurations vivit_kernels.report checks (no spills, tensor cores, shared
# memory): `auto` takes a kernel from here on only. Strict "triton" runs from MIN_TRITON_ARCH (Triton's own floor).
MIN_AUTO_ARCH = 80
MIN_TRITON_ARCH = 70


def triton_unavailable_reason(*tensors: torch.Tensor) -> str | None:
    """None when a Triton kernel can run on these tensors, else a short reason why not."""
    if not HAS_TRITON:
        return "triton is not installed"
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        return f"tensors are on different devices {sorted(map(str, devices))}"
    device = devices.pop()
    if device.type == "cuda":
        arch = device_caps(device).arch
        if arch < MIN_TRITON_ARCH:
            return f"{device} is sm_{arch}; Triton needs sm_{MIN_TRITON_ARCH} or newer"
        if arch < 80 and any(t.dtype == torch.bfloat16 for t in tensors):
            return f"{device} is sm_{arch}; bfloat16 kernels need sm_80 or newer"
        return None
    if device.type == "cpu" and INTERPRET:
        return None
    if device.type == "cpu":
        return "CPU tensors need TRITON_INTERPRET=1 set before `vivit_kernels` is imported"
    return f"device type {device.type!r} is not supported"


# ----------------------------------------------------------------------------------------------------------------------
# Autocast: the ops are custom ops, which autocast does not cast; each op's Triton path casts what the eager op's
# linear / conv / attention would see, and nothing else (LayerNorm and the residual stream stay as they are).
# ----------------------------------------------------------------------------------------------------------------------


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast gives matmul operands on `device_type` right now, or None when autocast is off there."""
    if device_type not in ("cuda", "cpu") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def autocast_cast(t: torch.Tensor | None, dtype: torch.dtype | None) -> torch.Tensor | None:
    """What autocast does to one operand of a lower-precision op: floating tensors other than fp64 become `dtype`."""
    if dtype is None or t is None or not t.is_floating_point() or t.dtype in (dtype, torch.float64):
        return t
    return t.to(dtype)


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype the matmuls of an op whose matmul operand is `t` run in, under the current autocast state."""
    dtype = autocast_dtype(t.device.type)
    if dtype is None or not t.is_floating_point() or t.dtype == torch.float64:
        return t.dtype
    return dtype


# ----------------------------------------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceCaps:
    """What the `auto` rule needs of a device: architecture (major * 10 + minor), opt-in shared memory per program."""

    arch: int
    shared_per_block: int
    name: str


# What VIVIT_AUTO_INTERPRETER=1 makes `auto` believe of the interpreter (tests of the dispatch rules): an H100.
INTERPRETER_CAPS = DeviceCaps(90, SHARED_PER_BLOCK[90], "interpreter, treated as sm_90 with 227 KiB")


def auto_interpreter() -> bool:
    """Whether `auto` may consider CPU tensors run by Triton's interpreter (tests of the dispatch rules only)."""
    return INTERPRET and os.environ.get("VIVIT_AUTO_INTERPRETER") == "1"


@functools.cache
def _cuda_caps(index: int) -> DeviceCaps:
    major, minor = torch.cuda.get_device_capability(index)
    arch = 10 * major + minor
    props = torch.cuda.get_device_properties(index)
    shared = getattr(props, "shared_memory_per_block_optin", 0) or SHARED_PER_BLOCK.get(arch, 48 * KIB)
    return DeviceCaps(arch, int(shared), f"{props.name} (sm_{arch}, {shared // KIB} KiB shared per block)")


def device_caps(device: torch.device) -> DeviceCaps | None:
    """Capabilities of a CUDA device (or of the interpreter under VIVIT_AUTO_INTERPRETER=1); None otherwise."""
    if device.type == "cuda":
        return _cuda_caps(device.index if device.index is not None else torch.cuda.current_device())
    if device.type == "cpu" and auto_interpreter():
        return INTERPRETER_CAPS
    return None


def device_guard(t: torch.Tensor):
    """Launch on the tensor's GPU, not on whichever one is current (a no-op for CPU tensors)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def fp32_precision() -> str:
    """The dot precision of fp32 operands: "ieee" at torch.get_float32_matmul_precision() == "highest", else "tf32"."""
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def auto_reason(dtype: torch.dtype, precision: str, arch: int, shared_need: int, shared_limit: int) -> str | None:
    """The part of the `auto` rule every op shares: None when a kernel needing `shared_need` bytes of shared memory per
    program, with matmul operands of `dtype` (fp32 at dot `precision`), is the fast choice on sm_`arch`.

    - sm_80 or newer (the oldest architecture the compile report checks; bf16 needs it anyway);
    - fp16 / bf16, or fp32 with tf32 dots: fp32 ieee dots have no tensor-core instruction (and spill registers);
    - the shared memory of the launched configurations fits the device's opt-in limit per program.
    """
    if arch < MIN_AUTO_ARCH:
        return f"sm_{arch} is older than sm_{MIN_AUTO_ARCH}, the oldest architecture the kernels are checked for"
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"dtype {dtype} has no kernel"
    if dtype == torch.float32 and precision != "tf32":
        return (
            "float32 at torch.get_float32_matmul_precision() == 'highest' needs ieee dots, which have no tensor-core "
            "instruction; eager PyTorch is faster (set the precision to 'high' for tf32 kernels)"
        )
    if shared_need > shared_limit:
        return f"needs {shared_need} B of shared memory per program, the device allows {shared_limit}"
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Measured speed: where a kernel lost to eager PyTorch on a real GPU, `auto` leaves the op to eager
# ----------------------------------------------------------------------------------------------------------------------

# (op, mode) pairs whose kernels were measured slower than eager PyTorch: bench/first_light.py on an H200 (sm_90),
# bf16, ViViT-B shapes, 2026-12-04 (BENCHMARKS.md, "GPU"). Mode "forward" is a call that needs no gradient,
# "training" one that does (forward + backward). No other GPU has been measured, so this holds on every
# architecture until one is. Strict backend="triton" still runs every kernel. The entries are per op and mode, not
# per tile configuration, so they still hold for kernels retiled since (spatial and joint attention measured with
# 128 x 64 forward tiles, now 64 x 64 with 16-wide tails): auto keeps those to eager until a GPU run says otherwise.
SLOWER_THAN_EAGER = frozenset(
    {
        ("attention_joint", "forward"),  # 0.64x SDPA (flash), 3137 tokens
        ("attention_joint", "training"),  # 0.52x
        ("attention_spatial", "forward"),  # 0.21-0.61x, 197 tokens
        ("attention_spatial", "training"),  # 0.22-0.41x
        # Temporal: measured with the former 64-row packed tiles. The 16/32-row tiles that replaced them are not
        # measured yet, so this stays as measured: training eager, the forward (4x faster, memory-bound, and the new
        # tiles move the same bytes with more of them in flight per SM per the compile report) on the kernel.
        ("attention_temporal", "training"),  # 0.75x (the forward alone is 4x faster)
        ("ln_linear", "forward"),  # 0.32-0.53x cuBLAS
        ("ln_linear", "training"),  # 0.28x
        ("ln_mlp", "forward"),  # 0.52-0.60x
        ("ln_mlp", "training"),  # 0.36x
    }
)


def measured_slower_reason(op: str, *tensors: torch.Tensor | None) -> str | None:
    """Why `auto` leaves `op` to eager although its kernel could run: it was measured slower (SLOWER_THAN_EAGER) in
    this call's mode, training when autograd will need a gradient of any tensor, forward otherwise."""
    training = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    mode = "training" if training else "forward"
    if (op, mode) in SLOWER_THAN_EAGER:
        return f"{op} ({mode}) was measured slower than eager PyTorch on a GPU; backend='triton' runs it anyway"
    return None
