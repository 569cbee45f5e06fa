"""GPU correctness of every Triton kernel, the pytest face of bench/first_light.py's `correct` stage.

On a CUDA GPU, each op's Triton path is compared with its fp64 `<op>_reference` on the rounded inputs, forward and
every gradient, at ViViT shapes and odd ones, in bf16 and fp32, with q/k/v as strided views of a fused projection; the
rule (max and mean error each within twice eager's plus a rounding floor) is in first_light.py's docstring. Without a
GPU these checks skip: the interpreter suite in tests/ covers the CPU, and bench_first_light.py checks the script.
"""

from __future__ import annotations

import _harness as H
import first_light
import pytest


@pytest.mark.parametrize("op", first_light.OPS)
def test_op_on_gpu(op, tmp_path):
    if not H.on_gpu():
        pytest.skip("no CUDA GPU: Triton kernels are checked on the CPU by the interpreter suite in tests/")
    stage = first_light.stage_correct(op, str(tmp_path))
    failed = [r for r in stage.data["rows"] if not r.get("ok")]
    assert not failed, "\n".join(f"{r.get('case')} {r.get('dtype')} {r.get('tensor', '')}: {r}" for r in failed)
