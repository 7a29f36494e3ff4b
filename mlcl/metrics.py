r"""Multi-label metrics and the two evaluation protocols (``paper`` / ``honest``).

Every metric takes ``y_true`` of shape ``(N, L)`` with entries in {0, 1} and ``scores`` of the same
shape: probabilities in [0, 1] (thresholded with ``scores >= threshold``) or an already binary
prediction. Both may be numpy arrays, torch tensors (any device; they are copied to the host) or
lists of equal-length rows. Bad input is refused with a message naming the fix: a threshold must be
a finite number in [0, 1] (every value of a grid too), ``k``/``top_k`` a positive integer ≤ L
(``k=1.9`` is an error, not 1), scores NaN-free, rows of equal length.

Conventions
-----------
Every function that has a ``convention`` argument, and :func:`evaluate`, defaults to
``convention="paper"``: the package exists to reproduce the papers' tables, and the paper
convention is the evaluation code that produced them, so a number computed here with defaults is
comparable with ``paper_results.csv``. ``convention="sklearn"`` is one keyword away.

``convention="sklearn"`` gives exactly what scikit-learn gives (``f1_score`` with
``average="samples"|"micro"|"macro"``, ``precision_score``/``recall_score`` with
``average="macro"|"micro"`` for CP/CR/OP/OR, ``hamming_loss``, ``accuracy_score``,
``average_precision_score``) for the same ``zero_division``. The property tests in
``tests/test_metrics.py`` check this on random inputs that include labels with no positives,
samples with no labels and empty predictions.

``convention="paper"`` reproduces the evaluation code of C-GMVAE (``JunwenBai/C-GMVAE``,
``evals.py``), which MulSupCon copied (``williamzhangsjtu/MulSupCon``, ``codes/metrics.py``):

* macro-F1 :math:`=\frac1L\sum_{c=1}^L \frac{2\,tp_c}{2\,tp_c+fp_c+fn_c+10^{-6}}` over **all**
  labels, so a label with no positives and no predicted positives counts **0** (scikit-learn gives
  it ``zero_division``, 0 by default too, but a fixed 1 or ``nan`` changes the number);
* example-F1 :math:`=\operatorname{mean}_{i\in S}\frac{2|y_i\cap\hat y_i|}{|y_i|+|\hat y_i|}` where
  :math:`S` **drops the samples whose truth and prediction are both empty** (the same as
  scikit-learn with ``zero_division=np.nan``, which excludes those samples from the mean; with the
  default ``zero_division=0`` scikit-learn counts them 0, with 1 it counts them 1);
* micro-F1, Hamming accuracy, subset accuracy and precision@k are the same as in scikit-learn;

and, for the MulCon set (CP, CR, CF1, OP, OR, OF1), ML-GCN's ``AveragePrecisionMeter.evaluation``
(``Megvii-Nanjing/ML-GCN``, ``util.py``; copied by MulCon, ``SonDaoDuy/MulCon``,
``util/ml_gcn_util.py``): a class that is never predicted counts :math:`N_{pred}=1`
(``Np[Np == 0] = 1``, which lowers OP and OF1), and any other 0/0 is ``nan`` (CR when a class has
no positive, CF1/OF1 when nothing is correct). Example: ``y=[[1,0],[1,0]]``,
``s=[[.9,.1],[.8,.2]]`` give OP/OF1 = 0.667/0.8 under ``"paper"`` and 1.0/1.0 under ``"sklearn"``.

The authors compute their counts in float32; we use float64, a difference below 1e-7.

``zero_division`` (default ``0.0``) is the value of a ratio that is 0/0 under ``"sklearn"``: a
sample with no labels and no predictions (example-F1), a label with neither (macro-F1; per-class
precision/recall), or a data set with no positive at all (micro-F1, OR). Pass ``np.nan`` to
exclude such terms from the averages (scikit-learn's semantics); if every term is excluded the
result is ``nan``. Under ``"paper"`` the rules above replace ``zero_division`` (micro-F1 excepted:
the authors' code gives nan there, ``zero_division=np.nan`` reproduces it).

Thresholds
----------
``scores >= threshold`` is evaluated in the **scores' own precision**: the threshold is rounded to
float32 for float32 scores (numpy arrays or tensors; float16/bfloat16 tensors are first widened to
float32) and to float64 otherwise. This is what ``scores >= 0.7`` does in numpy ≥ 2 and in torch,
and what the authors' code did (float32 model outputs against a Python float): a float32 score
equal to ``np.float32(0.7)`` (0.699999988…) counts as ≥ 0.7, while the same value in float64 does
not (``float(np.float32(0.7)) < 0.7``). It only matters for scores that are exactly on a grid
value; scikit-learn takes the 0/1 predictions, so compute them the same way to compare.

Ranking metrics
---------------
* ``precision_at_k``: :math:`\frac1N\sum_i |\operatorname{top}_k(s_i)\cap y_i|/k`; samples with no
  labels count 0 (C-GMVAE's ``ranking_precision_score``). **Ties** between scores go to the
  **higher label index**: we use a *stable* ascending sort and reverse it, which is the order the
  authors' ``np.argsort(s)[:, ::-1]`` had with the numpy of their time (introsort falls back to
  insertion sort, which is stable, for ≤ 16 labels). Current numpy's default sort (AVX-512
  quicksort in numpy ≥ 1.25 on such CPUs) no longer gives a defined order among ties, so their
  code can give other numbers on ties today; ours is fixed.
* The MulCon ``top_k`` variants use the same rule. ML-GCN's ``overall_topk`` calls
  ``torch.topk``, which documents no order among ties and follows none (torch 2.13, CPU: top-1 of
  ``[.5, .5]`` is index 0, top-2 of ``[.5, .5, .5, .2]`` is ``[1, 2]``, top-3 of eight equal scores
  ``[6, 5, 4]``); the results differ from ours only when the k-th and (k+1)-th scores of a sample
  are exactly equal.
* ``mean_average_precision``: mean over labels of the average precision
  :math:`AP_c=\sum_n (R_n-R_{n-1})P_n` (scikit-learn's definition, tied scores form one step). A
  label with no positives has no AP; ``no_positive`` chooses: ``"zero"`` (default: MulCon's per-class
  AP is 0 there; scikit-learn ≥ 1.1 also returns 0 with a warning, which MulSupCon's
  ``np.mean(average_precision_score(..., average=None))`` then averages in), ``"exclude"`` (mean
  over labels that have positives) or ``"nan"``.

MulCon set (ML-GCN's ``AveragePrecisionMeter.evaluation``, used by MulCon)
---------------------------------------------------------------------------
:math:`CP=\frac1L\sum_c \frac{N^c_{correct}}{N^c_{predicted}}`, :math:`CR=\frac1L\sum_c
\frac{N^c_{correct}}{N^c_{gt}}`, :math:`CF1=\frac{2\,CP\,CR}{CP+CR}` (harmonic mean of CP and CR,
**not** the mean of per-class F1), :math:`OP=\frac{\sum_c N^c_{correct}}{\sum_c N^c_{predicted}}`,
:math:`OR=\frac{\sum_c N^c_{correct}}{\sum_c N^c_{gt}}`, :math:`OF1=\frac{2\,OP\,OR}{OP+OR}`.
``top_k=3`` predicts, per sample, the k highest scores **that are also ≥ threshold** (ML-GCN's
``overall_topk``: top-k logits that are ≥ 0, i.e. probabilities ≥ 0.5); pass ``threshold=None``
for the plain top-k. ML-GCN thresholds logits at 0 where we threshold probabilities at 0.5: the
same except for logits in about (-2e-7, 0), whose float32 sigmoid rounds to exactly 0.5.

Protocols (:func:`evaluate`)
----------------------------
``"paper"``: for every threshold-dependent metric, the best value over the threshold grid
(default 0.1, 0.2, …, 0.9), **chosen on the evaluated (test) set itself** — what the C-GMVAE and
MulSupCon code does. It is optimistic: the threshold is tuned on the test labels, separately for
every metric. ``"honest"``: each metric's threshold is chosen on the validation set and applied to
the test set. Threshold-free metrics (precision@k, mAP) report ``threshold=None``. A ``nan`` value
at some threshold (paper convention: nothing correct) is skipped when choosing.

Example
-------
>>> import numpy as np
>>> y = np.array([[1, 0, 1], [0, 1, 0]])
>>> s = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3]])
>>> hamming_accuracy(y, s)           # one error (label 2 of sample 0) in 6
0.8333333333333334
>>> micro_f1(y, s)                    # tp=2, fp=0, fn=1
0.8
>>> ev = evaluate(y, s, protocol="paper", metrics=["micro_f1", "precision_at_1"])
>>> ev.values["micro_f1"], ev.thresholds["micro_f1"], ev.thresholds["precision_at_1"]
(1.0, 0.4, None)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "PAPER_THRESHOLDS",
    "DEFAULT_METRICS",
    "MULCON_METRICS",
    "hamming_accuracy",
    "hamming_loss",
    "subset_accuracy",
    "example_f1",
    "micro_f1",
    "macro_f1",
    "precision_at_k",
    "mean_average_precision",
    "average_precision_per_label",
    "cp",
    "cr",
    "cf1",
    "op",
    "or_",
    "of1",
    "available_metrics",
    "Evaluation",
    "evaluate",
    "evaluate_both",
]

Convention = Literal["sklearn", "paper"]
Protocol = Literal["honest", "paper"]

#: the authors' grid, written ``i / 10`` as in their code (equal to ``np.arange(0.1, 1.0, 0.1)`` up
#: to floating-point rounding, e.g. ``0.30000000000000004``).
PAPER_THRESHOLDS: np.ndarray = np.arange(1, 10) / 10.0

#: metric names of C-GMVAE Tables 1–3 / MulSupCon Tables 2–3 (the ``metric`` column of
#: ``paper_results.csv``).
DEFAULT_METRICS: tuple[str, ...] = (
    "hamming_accuracy",
    "example_f1",
    "micro_f1",
    "macro_f1",
    "precision_at_1",
    "mAP",
)
MULCON_METRICS: tuple[str, ...] = (
    "CP", "CR", "CF1", "OP", "OR", "OF1",
    "CP_top3", "CR_top3", "CF1_top3", "OP_top3", "OR_top3", "OF1_top3",
)  # fmt: skip

# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _ragged_rows(a: Any) -> list[int] | None:
    """Row lengths of a list/tuple of rows whose lengths differ (None if not ragged)."""
    if not isinstance(a, (list, tuple)) or not a:
        return None
    lens = [len(r) if isinstance(r, (list, tuple, np.ndarray)) else -1 for r in a]
    return lens if len(set(lens)) > 1 else None


def _to_numpy(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch.Tensor without importing torch
        t = a.detach().cpu()  # any device: metrics are computed on the host
        if t.dtype.is_floating_point and t.dtype not in (_torch_f32(), _torch_f64()):
            t = t.float()  # float16 / bfloat16 have no (exact) numpy counterpart
        a = t.numpy()
    lens = _ragged_rows(a)
    if lens is not None:
        shown = ", ".join(str(n) if n >= 0 else "scalar" for n in lens[:8])
        raise ValueError(
            f"{name} is ragged: its rows have different lengths ({shown}{', ...' if len(lens) > 8 else ''}); "
            "every sample needs one entry per label, shape (N samples, L labels)"
        )
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(
            f"{name} must be an (N, L) numpy array, torch tensor or list of equal-length rows, "
            f"got {type(a).__name__}: {exc}"
        ) from exc
    if arr.dtype == object:
        raise TypeError(
            f"{name} must be numeric (N, L); got an object array: pass a dense numpy array"
        )
    return arr


def _torch_f32():
    import torch

    return torch.float32


def _torch_f64():
    import torch

    return torch.float64


def _check_y(y_true: Any) -> np.ndarray:
    y = _to_numpy(y_true, "y_true")
    if y.ndim != 2:
        raise ValueError(
            f"y_true must be 2-D (N samples, L labels), got shape {y.shape}: for one sample use "
            "y[None, :], for a single label use y[:, None]"
        )
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(
            f"y_true is empty (shape {y.shape}): need at least one sample and one label"
        )
    if y.dtype != bool:
        if np.issubdtype(y.dtype, np.floating) and np.isnan(y).any():
            raise ValueError("y_true contains NaN: it must be a 0/1 multi-hot matrix")
        if not np.isin(y, (0, 1)).all():
            bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
            raise ValueError(
                f"y_true must be binary (0/1 multi-hot), found values {bad.tolist()}: "
                "convert label indices or {-1, 1} targets with (y > 0).astype(int)"
            )
    return y.astype(bool)


def _check_scores(
    scores: Any, y: np.ndarray, name: str = "scores", probabilities: bool = True
) -> np.ndarray:
    s = _to_numpy(scores, name)
    if s.shape != y.shape:
        raise ValueError(
            f"shape mismatch: y_true has shape {y.shape} but {name} has shape {s.shape}; both must "
            "be (N samples, L labels) in the same label order"
        )
    if s.dtype == bool:
        return s.astype(np.float64)
    if not np.issubdtype(s.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {s.dtype}")
    # float32 stays float32: a threshold is compared in the scores' own precision (see
    # "Thresholds" in the module docstring); everything else (ints, float16) becomes float64
    s = s.astype(np.float32 if s.dtype == np.float32 else np.float64, copy=False)
    if np.isnan(s).any():
        n = int(np.isnan(s).sum())
        raise ValueError(
            f"{name} contains {n} NaN value(s): the model diverged or a division by zero upstream; "
            "fix the model output (e.g. torch.nan_to_num) before evaluating"
        )
    if probabilities and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(
            f"{name} must lie in [0, 1] for thresholded metrics, found range [{s.min():.3g}, "
            f"{s.max():.3g}]: these look like logits, pass torch.sigmoid(logits) (or "
            "scipy.special.expit) instead"
        )
    return s


def _check_convention(convention: str) -> None:
    if convention not in ("sklearn", "paper"):
        raise ValueError(f"convention must be 'sklearn' or 'paper', got {convention!r}")


def _check_zero_division(zero_division: float) -> float:
    z = float(zero_division)
    if not (np.isnan(z) or z in (0.0, 1.0)):
        raise ValueError(f"zero_division must be 0, 1 or np.nan, got {zero_division!r}")
    return z


def _check_k(k: Any, n_labels: int, name: str = "k") -> int:
    """``k`` must be a positive integer ≤ the number of labels (1.9 is an error, not 1)."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(
            f"{name} must be a positive integer, got {k!r} ({type(k).__name__}): pass e.g. "
            f"{name}=1 or {name}=3"
        )
    if not 1 <= int(k) <= n_labels:
        raise ValueError(
            f"{name} must be between 1 and the number of labels ({n_labels}), got {int(k)}"
        )
    return int(k)


