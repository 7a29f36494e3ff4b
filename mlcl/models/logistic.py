r"""Binary relevance: one independent logistic regression per label (scikit-learn).

The classical multi-label baseline (chapter 00, C-GMVAE's "BR" row) and the linear probe on
frozen embeddings (MulCon's per-label probe): label j's model estimates
:math:`p(y_j = 1 \mid x) = \sigma(w_j^\top x + b_j)`, fitted by L2-regularised maximum likelihood
(inverse strength ``C``), independently of the other labels.

With 3-d inputs ``(N, L, d)`` (label-level embeddings) label j's model sees only its own slice
``x[:, j]``, which is what MulCon's per-label classifier sees. A label that is constant in the
training set gets that constant as its score (logistic regression needs two classes).

Example:
    >>> import numpy as np
    >>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2))]; Y = np.c_[[0] * 5 + [1] * 5, [1] * 10]
    >>> P = BinaryRelevance(C=10.0).fit(X, Y).predict_proba(X)
    >>> bool(P[-1, 0] > 0.5 > P[0, 0]), P[:, 1].tolist() == [1.0] * 10
    (True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BinaryRelevance"]


class BinaryRelevance:
    """``L`` logistic regressions; ``fit(X, Y)`` then ``predict_proba(X) -> (N, L)``."""

    def __init__(self, C: float = 1.0, max_iter: int = 2000) -> None:
        self.C, self.max_iter = float(C), int(max_iter)
        self.models_: list[Any] = []

    @staticmethod
    def _column(X: np.ndarray, j: int) -> np.ndarray:
        return X[:, j] if X.ndim == 3 else X

    def fit(self, X: Any, Y: Any) -> BinaryRelevance:
        from sklearn.linear_model import LogisticRegression

        X, Y = np.asarray(X), np.asarray(Y).astype(int)
        if X.ndim not in (2, 3) or Y.ndim != 2 or len(X) != len(Y):
            raise ValueError(f"X must be (N, D) or (N, L, d) and Y (N, L) on the same rows, got "
                             f"{X.shape} and {Y.shape}")
        if X.ndim == 3 and X.shape[1] != Y.shape[1]:
            raise ValueError(f"label-level X has {X.shape[1]} labels but Y has {Y.shape[1]}")
        self.models_ = []
        for j in range(Y.shape[1]):
            col = Y[:, j]
            if col.min() == col.max():  # one class only: the constant is the best estimate
                self.models_.append(float(col[0]))
            else:
                self.models_.append(LogisticRegression(C=self.C, max_iter=self.max_iter)
                                    .fit(self._column(X, j), col))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if not self.models_:
            raise RuntimeError("call fit(X, Y) before predict_proba")
        X = np.asarray(X)
        out = np.empty((len(X), len(self.models_)), dtype=np.float64)
        for j, m in enumerate(self.models_):
            out[:, j] = m if isinstance(m, float) else m.predict_proba(self._column(X, j))[:, 1]
        return out
