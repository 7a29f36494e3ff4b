"""mlcl.metrics: equality with scikit-learn (hypothesis), hand-computed paper convention, protocols."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mlcl import metrics as M

# ----------------------------------------------------------------------------------------------
# strategies: small matrices with labels without positives, samples without labels, empty
# predictions, and many tied scores (scores drawn from a coarse grid half of the time)
# ----------------------------------------------------------------------------------------------


@st.composite
def multilabel(draw, min_n=1, max_n=25, min_l=2, max_l=7):
    # min_l=2: scikit-learn reads a one-column indicator matrix as binary, not multilabel
    n = draw(st.integers(min_n, max_n))
    n_labels = draw(st.integers(min_l, max_l))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.9]))
    y = (rng.random((n, n_labels)) < p).astype(np.int64)
    if draw(st.booleans()) and n > 1:  # force some empty samples
        y[rng.random(n) < 0.3] = 0
    if draw(st.booleans()) and n_labels > 1:  # force some labels without positives
        y[:, rng.random(n_labels) < 0.3] = 0
    if draw(st.booleans()):
        s = rng.integers(0, 11, size=(n, n_labels)) / 10.0  # ties, and exact grid values
    else:
        s = rng.random((n, n_labels))
    if draw(st.booleans()):  # correlate the scores with the truth
        s = np.clip(0.5 * s + 0.5 * y, 0.0, 1.0)
    return y, s


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZD = [0.0, 1.0, np.nan]


def _close(a, b):
    if np.isnan(a) or np.isnan(b):
        return np.isnan(a) and np.isnan(b)
    return abs(a - b) < 1e-12


def _sk(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(*args, **kw))


# ----------------------------------------------------------------------------------------------
# scikit-learn equality
# ----------------------------------------------------------------------------------------------


@SETTINGS
@given(data=multilabel(), thr=st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), zd=st.sampled_from(ZD))
def test_f1_family_equals_sklearn(data, thr, zd):
    y, s = data
    pred = (s >= thr).astype(int)
    for ours, avg in ((M.example_f1, "samples"), (M.micro_f1, "micro"), (M.macro_f1, "macro")):
        expect = _sk(skm.f1_score, y, pred, average=avg, zero_division=zd)
        got = ours(y, s, threshold=thr, convention="sklearn", zero_division=zd)
        assert _close(got, expect), (avg, zd, got, expect)


@SETTINGS
@given(data=multilabel(), thr=st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_hamming_and_subset_equal_sklearn(data, thr):
    y, s = data
    pred = (s >= thr).astype(int)
    assert _close(M.hamming_loss(y, s, thr), _sk(skm.hamming_loss, y, pred))
    assert _close(M.hamming_accuracy(y, s, thr), 1.0 - _sk(skm.hamming_loss, y, pred))
    assert _close(M.subset_accuracy(y, s, thr), _sk(skm.accuracy_score, y, pred))


@SETTINGS
@given(data=multilabel(min_n=2))
def test_average_precision_equals_sklearn(data):
    y, s = data
    ap = M.average_precision_per_label(y, s)
    for c in range(y.shape[1]):
        if y[:, c].any():
            assert abs(ap[c] - _sk(skm.average_precision_score, y[:, c], s[:, c])) < 1e-12
        else:
            assert np.isnan(ap[c])
    # "zero" = MulSupCon's np.mean(average_precision_score(average=None)) = sklearn macro
    per_label = np.array(
        [_sk(skm.average_precision_score, y[:, c], s[:, c]) for c in range(y.shape[1])]
    )
    assert abs(M.mean_average_precision(y, s) - per_label.mean()) < 1e-12
    if y.any(axis=0).any():
        assert abs(M.mean_average_precision(y, s, no_positive="exclude") - np.nanmean(ap)) < 1e-12


@SETTINGS
@given(data=multilabel(), thr=st.sampled_from([0.3, 0.5, 0.7]), zd=st.sampled_from([0.0, 1.0]))
def test_mulcon_set_equals_sklearn_precision_recall(data, thr, zd):
    y, s = data
    pred = (s >= thr).astype(int)
    kw = dict(zero_division=zd)
    ours = dict(zero_division=zd, convention="sklearn")
    p_c = _sk(skm.precision_score, y, pred, average="macro", **kw)
    r_c = _sk(skm.recall_score, y, pred, average="macro", **kw)
    assert _close(M.cp(y, s, thr, **ours), p_c)
    assert _close(M.cr(y, s, thr, **ours), r_c)
    assert _close(M.cf1(y, s, thr, **ours), 2 * p_c * r_c / (p_c + r_c) if p_c + r_c else 0.0)
    assert _close(
        M.op(y, s, thr, **ours), _sk(skm.precision_score, y, pred, average="micro", **kw)
    )
    assert _close(M.or_(y, s, thr, **ours), _sk(skm.recall_score, y, pred, average="micro", **kw))
    if pred.sum() and y.sum():
        assert _close(M.of1(y, s, thr, **ours), M.micro_f1(y, s, thr))
    # CP is scikit-learn's macro precision under the paper convention too (ML-GCN's 0/1 = 0)
    assert _close(M.cp(y, s, thr), _sk(skm.precision_score, y, pred, average="macro", zero_division=0))


# ----------------------------------------------------------------------------------------------
# the paper convention: direct re-implementations of the authors' formulas + hand examples
# ----------------------------------------------------------------------------------------------


def _authors_example_f1(y, pred):
    num = 2 * (y * pred).sum(axis=1)
    den = y.sum(axis=1) + pred.sum(axis=1)
    keep = den != 0
    return float(np.mean(num[keep] / den[keep])) if keep.any() else float("nan")


def _authors_macro_f1(y, pred):
    tp = (y * pred).sum(axis=0)
    fp = ((1 - y) * pred).sum(axis=0)
    fn = (y * (1 - pred)).sum(axis=0)
    return float(np.mean(2 * tp / (2 * tp + fp + fn + 1e-6)))


def _authors_p_at_k(y, s, k):
    order = np.argsort(s, axis=1, kind="stable")[:, ::-1]
    return float(np.mean([y[i, order[i, :k]].sum() / k for i in range(len(y))]))


@SETTINGS
@given(data=multilabel(min_l=1), thr=st.sampled_from([0.1, 0.5, 0.9]))
def test_paper_convention_matches_authors_formulas(data, thr):
    y, s = data
    pred = (s >= thr).astype(int)
    assert _close(M.example_f1(y, s, thr, convention="paper"), _authors_example_f1(y, pred))
    assert abs(M.macro_f1(y, s, thr, convention="paper") - _authors_macro_f1(y, pred)) < 1e-12
    # example-F1 paper == sklearn with zero_division=nan (both-empty samples excluded)
    assert _close(
        M.example_f1(y, s, thr, convention="paper"),
        M.example_f1(y, s, thr, convention="sklearn", zero_division=np.nan),
    )
    for k in range(1, min(3, y.shape[1]) + 1):
        assert _close(M.precision_at_k(y, s, k), _authors_p_at_k(y, s, k))


def test_paper_macro_f1_hand_example():
    # label 0: tp=2 -> 4/(4+1e-6); label 1: tp=0, fp=1 -> 0; label 2: no positive, no prediction -> 0
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.1, 0.2], [0.8, 0.6, 0.1], [0.2, 0.1, 0.3]])
    assert M.macro_f1(y, s, convention="paper") == pytest.approx((4 / (4 + 1e-6)) / 3, abs=1e-15)
    assert M.macro_f1(y, s, convention="sklearn") == pytest.approx(1 / 3)  # zero_division=0
    assert M.macro_f1(y, s, convention="sklearn", zero_division=1.0) == pytest.approx(2 / 3)
    assert M.macro_f1(y, s, convention="sklearn", zero_division=np.nan) == pytest.approx(1 / 2)
    # zero_division never changes the paper number
    assert M.macro_f1(y, s, convention="paper", zero_division=1.0) == M.macro_f1(
        y, s, convention="paper"
    )


def test_paper_example_f1_hand_example():
    # sample 0: y={0,1}, pred={0} -> 2/3; sample 1: y={}, pred={} -> dropped; sample 2: y={2}, pred={1} -> 0
    y = np.array([[1, 1, 0], [0, 0, 0], [0, 0, 1]])
    s = np.array([[0.9, 0.4, 0.1], [0.1, 0.2, 0.3], [0.1, 0.7, 0.2]])
    assert M.example_f1(y, s, convention="paper") == pytest.approx((2 / 3 + 0) / 2)
    assert M.example_f1(y, s, convention="sklearn") == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert M.example_f1(y, s, convention="sklearn", zero_division=1.0) == pytest.approx(
        (2 / 3 + 1 + 0) / 3
    )
    # everything empty: the authors' np.mean([]) -> nan
    assert np.isnan(M.example_f1(np.zeros((2, 2)), np.zeros((2, 2)), convention="paper"))


def test_precision_at_1_hand_example_and_ties():
    y = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    s = np.array([[0.2, 0.9, 0.1], [0.3, 0.6, 0.1], [0.9, 0.1, 0.1]])
    assert M.precision_at_k(y, s, 1) == pytest.approx(1 / 3)
    # a tie goes to the higher label index (authors' argsort(...)[:, ::-1])
    assert M.precision_at_k([[1, 0]], [[0.5, 0.5]], 1) == 0.0
    assert M.precision_at_k([[0, 1]], [[0.5, 0.5]], 1) == 1.0
    assert M.precision_at_k(y, s, 3) == pytest.approx((1 + 1 + 0) / 9)


def test_map_hand_example():
    # label 0 ranking: +(0.9) -(0.8) +(0.3) -> AP = (1/1 + 2/3) / 2
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.2], [0.8, 0.1], [0.3, 0.5]])
    assert M.mean_average_precision(y, s, no_positive="exclude") == pytest.approx(5 / 6)
    assert M.mean_average_precision(y, s) == pytest.approx(5 / 12)
    assert np.isnan(M.mean_average_precision(y, s, no_positive="nan"))
    # tied scores form one step: + and - tied at the top -> precision 1/2 for that positive
    assert M.mean_average_precision([[1], [0]], [[0.5], [0.5]]) == pytest.approx(0.5)


def test_mulcon_top_k_hand_example():
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0]])
    s = np.array([[0.9, 0.8, 0.4, 0.1], [0.7, 0.6, 0.55, 0.2]])
    # top-2 that are also >= 0.5: sample 0 -> {0, 1}; sample 1 -> {0, 1}
    sk = dict(convention="sklearn")
    assert M.op(y, s, top_k=2, **sk) == pytest.approx(2 / 4)
    assert M.or_(y, s, top_k=2, **sk) == pytest.approx(2 / 3)
    # per class: precision 1/2, 1/2, 0 (never predicted), 0 (never predicted); recall 1, 1, 0, 0 (no positive)
    assert M.cp(y, s, top_k=2, **sk) == pytest.approx(0.25)
    assert M.cr(y, s, top_k=2, **sk) == pytest.approx(0.5)
    assert M.cf1(y, s, top_k=2, **sk) == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    # plain top-2 (threshold=None): sample 1 keeps {0, 1} too; sample 0 unchanged
    assert M.op(y, s, None, top_k=2, **sk) == pytest.approx(2 / 4)
    # top-3 with threshold: sample 0 -> {0, 1} (0.4 < 0.5), sample 1 -> {0, 1, 2}
    assert M.op(y, s, top_k=3, **sk) == pytest.approx(2 / 5)
    assert M.op(y, s, None, top_k=3, **sk) == pytest.approx(3 / 6)
    # paper (ML-GCN): classes 2 and 3 never predicted in top-2 -> Np = 1 each; class 3 has no
    # positive -> CR = nan, CF1 = nan
    assert M.op(y, s, top_k=2) == pytest.approx(2 / (4 + 2))
    assert M.cp(y, s, top_k=2) == pytest.approx(0.25)
    assert np.isnan(M.cr(y, s, top_k=2)) and np.isnan(M.cf1(y, s, top_k=2))
    assert M.or_(y, s, top_k=2) == pytest.approx(2 / 3)
    assert M.op(y, s, top_k=3) == pytest.approx(2 / (5 + 1))  # class 3 never predicted


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


def test_torch_inputs_equal_numpy(device):
    rng = np.random.default_rng(1)
    y = (rng.random((40, 6)) < 0.3).astype(np.int64)
    s = rng.random((40, 6)).astype(np.float32)
    # tensors on the test device (cuda on a GPU machine): the metrics copy them to the host
    yt, st_ = torch.from_numpy(y).to(device), torch.from_numpy(s).to(device)
    for fn in (
        M.hamming_accuracy,
        M.subset_accuracy,
        M.example_f1,
        M.micro_f1,
        M.macro_f1,
        M.cp,
        M.of1,
    ):
        assert fn(yt, st_) == fn(y, s)
    assert M.precision_at_k(yt, st_, 2) == M.precision_at_k(y, s, 2)
    assert M.mean_average_precision(yt.bool(), st_.double()) == M.mean_average_precision(y, s)
    assert M.macro_f1(yt, st_.to(torch.bfloat16)) == M.macro_f1(
        y, st_.to(torch.bfloat16).float().cpu().numpy()
    )
    # gradients attached: detached, not an error
    assert M.micro_f1(yt, st_.clone().requires_grad_(True)) == M.micro_f1(y, s)
    assert M.evaluate(yt, st_, "paper").values == M.evaluate(y, s, "paper").values


def test_binary_predictions_accepted():
    y = np.array([[1, 0], [0, 1]])
    pred = np.array([[True, False], [True, True]])
    assert M.micro_f1(y, pred) == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert M.micro_f1(y, pred.astype(int)) == M.micro_f1(y, pred)


@pytest.mark.parametrize(
    "y, s, match",
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), "shape mismatch"),
        (np.zeros(3), np.zeros(3), r"2-D.*y\[None, :\]"),
        (np.array([[0, 2]]), np.array([[0.1, 0.2]]), "binary"),
        (np.array([[0, -1]]), np.array([[0.1, 0.2]]), r"\(y > 0\)"),
        (np.array([[0, 1]]), np.array([[np.nan, 0.2]]), "NaN"),
        (np.array([[0, 1]]), np.array([[-3.0, 2.0]]), "sigmoid"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "empty"),
    ],
)
def test_input_errors_name_the_fix(y, s, match):
    with pytest.raises(ValueError, match=match):
        M.micro_f1(y, s)


def test_argument_errors():
    y, s = np.array([[0, 1]]), np.array([[0.2, 0.7]])
    with pytest.raises(ValueError, match="convention"):
        M.macro_f1(y, s, convention="papers")
    with pytest.raises(ValueError, match="zero_division"):
        M.macro_f1(y, s, zero_division=0.5)
    with pytest.raises(ValueError, match="no_positive"):
        M.mean_average_precision(y, s, no_positive="skip")
    with pytest.raises(ValueError, match="k must be between 1 and the number of labels"):
        M.precision_at_k(y, s, 3)
    with pytest.raises(ValueError, match="unknown metric"):
        M.evaluate(y, s, "paper", metrics=["f1"])
    # ranking metrics accept logits
    assert M.precision_at_k(y, np.array([[-2.0, 3.0]]), 1) == 1.0


# ----------------------------------------------------------------------------------------------
# evaluate(): protocols
# ----------------------------------------------------------------------------------------------


def _toy(n=200, n_labels=5, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < 0.3).astype(int)
    s = np.clip(0.35 * y + 0.65 * rng.random((n, n_labels)), 0, 1)
    return y, s


def test_paper_protocol_is_max_over_grid_on_the_test_set():
    y, s = _toy()
    ev = M.evaluate(y, s, "paper", metrics=[*M.DEFAULT_METRICS, "hamming_loss", "subset_accuracy"])
    grid = M.PAPER_THRESHOLDS
    for name, fn, best in (
        ("micro_f1", lambda t: M.micro_f1(y, s, t), max),
        ("macro_f1", lambda t: M.macro_f1(y, s, t, convention="paper"), max),
        ("example_f1", lambda t: M.example_f1(y, s, t, convention="paper"), max),
        ("hamming_accuracy", lambda t: M.hamming_accuracy(y, s, t), max),
        ("hamming_loss", lambda t: M.hamming_loss(y, s, t), min),
        ("subset_accuracy", lambda t: M.subset_accuracy(y, s, t), max),
    ):
        vals = [fn(t) for t in grid]
        assert ev.values[name] == pytest.approx(best(vals), abs=1e-12)
        assert ev.thresholds[name] == pytest.approx(grid[vals.index(best(vals))])  # first best
    assert ev.thresholds["precision_at_1"] is None and ev.thresholds["mAP"] is None
    assert ev.values["precision_at_1"] == M.precision_at_k(y, s, 1)
    assert ev.values["mAP"] == M.mean_average_precision(y, s)
    assert ev.protocol == "paper" and "optimistic" in repr(ev)


def test_honest_protocol_uses_validation_thresholds():
    y, s = _toy(seed=1)
    yv, sv = _toy(seed=2)
    ev = M.evaluate(
        y, s, "honest", y_val=yv, scores_val=sv, metrics=["micro_f1", "macro_f1", "mAP"]
    )
    on_val = M.evaluate(yv, sv, "paper", metrics=["micro_f1", "macro_f1"])
    for name in ("micro_f1", "macro_f1"):
        assert ev.thresholds[name] == on_val.thresholds[name]
    assert ev.values["micro_f1"] == pytest.approx(M.micro_f1(y, s, ev.thresholds["micro_f1"]))
    assert ev.values["macro_f1"] == pytest.approx(
        M.macro_f1(y, s, ev.thresholds["macro_f1"], convention="paper")
    )
    paper = M.evaluate(y, s, "paper", metrics=["micro_f1", "macro_f1"])
    assert all(
        paper.values[m] >= ev.values[m] for m in ("micro_f1", "macro_f1")
    )  # paper is optimistic


@SETTINGS
@given(data=multilabel(min_n=4))
def test_paper_protocol_never_below_honest(data):
    y, s = data
    half = len(y) // 2
    kw = dict(metrics=["example_f1", "micro_f1", "macro_f1", "hamming_accuracy", "CF1", "OF1_top3"])
    if y.shape[1] < 3:
        kw["metrics"] = kw["metrics"][:-1]
    p = M.evaluate(y[half:], s[half:], "paper", **kw)
    h = M.evaluate(y[half:], s[half:], "honest", y_val=y[:half], scores_val=s[:half], **kw)
    for m in p.values:
        if not np.isnan(p.values[m]) and not np.isnan(h.values[m]):
            assert p.values[m] >= h.values[m] - 1e-12


def test_honest_without_validation_names_the_fix():
    y, s = _toy()
    with pytest.raises(ValueError, match="y_val=.*scores_val="):
        M.evaluate(y, s, "honest")
    with pytest.raises(ValueError, match="protocol"):
        M.evaluate(y, s, "test")
    # threshold-free metrics only: no validation set needed
    assert M.evaluate(y, s, "honest", metrics=["mAP"]).values["mAP"] == M.mean_average_precision(
        y, s
    )


def test_mulcon_names_in_evaluate():
    y, s = _toy()
    ev = M.evaluate(y, s, "paper", metrics=list(M.MULCON_METRICS), thresholds=[0.5])
    assert ev.values["CP"] == M.cp(y, s, 0.5)
    assert ev.values["OF1_top3"] == M.of1(y, s, 0.5, top_k=3)
    assert ev.thresholds["CR_top3"] == 0.5


def test_records_and_evaluate_both():
    y, s = _toy(seed=3)
    yv, sv = _toy(seed=4)
    ev = M.evaluate(y, s, "paper")
    recs = ev.to_records("yeast", "BR", 0)
    assert {r["metric"] for r in recs} == set(M.DEFAULT_METRICS)
    assert set(recs[0]) == {"dataset", "method", "protocol", "metric", "seed", "value", "threshold"}
    both = M.evaluate_both(y, s, yv, sv, dataset="yeast", method="BR", seed=0)
    assert len(both) == 2 * len(M.DEFAULT_METRICS)
    assert [r for r in both if r["protocol"] == "paper"] == recs
    assert list(M.PAPER_THRESHOLDS) == [i / 10.0 for i in range(1, 10)]
    # the default grid of the brief, np.arange(0.1, 1.0, 0.1), gives the same choices here
    alt = M.evaluate(y, s, "paper", thresholds=np.arange(0.1, 1.0, 0.1))
    assert alt.values == ev.values


def test_evaluate_is_fast_on_yeast_size():
    rng = np.random.default_rng(0)
    y = (rng.random((917, 14)) < 0.3).astype(int)
    s = rng.random((917, 14))
    yv, sv = y[:300], s[:300]
    M.evaluate(y, s, "honest", y_val=yv, scores_val=sv)  # warm-up
    t0 = time.perf_counter()
    for _ in range(5):
        M.evaluate(y, s, "honest", y_val=yv, scores_val=sv)
    per_call = (time.perf_counter() - t0) / 5
    assert per_call < 0.1, f"evaluate took {per_call * 1e3:.1f} ms on 917x14"


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(M, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 15 and result.failed == 0


# ----------------------------------------------------------------------------------------------
# nonsense arguments are refused (issue 14, item 5)
# ----------------------------------------------------------------------------------------------

_Y2, _S2 = np.array([[0, 1], [1, 0]]), np.array([[0.2, 0.7], [0.6, 0.4]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 5, 1.0001, -1, -1e-9])
@pytest.mark.parametrize(
    "fn", [M.hamming_accuracy, M.subset_accuracy, M.example_f1, M.micro_f1, M.macro_f1, M.cp, M.of1]
)
def test_threshold_outside_unit_interval_is_refused(fn, bad):
    with pytest.raises(ValueError, match=r"threshold must be a finite number in \[0, 1\]"):
        fn(_Y2, _S2, bad)


@pytest.mark.parametrize("bad", ["0.5", True, None, [0.5]])
def test_threshold_of_wrong_type_is_refused(bad):
    with pytest.raises((TypeError, ValueError), match="threshold"):
        M.micro_f1(_Y2, _S2, bad)


def test_threshold_bounds_are_allowed():
    # 0 predicts everything, 1 only scores equal to 1: both legitimate, checked against sklearn
    for t in (0, 0.0, 1, np.float32(1.0), np.int64(0)):
        pred = (_S2 >= float(t)).astype(int)
        assert M.micro_f1(_Y2, _S2, t) == _sk(skm.f1_score, _Y2, pred, average="micro")


@pytest.mark.parametrize(
    "grid", [[np.nan], [0.5, np.nan], [0.5, 2.0], [-0.1, 0.5], [np.inf], np.array([[0.2, 1.5]])]
)
def test_grid_with_a_bad_value_is_refused(grid):
    with pytest.raises(ValueError, match=r"every threshold must be a finite number in \[0, 1\]"):
        M.evaluate(_Y2, _S2, "paper", thresholds=grid)
    with pytest.raises(ValueError, match="every threshold"):
        M.evaluate(_Y2, _S2, "honest", y_val=_Y2, scores_val=_S2, thresholds=grid)


def test_empty_or_non_numeric_grid_is_refused():
    with pytest.raises(ValueError, match="thresholds is empty"):
        M.evaluate(_Y2, _S2, "paper", thresholds=[])
    with pytest.raises(TypeError, match="thresholds must be a list of numbers"):
        M.evaluate(_Y2, _S2, "paper", thresholds=["low", "high"])


@pytest.mark.parametrize("bad", [1.9, 1.0, "1", True, None])
def test_k_must_be_an_integer(bad):
    with pytest.raises(TypeError, match="k must be a positive integer"):
        M.precision_at_k(_Y2, _S2, bad)
    if bad is not None:  # top_k=None means "no top-k", a valid choice
        with pytest.raises(TypeError, match="top_k must be a positive integer"):
            M.op(_Y2, _S2, top_k=bad)


@pytest.mark.parametrize("bad", [0, -1, 3, np.int64(3)])
def test_k_must_be_within_range(bad):
    with pytest.raises(ValueError, match=r"k must be between 1 and the number of labels \(2\)"):
        M.precision_at_k(_Y2, _S2, bad)
    with pytest.raises(ValueError, match=r"top_k must be between 1 and the number of labels \(2\)"):
        M.cf1(_Y2, _S2, top_k=bad)


def test_numpy_integer_k_is_accepted():
    assert M.precision_at_k(_Y2, _S2, np.int64(1)) == M.precision_at_k(_Y2, _S2, 1) == 1.0


@pytest.mark.parametrize("name", ["CP_top0", "OF1_top3", "precision_at_0", "precision_at_3"])
def test_evaluate_refuses_k_out_of_range(name):
    with pytest.raises(ValueError, match=rf"k of '{name}' must be between 1 and the number of labels"):
        M.evaluate(_Y2, _S2, "paper", metrics=[name])


def test_ragged_lists_are_named():
    with pytest.raises(ValueError, match=r"y_true is ragged: its rows have different lengths \(2, 1\)"):
        M.micro_f1([[1, 0], [1]], [[0.2, 0.3], [0.4, 0.5]])
    with pytest.raises(ValueError, match=r"scores is ragged.*\(N samples, L labels\)"):
        M.precision_at_k([[1, 0], [0, 1]], [[0.2, 0.3], [0.4]], 1)
    with pytest.raises(ValueError, match="scores_val is ragged"):
        M.evaluate(_Y2, _S2, "honest", y_val=_Y2, scores_val=[[0.1], [0.2, 0.3]])
    # lists of equal-length rows are fine
    assert M.micro_f1([[1, 0], [0, 1]], [[0.9, 0.1], [0.2, 0.8]]) == 1.0


# ----------------------------------------------------------------------------------------------
# the paper convention of the MulCon set = ML-GCN's AveragePrecisionMeter.evaluation, re-stated
# ----------------------------------------------------------------------------------------------


def _mlgcn_meter(y, pred):
    """ML-GCN's ``evaluation`` re-stated (class loop; ``pred`` plays the role of scores >= 0)."""
    n_class = y.shape[1]
    n_c, n_p, n_g = np.zeros(n_class), np.zeros(n_class), np.zeros(n_class)
    for k in range(n_class):
        n_g[k] = y[:, k].sum()
        n_p[k] = pred[:, k].sum()
        n_c[k] = (y[:, k] * pred[:, k]).sum()
    n_p[n_p == 0] = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        o_p = n_c.sum() / n_p.sum()
        o_r = n_c.sum() / n_g.sum()
        o_f1 = 2 * o_p * o_r / (o_p + o_r)
        c_p = (n_c / n_p).sum() / n_class
        c_r = (n_c / n_g).sum() / n_class
        c_f1 = 2 * c_p * c_r / (c_p + c_r)
    return {"OP": o_p, "OR": o_r, "OF1": o_f1, "CP": c_p, "CR": c_r, "CF1": c_f1}


