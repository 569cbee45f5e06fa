"""VivitConfig: HF fields and defaults, variants, presets, validation, config.json round trip."""

import copy
import json
import warnings

import pytest
import torch
import transformers

from vivit import VivitConfig
from vivit.models.configuration import PRESETS

HF_DEFAULTS = dict(
    image_size=224,
    num_frames=32,
    tubelet_size=[2, 16, 16],
    num_channels=3,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu_fast",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    initializer_range=0.02,
    layer_norm_eps=1e-6,
    qkv_bias=True,
    pooler_output_size=768,
    pooler_act="tanh",
)


def test_hf_defaults():
    config = VivitConfig()
    for key, value in HF_DEFAULTS.items():
        assert getattr(config, key) == value, key
    assert config.num_labels == 2 and config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
    assert config.variant == "spatiotemporal" and config.pooling == "cls" and config.backend == "auto"
    assert config.num_temporal_layers == 4 and config.attention_order == "space_time" and config.drop_path_rate == 0


def test_defaults_agree_with_transformers():
    theirs = transformers.VivitConfig().to_dict()
    ours = VivitConfig().to_dict()
    for key in HF_DEFAULTS:
        assert list(ours[key]) == list(theirs[key]) if key == "tubelet_size" else ours[key] == theirs[key], key


@pytest.mark.parametrize(
    "variant, pooling",
    [
        ("spatiotemporal", "cls"),
        ("factorized_encoder", "cls"),
        ("factorized_self_attention", "mean"),
        ("factorized_dot_product", "mean"),
    ],
)
def test_variant_alone_builds_with_its_pooling(variant, pooling):
    assert VivitConfig(variant=variant).pooling == pooling


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(hidden_size=30, num_attention_heads=4),
            "hidden_size must be divisible by num_attention_heads .4.,",
        ),
        (dict(variant="factorized_dot_product", hidden_size=33, num_attention_heads=3), "must be even.*got 3"),
        (dict(variant="factorized_self_attention", pooling="cls"), "pooling='cls' needs a CLS token"),
        (dict(variant="factorized_dot_product", pooling="cls"), "pooling='cls' needs a CLS token"),
        (dict(pooler_act="relu"), "pooler_act must be 'tanh', got 'relu'"),
    ],
)
def test_cross_field_errors_when_a_model_is_built(kwargs, match):
    """Checks across fields run when a model is built: transformers' generic config tests build configs such as
    hidden_size=37 with 12 heads, which must load and save."""
    from vivit import VivitModel

    config = VivitConfig(**kwargs)
    assert config.to_dict()["hidden_size"] == kwargs.get("hidden_size", 768)
    with pytest.raises(ValueError, match=match):
        VivitModel(config)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="model5"), "variant must be one of"),
        (dict(backend="cuda"), "backend must be one of"),
        (dict(pooling="max"), "pooling must be one of"),
        (dict(attention_order="spacetime"), "attention_order must be one of"),
        (dict(num_temporal_layers=-1), "num_temporal_layers"),
        (dict(drop_path_rate=1.0), "drop_path_rate"),
        (dict(tubelet_size=[2, 16]), "tubelet_size"),
        (dict(hidden_act="relu"), "hidden_act must be one of"),
    ],
)
def test_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VivitConfig(**kwargs)


def test_remainder_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        VivitConfig(image_size=13, num_frames=7, tubelet_size=[2, 4, 4])
        VivitConfig(image_size=13, num_frames=7, tubelet_size=[2, 4, 4])
    messages = [str(w.message) for w in caught if "tubelet_size" in str(w.message)]
    assert len(messages) == 1 and "(1, 1, 1)" in messages[0]
    assert VivitConfig(image_size=13, num_frames=7, tubelet_size=[2, 4, 4]).grid == (3, 3, 3)


def test_too_small_input_loads_but_does_not_build():
    from vivit import VivitModel

    config = VivitConfig(image_size=8, tubelet_size=[2, 16, 16])  # HF accepts this config
    with pytest.raises(ValueError, match="no tubelet fits"):
        VivitModel(config)


def test_image_size_pair_and_grid():
    config = VivitConfig(image_size=[32, 48], num_frames=6, tubelet_size=[3, 8, 16])
    assert config.image_hw == (32, 48) and config.grid == (2, 4, 3)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("variant", ["spatiotemporal", "factorized_encoder"])
