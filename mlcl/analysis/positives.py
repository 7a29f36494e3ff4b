"""The lack of positives (ABALONE section 3): how often a label's anchor finds no other document
with that label among its references, in shuffled batches and with a FIFO queue of past samples.

Example:
    >>> import numpy as np
    >>> Y = np.eye(4, dtype=bool)[np.arange(64) % 4]
    >>> float(no_positive_rates(Y, batch_size=64)["anchor_rate"])
    0.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["no_positive_rates"]


def no_positive_rates(
    Y: np.ndarray, batch_size: int = 32, queue_size: int = 0, epochs: int = 1, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Measured lack of positives under shuffled batches (and a FIFO queue of past samples).

    Returns, per label c, ``pair_rate[c]`` = fraction of (anchor carrying c) occurrences whose
    references (the other batch members, plus the ``queue_size`` previous samples) hold no other
    document with c; and ``anchor_rate`` = fraction of anchors sharing no label with any reference
    (L_Base ignores those anchors). Prototypes make both rates 0 by construction.
    """
    Y = np.asarray(Y).astype(bool)
    N, L = Y.shape
    rng = np.random.default_rng(seed)
    miss, occ = np.zeros(L), np.zeros(L)
    anchors_without, anchors = 0, 0
    history: list[np.ndarray] = []
    for _ in range(epochs):
        perm = rng.permutation(N)
        for s in range(0, N - batch_size + 1, batch_size):
            yb = Y[perm[s : s + batch_size]]
            cnt = yb.sum(0).astype(int)
            if queue_size:
                qy = np.concatenate(history)[-queue_size:] if history else np.zeros((0, L), bool)
                cnt = cnt + qy.sum(0)
            others = cnt[None, :] - yb  # count of c among the references of each anchor
            has = yb & (others > 0)
            occ += yb.sum(0)
            miss += (yb & ~has).sum(0)
            shared = (yb & (others > 0)).any(1)
            anchors += int((yb.sum(1) > 0).sum())
            anchors_without += int(((yb.sum(1) > 0) & ~shared).sum())
            if queue_size:
                history.append(yb)
                if sum(len(h) for h in history) > queue_size + batch_size:
                    history.pop(0)
    return {"pair_rate": np.where(occ > 0, miss / np.maximum(occ, 1), np.nan), "occurrences": occ,
            "anchor_rate": np.array(anchors_without / max(1, anchors))}
