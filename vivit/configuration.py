"""VivitConfig: every Hugging Face ViViT field with HF's default, plus the paper's four model variants."""

from __future__ import annotations

import copy
import json
import os
import warnings
from typing import Any

VARIANTS = ("spatiotemporal", "factorized_encoder", "factorized_self_attention", "factorized_dot_product")
BACKENDS = ("auto", "triton", "eager")
POOLINGS = ("cls", "mean")
ATTENTION_ORDERS = ("space_time", "time_space")
# HF activation names -> the two activations the fused MLP implements.
ACTIVATIONS = {
    "gelu_fast": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_python_tanh": "gelu_tanh",
    "gelu": "gelu",
    "gelu_python": "gelu",
}
# Variants of the paper that classify a CLS token; the other two average all tokens.
_CLS_VARIANTS = ("spatiotemporal", "factorized_encoder")

# ViViT-B/L/H with 16x16 patches over 2 frames (paper, table "Sizes"), 32 frames of 224x224.
PRESETS: dict[str, dict[str, Any]] = {
    "vivit-b-16x2": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "vivit-l-16x2": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "vivit-h-16x2": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120),
}

# Warnings already given in this process (the remainder warning would otherwise repeat for every config built).
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, UserWarning, stacklevel=3)


class VivitConfig:
    """Configuration of a ViViT model, compatible with Hugging Face's `config.json` (`model_type: "vivit"`).

    Hugging Face fields keep their names and defaults. Additions:
      variant: "spatiotemporal" (Model 1, HF's model), "factorized_encoder" (Model 2), "factorized_self_attention"
        (Model 3) or "factorized_dot_product" (Model 4).
      attention_order: "space_time" or "time_space", the order of the two attentions in a Model 3 block.
      num_temporal_layers: depth of Model 2's temporal encoder (0 = average the per-frame vectors).
      pooling: "cls" or "mean"; None picks "cls" for Models 1-2 and "mean" for Models 3-4. With "mean" the model has
        no CLS token.
      drop_path_rate: stochastic depth rate of the last block, rising linearly from 0 over the depth.
      backend: "auto", "triton" or "eager" (see `vivit.dispatch`).
    Unknown keys are kept as attributes and written back by `to_dict`.
    """

    model_type = "vivit"

    def __init__(
        self,
        image_size: int | list[int] | tuple[int, int] = 224,
        num_frames: int = 32,
        tubelet_size: list[int] | tuple[int, int, int] = (2, 16, 16),
        num_channels: int = 3,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu_fast",
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-6,
        qkv_bias: bool = True,
        pooler_output_size: int | None = None,
        pooler_act: str = "tanh",
        variant: str = "spatiotemporal",
        attention_order: str = "space_time",
        num_temporal_layers: int = 4,
        pooling: str | None = None,
        drop_path_rate: float = 0.0,
        backend: str = "auto",
        num_labels: int | None = None,
        id2label: dict | None = None,
        label2id: dict | None = None,
        problem_type: str | None = None,
        **kwargs: Any,
    ):
        self.image_size = list(image_size) if isinstance(image_size, (list, tuple)) else image_size
        self.num_frames = num_frames
        self.tubelet_size = list(tubelet_size)
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.qkv_bias = qkv_bias
        self.pooler_output_size = pooler_output_size or hidden_size
        self.pooler_act = pooler_act
        self.variant = variant
        self.attention_order = attention_order
        self.num_temporal_layers = num_temporal_layers
        self.pooling = pooling if pooling is not None else ("cls" if variant in _CLS_VARIANTS else "mean")
        self.drop_path_rate = drop_path_rate
        self.backend = backend
        self.problem_type = problem_type
        self._set_labels(num_labels, id2label, label2id)
        kwargs.pop("model_type", None)
        for key, value in kwargs.items():  # unknown keys (HF bookkeeping, `video_size`, ...) are kept as they are
            setattr(self, key, value)
        self.validate()

    # ----------------------------------------------------------------------------------------------- labels
    def _set_labels(self, num_labels, id2label, label2id) -> None:
        if id2label is not None:
            id2label = {int(k): v for k, v in id2label.items()}
            if num_labels is not None and num_labels != len(id2label):
                raise ValueError(f"num_labels={num_labels} disagrees with id2label, which has {len(id2label)} entries")
        else:
            id2label = {i: f"LABEL_{i}" for i in range(2 if num_labels is None else num_labels)}
        self.id2label = id2label
        self.label2id = dict(label2id) if label2id is not None else {v: k for k, v in id2label.items()}

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if value != self.num_labels:
            self._set_labels(value, None, None)

    # ----------------------------------------------------------------------------------------------- geometry
    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the input the position embeddings were made for."""
        size = self.image_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    @property
    def grid(self) -> tuple[int, int, int]:
        """(T', H', W'): tubelets along time, height and width (remainders dropped, as Conv3d and HF do)."""
        t, h, w = self.tubelet_size
        height, width = self.image_hw
        return self.num_frames // t, height // h, width // w

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def activation(self) -> str:
        """The fused MLP's activation name for `hidden_act`."""
        return ACTIVATIONS[self.hidden_act]

    @property
    def use_cls_token(self) -> bool:
        return self.pooling == "cls"

    # ----------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise ValueError for a configuration no model can be built from; warn once about dropped remainders."""

        def choice(name, value, allowed):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")

        choice("variant", self.variant, VARIANTS)
        choice("backend", self.backend, BACKENDS)
        choice("pooling", self.pooling, POOLINGS)
        choice("attention_order", self.attention_order, ATTENTION_ORDERS)
        choice("hidden_act", self.hidden_act, ACTIVATIONS)
        if self.pooling == "cls" and self.variant not in _CLS_VARIANTS:
            raise ValueError(
                f"pooling='cls' needs a CLS token, which variant {self.variant!r} does not have; use pooling='mean'"
            )
        positive = ("num_frames", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads")
        for name in (*positive, "intermediate_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.num_temporal_layers, int) or self.num_temporal_layers < 0:
            raise ValueError(f"num_temporal_layers must be an integer >= 0, got {self.num_temporal_layers!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.variant == "factorized_dot_product" and self.num_attention_heads % 2:
            raise ValueError(
                "variant 'factorized_dot_product' splits the heads in half (space and time): num_attention_heads "
                f"must be even, got {self.num_attention_heads}"
            )
        if len(self.tubelet_size) != 3 or any(not isinstance(s, int) or s < 1 for s in self.tubelet_size):
            raise ValueError(f"tubelet_size must be 3 positive integers (t, h, w), got {self.tubelet_size!r}")
        if isinstance(self.image_size, list) and len(self.image_size) != 2:
            raise ValueError(f"image_size must be an int or [height, width], got {self.image_size!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not self._fits_one_tubelet():
            return  # HF accepts such a config; building a model from it raises (see check_buildable)
        sizes = (self.num_frames, *self.image_hw)
        dropped = [size % tube for size, tube in zip(sizes, self.tubelet_size)]
        if any(dropped):
            _warn_once(
                f"(num_frames, height, width) = {sizes} is not a multiple of tubelet_size {tuple(self.tubelet_size)}: "
                f"the last {tuple(dropped)} frames/rows/columns are dropped (as in Conv3d and Hugging Face)"
            )

    def _fits_one_tubelet(self) -> bool:
        sizes = (self.num_frames, *self.image_hw)
        return all(size >= tube for size, tube in zip(sizes, self.tubelet_size))

    def check_buildable(self) -> None:
        """validate(), and raise when not one tubelet fits the configured input (a model needs one token)."""
        self.validate()
        if not self._fits_one_tubelet():
            sizes = (self.num_frames, *self.image_hw)
            raise ValueError(
                f"(num_frames, height, width) = {sizes} is smaller than tubelet_size {tuple(self.tubelet_size)}: "
                "no tubelet fits"
            )

    # ----------------------------------------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VivitConfig:
        """A named size from the paper, e.g. `VivitConfig.from_preset("vivit-b-16x2", variant="factorized_encoder")`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
        kwargs = dict(image_size=224, num_frames=32, tubelet_size=[2, 16, 16], **PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)

    # ----------------------------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not k.startswith("_")}
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["model_type"] = self.model_type
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **overrides: Any) -> VivitConfig:
        kwargs = dict(config_dict)
        model_type = kwargs.get("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(f"config has model_type {model_type!r}, expected {cls.model_type!r}")
        if "num_labels" in overrides and "id2label" not in overrides:
            kwargs.pop("id2label", None)
            kwargs.pop("label2id", None)
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any) -> VivitConfig:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f), **overrides)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> VivitConfig:
        """Read `config.json` from a directory (or a path to the JSON file itself)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no config.json at {path!r}")
        return cls.from_json_file(path, **overrides)

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())
        return path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VivitConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
