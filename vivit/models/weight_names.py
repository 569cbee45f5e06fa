"""Checkpoint key names: what transformers' checkpoint conversion mapping must know to load older ViViT files.

In memory (and in files that transformers 5.x writes from a live `state_dict()`), every variant uses Hugging Face's
5.x names (`layers.N.attention.q_proj`, ...). Files use the *classic* names (`encoder.layer.N.attention.attention.
query`, ...): transformers' own mapping for `VivitModel` converts them on load and back on save, and it already covers
our extra parts (Model 2's `temporal_encoder.layer.N.` <-> `temporal_layers.N.`, Model 3's `temporal_attention.
attention.query` <-> `temporal_attention.q_proj`, ...), because its rules match substrings.

Added here, load-only: the names of vivit <= 0.1's fused modules (`norm1`, `attn.qkv` as one (3D, D) tensor,
`attn.proj`, `norm2`, Model 3's `norm_t` / `attn_t.*`). Loading splits the fused q/k/v; saving never writes these
names back (each rule's reverse matches nothing), so a model loaded from an old file saves HF's names.

Registration extends transformers' entry for the class name "VivitModel" (shared by Hugging Face's class and ours,
which is why our models reach it) and adds the model types of Models 2-4. The added rules only match names that
Hugging Face's ViViT checkpoints never contain, so its own classes load exactly as before.
"""

from __future__ import annotations

from transformers.conversion_mapping import (
    USER_REGISTERED_MAPPINGS,
    get_checkpoint_conversion_mapping,
    register_checkpoint_conversion_mapping,
)
from transformers.core_model_loading import Chunk, WeightConverter, WeightRenaming

from vivit.models.configuration import MODEL_TYPES

# A pattern no parameter name contains ("-" is not valid in a Python identifier): the reverse of a load-only rule.
_NEVER = "vivit-load-only-rule"


class _LoadOnlyRenaming(WeightRenaming):
    __slots__ = ()

    def reverse_transform(self) -> WeightRenaming:
        return WeightRenaming(_NEVER, _NEVER)


class _LoadOnlyConverter(WeightConverter):
    __slots__ = ()

    def reverse_transform(self) -> WeightRenaming:
        return WeightRenaming(_NEVER, _NEVER)


def forget_legacy_load(model) -> None:
    """After loading a file with the fused names: save the classic names in full. transformers reverses only the
    rules a load used, which for such a file are a part of the classic rules and would write a mix of both."""
    used = getattr(model, "_weight_conversions", None) or ()
    if any(isinstance(rule, (_LoadOnlyRenaming, _LoadOnlyConverter)) for rule in used):
        model._weight_conversions = None  # as for a model built from scratch: the whole mapping, reversed


def legacy_rules() -> list:
    """vivit <= 0.1 fused names (after transformers' `encoder.layer.` -> `layers.` rule) -> HF 5.x names."""
    rules: list = [
        _LoadOnlyRenaming(r"\.norm1\.", ".layernorm_before."),
        _LoadOnlyRenaming(r"\.norm2\.", ".layernorm_after."),
        _LoadOnlyRenaming(r"\.norm_t\.", ".temporal_layernorm_before."),
        _LoadOnlyRenaming(r"\.attn\.proj\.", ".attention.o_proj."),
        _LoadOnlyRenaming(r"\.attn_t\.proj\.", ".temporal_attention.o_proj."),
    ]
    for old, new in (("attn", "attention"), ("attn_t", "temporal_attention")):
        for param in ("weight", "bias"):
            rules.append(
                _LoadOnlyConverter(
                    source_patterns=rf"\b{old}\.qkv\.{param}",
                    target_patterns=[f"{new}.{p}_proj.{param}" for p in "qkv"],
                    operations=[Chunk(dim=0)],
                )
            )
    return rules


def register() -> None:
    """Make transformers' loaders and savers convert our models' names (idempotent)."""
    if "VivitModel" in USER_REGISTERED_MAPPINGS:
        return
    hf_rules = get_checkpoint_conversion_mapping("VivitModel") or []
    register_checkpoint_conversion_mapping("VivitModel", hf_rules + legacy_rules(), overwrite=True)
    for variant, model_type in MODEL_TYPES.items():
        if variant != "spatiotemporal":  # "vivit" is Hugging Face's model type: left as it is
            rules = get_checkpoint_conversion_mapping("VivitModel")
            register_checkpoint_conversion_mapping(model_type, rules, overwrite=True)
