"""Long-tailed text sets for paper-scale runs (ABALONE): AAPD, RCV1-v2, UK-LEX.

**Local CSV** (the layout ABALONE's code reads): ``<root>/<name>/train.csv``, ``dev.csv``
(or ``validation.csv`` / ``val.csv``) and ``test.csv``; the first column (or ``text_column``)
is the text, every other column a 0/1 label whose header is the label name.

**Hugging Face Hub** (``source="hf"``, needs ``pip install datasets`` and internet): give the
Hub id of a copy with ``hf_name=`` (and ``hf_config=``); we do not vouch for any third-party
copy, so there is no default id. Rows may carry the labels as one column of index lists
(``labels``, names from the ``ClassLabel`` feature) or as 0/1 columns.

None of these datasets is available offline here; they are not redistributed with mlcl.

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("aapd")  # with MLCL_DATA/aapd/{train,dev,test}.csv  # doctest: +SKIP
>>> ds.kind, type(ds.train.X[0])  # doctest: +SKIP
('text', <class 'str'>)
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import MultiLabelDataset, Provenance, Split, sha256_files
from .registry import DatasetInfo, register

TEXT_SETS = {
    "aapd": ("Arxiv Academic Paper Dataset (Yang et al. 2018), 54 labels",
             "https://github.com/lancopku/SGM", "research use (see the SGM repository)"),
    "rcv1-v2": ("RCV1-v2 (Lewis et al. 2004), 103 topics",
                "http://www.ai.mit.edu/projects/jmlr/papers/volume5/lewis04a/lyrl2004_rcv1v2_README.htm",
                "Reuters Corpus: research-only licence agreement with NIST/Reuters"),
    "uk-lex": ("UK-LEX (Chalkidis & Søgaard 2022), UK legislation",
               "https://github.com/coastalcph/lex-glue", "see the dataset's card"),
}
_VAL_NAMES = ("dev.csv", "validation.csv", "val.csv")


def read_label_csv(path: str | Path, text_column: str | int = 0,
                   label_names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    """``(texts, Y uint8, label_names)`` from a CSV with a text column and 0/1 label columns.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(p, "w").write('text,a,b\\n"hello, world",1,0\\nbye,0,1\\n')
    >>> read_label_csv(p)
    (['hello, world', 'bye'], array([[1, 0],
           [0, 1]], dtype=uint8), ['a', 'b'])
    """
    from .arff import sniff_text_file

    sniff_text_file(path, "CSV")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: not a UTF-8 CSV file ({e})") from e
    if not rows:
        raise ValueError(f"{path} is empty")
    header, body = rows[0], rows[1:]
    if not body:
        raise ValueError(f"{path} has a header but no rows")
    ragged = next((i for i, r in enumerate(body) if len(r) != len(header)), None)
    if ragged is not None:
        raise ValueError(f"{path}, row {ragged + 2}: {len(body[ragged])} fields, the header has "
                         f"{len(header)} (file cut short or a bad quote?)")
    ti = header.index(text_column) if isinstance(text_column, str) else int(text_column)
    lab_cols = [i for i in range(len(header)) if i != ti]
    names = [header[i] for i in lab_cols]
    if label_names is not None:
        pos = {n: i for i, n in enumerate(header)}
        missing = [n for n in label_names if n not in pos]
        if missing:
            raise ValueError(f"{path}: label columns missing: {missing[:5]}")
        lab_cols, names = [pos[n] for n in label_names], list(label_names)
    texts = [r[ti] for r in body]
    try:
        Y = np.array([[int(float(r[i])) for i in lab_cols] for r in body], dtype=np.int64)
    except (ValueError, IndexError) as e:
        raise ValueError(f"{path}: label columns must hold 0/1 ({e})") from e
    if Y.size and not np.isin(Y, (0, 1)).all():
        raise ValueError(f"{path}: label columns must hold 0/1")
    return texts, Y.reshape(len(body), len(lab_cols)).astype(np.uint8), names


def load_text_csv(directory: str | Path, name: str = "text", text_column: str | int = 0,
                  licence: str = "", url: str = "") -> MultiLabelDataset:
    """A text dataset from ``<directory>/{train,dev,test}.csv`` (see the module docstring).

    Example
    -------
    >>> ds = load_text_csv("data/aapd", "aapd")  # doctest: +SKIP
    """
    d = Path(directory)
    tr_p, te_p = d / "train.csv", d / "test.csv"
    if not tr_p.exists() or not te_p.exists():
        raise FileNotFoundError(
            f"dataset {name} needs {tr_p} and {te_p} (text column, then 0/1 label columns); see "
            f"{url or 'the dataset page'}, or use source='hf', hf_name=...")
    va_p = next((d / n for n in _VAL_NAMES if (d / n).exists()), None)
    texts, Y, names = read_label_csv(tr_p, text_column)
    splits: dict[str, Split | None] = {"train": Split("train", texts, Y)}
    for key, p in (("validation", va_p), ("test", te_p)):
        if p is None:
            splits[key] = None
            continue
        t, y, n = read_label_csv(p, text_column, names)
        splits[key] = Split(key, t, y)
    files = [p for p in (tr_p, va_p, te_p) if p is not None]
    prov = Provenance(source=f"CSV files in {d}", version="local CSV",
                      checksum=f"sha256:{sha256_files(files)}", licence=licence, url=url)
    tr, te = splits["train"], splits["test"]
    assert tr is not None and te is not None
    return MultiLabelDataset(name, tr, te, splits["validation"], names, None, prov, "text")


def load_text_hf(hf_name: str, name: str = "text", hf_config: str | None = None,
                 text_field: str = "text", labels_field: str = "labels",
                 split_names: dict[str, str] | None = None, licence: str = "",
                 **load_kwargs: Any) -> MultiLabelDataset:
    """A text dataset from the Hugging Face Hub through ``datasets.load_dataset`` (lazy import).

    ``split_names`` maps our split names to the Hub's (default train / validation / test).

    Example
    -------
    >>> ds = load_text_hf("some-user/aapd", "aapd")  # doctest: +SKIP
    """
    try:
        import datasets as hfd
    except ImportError as e:
        raise ImportError("source='hf' needs the 'datasets' package: pip install datasets") from e
    sn = {"train": "train", "validation": "validation", "test": "test"}
    sn.update(split_names or {})
    try:
        dd = hfd.load_dataset(hf_name, hf_config, **load_kwargs)
    except (OSError, ConnectionError) as e:
        raise ConnectionError(f"dataset {name} needs the Hugging Face Hub ({hf_name}): {e}; or put "
                              f"train/dev/test CSV files in MLCL_DATA/{name}") from e
    first = dd[sn["train"]]
    feats = getattr(first, "features", {}) or {}
    lf = feats.get(labels_field) if hasattr(feats, "get") else None
    label_names: list[str] | None = None
    inner = getattr(lf, "feature", None)
    if inner is not None and getattr(inner, "names", None):
        label_names = list(inner.names)
    cols = list(first.column_names)
    if labels_field not in cols:  # 0/1 columns
        label_names = [c for c in cols if c != text_field]
    splits: dict[str, Split | None] = {}
    for key in ("train", "validation", "test"):
        if sn[key] not in dd:
            splits[key] = None
            continue
        part = dd[sn[key]]
        texts = list(part[text_field])
        if labels_field in cols:
            idx = list(part[labels_field])
            if label_names is None:
                label_names = [str(i) for i in range(max((max(r) for r in idx if len(r)), default=-1) + 1)]
            Y = np.zeros((len(texts), len(label_names)), np.uint8)
            for i, r in enumerate(idx):
                Y[i, list(r)] = 1
        else:
            assert label_names is not None
            Y = np.stack([np.asarray(part[c], dtype=np.uint8) for c in label_names], 1)
        splits[key] = Split(key, texts, Y)
    assert label_names is not None
    for s in splits.values():  # pad earlier splits if later ones raised the label count
        if s is not None and s.Y.shape[1] < len(label_names):
            s.Y = np.pad(s.Y, ((0, 0), (0, len(label_names) - s.Y.shape[1])))
    tr, te = splits["train"], splits["test"]
    if tr is None or te is None:
        raise ValueError(f"{hf_name}: needs train and test splits, has {list(dd)}")
    prov = Provenance(source=f"Hugging Face Hub {hf_name}" + (f" ({hf_config})" if hf_config else ""),
                      version=str(getattr(hfd, "__version__", "")), licence=licence,
                      url=f"https://huggingface.co/datasets/{hf_name}")
    return MultiLabelDataset(name, tr, te, splits["validation"], label_names, None, prov, "text")


def _text_loader(name: str):
    desc, url, lic = TEXT_SETS[name]

    def load(root: Path, source: str = "csv", hf_name: str | None = None,
             text_column: str | int = 0, **kw: Any) -> MultiLabelDataset:
        if source == "hf":
            if hf_name is None:
                raise ValueError(f"{name}: source='hf' needs hf_name='<user>/<dataset>' (no default "
                                 "copy is vouched for)")
            return load_text_hf(hf_name, name, licence=lic, **kw)
        return load_text_csv(Path(root) / name, name, text_column, lic, url)

    return load


for _n, (_desc, _url, _lic) in TEXT_SETS.items():
    register(DatasetInfo(
        _n, _text_loader(_n), f"{_desc}: local CSV (ABALONE layout) or Hugging Face Hub", "text",
        lambda root, n=_n: (Path(root) / n / "train.csv").exists()
        and (Path(root) / n / "test.csv").exists(),
        f"MLCL_DATA/{_n}/{{train,dev,test}}.csv (text, then 0/1 label columns) from {_url}; or "
        "source='hf', hf_name=...", _lic, True, "ABALONE"))
