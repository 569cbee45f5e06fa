"""An exponential moving average of a model's parameters, kept beside the model (no second module).

Works with plain, DDP-wrapped and FSDP2-sharded models: the shadow tensors have the same type and placement as the
parameters (DTensor shards under FSDP2), and `swapped_in()` evaluates the average in place.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class ModelEMA:
    """ema = decay_t * ema + (1 - decay_t) * param after each optimizer step, decay_t = min(decay, (1+n)/(10+n)).

    The warm-up of decay_t keeps the average from being dominated by the random initialisation early on.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay: expected 0 < decay < 1, got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.shadow = {n: p.detach().clone().float() for n, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        self.num_updates += 1
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, p in self.params.items():
            self.shadow[name].lerp_(p.detach().float(), 1.0 - decay)

    @contextlib.contextmanager
    def swapped_in(self):
        """Temporarily load the averaged weights into the model (e.g. to evaluate them)."""
        backup = {n: p.detach().clone() for n, p in self.params.items()}
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.shadow[n])
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(backup[n])

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Unsharded CPU copies (a collective under FSDP2: every rank must call it)."""
        return {n: _full(t).detach().cpu() for n, t in self.shadow.items()}

    @torch.no_grad()
    def load_full_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise KeyError(f"EMA state: missing {len(missing)} parameters, e.g. {missing[:3]}")
        for n, t in self.shadow.items():
            src = state[n].to(torch.float32)
            if hasattr(t, "full_tensor"):  # DTensor shard: redistribute the full tensor to this placement
                from torch.distributed.tensor import distribute_tensor

                src = distribute_tensor(src.to(t.device), t.device_mesh, t.placements)
            t.copy_(src)
        self.num_updates = num_updates
