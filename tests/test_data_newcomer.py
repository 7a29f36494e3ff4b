"""The newcomer path (issue 12.1/12.7): no MLCL_DATA, an empty home and cache, no network.

Every dataset the book loads comes from the copy packaged with mlcl, decompressed into the
(empty) user cache and verified; it must equal the reference copy in ../shared/data exactly.
"""

from __future__ import annotations

import fnmatch
import json
import sys

import numpy as np
import pytest

import mlcl.data.store as store
from mlcl.data import list_datasets, load_dataset
from mlcl.data.arff import read_arff
from mlcl.data.base import sha256_files
from mlcl.data.formats import read_mulsupcon_hdf5

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.fixture
def newcomer(monkeypatch, tmp_path):
    """Empty HOME and cache, MLCL_DATA unset, no network (any URL open fails the test)."""
    import mlcl.data.download as dl

    monkeypatch.delenv("MLCL_DATA", raising=False)
    monkeypatch.delenv("MLCL_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def no_network(url, *a, **k):
        raise AssertionError(f"the newcomer path must not download ({url})")

    monkeypatch.setattr(dl, "URLOPEN", no_network)
    cache = tmp_path / "xdg" / "mlcl"
    assert store.user_cache_dir() == cache and not cache.exists()
    return cache


@pytest.mark.parametrize("name,n_labels", [("scene", 6), ("emotions", 6)])
def test_mulan_exact_split_from_the_packaged_copy(newcomer, shared_data, name, n_labels):
    ds = load_dataset(name)
    assert "<mlcl cache>/mulan" in ds.provenance.source and str(newcomer) not in ds.provenance.source
    ref = [shared_data / "mulan" / f"{name}-{s}.arff" for s in ("train", "test")]
    assert ds.provenance.checksum == f"sha256:{sha256_files(ref)}"
    for split, path in zip(("train", "test"), ref):
        a = read_arff(path, n_labels=n_labels)
        np.testing.assert_array_equal(ds[split].X, a.X)
        np.testing.assert_array_equal(ds[split].Y, a.Y)
    assert ds.label_names == a.label_names and ds.validation is None


def test_yeast_and_mulsupcon_split_from_the_packaged_copy(newcomer, shared_data):
    y = load_dataset("yeast", validation="none")
    for split in ("train", "test"):
        a = read_arff(shared_data / "mulan" / f"yeast-{split}.arff", n_labels=14)
        np.testing.assert_array_equal(y[split].X, a.X)
        np.testing.assert_array_equal(y[split].Y, a.Y)
    ds = load_dataset("yeast-mulsupcon")
    assert "hdf5" not in ds.provenance.source  # rebuilt from the shipped ARFF + index
    for split, fn in (("train", "train"), ("validation", "val"), ("test", "test")):
        X, Y = read_mulsupcon_hdf5(shared_data / "mulsupcon_yeast" / f"yeast_official_{fn}.hdf5")
        np.testing.assert_array_equal(ds[split].X, X)
        np.testing.assert_array_equal(ds[split].Y, Y)
    store.locate("mulsupcon_yeast", ["split_indices.json"])
    shipped = newcomer / "mulsupcon_yeast" / "split_indices.json"
    assert json.loads(shipped.read_text()) == json.loads(
        (shared_data / "mulsupcon_yeast" / "split_indices.json").read_text())


def test_reuters_from_the_packaged_copy(newcomer, shared_data):
    ds = load_dataset("reuters21578")
    assert (len(ds.train), len(ds.test), ds.n_labels) == (7770, 3019, 90)
    ref = sorted((shared_data / "reuters21578").glob("reut2-*.sgm"))
    assert ds.provenance.checksum == f"sha256:{sha256_files(ref)}"
    assert (newcomer / "reuters21578" / "README.txt").exists() is False  # only what is asked for
    assert store.locate("reuters21578", ["README.txt"]).joinpath("README.txt").read_bytes() == \
        (shared_data / "reuters21578" / "README.txt").read_bytes()


def test_every_offline_dataset_is_listed_available(newcomer):
    rows = {r["name"]: r for r in list_datasets()}
    for n in ("yeast", "yeast-mulsupcon", "scene", "emotions", "reuters21578", "digits"):
        assert rows[n]["available"], n


def test_packaged_copy_is_verified_on_first_use(newcomer, monkeypatch, tmp_path):
    # a damaged install: the .xz decompresses to other bytes -> refuse, say reinstall
    import lzma
    import shutil

    fake = tmp_path / "files"
    shutil.copytree(store._files(), fake)
    (fake / "mulan" / "emotions-test.arff.xz").write_bytes(lzma.compress(b"@relation x\n"))
    monkeypatch.setattr(store, "_files", lambda: fake)
    with pytest.raises(store.DataIntegrityError, match=r"emotions-test\.arff\.xz .*reinstall mlcl"):
        load_dataset("emotions")
    assert not (newcomer / "mulan" / "emotions-test.arff").exists()


def test_manifest_and_packaging(repo):
    m = store.manifest()
    pp = tomllib.loads((repo / "pyproject.toml").read_text())
    globs = pp["tool"]["setuptools"]["package-data"]["mlcl"]
    total = 0
    for dname, d in m["datasets"].items():
        assert d["licence"] and d["source"] and d["url"], dname
        for fn, e in d["files"].items():
            assert len(e["sha256"]) == 64 and e["bytes"] > 0, fn
            if e.get("packaged"):
                rel = f"data/_files/{e['packaged']}"
                assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} not in package-data"
                p = store._files().joinpath(e["packaged"])
                assert store.sha256_of(p) == e["packaged_sha256"], rel
                total += e["packaged_bytes"]
    assert total < 15e6, f"packaged data {total / 1e6:.1f} MB: over the 15 MB wheel budget"
    notice = store._files().joinpath("NOTICE.txt").read_text()
    assert all(d in notice for d in m["datasets"]) and "research purposes only" in notice
    assert "river" not in " ".join(pp["project"]["dependencies"])


def test_pins_equal_the_reference_copy(shared_data):
    # the manifest was built from ../shared/data by mlcl/data/_build_package_data.py
    for dname, d in store.manifest()["datasets"].items():
        for fn, e in d["files"].items():
            assert store.sha256_of(shared_data / dname / fn) == e["sha256"], f"{dname}/{fn}"


def test_unwritable_cache_falls_back_to_a_temporary_folder(newcomer, monkeypatch, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache should be")
    monkeypatch.setenv("MLCL_CACHE", str(blocker))
    ds = load_dataset("emotions")
    assert (len(ds.train), len(ds.test)) == (391, 202)
    assert str(blocker) not in ds.provenance.source
