"""Evaluation helpers of the ABALONE chapter: per-label F1, head / medium / tail label buckets,
scores → result records, and a validation split that leaves no label unseen.

Example:
    >>> import numpy as np
    >>> per_label_f1(np.array([[1, 0], [0, 1]]), np.array([[1, 0], [1, 0]])).tolist()
    [0.6666666666666666, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["label_buckets", "per_label_f1", "scores_to_records", "stratified_validation"]


def per_label_f1(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """F1 of every label column (0 when a label has no positive and no prediction, as sklearn)."""
    Y, P = np.asarray(Y).astype(bool), np.asarray(P).astype(bool)
    tp = (Y & P).sum(0)
    den = 2 * tp + (~Y & P).sum(0) + (Y & ~P).sum(0)
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def label_buckets(Y_train: np.ndarray, n_buckets: int = 3, names: Sequence[str] = ("head", "medium", "tail")) -> dict[str, np.ndarray]:
    """Split the labels into equal-count buckets by training frequency (most frequent first)."""
    counts = np.asarray(Y_train).astype(np.int64).sum(0)  # uint8 sums are unsigned: negate safely
    order = np.argsort(-counts, kind="stable")
    parts = np.array_split(order, n_buckets)
    return {names[i]: np.sort(p) for i, p in enumerate(parts)}


def scores_to_records(
    Y_test: np.ndarray, scores: np.ndarray, buckets: Mapping[str, np.ndarray], *, dataset: str, method: str,
    seed: int, protocol: str = "honest", threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """micro-F1, macro-F1, Hamming loss and macro-F1 per label bucket at ``threshold``."""
    from mlcl.metrics import hamming_loss, macro_f1, micro_f1

    P = np.asarray(scores) >= threshold
    f1 = per_label_f1(Y_test, P)
    vals = {
        "micro_f1": micro_f1(Y_test, scores, threshold),
        "macro_f1": macro_f1(Y_test, scores, threshold),
        "hamming_loss": hamming_loss(Y_test, scores, threshold),
    }
    for name, idx in buckets.items():
        vals[f"macro_f1_{name}"] = float(f1[idx].mean())
    return [{"dataset": dataset, "method": method, "protocol": protocol, "metric": k, "seed": int(seed),
             "value": float(v)} for k, v in vals.items()]


def stratified_validation(Y: np.ndarray, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a seeded random ``fraction`` for validation, then, for every label
    with ≥ 2 training documents and none in validation, one of its documents is moved there
    (so per-label selection on validation sees every label that can be seen)."""
    Y = np.asarray(Y).astype(bool)
    n = len(Y)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    is_val = np.zeros(n, bool)
    is_val[perm[: int(round(fraction * n))]] = True
    for c in np.argsort(Y.sum(0), kind="stable"):
        docs = np.flatnonzero(Y[:, c])
        if len(docs) >= 2 and not is_val[docs].any():
            is_val[rng.choice(docs)] = True
    for c in range(Y.shape[1]):  # never leave a label without a training document
        docs = np.flatnonzero(Y[:, c])
        if len(docs) and is_val[docs].all():
            is_val[docs[0]] = False
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
