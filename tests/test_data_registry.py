"""Registry: list_datasets availability, names, errors."""

from __future__ import annotations

import pytest

from mlcl.data import list_datasets, load_dataset

OFFLINE = {"yeast", "yeast-mulsupcon", "scene", "emotions", "reuters21578", "digits"}
PAPER_SCALE = {"coco2014", "voc2007", "nus-wide", "mirflickr25k", "aapd", "rcv1-v2", "uk-lex"}


def test_list_datasets_shared(data_root, monkeypatch):
    monkeypatch.setenv("MLCL_DATA", str(data_root))
    rows = {r["name"]: r for r in list_datasets()}
    assert OFFLINE | PAPER_SCALE <= set(rows)
    for n in OFFLINE:
        assert rows[n]["available"], n
        assert rows[n]["source"] and rows[n]["kind"] in ("vector", "text", "image")
    for n in PAPER_SCALE:
        assert not rows[n]["available"] and rows[n]["paper_scale"] and rows[n]["how_to_get"], n


def test_list_datasets_empty_root(tmp_path, monkeypatch):
    import mlcl.data.store as store

    monkeypatch.delenv("MLCL_DATA", raising=False)
    monkeypatch.setenv("MLCL_CACHE", str(tmp_path / "cache"))
    rows = {r["name"]: r["available"] for r in list_datasets(tmp_path)}
    assert all(rows[n] for n in OFFLINE), rows  # shipped with mlcl, or generated
    monkeypatch.setattr(store, "is_packaged", lambda *a: False)  # a slim install
    rows = {r["name"]: r["available"] for r in list_datasets(tmp_path)}
    assert rows["digits"] and not rows["scene"] and not rows["reuters21578"] and not rows["yeast"]


def test_unknown_names():
    with pytest.raises(KeyError, match="known"):
        load_dataset("nope")
    with pytest.raises(KeyError, match="prefix"):
        load_dataset("zzz:x")


def test_every_offline_dataset_loads(data_root):
    for n in sorted(OFFLINE - {"reuters21578"}):  # Reuters has its own test module
        opts = {"n_train": 50, "n_validation": 10, "n_test": 20} if n == "digits" else {}
        ds = load_dataset(n, root=data_root, **opts)
        c = ds.card()
        assert c["n_train"] > 0 and c["n_test"] > 0 and c["n_labels"] == len(ds.label_names)
        assert ds.provenance.source and ds.provenance.licence
