r"""The scikit-learn plumbing every estimator of :mod:`mlcl.estimators` shares.

A subclass writes only what is specific to its method: an ``__init__`` that stores its
parameters (scikit-learn style: no logic, every argument an attribute of the same name) and
``_fit_network(X_train, Y_train, X_val, Y_val, seed, device) -> nn.Module``, which trains through
the method's recipe and returns a network mapping a float32 batch to logits (or a dict holding
``"logits"``). Everything else is here, once:

* **validation** of ``X`` (2-D, finite, numeric; ``n_features_in_`` and ``feature_names_in_``)
  and ``Y`` (a 2-D 0/1 indicator matrix ``(N, L)``), with errors that name the fix;
* the **internal validation split** (``validation_fraction`` of the rows, drawn from
  ``random_state``): recipes select their epoch on it and the decision threshold is chosen on it
  — the book's *honest* protocol, where nothing is tuned on the data being scored;
* **standardisation** (mean / std of the internal training rows; a constant feature keeps
  scale 1), applied again in ``predict_proba``;
* **labels constant in the training data** score that constant (a network cannot learn a
  decision for a label it never saw vary; :class:`mlcl.models.logistic.BinaryRelevance` does the same);
* the **threshold**: ``threshold="auto"`` takes the value of the grid
  :data:`mlcl.metrics.PAPER_THRESHOLDS` (0.1, …, 0.9) that maximises ``threshold_metric`` on the
  internal validation split (ties: the one nearest 0.5; a metric flat over the grid gives 0.5);
  a number fixes it;
* **device** (``"auto"`` = CUDA when available) and **seeding**: ``random_state`` fixes the split
  and every torch draw; fitting leaves the caller's global random states (python, numpy, torch)
  as they were.

Decision rule: :math:`\hat y_{ij} = [\,p_{ij} \ge t\,]` with :math:`p = \sigma(\text{logits})` and
:math:`t = \arg\max_{t \in \text{grid}} \text{metric}(Y_{val}, [P_{val} \ge t])`.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from mlcl import metrics as M

__all__ = ["MultiLabelNetClassifier", "THRESHOLD_METRICS"]

#: metrics ``threshold="auto"`` can maximise (all higher-is-better, all from :mod:`mlcl.metrics`).
THRESHOLD_METRICS = ("micro_f1", "macro_f1", "example_f1", "hamming_accuracy", "subset_accuracy")


def resolve_device(device: str) -> torch.device:
    """The estimator's ``device`` checked (a clear error for a typo or a missing GPU), then resolved by
    the package's one device rule, :func:`mlcl.training.resolve_device` (``"auto"`` → CUDA if available)."""
    from mlcl.training import resolve_device as engine_device

    if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU: use device='auto' or 'cpu'")
    return engine_device(device)


