"""VivitConfig: a transformers `PreTrainedConfig` with every Hugging Face ViViT field and the paper's four variants.

Each variant has a `model_type` of its own, so that a directory says which architecture its weights are for:
  "vivit"                            Model 1, spatio-temporal attention: Hugging Face's own classes load it.
  "vivit_factorized_encoder"         Model 2 \
  "vivit_factorized_self_attention"  Model 3  } loadable through the Auto classes once `vivit` is imported; a
  "vivit_factorized_dot_product"     Model 4 /  transformers install without vivit reports an unknown model type.
`VivitConfig(variant=...)` returns the matching subclass, so code never has to name the subclasses.
"""

from __future__ import annotations

import contextvars
import os
import warnings
from typing import Any, ClassVar

from transformers import PreTrainedConfig

from vivit.models import config_checks as checks
from vivit.models.config_checks import ConfigFileError, InvalidConfigError, UnbuildableConfigError

__all__ = ["VivitConfig", "InvalidConfigError", "UnbuildableConfigError", "ConfigFileError"]

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
MODEL_TYPES = {variant: "vivit" if variant == "spatiotemporal" else f"vivit_{variant}" for variant in VARIANTS}

# ViViT-B/L/H with 16x16 patches over 2 frames (paper, table "Sizes"), 32 frames of 224x224.
PRESETS: dict[str, dict[str, Any]] = {
    "vivit-b-16x2": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "vivit-l-16x2": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "vivit-h-16x2": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120),
}

# The config.json being read by from_pretrained, so that its errors name it.
_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("vivit_config_source", default=None)

# Warnings already given in this process (the remainder warning would otherwise repeat for every config built).
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, UserWarning, stacklevel=4)


