"""torch.compile (aot_eager for every variant, one inductor run) and torch.export of the eager model."""

import pytest
import torch
from _helpers import ODD_SMALL, VARIANTS, randomize

from vivit import VivitConfig, VivitForVideoClassification

pytestmark = pytest.mark.filterwarnings("ignore:.*tubelet_size")

SMALL = dict(ODD_SMALL, backend="eager")


def make(variant):
    torch._dynamo.reset()
    return randomize(VivitForVideoClassification(VivitConfig(**SMALL, variant=variant)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_aot_eager_matches_eager_forward_and_backward(variant):
    model = make(variant).train()
    x = torch.randn(2, 5, 3, 9, 13)
    labels = torch.tensor([0, 2])
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    model(x, labels=labels, frame_mask=mask).loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        logits = model.eval()(x, frame_mask=mask).logits
    model.train().zero_grad()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    compiled(x, labels=labels, frame_mask=mask).loss.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, want[n], atol=1e-5, rtol=1e-4), n
    with torch.no_grad():
        assert torch.allclose(compiled.eval()(x, frame_mask=mask).logits, logits, atol=1e-5, rtol=1e-5)


def test_inductor_matches_eager():
    torch._dynamo.reset()
    model = VivitForVideoClassification(VivitConfig(**{**SMALL, "num_hidden_layers": 1})).eval()
    x = torch.randn(2, 5, 3, 9, 13)
    with torch.no_grad():
        want = model(x).logits
        got = torch.compile(model)(x).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_export(variant):
    model = make(variant).eval()
    x = torch.randn(2, 5, 3, 9, 13)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x).logits, model(x).logits, atol=1e-5, rtol=1e-5)