def _topk_then_threshold(s, k, thr):
    """ML-GCN's overall_topk re-stated with our documented tie rule (higher label index first)."""
    pred = np.zeros(s.shape, dtype=int)
    order = np.argsort(s, axis=1, kind="stable")[:, ::-1][:, :k]
    for i in range(len(s)):
        for j in order[i]:
            pred[i, j] = int(s[i, j] >= thr)
    return pred


_MULCON_FN = {"OP": M.op, "OR": M.or_, "OF1": M.of1, "CP": M.cp, "CR": M.cr, "CF1": M.cf1}


@SETTINGS
@given(data=multilabel(), thr=st.sampled_from([0.3, 0.5, 0.7]), k=st.integers(1, 3))
def test_paper_mulcon_set_matches_mlgcn_meter(data, thr, k):
    y, s = data
    ref = _mlgcn_meter(y, (s >= thr).astype(int))
    for name, fn in _MULCON_FN.items():
        assert _close(fn(y, s, thr), ref[name]), (name, fn(y, s, thr), ref[name])
    k = min(k, y.shape[1])
    ref_k = _mlgcn_meter(y, _topk_then_threshold(s, k, thr))
    for name, fn in _MULCON_FN.items():
        assert _close(fn(y, s, thr, top_k=k), ref_k[name]), (name, k)
    # evaluate() (default convention "paper") gives the same numbers at a one-value grid
    ev = M.evaluate(y, s, "paper", thresholds=[thr], metrics=[*_MULCON_FN, *(f"{n}_top{k}" for n in _MULCON_FN)])
    for name in _MULCON_FN:
        assert _close(ev.values[name], ref[name]) and _close(ev.values[f"{name}_top{k}"], ref_k[name])


