"""Strict configs: unknown keys and wrong values refused with one line naming the field; what transformers' own
config tests and published checkpoints pass still loads; config.json errors name the file."""

import copy
import json

import pytest
import torch
import transformers

from vivit import VivitConfig, VivitModel
from vivit.models.config_checks import ConfigFileError, ConfigTypeError, InvalidConfigError, UnbuildableConfigError

TINY = dict(image_size=32, num_frames=8, tubelet_size=[2, 16, 16], hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64)  # fmt: skip


def refused(match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        VivitConfig(**kwargs)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_hiden_layers=1), r"unknown key 'num_hiden_layers'; did you mean 'num_hidden_layers'\?"),
        (dict(hiddensize=32), r"unknown key 'hiddensize'; did you mean 'hidden_size'\?"),
        (dict(num_labels=-1), r"num_labels must be an integer >= 1, got -1"),
        (dict(num_labels=0), r"num_labels must be an integer >= 1, got 0"),
        (dict(num_labels=2.0), r"num_labels must be an integer >= 1, got 2.0 \(float\)"),
        (dict(image_size="32"), r"image_size must be an integer or \[height, width\] integers, got '32' \(str\)"),
        (dict(image_size=[32, 0]), r"image_size must be positive, got \[32, 0\]"),
        (dict(image_size=[32, 32, 32]), r"image_size must be .*got \[32, 32, 32\]"),
        (dict(qkv_bias="false"), r"qkv_bias must be True or False, got 'false' \(str\)"),
        (dict(tubelet_size=8), r"tubelet_size must be 3 integers \(t, h, w\), got 8 \(int\)"),
        (dict(tubelet_size=[2, 16, 0]), r"tubelet_size must be 3 positive integers"),
        (dict(dtype="float61"), r"dtype must be a torch dtype or one of .*got 'float61'"),
        (dict(dtype="int8"), r"dtype must be .*got 'int8'"),
        (dict(torch_dtype="Tensor"), r"torch_dtype must be .*got 'Tensor'"),
        (dict(dtype=torch.int64), r"dtype must be .*got torch.int64"),
        (dict(dtype="float8_e4m3fn"), r"dtype must be .*got 'float8_e4m3fn'"),
        (dict(hidden_size=True), r"hidden_size must be an integer >= 1, got True \(bool\)"),
        (dict(num_frames=0), r"num_frames must be an integer >= 1, got 0"),
        (dict(intermediate_size="64"), r"intermediate_size must be an integer >= 1, got '64'"),
        (dict(hidden_dropout_prob=1.0), r"hidden_dropout_prob must be in \[0, 1\), got 1.0"),
        (dict(attention_probs_dropout_prob=-0.1), r"attention_probs_dropout_prob must be in \[0, 1\), got -0.1"),
        (dict(drop_path_rate=float("nan")), r"drop_path_rate must be in \[0, 1\), got nan"),
        (dict(layer_norm_eps=0), r"layer_norm_eps must be a finite number > 0, got 0"),
        (dict(initializer_range=float("inf")), r"initializer_range must be a finite number >= 0, got inf"),
        (dict(hidden_act="relu"), r"hidden_act must be one of \[.*'gelu'.*\], got 'relu'"),
        (dict(variant=["spatiotemporal"]), r"variant must be one of .*got \['spatiotemporal'\]"),
        (dict(problem_type="ranking"), r"problem_type must be one of .*got 'ranking'"),
        (dict(return_dict="yes"), r"return_dict must be True or False or None, got 'yes'"),
        (dict(pooler_output_size=0), r"pooler_output_size must be an integer >= 1, got 0"),
        (dict(num_temporal_layers=1.5), r"num_temporal_layers must be an integer >= 0, got 1.5"),
        (dict(architectures="VivitModel"), r"architectures must be a list of strings or None"),
        (dict(label2id={"a": 0}, id2label={0: "b", 1: "c"}), r"label2id and id2label must be inverse maps"),
        (dict(label2id={"a": 1, "b": 0}, id2label={0: "a", 1: "b"}), r"label2id and id2label must be inverse maps"),
        (dict(id2label={"x": "a"}), r"id2label keys must be integers or integer strings, got 'x'"),
        (dict(id2label={0: "a", 2: "b"}), r"id2label keys must be the class indices 0..1, got \[0, 2\]"),
        (dict(id2label={0: 5}), r"id2label\[0\] must be a string"),
        (dict(id2label={0: "a", 1: "a"}), r"inverse|once"),
        (dict(id2label={0: "a"}, num_labels=3), r"num_labels \(3\) must equal the size of id2label \(1\)"),
        (dict(label2id=["a"]), r"label2id must be a dict"),
        (dict(label2id={"a": "0", "b": 1}), r"label2id must use one type for its class indices"),
    ],
)
def test_bad_values_are_refused_naming_the_field(kwargs, match):
    refused(match, **kwargs)


def test_wrong_types_are_also_type_errors():
    with pytest.raises(TypeError, match="image_size"):
        VivitConfig(image_size="32")
    with pytest.raises(TypeError, match="num_hiden_layers"):
        VivitConfig(num_hiden_layers=1)
    assert issubclass(ConfigTypeError, InvalidConfigError) and issubclass(InvalidConfigError, ValueError)


