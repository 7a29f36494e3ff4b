"""MulCon label-level contrastive loss LLCL (Dao et al., ICLR 2022 submission, eq. 8–9).

Notation of the paper: z_ij is the (projected) label-level embedding of image i under label j;
y_ij ∈ {0, 1}; I = {z_ij : y_ij = 1} the active embeddings of the batch; A(i, j) = I \\ {z_ij};
P(i, j) = {z_kj ∈ A(i, j) : y_kj = 1} the other images' embeddings under the same label.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import (
    Reduction,
    check_embeddings,
    check_labels,
    check_reduction,
    check_temperature,
    compute_dtype,
    distributed_world,
    gather_rows,
    no_autocast,
    normalize,
    reduce_loss,
    similarity_logsumexp,
)

__all__ = ["LabelLevelContrastiveLoss"]


class LabelLevelContrastiveLoss(nn.Module):
    r"""Label-level contrastive loss: SupCon over the active (image, label) embeddings.

    MulCon eq. 8 (per anchor) and the batch loss below it (eq. 9 adds it to BCE with weight γ):

    .. math::

        \mathcal L^{ij}_{LLCL} = \frac{-1}{|P(i,j)|} \sum_{z_p\in P(i,j)}
        \log \frac{\exp(z_{ij}\cdot z_p/\tau)}{\sum_{z_a\in A(i,j)} \exp(z_{ij}\cdot z_a/\tau)},
        \qquad \mathcal L_{LLCL} = \frac{1}{|I|}\sum_{z_{ij}\in I} \mathcal L^{ij}_{LLCL}

    Each active pair becomes a single-label sample (its label is j). Only the |I| active rows are
    gathered, and the positive term uses per-label sums of the active embeddings, so memory is
    O(|I|²) with no B × B × L tensor. Anchors whose label no other row carries have no positive:
    they contribute nothing and are not counted.

    Args:
        temperature: τ (0.2 in MulCon).
        reduction: ``"mean"`` over valid anchors, ``"sum"``, or ``"none"`` → (B, L) (0 where
            (i, j) is not a valid anchor).
        gather_distributed: gather the active rows of all ranks as references.

    Call: ``loss(label_embeddings, labels)`` with label_embeddings (B, L, D) and multi-hot labels
    (B, L). Two augmented views: stack them as 2B images.

    Example:
        >>> loss_fn = LabelLevelContrastiveLoss(temperature=0.2)
        >>> loss = loss_fn(torch.randn(4, 5, 16), torch.randint(0, 2, (4, 5)))
    """

    def __init__(
        self,
        temperature: float = 0.2,
        reduction: Reduction = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.reduction = check_reduction(reduction)
        self.gather_distributed = gather_distributed

    def forward(self, label_embeddings: Tensor, labels: Tensor) -> Tensor:
        check_embeddings(label_embeddings, "label_embeddings", ndim=3)
        B, L, _ = label_embeddings.shape
        y = check_labels(labels, B, num_labels=L, what="label_embeddings")
        dtype = compute_dtype(label_embeddings)
        world, _ = distributed_world(self.gather_distributed)
        with no_autocast(label_embeddings):
            idx = y.nonzero(as_tuple=False)  # (N, 2): active (i, j)
            rows = normalize(label_embeddings[idx[:, 0], idx[:, 1]], dtype)  # (N, D)
            onehot = torch.nn.functional.one_hot(idx[:, 1], L).to(dtype)  # (N, L)
            keys, key_labels, offset = rows, onehot, 0
            if world > 1:
                keys, offset = gather_rows(rows)
                key_labels, _ = gather_rows(onehot)
            zt = rows / self.temperature
            # log Σ_{a ∈ A(i,j)} exp(z·z_a/τ), self removed: the only N × M tensor
            lse = similarity_logsumexp(rows, keys, 1.0 / self.temperature, self_offset=offset)
            class_sums = key_labels.T @ keys  # (L, D)
            pos_sum = (zt * class_sums[idx[:, 1]]).sum(1) - (zt * rows).sum(1)
            count = key_labels.sum(0)[idx[:, 1]] - 1.0
            per_row = lse - pos_sum / count.clamp_min(1.0)
            valid = count > 0
            if self.reduction == "none":
                out = per_row.new_zeros(B, L)
                vals = torch.where(valid, per_row, torch.zeros_like(per_row))
                return out.index_put((idx[:, 0], idx[:, 1]), vals)
            return reduce_loss(per_row, valid, self.reduction, world)
