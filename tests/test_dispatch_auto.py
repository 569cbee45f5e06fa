"""backend="auto" takes a kernel only where it is the fast, checked choice; strict "triton" runs or raises.

VIVIT_AUTO_INTERPRETER=1 lets `auto` consider the interpreter's CPU tensors, as an sm_90 device with 227 KiB of
shared memory per block; the tests swap in other device capabilities to exercise the rule. Real CUDA capability and
shared-memory queries are exercised only on a GPU.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vivit.models import dispatch
from vivit_kernels import _utils
from vivit_kernels import attention as attn_mod
from vivit_kernels import ln_mlp as ln_mod
from vivit_kernels import patch_embed as pe_mod
from vivit_kernels._utils import INTERPRET, DeviceCaps

pytestmark = pytest.mark.skipif(not INTERPRET, reason="needs TRITON_INTERPRET=1 (set by tests/conftest.py)")

KIB = 1024


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.fixture
def auto_interpreter(monkeypatch):
    """The interpreter as an sm_90 for `auto`, with the measured-speed table emptied: the eligibility rule alone."""
    monkeypatch.setenv("VIVIT_AUTO_INTERPRETER", "1")
    monkeypatch.delenv("VIVIT_BACKEND", raising=False)
    monkeypatch.setattr(_utils, "SLOWER_THAN_EAGER", frozenset())
    previous = torch.get_float32_matmul_precision()
    yield monkeypatch
    torch.set_float32_matmul_precision(previous)


def _attention_path(q, backend="auto"):
    with Ops() as rec:
        dispatch.attention(q, q, q, axis="temporal", backend=backend)
    return "triton" if "vivit_kernels.attention_fwd" in rec.ops else "eager"


def _ln_path(x, w, backend="auto"):
    D = x.shape[-1]
    with Ops() as rec:
        dispatch.ln_linear(x, torch.ones(D, dtype=x.dtype), torch.zeros(D, dtype=x.dtype), w, None, eps=1e-6,
                           backend=backend)  # fmt: skip
    return "triton" if "vivit_kernels.ln_linear_fwd" in rec.ops else "eager"


def test_auto_takes_16_bit_kernels_on_the_interpreter_as_sm90(auto_interpreter):
    assert _utils.device_caps(torch.device("cpu")) == _utils.INTERPRETER_CAPS
    assert _utils.INTERPRETER_CAPS.arch == 90 and _utils.INTERPRETER_CAPS.shared_per_block == 227 * KIB
    for dtype in (torch.float16, torch.bfloat16):
        assert _attention_path(torch.randn(1, 4, 3, 2, 32, dtype=dtype)) == "triton"
        assert _ln_path(torch.randn(2, 5, 16, dtype=dtype), torch.randn(24, 16, dtype=dtype)) == "triton"


def test_auto_off_without_the_interpreter_switch(monkeypatch):
    monkeypatch.delenv("VIVIT_AUTO_INTERPRETER", raising=False)
    monkeypatch.delenv("VIVIT_BACKEND", raising=False)
    q = torch.randn(1, 4, 3, 2, 32, dtype=torch.float16)
    assert _utils.device_caps(q.device) is None
    assert _attention_path(q) == "eager"
    assert "CUDA" in attn_mod.auto_unsupported_reason(q, q, q, axis="temporal")
    assert _attention_path(q, "triton") == "triton"  # strict still runs through the interpreter


def test_fp32_only_with_tf32(auto_interpreter):
    q = torch.randn(1, 4, 3, 2, 32)
    x, w = torch.randn(2, 5, 16), torch.randn(24, 16)
    torch.set_float32_matmul_precision("highest")
    assert _attention_path(q) == "eager" and _ln_path(x, w) == "eager"
    assert "ieee" in attn_mod.auto_unsupported_reason(q, q, q, axis="temporal")
    assert _attention_path(q, "triton") == "triton" and _ln_path(x, w, "triton") == "triton"  # strict runs
    torch.set_float32_matmul_precision("high")
    assert _attention_path(q) == "triton"
    # fp32 GEMMs stay with cuBLAS even with tf32: the fused LayerNorm-GEMM kernels take 16-bit compute only.
    assert _ln_path(x, w) == "eager" and "cuBLAS" in ln_mod.auto_unsupported_reason(x, w)


def test_autocast_decides_the_dtype(auto_interpreter):
    """fp32 tensors at "highest" under bf16 autocast compute in bf16: auto takes the kernels."""
    torch.set_float32_matmul_precision("highest")
    q = torch.randn(1, 4, 3, 2, 32)
    x, w = torch.randn(2, 5, 16), torch.randn(24, 16)
    with torch.autocast("cpu", torch.bfloat16):
        assert _attention_path(q) == "triton" and _ln_path(x, w) == "triton"


@pytest.mark.parametrize("arch", [70, 75])
def test_auto_needs_sm80(auto_interpreter, arch):
    auto_interpreter.setattr(_utils, "INTERPRETER_CAPS", DeviceCaps(arch, 96 * KIB, "test"))
    q = torch.randn(1, 4, 3, 2, 32, dtype=torch.float16)
    assert _attention_path(q) == "eager"
    assert f"sm_{arch}" in attn_mod.auto_unsupported_reason(q, q, q, axis="temporal")


def test_shared_memory_limit(auto_interpreter):
    """A device with 32 KiB per block: short head-dim-32 sequences fit, long head-dim-128 ones do not."""
    auto_interpreter.setattr(_utils, "INTERPRETER_CAPS", DeviceCaps(90, 32 * KIB, "test"))
    small = torch.randn(1, 8, 2, 1, 32, dtype=torch.float16)
    large = torch.randn(1, 1, 200, 1, 128, dtype=torch.float16)
    assert attn_mod.shared_bytes_needed(torch.float16, 32, 8) <= 32 * KIB
    assert _attention_path(small) == "triton"
    reason = attn_mod.auto_unsupported_reason(large, large, large, axis="spatial")
    assert reason is not None and "shared memory" in reason
    x, w = torch.randn(2, 5, 16, dtype=torch.float16), torch.randn(24, 16, dtype=torch.float16)
    assert ln_mod.shared_bytes_needed(torch.float16) > 32 * KIB
    assert _ln_path(x, w) == "eager"
    pixels, weight = torch.randn(1, 2, 3, 8, 8, dtype=torch.float16), torch.randn(8, 3, 2, 4, 4, dtype=torch.float16)
    assert "shared memory" in pe_mod.auto_unsupported_reason(pixels, weight)


def test_head_dim_above_128(auto_interpreter):
    q = torch.randn(1, 2, 3, 1, 136, dtype=torch.float16)
    assert _attention_path(q) == "eager"
    with pytest.raises(NotImplementedError, match=r"^attention: head dim 136"):
        dispatch.attention(q, q, q, axis="temporal", backend="triton")


def test_rule_matches_the_checked_architectures():
    """Every architecture vivit_kernels.report checks is one auto may take, with that architecture's limit."""
    from vivit_kernels import report

    for arch in report.TARGETS:
        assert arch >= _utils.MIN_AUTO_ARCH
        assert report.SHARED_LIMIT[arch] == _utils.SHARED_PER_BLOCK[arch]


