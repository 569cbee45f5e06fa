"""Fuzzing VivitConfig: random keyword dicts, from_dict dicts and config.json bytes give either a valid config or a
ValueError/TypeError with a one-line message; never another exception. Counts per target print with `pytest -s`."""

import collections
import json
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vivit import VivitConfig
from vivit.models.config_checks import UnbuildableConfigError

COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
FIELDS = [
    "image_size", "num_frames", "tubelet_size", "num_channels", "hidden_size", "num_hidden_layers",
    "num_attention_heads", "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
    "initializer_range", "layer_norm_eps", "qkv_bias", "pooler_output_size", "pooler_act", "variant",
    "attention_order", "num_temporal_layers", "pooling", "drop_path_rate", "backend", "num_labels", "id2label",
    "label2id", "dtype", "torch_dtype", "problem_type", "return_dict", "output_hidden_states", "output_attentions",
    "architectures", "chunk_size_feed_forward", "model_type", "video_size", "transformers_version",
    "attn_implementation", "name_or_path", "is_encoder_decoder", "_private", "per_layer_config", "rope_scaling",
    "rope_theta", "use_cache", "tie_word_embeddings", "experts_implementation",
]  # fmt: skip
TYPOS = ["num_hiden_layers", "hiden_size", "imagesize", "num_label", "dtpye", "variants", "qkvbias", "zzz"]
GOOD = dict(image_size=32, num_frames=8, tubelet_size=[2, 16, 16], hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, id2label={"0": "a", "1": "b"}, model_type="vivit")  # fmt: skip
VALID = {  # a few valid values per field, so that fuzzed configs also load, not only fail
    "image_size": [32, [32, 48], (32, 32)],
    "num_frames": [8, 9, 16],
    "tubelet_size": [[2, 16, 16], (4, 8, 8)],
    "hidden_size": [32, 48],
    "num_attention_heads": [2, 4],
    "hidden_dropout_prob": [0.0, 0.1, 0],
    "drop_path_rate": [0.0, 0.5],
    "layer_norm_eps": [1e-6, 1e-12],
    "qkv_bias": [True, False],
    "num_labels": [1, 3],
    "id2label": [{"0": "a"}, {0: "x", 1: "y", 2: "z"}],
    "label2id": [{"a": 0}, {"a": "0"}],
    "return_dict": [True, False, None],
    "architectures": [["VivitForVideoClassification"], None],
    "video_size": [[8, 32, 32]],
    "_private": ["note"],
}
GOOD_VALUES = {
    "variant": ["spatiotemporal", "factorized_encoder", "factorized_self_attention", "factorized_dot_product"],
    "hidden_act": ["gelu", "gelu_fast", "relu"],
    "dtype": ["float16", "bfloat16", "float32", "auto", "int8", "float61"],
    "pooling": ["cls", "mean", None],
    "backend": ["auto", "eager", "triton"],
    "problem_type": ["regression", "single_label_classification", "multi_label_classification"],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([v for values in GOOD_VALUES.values() for v in values]),
)
valid_overrides = st.dictionaries(
    st.sampled_from(sorted(set(VALID) | set(GOOD_VALUES))),
    st.none(),
    max_size=3,
).flatmap(lambda d: st.fixed_dictionaries({k: st.sampled_from({**VALID, **GOOD_VALUES}[k]) for k in d}))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(-1, 4)), inner, max_size=4),
    ),
    max_leaves=8,
)
keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(TYPOS), st.text(min_size=1, max_size=10))
kwargs_dicts = st.dictionaries(keys, values, max_size=6)


def classify(target: str, build) -> None:
    """Run build(); count the outcome; fail on anything but a config or a one-line ValueError/TypeError."""
    COUNTS[target]["tried"] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = build()
            try:
                config.check_buildable()
            except UnbuildableConfigError as e:
                assert "\n" not in str(e)
            json.loads(config.to_json_string())  # a config that loads also serialises
    except (ValueError, TypeError) as e:
        message = str(e)
        assert message and "\n" not in message, f"{type(e).__name__} message not one line: {message!r}"
        COUNTS[target]["clear error"] += 1
        return
    except Exception as e:  # counted, then failed: hypothesis shrinks and reports the input
        COUNTS[target]["crash"] += 1
        raise AssertionError(f"{target}: {type(e).__name__}: {e}") from e
    COUNTS[target]["accepted"] += 1


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    for target, counts in sorted(COUNTS.items()):
        print(f"\n{target}: " + ", ".join(f"{k} {counts[k]}" for k in ("tried", "accepted", "clear error", "crash")))


FUZZ = settings(
    max_examples=int(os.environ.get("VIVIT_FUZZ_EXAMPLES", 150)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(valid_overrides, st.dictionaries(keys, values, max_size=3), st.booleans())
def test_fuzz_kwargs(valid, kwargs, start_good):
    kwargs = {**GOOD, **valid, **kwargs} if start_good else {**valid, **kwargs}
    kwargs = {k: v for k, v in kwargs.items() if isinstance(k, str)}
    classify("kwargs", lambda: VivitConfig(**kwargs))


@FUZZ
@given(
    valid_overrides, kwargs_dicts, st.booleans(), st.dictionaries(st.sampled_from(FIELDS + TYPOS), values, max_size=1)
)
def test_fuzz_from_dict(valid, config_dict, start_good, overrides):
    config_dict = {**GOOD, **valid, **config_dict} if start_good else {**valid, **config_dict}
    classify("from_dict", lambda: VivitConfig.from_dict(config_dict, **overrides))


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for position, byte, kind in edits:
        if not out:
            break
        i = position % len(out)
        if kind == 0:
            out[i] = byte
        elif kind == 1:
            del out[i]
        else:
            out.insert(i, byte)
    return bytes(out)


config_bytes = st.one_of(
    st.binary(max_size=200),
    st.tuples(valid_overrides, st.dictionaries(keys, values, max_size=2)).map(
        lambda d: json.dumps({**GOOD, **d[0], **d[1]}, default=str).encode()
    ),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 2)), min_size=1, max_size=4).map(
        lambda edits: _mutate(json.dumps(GOOD).encode(), edits)
    ),
)


@FUZZ
@given(config_bytes)
def test_fuzz_config_json_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_bytes(data)

        def build():
            try:
                return VivitConfig.from_pretrained(tmp)
            except (ValueError, TypeError) as e:
                assert str(e).startswith(str(Path(tmp) / "config.json")), f"error does not name the file: {e}"
                raise

        classify("config.json", build)
