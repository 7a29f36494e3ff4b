"""mlcl.estimators: scikit-learn's estimator checks, model selection, determinism, devices, errors.

Every estimator runs with tiny settings (a few steps of training) so the whole file stays short;
the recipes themselves are tested by the chapters' own tests.
"""

from __future__ import annotations

import doctest
import importlib
import pickle
import random

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.estimator_checks import check_classifier_multioutput, parametrize_with_checks

from mlcl import metrics as M
from mlcl.estimators import (
    AbaloneClassifier,
    CGMVAEClassifier,
    MLPASLClassifier,
    MLPBCEClassifier,
    MLPFocalClassifier,
    MulConClassifier,
    MulSupConClassifier,
)

_MSC = dict(hidden_layer_sizes=(8,), queue_size=16, pretrain_steps=6, pretrain_batch_size=16, finetune_epochs=2,
            finetune_iters_per_epoch=3)


def tiny(device: str = "auto", random_state: int = 0) -> list:
    """One tiny instance of every estimator (and of each stage-2 mode) — seconds, not minutes."""
    kw = dict(random_state=random_state, device=device)
    return [
        MLPBCEClassifier(hidden_layer_sizes=(8,), epochs=3, batch_size=16, **kw),
        MLPFocalClassifier(hidden_layer_sizes=(8,), epochs=3, batch_size=16, **kw),
        MLPASLClassifier(hidden_layer_sizes=(8,), epochs=3, batch_size=16, **kw),
        CGMVAEClassifier(latent_dim=4, emb_size=16, epochs=2, batch_size=16, **kw),
        MulSupConClassifier(**_MSC, **kw),
        MulSupConClassifier(loss="all", mode="probe", **_MSC, **kw),
        AbaloneClassifier(pretrain_epochs=1, probe_epochs=2, batch_size=16, queue_size=32, **kw),
        AbaloneClassifier(method="L_Base", mode="finetune", body="mlp", hidden_layer_sizes=(8,), pretrain_epochs=1,
                          finetune_epochs=1, batch_size=16, **kw),
        MulConClassifier(dim=8, heads=2, n_tokens=2, width=8, image_blocks=1, proj_dim=4, stage1_epochs=1,
                         stage2_epochs=1, batch_size=16, **kw),
    ]


def _id(est) -> str:
    p = est.get_params()
    return type(est).__name__ + "".join(f"-{p[k]}" for k in ("loss", "mode", "method") if k in p)


# ------------------------------------------------------------------------------------------------
# scikit-learn's estimator checks, with the multi-label tags
_CLASS_LABELS = ("fits a column of class labels such as {1, 2}: these estimators take a 0/1 indicator "
                 "matrix and refuse other values with an error naming LabelBinarizer")
_ONE_D = ("fits 1-D class labels (single-output classification): these estimators take a 2-D 0/1 label "
          "matrix and refuse 1-D targets with an error saying y.reshape(-1, 1)")
EXPECTED_FAILURES = {
    "check_estimators_dtypes": _CLASS_LABELS,
    "check_classifier_data_not_an_array": _CLASS_LABELS,
    "check_fit2d_1feature": _CLASS_LABELS,
    "check_classifiers_one_label": _ONE_D,
    "check_classifiers_classes": _ONE_D,
    "check_classifiers_train": _ONE_D,
    "check_classifier_multioutput": (
        "asserts predict == predict_proba.round(), i.e. threshold 0.5; threshold='auto' chooses it on the "
        "validation split (test_fixed_threshold_passes_the_multioutput_check runs it with threshold=0.5)"),
}


