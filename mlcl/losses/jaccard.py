"""ABALONE's contrastive baseline L_Base: SupCon with Jaccard pair weights (Audibert et al., 2024,
section 3.1).

Notation of ABALONE: z_i the normalised embedding of document i, y_i ∈ {0,1}^L its labels,
I_B the embeddings of the batch, τ the temperature.
"""

from __future__ import annotations

import torch
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

__all__ = ["JaccardSupConLoss"]


class JaccardSupConLoss(nn.Module):
    r"""SupCon with Jaccard-weighted positives (ABALONE's L_Base, section 3.1, unnumbered).

    .. math::

        \mathcal L_{Base} = -\frac{1}{|B|}\sum_{z_i\in I_B} \frac{1}{N(i)}
        \sum_{z_j\in I_B\setminus z_i} \frac{|y_i\cap y_j|}{|y_i\cup y_j|}
        \log\frac{\exp(z_i\cdot z_j/\tau)}{\sum_{z_k\in I_B\setminus z_i}\exp(z_i\cdot z_k/\tau)},
        \qquad N(i) = \sum_{j\in B\setminus i}\frac{|y_i\cap y_j|}{|y_i\cup y_j|}

    The weights sit outside the log; anchors with N(i) = 0 (no label shared with anyone) are not
    counted. Passing ``ref_embeddings`` / ``ref_labels`` gives ABALONE's L_BQueue (the same loss
    with a queue as the reference set).

    Args:
        temperature: τ (0.1).
        reduction: ``"mean"``, ``"sum"``, or ``"none"`` → (B,).
        gather_distributed: gather references from all ranks.

    Example:
        >>> loss = JaccardSupConLoss(0.1)(torch.randn(8, 16), torch.randint(0, 2, (8, 5)))
    """

    def __init__(
        self,
        temperature: float = 0.1,
        reduction: Reduction = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
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
            sim = (inp.z / self.temperature) @ inp.k.T  # (B, M)
            inter = inp.y @ inp.yk.T
            union = inp.y.sum(1)[:, None] + inp.yk.sum(1)[None, :] - inter
            w = inter / union.clamp(min=1.0)
            keep = inp.others()
            if keep is not None:
                w = w * keep
            norm = w.sum(1)
            lse = masked_logsumexp(sim, keep)
            loss = lse - (w * sim).sum(1) / torch.where(norm > 0, norm, torch.ones_like(norm))
            return reduce_loss(loss, norm > 0, self.reduction, inp.world)
