"""C-GMVAE and its chapter baselines on the engine: one training run as chapters 01 and 02 use it.

:func:`fit` trains :class:`mlcl.models.cgmvae.CGMVAE` with Table 7's settings for a data set
(Adam, the preset's schedule from :data:`mlcl.models.cgmvae.TRAINING`) and keeps the epoch with
the best validation macro-F1 over the threshold grid (the authors' rule); :func:`fit_baseline`
gives the chapter's two baselines, binary relevance (one logistic regression per label) and
:class:`mlcl.models.cgmvae.MLPBCE` trained exactly like C-GMVAE.

Example:
    >>> from types import SimpleNamespace as NS
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> split = lambda n: NS(X=rng.normal(size=(n, 6)), Y=(rng.random((n, 3)) < .4).astype("float32"))
    >>> data = NS(train=split(40), validation=split(20), test=split(20))
    >>> r = fit(data, "yeast", epochs=2, emb_size=16, device="cpu")
    >>> r.scores_test.shape, len(r.history)
    ((20, 3), 2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mlcl.metrics import evaluate
from mlcl.models.cgmvae import CGMVAE, MLPBCE, TABLE7, TRAINING
from mlcl.models.logistic import BinaryRelevance
from mlcl.training.config import TrainConfig
from mlcl.training.loop import train
from mlcl.training.recipes import standardize
from mlcl.training.runtime import reseed

__all__ = ["CGMVAEFit", "fit", "fit_baseline", "standardize"]


@dataclass
class CGMVAEFit:
    model: nn.Module | None  # CGMVAE / MLPBCE at the selected epoch (None for binary relevance)
    scores_val: np.ndarray  # (N_val, L) probabilities
    scores_test: np.ndarray  # (N_test, L)
    history: list[dict[str, float]]  # per epoch: mean losses, "val" macro-F1, "lr", "step"
    best_epoch: int
    seconds: float
    # with fit(..., epoch_scores=True): (validation, test) probabilities after every epoch, so that
    # other selection rules (last epoch, a fixed epoch) can be scored from the same run
    epoch_scores: list[tuple[np.ndarray, np.ndarray]] | None = None


def _splits(data: Any, standardize_features: bool, train_fraction: float, seed: int):
    Xtr, Ytr = np.asarray(data.train.X, np.float32), np.asarray(data.train.Y, np.float32)
    Xva, Xte = np.asarray(data.validation.X, np.float32), np.asarray(data.test.X, np.float32)
    if standardize_features:
        Xtr, Xva, Xte = standardize(Xtr, Xva, Xte)
    if train_fraction < 1.0:
        keep = max(1, int(round(train_fraction * len(Xtr))))
        idx = np.sort(np.random.default_rng(seed).permutation(len(Xtr))[:keep])
        Xtr, Ytr = Xtr[idx], Ytr[idx]
    return Xtr, Ytr, Xva, np.asarray(data.validation.Y, np.float32), Xte


def _train_selected(model: nn.Module, Xtr: np.ndarray, Ytr: np.ndarray, Xva: np.ndarray, Yva: np.ndarray,
                    Xte: np.ndarray, dataset: str, preset: str, *, seed: int, epochs: int | None, device: str,
                    progress: bool = False, checkpoint: str | None = None,
                    epoch_scores: bool = False) -> CGMVAEFit:
    """C-GMVAE's schedule (Table 7 lr and batch size, the preset's weight decay and scheduler),
    model selection on validation macro-F1 (paper convention, threshold grid)."""
    t0, t7, tr = time.perf_counter(), TABLE7[dataset], TRAINING[preset]
    per_epoch: list[tuple[np.ndarray, np.ndarray]] = []

    def validate(m: nn.Module) -> float:
        sv = _scores(m, Xva)
        if epoch_scores:  # scoring does not draw random numbers: the run is unchanged by it
            per_epoch.append((sv, _scores(m, Xte)))
        return evaluate(Yva, sv, "paper", metrics=["macro_f1"]).values["macro_f1"]

    cfg = TrainConfig(epochs=epochs or tr["epochs"], batch_size=t7["batch_size"], lr=t7["lr"],
                      weight_decay=tr["weight_decay"], scheduler=tr["scheduler"],
                      scheduler_kwargs=dict(tr["scheduler_kwargs"]), seed=seed, device=device, progress=progress,
                      checkpoint=checkpoint)
    res = train(model, (Xtr, Ytr), cfg, validate=validate)
    m = res.model
    return CGMVAEFit(m, _scores(m, Xva), _scores(m, Xte), res.history, res.best_epoch,
                     time.perf_counter() - t0, per_epoch if epoch_scores else None)


def fit(data: Any, dataset: str, *, preset: str = "code", seed: int = 0, epochs: int | None = None,
        device: str = "cpu", train_fraction: float = 1.0, standardize_features: bool = True,
        progress: bool = False, checkpoint: str | None = None, epoch_scores: bool = False,
        **overrides: Any) -> CGMVAEFit:
    """Train C-GMVAE on ``data`` (``.train/.validation/.test`` with ``.X``, ``.Y``) with Table 7's
    settings for ``dataset`` (``overrides`` go to :meth:`CGMVAE.from_preset`); ``train_fraction``
    < 1 trains on a random subset (seeded), as Table 5. ``checkpoint`` makes it resumable;
    ``epoch_scores=True`` keeps every epoch's validation and test scores (``.epoch_scores``)."""
    Xtr, Ytr, Xva, Yva, Xte = _splits(data, standardize_features, train_fraction, seed)
    reseed(seed)
    model = CGMVAE.from_preset(preset, Xtr.shape[1], Ytr.shape[1], dataset=dataset, **overrides)
    return _train_selected(model, Xtr, Ytr, Xva, Yva, Xte, dataset, preset, seed=seed, epochs=epochs,
                           device=device, progress=progress, checkpoint=checkpoint,
                           epoch_scores=epoch_scores)


def fit_baseline(data: Any, dataset: str, method: str, *, seed: int = 0, epochs: int | None = None,
                 device: str = "cpu", train_fraction: float = 1.0, standardize_features: bool = True) -> CGMVAEFit:
    """``method="BR"``: scikit-learn logistic regression per label (C=1, lbfgs); a label that is
    constant in the training subset gets that constant as its score. ``method="MLP-BCE"``:
    :class:`MLPBCE` trained like C-GMVAE's code preset (Table 7 lr, dropout and batch size, same
    schedule, best validation macro-F1)."""
    t0 = time.perf_counter()
    Xtr, Ytr, Xva, Yva, Xte = _splits(data, standardize_features, train_fraction, seed)
    if method == "BR":
        br = BinaryRelevance(C=1.0, max_iter=2000).fit(Xtr, Ytr)
        return CGMVAEFit(None, br.predict_proba(Xva), br.predict_proba(Xte), [], -1, time.perf_counter() - t0)
    if method != "MLP-BCE":
        raise ValueError(f"method must be 'BR' or 'MLP-BCE', got {method!r}")
    reseed(seed)
    model = MLPBCE(Xtr.shape[1], Ytr.shape[1], dropout=TABLE7[dataset]["dropout"])
    return _train_selected(model, Xtr, Ytr, Xva, Yva, Xte, dataset, "code", seed=seed, epochs=epochs, device=device)



def _scores(m: nn.Module, X: np.ndarray) -> np.ndarray:
    """P(label | x) from the model's own ``predict`` (its forward needs y), as numpy on the CPU."""
    return m.predict(torch.from_numpy(np.ascontiguousarray(X))).cpu().numpy()