def test_unknown_key_without_a_close_field():
    error = refused(r"unknown key 'zzzz'; see VivitConfig's fields", zzzz=1)
    assert isinstance(error, TypeError)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden_size=30, num_attention_heads=4), r"hidden_size must be divisible by num_attention_heads \(4\)"),
        (dict(image_size=8), r"\(32, 8, 8\) is smaller than tubelet_size \(2, 16, 16\): no tubelet fits"),
        (dict(num_frames=1), r"\(1, 224, 224\) is smaller than tubelet_size"),
        (dict(pooler_act="relu"), r"pooler_act must be 'tanh', got 'relu'"),
    ],
)
def test_parsed_but_unbuildable(kwargs, match):
    config = VivitConfig(**kwargs)  # transformers' generic tests build such configs: they parse
    with pytest.raises(UnbuildableConfigError, match=match):
        VivitModel(config)


def test_remainders_are_dropped_as_the_model_does_not_refused():
    # the model drops frames/pixels past the last whole tubelet: no divisibility is required
    with pytest.warns(UserWarning, match="dropped"):
        config = VivitConfig(**{**TINY, "image_size": 33, "num_frames": 9})
    VivitModel(config)


def test_good_configs_still_load():
    assert VivitConfig(dtype="float16").dtype == torch.float16
    assert VivitConfig(dtype=torch.bfloat16).dtype == torch.bfloat16
    assert VivitConfig(torch_dtype="torch.float32").dtype == torch.float32
    assert VivitConfig(dtype="auto").dtype is None
    assert VivitConfig(image_size=(32, 48)).image_size == [32, 48]
    assert VivitConfig(tubelet_size=(2, 8, 8)).tubelet_size == [2, 8, 8]
    assert VivitConfig(hidden_dropout_prob=0).hidden_dropout_prob == 0
    assert VivitConfig(_private_note="kept")._private_note == "kept"
    labels = VivitConfig(label2id={"run": 0, "walk": 1, "jump": 2})
    assert labels.num_labels == 3 and labels.id2label == {0: "run", 1: "walk", 2: "jump"}
    string_keys = VivitConfig(id2label={"0": "a", "1": "b"}, label2id={"a": "0", "b": "1"})
    assert string_keys.id2label == {0: "a", 1: "b"}


def test_transformers_config_tester_common_kwargs_and_properties():
    """What transformers' ConfigTester passes (tests/test_configuration_common.py): the common kwargs, including keys
    older transformers took (is_decoder, bos_token_id, ...) and the generation parameters it drops."""
    common = {
        "return_dict": False,
        "output_hidden_states": True,
        "output_attentions": True,
        "dtype": "float16",
        "tie_word_embeddings": False,
        "is_decoder": True,
        "cross_attention_hidden_size": 128,
        "add_cross_attention": True,
        "tie_encoder_decoder": True,
        "max_length": 50,
        "do_sample": True,
        "num_beams": 3,
        "temperature": 2.0,
        "top_k": 10,
        "bad_words_ids": [1, 2, 3],
        "chunk_size_feed_forward": 5,
        "architectures": ["BertModel"],
        "finetuning_task": "translation",
        "id2label": {0: "label"},
        "label2id": {"label": "0"},
        "tokenizer_class": "BertTokenizerFast",
        "prefix": "prefix",
        "bos_token_id": 6,
        "pad_token_id": 7,
        "eos_token_id": 8,
        "sep_token_id": 9,
        "decoder_start_token_id": 10,
        "task_specific_params": {"translation": "some_params"},
        "problem_type": "regression",
    }
    config = VivitConfig(**copy.deepcopy(common), hidden_size=37)
    assert config.dtype == torch.float16 and config.label2id == {"label": "0"} and config.is_decoder is True
    assert config.num_labels == 1 and config.hidden_size == 37
    config = VivitConfig(hidden_size=37, num_labels=5)
    assert len(config.id2label) == len(config.label2id) == 5
    config.num_labels = 3
    assert len(config.id2label) == len(config.label2id) == 3
    for index, name in enumerate(["hidden_size", "num_attention_heads", "num_hidden_layers"]):
        setattr(config, name, index)  # the ConfigTester's setter check: attributes are not re-checked on set
        assert getattr(config, name) == index


def test_published_hf_config_with_video_size_loads(tmp_path):
    raw = transformers.VivitConfig(**TINY).to_dict()
    raw.update(video_size=[8, 32, 32], torch_dtype="float32", _name_or_path="google/vivit-b-16x2-kinetics400")
    raw["id2label"] = {"0": "a", "1": "b"}
    raw["label2id"] = {"a": 0, "b": 1}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    config = VivitConfig.from_pretrained(tmp_path)
    assert config.video_size == [8, 32, 32] and config.dtype == torch.float32 and config.id2label == {0: "a", 1: "b"}