def test_presets(name, variant):
    config = VivitConfig.from_preset(name, variant=variant, num_labels=400)
    size = {
        "vivit-b-16x2": (768, 12, 12, 3072),
        "vivit-l-16x2": (1024, 24, 16, 4096),
        "vivit-h-16x2": (1280, 32, 16, 5120),
    }[name]
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == size
    assert config.tubelet_size == [2, 16, 16] and config.num_frames == 32 and config.image_size == 224
    assert config.variant == variant and config.num_labels == 400
    with pytest.raises(ValueError, match="preset must be one of .* got 'vivit-s-16x2'"):
        VivitConfig.from_preset("vivit-s-16x2")


def test_json_round_trip_keeps_unknown_keys(tmp_path):
    config = VivitConfig(
        image_size=[12, 9],
        tubelet_size=[2, 4, 4],
        variant="factorized_self_attention",
        attention_order="time_space",
        num_labels=3,
        drop_path_rate=0.1,
        video_size=[32, 224, 224],
        architectures=["VivitForVideoClassification"],
    )
    config.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["model_type"] == "vivit_factorized_self_attention" and raw["video_size"] == [32, 224, 224]
    assert raw["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    loaded = VivitConfig.from_pretrained(tmp_path)
    assert type(loaded) is type(config) and loaded.to_dict() == config.to_dict()
    assert loaded.id2label[2] == "LABEL_2" and loaded.video_size == [32, 224, 224]
    assert VivitConfig.from_pretrained(tmp_path, num_labels=5).num_labels == 5


def test_reads_and_is_read_by_transformers(tmp_path):
    theirs = transformers.VivitConfig(
        image_size=[12, 9], num_frames=5, hidden_size=48, num_attention_heads=6, id2label={0: "a", 1: "b", 2: "c"}
    )
    theirs.save_pretrained(tmp_path / "hf")
    ours = VivitConfig.from_pretrained(tmp_path / "hf")
    assert ours.image_size == [12, 9] and ours.hidden_size == 48 and ours.id2label == {0: "a", 1: "b", 2: "c"}
    assert ours.num_labels == 3 and ours.label2id == {"a": 0, "b": 1, "c": 2}
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.VivitConfig.from_pretrained(tmp_path / "ours")
    assert back.hidden_size == 48 and back.num_labels == 3 and list(back.image_size) == [12, 9]


def test_wrong_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ValueError, match="model_type 'vit'"):
        VivitConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "variant, model_type, class_name",
    [
        ("spatiotemporal", "vivit", "VivitConfig"),
        ("factorized_encoder", "vivit_factorized_encoder", "VivitFactorizedEncoderConfig"),
        ("factorized_self_attention", "vivit_factorized_self_attention", "VivitFactorizedSelfAttentionConfig"),
        ("factorized_dot_product", "vivit_factorized_dot_product", "VivitFactorizedDotProductConfig"),
    ],
)
def test_each_variant_has_its_model_type(tmp_path, variant, model_type, class_name):
    config = VivitConfig(variant=variant, hidden_size=48, num_attention_heads=4)
    assert isinstance(config, VivitConfig) and type(config).__name__ == class_name
    assert config.model_type == model_type and isinstance(config, transformers.PreTrainedConfig)
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == model_type
    assert type(VivitConfig.from_pretrained(tmp_path)).__name__ == class_name
    assert type(transformers.AutoConfig.from_pretrained(tmp_path)).__name__ == class_name
    copied = copy.deepcopy(config)
    assert type(copied) is type(config) and copied.to_dict() == config.to_dict()
    if variant != "spatiotemporal":  # a variant's class refuses another variant, naming both
        with pytest.raises(ValueError, match=f"variant 'spatiotemporal' is saved as model_type 'vivit'.*{class_name}"):
            type(config)(variant="spatiotemporal")


def test_generic_config_keys_and_dtype():
    """The keys every transformers config takes (as transformers' ConfigTester passes them), and dtype/torch_dtype."""
    common = dict(
        return_dict=False,
        output_hidden_states=True,
        output_attentions=True,
        chunk_size_feed_forward=5,
        problem_type="regression",
        architectures=["VivitForVideoClassification"],
        id2label={0: "a", 1: "b"},
    )
    config = VivitConfig(**common, torch_dtype="float16")
    for key, value in common.items():
        assert getattr(config, key) == value, key
    assert config.dtype == torch.float16 and config.num_labels == 2
    assert VivitConfig(dtype="bfloat16").dtype == torch.bfloat16
    assert VivitConfig(hidden_size=37, num_attention_heads=12).hidden_size == 37  # built only when a model is
    assert VivitConfig(num_labels=5).num_labels == 5
