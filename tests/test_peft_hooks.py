"""The fused path next to PEFT, hooks and parametrizations: a module that is no longer a plain torch module is called
(so its wrapper, hooks or parametrization take effect) while the other ops keep their kernels; strict
backend="triton" refuses, naming the module."""

import pytest
import torch
from _helpers import ODD_SMALL, VARIANTS, randomize
from peft import LoraConfig, get_peft_model
from test_model_backends import OpRecorder
from torch.nn.utils import parametrize

import vivit_kernels._utils
from vivit import VivitConfig, VivitForVideoClassification
from vivit_kernels._utils import INTERPRET

pytestmark = pytest.mark.filterwarnings("ignore:.*tubelet_size")
SMALL = dict(ODD_SMALL, hidden_size=24)


def model_of(variant, backend="auto"):
    return randomize(VivitForVideoClassification(VivitConfig(**SMALL, variant=variant, backend=backend)), std=0.2)


def video():
    return torch.randn(2, 5, 3, 9, 13)


def lora(model):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"])
    return get_peft_model(model, config)


@pytest.mark.parametrize("variant", VARIANTS)
def test_lora_gets_gradients_changes_outputs_and_merges(variant):
    base = model_of(variant, backend="eager").eval()
    x, labels = video(), torch.tensor([0, 2])
    with torch.no_grad():
        before = base(x).logits.clone()
    peft_model = lora(base)
    lora_params = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    names = [n for n in lora_params if "lora_A" in n]
    targets = [n for n, _ in base.named_modules() if n.endswith((".q_proj", ".v_proj"))]
    # q_proj and v_proj of every attention: Model 2's temporal encoder and Model 3's temporal attention too
    assert len(names) == len(targets) == 2 * sum(n.endswith(".o_proj") for n, _ in base.named_modules())
    peft_model.train()
    peft_model(x, labels=labels).loss.backward()
    for n, p in lora_params.items():
        if "lora_B" in n:  # B starts at zero, so only B gets a gradient on the first step
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    with torch.no_grad():
        for n, p in lora_params.items():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(x).logits.clone()
        assert not torch.allclose(adapted, before, atol=1e-4)
        merged = peft_model.merge_and_unload()
        assert type(merged.vivit.layers[0].attention.q_proj) is torch.nn.Linear
        # the fused kernels read the merged weights (no stale cached copy of q/k/v)
        torch.testing.assert_close(merged(x).logits, adapted, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_hooks_fire_once_per_block(variant):
    model = model_of(variant).eval()
    calls = {"q_proj": 0, "fc1": 0}
    layers = model.vivit.layers
    x = video()
    with torch.no_grad():
        plain = model(x).logits
        for layer in layers:
            layer.attention.q_proj.register_forward_hook(lambda *_: calls.__setitem__("q_proj", calls["q_proj"] + 1))
            layer.mlp.fc1.register_forward_hook(lambda *_: calls.__setitem__("fc1", calls["fc1"] + 1))
        hooked = model(x).logits
    assert calls == {"q_proj": len(layers), "fc1": len(layers)}
    torch.testing.assert_close(hooked, plain, atol=1e-5, rtol=1e-5)  # a hook that returns nothing changes nothing


def test_hook_that_changes_the_output_takes_effect():
    model = model_of("spatiotemporal").eval()
    x = video()
    with torch.no_grad():
        plain = model(x).logits
        handle = model.vivit.layers[0].mlp.fc1.register_forward_hook(lambda m, i, o: o * 0)
        zeroed = model(x).logits
        handle.remove()
        # the same as removing the block's MLP branch but its fc2 bias: set fc1's output to zero by its weights
        fc1 = model.vivit.layers[0].mlp.fc1
        fc1.weight.zero_()
        fc1.bias.zero_()
        expected = model(x).logits
    assert not torch.allclose(plain, zeroed)
    torch.testing.assert_close(zeroed, expected, atol=1e-5, rtol=1e-5)


def test_parametrized_global_hooked_and_pre_hooked_modules_are_called():
    model = model_of("factorized_dot_product").eval()
    x = video()

    class Double(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    with torch.no_grad():
        reference = model(x).logits
        k = model.vivit.layers[1].attention.k_proj
        weight = k.weight.detach().clone()
        parametrize.register_parametrization(k, "weight", Double())
        doubled = model(x).logits
        parametrize.remove_parametrizations(k, "weight", leave_parametrized=False)
        k.weight.copy_(2 * weight)
        assert torch.equal(model(x).logits, doubled)  # the parametrization was applied, not bypassed
        k.weight.copy_(weight)
        seen = []
        handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(type(m).__name__))
        try:
            torch.testing.assert_close(model(x).logits, reference)
        finally:
            handle.remove()
        assert seen.count("Linear") >= 4 * SMALL["num_hidden_layers"]  # q, k, v, o of every block were called
        pre = model.vivit.embeddings.patch_embeddings.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
        blank = model(x).logits
        pre.remove()
        torch.testing.assert_close(blank, model(torch.zeros_like(x)).logits)


@pytest.mark.skipif(not INTERPRET, reason="needs TRITON_INTERPRET=1 (set by tests/conftest.py)")
@pytest.mark.parametrize("variant", ["spatiotemporal", "factorized_self_attention"])
def test_lora_q_proj_keeps_every_other_kernel(monkeypatch, variant):
    """Under "auto" with kernels eligible (interpreter tensors considered, bf16 autocast, and the measured-speed table
    emptied: this checks the module logic, not which kernels pay off), a LoRA-wrapped q_proj sends only its
    projection to the modules; patch embedding, attention and the MLP keep their kernels."""
    monkeypatch.setenv("VIVIT_AUTO_INTERPRETER", "1")
    monkeypatch.delenv("VIVIT_BACKEND", raising=False)
    monkeypatch.setattr(vivit_kernels._utils, "SLOWER_THAN_EAGER", frozenset())
    model = model_of(variant).eval()
    x = video()
    with OpRecorder() as plain, torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        want = model(x).logits
    assert {"vivit_kernels.ln_linear_fwd", "vivit_kernels.attention_fwd", "vivit_kernels.ln_mlp_fwd"} <= plain.ops
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).eval()
    with OpRecorder() as rec, torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        got = wrapped(x).logits
    assert "vivit_kernels.ln_linear_fwd" not in rec.ops  # q/k/v of every block went through the modules
    assert {"vivit_kernels.patch_embed_fwd", "vivit_kernels.attention_fwd", "vivit_kernels.ln_mlp_fwd"} <= rec.ops
    # LoRA B starts at zero: the same function, up to bf16 rounding of the two routes (LN + three Linears vs one GEMM)
    torch.testing.assert_close(got, want, atol=3e-2, rtol=3e-2)
    strict = model_of(variant, backend="triton")
    strict = get_peft_model(strict, LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(NotImplementedError, match=r"^vivit\.layers\.0\.\w*attention\.q_proj is a peft LoraLayer"):
        strict(x)


@pytest.mark.skipif(not INTERPRET, reason="needs TRITON_INTERPRET=1 (set by tests/conftest.py)")
def test_strict_triton_names_hooked_and_subclassed_modules():
    model = model_of("spatiotemporal", backend="triton").eval()
    handle = model.vivit.layers[1].mlp.fc1.register_forward_hook(lambda *_: None)
    with pytest.raises(NotImplementedError, match=r"^vivit\.layers\.1\.mlp\.fc1 has forward hooks"):
        model(video())
    handle.remove()

    class MyNorm(torch.nn.LayerNorm):
        pass

    old = model.vivit.layers[0].layernorm_before
    model.vivit.layers[0].layernorm_before = MyNorm(old.normalized_shape, eps=old.eps)
    with pytest.raises(NotImplementedError, match=r"^vivit\.layers\.0\.layernorm_before is a subclass .*MyNorm"):
        model(video())
