"""Optimizer parameter groups: no weight decay on biases, norms and embeddings; optional layer-wise learning-rate
decay (as in BEiT / VideoMAE fine-tuning).

Layer decay with rate R over a stack of L transformer blocks: the embeddings get R^(L+1), block i (from 0) gets
R^(L-i), the final norm and the classifier 1.0. Every group carries its multiplier as `lr_scale` and starts at
`lr * lr_scale`; the schedule (a LambdaLR) then scales each group's own starting rate.

Model 2 (factorized encoder) counts its spatial blocks then its temporal blocks as one stack of
num_hidden_layers + num_temporal_layers blocks: the temporal encoder reads the spatial one's output, so it is the
deeper part. Its spatial final norm and the temporal embeddings (CLS token, position embeddings) feed the first
temporal block and share that block's depth.
"""

from __future__ import annotations

import re

import torch
from torch import nn

_SPATIAL = re.compile(r"(?:^|\.)vivit\.layers\.(\d+)\.")
_TEMPORAL = re.compile(r"(?:^|\.)vivit\.temporal_layers\.(\d+)\.")


def _stack_sizes(model: nn.Module) -> tuple[int, int]:
    """(spatial blocks, temporal blocks) from the parameter names (works through DDP, FSDP and compile wrappers)."""
    spatial, temporal = set(), set()
    for name, _ in model.named_parameters():
        if m := _SPATIAL.search(name):
            spatial.add(int(m.group(1)))
        elif m := _TEMPORAL.search(name):
            temporal.add(int(m.group(1)))
    return len(spatial), len(temporal)


def layer_id(name: str, num_spatial: int, num_layers: int) -> int:
    """Depth of a parameter: 0 for the embeddings, i + 1 for block i of the stack, num_layers + 1 for the rest of the
    top (final norm, classifier)."""
    if m := _SPATIAL.search(name):
        return int(m.group(1)) + 1
    if m := _TEMPORAL.search(name):
        return num_spatial + int(m.group(1)) + 1
    if re.search(r"(?:^|\.)vivit\.embeddings\.", name):
        return 0
    if re.search(r"(?:^|\.)vivit\.temporal_embeddings\.", name):
        return num_spatial + 1
    if re.search(r"(?:^|\.)vivit\.layernorm\.", name) and num_layers > num_spatial:
        return num_spatial + 1  # Model 2: the spatial encoder's final norm, read by the temporal encoder
    if re.search(r"(?:^|\.)(vivit\.layernorm|vivit\.temporal_layernorm|classifier)\.", name):
        return num_layers + 1
    raise ValueError(f"layer_decay: expected ViViT parameter names, got {name!r} (no depth known for it)")


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms (1-D), CLS tokens and position embeddings (anything under an `embeddings` module)."""
    return param.ndim <= 1 or "embedding" in name or "cls" in name


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """AdamW parameter groups. Without `layer_decay`: [decayed, not decayed] (each with lr_scale 1.0). With it: one
    group per (depth, decayed or not), largest lr_scale first so that group 0 follows the peak learning rate."""
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay: expected a number in (0, 1], got {layer_decay}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if layer_decay is None:
        decay = [p for n, p in named if not no_weight_decay(n, p)]
        no_decay = [p for n, p in named if no_weight_decay(n, p)]
        return [
            {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
        ]
    num_spatial, num_temporal = _stack_sizes(model)
    num_layers = num_spatial + num_temporal
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in named:
        depth = layer_id(name, num_spatial, num_layers)
        skip = no_weight_decay(name, p)
        group = groups.setdefault(
            (depth, skip),
            {
                "params": [],
                "weight_decay": 0.0 if skip else weight_decay,
                "lr_scale": layer_decay ** (num_layers + 1 - depth),
            },
        )
        group["params"].append(p)
    return [groups[key] for key in sorted(groups, key=lambda k: (-k[0], k[1]))]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, layer_decay: float | None = None
) -> torch.optim.AdamW:
    """AdamW (betas 0.9, 0.999) over `param_groups`; each group starts at lr * lr_scale."""
    groups = param_groups(model, weight_decay, layer_decay)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


__all__ = ["build_optimizer", "layer_id", "no_weight_decay", "param_groups"]
