"""Initialise any ViViT variant from an image ViT (Hugging Face ViTModel / ViTForImageClassification, or timm vit_*).

    state, settings = load_vit_state_dict("path/to/vit")      # directory, .safetensors, .bin/.pth, or a dict
    config = VivitConfig(**settings, num_frames=32, tubelet_size=[2, 16, 16], variant="factorized_encoder")
    model = VivitForVideoClassification(config)
    fresh = init_from_vit(model, state)                         # returns the names that were not taken from the ViT

What is copied (paper, section 3.4): the tubelet kernel from the 2-D patch kernel (central frame, inflation / t or
approximate rank pooling over t), position embeddings tiled over time (and resized in space with
position="resize"), every block of the image model into the video model's (Model 2: its spatial encoder; Model 3:
the spatial attention, and the temporal attention too with temporal_attention=True, otherwise its output
projection starts at zero so that each block starts as the image block), the final LayerNorm and the CLS token.
The classifier and Model 2's temporal encoder start fresh.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F

TUBELET_INITS = ("central", "inflate", "rank_pool")
POSITION_INITS = ("tile", "resize")

# canonical per-block names used inside this module -> HF ViT classic tails
_HF_BLOCK = {
    "ln1": "layernorm_before",
    "q": "attention.attention.query",
    "k": "attention.attention.key",
    "v": "attention.attention.value",
    "o": "attention.output.dense",
    "ln2": "layernorm_after",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}
# HF 5.x in-memory tails (`layers.{i}.attention.q_proj`, ...)
_HF5_BLOCK = {
    "ln1": "layernorm_before",
    "q": "attention.q_proj",
    "k": "attention.k_proj",
    "v": "attention.v_proj",
    "o": "attention.o_proj",
    "ln2": "layernorm_after",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}
_TIMM_BLOCK = {"ln1": "norm1", "o": "attn.proj", "ln2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}


# ---------------------------------------------------------------------------------------------------------------------
# reading image ViTs


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        from vivit.models.checkpoint_files import check_safetensors

        check_safetensors(path)  # a corrupt file: one line naming it
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def _read_path(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if path.is_dir():
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
        for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            if (path / name).is_file():
                return _read_file(path / name), config
        raise FileNotFoundError(f"vit: no model.safetensors or pytorch_model.bin in {path}")
    if not path.is_file():
        raise FileNotFoundError(f"vit: {path} is neither a file nor a directory")
    return _read_file(path), {}


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("vit.", "module.", "model."):
        if any(k.startswith(prefix + "embeddings.") or k.startswith(prefix + "patch_embed.") for k in state):
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def _canonical(state: dict[str, torch.Tensor]) -> dict:
    """Any supported layout -> {"cls", "pos", "patch_w", "patch_b", "norm_w", "norm_b", "blocks": [{...}]}."""
    state = _strip_prefix(state)
    out: dict = {"blocks": []}

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise KeyError(f"vit state dict: missing {key!r}")
        return state[key]

    if "patch_embed.proj.weight" in state:  # timm
        for unsupported in ("reg_token", "blocks.0.ls1.gamma", "blocks.0.attn.q_norm.weight"):
            if unsupported in state:
                raise ValueError(f"vit state dict: timm feature {unsupported!r} has no ViViT counterpart")
        if "cls_token" not in state:
            raise ValueError("vit state dict: timm ViT without a CLS token (global pooling) is not supported")
        out.update(
            cls=take("cls_token"),
            pos=take("pos_embed"),
            patch_w=take("patch_embed.proj.weight"),
            patch_b=take("patch_embed.proj.bias"),
            norm_w=take("norm.weight"),
            norm_b=take("norm.bias"),
        )
        n = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
        for i in range(n):
            block = {}
            for short, tail in _TIMM_BLOCK.items():
                block[short + "_w"] = take(f"blocks.{i}.{tail}.weight")
                block[short + "_b"] = take(f"blocks.{i}.{tail}.bias")
            qkv_w = take(f"blocks.{i}.attn.qkv.weight")
            qkv_b = state.get(f"blocks.{i}.attn.qkv.bias")
            if qkv_b is None:
                qkv_b = qkv_w.new_zeros(qkv_w.shape[0])
            for short, w, b in zip("qkv", qkv_w.chunk(3), qkv_b.chunk(3)):
                block[short + "_w"], block[short + "_b"] = w, b
            out["blocks"].append(block)
        return out

    if "embeddings.patch_embeddings.projection.weight" in state:  # Hugging Face
        out.update(
            cls=take("embeddings.cls_token"),
            pos=take("embeddings.position_embeddings"),
            patch_w=take("embeddings.patch_embeddings.projection.weight"),
            patch_b=take("embeddings.patch_embeddings.projection.bias"),
            norm_w=take("layernorm.weight"),
            norm_b=take("layernorm.bias"),
        )
        hf5 = any(k.startswith("layers.") for k in state)
        prefix, names = ("layers", _HF5_BLOCK) if hf5 else ("encoder.layer", _HF_BLOCK)
        pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.")
        n = 1 + max(int(m.group(1)) for k in state if (m := pattern.match(k)))
        for i in range(n):
            block = {}
            for short, tail in names.items():
                w = take(f"{prefix}.{i}.{tail}.weight")
                b = state.get(f"{prefix}.{i}.{tail}.bias")
                block[short + "_w"], block[short + "_b"] = w, (b if b is not None else w.new_zeros(w.shape[0]))
            out["blocks"].append(block)
        return out
    raise ValueError(
        "vit state dict: not a Hugging Face ViT (embeddings.patch_embeddings.projection.weight) nor a timm ViT "
        f"(patch_embed.proj.weight); first keys: {sorted(state)[:5]}"
    )


def load_vit_state_dict(source) -> tuple[dict, dict]:
    """Read an image ViT: a directory (config.json + weights), a .safetensors/.bin/.pth file, or a state dict.

    Returns (canonical weights, settings) where settings are VivitConfig fields the video model should share with
    the image model: hidden_size, num_hidden_layers, intermediate_size, num_channels, layer_norm_eps, hidden_act,
    and num_attention_heads / qkv_bias when the source says so (a timm state dict does not record its heads: set
    num_attention_heads yourself, e.g. 12 for ViT-B). An HF config.json's `layer_norm_eps` (1e-12 for google/vit-*)
    and `hidden_act` win; otherwise HF ViT defaults (1e-12, "gelu") or timm's (1e-6, "gelu") apply.
    """
    config: dict = {}
    if isinstance(source, (str, os.PathLike)):
        state, config = _read_path(Path(source))
    elif isinstance(source, dict):
        state = source
    else:
        raise TypeError(f"source: expected a path or a state dict, got {type(source).__name__}")
    is_timm = "patch_embed.proj.weight" in _strip_prefix(state)
    vit = _canonical(state)
    D, C, h, w = vit["patch_w"].shape
    settings = dict(
        hidden_size=D,
        num_hidden_layers=len(vit["blocks"]),
        intermediate_size=vit["blocks"][0]["fc1_w"].shape[0],
        num_channels=C,
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-6 if is_timm else 1e-12)),
        hidden_act=config.get("hidden_act", "gelu"),
    )
    if "num_attention_heads" in config:
        settings["num_attention_heads"] = int(config["num_attention_heads"])
    if "qkv_bias" in config:
        settings["qkv_bias"] = bool(config["qkv_bias"])
    vit["patch_size"] = (h, w)
    return vit, settings


# ---------------------------------------------------------------------------------------------------------------------
# pieces


def inflate_patch_kernel(weight: torch.Tensor, t: int, method: str = "central") -> torch.Tensor:
    """(D, C, h, w) image patch kernel -> (D, C, t, h, w) tubelet kernel.

    central:   the image kernel at frame t // 2, zeros elsewhere (the paper's best: 79.2 vs 77.6 top-1).
    inflate:   the image kernel on every frame, divided by t (a static clip gives the image's embedding).
    rank_pool: the image kernel weighted by approximate rank pooling coefficients
               a_i = 2(t - i + 1) - (t + 1)(H_t - H_{i-1}) (H_n the n-th harmonic number): a temporal derivative
               filter (the coefficients sum to 0, so a static clip embeds to the bias alone).
    """
    if weight.dim() != 4:
        raise ValueError(f"weight: expected an image patch kernel (D, C, h, w), got shape {tuple(weight.shape)}")
    if t < 1:
        raise ValueError(f"t: expected >= 1, got {t}")
    if method == "central":
        out = weight.new_zeros(*weight.shape[:2], t, *weight.shape[2:])
        out[:, :, t // 2] = weight
        return out
    if method == "inflate":
        return weight.unsqueeze(2).expand(-1, -1, t, -1, -1) / t
    if method == "rank_pool":
        harmonic = [0.0]
        for n in range(1, t + 1):
            harmonic.append(harmonic[-1] + 1.0 / n)
        coeff = [2.0 * (t - i + 1) - (t + 1) * (harmonic[t] - harmonic[i - 1]) for i in range(1, t + 1)]
        alpha = torch.tensor(coeff, dtype=weight.dtype, device=weight.device)
        return weight.unsqueeze(2) * alpha.view(1, 1, t, 1, 1)
    raise ValueError(f"method: expected one of {TUBELET_INITS}, got {method!r}")


def spatial_position_table(pos: torch.Tensor, grid: tuple[int, int], *, resize: bool) -> torch.Tensor:
    """The ViT's (S, D) patch position table on `grid` = (H', W'), bilinearly resized when resize=True."""
    n, D = pos.shape
    side = int(round(n**0.5))
    if side * side != n:
        raise ValueError(f"vit position embeddings: {n} patch positions is not a square grid")
    if (side, side) == tuple(grid):
        return pos
    if not resize:
        raise ValueError(
            f"position embeddings: the image model has a {side}x{side} patch grid, the video model {grid[0]}x"
            f"{grid[1]}; pass position='resize' to interpolate them"
        )
    x = pos.float().T.reshape(1, D, side, side)
    x = F.interpolate(x, size=tuple(grid), mode="bilinear", align_corners=False)
    return x.reshape(D, -1).T.to(pos.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# the video model


def init_from_vit(
    model: torch.nn.Module,
    vit,
    *,
    tubelet: str = "central",
    position: str = "tile",
    temporal_attention: bool = False,
) -> list[str]:
    """Copy an image ViT into `model` (a VivitForVideoClassification or VivitModel of any variant), in place.

    vit: the output of `load_vit_state_dict`, or anything it accepts. Returns the state-dict names the ViT did not
    provide: they keep the model's own initialisation (the classifier, Model 2's temporal encoder, Model 3's
    temporal attention apart from its zeroed output projection).
    """
    if tubelet not in TUBELET_INITS:
        raise ValueError(f"tubelet: expected one of {TUBELET_INITS}, got {tubelet!r}")
    if position not in POSITION_INITS:
        raise ValueError(f"position: expected one of {POSITION_INITS}, got {position!r}")
    if not (isinstance(vit, dict) and "blocks" in vit):
        vit = load_vit_state_dict(vit)[0]
    config = model.config
    base = "vivit." if hasattr(model, "vivit") else ""
    target = model.state_dict()
    filled: set[str] = set()

    def put(key: str, value: torch.Tensor) -> None:
        key = base + key
        if key not in target:
            raise KeyError(f"init_from_vit: the model has no {key!r} (variant {config.variant!r})")
        if tuple(target[key].shape) != tuple(value.shape):
            raise ValueError(
                f"init_from_vit: {key} has shape {tuple(target[key].shape)} in the video model, the image model "
                f"gives {tuple(value.shape)} (hidden_size / intermediate_size / patch size must match the ViT)"
            )
        target[key] = value.detach().to(target[key].dtype).clone()
        filled.add(key)

    # geometry checks with messages that name what differs
    D = vit["patch_w"].shape[0]
    if D != config.hidden_size:
        raise ValueError(f"init_from_vit: hidden_size is {config.hidden_size}, the image model's is {D}")
    if len(vit["blocks"]) != config.num_hidden_layers:
        raise ValueError(
            f"init_from_vit: num_hidden_layers is {config.num_hidden_layers}, the image model has {len(vit['blocks'])}"
        )
    t, h, w = config.tubelet_size
    if tuple(vit["patch_w"].shape[2:]) != (h, w):
        raise ValueError(
            f"init_from_vit: tubelet_size {config.tubelet_size} needs the image patch size to be {(h, w)}, the "
            f"image model's is {tuple(vit['patch_w'].shape[2:])}"
        )

    # embeddings
    put("embeddings.patch_embeddings.projection.weight", inflate_patch_kernel(vit["patch_w"], t, tubelet))
    put("embeddings.patch_embeddings.projection.bias", vit["patch_b"])
    T, Hp, Wp = config.grid
    pos = vit["pos"].reshape(-1, D)
    spatial = spatial_position_table(pos[1:], (Hp, Wp), resize=position == "resize")
    has_cls = base + "embeddings.cls_token" in target
    if has_cls:
        put("embeddings.cls_token", vit["cls"].reshape(1, 1, D))
    per_frame = config.variant == "factorized_encoder"
    table = spatial if per_frame else spatial.repeat(T, 1)  # tiled over time: (t, h, w) time-major order
    if has_cls:
        table = torch.cat([pos[:1], table])
    put("embeddings.position_embeddings", table.unsqueeze(0))

    # blocks
    def put_block(prefix: str, block: dict, parts: dict[str, str]) -> None:
        for short, tail in parts.items():
            put(f"{prefix}.{tail}.weight", block[short + "_w"])
            put(f"{prefix}.{tail}.bias", block[short + "_b"])

    temporal_parts = {
        "ln1": "temporal_layernorm_before",
        "q": "temporal_attention.q_proj",
        "k": "temporal_attention.k_proj",
        "v": "temporal_attention.v_proj",
        "o": "temporal_attention.o_proj",
    }
    for i, block in enumerate(vit["blocks"]):
        prefix = f"layers.{i}"
        put_block(prefix, block, _HF5_BLOCK)
        if config.variant == "factorized_self_attention":
            if temporal_attention:
                put_block(prefix, block, temporal_parts)
            else:  # the temporal MSA adds nothing at first: the block starts as the image block
                for name in ("weight", "bias"):
                    key = f"{prefix}.temporal_attention.o_proj.{name}"
                    put(key, torch.zeros_like(target[base + key]))
    put("layernorm.weight", vit["norm_w"])
    put("layernorm.bias", vit["norm_b"])

    model.load_state_dict(target, strict=True)
    return sorted(k for k in target if k not in filled)