def _check_threshold(threshold: Any, name: str = "threshold") -> float:
    """A threshold must be a finite real number in [0, 1] (scores are probabilities)."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(
        threshold, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"{name} must be a number in [0, 1], got {threshold!r} ({type(threshold).__name__})"
        )
    t = float(threshold)
    if not (np.isfinite(t) and 0.0 <= t <= 1.0):
        raise ValueError(
            f"{name} must be a finite number in [0, 1] (scores are probabilities), got {t!r}: "
            "for logits threshold the probabilities torch.sigmoid(logits) instead, e.g. at 0.5"
        )
    return t


def _check_grid(thresholds: Any) -> np.ndarray:
    """The threshold grid of :func:`evaluate`: a non-empty 1-D list of valid thresholds."""
    try:
        grid = np.asarray(thresholds, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"thresholds must be a list of numbers in [0, 1], got {thresholds!r}"
        ) from exc
    if grid.size == 0:
        raise ValueError("thresholds is empty: pass a grid such as np.arange(0.1, 1.0, 0.1)")
    bad = grid[~(np.isfinite(grid) & (grid >= 0.0) & (grid <= 1.0))]
    if bad.size:
        raise ValueError(
            f"every threshold must be a finite number in [0, 1], found {bad[:5].tolist()} in "
            "thresholds: pass a grid of probabilities such as np.arange(0.1, 1.0, 0.1)"
        )
    return grid


def _topk_mask(s: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N, L) mask of the k highest scores per row; ties go to the higher label index.

    A stable ascending sort, reversed: among equal scores the one with the higher label index
    comes first. This fixes the order that the authors' ``np.argsort(s)[:, ::-1]`` had with the
    numpy of their time (insertion sort, stable, for ≤ 16 labels); current numpy's default sort
    (AVX-512 quicksort) no longer guarantees any order among ties.
    """
    order = np.argsort(s, axis=1, kind="stable")[:, ::-1][:, :k]
    mask = np.zeros(s.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def _predictions(s: np.ndarray, thresholds: np.ndarray, top_k: int | None = None) -> np.ndarray:
    """(T, N, L) boolean predictions ``s >= t`` for a grid of thresholds.

    The threshold is rounded to the scores' dtype first, so float32 scores are compared in float32
    (what ``scores >= 0.7`` does in numpy ≥ 2 and torch, and what the authors' code did).
    """
    pred = s[None, :, :] >= thresholds.astype(s.dtype)[:, None, None]
    if top_k is not None:
        pred &= _topk_mask(s, top_k)[None]
    return pred


def _div(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    """num / den with 0/0 (den == 0) replaced by ``zero_division``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, zero_division, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean ignoring NaN (scikit-learn's treatment of zero_division=nan); all-NaN → NaN."""
    valid = ~np.isnan(x)
    cnt = valid.sum(axis=axis)
    tot = np.where(valid, x, 0.0).sum(axis=axis)
    return _div(tot, cnt, np.nan)


# --------------------------------------------------------------------------------------------
# batched kernels: y (N, L) bool, P (T, N, L) bool  ->  (T,) float
# --------------------------------------------------------------------------------------------


def _k_hamming_loss(y, P, convention, zd):
    return (P != y[None]).mean(axis=(1, 2))


def _k_hamming_accuracy(y, P, convention, zd):
    return 1.0 - _k_hamming_loss(y, P, convention, zd)


def _k_subset_accuracy(y, P, convention, zd):
    return (P == y[None]).all(axis=2).mean(axis=1)


def _k_example_f1(y, P, convention, zd):
    inter = (P & y[None]).sum(axis=2)
    den = y.sum(axis=1)[None] + P.sum(axis=2)
    per_sample = _div(2.0 * inter, den, np.nan if convention == "paper" else zd)
    return _mean(per_sample)


def _k_micro_f1(y, P, convention, zd):
    tp = (P & y[None]).sum(axis=(1, 2))
    den = y.sum() + P.sum(axis=(1, 2))  # = 2tp + fp + fn
    return _div(2.0 * tp, den, zd)


def _k_macro_f1(y, P, convention, zd):
    tp = (P & y[None]).sum(axis=1)  # (T, L)
    den = y.sum(axis=0)[None] + P.sum(axis=1)
    if convention == "paper":
        return (2.0 * tp / (den + 1e-6)).mean(axis=1)
    return _mean(_div(2.0 * tp, den, zd))


def _counts_mulcon(y, P, convention):
    """N_correct, N_predicted, N_gt per (threshold, class), each (T, L) float64.

    Under ``"paper"`` a class that is never predicted gets :math:`N_{pred}=1` (ML-GCN's
    ``Np[Np == 0] = 1``): CP is unchanged (0/1 = 0) but OP's denominator grows by one per such class.
    """
    nc = (P & y[None]).sum(axis=1).astype(np.float64)  # correct, (T, L)
    npred = P.sum(axis=1).astype(np.float64)
    if convention == "paper":
        npred = np.maximum(npred, 1.0)
    ngt = np.broadcast_to(y.sum(axis=0)[None].astype(np.float64), nc.shape)
    return nc, npred, ngt


def _nan_div(num, den):
    """num / den with 0/0 = nan and x/0 = inf, as numpy gives (ML-GCN's meter, no guard)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)


def _k_cp(y, P, convention, zd):
    nc, npred, _ = _counts_mulcon(y, P, convention)
    if convention == "paper":
        return (nc / npred).mean(axis=1)  # npred ≥ 1
    return _mean(_div(nc, npred, zd))


def _k_cr(y, P, convention, zd):
    nc, _, ngt = _counts_mulcon(y, P, convention)
    if convention == "paper":
        return _nan_div(nc, ngt).mean(axis=1)  # a class without positives: nan (plain mean)
    return _mean(_div(nc, ngt, zd))


def _harmonic(p, r, convention):
    if convention == "paper":
        return _nan_div(2.0 * p * r, p + r)  # nothing correct: 0/0 = nan, as ML-GCN
    return _div(2.0 * p * r, p + r, 0.0)  # nothing correct: F1 = 0 (scikit-learn's f1 there)


def _k_cf1(y, P, convention, zd):
    return _harmonic(_k_cp(y, P, convention, zd), _k_cr(y, P, convention, zd), convention)


def _k_op(y, P, convention, zd):
    nc, npred, _ = _counts_mulcon(y, P, convention)
    if convention == "paper":
        return nc.sum(axis=1) / npred.sum(axis=1)
    return _div(nc.sum(axis=1), npred.sum(axis=1), zd)


def _k_or(y, P, convention, zd):
    nc, _, ngt = _counts_mulcon(y, P, convention)
    if convention == "paper":
        return _nan_div(nc.sum(axis=1), ngt.sum(axis=1))
    return _div(nc.sum(axis=1), ngt.sum(axis=1), zd)


def _k_of1(y, P, convention, zd):
    return _harmonic(_k_op(y, P, convention, zd), _k_or(y, P, convention, zd), convention)


_KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "hamming_accuracy": _k_hamming_accuracy,
    "hamming_loss": _k_hamming_loss,
    "subset_accuracy": _k_subset_accuracy,
    "example_f1": _k_example_f1,
    "micro_f1": _k_micro_f1,
    "macro_f1": _k_macro_f1,
    "CP": _k_cp,
    "CR": _k_cr,
    "CF1": _k_cf1,
    "OP": _k_op,
    "OR": _k_or,
    "OF1": _k_of1,
}
_LOWER_IS_BETTER = {"hamming_loss"}


def _thresholded(
    kernel: str, y_true, scores, threshold, convention, zero_division, top_k=None
) -> float:
    _check_convention(convention)
    zd = _check_zero_division(zero_division)
    y = _check_y(y_true)
    if top_k is not None:
        top_k = _check_k(top_k, y.shape[1], "top_k")
    if threshold is None:
        if top_k is None:
            raise ValueError(
                "threshold=None is only allowed together with top_k (plain top-k prediction)"
            )
        s = _check_scores(scores, y, probabilities=False)
        thr = np.array([-np.inf])
    else:
        thr = np.array([_check_threshold(threshold)])
        s = _check_scores(scores, y)
    return float(_KERNELS[kernel](y, _predictions(s, thr, top_k), convention, zd)[0])


# --------------------------------------------------------------------------------------------
# public metric functions
# --------------------------------------------------------------------------------------------


def hamming_loss(y_true, scores, threshold: float = 0.5) -> float:
    r"""Fraction of wrong (sample, label) entries.

    .. math:: HL = \frac{1}{NL}\sum_{i,c} [y_{ic} \ne \hat y_{ic}],\quad \hat y_{ic}=[s_{ic}\ge t]

    Equal to ``sklearn.metrics.hamming_loss``.

    >>> hamming_loss([[1, 0], [0, 1]], [[0.7, 0.6], [0.2, 0.9]])
    0.25
    """
    return _thresholded("hamming_loss", y_true, scores, threshold, "sklearn", 0.0)


def hamming_accuracy(y_true, scores, threshold: float = 0.5) -> float:
    r"""Hamming accuracy :math:`HA = 1 - HL` (C-GMVAE's "HA").

    >>> hamming_accuracy([[1, 0], [0, 1]], [[0.7, 0.6], [0.2, 0.9]])
    0.75
    """
    return _thresholded("hamming_accuracy", y_true, scores, threshold, "sklearn", 0.0)


def subset_accuracy(y_true, scores, threshold: float = 0.5) -> float:
    r"""Exact-match ratio :math:`\frac1N\sum_i [\hat y_i = y_i]` (``sklearn.metrics.accuracy_score``).

    >>> subset_accuracy([[1, 0], [0, 1]], [[0.7, 0.6], [0.2, 0.9]])
    0.5
    """
    return _thresholded("subset_accuracy", y_true, scores, threshold, "sklearn", 0.0)


def example_f1(
    y_true,
    scores,
    threshold: float = 0.5,
    *,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r"""Example-based (sample-averaged) F1.

    .. math:: F1_{ex} = \frac{1}{|S|}\sum_{i\in S}\frac{2|y_i\cap\hat y_i|}{|y_i|+|\hat y_i|}

    ``"paper"`` (default): samples with :math:`y_i=\hat y_i=\emptyset` are dropped from :math:`S`
    (C-GMVAE ``evals.example_f1_score`` / MulSupCon ``codes/metrics.py``); ``zero_division`` is not
    used. ``"sklearn"``: :math:`S` = all samples, such a sample scores ``zero_division``
    (``np.nan`` drops it, giving the paper number) — ``f1_score(average="samples")``.

    >>> y, s = [[1, 1], [0, 0]], [[0.9, 0.1], [0.2, 0.3]]   # sample 1: nothing true, nothing predicted
    >>> example_f1(y, s), example_f1(y, s, convention="sklearn")
    (0.6666666666666666, 0.3333333333333333)
    >>> example_f1(y, s, convention="sklearn", zero_division=1.0)
    0.8333333333333333
    """
    return _thresholded("example_f1", y_true, scores, threshold, convention, zero_division)


def micro_f1(
    y_true,
    scores,
    threshold: float = 0.5,
    *,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r"""Micro-averaged F1 over all (sample, label) entries.

    .. math:: F1_{mi} = \frac{2\sum_c tp_c}{2\sum_c tp_c + \sum_c fp_c + \sum_c fn_c}

    Same under both conventions; ``zero_division`` when there is no positive and no prediction
    (the authors' code divides 0 by 0 there and gets nan: pass ``zero_division=np.nan``).

    >>> micro_f1([[1, 0], [0, 1]], [[0.7, 0.6], [0.2, 0.9]])   # tp=2, fp=1, fn=0
    0.8
    """
    return _thresholded("micro_f1", y_true, scores, threshold, convention, zero_division)


def macro_f1(
    y_true,
    scores,
    threshold: float = 0.5,
    *,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r"""Macro-averaged F1: the mean over labels of the per-label F1.

    ``"paper"`` (default): :math:`\frac1L\sum_c \frac{2tp_c}{2tp_c+fp_c+fn_c+10^{-6}}` over all
    labels (C-GMVAE ``f1_score_from_stats``), so a label with neither positives nor predictions
    counts 0 whatever ``zero_division`` is, and every other label is lowered by a relative
    :math:`\approx 10^{-6}/(2tp_c+fp_c+fn_c)`. ``"sklearn"``:
    :math:`\frac1L\sum_c \frac{2tp_c}{2tp_c+fp_c+fn_c}`, such a label scores ``zero_division``
    (``np.nan`` drops it) — ``f1_score(average="macro")``.

    >>> y, s = [[1, 0], [1, 0]], [[0.9, 0.1], [0.8, 0.3]]   # label 1: no positive, no prediction
    >>> round(macro_f1(y, s), 6), macro_f1(y, s, convention="sklearn")
    (0.5, 0.5)
    >>> macro_f1(y, s, convention="sklearn", zero_division=1.0)
    1.0
    """
    return _thresholded("macro_f1", y_true, scores, threshold, convention, zero_division)


def precision_at_k(y_true, scores, k: int = 1) -> float:
    r"""Precision@k: the fraction of each sample's k top-scored labels that are true, averaged.

    .. math:: P@k = \frac1N\sum_i \frac{|\operatorname{top}_k(s_i)\cap y_i|}{k}

    ``k=1``: the fraction of samples whose top-scored label is a true label. Samples with no labels
    count 0 (C-GMVAE's ``ranking_precision_score``). ``k`` must be an integer in [1, L]. Scores may
    be any real numbers (logits too).

    Ties go to the **higher label index**, for any number of labels: a stable sort, reversed — the
    order the authors' ``np.argsort(s)[:, ::-1]`` had with the numpy of their time for ≤ 16
    labels; today's numpy default sort no longer defines one (see the module docstring).

    >>> precision_at_k([[1, 0, 0], [0, 0, 1]], [[0.9, 0.5, 0.1], [0.8, 0.1, 0.3]], k=1)
    0.5
    >>> precision_at_k([[1, 0], [0, 1]], [[0.5, 0.5], [0.5, 0.5]], k=1)   # tie: label 1 is ranked first
    0.5
    """
    y = _check_y(y_true)
    k = _check_k(k, y.shape[1])
    s = _check_scores(scores, y, probabilities=False)
    return float((_topk_mask(s, k) & y).sum(axis=1).mean() / k)


def average_precision_per_label(y_true, scores) -> np.ndarray:
    r"""Per-label average precision :math:`AP_c=\sum_n (R_n-R_{n-1})P_n` (``nan`` without positives).

    Identical to ``sklearn.metrics.average_precision_score(y[:, c], s[:, c])`` for every label with
    at least one positive: tied scores form one step of the precision–recall curve. Vectorised over
    labels (one sort of the whole matrix).

    >>> average_precision_per_label([[1, 0], [0, 0], [1, 0]], [[0.9, 0.2], [0.8, 0.1], [0.3, 0.5]])
    array([0.83333333,        nan])
    """
    y = _check_y(y_true)
    s = _check_scores(scores, y, probabilities=False)
    n = s.shape[0]
    order = np.argsort(-s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    y_sorted = np.take_along_axis(y, order, axis=0)
    tp = np.cumsum(y_sorted, axis=0)
    precision = tp / np.arange(1, n + 1)[:, None]
    # the last row of each group of tied scores: the precision every positive of the group gets
    is_end = np.ones_like(y_sorted)
    is_end[:-1] = s_sorted[:-1] != s_sorted[1:]
    end_idx = np.where(is_end, np.arange(n)[:, None], n)
    end_idx = np.minimum.accumulate(end_idx[::-1], axis=0)[::-1]
    prec_at_end = np.take_along_axis(precision, end_idx, axis=0)
    n_pos = y.sum(axis=0)
    return _div((y_sorted * prec_at_end).sum(axis=0), n_pos, np.nan)


def mean_average_precision(
    y_true, scores, *, no_positive: Literal["zero", "exclude", "nan"] = "zero"
) -> float:
    r"""mAP: the mean over labels of the per-label average precision.

    .. math:: mAP = \frac1L\sum_c AP_c

    ``no_positive`` says what a label without positives contributes: ``"zero"`` (default; MulCon's
    per-class AP is 0 there, and MulSupCon averages scikit-learn's per-label AP, which is 0 with a
    warning in scikit-learn ≥ 1.1, so this equals ``average_precision_score(y, s, average="macro")``),
    ``"exclude"`` (average over labels with positives only) or ``"nan"`` (the result is nan).

    >>> mean_average_precision([[1, 0], [0, 0], [1, 0]], [[0.9, 0.2], [0.8, 0.1], [0.3, 0.5]])
    0.41666666666666663
    >>> mean_average_precision([[1, 0], [0, 0], [1, 0]], [[0.9, 0.2], [0.8, 0.1], [0.3, 0.5]],
    ...                        no_positive="exclude")
    0.8333333333333333
    """
    ap = average_precision_per_label(y_true, scores)
    if no_positive == "zero":
        return float(np.nan_to_num(ap, nan=0.0).mean())
    if no_positive == "exclude":
        return float(np.nanmean(ap)) if (~np.isnan(ap)).any() else float("nan")
    if no_positive == "nan":
        return float(ap.mean())
    raise ValueError(f"no_positive must be 'zero', 'exclude' or 'nan', got {no_positive!r}")


def _mulcon_doc(fn):
    fn.__doc__ = (
        (fn.__doc__ or "")
        + r"""
    ``threshold`` (default 0.5) binarises the scores; ``top_k=k`` (a positive integer ≤ L) keeps,
    per sample, the k highest scores that are also ≥ ``threshold`` (ML-GCN/MulCon
    ``overall_topk``); ``top_k=k, threshold=None`` is the plain top-k. Ties at the k-th place go to
    the higher label index (``torch.topk``, which ML-GCN calls, documents no order among ties; see
    "Ranking metrics" in the module docstring).

    ``convention="paper"`` (default) is ML-GCN's ``AveragePrecisionMeter.evaluation`` (used by
    MulCon): a class never predicted counts :math:`N_{pred}=1`, and a 0/0 elsewhere (a class
    without positives in CR, nothing correct in CF1/OF1) is ``nan``; ``zero_division`` is not used.
    ``convention="sklearn"``: a 0/0 ratio is ``zero_division`` (``np.nan`` drops the class) and
    CF1/OF1 are 0 when nothing is correct, matching ``precision_score``/``recall_score``.
    """
    )
    return fn


def _mulcon(kernel, y_true, scores, threshold, top_k, convention, zero_division) -> float:
    return _thresholded(kernel, y_true, scores, threshold, convention, zero_division, top_k)


@_mulcon_doc
def cp(
    y_true,
    scores,
    threshold: float | None = 0.5,
    *,
    top_k: int | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r"""Per-class precision averaged over classes, :math:`CP = \frac1L\sum_c N^c_{correct}/N^c_{pred}`.

    Equal to ``precision_score(average="macro")`` under both conventions with
    ``zero_division=0`` (a class never predicted counts 0: ML-GCN's 0/1).

    >>> cp([[1, 0], [1, 1]], [[0.9, 0.6], [0.4, 0.7]])   # class 0: 1/1, class 1: 1/2
    0.75
    """
    return _mulcon("CP", y_true, scores, threshold, top_k, convention, zero_division)


@_mulcon_doc
def cr(
    y_true,
    scores,
    threshold: float | None = 0.5,
    *,
    top_k: int | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r"""Per-class recall averaged over classes, :math:`CR = \frac1L\sum_c N^c_{correct}/N^c_{gt}`.

    Equal to ``recall_score(average="macro")`` when every class has a positive. A class without
    positives makes CR ``nan`` under ``"paper"`` (ML-GCN's 0/0) and counts ``zero_division``
    under ``"sklearn"``:

    >>> y, s = [[1, 0], [1, 0]], [[0.9, 0.1], [0.8, 0.2]]   # class 1 has no positive
    >>> cr(y, s), cr(y, s, convention="sklearn")
    (nan, 0.5)
    >>> cr([[1, 0], [1, 1]], [[0.9, 0.6], [0.4, 0.7]])   # class 0: 1/2, class 1: 1/1
    0.75
    """
    return _mulcon("CR", y_true, scores, threshold, top_k, convention, zero_division)


@_mulcon_doc
def cf1(
    y_true,
    scores,
    threshold: float | None = 0.5,
    *,
    top_k: int | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r""":math:`CF1 = 2\,CP\,CR/(CP+CR)` — the harmonic mean of CP and CR, not the macro-F1.

    With nothing correct (CP = CR = 0) it is ``nan`` under ``"paper"`` (ML-GCN) and 0 under
    ``"sklearn"``:

    >>> cf1([[1, 0], [1, 1]], [[0.9, 0.6], [0.4, 0.7]])
    0.75
    >>> y, s = [[1, 0], [0, 1]], [[0.1, 0.9], [0.8, 0.2]]   # every prediction wrong
    >>> cf1(y, s), cf1(y, s, convention="sklearn")
    (nan, 0.0)
    """
    return _mulcon("CF1", y_true, scores, threshold, top_k, convention, zero_division)


@_mulcon_doc
def op(
    y_true,
    scores,
    threshold: float | None = 0.5,
    *,
    top_k: int | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r"""Overall precision :math:`OP=\sum_c N^c_{correct}/\sum_c \max(N^c_{pred}, 1)` (``"paper"``).

    ``"paper"`` (ML-GCN ``Np[Np == 0] = 1``): each class that is never predicted adds 1 to the
    denominator. ``"sklearn"``: :math:`\sum_c N^c_{correct}/\sum_c N^c_{pred}` =
    ``precision_score(average="micro")``. They differ only when some class is never predicted:

    >>> y, s = [[1, 0], [1, 0]], [[0.9, 0.1], [0.8, 0.2]]   # class 1 never predicted
    >>> round(op(y, s), 4), op(y, s, convention="sklearn")      # 2/(2+1) vs 2/2
    (0.6667, 1.0)
    >>> op([[1, 0], [1, 1]], [[0.9, 0.6], [0.4, 0.7]])
    0.6666666666666666
    """
    return _mulcon("OP", y_true, scores, threshold, top_k, convention, zero_division)


@_mulcon_doc
def or_(
    y_true,
    scores,
    threshold: float | None = 0.5,
    *,
    top_k: int | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r"""Overall recall :math:`OR=\sum_c N^c_{correct}/\sum_c N^c_{gt}` (``recall_score(average="micro")``).

    No positive at all: ``nan`` under ``"paper"``, ``zero_division`` under ``"sklearn"``.

    >>> or_([[1, 0], [1, 1]], [[0.9, 0.6], [0.4, 0.7]])
    0.6666666666666666
    """
    return _mulcon("OR", y_true, scores, threshold, top_k, convention, zero_division)


@_mulcon_doc
def of1(
    y_true,
    scores,
    threshold: float | None = 0.5,
    *,
    top_k: int | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
) -> float:
    r""":math:`OF1 = 2\,OP\,OR/(OP+OR)`.

    ``"sklearn"``: equal to micro-F1 whenever something is predicted and something is true.
    ``"paper"`` uses ML-GCN's OP (see :func:`op`), so it is lower when a class is never predicted,
    and ``nan`` when nothing is correct:

    >>> y, s = [[1, 0], [1, 0]], [[0.9, 0.1], [0.8, 0.2]]   # class 1 never predicted
    >>> round(of1(y, s), 4), of1(y, s, convention="sklearn")    # OP 2/3, OR 1
    (0.8, 1.0)
    >>> of1([[1, 0], [1, 1]], [[0.9, 0.6], [0.4, 0.7]], top_k=1)   # top-1: labels 0 and 1 predicted
    0.8
    """
    return _mulcon("OF1", y_true, scores, threshold, top_k, convention, zero_division)


# --------------------------------------------------------------------------------------------
# evaluate(): the two protocols
# --------------------------------------------------------------------------------------------

_TOPK_RE = re.compile(r"^(CP|CR|CF1|OP|OR|OF1)_top(\d+)$")
_PAK_RE = re.compile(r"^precision_at_(\d+)$")


def available_metrics() -> list[str]:
    """Names :func:`evaluate` accepts (``precision_at_K`` and ``<MulCon>_topK`` for any K)."""
    return [
        "hamming_accuracy", "hamming_loss", "subset_accuracy", "example_f1", "micro_f1", "macro_f1",
        "precision_at_1", "precision_at_3", "precision_at_5", "mAP", *MULCON_METRICS,
    ]  # fmt: skip


def _parse_metric(name: str) -> tuple[str, str, int | None]:
    """→ (kind, kernel-or-name, k) with kind in {"threshold", "pak", "map"}."""
    if name in _KERNELS:
        return "threshold", name, None
    m = _TOPK_RE.match(name)
    if m:
        return "threshold", m.group(1), int(m.group(2))
    m = _PAK_RE.match(name)
    if m:
        return "pak", name, int(m.group(1))
    if name == "mAP":
        return "map", name, None
    raise ValueError(f"unknown metric {name!r}; available: {', '.join(available_metrics())}")


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    ``values[m]`` is metric ``m``; ``thresholds[m]`` the threshold it used (``None`` for
    threshold-free metrics). ``protocol`` is ``"paper"`` (threshold tuned on the evaluated set:
    optimistic) or ``"honest"`` (tuned on validation).
    """

    protocol: str
    values: dict[str, float]
    thresholds: dict[str, float | None]
    convention: str = "paper"
    grid: list[float] = field(default_factory=list)

    def to_records(self, dataset: str, method: str, seed: int | None) -> list[dict[str, Any]]:
        """Tidy records ``{"dataset","method","protocol","metric","seed","value","threshold"}``."""
        return [
            {
                "dataset": dataset,
                "method": method,
                "protocol": self.protocol,
                "metric": m,
                "seed": None if seed is None else int(seed),
                "value": float(v),
                "threshold": self.thresholds.get(m),
            }
            for m, v in self.values.items()
        ]

    def __getitem__(self, metric: str) -> float:
        return self.values[metric]

    def __repr__(self) -> str:
        tag = (
            "optimistic: threshold tuned on the evaluated set"
            if self.protocol == "paper"
            else ("threshold tuned on validation")
        )
        width = max((len(m) for m in self.values), default=6)
        lines = [f"Evaluation(protocol={self.protocol!r} [{tag}], convention={self.convention!r})"]
        for m, v in self.values.items():
            t = self.thresholds.get(m)
            lines.append(f"  {m:<{width}}  {v:.4f}   threshold={'-' if t is None else f'{t:g}'}")
        return "\n".join(lines)


def _grid_values(
    y: np.ndarray,
    s: np.ndarray,
    names: Sequence[str],
    grid: np.ndarray,
    convention: str,
    zero_division: float,
) -> dict[str, np.ndarray]:
    """Every threshold metric at every grid threshold: {name: (T,) array}."""
    out: dict[str, np.ndarray] = {}
    base = _predictions(s, grid)  # (T, N, L), shared by all plain threshold metrics
    topk_cache: dict[int, np.ndarray] = {}
    for name in names:
        kind, kernel, k = _parse_metric(name)
        if kind != "threshold":
            continue
        if k is None:
            P = base
        else:
            if k not in topk_cache:
                topk_cache[k] = base & _topk_mask(s, k)[None]
            P = topk_cache[k]
        out[name] = _KERNELS[kernel](y, P, convention, zero_division)
    return out


def _best_index(values: np.ndarray, lower_is_better: bool) -> int | None:
    if np.isnan(values).all():
        return None
    # first best: the authors' running max keeps the first (lowest) threshold on ties
    return int(np.nanargmin(values) if lower_is_better else np.nanargmax(values))


def evaluate(
    y_true,
    scores,
    protocol: Protocol = "honest",
    y_val=None,
    scores_val=None,
    thresholds: Sequence[float] | np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
    no_positive: Literal["zero", "exclude", "nan"] = "zero",
) -> Evaluation:
    """Evaluate scores under a threshold protocol.

    Args:
        y_true, scores: the evaluated (test) set, ``(N, L)``; scores in [0, 1].
        protocol: ``"paper"`` — each threshold-dependent metric takes its best value over
            ``thresholds`` **on this set** (what C-GMVAE / MulSupCon's code does; optimistic).
            ``"honest"`` — each metric's threshold is the best one on ``(y_val, scores_val)``, then
            applied to this set.
        y_val, scores_val: the validation set (required by ``"honest"``).
        thresholds: the grid, default :data:`PAPER_THRESHOLDS` (0.1, …, 0.9).
        metrics: names (default :data:`DEFAULT_METRICS`; see :func:`available_metrics`).
        convention: ``"paper"`` (default, as every metric function) or ``"sklearn"`` — see the
            module docstring.
        zero_division, no_positive: as in the metric functions.

    Threshold-free metrics (``precision_at_k``, ``mAP``) get ``threshold=None``. Ties between
    thresholds go to the lowest one. Everything is vectorised over the grid: a yeast-size call
    (917 × 14, 9 thresholds) takes a few milliseconds.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random((50, 4)) < 0.4
    >>> s = np.clip(y * 0.3 + rng.random((50, 4)) * 0.7, 0, 1)
    >>> ev = evaluate(y[:25], s[:25], "honest", y_val=y[25:], scores_val=s[25:])
    >>> sorted(ev.values) == sorted(DEFAULT_METRICS)
    True
    """
    if protocol not in ("paper", "honest"):
        raise ValueError(f"protocol must be 'paper' or 'honest', got {protocol!r}")
    _check_convention(convention)
    zd = _check_zero_division(zero_division)
    names = list(DEFAULT_METRICS if metrics is None else metrics)
    parsed = {n: _parse_metric(n) for n in names}
    grid = PAPER_THRESHOLDS if thresholds is None else _check_grid(thresholds)
    y = _check_y(y_true)
    for n in names:  # CP_top0, precision_at_99 on 14 labels: refuse before any work
        if parsed[n][2] is not None:
            _check_k(parsed[n][2], y.shape[1], f"k of {n!r}")
    s = _check_scores(scores, y)
    thr_names = [n for n in names if parsed[n][0] == "threshold"]

    if protocol == "honest" and thr_names:
        if y_val is None or scores_val is None:
            raise ValueError(
                "protocol='honest' needs the validation set to choose thresholds: pass "
                "y_val=... and scores_val=... (model scores on the validation split), or use "
                "protocol='paper' (threshold tuned on the test set: optimistic)"
            )
        yv = _check_y(y_val)
        if yv.shape[1] != y.shape[1]:
            raise ValueError(
                f"y_val has {yv.shape[1]} labels but y_true has {y.shape[1]}: same label set needed"
            )
        sv = _check_scores(scores_val, yv, name="scores_val")
        select = _grid_values(yv, sv, thr_names, grid, convention, zd)
    else:
        select = None

    test = _grid_values(y, s, thr_names, grid, convention, zd)
    values: dict[str, float] = {}
    chosen: dict[str, float | None] = {}
    for name in names:
        kind, _, k = parsed[name]
        if kind == "pak":
            values[name], chosen[name] = precision_at_k(y, s, k=k), None
        elif kind == "map":
            values[name], chosen[name] = mean_average_precision(y, s, no_positive=no_positive), None
        else:
            src = test[name] if select is None else select[name]
            idx = _best_index(src, name in _LOWER_IS_BETTER)
            if idx is None:
                values[name], chosen[name] = float("nan"), None
            else:
                values[name], chosen[name] = float(test[name][idx]), float(round(grid[idx], 10))
    return Evaluation(
        protocol=protocol,
        values=values,
        thresholds=chosen,
        convention=convention,
        grid=[float(round(t, 10)) for t in grid],
    )


def evaluate_both(
    y_true,
    scores,
    y_val,
    scores_val,
    *,
    dataset: str,
    method: str,
    seed: int | None,
    thresholds: Sequence[float] | np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    convention: Convention = "paper",
    zero_division: float = 0.0,
    no_positive: Literal["zero", "exclude", "nan"] = "zero",
) -> list[dict[str, Any]]:
    """Tidy records of both protocols (``paper`` then ``honest``) for one model run.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random((40, 3)) < 0.5
    >>> s = rng.random((40, 3))
    >>> recs = evaluate_both(y[:20], s[:20], y[20:], s[20:], dataset="toy", method="random", seed=0)
    >>> len(recs), sorted({r["protocol"] for r in recs})
    (12, ['honest', 'paper'])
    """
    kw = dict(
        thresholds=thresholds,
        metrics=metrics,
        convention=convention,
        zero_division=zero_division,
        no_positive=no_positive,
    )
    recs: list[dict[str, Any]] = []
    for protocol in ("paper", "honest"):
        ev = evaluate(y_true, scores, protocol, y_val=y_val, scores_val=scores_val, **kw)
        recs.extend(ev.to_records(dataset, method, seed))
    return recs
