"""SupCon with the multi-label positive sets ALL and ANY (MulSupCon paper, eq. 1).

Notation of the MulSupCon paper (Zhang & Wu, AAAI 2024): z_q^(i) is the query embedding of
anchor i, z_k^(j) the key (reference) embeddings, s_j^(i) = z_q^(i)·z_k^(j); A^(i) is the set of
all keys (batch + queue), P^(i) ⊂ A^(i) the positives, y^(i) the label set of sample i.
"""

from __future__ import annotations

from typing import Literal

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

__all__ = ["SupConLoss"]

#: ALL positives: below this many B × M entries the same-label-set mask is formed inside the
#: fused pass; above it rows are grouped by label set (sorting B + M rows costs a fixed ~100
#: operators, the mask B · M work)
GROUP_ELEMENTS = 1 << 18


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
        chunk_size: process the references in column blocks of this size (streaming
            log-sum-exp, recomputed in backward: memory O(B · chunk_size)); ``None`` chooses
            dense or blocks by size.

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
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if positives not in ("any", "all"):
            raise ValueError(f'positives must be "any" or "all", got {positives!r}.')
        self.temperature = check_temperature(temperature)
        self.positives = positives
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
            scale, st = 1.0 / self.temperature, inp.stats
            B, M = inp.z.shape[0], inp.k.shape[0]
            # ALL: small problems fold the same-label-set mask into the fused pass (fewest
            # operations); large ones group rows by label set (no B × M mask at all)
            grouped = self.positives == "all" and B * M >= GROUP_ELEMENTS
            if not grouped:
                st.prepare_overlaps()
            if grouped:
                # P(i) = the references with i's label set: group rows by identical label set
                # and sum each group's keys, Σ_{p∈P(i)} s_ip = z_i · (group sum): no B × M mask
                lse = sim_contrast(inp.z, inp.k, scale, inp.self_offset, chunk=self.chunk_size)
                ga, gr = st.group_ids()
                # each group is summed into the slot of its first anchor (slot B: no anchor has
                # that label set), so the buffers are (B + 1) rows, not one per group id
                first = torch.full((B + M + 1,), B, dtype=ga.dtype, device=ga.device)
                first.scatter_reduce_(0, ga, torch.arange(B, device=ga.device), "amin")
                slot_a, slot_r = first[ga], first[gr]
                sums = inp.k.new_zeros(B + 1, inp.k.shape[1]).index_add_(0, slot_r, inp.k)
                n_pos = torch.bincount(slot_r, minlength=B + 1)[slot_a].to(lse.dtype)
                pos = (inp.z * sums[slot_a]).sum(1) * scale
                if inp.self_offset is not None:  # the anchor itself is in its own group
                    kz = inp.k[inp.self_offset : inp.self_offset + inp.z.shape[0]]
                    pos = pos - (inp.z * kz).sum(1) * scale
                    n_pos = n_pos - 1.0
                n_pos = n_pos * st.n_anchor.clamp_max(1.0)  # a label-less anchor has none
            elif self.positives == "all":
                # y_m = y_i ⇔ 2|y_i ∩ y_m| − |y_m| = |y_i| (the overlap is at most either size);
                # a label-less anchor gets −½ on the right (never an integer): no positive
                n_i = torch.where(st.n_anchor > 0, st.n_anchor, -0.5)
                n_m = st.n_ref[:, None]

                def weights(j0: int, j1: int) -> Tensor:  # [y_m = y_i], reference-major
                    return (st.inter(j0, j1).mul_(2.0).sub_(n_m[j0:j1]) == n_i).to(n_m.dtype)

                lse, pos, n_pos = sim_contrast(
                    inp.z, inp.k, scale, inp.self_offset, weights, chunk=self.chunk_size
                )
            else:
                # P(i) = references sharing a label: the mask is folded into the fused pass
                def weights(j0: int, j1: int) -> Tensor:  # [|y_i ∩ y_m| > 0], reference-major
                    return st.inter(j0, j1).clamp_max_(1.0)

                lse, pos, n_pos = sim_contrast(
                    inp.z, inp.k, scale, inp.self_offset, weights, chunk=self.chunk_size
                )
            loss = lse - pos / n_pos.clamp_min(1.0)
            return inp.reduce(loss, n_pos.clamp_max(1.0), self.reduction)
