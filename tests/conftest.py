"""Test-suite set-up: Triton kernels run through the interpreter on the CPU.

Both variables must be set before anything imports triton or `vivit_kernels` (`triton.jit` reads them at
decoration time).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
