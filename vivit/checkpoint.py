"""Checkpoint names and files: HF's classic key names on disk and in state_dict(), whatever the internal layout.

Internally each block has `norm1`, `attn.qkv` (one fused (3D, D) projection), `attn.proj`, `norm2`, `mlp.fc1`,
`mlp.fc2` (Model 3 adds `norm_t`, `attn_t.qkv`, `attn_t.proj`). `state_dict()` and `load_state_dict()` translate:

  internal                      state_dict() / on disk (HF classic)
  encoder.layer.{i}.norm1       encoder.layer.{i}.layernorm_before
  encoder.layer.{i}.attn.qkv    encoder.layer.{i}.attention.attention.{query,key,value}   (split in three on save)
  encoder.layer.{i}.attn.proj   encoder.layer.{i}.attention.output.dense
  encoder.layer.{i}.norm2       encoder.layer.{i}.layernorm_after
  encoder.layer.{i}.mlp.fc1     encoder.layer.{i}.intermediate.dense
  encoder.layer.{i}.mlp.fc2     encoder.layer.{i}.output.dense
  Model 3 only:
  encoder.layer.{i}.norm_t      encoder.layer.{i}.temporal_layernorm_before
  encoder.layer.{i}.attn_t.*    encoder.layer.{i}.temporal_attention.{attention.{query,key,value},output.dense}
  Model 2 only: temporal_embeddings.{cls_token, position_embeddings}, temporal_encoder.layer.{i}.* (same block
  names as above), temporal_layernorm.

Everything else keeps its HF name (embeddings.*, layernorm, pooler.dense, classifier). Loading also accepts HF 5.x's
in-memory names (`layers.{i}.attention.q_proj`, `o_proj`, `mlp.fc1`, ...).
"""

from __future__ import annotations

import json
import os
import re
import warnings

import torch

# Block-internal name -> HF classic name (the tails after "encoder.layer.{i}.").
_TO_HF = {
    "norm1.": "layernorm_before.",
    "norm2.": "layernorm_after.",
    "norm_t.": "temporal_layernorm_before.",
    "attn.proj.": "attention.output.dense.",
    "attn_t.proj.": "temporal_attention.output.dense.",
    "mlp.fc1.": "intermediate.dense.",
    "mlp.fc2.": "output.dense.",
}
_QKV_TO_HF = {"attn.qkv.": "attention.attention.", "attn_t.qkv.": "temporal_attention.attention."}
# HF classic and HF 5.x tails -> internal.
_FROM_HF = {v: k for k, v in _TO_HF.items()}
_FROM_HF.update({"attention.o_proj.": "attn.proj.", "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."})
_QKV_PARTS = {"query": 0, "key": 1, "value": 2}
_HF5_QKV = {"q_proj": "query", "k_proj": "key", "v_proj": "value"}
_BLOCK = re.compile(r"^((?:temporal_)?encoder\.layer\.\d+\.)(.*)$")


def _split_block_key(rest: str):
    match = _BLOCK.match(rest)
    return (match.group(1), match.group(2)) if match else (None, None)


def state_dict_to_hf(module, state_dict, prefix, local_metadata) -> None:
    """state_dict post-hook of VivitModel: rename internal keys to HF classic ones, splitting the fused QKV."""
    items = list(state_dict.items())
    for key, _ in items:
        if key.startswith(prefix):
            del state_dict[key]
    for key, value in items:
        if not key.startswith(prefix):
            state_dict[key] = value
            continue
        block, tail = _split_block_key(key[len(prefix) :])
        if block is None:
            state_dict[key] = value
            continue
        for internal, hf in _QKV_TO_HF.items():
            if tail.startswith(internal):
                param = tail[len(internal) :]  # "weight" or "bias"
                for name, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    # a copy, not a view: safetensors refuses tensors that share storage
                    state_dict[f"{prefix}{block}{hf}{name}.{param}"] = chunk.clone()
                break
        else:
            for internal, hf in _TO_HF.items():
                if tail.startswith(internal):
                    tail = hf + tail[len(internal) :]
                    break
            state_dict[f"{prefix}{block}{tail}"] = value


