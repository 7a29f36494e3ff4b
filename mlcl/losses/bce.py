"""BCE-family baselines that ABALONE compares with: focal loss (Lin et al., 2017) and the
asymmetric loss (Ridnik et al., 2021), as written in ABALONE section 4.2.2.

Notation: x the logits, p = σ(x) the predicted probabilities ŷ, y ∈ {0,1} the targets; N
samples and L labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import Reduction, check_labels, check_reduction, no_autocast

__all__ = ["AsymmetricLoss", "FocalLoss"]


def _check(logits: Tensor, labels: Tensor) -> Tensor:
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.dim() != 2:
        raise ValueError(
            "logits must be a floating-point tensor of shape (batch, num_labels) (raw scores, "
            "before the sigmoid)."
        )
    return check_labels(labels, logits.shape[0], num_labels=logits.shape[1], what="logits")


def _reduce(per: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / max(per.numel(), 1)


class FocalLoss(nn.Module):
    r"""Binary focal loss for multi-label logits (ABALONE's L_FCL).

    .. math::

        \mathcal L_{FCL} = -\frac{1}{N}\sum_{i=1}^{N}\frac1L\sum_{j=1}^{L}
        y^j_i (1-\hat y^j_i)^\gamma \log \hat y^j_i + (1-y^j_i)(\hat y^j_i)^\gamma\log(1-\hat y^j_i)

    Computed with log-sigmoids (stable for large logits), in float32 under autocast.

    Args:
        gamma: focusing parameter γ ≥ 0 (γ = 0 is BCE).
        reduction: ``"mean"`` over all N·L entries, ``"sum"``, or ``"none"`` → (N, L).

    Example:
        >>> loss = FocalLoss(gamma=2)(torch.randn(4, 5), torch.randint(0, 2, (4, 5)))
    """

    def __init__(self, gamma: float = 2.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        if not (float(gamma) >= 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma must be a finite number >= 0 (e.g. 2), got {gamma!r}.")
        self.gamma = float(gamma)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        y = _check(logits, labels)
        with no_autocast(logits):
            x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
            yf = y.to(x.dtype)
            log_p, log_1mp = F.logsigmoid(x), F.logsigmoid(-x)
            pos, neg = log_p, log_1mp
            if self.gamma != 0:
                pos = torch.exp(self.gamma * log_1mp) * log_p
                neg = torch.exp(self.gamma * log_p) * log_1mp
            return _reduce(-(yf * pos + (1 - yf) * neg), self.reduction)


class AsymmetricLoss(nn.Module):
    r"""Asymmetric loss (Ridnik et al., 2021; ABALONE's L_ASY).

    .. math::

        \mathcal L_{ASY} = -\frac1N\sum_{i}\frac1L\sum_j
        y^j_i (1-p^j_i)^{\gamma^+}\log p^j_i + (1-y^j_i)(p^j_{i,m})^{\gamma^-}\log(1-p^j_{i,m}),
        \qquad p_m = \max(p - m, 0)

    The probability shift m (``clip``) applies to the negatives only, as in Ridnik et al.
    (ABALONE's printed formula garbles this). ``reduction="mean"`` averages over the N·L entries
    as ABALONE writes it (Ridnik's code sums).

    Args:
        gamma_pos: γ⁺ (0). gamma_neg: γ⁻ (4). clip: m (0.05), in [0, 1).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` → (N, L).

    Example:
        >>> loss = AsymmetricLoss()(torch.randn(4, 5), torch.randint(0, 2, (4, 5)))
    """

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        for name, v in (("gamma_pos", gamma_pos), ("gamma_neg", gamma_neg)):
            if not (float(v) >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}.")
        if not (0.0 <= float(clip) < 1.0):
            raise ValueError(f"clip must be in [0, 1) (e.g. 0.05), got {clip!r}.")
        self.gamma_pos, self.gamma_neg, self.clip = float(gamma_pos), float(gamma_neg), float(clip)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        y = _check(logits, labels)
        with no_autocast(logits):
            x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
            yf = y.to(x.dtype)
            log_p = F.logsigmoid(x)
            pos = log_p
            if self.gamma_pos != 0:
                pos = torch.exp(self.gamma_pos * F.logsigmoid(-x)) * log_p
            if self.clip > 0:
                p = torch.sigmoid(x)
                p_m = (p - self.clip).clamp(min=0.0)
                log_1m = torch.log((1.0 - p_m).clamp(min=torch.finfo(x.dtype).tiny))
            else:
                p_m = torch.sigmoid(x)
                log_1m = F.logsigmoid(-x)
            neg = log_1m if self.gamma_neg == 0 else p_m.pow(self.gamma_neg) * log_1m
            return _reduce(-(yf * pos + (1 - yf) * neg), self.reduction)
