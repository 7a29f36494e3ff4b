"""Yeast: Mulan's shipped copy, Mulan split, MulSupCon validation rows and exact HDF5 split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlcl.data import MultiLabelDataset, load_dataset, make_dataloader
from mlcl.data.arff import read_arff
from mlcl.data.formats import read_mulsupcon_hdf5
from mlcl.data.yeast import derive_mulsupcon_split, mulsupcon_split


@pytest.fixture(scope="module")
def yeast() -> MultiLabelDataset:
    return load_dataset("yeast")


def test_yeast_shapes_types(yeast):
    assert (len(yeast.train), len(yeast.validation), len(yeast.test)) == (1200, 300, 917)
    for s in yeast.splits.values():
        assert s.X.dtype == np.float32 and s.X.shape[1] == 103
        assert s.Y.dtype == np.uint8 and s.Y.shape[1] == 14
    assert yeast.label_names == [f"Class{i}" for i in range(1, 15)]
    assert yeast.feature_names[0] == "Att1" and len(yeast.feature_names) == 103
    p = yeast.provenance
    assert p.checksum.startswith("sha256:") and p.version == "Mulan" and p.licence


def test_yeast_equals_mulan_arff(yeast, data_root):
    te = read_arff(data_root / "mulan" / "yeast-test.arff", n_labels=14)
    tr = read_arff(data_root / "mulan" / "yeast-train.arff", n_labels=14)
    np.testing.assert_array_equal(yeast.test.X, te.X)
    np.testing.assert_array_equal(yeast.test.Y, te.Y)
    assert te.label_names == yeast.label_names
    # train + validation are a partition of Mulan train, rows addressed by mulan_train_row
    rows = np.concatenate([yeast.train.meta["mulan_train_row"], yeast.validation.meta["mulan_train_row"]])
    assert sorted(rows.tolist()) == list(range(1500))
    np.testing.assert_array_equal(yeast.train.X, tr.X[yeast.train.meta["mulan_train_row"]])
    np.testing.assert_array_equal(yeast.validation.Y, tr.Y[yeast.validation.meta["mulan_train_row"]])
    full = load_dataset("yeast", validation="none")
    assert full.validation is None
    np.testing.assert_array_equal(full.train.X, tr.X)
    np.testing.assert_array_equal(full.train.Y, tr.Y)


def test_committed_split_file_matches_derivation(data_root):
    derived = derive_mulsupcon_split(data_root / "mulsupcon_yeast" / "split_indices.json")
    committed = mulsupcon_split()
    for k in ("train", "validation", "label_columns"):
        assert committed[k] == derived[k], k
    src = json.loads((data_root / "mulsupcon_yeast" / "split_indices.json").read_text())
    assert committed["validation"] == src["val_idx_in_mulan_train"]


@pytest.mark.parametrize("source", ["hdf5", "mulan"])
def test_yeast_mulsupcon_exact(shared_data, source):
    ds = load_dataset("yeast-mulsupcon", root=shared_data, source=source)
    d = shared_data / "mulsupcon_yeast"
    for split, fn in (("train", "train"), ("validation", "val"), ("test", "test")):
        X, Y = read_mulsupcon_hdf5(d / f"yeast_official_{fn}.hdf5")
        np.testing.assert_array_equal(ds[split].X, X)
        np.testing.assert_array_equal(ds[split].Y, Y)
    perm = json.loads((d / "split_indices.json").read_text())["label_perm_hdf5_col_to_mulan_class"]
    assert ds.label_names == [f"Class{c}" for c in perm]
    assert ("hdf5" in ds.provenance.source) == (source == "hdf5")


def test_yeast_mulsupcon_bad_source():
    with pytest.raises(ValueError, match="'auto', 'hdf5' or 'mulan'"):
        load_dataset("yeast-mulsupcon", source="river")


def test_yeast_card(yeast):
    c = yeast.card()
    assert (c["n_train"], c["n_validation"], c["n_test"]) == (1200, 300, 917)
    assert c["n_features"] == 103 and c["n_labels"] == 14 and c["n_empty"] == 0
    assert c["cardinality"] == pytest.approx(4.2371, abs=1e-4)
    assert c["density"] == pytest.approx(4.2371 / 14, abs=1e-4)
    json.dumps(c)  # serialisable
    C = yeast.cooccurrence()
    np.testing.assert_array_equal(np.diag(C), yeast.label_frequencies())


def test_yeast_torch_adapters(yeast):
    tds = yeast.torch("validation")
    x, y = tds[0]
    assert x.dtype == torch.float32 and y.dtype == torch.float32 and x.shape == (103,)
    dl = make_dataloader(tds, batch_size=128, shuffle=True, seed=0)
    xb, yb = next(iter(dl))
    assert xb.shape == (128, 103) and yb.shape == (128, 14)
    xb2, _ = next(iter(make_dataloader(tds, batch_size=128, shuffle=True, seed=0)))
    assert torch.equal(xb, xb2)
    assert len(yeast.dataloader("test", batch_size=100)) == 10


def test_with_validation_and_drop_empty(yeast):
    ds = yeast.with_validation(0.2, seed=3)
    assert len(ds.train) + len(ds.validation) == 1500 and len(ds.validation) == 300
    assert len(load_dataset("yeast", drop_empty=True).train) == 1200  # yeast has no empty rows