class MultiLabelNetClassifier(ClassifierMixin, BaseEstimator):
    """Base class: see the module docstring. Not used directly.

    Common parameters (every subclass has them, with these meanings):
        validation_fraction: share of the rows held out for epoch selection and the threshold
            (0.2). At least one row is held out and one kept.
        threshold: ``"auto"`` (chosen on the held-out rows) or a number in [0, 1].
        threshold_metric: what ``"auto"`` maximises, one of :data:`THRESHOLD_METRICS`
            (``"micro_f1"``).
        standardize: z-score the features with the training rows' mean and std (True).
        random_state: None, an int or a ``RandomState``; an int makes ``fit`` reproducible.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

    Fitted attributes: ``model_`` (the trained network, eval mode, on ``device_``),
    ``threshold_``, ``classes_`` (``arange(L)``: label columns), ``n_features_in_``,
    ``n_labels_``, ``mean_``/``scale_`` (standardisation), ``constant_labels_`` (bool ``(L,)``),
    ``validation_scores_`` (the threshold metric at every grid value), ``history_`` (the
    recipe's per-epoch logs, when it returns them), ``fit_seconds_`` (wall time of ``fit``).

    ``score(X, Y)`` is scikit-learn's classifier score, subset accuracy for multi-label targets
    (strict); model selection usually wants ``scoring="f1_micro"`` or ``"f1_samples"``.
    """

    # -- what subclasses provide ------------------------------------------------------------------
    def _fit_network(self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
                     seed: int, device: torch.device) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_params(self) -> None:
        """Subclasses extend this with their own parameter checks (called first in ``fit``)."""

    # -- scikit-learn protocol --------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = False  # Y is always 2-D (N, L)
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_class = False  # each column is binary
        tags.classifier_tags.multi_label = True
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags

    def _check_common_params(self) -> None:
        f = self.validation_fraction
        if not (isinstance(f, (int, float)) and 0.0 < float(f) < 1.0):
            raise ValueError(f"validation_fraction must be a number in (0, 1) (e.g. 0.2), got {f!r}")
        t = self.threshold
        if isinstance(t, str):
            if t != "auto":
                raise ValueError(f"threshold must be 'auto' or a number in [0, 1], got {t!r}")
        elif not (isinstance(t, (int, float, np.floating)) and 0.0 <= float(t) <= 1.0):
            raise ValueError(f"threshold must be 'auto' or a number in [0, 1], got {t!r}")
        if self.threshold_metric not in THRESHOLD_METRICS:
            raise ValueError(f"threshold_metric must be one of {THRESHOLD_METRICS}, got {self.threshold_metric!r}")
        resolve_device(self.device)

    def _validate_Y(self, Y: Any) -> np.ndarray:
        Y = np.asarray(Y)
        kind = type_of_target(Y, input_name="Y", raise_unknown=True)  # "Unknown label type" for objects
        if Y.ndim != 2:
            detail = ("Only binary classification is supported per label column, and the target is "
                      f"{kind}: one 0/1 column per class is LabelBinarizer().fit_transform(y)"
                      if kind == "multiclass" else f"got a 1-D {kind} target of shape {Y.shape}; for a "
                      "single label pass y.reshape(-1, 1)")
            raise ValueError(
                "Y must be a 2-D label indicator matrix (n_samples, n_labels) of 0/1: " + detail
                + "; for lists of label sets use sklearn.preprocessing.MultiLabelBinarizer().fit_transform(...)")
        if kind.startswith("continuous"):
            raise ValueError(f"Y is a {kind} target: Y must be a 0/1 label indicator matrix, not real values")
        if not np.isin(Y, (0, 1)).all():
            vals = np.unique(Y)[:5]
            raise ValueError(
                f"Y must hold only 0 and 1 (a multi-label indicator matrix), found values such as {vals.tolist()} "
                f"({kind} target); for class labels use sklearn.preprocessing.LabelBinarizer, for label sets "
                "MultiLabelBinarizer")
        return Y.astype(np.float32)

    def fit(self, X: Any, Y: Any) -> MultiLabelNetClassifier:
        """Train on ``X`` (n_samples, n_features) and ``Y`` (n_samples, n_labels) of 0/1."""
        t0 = time.perf_counter()
        self._check_common_params()
        self._check_params()
        if np.ndim(Y) == 2 and np.shape(Y)[1] == 0:  # before scikit-learn calls it "0 feature(s)"
            raise ValueError("Y has no label columns: n_labels must be >= 1")
        X, Y = validate_data(self, X, Y, multi_output=True, dtype=np.float32, y_numeric=False)
        Y = self._validate_Y(Y)
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"got {n} sample; fit needs at least 2 samples (1 sample for training and 1 "
                             "for the internal validation split)")
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        perm = rng.permutation(n)
        n_val = min(n - 1, max(1, int(round(self.validation_fraction * n))))
        va, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])

        if self.standardize:
            mean = X[tr].astype(np.float64).mean(0)
            scale = X[tr].astype(np.float64).std(0)
            scale[scale < 1e-8] = 1.0  # a constant feature keeps scale 1 (no division by 0)
        else:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        self.mean_, self.scale_ = mean, scale
        Xs = self._transform(X)
        col_min, col_max = Y[tr].min(0), Y[tr].max(0)
        self.constant_labels_ = col_min == col_max
        self.constant_values_ = col_min.astype(np.float32)
        self.n_labels_ = Y.shape[1]
        self.classes_ = np.arange(Y.shape[1])
        self.device_ = resolve_device(self.device)
        self.history_: list[dict[str, float]] = []

        # the engine reseeds python's, numpy's and torch's global RNGs: give the caller's back after
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                model = self._fit_network(Xs[tr], Y[tr], Xs[va], Y[va], seed, self.device_)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        self.model_ = model.eval()
        self._choose_threshold(self._scores(Xs[va]), Y[va])
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    # -- prediction ---------------------------------------------------------------------------------
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return ((X.astype(np.float64) - self.mean_) / self.scale_).astype(np.float32)

    def _network_scores(self, X: np.ndarray) -> np.ndarray:
        """σ(logits) of the fitted network on standardised inputs; subclasses with another output
        (C-GMVAE's ``predict``) override this."""
        from mlcl.models.inference import predict_proba

        return predict_proba(self.model_, X).astype(np.float32)

    def _scores(self, Xs: np.ndarray) -> np.ndarray:
        P = self._network_scores(Xs)
        P[:, self.constant_labels_] = self.constant_values_[self.constant_labels_]
        return P

    def _choose_threshold(self, P_val: np.ndarray, Y_val: np.ndarray) -> None:
        grid = M.PAPER_THRESHOLDS
        metric = getattr(M, self.threshold_metric)
        vals = np.array([metric(Y_val.astype(int), P_val, threshold=float(t)) for t in grid])
        self.validation_scores_ = dict(zip(np.round(grid, 10).tolist(), vals.tolist()))
        if not isinstance(self.threshold, str):
            self.threshold_ = float(self.threshold)
            return
        ok = np.isfinite(vals)
        if not ok.any() or np.nanmax(vals) == np.nanmin(vals):
            self.threshold_ = 0.5  # the held-out rows say nothing: the neutral threshold
            return
        best = np.flatnonzero(ok & (vals == np.nanmax(vals)))
        self.threshold_ = float(round(grid[best[np.argmin(np.abs(grid[best] - 0.5))]], 10))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Label probabilities ``(n_samples, n_labels)`` (float32; one independent probability per
        label, rows need not sum to 1)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return self._scores(self._transform(X))

    def predict(self, X: Any) -> np.ndarray:
        """0/1 indicator matrix ``(n_samples, n_labels)``: ``predict_proba(X) >= threshold_``."""
        return (self.predict_proba(X) >= np.float32(self.threshold_)).astype(np.int64)