# ----------------------------------------------------------------------------------------------------------------------
# Dropout seed: a device tensor the kernels read (CUDA-graph safe), drawn on the op's device
# ----------------------------------------------------------------------------------------------------------------------
def _mlp(D=16, I=24):
    x = torch.randn(2, 5, D)
    params = (
        torch.ones(D),
        torch.zeros(D),
        torch.randn(I, D) / 4,
        torch.zeros(I),
        torch.randn(D, I) / 5,
        torch.zeros(D),
    )
    return x, params


def test_dropout_seed_is_read_from_a_device_tensor():
    x, params = _mlp()

    def run(seed_value):
        seed = torch.tensor([seed_value], dtype=torch.int64)
        return torch.ops.vivit_kernels.ln_mlp_fwd(x, *params, None, 1e-6, "gelu_tanh", 0.5, seed, False)[0]

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # same compiled kernel, another seed value in memory: another mask


def test_dropout_seed_drawn_on_the_op_device():
    x, params = _mlp()
    seen = []

    class Seeds(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if str(func.overloadpacket) == "vivit_kernels.ln_mlp_fwd":
                seen.append(args[11])
            return func(*args, **(kwargs or {}))

    with Seeds():
        first = ln_mod.ln_mlp(x, *params, eps=1e-6, dropout_p=0.5, training=True, backend="triton")
        second = ln_mod.ln_mlp(x, *params, eps=1e-6, dropout_p=0.5, training=True, backend="triton")
    assert len(seen) == 2
    for seed in seen:
        assert seed.device == x.device and seed.dtype == torch.int64 and seed.shape == (1,)
    assert not torch.equal(first, second)  # a fresh seed per call


def test_auto_leaves_ops_measured_slower_to_eager(monkeypatch):
    """With the measured table: eligible kernels that lost to eager on a GPU go eager in the mode they lost in."""
    monkeypatch.setenv("VIVIT_AUTO_INTERPRETER", "1")
    monkeypatch.delenv("VIVIT_BACKEND", raising=False)
    assert ("ln_linear", "forward") in _utils.SLOWER_THAN_EAGER
    x, w = torch.randn(2, 5, 16, dtype=torch.float16), torch.randn(24, 16, dtype=torch.float16)
    assert ln_mod.auto_unsupported_reason(x, w) is None  # eligible, ...
    assert _ln_path(x, w) == "eager"  # ... but measured slower
    assert "measured slower" in _utils.measured_slower_reason("ln_linear", x)
    assert _ln_path(x, w, "triton") == "triton"  # strict runs it
    # Temporal attention: faster than eager for a forward only, slower once a gradient is needed.
    q = torch.randn(1, 4, 3, 2, 32, dtype=torch.float16)
    assert ("attention_temporal", "forward") not in _utils.SLOWER_THAN_EAGER
    assert _attention_path(q) == "triton"
    with torch.no_grad():
        assert _attention_path(q.requires_grad_()) == "triton"
    assert _attention_path(q) == "eager"  # q requires grad now: a training call