@parametrize_with_checks(tiny(), expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_tags_declare_multilabel():
    for est in tiny():
        tags = est.__sklearn_tags__()
        assert tags.target_tags.multi_output and not tags.target_tags.single_output
        assert tags.classifier_tags.multi_label and not tags.classifier_tags.multi_class
        assert tags.estimator_type == "classifier"


def test_fixed_threshold_passes_the_multioutput_check():
    check_classifier_multioutput("MLPBCEClassifier", tiny()[0].set_params(threshold=0.5))


# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 6))
    Y = np.c_[X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5].astype(int)
    return X, Y


# which parameter a grid search varies for each estimator (two values)
GRID = {
    "MLPBCEClassifier": {"lr": [1e-3, 3e-3]},
    "MLPFocalClassifier": {"gamma": [0.0, 2.0]},
    "MLPASLClassifier": {"clip": [0.0, 0.3]},
    "CGMVAEClassifier": {"beta": [0.5, 1.0]},
    "MulSupConClassifier": {"temperature": [0.1, 0.2]},
    "AbaloneClassifier": {"temperature": [0.1, 0.2]},
    "MulConClassifier": {"gamma": [0.0, 0.5]},
}


@pytest.mark.parametrize("est", tiny(), ids=_id)
def test_grid_search_round_trip(est, data):
    X, Y = data
    grid = GRID[type(est).__name__]
    gs = GridSearchCV(est, grid, cv=2, scoring="f1_micro").fit(X, Y)
    (name, values), = grid.items()
    assert gs.best_params_[name] in values
    assert gs.best_estimator_.get_params()[name] == gs.best_params_[name]
    assert np.isfinite(gs.cv_results_["mean_test_score"]).all()
    # refit = clone + set_params + fit: the same model as fitting the best parameters by hand
    again = clone(est).set_params(**gs.best_params_).fit(X, Y)
    np.testing.assert_array_equal(gs.predict(X), again.predict(X))


@pytest.mark.parametrize("est", tiny(), ids=_id)
def test_cross_val_score_and_clone(est, data):
    X, Y = data
    scores = cross_val_score(est, X, Y, cv=3, scoring="f1_micro")
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    fitted = clone(est).fit(X, Y)
    c = clone(fitted)
    assert c.get_params() == est.get_params()
    assert not hasattr(c, "model_") and hasattr(fitted, "model_")
    assert fitted.classes_.tolist() == list(range(Y.shape[1])) and fitted.n_features_in_ == X.shape[1]
    assert fitted.fit_seconds_ > 0 and fitted.n_labels_ == Y.shape[1]


@pytest.mark.parametrize("i", range(len(tiny())), ids=[_id(e) for e in tiny()])
def test_fixed_random_state_is_deterministic_and_leaves_global_rng_alone(i, data, device):
    X, Y = data
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    a = tiny(device, random_state=3)[i].fit(X, Y)
    assert torch.equal(torch.get_rng_state(), before[0]), "fit must not move the caller's torch RNG"
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]
    b = tiny(device, random_state=3)[i].fit(X, Y)
    c = tiny(device, random_state=4)[i].fit(X, Y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X)), "random_state has no effect"
    assert a.device_.type == torch.device(device).type
    assert next(a.model_.parameters()).device.type == torch.device(device).type


def test_pickle_round_trip(data):
    X, Y = data
    est = tiny()[4].fit(X, Y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


# ------------------------------------------------------------------------------------------------
def test_it_learns_and_the_threshold_is_the_best_on_validation(data):
    X, Y = data
    est = MLPBCEClassifier(hidden_layer_sizes=(32,), epochs=150, batch_size=32, lr=3e-3, dropout=0.0,
                           random_state=0, device="cpu").fit(X, Y)
    assert f1_score(Y, est.predict(X), average="micro") > 0.85  # an untrained net scores ~0.5
    vals = est.validation_scores_
    assert set(vals) == set(np.round(M.PAPER_THRESHOLDS, 10).tolist())
    assert vals[est.threshold_] == max(vals.values())
    np.testing.assert_array_equal(est.predict(X), (est.predict_proba(X) >= np.float32(est.threshold_)).astype(int))


def test_fixed_threshold_is_used_and_metric_is_configurable(data):
    X, Y = data
    est = tiny()[0].set_params(threshold=0.3).fit(X, Y)
    assert est.threshold_ == 0.3
    np.testing.assert_array_equal(est.predict(X), (est.predict_proba(X) >= np.float32(0.3)).astype(int))
    ex = tiny()[0].set_params(threshold_metric="example_f1").fit(X, Y)
    assert ex.validation_scores_[ex.threshold_] == max(ex.validation_scores_.values())


def test_a_label_constant_in_training_scores_its_constant(data):
    X, Y = data
    Y2 = np.c_[Y, np.zeros(len(Y), int), np.ones(len(Y), int)]
    est = tiny()[0].fit(X, Y2)
    P = est.predict_proba(X)
    assert (P[:, -2] == 0).all() and (P[:, -1] == 1).all()
    assert est.constant_labels_.tolist() == [False] * Y.shape[1] + [True, True]


def test_standardisation_is_fitted_on_training_rows(data):
    X, Y = data
    shifted = X * 100 + 7
    a = tiny()[0].fit(X, Y)
    b = tiny()[0].fit(shifted, Y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(shifted), atol=1e-5)


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, match", [
    (lambda Y: Y[:, 0], r"2-D label indicator.*reshape\(-1, 1\)"),
    (lambda Y: Y * 2, r"only 0 and 1"),
    (lambda Y: Y + 0.5, r"continuous"),
    (lambda Y: np.arange(len(Y)) % 3, r"Only binary classification is supported.*LabelBinarizer"),
    (lambda Y: Y[:, :0], r"n_labels must be >= 1"),
])
def test_bad_targets_are_refused_with_the_fix(bad, match, data):
    X, Y = data
    with pytest.raises(ValueError, match=match):
        tiny()[0].fit(X, bad(Y))


