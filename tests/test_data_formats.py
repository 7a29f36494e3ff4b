"""ARFF reader, Mulan scene/emotions, OpenML (monkeypatched), MPVAE npy and MulSupCon HDF5."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.utils import Bunch

from mlcl.data import load_dataset
from mlcl.data.arff import read_arff
from mlcl.data.formats import load_mpvae_dir, load_mulsupcon_hdf5
from mlcl.data.mulan import load_mulan_arff, load_openml

FIX = Path(__file__).parent / "fixtures"


def test_arff_dense_fixture():
    with pytest.raises(ValueError, match=r"tiny_dense\.arff: 1 feature values are missing.*allow_nonfinite"):
        read_arff(FIX / "tiny_dense.arff")  # its '?' is refused unless asked for
    a = read_arff(FIX / "tiny_dense.arff", allow_nonfinite=True)
    assert a.relation == "tiny: -C -3" and not a.sparse
    assert a.feature_names == ["f1", "f 2", "colour"] and a.label_names == ["lab_a", "lab_b", "lab_c"]
    np.testing.assert_array_equal(a.Y, [[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    assert a.X.dtype == np.float32 and a.X[0].tolist() == [0.5, 1.0, 0.0]
    assert np.isnan(a.X[1, 1]) and a.X[1, 2] == 2.0 and a.X[2, 2] == 1.0  # nominal -> index
    by_name = read_arff(FIX / "tiny_dense.arff", label_names=["lab_c", "lab_a"], allow_nonfinite=True)
    np.testing.assert_array_equal(by_name.Y, [[0, 1], [1, 0], [0, 0]])
    assert by_name.feature_names == ["f1", "f 2", "colour", "lab_b"]
    by_count = read_arff(FIX / "tiny_dense.arff", n_labels=2, allow_nonfinite=True)
    assert by_count.label_names == ["lab_b", "lab_c"]


def test_arff_sparse_fixture():
    with pytest.raises(ValueError, match="n_labels"):
        read_arff(FIX / "tiny_sparse.arff")
    a = read_arff(FIX / "tiny_sparse.arff", label_names=["y1", "y2"])
    assert a.sparse
    np.testing.assert_array_equal(a.Y, [[1, 0], [0, 1], [0, 0], [1, 1]])
    np.testing.assert_array_equal(a.X, [[0, 0.5, 0], [2, 0, 7], [0, 0, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match="not 0/1"):
        read_arff(FIX / "tiny_sparse.arff", label_names=["w3"])


def test_mulan_arff_dir_with_xml(tmp_path):
    d = tmp_path / "mulan"
    d.mkdir()
    for s in ("train", "test"):
        shutil.copy(FIX / "tiny_dense.arff", d / f"tiny-{s}.arff")
    shutil.copy(FIX / "tiny_labels.xml", d / "tiny.xml")
    ds = load_mulan_arff(d, "tiny", allow_nonfinite=True)
    assert ds.label_names == ["lab_a", "lab_c"] and "lab_b" in ds.feature_names
    assert ds.card()["n_empty"] == 2  # one empty row in each of train and test
    ds = load_dataset("mulan:tiny", root=tmp_path, n_labels=3, allow_nonfinite=True)
    assert ds.label_names == ["lab_a", "lab_b", "lab_c"] and ds.card()["n_empty"] == 2
    assert load_dataset("mulan:tiny", root=tmp_path, n_labels=3, drop_empty=True,
                        allow_nonfinite=True).card()["n_empty"] == 0
    with pytest.raises(FileNotFoundError, match="ARFF"):
        load_dataset("mulan:nothere", root=tmp_path)


@pytest.mark.parametrize("name,sizes,F,L,card", [
    ("scene", (1211, 1196), 294, 6, 1.0740),
    ("emotions", (391, 202), 72, 6, 1.8685),
])
def test_scene_emotions(data_root, name, sizes, F, L, card):
    ds = load_dataset(name, root=data_root)
    assert (len(ds.train), len(ds.test)) == sizes and ds.validation is None
    assert ds.n_features == F and ds.n_labels == L
    c = ds.card()
    assert c["cardinality"] == pytest.approx(card, abs=1e-4) and c["n_empty"] == 0
    assert ds.provenance.checksum.startswith("sha256:")
    v = load_dataset(name, root=data_root, validation_fraction=0.2, seed=0)
    assert len(v.train) + len(v.validation) == sizes[0]


def _fake_openml(label_values):
    def fetch_openml(data_id, as_frame=True, target_column=None, data_home=None, **kw):
        assert data_id == 40595 and as_frame
        rng = np.random.default_rng(0)
        X = pd.DataFrame(rng.normal(size=(10, 3)), columns=["a", "b", "c"])
        T = pd.DataFrame({n: [label_values[(i + j) % 2] for i in range(10)]
                          for j, n in enumerate(target_column)})
        return Bunch(data=X, target=T, feature_names=["a", "b", "c"],
                     details={"name": "scene", "version": "1", "md5_checksum": "abc", "licence": "Public"})
    return fetch_openml


@pytest.mark.parametrize("values", [("TRUE", "FALSE"), ("1", "0"), (True, False), (1, 0)])
def test_openml_offline(monkeypatch, tmp_path, values):
    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", _fake_openml(values))
    ds = load_dataset("scene", root=tmp_path, source="openml", test_fraction=0.3)
    assert len(ds.train) == 7 and len(ds.test) == 3 and ds.n_labels == 6
    assert ds.label_names[0] == "Beach" and ds.train.Y.dtype == np.uint8
    assert set(np.unique(ds.train.Y)) <= {0, 1}
    assert "OpenML data_id=40595" in ds.provenance.source and ds.provenance.checksum == "abc"
    # "auto" never falls back to OpenML's random split: Mulan's split (from MLCL_DATA or the
    # packaged copy), whatever root says
    auto = load_dataset("scene", root=tmp_path)
    assert auto.provenance.source.startswith("Mulan ARFF") and (len(auto.train), len(auto.test)) == (1211, 1196)


def test_no_silent_switch_to_openml(monkeypatch, tmp_path):
    # Mulan's files nowhere (slim install, empty cache): a clear error, OpenML is never called
    import sklearn.datasets

    import mlcl.data.store as store

    def forbidden(**kw):
        raise AssertionError("fetch_openml must not be called")

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", forbidden)
    monkeypatch.delenv("MLCL_DATA", raising=False)
    monkeypatch.setenv("MLCL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(store, "is_packaged", lambda *a: False)
    for name in ("scene", "emotions"):
        with pytest.raises(FileNotFoundError, match=rf"{name}-train\.arff.*source='openml' gives a different, random split"):
            load_dataset(name, root=tmp_path)
    with pytest.raises(ValueError, match="source must be"):
        load_dataset("scene", source="random")


def test_openml_bad_labels_and_no_network(monkeypatch):
    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", _fake_openml(("yes?", "maybe")))
    with pytest.raises(ValueError, match="0/1"):
        load_openml(40595, ["x"], "scene")

    def offline(**kw):
        raise OSError("no network")

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with pytest.raises(ConnectionError, match="MLCL_DATA/mulan"):
        load_openml(40595, ["x"], "scene")


def test_mpvae_npy(tmp_path):
    rng = np.random.default_rng(0)
    N, M, L, F = 20, 2, 4, 5
    meta = np.arange(N * M).reshape(N, M)
    Y = (rng.random((N, L)) < 0.4).astype(float)
    X = rng.normal(size=(N, F))
    np.save(tmp_path / "toy_data.npy", np.concatenate([meta, Y, X], 1))
    perm = rng.permutation(N)
    np.save(tmp_path / "toy_train_idx.npy", perm[:12])
    np.save(tmp_path / "toy_val_idx.npy", perm[12:15])
    np.save(tmp_path / "toy_test_idx.npy", perm[15:])
    ds = load_mpvae_dir(tmp_path, "toy", label_dim=L, feat_dim=F, meta_offset=M)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (12, 3, 5)
    np.testing.assert_allclose(ds.train.X, X[perm[:12]].astype(np.float32))
    np.testing.assert_array_equal(ds.test.Y, Y[perm[15:]])
    np.testing.assert_array_equal(ds.train.meta["row"], perm[:12])
    with pytest.raises(ValueError, match="not 0/1"):
        load_mpvae_dir(tmp_path, "toy", label_dim=L, feat_dim=F, meta_offset=0)


def test_mulsupcon_hdf5_generic(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "mulsupcon" / "toy"
    d.mkdir(parents=True)
    for s, n in (("train", 8), ("test", 4)):
        with h5py.File(d / f"toy_official_{s}.hdf5", "w") as f:
            f["feature"] = rng.normal(size=(n, 3))
            f["target"] = (rng.random((n, 2)) < 0.5).astype(np.int64)
    ds = load_mulsupcon_hdf5(d, "toy")
    assert ds.validation is None and len(ds.train) == 8 and ds.train.X.dtype == np.float32
    assert len(load_dataset("mulsupcon:toy", root=tmp_path).test) == 4