class VivitConfig(PreTrainedConfig):
    """Configuration of a ViViT model; reads and writes Hugging Face's `config.json` (`model_type: "vivit"`).

    Hugging Face fields keep their names and defaults. Additions:
      variant: "spatiotemporal" (Model 1, HF's model), "factorized_encoder" (Model 2), "factorized_self_attention"
        (Model 3) or "factorized_dot_product" (Model 4). Models 2-4 are saved with a model_type of their own.
      attention_order: "space_time" or "time_space", the order of the two attentions in a Model 3 block.
      num_temporal_layers: depth of Model 2's temporal encoder (0 = average the per-frame vectors).
      pooling: "cls" or "mean"; None picks "cls" for Models 1-2 and "mean" for Models 3-4. With "mean" the model has
        no CLS token.
      drop_path_rate: stochastic depth rate of the last block, rising linearly from 0 over the depth.
      backend: "auto", "triton" or "eager": which implementation runs each op (see `vivit.models.dispatch`).

    `attn_implementation` (what transformers' loaders pass, "eager" or "sdpa") is recorded but does not pick the
    attention code: `backend` does. backend="eager" runs torch's scaled_dot_product_attention, "triton" the fused
    kernels, "auto" the kernels where they apply; `output_attentions=True` always materialises the probabilities.
    Checks of single fields run here; checks across fields (e.g. hidden_size divisible by num_attention_heads) run
    when a model is built (`check_buildable`), as transformers' generic config tests build odd configs.
    """

    model_type: ClassVar[str] = "vivit"

    image_size: int | list[int] | tuple[int, int] = 224
    num_frames: int = 32
    tubelet_size: list[int] | tuple[int, ...] = (2, 16, 16)
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_fast"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-06
    qkv_bias: bool = True
    pooler_output_size: int | None = None
    pooler_act: str = "tanh"
    variant: str = "spatiotemporal"
    attention_order: str = "space_time"
    num_temporal_layers: int = 4
    pooling: str | None = None
    drop_path_rate: float | int = 0.0
    backend: str = "auto"

    def __new__(cls, *args: Any, **kwargs: Any):
        checks.check_common_fields(kwargs)
        # VivitConfig(variant=...) is the config of that variant, whose class carries the variant's model_type.
        if cls is VivitConfig:
            variant, model_type = kwargs.get("variant"), kwargs.get("model_type")
            if variant is None:
                variant = (
                    _VARIANT_OF_MODEL_TYPE.get(model_type, "spatiotemporal") if isinstance(model_type, str) else None
                )
            if isinstance(variant, str):  # anything else: check_fields names the field
                cls = _CONFIG_CLASSES.get(variant, cls)
        return super().__new__(cls)

    def __post_init__(self, **kwargs: Any):
        kwargs.pop("model_type", None)  # the class says it (see to_dict); never an instance attribute
        checks.check_keys(type(self), kwargs)
        if kwargs.get("per_layer_config") is not None:  # transformers' per-layer overrides: no ViViT layer reads them
            raise InvalidConfigError(
                "per_layer_config must be None (ViViT layers are all alike), got "
                f"{checks.short(kwargs['per_layer_config'])}"
            )
        # Values transformers' __post_init__ would convert or index before any check: checked first.
        self.dtype = checks.normalize_dtype("dtype", self.dtype)
        if "torch_dtype" in kwargs:
            kwargs["torch_dtype"] = checks.normalize_dtype("torch_dtype", kwargs["torch_dtype"])
        if self.id2label is None and self.label2id is not None:  # label2id alone: its inverse, not LABEL_i names
            checks.check_labels(None, self.label2id)
            self.id2label = {int(i): name for name, i in self.label2id.items()}
        checks.check_labels(self.id2label, self.label2id, kwargs.get("num_labels"))
        checks.check_tubelet_size(self.tubelet_size)
        checks.check_image_size(self.image_size)
        if isinstance(self.tubelet_size, tuple):
            self.tubelet_size = list(self.tubelet_size)
        if isinstance(self.image_size, tuple):
            self.image_size = list(self.image_size)
        if self.pooler_output_size is None:
            self.pooler_output_size = self.hidden_size
        if self.pooling is None and isinstance(self.variant, str):
            self.pooling = "cls" if self.variant in _CLS_VARIANTS else "mean"
        super().__post_init__(**kwargs)
        if self.id2label is not None and self.label2id is None:  # a config.json written with id2label only
            self.label2id = {label: i for i, label in self.id2label.items()}
        self.check_fields()

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
    def check_fields(self) -> None:
        """InvalidConfigError (a ValueError; ConfigTypeError, also a TypeError, for a wrong type) naming the field,
        what it accepts and what it got, for any field that is wrong on its own."""
        checks.check_choice("variant", self.variant, VARIANTS)
        checks.check_choice("backend", self.backend, BACKENDS)
        checks.check_choice("pooling", self.pooling, POOLINGS)
        checks.check_choice("attention_order", self.attention_order, ATTENTION_ORDERS)
        checks.check_choice("hidden_act", self.hidden_act, ACTIVATIONS)
        checks.check_choice("problem_type", self.problem_type, checks.PROBLEM_TYPES, optional=True)
        expected_type = MODEL_TYPES[self.variant]
        if type(self).model_type != expected_type:
            raise InvalidConfigError(
                f"variant {self.variant!r} is saved as model_type {expected_type!r}, but {type(self).__name__} is "
                f"for {type(self).model_type!r}: build it with VivitConfig(variant={self.variant!r})"
            )
        positive = ("num_frames", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads")
        for name in (*positive, "intermediate_size", "pooler_output_size"):
            checks.check_int(name, getattr(self, name), 1)
        checks.check_int("num_temporal_layers", self.num_temporal_layers, 0)
        checks.check_int("chunk_size_feed_forward", self.chunk_size_feed_forward, 0)
        checks.check_tubelet_size(self.tubelet_size)
        checks.check_image_size(self.image_size)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            checks.check_probability(name, getattr(self, name))
        checks.check_float("layer_norm_eps", self.layer_norm_eps, positive=True)
        checks.check_float("initializer_range", self.initializer_range, positive=False)
        checks.check_bool("qkv_bias", self.qkv_bias)
        checks.check_bool("is_encoder_decoder", self.is_encoder_decoder)
        checks.check_bool("output_attentions", self.output_attentions)
        for name in ("output_hidden_states", "return_dict"):
            checks.check_bool(name, getattr(self, name), optional=True)
        if not isinstance(self.pooler_act, str):
            raise checks.ConfigTypeError(f"pooler_act must be a string, got {checks.short(self.pooler_act)}")
        checks.check_optional_str_list("architectures", self.architectures)
        if self.transformers_version is not None and not isinstance(self.transformers_version, str):
            raise checks.ConfigTypeError(
                f"transformers_version must be a string, got {checks.short(self.transformers_version)}"
            )
        self.dtype = checks.normalize_dtype("dtype", self.dtype)
        checks.check_labels(self.id2label, self.label2id)
        tubelet = self.tubelet_size
        if not self._fits_one_tubelet():
            return  # HF accepts such a config; building a model from it raises (see check_buildable)
        sizes = (self.num_frames, *self.image_hw)
        dropped = [size % tube for size, tube in zip(sizes, tubelet)]
        if any(dropped):
            _warn_once(
                f"(num_frames, height, width) = {sizes} is not a multiple of tubelet_size {tuple(tubelet)}: "
                f"the last {tuple(dropped)} frames/rows/columns are dropped (as in Conv3d and Hugging Face)"
            )

    def _fits_one_tubelet(self) -> bool:
        sizes = (self.num_frames, *self.image_hw)
        return all(size >= tube for size, tube in zip(sizes, self.tubelet_size))

    def check_buildable(self) -> None:
        """check_fields(), then the checks across fields that a model needs; raises UnbuildableConfigError."""
        self.check_fields()
        if self.hidden_size % self.num_attention_heads:
            raise UnbuildableConfigError(
                f"hidden_size must be divisible by num_attention_heads ({self.num_attention_heads}), "
                f"got {self.hidden_size}"
            )
        if self.variant == "factorized_dot_product" and self.num_attention_heads % 2:
            raise UnbuildableConfigError(
                "num_attention_heads must be even for variant 'factorized_dot_product' (half the heads attend over "
                f"space, half over time), got {self.num_attention_heads}"
            )
        if self.pooling == "cls" and self.variant not in _CLS_VARIANTS:
            raise UnbuildableConfigError(
                f"pooling='cls' needs a CLS token, which variant {self.variant!r} does not have; use pooling='mean'"
            )
        if self.pooler_act != "tanh":
            raise UnbuildableConfigError(f"pooler_act must be 'tanh', got {self.pooler_act!r}")
        if not self._fits_one_tubelet():
            sizes = (self.num_frames, *self.image_hw)
            raise UnbuildableConfigError(
                f"(num_frames, height, width) = {sizes} is smaller than tubelet_size {tuple(self.tubelet_size)}: "
                "no tubelet fits"
            )

    # ----------------------------------------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VivitConfig:
        """A named size from the paper, e.g. `VivitConfig.from_preset("vivit-b-16x2", variant="factorized_encoder")`."""
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
        kwargs = dict(image_size=224, num_frames=32, tubelet_size=[2, 16, 16], **PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        """transformers' from_pretrained, reading any of the four variants' model types into the matching class.
        Errors in config.json name the file; keywords that are no config field raise unless return_unused_kwargs."""
        for name, default in (("cache_dir", None), ("force_download", False), ("local_files_only", False)):
            kwargs.setdefault(name, default)
        kwargs.setdefault("token", None)
        kwargs.setdefault("revision", "main")
        reset = _SOURCE.set(None)
        try:
            config_dict, kwargs = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
            source = _SOURCE.get() or str(pretrained_model_name_or_path)
        finally:
            _SOURCE.reset(reset)
        try:
            model_type = config_dict.get("model_type", cls.model_type)
            if not isinstance(model_type, str) or model_type not in _VARIANT_OF_MODEL_TYPE:
                raise InvalidConfigError(
                    f"config.json has model_type {checks.short(model_type)}; {cls.__name__} reads one of "
                    f"{list(_VARIANT_OF_MODEL_TYPE)}"
                )
            target = _CONFIG_CLASSES[_VARIANT_OF_MODEL_TYPE[model_type]]
            if not issubclass(target, cls):
                raise InvalidConfigError(
                    f"config.json has model_type {model_type!r}, which {cls.__name__} does not read"
                )
            return target.from_dict(config_dict, **kwargs)
        except (ValueError, TypeError) as e:
            if str(e).startswith(source):
                raise
            if isinstance(e, InvalidConfigError):
                kind = type(e)
            else:  # transformers' own checks: same one-line message, named file
                kind = InvalidConfigError if isinstance(e, ValueError) else checks.ConfigTypeError
            raise kind(f"{source}: {e}") from None

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """transformers' from_dict; keyword overrides are checked as the file's values are, and a keyword that is no
        config field raises (unless return_unused_kwargs=True, which returns it)."""
        if not isinstance(config_dict, dict):
            raise checks.ConfigTypeError(f"config_dict must be a dict, got {type(config_dict).__name__}")
        config_dict = dict(config_dict)
        return_unused = kwargs.pop("return_unused_kwargs", False)
        # Keyword overrides of config fields go through __post_init__'s checks with the file's values; transformers
        # would set them afterwards, unchecked. dtype stays with transformers ("auto" there keeps the file's).
        accepted = checks.accepted_keys(cls)
        for key in [k for k in kwargs if k in accepted and k not in ("dtype", "torch_dtype", "num_labels")]:
            config_dict[key] = kwargs.pop(key)
        num_labels = kwargs.get("num_labels")
        id2label = config_dict.get("id2label")
        if num_labels is not None and isinstance(id2label, dict) and len(id2label) != num_labels:
            # a new number of classes replaces the file's labels (as transformers' own override does)
            config_dict.pop("id2label", None)
            config_dict.pop("label2id", None)
        config, unused = super().from_dict(config_dict, return_unused_kwargs=True, **kwargs)
        config.check_fields()  # overrides were set as attributes, after __post_init__'s checks
        if return_unused:
            return config, unused
        checks.check_keys(type(config), [key for key in unused if not key.startswith("_")])
        return config

    @classmethod
    def _dict_from_json_file(cls, json_file: str | os.PathLike) -> dict[str, Any]:
        _SOURCE.set(str(json_file))
        return cls._decode_special_floats(checks.read_config_json(json_file))


class VivitFactorizedEncoderConfig(VivitConfig):
    """VivitConfig of Model 2 (factorised encoder); `VivitConfig(variant="factorized_encoder")` builds one."""

    model_type: ClassVar[str] = MODEL_TYPES["factorized_encoder"]
    variant: str = "factorized_encoder"


class VivitFactorizedSelfAttentionConfig(VivitConfig):
    """VivitConfig of Model 3 (factorised self-attention); `VivitConfig(variant="factorized_self_attention")`."""

    model_type: ClassVar[str] = MODEL_TYPES["factorized_self_attention"]
    variant: str = "factorized_self_attention"


class VivitFactorizedDotProductConfig(VivitConfig):
    """VivitConfig of Model 4 (factorised dot-product attention); `VivitConfig(variant="factorized_dot_product")`."""

    model_type: ClassVar[str] = MODEL_TYPES["factorized_dot_product"]
    variant: str = "factorized_dot_product"


_CONFIG_CLASSES: dict[str, type[VivitConfig]] = {
    "spatiotemporal": VivitConfig,
    "factorized_encoder": VivitFactorizedEncoderConfig,
    "factorized_self_attention": VivitFactorizedSelfAttentionConfig,
    "factorized_dot_product": VivitFactorizedDotProductConfig,
}
_VARIANT_OF_MODEL_TYPE = {model_type: variant for variant, model_type in MODEL_TYPES.items()}
