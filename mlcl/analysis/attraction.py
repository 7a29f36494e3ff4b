r"""Attraction and repulsion per label inside one batch (ABALONE section 5.2, eq. 9–10).

The gradient of a SupCon-type loss with respect to the similarity :math:`s_{il}` is
:math:`p_{il} - a_{il}`: a softmax mass :math:`p_{il}` that pushes the pair apart (repulsion)
and an attraction weight :math:`a_{il}` that pulls it together. Summing them per label shows
which labels the loss pulls together and which ones everybody else is pushed away from — the
imbalance that L_MSC's β and prototypes correct.

Example:
    >>> import torch
    >>> z = torch.randn(16, 8); y = (torch.rand(16, 4) < 0.4).float()
    >>> out = attraction_repulsion(z, y, kind="jaccard")
    >>> out["attraction"].shape, out["repulsion"].shape
    ((4,), (4,))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["attraction_repulsion", "averaged_attraction_repulsion"]


@torch.no_grad()
def attraction_repulsion(
    z: Tensor, y: Tensor, *, kind: str, prototypes: Tensor | None = None, temperature: float = 0.1,
    beta: float = 0.1, alpha: float = 1.0,
) -> dict[str, np.ndarray]:
    r"""Per-label attraction and repulsion in one batch, under the loss's own weights.

    ``kind="jaccard"`` (L_Base / L_BQProto, :class:`mlcl.losses.JaccardSupConLoss`; prototypes
    are references with one label each) or ``"msc"`` (:class:`mlcl.losses.MSCLoss`). Anchor i's
    softmax runs over the other batch members (and the L prototypes), with
    :math:`\log\sum_k g_k e^{z_i\cdot z_k/\tau}` where g = 1 for L_Base and a prototype and β for
    an L_MSC sample. Returns (each (L,)):

    * ``attraction``: Σ over anchors i with label c of the attraction weight the loss puts on
      pulling i toward references *through* c (the positive weights of the gradient, split over
      the labels i and l share; for L_MSC the weight of the (i, c) term; the prototype's share
      included);
    * ``repulsion``: Σ over anchors i **without** c of the softmax mass p_ik on references k that
      carry c (and on prototype c): how hard the members of c push everyone else away;
    * ``s_att`` / ``s_rep``: Graf et al.'s geometric terms (ABALONE eq. 9–10), averaged over the
      anchors with c: −mean cos to the other members of c, mean cos to the non-members;
    * ``count``: anchors carrying each label.
    """
    if kind not in ("jaccard", "msc"):
        raise ValueError(f"kind must be 'jaccard' or 'msc', got {kind!r}")
    if kind == "msc" and prototypes is None:
        raise ValueError("kind='msc' needs prototypes (L_MSC always has them)")
    zf = F.normalize(z.float(), dim=1)
    yf = (y != 0).float()
    B, L = yf.shape
    dev = zf.device
    keep = ~torch.eye(B, dtype=torch.bool, device=dev)  # an anchor is not its own reference
    sim = (zf @ zf.T) / temperature
    log_g = 0.0 if kind == "jaccard" else math.log(beta)
    parts = [(sim + log_g).masked_fill(~keep, float("-inf"))]
    if prototypes is not None:
        psim = (zf @ F.normalize(prototypes.float(), dim=1).T) / temperature  # (B, L)
        parts.append(psim)
    lse = torch.logsumexp(torch.cat(parts, 1), 1)
    p = torch.exp(sim + log_g - lse[:, None]) * keep  # softmax mass on samples (B, B)
    n_i = yf.sum(1).clamp(min=1.0)
    inter = yf @ yf.T
    union = yf.sum(1)[:, None] + yf.sum(1)[None, :] - inter
    rep = ((p @ yf) * (1 - yf)).sum(0)  # (L,)
    if prototypes is not None:
        rep = rep + (torch.exp(psim - lse[:, None]) * (1 - yf)).sum(0)  # prototypes: weight 1
    if kind == "jaccard":
        w = (inter / union.clamp(min=1.0)) * keep
        norm = w.sum(1, keepdim=True)
        if prototypes is not None:
            norm = norm + 1.0  # Σ_c y_ic/|y_i| = 1
        a = w / norm.clamp(min=1e-12)  # (B, B) attraction weight per pair
        share = a / inter.clamp(min=1.0)  # split over the shared labels
        att = ((share @ yf) * yf).sum(0)
        if prototypes is not None:
            att = att + (yf / n_i[:, None] / norm.clamp(min=1e-12)).sum(0)
    else:
        att = (yf / n_i[:, None]).sum(0)  # each (i, c) term carries weight 1/|y_i|
    cos = zf @ zf.T
    s_att = torch.full((L,), float("nan"), device=dev)
    s_rep = torch.full((L,), float("nan"), device=dev)
    for c in range(L):
        m = yf[:, c] > 0
        if m.sum() >= 2 and (~m).any():
            cm = cos[m][:, m]
            k = int(m.sum())
            s_att[c] = -((cm.sum(1) - cm.diagonal()) / (k - 1)).mean()
            s_rep[c] = cos[m][:, ~m].mean()
    return {k: v.cpu().numpy() for k, v in
            {"attraction": att, "repulsion": rep, "s_att": s_att, "s_rep": s_rep, "count": yf.sum(0)}.items()}


@torch.no_grad()
def averaged_attraction_repulsion(
    embed: Callable[[Tensor], Tensor], X: Tensor, Y: np.ndarray | Tensor, batches: Sequence[Tensor], *,
    kind: str, prototypes: Tensor | None = None, temperature: float = 0.1, beta: float = 0.1,
) -> dict[str, np.ndarray]:
    """:func:`attraction_repulsion` summed over fixed ``batches`` (index tensors into ``X`` / ``Y``)
    of the embeddings ``embed(X[idx])``: ``attraction``, ``repulsion``, ``count`` are sums;
    ``s_att`` / ``s_rep`` are averaged over the batches where they are defined (NaN if none).
    Fixed batches make the values comparable across epochs and losses."""
    acc: dict[str, np.ndarray] | None = None
    Yt = torch.as_tensor(np.asarray(Y))
    protos = None if prototypes is None else prototypes.detach().float().cpu()
    for idx in batches:
        z = embed(X[idx]).float().cpu()
        r = attraction_repulsion(z, Yt[idx.cpu()], kind=kind, prototypes=protos,
                                 temperature=temperature, beta=beta)
        r["n_att"] = np.isfinite(r["s_att"]).astype(float)
        for k in ("s_att", "s_rep"):
            r[k] = np.nan_to_num(r[k])
        acc = r if acc is None else {k: acc[k] + r[k] for k in r}
    if acc is None:
        raise ValueError("batches is empty: pass at least one index tensor")
    out = {k: acc[k] for k in ("attraction", "repulsion", "count")}
    for k in ("s_att", "s_rep"):
        out[k] = np.where(acc["n_att"] > 0, acc[k] / np.maximum(acc["n_att"], 1), np.nan)
    return out
