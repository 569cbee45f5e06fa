"""Checkpoint files and key names through transformers' loader and saver: classic names on disk, HF 5.x names in
memory, the older fused names of this library, sharded safetensors, pytorch_model.bin, loading info, dtype."""

import json

import pytest
import torch
import transformers
from _helpers import ODD_SMALL, VARIANTS, classic_name, randomize
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
    loaded, info = VivitForVideoClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    assert loaded.config.variant == variant and not loaded.training
    x = video()
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert keys == {classic_name(k) for k in model.state_dict()}
    assert "vivit.encoder.layer.1.attention.attention.value.bias" in keys
    assert not any("_proj" in k or ".layers." in k for k in keys)
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


@pytest.mark.parametrize("variant", VARIANTS)
def test_files_under_in_memory_names_load(tmp_path, variant):
    """A file written from a live state_dict() (HF 5.x names, e.g. by `vivit train`) loads unchanged."""
    model = make(variant)
    model.config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "model.safetensors")
    loaded, info = VivitForVideoClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    with torch.no_grad():
        x = video()
        assert torch.equal(loaded(x).logits, model(x).logits)


def fused_names(state: dict) -> dict:
    """This library's previous checkpoint layout: norm1/attn.qkv (q, k, v stacked)/attn.proj/norm2, norm_t/attn_t."""
    out = {}
    for key, value in state.items():
        old = key.replace(".layers.", ".encoder.layer.").replace("temporal_layers.", "temporal_encoder.layer.")
        for new, fused in (
            ("temporal_layernorm_before", "norm_t"),
            ("layernorm_before", "norm1"),
            ("layernorm_after", "norm2"),
            ("temporal_attention.o_proj", "attn_t.proj"),
            ("attention.o_proj", "attn.proj"),
        ):
            old = old.replace(f".{new}.", f".{fused}.")
        for attn, short in (("temporal_attention", "attn_t"), ("attention", "attn")):
            for part in ("weight", "bias"):
                if old.endswith(f".{attn}.q_proj.{part}"):
                    stem = old[: -len(f"{attn}.q_proj.{part}")]
                    trio = [state[key.replace(".q_proj.", f".{p}_proj.")] for p in "qkv"]
                    out[f"{stem}{short}.qkv.{part}"] = torch.cat(trio)
        if "_proj." in old and ".o_proj." not in old:
            continue
        out[old] = value
    return out


@pytest.mark.parametrize("variant", ["spatiotemporal", "factorized_encoder", "factorized_self_attention"])
def test_previous_fused_names_load_and_save_as_hf(tmp_path, variant):
    model = make(variant)
    old = fused_names(model.state_dict())
    assert any(".attn.qkv.weight" in k for k in old) and not any("_proj" in k and "o_proj" not in k for k in old)
    model.config.save_pretrained(tmp_path / "old")
    save_file({k: v.contiguous() for k, v in old.items()}, tmp_path / "old" / "model.safetensors")
    loaded, info = VivitForVideoClassification.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert not any(info.values()), info
    for name, p in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], p), name
    loaded.save_pretrained(tmp_path / "new")  # the fused layout is never written back
    keys = set(load_file(tmp_path / "new" / "model.safetensors"))
    assert not any(".qkv." in k or "norm1" in k for k in keys)
    assert keys == {classic_name(k) for k in model.state_dict()}
    if variant == "spatiotemporal":
        _, hf_info = transformers.VivitForVideoClassification.from_pretrained(
            tmp_path / "new", output_loading_info=True
        )
        assert not any(hf_info.values()), hf_info


def test_sharded_safetensors_and_pytorch_bin(tmp_path):
    model = make()
    state = {classic_name(k): v.contiguous() for k, v in model.state_dict().items()}
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
            loaded, info = VivitForVideoClassification.from_pretrained(path, output_loading_info=True)
            assert not any(info.values()), (path, info)
            assert torch.equal(loaded(x).logits, want)


def test_loading_info_lists_missing_and_unexpected_and_initialises_the_missing(tmp_path):
    model = make()
    state = {classic_name(k): v for k, v in model.state_dict().items()}
    state.pop("vivit.encoder.layer.0.layernorm_after.weight")
    state.pop("vivit.encoder.layer.0.attention.attention.query.weight")
    state["vivit.encoder.layer.0.extra.weight"] = torch.zeros(1)
    model.config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    loaded, info = VivitForVideoClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == {
        "vivit.layers.0.layernorm_after.weight",
        "vivit.layers.0.attention.q_proj.weight",
    }
    assert set(info["unexpected_keys"]) == {"vivit.layers.0.extra.weight"}  # reported under the renamed name
    # the missing ones get the model's initialisation (not leftover memory): LayerNorm 1, Linear N(0, 0.02)
    assert torch.equal(loaded.vivit.layers[0].layernorm_after.weight, torch.ones(20))
    q = loaded.vivit.layers[0].attention.q_proj.weight
    assert torch.isfinite(q).all() and 0.01 < q.std() < 0.03


