"""Mixup and CutMix for video batches, with label smoothing folded into the soft targets.

The same mixing weight and the same CutMix box apply to every frame of a clip: mixing must not change over time, or
the "motion" of the pasted patch would itself become a cue.
"""

from __future__ import annotations

import math

import torch


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(B,) int labels -> (B, num_classes) float targets with `smoothing` spread evenly over all classes."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels[:, None], 1.0 - smoothing + off)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum(targets * log_softmax(logits)); computed in fp32."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


class Mixup:
    """Mix a batch with a permutation of itself: Mixup (blend) or CutMix (paste a box), chosen per batch.

    Args:
        mixup_alpha / cutmix_alpha: Beta(alpha, alpha) concentration; 0 turns that kind off.
        prob: chance that a batch is mixed at all.
        switch_prob: when both kinds are on, chance that a mixed batch uses CutMix.
        label_smoothing: folded into the targets.
        generator: a CPU torch.Generator; all random choices come from it, so runs are reproducible.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha} and {cutmix_alpha}")
        if not 0.0 <= prob <= 1.0 or not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"prob and switch_prob must be in [0, 1], got {prob} and {switch_prob}")
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob
        self.label_smoothing = label_smoothing
        self.generator = generator if generator is not None else torch.Generator()

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _beta(self, alpha: float) -> float:
        a = torch.tensor(alpha, dtype=torch.float64)
        # torch.distributions does not take a generator; Beta(a, a) = G1 / (G1 + G2) with Gamma(a) draws.
        g = torch._standard_gamma(a.expand(2).contiguous(), generator=self.generator)
        return float(g[0] / (g[0] + g[1]))

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values (B, F, C, H, W), labels (B,) -> (mixed pixels, soft targets (B, num_classes))."""
        if pixel_values.dim() != 5:
            raise ValueError(f"pixel_values: expected (B, F, C, H, W), got shape {tuple(pixel_values.shape)}")
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        if not self.enabled or self._uniform() >= self.prob:
            return pixel_values, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or self._uniform() < self.switch_prob)
        lam = self._beta(self.cutmix_alpha if use_cutmix else self.mixup_alpha)
        perm = torch.randperm(labels.shape[0], generator=self.generator).to(labels.device)
        other = pixel_values[perm]
        if use_cutmix:
            h, w = pixel_values.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(self._uniform() * h), int(self._uniform() * w)
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            mixed = pixel_values.clone()
            mixed[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
        else:
            mixed = pixel_values * lam + other * (1.0 - lam)
        return mixed, targets * lam + targets[perm] * (1.0 - lam)
