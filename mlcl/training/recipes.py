r"""Supervised recipes shared by every chapter: standardisation and the one MLP recipe.

:func:`fit_mlp` is chapter 00's MLP-BCE baseline (``train_mlp`` there), with any loss: the MLP
``n_features → 256 → 512 → 256 → n_labels`` (ReLU, dropout 0.5), Adam (lr 3·10⁻⁴, weight decay
10⁻⁵), batch 64, keeping the epoch with the lowest validation loss. With
``loss=FocalLoss(...)`` or ``AsymmetricLoss(...)`` (:mod:`mlcl.losses`) it is the focal / ASL
baseline; the default is BCE averaged over samples and labels,

.. math:: \mathcal L = -\tfrac{1}{NL}\textstyle\sum_{i,j} y_{ij}\log\sigma(s_{ij}) + (1-y_{ij})\log(1-\sigma(s_{ij})).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 5)).astype("float32"); Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype("float32")
    >>> fit = fit_mlp(X[:60], Y[:60], X[60:], Y[60:], hidden=(16,), epochs=3, device="cpu")
    >>> fit.net(torch.as_tensor(X[:2])).shape, len(fit.history)
    (torch.Size([2, 2]), 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcl.models.backbones import MLP
from mlcl.training.config import TrainConfig
from mlcl.training.loop import train
from mlcl.training.runtime import resolve_device

__all__ = ["MLPFit", "Objective", "fit_mlp", "standardize"]


def standardize(train: Any, *others: Any, eps: float = 1e-8) -> list[np.ndarray]:
    """Fit a z-score on ``train`` (features with zero variance keep scale 1) and apply it to
    ``train`` and every array of ``others``; float32 arrays in the same order (computed in float64).

    Example:
        >>> a, b = standardize(np.array([[0.0, 1.0], [2.0, 1.0]]), np.array([[1.0, 3.0]]))
        >>> a.tolist(), b.tolist()
        ([[-1.0, 0.0], [1.0, 0.0]], [[0.0, 2.0]])
    """
    train = np.asarray(train, dtype=np.float64)
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd < eps, 1.0, sd)
    return [((np.asarray(a, dtype=np.float64) - mu) / sd).astype(np.float32) for a in (train, *others)]


class Objective(nn.Module):
    """``net`` + a loss ``(logits, y) -> scalar`` under the engine's contract ``model(x, y) ->
    {"loss": ...}`` (logits in float32; a dict ``x`` of token tensors is passed as keywords);
    ``net`` is what is kept after training."""

    def __init__(self, net: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.net, self.loss = net, loss

    def forward(self, x: Tensor | Mapping[str, Tensor], y: Tensor) -> dict[str, Tensor]:
        return {"loss": self.loss((self.net(**x) if isinstance(x, Mapping) else self.net(x)).float(), y)}


@dataclass
class MLPFit:
    net: nn.Module  # the MLP at the epoch with the lowest validation loss, eval mode
    history: list[dict[str, float]]  # per epoch: "loss" (train), "val" (−validation loss), "lr"
    best_epoch: int
    seconds: float


def fit_mlp(X: Any, Y: Any, X_val: Any, Y_val: Any, *, hidden: Sequence[int] = (256, 512, 256),
            dropout: float = 0.5, loss: nn.Module | None = None, epochs: int = 60, batch_size: int = 64,
            lr: float = 3e-4, weight_decay: float = 1e-5, seed: int = 0, device: str | torch.device = "auto",
            checkpoint: str | None = None) -> MLPFit:
    """Chapter 00's MLP-BCE recipe (any ``loss``; BCE when None), on the engine (see module doc)."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    net = MLP(np.shape(X)[1], list(hidden), np.shape(Y)[1], dropout=dropout)
    obj = Objective(net, loss if loss is not None else nn.BCEWithLogitsLoss()).to(dev)
    Xv, Yv = (torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev) for a in (X_val, Y_val))

    def neg_val_loss(m: nn.Module) -> float:  # sample-weighted mean over chunks
        return -float(sum(m.loss(m.net(x).float(), y) * len(x) for x, y in zip(Xv.split(4096), Yv.split(4096)))
                      / len(Xv))

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                      device=str(dev), progress=False, checkpoint=checkpoint)
    res = train(obj, (X, Y), cfg, validate=neg_val_loss)
    return MLPFit(net=res.model.net.eval(), history=res.history, best_epoch=res.best_epoch, seconds=res.seconds)
