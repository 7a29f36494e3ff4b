r"""An MLP trained with BCE, focal or asymmetric loss: the supervised baselines as estimators.

All three share one recipe — chapter 00's MLP-BCE (``train_mlp``): the MLP
``n_features → 256 → 512 → 256 → n_labels`` (ReLU, dropout 0.5), Adam (lr 3·10⁻⁴, weight decay
10⁻⁵), batch 64, 60 epochs (the ``full`` profile), keeping the epoch with the lowest validation
loss (MulSupCon's model selection). Focal and asymmetric differ only in the loss:

.. math::

    \mathcal L_{BCE} = -\tfrac{1}{NL}\textstyle\sum_{i,j} y_{ij}\log p_{ij} + (1-y_{ij})\log(1-p_{ij}),
    \quad
    \mathcal L_{FCL}: \text{each term} \times (1-p_t)^\gamma,
    \quad
    \mathcal L_{ASY}: (1-p)^{\gamma^+}\ \text{on positives},\ p_m^{\gamma^-}\log(1-p_m),\ p_m=\max(p-m,0)

(:class:`mlcl.losses.FocalLoss`, :class:`mlcl.losses.AsymmetricLoss`; defaults γ = 2 and
γ⁺ = 0, γ⁻ = 3, m = 0.3, the ABALONE chapter's settings).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mlcl.estimators._base import MultiLabelNetClassifier
from mlcl.estimators._recipes import mlp_recipe

__all__ = ["MLPASLClassifier", "MLPBCEClassifier", "MLPFocalClassifier"]


class _MLPLossClassifier(MultiLabelNetClassifier):
    """Shared recipe; subclasses provide ``_loss()`` (a module ``(logits, y) -> scalar``)."""

    def _loss(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_params(self) -> None:
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        self._loss()  # the loss checks its own parameters (gamma, clip, ...)

    def _fit_network(self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
                     seed: int, device: torch.device) -> nn.Module:
        net, history = mlp_recipe(X, Y, X_val, Y_val, hidden=tuple(self.hidden_layer_sizes),
                                  dropout=float(self.dropout), loss=self._loss(), epochs=int(self.epochs),
                                  batch_size=int(self.batch_size), lr=float(self.lr),
                                  weight_decay=float(self.weight_decay), seed=seed, device=device)
        self.history_ = history
        return net


class MLPBCEClassifier(_MLPLossClassifier):
    """MLP + binary cross-entropy: chapter 00's MLP-BCE baseline (the one MLP-BCE recipe).

    Defaults are the chapter's ``full`` recipe (see :mod:`mlcl.estimators.supervised`).

    Example:
        >>> import numpy as np
        >>> from mlcl.estimators import MLPBCEClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 5)); Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype(int)
        >>> clf = MLPBCEClassifier(hidden_layer_sizes=(16,), epochs=30, random_state=0).fit(X, Y)
        >>> clf.predict(X[:3]).shape, clf.predict_proba(X[:3]).dtype
        ((3, 2), dtype('float32'))
    """

    def __init__(self, hidden_layer_sizes: Sequence[int] = (256, 512, 256), dropout: float = 0.5,
                 epochs: int = 60, batch_size: int = 64, lr: float = 3e-4, weight_decay: float = 1e-5,
                 validation_fraction: float = 0.2, threshold: float | str = "auto",
                 threshold_metric: str = "micro_f1", standardize: bool = True, random_state=None,
                 device: str = "auto") -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.standardize = standardize
        self.random_state = random_state
        self.device = device

    def _loss(self) -> nn.Module:
        return nn.BCEWithLogitsLoss()


class MLPFocalClassifier(_MLPLossClassifier):
    """MLP + focal loss (Lin et al., 2017; ABALONE's L_FCL), the MLP-BCE recipe otherwise.

    Example:
        >>> import numpy as np
        >>> from mlcl.estimators import MLPFocalClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 5)); Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype(int)
        >>> MLPFocalClassifier(gamma=2.0, hidden_layer_sizes=(16,), epochs=5, random_state=0).fit(X, Y).predict(X).shape
        (80, 2)
    """

    def __init__(self, gamma: float = 2.0, hidden_layer_sizes: Sequence[int] = (256, 512, 256),
                 dropout: float = 0.5, epochs: int = 60, batch_size: int = 64, lr: float = 3e-4,
                 weight_decay: float = 1e-5, validation_fraction: float = 0.2,
                 threshold: float | str = "auto", threshold_metric: str = "micro_f1",
                 standardize: bool = True, random_state=None, device: str = "auto") -> None:
        self.gamma = gamma
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.standardize = standardize
        self.random_state = random_state
        self.device = device

    def _loss(self) -> nn.Module:
        from mlcl.losses import FocalLoss

        return FocalLoss(gamma=self.gamma)


class MLPASLClassifier(_MLPLossClassifier):
    """MLP + asymmetric loss (Ridnik et al., 2021; ABALONE's L_ASY), the MLP-BCE recipe otherwise.

    Defaults γ⁺ = 0, γ⁻ = 3, m = 0.3: the ABALONE chapter's (the paper's) settings.

    Example:
        >>> import numpy as np
        >>> from mlcl.estimators import MLPASLClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 5)); Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype(int)
        >>> MLPASLClassifier(hidden_layer_sizes=(16,), epochs=5, random_state=0).fit(X, Y).predict(X).shape
        (80, 2)
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 3.0, clip: float = 0.3,
                 hidden_layer_sizes: Sequence[int] = (256, 512, 256), dropout: float = 0.5,
                 epochs: int = 60, batch_size: int = 64, lr: float = 3e-4, weight_decay: float = 1e-5,
                 validation_fraction: float = 0.2, threshold: float | str = "auto",
                 threshold_metric: str = "micro_f1", standardize: bool = True, random_state=None,
                 device: str = "auto") -> None:
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.clip = clip
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.standardize = standardize
        self.random_state = random_state
        self.device = device

    def _loss(self) -> nn.Module:
        from mlcl.losses import AsymmetricLoss

        return AsymmetricLoss(gamma_pos=self.gamma_pos, gamma_neg=self.gamma_neg, clip=self.clip)