def test_round_trip_unchanged(tmp_path):
    config = VivitConfig(**TINY, variant="factorized_encoder", id2label={0: "x", 1: "y", 2: "z"}, dtype="bfloat16")
    config.save_pretrained(tmp_path)
    loaded = VivitConfig.from_pretrained(tmp_path)
    assert type(loaded) is type(config) and loaded.to_dict() == config.to_dict()
    assert VivitConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    model = VivitModel(loaded)
    model.save_pretrained(tmp_path / "model")
    reloaded = VivitModel.from_pretrained(tmp_path / "model").config.to_dict()
    assert reloaded.pop("_name_or_path") == str(tmp_path / "model")
    assert reloaded == {k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"}


def write(tmp_path, text):
    (tmp_path / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(tmp_path / "config.json")


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"model_type": "vivit", "hidden_size": ', r"not valid JSON \(Expecting value at line 1 column 40\)"),
        (b"\xff\xfe{}", r"not UTF-8 text \(byte 0\)"),
        ("[1, 2]", r"must hold a JSON object \{...\}, got list"),
        ('{"hidden_size": 1, "hidden_size": 2}', r"key 'hidden_size' appears twice"),
        ("[" * 100000, r"not valid JSON|nested too deeply"),
        ('{"model_type": "vivit", "hiden_size": 32}', r"unknown key 'hiden_size'; did you mean 'hidden_size'\?"),
        ('{"model_type": "vivit", "image_size": "32"}', r"image_size must be an integer or \[height, width\]"),
        ('{"model_type": "vivit", "qkv_bias": "false"}', r"qkv_bias must be True or False"),
        ('{"model_type": "vivit", "torch_dtype": "float61"}', r"torch_dtype must be a torch dtype or one of"),
        ('{"model_type": "vivit", "id2label": {"0": "a"}, "label2id": {"b": 0}}', r"inverse maps"),
        ('{"model_type": ["vivit"]}', r"model_type \['vivit'\]"),
    ],
)
def test_config_json_errors_name_the_file(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        VivitConfig.from_pretrained(tmp_path)
    message = str(info.value)
    assert message.startswith(path + ": ") and "\n" not in message
    with pytest.raises(ValueError, match=match):  # the model's from_pretrained reads it the same way
        VivitModel.from_pretrained(tmp_path)


def test_unreadable_json_is_also_an_os_error(tmp_path):
    write(tmp_path, "{")
    with pytest.raises(OSError, match="config.json: not valid JSON"):
        VivitConfig.from_pretrained(tmp_path)
    assert issubclass(ConfigFileError, OSError)
    with pytest.raises(OSError):  # a missing directory stays transformers' OSError
        VivitConfig.from_pretrained(tmp_path / "missing")


def test_from_dict_and_from_pretrained_keywords(tmp_path):
    VivitConfig(**TINY, id2label={0: "a", 1: "b", 2: "c"}).save_pretrained(tmp_path)
    with pytest.raises(TypeError, match=r"unknown key 'num_hiden_layers'; did you mean 'num_hidden_layers'"):
        VivitConfig.from_pretrained(tmp_path, num_hiden_layers=2)
    with pytest.raises(ValueError, match=r"hidden_size must be an integer >= 1, got 'x'"):
        VivitConfig.from_pretrained(tmp_path, hidden_size="x")
    with pytest.raises(TypeError, match=r"unknown key 'hiden_size'"):
        VivitConfig.from_dict({"hiden_size": 3})
    with pytest.raises(TypeError, match=r"config_dict must be a dict, got list"):
        VivitConfig.from_dict([])
    config, unused = VivitConfig.from_pretrained(tmp_path, foo=1, return_unused_kwargs=True)
    assert unused == {"foo": 1}
    assert VivitConfig.from_pretrained(tmp_path, num_labels=5).id2label == {i: f"LABEL_{i}" for i in range(5)}
    assert VivitConfig.from_pretrained(tmp_path, num_hidden_layers=2).num_hidden_layers == 2


def test_model_from_pretrained_misspelled_keyword(tmp_path):
    VivitModel(VivitConfig(**TINY)).save_pretrained(tmp_path)
    with pytest.raises(TypeError, match=r"unknown key 'num_hiden_layers'; did you mean 'num_hidden_layers'\?"):
        VivitModel.from_pretrained(tmp_path, num_hiden_layers=2)
    assert VivitModel.from_pretrained(tmp_path, num_hidden_layers=1, add_pooling_layer=False).pooler is None


def test_public_names():
    import vivit

    assert vivit.UnbuildableConfigError is UnbuildableConfigError and vivit.InvalidConfigError is InvalidConfigError
    assert issubclass(vivit.CheckpointFileError, ValueError)


def test_headless_model_saved_after_reset_classifier_zero_still_loads(tmp_path):
    from vivit import VivitForVideoClassification

    model = VivitForVideoClassification(VivitConfig(**TINY))
    model.reset_classifier(0)  # no head: an empty id2label in config.json
    model.save_pretrained(tmp_path)
    loaded = VivitForVideoClassification.from_pretrained(tmp_path)
    assert loaded.config.num_labels == 0 and isinstance(loaded.classifier, torch.nn.Identity)
