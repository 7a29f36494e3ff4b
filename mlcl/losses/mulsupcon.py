"""MulSupCon loss (Zhang & Wu, AAAI 2024, eq. 4–6), computed through per-label sums (eq. 7).

Notation as in :mod:`mlcl.losses.supcon`; P_j^(i) = {m : label j ∈ y^(m)} is the positive set of
the anchor (i, j), one anchor per (sample, label) pair.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import (
    ContrastiveInputs,
    Reduction,
    check_reduction,
    check_temperature,
    no_autocast,
    reduce_loss,
    similarity_logsumexp,
)

__all__ = ["MulSupConLoss"]


class MulSupConLoss(nn.Module):
    r"""Multi-label supervised contrastive loss: one anchor per (sample, label) pair.

    MulSupCon eq. 4 and 5:

    .. math::

        \mathcal L^{(i)} = \sum_{y^{(i)}_j\in y^{(i)}} \frac{-1}{|P^{(i)}_j|}
        \sum_{p\in P^{(i)}_j} \log \frac{e^{s^{(i)}_p/\tau}}{\sum_{a\in A^{(i)}} e^{s^{(i)}_a/\tau}},
        \qquad \mathcal L = \frac{1}{\sum_i |y^{(i)}|} \sum_i \mathcal L^{(i)}

    ``label_weight=True`` is eq. 6 (each sample's pairs averaged, 1/|y^(i)|, then the mean over
    samples).

    **How it is computed (eq. 7).** The log-denominator does not depend on the label, and the
    positive term only needs the per-label *sums* of reference embeddings
    S_j = Σ_{m : j ∈ y^(m)} z_k^(m) (the "class representations" of eq. 7):
    Σ_{p∈P_j^(i)} s_p^(i) = z_q^(i) · S_j. So the loss is
    ℓ_ij = LSE_i − z_q^(i)·S_j / (τ |P_j^(i)|), built from one B × (B+Q) similarity matrix and a
    L × D matrix: memory O(B·(B+Q)), independent of the number of labels per sample. The
    authors' code materialises one row per (sample, label) pair instead.

    Args:
        temperature: τ (0.1).
        label_weight: use eq. 6 instead of eq. 5.
        reduction: ``"mean"`` (eq. 5, or eq. 6 with ``label_weight``), ``"sum"`` over pairs, or
            ``"none"``: (B, L) per-pair losses (0 where (i, j) is not an anchor), or (B,) with
            ``label_weight``.
        gather_distributed: gather references from all ranks (see :mod:`mlcl.losses._common`).

    Call: ``loss(embeddings, labels, ref_embeddings=None, ref_labels=None)``. With MoCo, pass the
    queries as ``embeddings`` and ``cat([keys, queue.keys])`` as references: the anchor's own key
    is then one of its positives, as in the authors' code.

    Example:
        >>> loss_fn = MulSupConLoss(temperature=0.1)
        >>> q, y = torch.randn(8, 16), torch.randint(0, 2, (8, 5))
        >>> loss = loss_fn(q, y, torch.randn(8, 16), y)
    """

    def __init__(
        self,
        temperature: float = 0.1,
        label_weight: bool = False,
        reduction: Reduction = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.label_weight = label_weight
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
            t = self.temperature
            z, y = inp.z, inp.y
            zt = z / t
            # log Σ_a exp(s_a/τ): the only B × M tensor (fused, softmax kept for backward)
            lse = similarity_logsumexp(z, inp.k, 1.0 / t, self_offset=inp.self_offset)  # (B,)
            class_sums = inp.yk.T @ inp.k  # (L, D), eq. 7's per-label sums
            pos_sum = zt @ class_sums.T  # (B, L) = Σ_{p ∈ P_j} s_p / τ
            count = inp.yk.sum(0).expand_as(pos_sum)  # |P_j|
            if inp.self_offset is not None:  # remove the anchor's own entry
                pos_sum = pos_sum - y * (zt * z).sum(1, keepdim=True)
                count = count - y
            valid = (y > 0) & (count > 0)
            pair = lse[:, None] - pos_sum / count.clamp(min=1.0)  # (B, L)
            if not self.label_weight:
                return reduce_loss(pair, valid, self.reduction, inp.world)
            pair = torch.where(valid, pair, torch.zeros_like(pair))
            n_valid = valid.sum(1).to(pair.dtype)
            per_sample = pair.sum(1) / n_valid.clamp(min=1.0)
            return reduce_loss(per_sample, n_valid > 0, self.reduction, inp.world)