def test_op_of1_never_predicted_class_issue_example():
    # issue 14: a class never predicted -> ML-GCN sets Np = 1: OP 2/3, OF1 0.8; scikit-learn 1.0/1.0
    y, s = [[1, 0], [1, 0]], [[0.9, 0.1], [0.8, 0.2]]
    assert M.op(y, s) == pytest.approx(2 / 3) and M.of1(y, s) == pytest.approx(0.8)
    assert M.op(y, s, convention="sklearn") == 1.0 and M.of1(y, s, convention="sklearn") == 1.0
    assert M.op(y, s, convention="sklearn") == _sk(
        skm.precision_score, np.array(y), (np.array(s) >= 0.5).astype(int), average="micro"
    )


def test_cf1_of1_nothing_correct_nan_vs_zero():
    y, s = [[1, 0], [0, 1]], [[0.1, 0.9], [0.8, 0.2]]  # every prediction wrong
    for fn in (M.cf1, M.of1):
        assert np.isnan(fn(y, s))  # ML-GCN: 0 / 0
        assert fn(y, s, convention="sklearn") == 0.0
        assert fn(y, s, convention="sklearn", zero_division=np.nan) == 0.0
    # evaluate() skips the nan thresholds when choosing, and reports nan if every one is nan
    ev = M.evaluate(y, s, "paper", metrics=["CF1", "OF1"], thresholds=[0.5, 0.05])
    assert ev.values["OF1"] == pytest.approx(M.of1(y, s, 0.05)) and ev.thresholds["OF1"] == 0.05
    ev = M.evaluate(y, s, "paper", metrics=["CF1"], thresholds=[0.5])
    assert np.isnan(ev.values["CF1"]) and ev.thresholds["CF1"] is None


