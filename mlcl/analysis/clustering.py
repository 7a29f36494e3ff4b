"""Clustering quality of a representation: silhouette and Davies–Bouldin with ABALONE's protocol
(section 5.3, Appendix D), each distinct label combination being a class.

Example:
    >>> import numpy as np
    >>> H = np.r_[np.eye(3)[[0] * 5], np.eye(3)[[1] * 5]] + 0.01
    >>> Y = np.r_[[[1, 0]] * 5, [[0, 1]] * 5]
    >>> clustering_scores(H, Y)["silhouette"] > 0.9
    True
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["clustering_scores"]


def clustering_scores(
    H: np.ndarray, Y: np.ndarray, keep_fraction: float = 0.5, max_samples: int = 10_000, seed: int = 0,
) -> dict[str, float]:
    """Silhouette and Davies–Bouldin with ABALONE's protocol (section 5.3, Appendix D).

    Each distinct label combination is a class; the combinations are ranked by frequency and the
    most frequent ``keep_fraction`` of them (at least 2) are kept, with their documents. At most
    ``max_samples`` documents (ABALONE: 1e4) are used. Embeddings are L2-normalised and compared
    with the Euclidean distance (equivalently, cosine). A class of one document has silhouette
    0 (scikit-learn's convention).
    """
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    Y = np.asarray(Y).astype(np.uint8)
    keys = np.array([r.tobytes() for r in np.packbits(Y, axis=1)])
    uniq, first, inv, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))  # by frequency, ties by first appearance
    k = max(2, int(math.ceil(keep_fraction * len(uniq))))
    kept_classes = order[:k]
    rank = np.full(len(uniq), -1)
    rank[kept_classes] = np.arange(len(kept_classes))
    lab = rank[inv]
    sel = np.flatnonzero(lab >= 0)
    if len(sel) > max_samples:
        sel = np.sort(np.random.default_rng(seed).choice(sel, max_samples, replace=False))
    X = np.asarray(H, dtype=np.float64)[sel]
    X /= np.linalg.norm(X, axis=1, keepdims=True).clip(min=1e-12)
    labels = lab[sel]
    if len(np.unique(labels)) < 2:
        return {"silhouette": float("nan"), "davies_bouldin": float("nan"), "n_docs": len(sel), "n_classes": 1}
    return {
        "silhouette": float(silhouette_score(X, labels, metric="euclidean")),
        "davies_bouldin": float(davies_bouldin_score(X, labels)),
        "n_docs": int(len(sel)),
        "n_classes": int(len(np.unique(labels))),
        "docs_fraction": float(len(np.flatnonzero(lab >= 0)) / len(lab)),
    }
