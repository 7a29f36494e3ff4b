"""Multi-label digits: determinism, long tail, co-occurrence, boxes, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlcl.data import load_dataset
from mlcl.data.digits import _sk_digits, box_mask


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", n_train=1500, n_validation=200, n_test=400, seed=0)


def test_shapes_and_determinism(digits):
    assert digits.train.X.shape == (1500, 1, 32, 32) and digits.train.X.dtype == np.float32
    assert digits.train.Y.shape == (1500, 10) and digits.label_names == [str(i) for i in range(10)]
    again = load_dataset("digits", n_train=1500, n_validation=200, n_test=400, seed=0)
    np.testing.assert_array_equal(again.train.X, digits.train.X)
    np.testing.assert_array_equal(again.test.Y, digits.test.Y)
    other = load_dataset("digits", n_train=1500, n_validation=200, n_test=400, seed=1)
    assert not np.array_equal(other.train.Y, digits.train.Y)
    # changing the test size does not change the training images
    bigger = load_dataset("digits", n_train=1500, n_validation=200, n_test=50, seed=0)
    np.testing.assert_array_equal(bigger.train.X, digits.train.X)
    k = digits.train.Y.sum(1)
    assert k.min() >= 1 and k.max() <= 4
    assert digits.card()["n_empty"] == 0 and digits.kind == "image"


def test_long_tail_and_correlation(digits):
    f = digits.label_frequencies("train")
    assert f[0] == f.max() and f[0] > 4 * f.min()
    P = digits.cooccurrence("train", normalize=True)  # P(col | row)
    freq = digits.train.Y.mean(0)
    # group partners co-occur far above chance, non-partners do not
    assert P[7, 1] > 2 * freq[1] and P[8, 3] > 2 * freq[3] and P[9, 4] > 2 * freq[4]
    assert P[6, 9] < 2 * freq[9]
    flat = load_dataset("digits", n_train=1500, n_validation=0, n_test=10, alpha=0.0, p_group=0.0)
    ff = flat.label_frequencies("train")
    assert ff.max() < 1.5 * ff.min()


def test_boxes_match_pixels(digits):
    images, target, _, _ = _sk_digits()
    for i in range(30):
        b = digits.train.meta["boxes"][i]
        assert sorted(b[:, 0].tolist()) == np.flatnonzero(digits.train.Y[i]).tolist()
        for c, y0, x0, y1, x1, src in b:
            assert target[src] == c
            np.testing.assert_allclose(digits.train.X[i, 0, y0:y1, x0:x1], images[src])
        ink = digits.train.X[i, 0] > 0
        covered = np.zeros_like(ink)
        for c in b[:, 0]:
            covered |= box_mask(b, c, ink.shape)
        assert not (ink & ~covered).any()  # all ink lies inside the boxes


def test_disjoint_digit_pools(digits):
    src = {s: {int(r[5]) for b in digits[s].meta["boxes"] for r in b} for s in digits.splits}
    assert not src["train"] & src["test"] and not src["train"] & src["validation"]


def test_options_grid_scale_empty_noise():
    ds = load_dataset("digits", n_train=100, n_validation=0, n_test=20, layout="grid", grid=(2, 2))
    assert ds.train.X.shape == (100, 1, 16, 16) and ds.validation is None
    ds = load_dataset("digits", n_train=50, n_validation=10, n_test=10, canvas=48, scale=2,
                      p_empty=0.3, noise=0.05, seed=2)
    assert ds.train.X.shape == (50, 1, 48, 48)
    assert ds.card()["n_empty"] > 0
    assert ds.drop_empty().card()["n_empty"] == 0
    assert load_dataset("digits", n_train=50, n_validation=10, n_test=10, p_empty=0.3,
                        drop_empty=True).card()["n_empty"] == 0
    assert len(ds.provenance.notes) > 10 and "scikit-learn" in ds.provenance.version


def test_torch_batch(digits):
    x, y = next(iter(digits.dataloader("train", batch_size=16)))
    assert x.shape == (16, 1, 32, 32) and y.shape == (16, 10) and y.dtype == torch.float32
    # boxes follow subsetting
    sub = digits.train.subset([5, 2])
    assert np.array_equal(sub.meta["boxes"][0], digits.train.meta["boxes"][5])