# ----------------------------------------------------------------------------------------------
# float32 threshold comparison and tie orders
# ----------------------------------------------------------------------------------------------


def test_float32_scores_compared_in_float32():
    s32 = np.array([[np.float32(0.7), np.float32(0.2)]], dtype=np.float32)
    y = np.array([[1, 0]])
    # the authors: float32 array >= Python float -> compared in float32 -> 0.7f counts
    assert bool((s32 >= 0.7)[0, 0]) is True
    assert M.micro_f1(y, s32, 0.7) == 1.0
    assert M.micro_f1(y, torch.from_numpy(s32), 0.7) == 1.0
    # the same value held in float64 is below 0.7
    s64 = s32.astype(np.float64)
    assert s64[0, 0] < 0.7 and M.micro_f1(y, s64, 0.7) == 0.0
    # evaluate(): the grid value 0.7 (i / 10) is rounded to float32 the same way
    ev = M.evaluate(y, s32, "paper", metrics=["micro_f1"], thresholds=[0.7, 0.8])
    assert ev.values["micro_f1"] == 1.0 and ev.thresholds["micro_f1"] == 0.7


@SETTINGS
@given(data=multilabel(), zd=st.sampled_from([0.0, 1.0]))
def test_float32_grid_matches_the_authors_comparison(data, zd):
    y, s = data
    s32 = s.astype(np.float32)  # exact grid values included (scores drawn from i / 10)
    for i in range(1, 10):
        t = i / 10.0
        pred = (s32 >= t).astype(int)  # numpy >= 2: compared in float32, as the authors' code
        expect = _sk(skm.f1_score, y, pred, average="micro", zero_division=zd)
        assert _close(M.micro_f1(y, s32, t, zero_division=zd), expect)
        assert _close(M.macro_f1(y, s32, t), _authors_macro_f1(y, pred))
        assert _close(M.example_f1(y, s32, t), _authors_example_f1(y, pred))