def hf5_to_classic(rest: str) -> str:
    """5.x name -> classic (`layers.{i}.attention.q_proj` -> `encoder.layer.{i}.attention.attention.query`)."""
    match = re.match(r"^layers\.(\d+)\.(.*)$", rest)
    if not match:
        return rest
    tail = match.group(2)
    qkv = re.match(r"^attention\.([qkv]_proj)\.(.*)$", tail)
    if qkv:
        tail = f"attention.attention.{_HF5_QKV[qkv.group(1)]}.{qkv.group(2)}"
    return f"encoder.layer.{match.group(1)}.{tail}"


def state_dict_from_hf(
    module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
) -> None:
    """load_state_dict pre-hook of VivitModel: HF classic or 5.x names -> internal, joining query/key/value."""
    keys = [k for k in state_dict if k.startswith(prefix)]
    pending: dict[str, dict[int, str]] = {}  # internal qkv key -> {part index: source key}
    for key in keys:
        rest = hf5_to_classic(key[len(prefix) :])
        block, tail = _split_block_key(rest)
        if block is None:
            if rest != key[len(prefix) :]:
                state_dict[prefix + rest] = state_dict.pop(key)
            continue
        new_tail = tail
        for internal_prefix, hf_prefix in _QKV_TO_HF.items():
            match = re.match(rf"^{re.escape(hf_prefix)}(query|key|value)\.(.*)$", tail)
            if match:
                target = f"{prefix}{block}{internal_prefix}{match.group(2)}"
                pending.setdefault(target, {})[_QKV_PARTS[match.group(1)]] = key
                new_tail = None
                break
        if new_tail is None:
            continue
        for hf, internal in _FROM_HF.items():
            if tail.startswith(hf):
                new_tail = internal + tail[len(hf) :]
                break
        new_key = f"{prefix}{block}{new_tail}"
        if new_key != key:
            state_dict[new_key] = state_dict.pop(key)
    for target, parts in pending.items():
        if len(parts) == 3:  # an incomplete triple stays as it is and is reported as unexpected
            state_dict[target] = torch.cat([state_dict.pop(parts[i]) for i in range(3)], dim=0)


