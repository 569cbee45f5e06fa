"""Checks of VivitConfig's keys and values: a misspelled key or a wrong value fails at once, naming the field.

The keys a config accepts: its own dataclass fields, the settable properties and the keywords transformers'
`PreTrainedConfig.__post_init__` consumes (read from the installed transformers, so they follow its version), the
generation parameters it drops, the keys older transformers wrote into config.json, Hugging Face's `video_size`
(present in the published ViViT checkpoints, read by nothing) and any key starting with "_".
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import re
from functools import cache
from typing import Any

import torch
from transformers import PreTrainedConfig


class InvalidConfigError(ValueError):
    """A config field with a value it cannot take (a one-line message naming the field)."""


class ConfigTypeError(InvalidConfigError, TypeError):
    """A config field of the wrong type, or a key no config field has."""


class UnbuildableConfigError(InvalidConfigError):
    """A config that parses but from which no model can be built (fields that contradict each other)."""


class ConfigFileError(InvalidConfigError, OSError):
    """A config.json that cannot be read as a config; the message names the file."""


# Keys transformers 4.x's PretrainedConfig took and wrote into config.json; files saved then must still load.
LEGACY_KEYS = frozenset(
    {
        "torchscript",
        "torch_dtype",
        "use_bfloat16",
        "tf_legacy_loss",
        "pruned_heads",
        "tie_word_embeddings",
        "is_decoder",
        "cross_attention_hidden_size",
        "add_cross_attention",
        "tie_encoder_decoder",
        "finetuning_task",
        "tokenizer_class",
        "prefix",
        "bos_token_id",
        "pad_token_id",
        "eos_token_id",
        "sep_token_id",
        "decoder_start_token_id",
        "task_specific_params",
        "gradient_checkpointing",
        "use_cache",
    }
)
# Hugging Face's published ViViT configs carry video_size; transformers never reads it.
HF_QUIRK_KEYS = frozenset({"video_size", "model_type", "transformers_weights"})
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64", "auto")
_POPPED = re.compile(r"""kwargs\.(?:pop|get)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")


def _consumed_by_transformers() -> set[str]:
    """Keywords PreTrainedConfig's __init__/__post_init__ take, read from the installed transformers."""
    names: set[str] = set()
    for method in (PreTrainedConfig.__init__, PreTrainedConfig.__post_init__):
        for name, param in inspect.signature(method).parameters.items():
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and name != "self":
                names.add(name)
        try:
            names.update(_POPPED.findall(inspect.getsource(method)))
        except (OSError, TypeError):  # no source (a frozen install): the signatures and fields still count
            pass
    try:
        from transformers import GenerationConfig

        names.update(GenerationConfig._get_default_generation_params())
    except (ImportError, AttributeError):
        pass
    return names


@cache
def accepted_keys(cls: type) -> frozenset[str]:
    """Every keyword `cls(**kwargs)` and `cls.from_dict` accept (keys starting with "_" are accepted besides)."""
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if isinstance(value, property) and value.fset is not None:
                names.add(name)
    names.update(getattr(cls, "attribute_map", {}))
    return frozenset(names | _consumed_by_transformers() | LEGACY_KEYS | HF_QUIRK_KEYS)


def _own_fields(cls: type) -> list[str]:
    """The fields to suggest for a misspelled key: the config's own first, then transformers' common ones."""
    return [f.name for f in dataclasses.fields(cls)] + ["num_labels", "output_attentions", "torch_dtype"]