def test_precision_at_k_ties_stable_higher_index_any_width():
    # 40 tied labels (beyond the 16 where old numpy's insertion sort made argsort stable)
    n_labels = 40
    s = np.full((3, n_labels), 0.5)
    y = np.zeros((3, n_labels), dtype=int)
    y[0, n_labels - 1] = 1  # the highest index wins the tie: counted
    y[1, 0] = 1  # the lowest index loses it: not counted
    y[2, [n_labels - 1, n_labels - 2, 0]] = 1
    assert M.precision_at_k(y, s, 1) == pytest.approx((1 + 0 + 1) / 3)
    assert M.precision_at_k(y, s, 2) == pytest.approx((1 + 0 + 2) / 6)
    # the same rule in the MulCon top-k variants (plain top-k, no threshold)
    assert M.op(y, s, None, top_k=1, convention="sklearn") == pytest.approx(2 / 3)
    # and the stable re-statement agrees on random tied data of every width
    rng = np.random.default_rng(0)
    for n_labels in (3, 16, 17, 64):
        s = rng.integers(0, 3, size=(50, n_labels)) / 2.0
        y = (rng.random((50, n_labels)) < 0.3).astype(int)
        for k in (1, 3):
            assert M.precision_at_k(y, s, k) == pytest.approx(_authors_p_at_k(y, s, k), abs=1e-15)


# ----------------------------------------------------------------------------------------------
# one default convention everywhere
# ----------------------------------------------------------------------------------------------


def test_functions_and_evaluate_share_the_default_convention():
    import inspect

    for fn in (M.example_f1, M.micro_f1, M.macro_f1, M.cp, M.cr, M.cf1, M.op, M.or_, M.of1, M.evaluate, M.evaluate_both):
        assert inspect.signature(fn).parameters["convention"].default == "paper", fn.__name__
    # on data where the conventions differ, a one-value grid in evaluate() equals the functions
    y = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]])  # an empty sample, a label without positives
    s = np.array([[0.9, 0.2, 0.1], [0.1, 0.2, 0.3], [0.8, 0.3, 0.2]])
    fns = {"example_f1": M.example_f1, "macro_f1": M.macro_f1, "OP": M.op, "OF1": M.of1, "CR": M.cr}
    ev = M.evaluate(y, s, "paper", thresholds=[0.5], metrics=list(fns))
    for name, fn in fns.items():
        assert _close(ev.values[name], fn(y, s, 0.5)), name
    assert ev.values["example_f1"] != M.example_f1(y, s, convention="sklearn")
    assert ev.values["OP"] != M.op(y, s, convention="sklearn")
