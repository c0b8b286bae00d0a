"""Per-channel losses on the network's logits, weighted by channel weights, pixel weights and the pad mask.

- binary channels (B C M P, PatchPerPix foreground/overlap): binary cross-entropy on logits, optionally + soft
  Dice;
- PatchPerPix patch channels: one joint binary cross-entropy over the foreground pixels that are no overlap
  (:func:`runner.targets.ppp.patch_loss`), reported as the part ``patch``;
- distance channels (D, Dv2): MSE, L1 or smooth L1 on the (identity-activated) output;
- class head: cross-entropy over the softmax channels.

Each channel's loss is a weighted mean over pixels (weights = pad mask x gradient-anomaly map); the total is
``sum_c channel_weight[c] * loss[c] + class_weight * class_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from runner.recipes import LossSection
from runner.targets import ChannelSpec
from runner.targets.ppp import patch_channels, patch_loss


@dataclass
class LossResult:
    """Total loss (a scalar tensor with gradient) and each part as a float."""

    total: torch.Tensor
    parts: dict[str, float]


class InstanceLoss:
    """Loss of one model output against its targets.

    Parameters
    ----------
    specs : channel specs of the target code, in output order.
    channel_weights : one weight per spec.
    config : the recipe's loss section.
    n_classes : classes of the class head (0 = none); its channels follow the code's channels.
    """

    def __init__(
        self,
        specs: list[ChannelSpec],
        channel_weights: list[float],
        config: LossSection,
        *,
        n_classes: int = 0,
    ):
        if len(specs) != len(channel_weights):
            raise ValueError("one channel weight per channel spec is needed")
        self.specs = specs
        self.weights = channel_weights
        self.config = config
        self.n_classes = n_classes if n_classes > 2 else 0
        # PatchPerPix shape patches: one joint, masked loss (runner.targets.ppp.patch_loss)
        self.patch_idx, self.patch_offsets = patch_channels(specs)

    def __call__(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor,
        weight: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> LossResult:
        """Loss of ``logits (B, T[+K], ...)`` against ``targets (B, T, ...)``.

        ``mask``, ``weight`` and ``classes`` are ``(B, ...)``; the class map is needed with a class head.
        """
        logits = logits.float()
        w = mask if weight is None else mask * weight
        wsum = w.sum().clamp_min(1e-6)
        total = logits.new_zeros(())
        parts: dict[str, float] = {}
        for c, (spec, cw) in enumerate(zip(self.specs, self.weights, strict=True)):
            if spec.kind == "patch":
                continue
            x, t = logits[:, c], targets[:, c]
            if spec.kind in ("binary", "patch") or spec.activation == "sigmoid":
                loss = (F.binary_cross_entropy_with_logits(x, t, reduction="none") * w).sum() / wsum
                if self.config.binary == "bce_dice":
                    loss = loss + self.config.dice_weight * _soft_dice(torch.sigmoid(x), t, mask)
            else:
                loss = (self._regression(x, t) * w).sum() / wsum
            parts[spec.name] = float(loss.detach())
            total = total + cw * loss
        if self.patch_idx:
            loss = patch_loss(logits, targets, w, self.patch_idx, self.patch_offsets)
            parts["patch"] = float(loss.detach())
            cw = sum(self.weights[c] for c in self.patch_idx) / len(self.patch_idx)
            total = total + cw * loss
        if self.n_classes:
            k0 = len(self.specs)
            if classes is None:
                raise ValueError("the class head needs a class map")
            ce = F.cross_entropy(logits[:, k0 : k0 + self.n_classes], classes, reduction="none")
            loss = (ce * w).sum() / wsum
            parts["class"] = float(loss.detach())
            total = total + self.config.class_weight * loss
        return LossResult(total=total, parts=parts)

    def _regression(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        kind = self.config.distance
        if kind == "mse":
            return (x - t) ** 2
        if kind == "l1":
            return (x - t).abs()
        return F.smooth_l1_loss(x, t, reduction="none", beta=0.1)


def _soft_dice(p: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - 2|p t| / (|p| + |t|)`` over the whole batch (inside the mask)."""
    p, t = p * mask, t * mask
    inter = (p * t).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + t.sum() + eps)
