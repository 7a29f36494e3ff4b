r"""MulSupCon (Zhang & Wu, AAAI 2024) and its ALL / ANY baselines as an estimator.

Stage 1 pre-trains an MLP encoder with MoCo and a labelled queue (:class:`mlcl.models.mulsupcon.
MulSupConModel`): for an anchor i and each of its labels j, the positives are the keys carrying
label j,

.. math::

    \mathcal L_i = -\frac{1}{|y_i|}\sum_{j\in y_i}\frac{1}{|P_j|}\sum_{p\in P_j}
    \log\frac{\exp(z_i\cdot z_p/\tau)}{\sum_{a}\exp(z_i\cdot z_a/\tau)}

(:class:`mlcl.losses.MulSupConLoss`); ``loss="all"`` / ``"any"`` use SupCon with the keys sharing
all / any label as positives (:class:`mlcl.losses.SupConLoss`). Stage 2 drops the projection
head and trains ``Linear(256, L)`` with BCE: ``mode="finetune"`` (encoder at a 10× smaller
learning rate) or ``mode="probe"`` (encoder frozen).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mlcl.estimators._base import MultiLabelNetClassifier
from mlcl.estimators._recipes import mulsupcon_recipe

__all__ = ["MulSupConClassifier"]


class MulSupConClassifier(MultiLabelNetClassifier):
    """MulSupCon / ALL / ANY pre-training, then fine-tuning or a linear probe.

    Defaults are chapter 02's ``full`` recipe (the authors' yeast settings, pre-training
    compressed to 1,500 steps): encoder 256-512-256 (dropout 0.2), queue 256, τ = 0.1, feature
    masking (p = 0.5) for the two views, pre-training Adam 4·10⁻⁴ with cosine warm restarts, batch
    64; fine-tuning 30 epochs × 50 steps of batch 32, lr 4·10⁻⁴ (encoder × 0.1), plateau schedule,
    the epoch with the lowest validation BCE. ``mode="probe"`` uses the probing settings (batch 64,
    lr 10⁻², encoder frozen) unless ``finetune_lr`` / ``finetune_batch_size`` are given.

    Example:
        >>> import numpy as np
        >>> from mlcl.estimators import MulSupConClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 5)); Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype(int)
        >>> clf = MulSupConClassifier(loss="any", mode="probe", hidden_layer_sizes=(16,), queue_size=32,
        ...                           pretrain_steps=30, finetune_epochs=2, finetune_iters_per_epoch=5,
        ...                           random_state=0).fit(X, Y)
        >>> clf.predict(X[:2]).shape
        (2, 2)
    """

    def __init__(self, loss: str = "mulsupcon", mode: str = "finetune",
                 hidden_layer_sizes: Sequence[int] = (256, 512, 256), dropout: float = 0.2,
                 queue_size: int = 256, temperature: float = 0.1, pretrain_steps: int = 1500,
                 pretrain_batch_size: int = 64, pretrain_lr: float = 4e-4, finetune_epochs: int = 30,
                 finetune_iters_per_epoch: int = 50, finetune_batch_size: int | None = None,
                 finetune_lr: float | None = None, backbone_lr_mult: float = 0.1,
                 validation_fraction: float = 0.2, threshold: float | str = "auto",
                 threshold_metric: str = "micro_f1", standardize: bool = True, random_state=None,
                 device: str = "auto") -> None:
        self.loss = loss
        self.mode = mode
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.queue_size = queue_size
        self.temperature = temperature
        self.pretrain_steps = pretrain_steps
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_lr = pretrain_lr
        self.finetune_epochs = finetune_epochs
        self.finetune_iters_per_epoch = finetune_iters_per_epoch
        self.finetune_batch_size = finetune_batch_size
        self.finetune_lr = finetune_lr
        self.backbone_lr_mult = backbone_lr_mult
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.standardize = standardize
        self.random_state = random_state
        self.device = device

    def _check_params(self) -> None:
        if self.loss not in ("mulsupcon", "all", "any"):
            raise ValueError(f"loss must be 'mulsupcon', 'all' or 'any', got {self.loss!r}")
        if self.mode not in ("finetune", "probe"):
            raise ValueError(f"mode must be 'finetune' (train encoder + linear layer) or 'probe' (frozen "
                             f"encoder), got {self.mode!r}")
        for name in ("pretrain_steps", "pretrain_batch_size", "finetune_epochs", "finetune_iters_per_epoch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def _fit_network(self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
                     seed: int, device: torch.device) -> nn.Module:
        probe = self.mode == "probe"
        batch = self.finetune_batch_size if self.finetune_batch_size is not None else (64 if probe else 32)
        lr = self.finetune_lr if self.finetune_lr is not None else (1e-2 if probe else 4e-4)
        model, self.history_ = mulsupcon_recipe(
            X, Y, X_val, Y_val, loss=self.loss, hidden=tuple(self.hidden_layer_sizes), dropout=float(self.dropout),
            queue_size=int(self.queue_size), temperature=float(self.temperature),
            pretrain_steps=int(self.pretrain_steps), pretrain_batch_size=int(self.pretrain_batch_size),
            pretrain_lr=float(self.pretrain_lr), mode=self.mode, epochs=int(self.finetune_epochs),
            iters_per_epoch=int(self.finetune_iters_per_epoch), batch_size=int(batch), lr=float(lr),
            backbone_lr_mult=float(self.backbone_lr_mult), seed=seed, device=device)
        return model
