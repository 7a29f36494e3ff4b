"""Reuters-21578: SGML parser, ModApte split, 90 categories (7,770 / 3,019)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mlcl.data import load_dataset
from mlcl.data.reuters import modapte, parse_reuters, parse_sgm


@pytest.fixture(scope="module")
def reuters(data_root):
    t = time.perf_counter()
    ds = load_dataset("reuters21578", root=data_root)  # parsed from the .sgm files (no cache)
    ds.load_seconds = time.perf_counter() - t
    return ds


def test_modapte_90_counts(reuters):
    assert (len(reuters.train), len(reuters.test)) == (7770, 3019)
    assert len(reuters.train) + len(reuters.test) == 10789
    assert reuters.n_labels == 90 and reuters.validation is None
    assert reuters.label_names == sorted(reuters.label_names)
    # every category has >= 1 train and >= 1 test document; no zero-label documents
    assert (reuters.train.Y.sum(0) >= 1).all() and (reuters.test.Y.sum(0) >= 1).all()
    assert reuters.card()["n_empty"] == 0
    assert reuters.load_seconds < 5.0


def test_text_and_ids(reuters):
    x0 = reuters.train.X[0]
    assert x0.startswith("BAHIA COCOA REVIEW\nShowers continued")
    assert reuters.train.Y[0, reuters.label_names.index("cocoa")] == 1
    assert all(isinstance(t, str) and t for t in reuters.test.X)
    assert "&lt;" not in " ".join(reuters.train.X[:500])  # entities decoded
    ids = np.concatenate([reuters.train.meta["newid"], reuters.test.meta["newid"]])
    assert len(set(ids.tolist())) == 10789
    f = reuters.label_frequencies()
    assert reuters.label_names[int(f.argmax())] == "earn" and f.max() > 100 * f.min()  # long tail


def test_all_documents_and_categories(data_root):
    docs = parse_reuters(data_root / "reuters21578")
    assert len(docs) == 21578
    sp = modapte(docs, "all")
    assert (len(sp["train"]), len(sp["test"])) == (9603, 3299)
    ds = load_dataset("reuters21578", root=data_root, categories="all")
    assert ds.card()["n_empty"] > 0 and ds.n_labels > 90
    assert load_dataset("reuters21578", root=data_root, categories="all",
                        drop_empty=True).card()["n_empty"] == 0


def test_parse_sgm_unproc_and_brief():
    sgm = ('<REUTERS TOPICS="YES" LEWISSPLIT="TEST" NEWID="7"><TOPICS></TOPICS>'
           '<TEXT TYPE="UNPROC">&#2; raw text 5 &lt; 6</TEXT></REUTERS>\n'
           '<REUTERS TOPICS="NO" LEWISSPLIT="TRAIN" NEWID="8"><TOPICS><D>gold</D><D>silver</D></TOPICS>'
           '<TEXT TYPE="BRIEF"><TITLE>GOLD UP</TITLE></TEXT></REUTERS>')
    a, b = parse_sgm(sgm)
    assert a["newid"] == 7 and a["topics"] == [] and "raw text 5 < 6" in a["text"]
    assert b["topics"] == ["gold", "silver"] and b["text"] == "GOLD UP" and b["topics_attr"] == "NO"


def test_cache_roundtrip(data_root, tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda *a, **k: str(tmp_path))
    a = load_dataset("reuters21578", root=data_root, cache=True)
    assert list((tmp_path / "parsed").glob("*.json.gz"))
    t = time.perf_counter()
    b = load_dataset("reuters21578", root=data_root, cache=True)
    assert time.perf_counter() - t < 2.0
    assert a.train.X == b.train.X and np.array_equal(a.test.Y, b.test.Y)


def test_missing_files_message(tmp_path, monkeypatch):
    # nothing local, nothing packaged (a slim install), downloads refused: say where we looked
    import mlcl.data.store as store

    monkeypatch.delenv("MLCL_DATA", raising=False)
    monkeypatch.setenv("MLCL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(store, "is_packaged", lambda *a: False)
    with pytest.raises(FileNotFoundError, match=r"(?s)reut2-000.sgm.*root: .*MLCL_DATA/reuters21578"):
        load_dataset("reuters21578", root=tmp_path, download=False)


def test_truncated_sgm_is_refused(data_root, tmp_path):
    from mlcl.data.reuters import read_sgm

    src = (data_root / "reuters21578" / "reut2-003.sgm").read_bytes()
    cut = src[: src.index(b"</REUTERS>", len(src) // 2)]  # stops inside a document
    (tmp_path / "reut2-003.sgm").write_bytes(cut)
    with pytest.raises(ValueError, match=r"reut2-003\.sgm: \d+ <REUTERS> documents opened, \d+ complete"):
        read_sgm(tmp_path / "reut2-003.sgm")
    whole = cut[: cut.rindex(b"<REUTERS ")]  # cut at a document boundary: the count catches it
    (tmp_path / "reut2-003.sgm").write_bytes(whole)
    with pytest.raises(ValueError, match=r"reut2-003\.sgm: \d+ documents, expected 1000"):
        read_sgm(tmp_path / "reut2-003.sgm")
    (tmp_path / "reut2-003.sgm").write_text("<!DOCTYPE html><html>503</html>")
    with pytest.raises(ValueError, match="HTML page"):
        read_sgm(tmp_path / "reut2-003.sgm")