@pytest.mark.parametrize("params, match", [
    ({"threshold": 1.5}, r"threshold must be 'auto' or a number in \[0, 1\]"),
    ({"threshold": "best"}, r"threshold must be 'auto'"),
    ({"threshold_metric": "hamming_loss"}, r"threshold_metric must be one of"),
    ({"validation_fraction": 0.0}, r"validation_fraction must be a number in \(0, 1\)"),
    ({"device": "tpu"}, r"device must be 'auto', 'cpu' or 'cuda"),
    ({"epochs": 0}, r"epochs and batch_size must be >= 1"),
])
def test_bad_parameters_are_refused_at_fit(params, match, data):
    X, Y = data
    with pytest.raises(ValueError, match=match):
        tiny()[0].set_params(**params).fit(X, Y)


@pytest.mark.parametrize("est, params, match", [
    (MulSupConClassifier(), {"loss": "sum"}, r"loss must be 'mulsupcon', 'all' or 'any'"),
    (MulSupConClassifier(), {"mode": "frozen"}, r"mode must be 'finetune'"),
    (AbaloneClassifier(), {"method": "L_X"}, r"method must be one of"),
    (AbaloneClassifier(), {"body": "cnn"}, r"body must be 'adapter'"),
    (CGMVAEClassifier(), {"preset": "mine"}, r"preset must be 'code' or 'paper'"),
    (MulConClassifier(), {"heads": 3}, r"divisible by heads"),
    (MLPASLClassifier(), {"clip": 1.0}, r"clip must be in \[0, 1\)"),
])
def test_method_parameters_are_checked(est, params, match, data):
    X, Y = data
    with pytest.raises(ValueError, match=match):
        est.set_params(**params).fit(X, Y)


def test_cuda_without_a_gpu_is_a_clear_error(data):
    X, Y = data
    if torch.cuda.is_available():  # the other branch is exercised where CUDA exists
        assert tiny("cuda")[0].fit(X, Y).device_.type == "cuda"
        return
    with pytest.raises(ValueError, match="no CUDA GPU: use device='auto' or 'cpu'"):
        tiny("cuda")[0].fit(X, Y)


def test_predict_before_fit_and_wrong_width(data):
    X, Y = data
    with pytest.raises(NotFittedError):
        tiny()[0].predict(X)
    est = tiny()[0].fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :3])


@pytest.mark.parametrize("module", ["mlcl.estimators", "mlcl.estimators.supervised", "mlcl.estimators.cgmvae",
                                    "mlcl.estimators.mulsupcon", "mlcl.estimators.abalone", "mlcl.estimators.mulcon"])
def test_docstring_examples_run(module):
    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0


def test_the_mlp_estimators_call_the_one_mlp_recipe(monkeypatch, data):
    """MLP-BCE / focal / ASL train through mlcl.training.recipes.fit_mlp (no copy of the loop), with
    chapter 00's settings as defaults and only the loss changed."""
    import mlcl.training.recipes as recipes
    from mlcl.losses import AsymmetricLoss, FocalLoss

    calls = []
    real = recipes.fit_mlp

    def spy(*args, **kw):
        calls.append(kw)
        return real(*args, **{**kw, "epochs": 1})

    monkeypatch.setattr(recipes, "fit_mlp", spy)
    X, Y = data
    for cls in (MLPBCEClassifier, MLPFocalClassifier, MLPASLClassifier):
        cls(random_state=0, device="cpu").fit(X, Y)
    assert [type(c["loss"]) for c in calls] == [torch.nn.BCEWithLogitsLoss, FocalLoss, AsymmetricLoss]
    for c in calls:
        assert (c["hidden"], c["dropout"], c["epochs"], c["batch_size"], c["lr"], c["weight_decay"]) == \
            ((256, 512, 256), 0.5, 60, 64, 3e-4, 1e-5)
    assert (calls[2]["loss"].gamma_neg, calls[2]["loss"].clip) == (3.0, 0.3)
