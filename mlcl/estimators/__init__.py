"""scikit-learn-compatible multi-label estimators for every method of the book, on vector features.

==========================  ===================================  ==========================================
estimator                   method (paper)                       loss (:mod:`mlcl.losses`)
==========================  ===================================  ==========================================
``MLPBCEClassifier``        MLP + BCE (chapter 00 baseline)      ``BCEWithLogitsLoss``
``MLPFocalClassifier``      MLP + focal loss (Lin et al. 2017)   ``FocalLoss``
``MLPASLClassifier``        MLP + asymmetric (Ridnik et al.)     ``AsymmetricLoss``
``CGMVAEClassifier``        C-GMVAE (Bai et al. 2022)            ``FeatureLabelContrastiveLoss`` + KL + BCE
``MulSupConClassifier``     MulSupCon / ALL / ANY (Zhang & Wu)   ``MulSupConLoss`` / ``SupConLoss``
``AbaloneClassifier``       ABALONE L_Base / L_MSC (Audibert)    ``JaccardSupConLoss`` / ``MSCLoss``
``MulConClassifier``        MulCon label-level net (Dao et al.)  BCE + ``LabelLevelContrastiveLoss``
==========================  ===================================  ==========================================

Each has ``fit(X, Y)`` (``Y`` an ``(n_samples, n_labels)`` 0/1 matrix), ``predict_proba(X)``,
``predict(X)`` (threshold chosen on an internal validation split: the honest protocol),
``get_params``/``set_params``, ``random_state`` and ``device``; they work in ``clone``,
``cross_val_score``, ``GridSearchCV`` and pipelines. The shared plumbing is
:class:`mlcl.estimators._base.MultiLabelNetClassifier`; defaults follow each chapter's ``full``
recipe. The book page "Estimators" has the table of defaults and a worked example.

Example:
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from mlcl.estimators import MLPBCEClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(90, 4)); Y = np.c_[X[:, 0] > 0, X[:, 1] + X[:, 2] > 0].astype(int)
    >>> s = cross_val_score(MLPBCEClassifier(hidden_layer_sizes=(8,), epochs=5, random_state=0), X, Y,
    ...                     cv=3, scoring="f1_micro")
    >>> s.shape
    (3,)
"""

from __future__ import annotations

from mlcl.estimators._base import THRESHOLD_METRICS, MultiLabelNetClassifier
from mlcl.estimators.abalone import AbaloneClassifier
from mlcl.estimators.cgmvae import CGMVAEClassifier
from mlcl.estimators.mulcon import MulConClassifier
from mlcl.estimators.mulsupcon import MulSupConClassifier
from mlcl.estimators.supervised import MLPASLClassifier, MLPBCEClassifier, MLPFocalClassifier

__all__ = [
    "THRESHOLD_METRICS",
    "AbaloneClassifier",
    "CGMVAEClassifier",
    "MLPASLClassifier",
    "MLPBCEClassifier",
    "MLPFocalClassifier",
    "MulConClassifier",
    "MulSupConClassifier",
    "MultiLabelNetClassifier",
]
