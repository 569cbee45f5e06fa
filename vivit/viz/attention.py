"""Attention rollout (Abnar & Zuidema, 2020) for the four ViViT variants: tensor maths only, no plotting.

Rollout follows attention down through the layers: each layer's map is averaged over heads, the identity is added
(the residual connection carries every token to itself) and the rows are renormalised to sum to 1; the product of
these matrices, last layer first, says how much each input token contributes to each output token. Only the row of
the vector the classifier reads is needed, so the factorised variants propagate that row through their spatial and
temporal maps without building the (T'*S) x (T'*S) matrices.

What each variant gives (T' temporal indices, h x w tubelet grid, S = h * w; `attentions` as the model returns them
with `output_attentions=True`, see vivit.models.modeling):
  spatiotemporal (Model 1)   the CLS token's rollout over the T'*S tubelets (mean pooling: the average of the rows).
  factorized_encoder (2)     per temporal index, the spatial encoder's CLS rollout over its S tubelets; over the
                             T' indices, the temporal encoder's CLS rollout (none without a temporal encoder: the
                             per-index vectors are then averaged, which is not attention).
  factorized_self_attention  the mean-pooled tokens' rollout through each block's spatial and temporal attention.
  factorized_dot_product     the mean-pooled tokens' rollout through each block's spatial and temporal heads (their
                             head average is half of each).
`reduce_attentions` returns per-frame spatial maps (each frame's map sums to 1) and weights over the T' temporal
indices (sum to 1); the product of the two is the rollout's share of every tubelet. A CLS token's share of itself is
left out and the rest renormalised: the CLS token holds no pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

VARIANT_NAMES = {
    "spatiotemporal": "Model 1, joint space-time attention",
    "factorized_encoder": "Model 2, factorised encoder",
    "factorized_self_attention": "Model 3, factorised self-attention",
    "factorized_dot_product": "Model 4, factorised dot-product attention",
}


def head_mean_with_identity(attention: torch.Tensor) -> torch.Tensor:
    """(..., H, n, n) attention probabilities -> (..., n, n): heads averaged, identity added, rows summing to 1."""
    if attention.dim() < 3 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention: expected (..., heads, n, n), got shape {tuple(attention.shape)}")
    mixed = attention.double().mean(dim=-3)
    mixed = mixed + torch.eye(mixed.shape[-1], dtype=mixed.dtype, device=mixed.device)
    return mixed / mixed.sum(dim=-1, keepdim=True)


def attention_rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """Rollout of joint-attention maps (..., H, n, n), first layer first: R = A_L' ... A_1' (float64), where A' is
    `head_mean_with_identity(A)`. Row i of R: the share of every input token in output token i."""
    if not attentions:
        raise ValueError("attentions: expected at least one attention map, got none")
    result = None
    for attention in attentions:
        mixed = head_mean_with_identity(attention)
        result = mixed if result is None else mixed @ result
    return result


def _rollout_row(start: torch.Tensor, attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """start (B, n) @ R for joint maps (B, H, n, n), first layer first: the rollout of a weighted sum of rows."""
    row = start.double()
    for attention in reversed(attentions):
        row = (row.unsqueeze(-2) @ head_mean_with_identity(attention)).squeeze(-2)
    return row


def _factorized_step(row: torch.Tensor, terms: Sequence[tuple[str, torch.Tensor, float]]) -> torch.Tensor:
    """row (B, T', S) @ M for one attention step over the T'*S tokens, M = rows-renormalised (I + sum w * A_axis).

    terms: (axis, probabilities, weight) with probabilities (B, T', H, S, S) for "spatial" (keys in the same frame)
    or (B, S, H, T', T') for "temporal" (keys at the same position), heads averaged here.
    """
    means = [(axis, probs.double().mean(dim=2), weight) for axis, probs, weight in terms]
    row_sums = torch.ones_like(row)
    for axis, mean, weight in means:
        sums = mean.sum(-1)  # spatial: (B, T', S); temporal: (B, S, T')
        row_sums = row_sums + weight * (sums if axis == "spatial" else sums.transpose(1, 2))
    scaled = row / row_sums  # rows of M scaled to sum to 1, applied to the row vector's entries
    out = scaled.clone()  # the identity
    for axis, mean, weight in means:
        if axis == "spatial":
            out = out + weight * torch.einsum("bts,btsu->btu", scaled, mean)
        else:
            out = out + weight * torch.einsum("bts,bstu->bus", scaled, mean)
    return out


def _factorized_rollout(start: torch.Tensor, steps: Sequence[Sequence[tuple[str, torch.Tensor, float]]]):
    row = start.double()
    for terms in reversed(steps):
        row = _factorized_step(row, terms)
    return row


@dataclass
class RolloutMaps:
    """spatial (B, T', h, w): per temporal index, the share of each tubelet (sums to 1 over h x w; all zeros for an
    index the rollout gives nothing, e.g. one masked out); temporal (B, T') the share of each temporal index (sums to
    1), or None where the model has no attention over time."""

    spatial: torch.Tensor
    temporal: torch.Tensor | None
    description: str


def _check(attentions, count: int, what: str) -> None:
    if len(attentions) != count:
        raise ValueError(f"attentions: expected {count} maps ({what}), got {len(attentions)}")


def _check_shape(attention: torch.Tensor, shape: tuple, index: int) -> None:
    got = tuple(attention.shape)
    if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
        want = tuple("H" if e is None else e for e in shape)
        raise ValueError(f"attentions[{index}]: expected shape {want}, got {got}")


def _split(joint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T', S) token shares -> per-frame shares (B, T', S) summing to 1 per frame, frame shares (B, T')."""
    per_frame = joint.sum(-1)
    return joint / per_frame.clamp_min(1e-300).unsqueeze(-1), per_frame / per_frame.sum(-1, keepdim=True)


def reduce_attentions(attentions: Sequence[torch.Tensor], config, grid: tuple[int, int, int]) -> RolloutMaps:
    """Per-frame spatial maps and weights over time from a model's `attentions` (see the module docstring).

    config: the model's VivitConfig (variant, pooling, depths, attention_order); grid: (T', h, w) of the input.
    """
    T, h, w = grid
    S = h * w
    variant, cls = config.variant, config.pooling == "cls"
    attentions = tuple(attentions)
    layers = config.num_hidden_layers
    pooled = "the CLS token's" if cls else "the mean-pooled tokens'"
    if variant == "spatiotemporal":
        _check(attentions, layers, f"one per block, num_hidden_layers={layers}")
        n = int(cls) + T * S
        for i, a in enumerate(attentions):
            _check_shape(a, (a.shape[0], None, n, n), i)
        B = attentions[0].shape[0]
        start = torch.zeros(B, n, dtype=torch.float64, device=attentions[0].device)
        if cls:
            start[:, 0] = 1.0
        else:
            start[:] = 1.0 / n
        row = _rollout_row(start, attentions)[:, int(cls) :]  # a CLS token's share of itself: no pixels
        spatial, temporal = _split(row.reshape(B, T, S))
        description = f"rollout of {pooled} attention over the {T}x{h}x{w} tubelets"
    elif variant == "factorized_encoder":
        temporal_layers = config.num_temporal_layers
        _check(attentions, layers + temporal_layers, f"{layers} spatial + {temporal_layers} temporal blocks")
        s_n = int(cls) + S
        for i, a in enumerate(attentions[:layers]):
            _check_shape(a, (a.shape[0], T, None, s_n, s_n), i)
        B = attentions[0].shape[0]
        start = torch.zeros(B * T, s_n, dtype=torch.float64, device=attentions[0].device)
        if cls:
            start[:, 0] = 1.0
        else:
            start[:] = 1.0 / s_n
        spatial_maps = [a.reshape(B * T, *a.shape[2:]) for a in attentions[:layers]]
        row = _rollout_row(start, spatial_maps)[:, int(cls) :].reshape(B, T, S)
        spatial = row / row.sum(-1, keepdim=True)
        description = f"spatial encoder: rollout of {pooled} attention within each frame"
        temporal = None
        if temporal_layers:
            t_n = int(cls) + T
            for i, a in enumerate(attentions[layers:], start=layers):
                _check_shape(a, (B, None, t_n, t_n), i)
            t_start = torch.zeros(B, t_n, dtype=torch.float64, device=attentions[0].device)
            if cls:
                t_start[:, 0] = 1.0
            else:
                t_start[:] = 1.0 / t_n
            t_row = _rollout_row(t_start, attentions[layers:])[:, int(cls) :]
            temporal = t_row / t_row.sum(-1, keepdim=True)
            description += f"; temporal encoder: rollout of {pooled} attention over the {T} temporal indices"
        else:
            description += "; no temporal encoder (frames averaged): no weights over time"
    elif variant in ("factorized_self_attention", "factorized_dot_product"):
        _check(attentions, 2 * layers, f"a spatial and a temporal map per block, num_hidden_layers={layers}")
        if variant == "factorized_self_attention":
            order = ("temporal", "spatial") if config.attention_order == "time_space" else ("spatial", "temporal")
            axes = order * layers
        else:
            axes = ("spatial", "temporal") * layers
        B = attentions[0].shape[0]
        for i, (axis, a) in enumerate(zip(axes, attentions)):
            _check_shape(a, (B, T, None, S, S) if axis == "spatial" else (B, S, None, T, T), i)
        if variant == "factorized_self_attention":  # two sub-layers per block, each with its own residual
            steps = [[(axis, a, 1.0)] for axis, a in zip(axes, attentions)]
            how = "its spatial and temporal attention"
        else:  # one attention per block whose head average is half spatial heads, half temporal heads
            steps = [
                [("spatial", attentions[i], 0.5), ("temporal", attentions[i + 1], 0.5)] for i in range(0, 2 * layers, 2)
            ]
            how = "its spatial and temporal heads"
        start = torch.full((B, T, S), 1.0 / (T * S), dtype=torch.float64, device=attentions[0].device)
        joint = _factorized_rollout(start, steps)
        spatial, temporal = _split(joint)
        description = f"rollout of {pooled} attention through {how}, over the {T}x{h}x{w} tubelets"
    else:
        raise ValueError(f"config.variant: expected one of {tuple(VARIANT_NAMES)}, got {variant!r}")
    return RolloutMaps(spatial=spatial.reshape(B, T, h, w), temporal=temporal, description=description)


__all__ = ["VARIANT_NAMES", "RolloutMaps", "attention_rollout", "head_mean_with_identity", "reduce_attentions"]
