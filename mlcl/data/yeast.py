"""Yeast: the embedded default dataset (from river's wheel) and MulSupCon's exact split.

* ``yeast``: river's ``yeast.csv.gz`` (2,417 rows, same order as Mulan's full ``yeast.arff``).
  Test = rows 0–916 (= Mulan ``yeast-test.arff``), Mulan train = rows 917–2416
  (= ``yeast-train.arff``), split into MulSupCon's 1,200 train / 300 validation rows
  (``_files/yeast_mulsupcon_split.json``). Train rows in ascending Mulan order; Mulan label order
  (``Class1``..``Class14``).
* ``yeast-mulsupcon``: exactly MulSupCon's ``yeast_official_{train,val,test}.hdf5``: train rows in
  their shuffled order and their permuted label columns. Read from
  ``<root>/mulsupcon_yeast/*.hdf5`` when present, else rebuilt from river + the index file
  (identical, tested).

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

import gzip
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .base import MultiLabelDataset, Provenance, Split, sha256_file
from .registry import DatasetInfo, register

N_TEST = 917
N_TOTAL = 2417
FEATURES = [f"Att{i}" for i in range(1, 104)]
LABELS = [f"Class{i}" for i in range(1, 15)]
SPLIT_FILE = "yeast_mulsupcon_split.json"
LICENCE = ("Mulan yeast (Elisseeff & Weston 2002), distributed with river (BSD-3) and Mulan; "
           "free for research use.")
MULSUPCON_REPO = "williamzhangsjtu/MulSupCon@42b23028785203123b673b8a28f5391b9d9726be"


def river_yeast_path() -> Path:
    """Path of ``yeast.csv.gz`` inside the installed ``river`` package.

    Example
    -------
    >>> river_yeast_path().name
    'yeast.csv.gz'
    """
    import importlib.util

    spec = importlib.util.find_spec("river")  # locate without importing river (slow import)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("river is not installed (pip install river)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "yeast.csv.gz"


@lru_cache(maxsize=1)
def _river_arrays() -> tuple[np.ndarray, np.ndarray, str, str]:
    path = river_yeast_path()
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        a = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if header[:103] != FEATURES or header[103:] != LABELS or a.shape != (N_TOTAL, 117):
        raise RuntimeError(f"unexpected yeast file layout in {path}")
    from importlib.metadata import version

    return a[:, :103], a[:, 103:].astype(np.uint8), sha256_file(path), version("river")


def read_river_yeast() -> tuple[np.ndarray, np.ndarray]:
    """All 2,417 rows of river's yeast: ``X`` (float64, 103) and ``Y`` (uint8, 14), Mulan order.

    Example
    -------
    >>> X, Y = read_river_yeast()
    >>> X.shape, Y.shape
    ((2417, 103), (2417, 14))
    """
    X, Y, _, _ = _river_arrays()
    return X.copy(), Y.copy()


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
        "note": ("Row indices are 0-based positions in Mulan yeast-train.arff (= river rows "
                 "917..2416). 'train' is in MulSupCon's HDF5 (shuffled) order; 'validation' in "
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
    """Yeast from river's wheel with the Mulan test split and MulSupCon's validation rows.

    ``validation="mulsupcon"`` (default): 1,200 train / 300 validation / 917 test.
    ``validation="none"``: Mulan's 1,500 train / 917 test, no validation split.
    Yeast has no zero-label samples (``drop_empty`` is a no-op).

    Example
    -------
    >>> ds = load_yeast()
    >>> ds.train.meta["mulan_train_row"][:3].tolist()
    [0, 2, 3]
    """
    X, Y, sha, ver = _river_arrays()
    test = Split("test", X[:N_TEST], Y[:N_TEST], {"row": np.arange(N_TEST)})
    Xtr, Ytr = X[N_TEST:], Y[N_TEST:]
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
    prov = Provenance(
        source="river wheel: river/datasets/yeast.csv.gz (Mulan yeast, 2417 rows)",
        version=f"river=={ver}", checksum=f"sha256:{sha}", licence=LICENCE,
        url="https://mulan.sourceforge.net/datasets-mlc.html",
        notes=("test = rows 0-916 (Mulan yeast-test.arff), train = rows 917-2416 "
               "(Mulan yeast-train.arff); validation = MulSupCon's 300 rows "
               f"({MULSUPCON_REPO})."),
    )
    return MultiLabelDataset("yeast", train, test, val, LABELS, FEATURES, prov, "vector",
                             {"validation": validation})


def load_yeast_mulsupcon(root: Path | None = None, source: str = "auto") -> MultiLabelDataset:
    """MulSupCon's exact yeast split: row order and permuted label order of their HDF5 files.

    ``source``: ``"hdf5"`` reads ``<root>/mulsupcon_yeast/yeast_official_{train,val,test}.hdf5``;
    ``"river"`` rebuilds the same arrays from river + the committed index file;
    ``"auto"`` uses the HDF5 files when present.

    Example
    -------
    >>> ds = load_yeast_mulsupcon(source="river")
    >>> ds.label_names[:4]
    ['Class1', 'Class3', 'Class7', 'Class6']
    """
    s = mulsupcon_split()
    cols = np.array(s["label_columns"])
    labels = [LABELS[c] for c in cols]
    d = Path(root) / "mulsupcon_yeast" if root is not None else None
    use_h5 = source == "hdf5" or (source == "auto" and d is not None
                                  and (d / "yeast_official_train.hdf5").exists())
    if use_h5:
        from .formats import read_mulsupcon_hdf5

        assert d is not None
        splits, sha = {}, []
        for k, fn in (("train", "train"), ("validation", "val"), ("test", "test")):
            X, Y = read_mulsupcon_hdf5(d / f"yeast_official_{fn}.hdf5")
            splits[k] = Split(k, X, Y)
            sha.append(f"{fn}:{sha256_file(d / f'yeast_official_{fn}.hdf5')[:16]}")
        prov = Provenance(source=f"{d}/yeast_official_*.hdf5", version=MULSUPCON_REPO,
                          checksum="sha256 prefixes " + " ".join(sha), licence=LICENCE,
                          url="https://github.com/williamzhangsjtu/MulSupCon")
    elif source in ("river", "auto"):
        X, Y, sha1, ver = _river_arrays()
        Xtr, Ytr = X[N_TEST:], Y[N_TEST:][:, cols]
        tr, va = np.array(s["train"]), np.array(s["validation"])
        splits = {
            "train": Split("train", Xtr[tr], Ytr[tr], {"mulan_train_row": tr}),
            "validation": Split("validation", Xtr[va], Ytr[va], {"mulan_train_row": va}),
            "test": Split("test", X[:N_TEST], Y[:N_TEST][:, cols]),
        }
        prov = Provenance(source="river wheel yeast.csv.gz + mlcl/data/_files/" + SPLIT_FILE,
                          version=f"river=={ver}; split {MULSUPCON_REPO}",
                          checksum=f"sha256:{sha1}", licence=LICENCE,
                          url="https://github.com/williamzhangsjtu/MulSupCon",
                          notes="identical to MulSupCon's yeast_official_*.hdf5 (tested)")
    else:
        raise ValueError("source must be 'auto', 'hdf5' or 'river'")
    return MultiLabelDataset("yeast-mulsupcon", splits["train"], splits["test"],
                             splits["validation"], labels, FEATURES, prov, "vector",
                             {"label_columns_mulan": cols.tolist()})


def _river_available(root: Path) -> bool:
    return river_yeast_path().exists()


register(DatasetInfo(
    "yeast", lambda root, **kw: load_yeast(root, **kw),
    "embedded: river wheel (Mulan yeast) + MulSupCon validation rows", "vector",
    _river_available, "installed with mlcl (river dependency)", LICENCE, False,
    "C-GMVAE, MulSupCon"))
register(DatasetInfo(
    "yeast-mulsupcon", lambda root, **kw: load_yeast_mulsupcon(root, **kw),
    "MulSupCon yeast_official_*.hdf5 (or rebuilt from river, identical)", "vector",
    _river_available, "embedded; or MLCL_DATA/mulsupcon_yeast/*.hdf5 from the MulSupCon repo",
    LICENCE, False, "MulSupCon"))


if __name__ == "__main__":  # regenerate the committed index file
    import sys

    out = Path(__file__).parent / "_files" / SPLIT_FILE
    d = derive_mulsupcon_split(sys.argv[1])
    out.write_text(json.dumps(d, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {out}")
