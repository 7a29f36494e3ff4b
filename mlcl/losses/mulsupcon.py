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
    check_chunk_size,
    check_reduction,
    check_temperature,
    no_autocast,
    sim_contrast,
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
        chunk_size: process the references in column blocks of this size (streaming
            log-sum-exp, recomputed in backward: memory O(B · chunk_size)); ``None`` chooses
            dense or blocks by size.

    Call: ``loss(embeddings, labels, ref_embeddings=None, ref_labels=None)``. With MoCo, pass the
    queries as ``embeddings`` and ``cat([keys, queue.keys])`` as references: the anchor's own key
    is then one of its positives, as in the authors' code. ``ref_labels`` may also be the
    :class:`~mlcl.losses.ReferenceLabels` of ``LabelledQueue.references(k, y, stats=True)``:
    the queue's per-label key sums then replace reading its (Q, L) labels (same loss and
    gradients to float32 round-off; the queue's keys get no gradient, as they are detached).

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
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.label_weight = label_weight
        self.reduction = check_reduction(reduction)
        self.gather_distributed = gather_distributed
        self.chunk_size = check_chunk_size(chunk_size)

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
            scale, z = 1.0 / self.temperature, inp.z
            # log Σ_a exp(s_a/τ): the only B × M pass (fused, or tiled for large M)
            lse = sim_contrast(z, inp.k, scale, inp.self_offset, chunk=self.chunk_size)  # (B,)
            sums, count = inp.label_sums()  # eq. 7's per-label sums S_j, |P_j|
            yf = inp.y  # (B, L) float
            dots = torch.mm(z, sums.t())  # (B, L) = τ Σ_{p ∈ P_j} s_p / τ
            if inp.self_offset is not None:  # remove the anchor's own entry
                own = inp.k[inp.self_offset : inp.self_offset + z.shape[0]]
                dots = dots - yf * (z * own).sum(1, keepdim=True)
                count = count - yf
            valid = yf * count.clamp_max(1.0)  # 0/1: j ∈ y_i and P_j non-empty
            # ℓ_ij = LSE_i − z·S_j / (τ |P_j|)
            pair = torch.addcmul(lse[:, None], dots, count.clamp_min(1.0).reciprocal_(), value=-scale)
            if not self.label_weight:
                return inp.reduce(pair, valid, self.reduction)
            n_valid = valid.sum(1)
            per_sample = (pair * valid).sum(1) / n_valid.clamp_min(1.0)
            return inp.reduce(per_sample, n_valid.clamp_max(1.0), self.reduction)
