"""Checkpoint files and key names: safetensors, sharded safetensors, pytorch_model.bin, strictness, dtype."""

import json

import pytest
import torch
from _helpers import ODD_SMALL, VARIANTS, randomize
from safetensors.torch import load_file, save_file

from vivit import VivitConfig, VivitForVideoClassification, VivitModel

pytestmark = pytest.mark.filterwarnings("ignore:.*tubelet_size")


def make(variant="spatiotemporal", cls=VivitForVideoClassification, **overrides):
    return randomize(cls(VivitConfig(**{**ODD_SMALL, "variant": variant, **overrides})).eval())


def video():
    return torch.randn(2, 5, 3, 9, 13)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_and_load_every_variant(tmp_path, variant):
    model = make(variant)
    model.save_pretrained(tmp_path)
    loaded = VivitForVideoClassification.from_pretrained(tmp_path)
    assert loaded.config.variant == variant and not loaded.training
    x = video()
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert keys == set(model.state_dict())
    assert "vivit.encoder.layer.1.attention.attention.value.bias" in keys
    assert not any(".qkv." in k or "norm1" in k or "mlp." in k for k in keys)
    if variant == "factorized_encoder":
        assert {
            "vivit.temporal_embeddings.cls_token",
            "vivit.temporal_layernorm.weight",
            "vivit.temporal_encoder.layer.0.intermediate.dense.weight",
        } <= keys
        assert load_file(tmp_path / "model.safetensors")["vivit.embeddings.position_embeddings"].shape == (1, 7, 20)
    if variant == "factorized_self_attention":
        assert {
            "vivit.encoder.layer.0.temporal_layernorm_before.weight",
            "vivit.encoder.layer.0.temporal_attention.attention.query.weight",
            "vivit.encoder.layer.0.temporal_attention.output.dense.bias",
        } <= keys
    if variant in ("factorized_self_attention", "factorized_dot_product"):
        assert "vivit.embeddings.cls_token" not in keys


def test_sharded_safetensors_and_pytorch_bin(tmp_path):
    model = make()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    names = sorted(state)
    shards = {
        "model-00001-of-00002.safetensors": names[: len(names) // 2],
        "model-00002-of-00002.safetensors": names[len(names) // 2 :],
    }
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    model.config.save_pretrained(sharded)
    for file, keys in shards.items():
        save_file({k: state[k] for k in keys}, sharded / file, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    binary = tmp_path / "bin"
    binary.mkdir()
    model.config.save_pretrained(binary)
    torch.save(state, binary / "pytorch_model.bin")
    x = video()
    with torch.no_grad():
        want = model(x).logits
        for path in (sharded, binary):
            assert torch.equal(VivitForVideoClassification.from_pretrained(path)(x).logits, want)


def test_strict_keys_list_missing_and_unexpected(tmp_path):
    model = make()
    state = model.state_dict()
    state.pop("vivit.encoder.layer.0.layernorm_after.bias")
    state["vivit.encoder.layer.0.extra.weight"] = torch.zeros(1)
    model.config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    with pytest.raises(
        RuntimeError,
        match=r"(?s)missing keys \(1\).*layernorm_after.bias.*unexpected keys \(1\)"
        r".*extra.weight",
    ):
        VivitForVideoClassification.from_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="Missing key"):
        make().load_state_dict(state)


def test_new_head_with_ignore_mismatched_sizes(tmp_path):
    model = make()
    model.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match=r"classifier.weight: checkpoint \(3, 20\), model \(7, 20\)"):
        VivitForVideoClassification.from_pretrained(tmp_path, num_labels=7)
    with pytest.warns(UserWarning, match="size mismatch"):
        loaded = VivitForVideoClassification.from_pretrained(tmp_path, num_labels=7, ignore_mismatched_sizes=True)
    assert loaded.classifier.weight.shape == (7, 20) and loaded.config.num_labels == 7
    assert torch.equal(loaded.vivit.layernorm.weight, model.vivit.layernorm.weight)
    assert loaded.classifier.weight.std() < 0.1  # freshly initialised, not left empty


def test_base_model_from_classifier_checkpoint_tolerates_missing_pooler(tmp_path):
    model = make()
    model.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="pooler.dense.weight"):
        base = VivitModel.from_pretrained(tmp_path)
    x = video()
    with torch.no_grad():
        assert torch.equal(base(x).last_hidden_state, model.vivit(x).last_hidden_state)
    assert torch.isfinite(base.pooler.dense.weight).all()
    base.save_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match="classifier.weight"):
        head = VivitForVideoClassification.from_pretrained(tmp_path / "base")
    with torch.no_grad():
        assert torch.equal(head.vivit(x).last_hidden_state, model.vivit(x).last_hidden_state)


def test_dtype_and_device(tmp_path):
    model = make("factorized_dot_product")
    model.to(torch.float16).save_pretrained(tmp_path)
    half = VivitForVideoClassification.from_pretrained(tmp_path, dtype="auto", device="cpu")
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    single = VivitForVideoClassification.from_pretrained(tmp_path)
    assert {p.dtype for p in single.parameters()} == {torch.float32}
    assert all(p.device.type == "cpu" for p in single.parameters())
    bf16 = VivitForVideoClassification.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        VivitForVideoClassification.from_pretrained(tmp_path)
    make().config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        VivitForVideoClassification.from_pretrained(tmp_path)
