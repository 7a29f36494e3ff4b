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
    Reduction,
    check_embeddings,
    check_reduction,
    check_temperature,
    masked_logsumexp,
    no_autocast,
    normalize,
    reduce_loss,
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

    Computation: the attraction weights form one B × M matrix W_il = α/|y_i ∪ y_l|; the
    weighted positive sums for every (i, j) are (W ⊙ S) @ Y_ref, so no B × B × L tensor exists.

    Args:
        temperature: τ (0.1).
        beta: repulsion weight of the samples, > 0 (0.1).
        alpha: attraction weight scale of the samples relative to the prototype, ≥ 0 (1.0).
        reduction: ``"mean"`` over samples with ≥ 1 label, ``"sum"``, ``"none"`` → (B,).
        gather_distributed: gather references from all ranks.

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
            if tuple(prototypes.shape) != (inp.y.shape[1], inp.z.shape[1]):
                raise ValueError(
                    f"prototypes must have shape (num_labels, dim) = "
                    f"{(inp.y.shape[1], inp.z.shape[1])}, got {tuple(prototypes.shape)}: one "
                    f"prototype per label column, in the embedding space."
                )
            zt = inp.z / self.temperature
            proto = zt @ normalize(prototypes, inp.dtype).T  # (B, L)
            sim = zt @ inp.k.T  # (B, M)
            keep = inp.others()
            # log[Σ_c exp(z·c_c/τ) + β Σ_k exp(z·z_k/τ)] without concatenating the two parts
            lse_p = torch.logsumexp(proto, dim=1)
            lse_s = masked_logsumexp(sim, keep) + math.log(self.beta)
            has_ref = (
                keep.any(1)
                if keep is not None
                else torch.full_like(lse_p, sim.shape[1] > 0, dtype=torch.bool)
            )
            lse = torch.where(has_ref, torch.logaddexp(lse_p, lse_s), lse_p)  # (B,)
            n_i = inp.y.sum(1)
            inter = inp.y @ inp.yk.T
            union = n_i[:, None] + inp.yk.sum(1)[None, :] - inter
            w = self.alpha / union.clamp(min=1.0)  # (B, M)
            if keep is not None:
                w = w * keep
            num = proto + (w * sim) @ inp.yk  # (B, L): Σ_l f_l s_il/τ (prototype + samples)
            norm = 1.0 + w @ inp.yk  # N(i, j)
            pair = lse[:, None] - num / norm  # (B, L)
            per_sample = (pair * inp.y).sum(1) / n_i.clamp(min=1.0)
            return reduce_loss(per_sample, n_i > 0, self.reduction, inp.world)
