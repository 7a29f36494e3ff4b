"""Retrieval with label-level embeddings (MulCon Appendix A.4, Tables 6 and 7).

``P@k`` over the active label-level embeddings, retrieval *within* one label (which the label
identity cannot answer), and each label's nearest labels by the cosine of their means.

Example:
    >>> import numpy as np
    >>> emb = np.eye(4)[[0, 0, 1, 1]]; lab = np.array([0, 0, 1, 1])
    >>> retrieval_at_k(emb, lab, ks=(1,))["P@1"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["nearest_labels", "retrieval_at_k", "within_label_retrieval"]


def retrieval_at_k(emb: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (3, 5, 10, 15, 20)) -> dict[str, float]:
    """MulCon Appendix A.4 / Table 6: ``emb (N, d)`` are the active label-level embeddings,
    ``labels (N,)`` their label. For each embedding, the others ranked by cosine similarity;
    ``P@k = TP@k / k`` and ``R@k = TP@k / min(k, #relevant)`` (the paper's definition, which equals
    P@k whenever a label has ≥ k other embeddings)."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    order = np.argsort(-sim, axis=1, kind="stable")
    n_rel = same.sum(1)
    out = {}
    for k in ks:
        tp = np.take_along_axis(same, order[:, :k], axis=1).sum(1)
        out[f"P@{k}"] = float(np.mean(tp / k))
        out[f"R@{k}"] = float(np.mean(tp / np.maximum(np.minimum(k, n_rel), 1)))
    return out


def within_label_retrieval(emb: np.ndarray, Y: np.ndarray, ks: Sequence[int] = (3, 5, 10, 20)) -> dict[str, float]:
    """Retrieval **within a label**: for every present pair (i, j), rank the embeddings ``emb[k, j]``
    of all other images k under the same label j (present or not) by cosine similarity; relevant =
    label j present in image k. ``P@k`` averaged over the present pairs. Unlike
    :func:`retrieval_at_k`, the label identity carried by the label query cannot answer it."""
    N, L, _ = emb.shape
    Y = np.asarray(Y).astype(bool)
    e = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    out = {f"label_P@{k}": [] for k in ks}
    for j in range(L):
        q = np.flatnonzero(Y[:, j])
        if len(q) < 2:
            continue
        sim = e[q, j] @ e[:, j].T  # (|q|, N)
        sim[np.arange(len(q)), q] = -np.inf
        order = np.argsort(-sim, axis=1, kind="stable")
        for k in ks:
            out[f"label_P@{k}"].extend(Y[order[:, :k], j].mean(1))
    return {k: float(np.mean(v)) for k, v in out.items()}


def nearest_labels(emb: np.ndarray, labels: np.ndarray, num_labels: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """MulCon Table 7: each label's ``k`` nearest labels by cosine between label means of the
    active label-level embeddings. Returns ``(nearest (L, k), cosine matrix (L, L))``."""
    mus = np.stack([emb[labels == j].mean(0) if (labels == j).any() else np.zeros(emb.shape[1])
                    for j in range(num_labels)])
    mn = mus / np.maximum(np.linalg.norm(mus, axis=1, keepdims=True), 1e-12)
    cos = mn @ mn.T
    c2 = cos.copy()
    np.fill_diagonal(c2, -np.inf)
    return np.argsort(-c2, axis=1, kind="stable")[:, :k], cos
