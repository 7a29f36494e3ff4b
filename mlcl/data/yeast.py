"""Yeast: the embedded default dataset (Mulan's ARFF, shipped with mlcl) and MulSupCon's split.

* ``yeast``: Mulan's ``yeast-test.arff`` (917 rows) and ``yeast-train.arff`` (1,500 rows), found
  as :mod:`mlcl.data.store` says (``root`` → ``$MLCL_DATA`` → cache → packaged copy) and checked
  against their pinned sha256. Mulan train is split into MulSupCon's 1,200 train / 300 validation
  rows (``_files/yeast_mulsupcon_split.json``). Train rows in ascending Mulan order; Mulan label
  order (``Class1``..``Class14``).
* ``yeast-mulsupcon``: exactly MulSupCon's ``yeast_official_{train,val,test}.hdf5``: train rows in
  their shuffled order and their permuted label columns. Read from
  ``<root>/mulsupcon_yeast/*.hdf5`` when present (pinned sha256), else rebuilt from Mulan's ARFF +
  the index file (identical, tested).

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("yeast")
>>> len(ds.train), len(ds.validation), len(ds.test)
(1200, 300, 917)
>>> load_dataset("yeast-mulsupcon").label_names[:3]
['Class1', 'Class3', 'Class7']
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .base import MultiLabelDataset, Provenance, Split
from .registry import DatasetInfo, register
from .store import available, dataset_info, find_local, locate, pinned, shown

N_TEST = 917
N_TOTAL = 2417
FEATURES = [f"Att{i}" for i in range(1, 104)]
LABELS = [f"Class{i}" for i in range(1, 15)]
SPLIT_FILE = "yeast_mulsupcon_split.json"
LICENCE = ("Mulan yeast (Elisseeff & Weston 2001), as distributed by Mulan; free for research "
           "use (shipped with mlcl, see mlcl/data/_files/NOTICE.txt).")
MULSUPCON_REPO = "williamzhangsjtu/MulSupCon@42b23028785203123b673b8a28f5391b9d9726be"


MULAN_FILES = ["yeast-train.arff", "yeast-test.arff"]
HDF5_FILES = [f"yeast_official_{s}.hdf5" for s in ("train", "val", "test")]


def read_mulan_yeast(root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                              np.ndarray, Provenance]:
    """Mulan's yeast: ``(X_train, Y_train, X_test, Y_test, provenance)``, X float32 (103), Y uint8
    (14), from the first verified copy (``root`` → ``$MLCL_DATA`` → cache → packaged).

    Example
    -------
    >>> Xtr, Ytr, Xte, Yte, prov = read_mulan_yeast()
    >>> Xtr.shape, Yte.shape
    ((1500, 103), (917, 14))
    """
    from .mulan import load_mulan_arff

    d = locate("mulan", MULAN_FILES, root, how_to_get=(
        "Put Mulan's yeast-train.arff and yeast-test.arff in MLCL_DATA/mulan, or reinstall mlcl "
        "(it ships them)."))
    ds = load_mulan_arff(d, "yeast")
    if ds.feature_names != FEATURES or ds.label_names != LABELS:
        raise ValueError(f"{d}: unexpected yeast attribute names")
    info = dataset_info("mulan")
    prov = Provenance(source=f"Mulan ARFF yeast-train.arff, yeast-test.arff in {shown(d)}",
                      version="Mulan", checksum=ds.provenance.checksum, licence=LICENCE,
                      url=info["url"])
    return ds.train.X, ds.train.Y, ds.test.X, ds.test.Y, prov


# ---------------------------------------------------------------- the committed index file
def derive_mulsupcon_split(split_indices_json: str | Path) -> dict[str, Any]:
    """Derive the committed index file from ``mulsupcon_yeast/split_indices.json``.

    That file (read from MulSupCon's HDF5 files) gives 0-based row positions inside Mulan's
    ``yeast-train.arff`` for MulSupCon's train (their shuffled order) and validation rows, and
    the permutation of label columns (HDF5 column ``j`` = Mulan ``Class{perm[j]}``).
    The result is what ``mlcl/data/_files/yeast_mulsupcon_split.json`` holds; regenerate with
    ``python -m mlcl.data.yeast ../shared/data/mulsupcon_yeast/split_indices.json``.

    Example
    -------
    >>> d = derive_mulsupcon_split("../shared/data/mulsupcon_yeast/split_indices.json")  # doctest: +SKIP
    >>> len(d["train"]), len(d["validation"])  # doctest: +SKIP
    (1200, 300)
    """
    src = json.loads(Path(split_indices_json).read_text())
    train = [int(i) for i in src["train_idx_in_mulan_train"]]
    val = [int(i) for i in src["val_idx_in_mulan_train"]]
    perm = [int(c) for c in src["label_perm_hdf5_col_to_mulan_class"]]
    if sorted(train + val) != list(range(1500)):
        raise ValueError("train + validation indices must partition Mulan train (1500 rows)")
    if sorted(perm) != list(range(1, 15)):
        raise ValueError("label permutation must be a permutation of 1..14")
    return {
        "source": src.get("source", MULSUPCON_REPO),
        "note": ("Row indices are 0-based positions in Mulan yeast-train.arff (1500 "
                 "rows). 'train' is in MulSupCon's HDF5 (shuffled) order; 'validation' in "
                 "ascending order. 'label_columns' gives, for MulSupCon's HDF5 column j, the "
                 "0-based Mulan label index (Class{k+1}). Derived by "
                 "mlcl.data.yeast.derive_mulsupcon_split from split_indices.json."),
        "train": train,
        "validation": val,
        "label_columns": [c - 1 for c in perm],
    }


@lru_cache(maxsize=1)
def mulsupcon_split() -> dict[str, Any]:
    """The committed MulSupCon yeast split (``_files/yeast_mulsupcon_split.json``).

    Example
    -------
    >>> s = mulsupcon_split()
    >>> len(s["train"]), len(s["validation"]), len(s["label_columns"])
    (1200, 300, 14)
    """
    txt = resources.files("mlcl.data").joinpath("_files").joinpath(SPLIT_FILE).read_text()
    return json.loads(txt)


# ---------------------------------------------------------------- loaders
def load_yeast(root: Path | None = None, validation: str = "mulsupcon") -> MultiLabelDataset:
    """Mulan's yeast (test split as Mulan's) with MulSupCon's validation rows.

    ``validation="mulsupcon"`` (default): 1,200 train / 300 validation / 917 test.
    ``validation="none"``: Mulan's 1,500 train / 917 test, no validation split.
    Yeast has no zero-label samples (``drop_empty`` is a no-op).

    Example
    -------
    >>> ds = load_yeast()
    >>> ds.train.meta["mulan_train_row"][:3].tolist()
    [0, 2, 3]
    """
    Xtr, Ytr, Xte, Yte, prov = read_mulan_yeast(root)
    test = Split("test", Xte, Yte, {"row": np.arange(len(Xte))})
    if validation == "mulsupcon":
        s = mulsupcon_split()
        tr = np.array(sorted(s["train"]))
        va = np.array(s["validation"])
        train = Split("train", Xtr[tr], Ytr[tr], {"mulan_train_row": tr})
        val: Split | None = Split("validation", Xtr[va], Ytr[va], {"mulan_train_row": va})
    elif validation == "none":
        train = Split("train", Xtr, Ytr, {"mulan_train_row": np.arange(len(Xtr))})
        val = None
    else:
        raise ValueError("validation must be 'mulsupcon' or 'none'")
    prov.notes = ("test = Mulan yeast-test.arff, train = Mulan yeast-train.arff; validation = "
                  f"MulSupCon's 300 rows ({MULSUPCON_REPO}).")
    return MultiLabelDataset("yeast", train, test, val, LABELS, FEATURES, prov, "vector",
                             {"validation": validation})


def load_yeast_mulsupcon(root: Path | None = None, source: str = "auto") -> MultiLabelDataset:
    """MulSupCon's exact yeast split: row order and permuted label order of their HDF5 files.

    ``source``: ``"hdf5"`` reads ``mulsupcon_yeast/yeast_official_{train,val,test}.hdf5``
    (``root`` → ``$MLCL_DATA`` → cache; each file's sha256 is pinned); ``"mulan"`` rebuilds the
    same arrays from Mulan's ARFF + the committed index file; ``"auto"`` uses the HDF5 files
    when present, else rebuilds.

    Example
    -------
    >>> ds = load_yeast_mulsupcon(source="mulan")
    >>> ds.label_names[:4]
    ['Class1', 'Class3', 'Class7', 'Class6']
    """
    if source not in ("auto", "hdf5", "mulan"):
        raise ValueError(f"source must be 'auto', 'hdf5' or 'mulan', got {source!r}")
    s = mulsupcon_split()
    cols = np.array(s["label_columns"])
    labels = [LABELS[c] for c in cols]
    d = find_local("mulsupcon_yeast", HDF5_FILES, root) if source != "mulan" else None
    if source == "hdf5" and d is None:
        d = locate("mulsupcon_yeast", HDF5_FILES, root, how_to_get=(
            "Put MulSupCon's yeast_official_{train,val,test}.hdf5 in MLCL_DATA/mulsupcon_yeast, "
            "or use source='mulan' (identical arrays, rebuilt from the shipped files)."))
    if d is not None:
        from .formats import read_mulsupcon_hdf5

        splits, sha = {}, []
        for k, fn in (("train", "train"), ("validation", "val"), ("test", "test")):
            p = d / f"yeast_official_{fn}.hdf5"
            pin = pinned("mulsupcon_yeast", p.name) or {}
            X, Y = read_mulsupcon_hdf5(p, expected_rows=pin.get("rows"))
            splits[k] = Split(k, X, Y)
            sha.append(f"{fn}:{(pin.get('sha256') or '')[:16]}")
        prov = Provenance(source=f"{shown(d)}/yeast_official_*.hdf5", version=MULSUPCON_REPO,
                          checksum="sha256 prefixes " + " ".join(sha), licence=LICENCE,
                          url="https://github.com/williamzhangsjtu/MulSupCon")
    else:
        Xtr, Ytr, Xte, Yte, mprov = read_mulan_yeast(root)
        Ytr, Yte = Ytr[:, cols], Yte[:, cols]
        tr, va = np.array(s["train"]), np.array(s["validation"])
        splits = {
            "train": Split("train", Xtr[tr], Ytr[tr], {"mulan_train_row": tr}),
            "validation": Split("validation", Xtr[va], Ytr[va], {"mulan_train_row": va}),
            "test": Split("test", Xte, Yte),
        }
        prov = Provenance(source=f"{mprov.source} + mlcl/data/_files/{SPLIT_FILE}",
                          version=f"Mulan; split {MULSUPCON_REPO}", checksum=mprov.checksum,
                          licence=LICENCE, url="https://github.com/williamzhangsjtu/MulSupCon",
                          notes="identical to MulSupCon's yeast_official_*.hdf5 (tested)")
    return MultiLabelDataset("yeast-mulsupcon", splits["train"], splits["test"],
                             splits["validation"], labels, FEATURES, prov, "vector",
                             {"label_columns_mulan": cols.tolist()})


def _yeast_available(root: Path) -> bool:
    return available("mulan", MULAN_FILES, root)


register(DatasetInfo(
    "yeast", lambda root, **kw: load_yeast(root, **kw),
    "embedded: Mulan yeast ARFF (shipped with mlcl) + MulSupCon validation rows", "vector",
    _yeast_available, "shipped with mlcl (mlcl/data/_files/mulan)", LICENCE, False,
    "C-GMVAE, MulSupCon"))
register(DatasetInfo(
    "yeast-mulsupcon", lambda root, **kw: load_yeast_mulsupcon(root, **kw),
    "MulSupCon yeast_official_*.hdf5 (or rebuilt from the shipped Mulan ARFF, identical)",
    "vector", _yeast_available,
    "embedded; or MLCL_DATA/mulsupcon_yeast/*.hdf5 from the MulSupCon repo", LICENCE, False,
    "MulSupCon"))


if __name__ == "__main__":  # regenerate the committed index file
    import sys

    out = Path(__file__).parent / "_files" / SPLIT_FILE
    d = derive_mulsupcon_split(sys.argv[1])
    out.write_text(json.dumps(d, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {out}")