def check_keys(cls: type, keys) -> None:
    """ConfigTypeError for the first key `cls` does not accept, suggesting the closest field."""
    allowed = accepted_keys(cls)
    for key in keys:
        if not isinstance(key, str):
            raise ConfigTypeError(f"{cls.__name__} keys must be strings, got {short(key)}")
        if key.startswith("_") or key in allowed:
            continue
        close = difflib.get_close_matches(key, _own_fields(cls), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; see {cls.__name__}'s fields"
        raise ConfigTypeError(f"{cls.__name__} got an unknown key {short(key)}{hint}")


# --------------------------------------------------------------------------------------------------------- values
def short(value: Any, limit: int = 80) -> str:
    """repr(value) on one line, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_error(name: str, expected: str, value: Any) -> ConfigTypeError:
    return ConfigTypeError(f"{name} must be {expected}, got {short(value)} ({type(value).__name__})")


def check_int(name: str, value: Any, minimum: int) -> None:
    if not _is_int(value):
        raise _type_error(name, f"an integer >= {minimum}", value)
    if value < minimum:
        raise InvalidConfigError(f"{name} must be an integer >= {minimum}, got {value}")


def check_probability(name: str, value: Any) -> None:
    if not _is_number(value):
        raise _type_error(name, "a number in [0, 1)", value)
    if not 0.0 <= value < 1.0:
        raise InvalidConfigError(f"{name} must be in [0, 1), got {value!r}")


def check_float(name: str, value: Any, *, positive: bool) -> None:
    expected = "a finite number > 0" if positive else "a finite number >= 0"
    if not _is_number(value):
        raise _type_error(name, expected, value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise InvalidConfigError(f"{name} must be {expected}, got {value!r}")


def check_bool(name: str, value: Any, *, optional: bool = False) -> None:
    if not isinstance(value, bool) and not (optional and value is None):
        raise _type_error(name, "True or False" + (" or None" if optional else ""), value)


def check_choice(name: str, value: Any, allowed, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or value not in allowed:
        raise InvalidConfigError(f"{name} must be one of {list(allowed)}, got {short(value)}")


def check_image_size(value: Any) -> None:
    if _is_int(value):
        check_int("image_size", value, 1)
        return
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(v) for v in value):
        raise _type_error("image_size", "an integer or [height, width] integers", value)
    if min(value) < 1:
        raise InvalidConfigError(f"image_size must be positive, got {short(value)}")


def check_tubelet_size(value: Any) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_int(v) for v in value):
        raise _type_error("tubelet_size", "3 integers (t, h, w)", value)
    if min(value) < 1:
        raise InvalidConfigError(f"tubelet_size must be 3 positive integers (t, h, w), got {short(value)}")


def normalize_dtype(name: str, value: Any) -> torch.dtype | None:
    """float16/bfloat16/float32/float64 as a torch dtype or its name ("float16", "torch.float16"), "auto" or None ->
    the torch dtype, or None for "auto" (a loading choice, nothing to record in a config)."""
    allowed = {getattr(torch, n) for n in DTYPE_NAMES if n != "auto"}
    if value is None or isinstance(value, torch.dtype) and value in allowed:
        return value
    if isinstance(value, str):
        text = value.removeprefix("torch.")
        if text == "auto":
            return None
        if text in DTYPE_NAMES:
            return getattr(torch, text)
    raise InvalidConfigError(f"{name} must be a torch dtype or one of {list(DTYPE_NAMES)}, got {short(value)}")


def _as_int(value: Any) -> int | None:
    """An int, or the int an ASCII-digit string spells (how JSON writes integer keys); else None."""
    if _is_int(value):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value):
        return int(value)
    return None


def check_labels(id2label: Any, label2id: Any, num_labels: Any = None) -> None:
    """id2label {id: name} for ids 0..n-1, label2id its inverse (values ints or int strings); num_labels >= 1.
    An empty id2label stays allowed: it is what a model saves after `reset_classifier(0)` (no head)."""
    if num_labels is not None:
        check_int("num_labels", num_labels, 1)
    if id2label is not None:
        if not isinstance(id2label, dict):
            raise _type_error("id2label", "a dict {class index: name}", id2label)
        ids = []
        for key, name in id2label.items():
            index = _as_int(key)
            if index is None:
                raise ConfigTypeError(f"id2label keys must be integers or integer strings, got {short(key)}")
            if not isinstance(name, str):
                raise ConfigTypeError(f"id2label[{index}] must be a string (a class name), got {short(name)}")
            ids.append(index)
        if sorted(ids) != list(range(len(ids))):
            raise InvalidConfigError(f"id2label keys must be the class indices 0..{len(ids) - 1}, got {short(ids)}")
        if num_labels is not None and num_labels != len(ids):
            raise InvalidConfigError(f"num_labels ({num_labels}) must equal the size of id2label ({len(ids)})")
    if label2id is not None:
        if not isinstance(label2id, dict):
            raise _type_error("label2id", "a dict {name: class index}", label2id)
        for name, index in label2id.items():
            if not isinstance(name, str) or _as_int(index) is None:
                raise ConfigTypeError(
                    f"label2id must map names to integer class indices, got {short(name)}: {short(index)}"
                )
        if id2label is not None:
            names = {_as_int(k): v for k, v in id2label.items()}
            if len(label2id) != len(names) or any(names.get(_as_int(i)) != name for name, i in label2id.items()):
                raise InvalidConfigError(
                    f"label2id and id2label must be inverse maps of the same size, got label2id {short(label2id)} "
                    f"and id2label {short(id2label)}"
                )


def check_optional_str_list(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise _type_error(name, "a list of strings or None", value)


PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


def check_common_fields(kwargs: dict) -> None:
    """transformers' own fields among `kwargs`, checked before its dataclass sets them (some versions validate on
    assignment with a multi-line message of their own)."""
    for name in ("return_dict", "output_hidden_states"):
        if name in kwargs:
            check_bool(name, kwargs[name], optional=True)
    if "is_encoder_decoder" in kwargs:
        check_bool("is_encoder_decoder", kwargs["is_encoder_decoder"])
    if "chunk_size_feed_forward" in kwargs:
        check_int("chunk_size_feed_forward", kwargs["chunk_size_feed_forward"], 0)
    if "problem_type" in kwargs:
        check_choice("problem_type", kwargs["problem_type"], PROBLEM_TYPES, optional=True)
    if "architectures" in kwargs:
        check_optional_str_list("architectures", kwargs["architectures"])
    version = kwargs.get("transformers_version")
    if version is not None and not isinstance(version, str):
        raise _type_error("transformers_version", "a string", version)
    for name in ("dtype", "torch_dtype"):
        if name in kwargs:
            normalize_dtype(name, kwargs[name])
    id2label, label2id = kwargs.get("id2label"), kwargs.get("label2id")
    if id2label is None and label2id is not None:
        check_labels(None, label2id)
    else:
        check_labels(id2label, label2id)
    for name, value in (("id2label", id2label), ("label2id", label2id)):
        if isinstance(value, dict) and len({type(v) for v in (value.values() if name == "label2id" else value)}) > 1:
            raise ConfigTypeError(
                f"{name} must use one type for its class indices (all int or all str), got {short(value)}"
            )


# --------------------------------------------------------------------------------------------------------- files
def read_config_json(path) -> dict:
    """config.json as a dict; a ConfigFileError naming the file for bytes that are not one JSON object."""
    with open(path, "rb") as f:  # a missing or unreadable file stays an OSError of its own
        raw = f.read()
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as e:
        raise ConfigFileError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ConfigFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except _DuplicateKey as e:
        raise ConfigFileError(f"{path}: key {short(e.args[0])} appears twice") from None
    except RecursionError:
        raise ConfigFileError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: must hold a JSON object {{...}}, got {type(data).__name__}")
    return data


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out