def test_new_head_with_ignore_mismatched_sizes(tmp_path):
    model = make()
    model.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        VivitForVideoClassification.from_pretrained(tmp_path, num_labels=7)
    loaded, info = VivitForVideoClassification.from_pretrained(
        tmp_path, num_labels=7, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert {k for k, *_ in info["mismatched_keys"]} == {"classifier.weight", "classifier.bias"}
    assert loaded.classifier.weight.shape == (7, 20) and loaded.config.num_labels == 7
    assert torch.equal(loaded.vivit.layernorm.weight, model.vivit.layernorm.weight)
    assert loaded.classifier.weight.std() < 0.1  # freshly initialised, not left empty
    assert torch.equal(loaded.classifier.bias, torch.zeros(7))


def test_base_model_and_classifier_checkpoints_load_each_other(tmp_path):
    model = make()
    model.save_pretrained(tmp_path)
    base, info = VivitModel.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"pooler.dense.weight", "pooler.dense.bias"}
    x = video()
    with torch.no_grad():
        assert torch.equal(base(x).last_hidden_state, model.vivit(x).last_hidden_state)
    assert torch.isfinite(base.pooler.dense.weight).all() and torch.equal(base.pooler.dense.bias, torch.zeros(20))
    base.save_pretrained(tmp_path / "base")
    head, info = VivitForVideoClassification.from_pretrained(tmp_path / "base", output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    with torch.no_grad():
        assert torch.equal(head.vivit(x).last_hidden_state, model.vivit(x).last_hidden_state)


@pytest.mark.parametrize("argument", ["dtype", "torch_dtype"])
def test_dtype(tmp_path, argument):
    model = make("spatiotemporal")
    model.to(torch.float16).save_pretrained(tmp_path)
    half = VivitForVideoClassification.from_pretrained(tmp_path, **{argument: "auto"})
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    default = VivitForVideoClassification.from_pretrained(tmp_path)  # transformers' default, whatever it is
    hf_default = transformers.VivitForVideoClassification.from_pretrained(tmp_path)
    assert {p.dtype for p in default.parameters()} == {p.dtype for p in hf_default.parameters()}
    assert all(p.device.type == "cpu" for p in default.parameters())
    single = VivitForVideoClassification.from_pretrained(tmp_path, **{argument: torch.float32})
    assert {p.dtype for p in single.parameters()} == {torch.float32}
    bf16 = VivitForVideoClassification.from_pretrained(tmp_path, **{argument: torch.bfloat16})
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    x = video().to(torch.bfloat16)
    with torch.no_grad():
        assert bf16(x).logits.dtype == torch.bfloat16


def test_state_dict_argument_and_safe_serialization(tmp_path):
    model = make("factorized_encoder")
    other = make("factorized_encoder")
    model.save_pretrained(tmp_path / "st", state_dict=other.state_dict())
    loaded = VivitForVideoClassification.from_pretrained(tmp_path / "st")
    x = video()
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, other(x).logits)
    if _accepts_safe_serialization():  # removed from newer transformers (always safetensors)
        model.save_pretrained(tmp_path / "pt", safe_serialization=True)
        with torch.no_grad():
            assert torch.equal(VivitForVideoClassification.from_pretrained(tmp_path / "pt")(x).logits, model(x).logits)
    from_dict = VivitForVideoClassification.from_pretrained(None, config=model.config, state_dict=model.state_dict())
    with torch.no_grad():
        assert torch.equal(from_dict(x).logits, model(x).logits)


def _accepts_safe_serialization() -> bool:
    import inspect

    return "safe_serialization" in inspect.signature(transformers.PreTrainedModel.save_pretrained).parameters


def test_missing_files(tmp_path):
    with pytest.raises(OSError, match="model.safetensors"):
        VivitForVideoClassification.from_pretrained(tmp_path)
    make().config.save_pretrained(tmp_path)
    with pytest.raises(OSError, match="model.safetensors"):
        VivitForVideoClassification.from_pretrained(tmp_path)
