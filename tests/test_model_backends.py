"""Every variant with backend="triton" (strict; kernels run through the Triton interpreter on the CPU) equals
backend="eager": logits, loss and every parameter gradient. A dispatch recorder proves which path ran."""

import pytest
import torch
from _helpers import ODD_SMALL, VARIANTS, randomize
from torch.utils._python_dispatch import TorchDispatchMode

from vivit import VivitConfig, VivitForVideoClassification
from vivit_kernels._utils import INTERPRET

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tubelet_size"),
    pytest.mark.skipif(not INTERPRET, reason="needs TRITON_INTERPRET=1 (set by tests/conftest.py)"),
]

# Odd sizes: 5 frames (2 tubelets + 1 dropped), 9x13 pixels (2x3 patches + remainders), head dim 12.
SMALL = dict(ODD_SMALL, hidden_size=24, num_hidden_layers=1)
KERNEL_OPS = {
    f"vivit_kernels.{op}_{p}" for op in ("patch_embed", "ln_linear", "attention", "ln_mlp") for p in ("fwd", "bwd")
}
EAGER_OPS = {"aten._scaled_dot_product_flash_attention_for_cpu", "aten.gelu"}


class OpRecorder(TorchDispatchMode):
    """Names of the top-level ops a region dispatches (aten and custom ops)."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def run(model, x, labels, mask):
    model.zero_grad()
    with OpRecorder() as recorder:
        out = model(x, labels=labels, frame_mask=mask)
        out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out.logits.detach(), out.loss.detach(), grads, recorder.ops


@pytest.mark.parametrize("variant", VARIANTS)
def test_triton_equals_eager(variant):
    eager = randomize(VivitForVideoClassification(VivitConfig(**SMALL, variant=variant, backend="eager")).train())
    triton = VivitForVideoClassification(VivitConfig(**SMALL, variant=variant, backend="triton")).train()
    triton.load_state_dict(eager.state_dict())
    x = torch.randn(2, 5, 3, 9, 13)
    labels = torch.tensor([0, 2])
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])

    logits_e, loss_e, grads_e, ops_e = run(eager, x, labels, mask)
    logits_t, loss_t, grads_t, ops_t = run(triton, x, labels, mask)

    assert KERNEL_OPS <= ops_t, KERNEL_OPS - ops_t
    assert not (EAGER_OPS & ops_t), EAGER_OPS & ops_t
    assert EAGER_OPS <= ops_e and not any(op.startswith("vivit_kernels.") for op in ops_e)
    torch.testing.assert_close(logits_t, logits_e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss_t, loss_e, atol=1e-5, rtol=1e-5)
    for name, grad in grads_e.items():
        if name.endswith("k_proj.bias"):
            # exactly zero in exact arithmetic (softmax ignores a constant added to all scores of a query): both
            # paths must give rounding noise only, small next to the query bias's gradient
            scale = grads_e[name.replace("k_proj", "q_proj")].norm()
            assert grad.norm() < 1e-5 * scale and grads_t[name].norm() < 1e-5 * scale, (name, scale.item())
            continue
        rel = (grads_t[name] - grad).norm() / grad.norm().clamp_min(1e-12)
        assert rel < 1e-5, (name, rel.item())


def test_auto_runs_eager_on_cpu(monkeypatch):
    monkeypatch.delenv("VIVIT_BACKEND", raising=False)
    model = VivitForVideoClassification(VivitConfig(**SMALL, backend="auto")).eval()
    with OpRecorder() as recorder, torch.no_grad():
        model(torch.randn(1, 5, 3, 9, 13))
    assert not any(op.startswith("vivit_kernels.") for op in recorder.ops)
    monkeypatch.setenv("VIVIT_BACKEND", "triton")  # "auto" now means strict Triton
    with OpRecorder() as recorder, torch.no_grad():
        model(torch.randn(1, 5, 3, 9, 13))
    assert {"vivit_kernels.attention_fwd", "vivit_kernels.ln_mlp_fwd"} <= recorder.ops
