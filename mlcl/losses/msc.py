"""ABALONE's balanced multi-label supervised contrastive loss L_MSC (Audibert et al., 2024,
eq. 1–5), as the authors' code computes it.

Notation of ABALONE: z_i the embedding of document i; H the batch and the queue; c_j the L label
prototypes; Δ(z_i) the labels of i; P(j, i) the embeddings carrying label j other than z_i;
g_i the repulsion weights (eq. 1), f the attraction weights (eq. 4), N(i, j) their sum (eq. 5).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._common import (
    ContrastiveInputs,
    LabelValues,
    Reduction,
    check_chunk_size,
    check_embeddings,
    check_reduction,
    check_temperature,
    no_autocast,
    normalize,
    sim_contrast,
)

__all__ = ["MSCLoss"]


class MSCLoss(nn.Module):
    r"""L_MSC: prototypes, β-weighted repulsion and Jaccard-like attraction weights.

    ABALONE eq. 2–5:

    .. math::

        \mathcal L_{MSC} = \frac{1}{|B|}\sum_{i\in B} \ell(z_i),\qquad
        \ell(z_i) = -\frac{1}{|y_i|}\sum_{j\in\Delta(z_i)} \frac{1}{N(i,j)}
        \sum_{z_l\in P(j,i)\cup c_j} f(z_i, z_l)
        \log\frac{\exp(z_i\cdot z_l/\tau)}{\sum_{z_k} g_i(z_k,\beta)\exp(z_i\cdot z_k/\tau)}

    with g_i = 1 for a prototype and β otherwise (eq. 1), f = 1 for the prototype and
    α/|y_i ∪ y_l| for a sample (eq. 4, α = 1 in the paper), N(i, j) = Σ f (eq. 5).

    As in the authors' code (which differs from the printed eq. 3): the denominator holds **all
    L prototypes** (weight 1) plus β × every other sample; every logit is divided by τ. Their
    code has no queue; pass ``ref_embeddings`` / ``ref_labels`` to use one as the paper
    describes (then the references replace the batch and nothing is removed).

    Computation: the attraction weights W_il = α/|y_i ∪ y_l| are formed inside the fused
    similarity pass; the weighted positive sums for every (i, j) are (W ⊙ S) @ Y_ref (a sparse
    product on the CPU), so no B × B × L tensor exists.

    Args:
        temperature: τ (0.1).
        beta: repulsion weight of the samples, > 0 (0.1).
        alpha: attraction weight scale of the samples relative to the prototype, ≥ 0 (1.0).
        reduction: ``"mean"`` over samples with ≥ 1 label, ``"sum"``, ``"none"`` → (B,).
        gather_distributed: gather references from all ranks.
        chunk_size: process the references in column blocks of this size (streaming
            log-sum-exp, recomputed in backward: memory O(B · chunk_size)); ``None`` chooses
            dense or blocks by size.

    Call: ``loss(embeddings, labels, prototypes, ref_embeddings=None, ref_labels=None)`` with
    prototypes (L, D) (normalised inside).

    Example:
        >>> loss_fn = MSCLoss(temperature=0.1, beta=0.1)
        >>> protos = torch.nn.Parameter(torch.randn(5, 16))
        >>> loss = loss_fn(torch.randn(8, 16), torch.randint(0, 2, (8, 5)), protos)
    """

    def __init__(
        self,
        temperature: float = 0.1,
        beta: float = 0.1,
        alpha: float = 1.0,
        reduction: Reduction = "mean",
        gather_distributed: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        if not (float(beta) > 0 and math.isfinite(beta)):
            raise ValueError(f"beta must be a finite number > 0 (ABALONE uses 0.1), got {beta!r}.")
        if not (float(alpha) >= 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number >= 0 (ABALONE uses 1.0), got {alpha!r}.")
        self.beta, self.alpha = float(beta), float(alpha)
        self.reduction = check_reduction(reduction)
        self.gather_distributed = gather_distributed
        self.chunk_size = check_chunk_size(chunk_size)

    # torch.compile (2.13) mis-traces the per-label values path of the fused kernel (wrong
    # values with a queue, tests/test_losses_tiled.py): this loss runs eagerly inside a
    # compiled model
    @torch.compiler.disable
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        prototypes: Tensor,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        check_embeddings(prototypes, "prototypes")
        with no_autocast(embeddings):
            inp = ContrastiveInputs(
                embeddings, labels, ref_embeddings, ref_labels, self.gather_distributed
            )
            if tuple(prototypes.shape) != (inp.yb.shape[1], inp.z.shape[1]):
                raise ValueError(
                    f"prototypes must have shape (num_labels, dim) = "
                    f"{(inp.yb.shape[1], inp.z.shape[1])}, got {tuple(prototypes.shape)}: one "
                    f"prototype per label column, in the embedding space."
                )
            scale, st, alpha = 1.0 / self.temperature, inp.stats.prepare_overlaps(), self.alpha
            c = normalize(prototypes, inp.dtype)
            proto = torch.mm(inp.z * scale, c.t())  # (B, L)
            n_i, n_m = st.n_anchor, st.n_ref[:, None]

            def weights(j0: int, j1: int) -> Tensor:  # f = α / |y_i ∪ y_l|, (j1-j0, B)
                union = n_m[j0:j1] + n_i - st.inter(j0, j1)
                return union.clamp_(min=1.0).reciprocal_().mul_(alpha)

            # one fused pass: Σ_k exp(s_ik/τ), and Σ_l f_il s_il/τ and Σ_l f_il per label (via Y_ref)
            lse_s, pos, wsum = sim_contrast(
                inp.z, inp.k, scale, inp.self_offset, weights, LabelValues(st),
                chunk=self.chunk_size,
            )
            # log[Σ_c exp(z·c_c/τ) + β Σ_k exp(z·z_k/τ)] without concatenating the two parts
            has_refs = inp.k.shape[0] - (inp.self_offset is not None) > 0
            if scale <= 30.0:  # |z·c/τ| ≤ 1/τ: shifted by 1/τ, exp neither over- nor underflows
                denom = proto.add(-scale).exp_().sum(1)
                if has_refs:  # lse_s ≤ 1/τ + log M
                    denom = denom.add_(torch.exp(lse_s - scale), alpha=self.beta)
                lse = denom.log_().add_(scale)
            else:
                lse = torch.logsumexp(proto, dim=1)
                if has_refs:
                    lse = torch.logaddexp(lse, lse_s + math.log(self.beta))
            pair = lse[:, None] - (proto + pos) / (1.0 + wsum)  # (B, L); N(i, j) = 1 + Σ f
            per_sample = (pair * st.yf).sum(1) / n_i.clamp_min(1.0)
            return inp.reduce(per_sample, n_i.clamp_max(1.0), self.reduction)
