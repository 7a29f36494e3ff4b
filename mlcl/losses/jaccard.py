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
    check_chunk_size,
    check_reduction,
    check_temperature,
    no_autocast,
    sim_contrast,
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
        chunk_size: process the references in column blocks of this size (streaming
            log-sum-exp, recomputed in backward: memory O(B · chunk_size)); ``None`` chooses
            dense or blocks by size.

    Example:
        >>> loss = JaccardSupConLoss(0.1)(torch.randn(8, 16), torch.randint(0, 2, (8, 5)))
    """

    def __init__(
        self,
        temperature: float = 0.1,
        reduction: Reduction = "mean",
        gather_distributed: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
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
            st = inp.stats.prepare_overlaps()
            n_i, n_m = st.n_anchor, st.n_ref[:, None]

            def weights(j0: int, j1: int) -> Tensor:  # |y_i ∩ y_j| / |y_i ∪ y_j|, (j1-j0, B)
                inter = st.inter(j0, j1)
                return inter / (n_m[j0:j1] + n_i - inter).clamp_(min=1.0)

            # the weights are folded into the fused similarity pass: Σ_j w_ij s_ij and N(i)
            lse, pos, norm = sim_contrast(
                inp.z, inp.k, 1.0 / self.temperature, inp.self_offset, weights,
                chunk=self.chunk_size,
            )
            valid = norm > 0
            loss = lse - pos / torch.where(valid, norm, 1.0)
            return inp.reduce(loss, valid.to(loss.dtype), self.reduction)
