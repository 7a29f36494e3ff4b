"""SupCon with the multi-label positive sets ALL and ANY (MulSupCon paper, eq. 1).

Notation of the MulSupCon paper (Zhang & Wu, AAAI 2024): z_q^(i) is the query embedding of
anchor i, z_k^(j) the key (reference) embeddings, s_j^(i) = z_q^(i)·z_k^(j); A^(i) is the set of
all keys (batch + queue), P^(i) ⊂ A^(i) the positives, y^(i) the label set of sample i.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ._common import (
    ContrastiveInputs,
    Reduction,
    check_reduction,
    check_temperature,
    masked_logsumexp,
    no_autocast,
    reduce_loss,
)

__all__ = ["SupConLoss"]


class SupConLoss(nn.Module):
    r"""Supervised contrastive loss with the ALL / ANY positives of multi-label data.

    MulSupCon eq. 1 (the SupCon loss of Khosla et al., 2020, with a multi-label positive set):

    .. math::

        \mathcal L^{(i)}_{supcon} = \frac{-1}{|P^{(i)}|} \sum_{p\in P^{(i)}}
        \log \frac{e^{s^{(i)}_p/\tau}}{\sum_{a\in A^{(i)}} e^{s^{(i)}_a/\tau}}

    with P^(i) = {m : y^(m) = y^(i)} for ``positives="all"`` and
    P^(i) = {m : y^(m) ∩ y^(i) ≠ ∅} for ``positives="any"``. A sample without labels is never an
    anchor and never a positive (the authors' ANY gives NaN on it).

    Args:
        temperature: τ (0.1 in MulSupCon).
        positives: ``"all"`` (same label set) or ``"any"`` (at least one shared label).
        reduction: ``"mean"`` over anchors with ≥ 1 positive, ``"sum"``, ``"none"`` → (B,).
        gather_distributed: gather references from all ranks (see :mod:`mlcl.losses._common`).

    Call: ``loss(embeddings, labels, ref_embeddings=None, ref_labels=None)``.

    Example:
        >>> loss_fn = SupConLoss(temperature=0.1, positives="any")
        >>> z, y = torch.randn(8, 16), torch.randint(0, 2, (8, 5))
        >>> loss = loss_fn(z, y)                        # the batch is its own reference set
        >>> loss = loss_fn(z, y, torch.randn(32, 16), torch.randint(0, 2, (32, 5)))  # a queue
    """

    def __init__(
        self,
        temperature: float = 0.1,
        positives: Literal["any", "all"] = "any",
        reduction: Reduction = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if positives not in ("any", "all"):
            raise ValueError(f'positives must be "any" or "all", got {positives!r}.')
        self.temperature = check_temperature(temperature)
        self.positives = positives
        self.reduction = check_reduction(reduction)
        self.gather_distributed = gather_distributed

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        with no_autocast(embeddings):
            inp = ContrastiveInputs(
                embeddings, labels, ref_embeddings, ref_labels, self.gather_distributed
            )
            sim = inp.z @ inp.k.T / self.temperature  # (B, M)
            inter = inp.y @ inp.yk.T  # |y_i ∩ y_j|
            if self.positives == "any":
                pos = inter > 0
            else:
                n_i, n_j = inp.y.sum(1), inp.yk.sum(1)
                pos = (inter == n_i[:, None]) & (inter == n_j[None, :]) & (n_i[:, None] > 0)
            keep = inp.others()
            if keep is not None:
                pos = pos & keep
            posf = pos.to(sim.dtype)
            n_pos = posf.sum(1)
            lse = masked_logsumexp(sim, keep)
            loss = lse - (sim * posf).sum(1) / n_pos.clamp(min=1.0)
            return reduce_loss(loss, n_pos > 0, self.reduction, inp.world)