# ---------------------------------------------------------------------------------------------------------- files
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory: model.safetensors, sharded safetensors with an index, or
    pytorch_model.bin (loaded with weights_only=True), sharded or not."""
    from safetensors.torch import load_file

    path = os.fspath(path)

    def load_torch(file):
        return torch.load(file, map_location="cpu", weights_only=True)

    for single, index, loader in ((SAFE_WEIGHTS, SAFE_INDEX, load_file), (TORCH_WEIGHTS, TORCH_INDEX, load_torch)):
        if os.path.isfile(os.path.join(path, single)):
            return dict(loader(os.path.join(path, single)))
        if os.path.isfile(os.path.join(path, index)):
            with open(os.path.join(path, index), encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            weights = {}
            for shard in shards:
                weights.update(loader(os.path.join(path, shard)))
            return weights
    raise FileNotFoundError(
        f"no weights in {path!r}: expected one of {SAFE_WEIGHTS}, {SAFE_INDEX}, {TORCH_WEIGHTS}, {TORCH_INDEX}"
    )


def _normalise_keys(weights: dict[str, torch.Tensor], head: bool) -> tuple[dict[str, torch.Tensor], bool]:
    """HF 5.x names -> classic, and the `vivit.` prefix adapted between base-model and classifier checkpoints.
    Returns (weights, from_base) where from_base says a classifier model reads a base-model checkpoint."""
    out = {}
    for key, value in weights.items():
        base, rest = ("vivit.", key[6:]) if key.startswith("vivit.") else ("", key)
        out[base + hf5_to_classic(rest)] = value
    has_prefix = any(k.startswith("vivit.") for k in out)
    if head and not has_prefix:
        return {f"vivit.{k}": v for k, v in out.items() if not k.startswith("pooler.")}, True
    if not head and has_prefix:  # a base model from a classifier checkpoint: drop the head
        return {k[6:]: v for k, v in out.items() if k.startswith("vivit.")}, False
    return out, False


class PretrainedMixin:
    """from_pretrained / save_pretrained for the ViViT models (config.json + safetensors, HF-compatible)."""

    def _register_checkpoint_hooks(self) -> None:
        self.register_state_dict_post_hook(state_dict_to_hf)
        self.register_load_state_dict_pre_hook(state_dict_from_hf)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write config.json and model.safetensors with HF's classic key names."""
        from safetensors.torch import save_file

        os.makedirs(save_directory, exist_ok=True)
        config = self.config
        extra = getattr(config, "architectures", None)
        config.architectures = [type(self).__name__]
        try:
            config.save_pretrained(save_directory)
        finally:
            if extra is None:
                del config.architectures
            else:
                config.architectures = extra
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, os.path.join(save_directory, SAFE_WEIGHTS), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        config=None,
        ignore_mismatched_sizes: bool = False,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        **config_overrides,
    ):
        """Load a Hugging Face ViViT directory or one of our saves.

        config_overrides change config fields (e.g. num_labels=10 with ignore_mismatched_sizes=True for a new head).
        Missing or unexpected keys raise an error that lists them, except a missing pooler (HF's classifier
        checkpoints have none) and a missing classifier when a base-model checkpoint is read: those start from
        the usual initialisation, with a warning. dtype: a torch dtype, "auto" (the checkpoint's floating dtype) or
        None (float32). device: where the parameters are created.
        """
        from vivit.configuration import VivitConfig

        if config is None:
            config = VivitConfig.from_pretrained(path, **config_overrides)
        elif config_overrides:
            config = VivitConfig.from_dict(config.to_dict(), **config_overrides)
        weights = read_weights(path)
        head = cls.__name__ != "VivitModel"
        weights, from_base = _normalise_keys(weights, head)
        if dtype == "auto":
            dtype = next((v.dtype for v in weights.values() if v.is_floating_point()), torch.float32)
        dtype = dtype or torch.float32
        device = torch.device(device or "cpu")

        with torch.device("meta"):
            model = cls(config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        tolerated = ("pooler.", "vivit.pooler.") + (("classifier.",) if from_base else ())
        missing = [k for k in expected if k not in weights]
        unexpected = [k for k in weights if k not in expected]
        mismatched = [k for k in expected if k in weights and tuple(weights[k].shape) != expected[k]]
        new_init = [k for k in missing if k.startswith(tolerated)]
        missing = [k for k in missing if not k.startswith(tolerated)]
        if missing or unexpected:
            raise RuntimeError(
                f"checkpoint {os.fspath(path)!r} does not match {cls.__name__}({config.variant!r}):\n"
                f"  missing keys ({len(missing)}): {missing}\n  unexpected keys ({len(unexpected)}): {unexpected}"
            )
        if mismatched:
            lines = [f"{k}: checkpoint {tuple(weights[k].shape)}, model {expected[k]}" for k in mismatched]
            if not ignore_mismatched_sizes:
                raise RuntimeError(
                    "size mismatch (pass ignore_mismatched_sizes=True to start these from scratch):\n  "
                    + "\n  ".join(lines)
                )
            warnings.warn("re-initialised because of a size mismatch:\n  " + "\n  ".join(lines), stacklevel=2)
            for k in mismatched:
                del weights[k]
        if new_init:
            warnings.warn(f"not in the checkpoint, newly initialised: {new_init}", stacklevel=2)

        weights = {
            k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in weights.items()
        }
        model.load_state_dict(weights, strict=False, assign=True)
        # Parameters the checkpoint did not provide are still on the meta device: create and initialise them.
        for module in model.modules():
            if any(p.is_meta for p in module.parameters(recurse=False)):
                module.to_empty(device=device, recurse=False)
                with torch.no_grad():
                    model._init_weights(module)
                module.to(dtype=dtype)
        leftover = [n for n, p in model.named_parameters() if p.is_meta]
        if leftover:  # pragma: no cover - would be a bug in the key bookkeeping above
            raise RuntimeError(f"parameters left uninitialised: {leftover}")
        return model.eval()
