"""Mulan / MEKA vector benchmarks (scene, emotions, any ``<name>-{train,test}.arff``) and OpenML.

scene and emotions are Mulan's own train/test split, shipped with mlcl (``mlcl/data/_files``) and
looked up as :mod:`mlcl.data.store` says: ``root`` → ``$MLCL_DATA`` → user cache → packaged copy;
each file is checked against its pinned sha256 and its known row/column counts. Labels come from
the MEKA ``-C`` flag in the relation, from ``<dir>/<name>.xml`` (Mulan's label file) or from
``n_labels=``.

OpenML (``source="openml"``, through scikit-learn, internet needed; ids: yeast 40597, scene 40595,
emotions 40589) has one table without Mulan's split, so it gives a seeded *random* split
(``test_fraction``): a different protocol, used only when asked for by name, never as a fallback.

Neither scene nor emotions has a validation split: ``validation_fraction=0.2`` (say) carves a
seeded one out of train. Neither has zero-label samples.

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("emotions")
>>> len(ds.train), len(ds.test), ds.n_features, ds.n_labels
(391, 202, 72, 6)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .arff import read_arff
from .base import MultiLabelDataset, Provenance, Split, sha256_files
from .registry import DatasetInfo, register
from .store import available, locate, pinned, shown

OPENML_IDS = {"yeast": 40597, "scene": 40595, "emotions": 40589}
LABELS = {
    "scene": ["Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban"],
    "emotions": ["amazed-suprised", "happy-pleased", "relaxing-calm", "quiet-still", "sad-lonely",
                 "angry-aggresive"],
    "yeast": [f"Class{i}" for i in range(1, 15)],
}
LICENCES = {
    "scene": "Boutell et al. 2004 (Mulan); free for research use",
    "emotions": "Trohidis et al. 2008 (Mulan); free for research use",
}
MULAN_URL = "https://mulan.sourceforge.net/datasets-mlc.html"


def mulan_label_names_from_xml(path: str | Path) -> list[str]:
    """Label names from a Mulan ``<name>.xml`` label file (hierarchy flattened, in order).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.xml")
    >>> _ = open(p, "w").write('<labels xmlns="http://mulan.sourceforge.net/labels">'
    ...                        '<label name="a"></label><label name="b"/></labels>')
    >>> mulan_label_names_from_xml(p)
    ['a', 'b']
    """
    txt = Path(path).read_text(encoding="utf-8", errors="replace")
    return [m.group(1) for m in re.finditer(r"<label\s+name=\"([^\"]*)\"", txt)]


def load_mulan_arff(directory: str | Path, name: str, n_labels: int | None = None,
                    label_names: list[str] | None = None, validation_fraction: float = 0.0,
                    seed: int = 0, allow_nonfinite: bool = False) -> MultiLabelDataset:
    """Mulan's split of ``name`` from ``<directory>/<name>-{train,test}.arff``.

    For the datasets mlcl ships (scene, emotions, yeast) the row, feature and label counts of each
    file are checked against the manifest, so a file cut short or doubled is refused, naming it.

    Example
    -------
    >>> ds = load_mulan_arff("../shared/data/mulan", "emotions")  # doctest: +SKIP
    >>> ds.label_names[0]  # doctest: +SKIP
    'amazed-suprised'
    """
    d = Path(directory)
    tr_p, te_p = d / f"{name}-train.arff", d / f"{name}-test.arff"
    for p in (tr_p, te_p):
        if not p.exists():
            raise FileNotFoundError(
                f"{p} not found: dataset {name!r} needs Mulan's ARFF files ({MULAN_URL}); put "
                f"{name}-train.arff and {name}-test.arff in {d}")
    if label_names is None and n_labels is None and (d / f"{name}.xml").exists():
        label_names = mulan_label_names_from_xml(d / f"{name}.xml")
    known = {p: pinned("mulan", p.name) for p in (tr_p, te_p)}
    if n_labels is None and label_names is None and known[tr_p]:
        n_labels = known[tr_p]["labels"]

    def read(p: Path, names: list[str] | None) -> Any:
        k = known[p] or {}
        a = read_arff(p, n_labels=None if names else n_labels, label_names=names,
                      allow_nonfinite=allow_nonfinite, expected_rows=k.get("rows"),
                      expected_features=k.get("features"))
        if k and a.Y.shape[1] != k["labels"]:
            raise ValueError(f"{p} has {a.Y.shape[1]} labels, expected {k['labels']}")
        return a

    tr = read(tr_p, label_names)
    te = read(te_p, label_names or tr.label_names)
    if te.feature_names != tr.feature_names:
        raise ValueError(f"{name}: the attributes of {te_p} differ from those of {tr_p}")
    prov = Provenance(source=f"Mulan ARFF {tr_p.name}, {te_p.name} in {shown(d)}", version="Mulan",
                      checksum=f"sha256:{sha256_files([tr_p, te_p])}",
                      licence=LICENCES.get(name, "see Mulan's dataset page"), url=MULAN_URL,
                      notes="Mulan's train/test split" + (" (sparse ARFF)" if tr.sparse else ""))
    ds = MultiLabelDataset(name, Split("train", tr.X, tr.Y), Split("test", te.X, te.Y), None,
                           tr.label_names, tr.feature_names, prov, "vector", {"split": "mulan"})
    return ds.with_validation(validation_fraction, seed) if validation_fraction > 0 else ds


def _to01(values: Any) -> np.ndarray:
    """OpenML label columns (bool / 'TRUE' / 'FALSE' / '1' / '0' / 1 / 0) → uint8."""
    a = np.asarray(values)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype.kind in "iuf":
        out = a.astype(np.float64)
    else:
        s = np.char.lower(np.char.strip(a.astype(str)))
        out = np.full(s.shape, np.nan)
        out[np.isin(s, ("true", "1", "1.0", "yes", "t"))] = 1.0
        out[np.isin(s, ("false", "0", "0.0", "no", "f"))] = 0.0
    if np.isnan(out).any() or not np.isin(out, (0.0, 1.0)).all():
        raise ValueError(f"cannot convert OpenML labels to 0/1: {np.unique(a)[:5]}")
    return out.astype(np.uint8)


def load_openml(data_id: int, label_names: Sequence[str] | None = None, name: str | None = None,
                root: Path | None = None, test_fraction: float = 0.3,
                validation_fraction: float = 0.0, seed: int = 0) -> MultiLabelDataset:
    """A multi-label OpenML dataset through ``sklearn.datasets.fetch_openml`` (needs internet the
    first time; cached under ``<root>/openml``), with a seeded random train/test split.

    ``label_names`` are the target columns (default: OpenML's default targets).

    Example
    -------
    >>> ds = load_openml(40595, LABELS["scene"], "scene")  # doctest: +SKIP
    >>> ds.n_labels  # doctest: +SKIP
    6
    """
    from sklearn import datasets as skd

    kw: dict[str, Any] = {"data_id": int(data_id), "as_frame": True}
    if label_names is not None:
        kw["target_column"] = list(label_names)
    if root is not None:
        kw["data_home"] = str(Path(root) / "openml")
    try:
        bunch = skd.fetch_openml(**kw)
    except OSError as e:  # URLError is an OSError
        raise ConnectionError(
            f"OpenML dataset {data_id} needs https://www.openml.org (no network?): {e}; "
            "or put Mulan's ARFF files in MLCL_DATA/mulan") from e
    T = bunch.target
    tnames = list(T.columns) if hasattr(T, "columns") else list(label_names or ["target"])
    Y = np.stack([_to01(T[c]) for c in tnames], 1) if hasattr(T, "columns") else _to01(T)[:, None]
    Xf = bunch.data
    X = np.asarray(Xf.to_numpy(dtype=np.float32) if hasattr(Xf, "to_numpy") else Xf, np.float32)
    fnames = list(getattr(bunch, "feature_names", [f"f{i}" for i in range(X.shape[1])]))
    n = len(X)
    perm = np.random.default_rng(seed).permutation(n)
    n_te = int(round(test_fraction * n))
    te, tr = np.sort(perm[:n_te]), np.sort(perm[n_te:])
    nm = name or str(getattr(bunch, "details", {}).get("name", f"openml-{data_id}"))
    prov = Provenance(source=f"OpenML data_id={data_id} via scikit-learn fetch_openml",
                      version=str(getattr(bunch, "details", {}).get("version", "")),
                      checksum=str(getattr(bunch, "details", {}).get("md5_checksum", "")),
                      licence=str(getattr(bunch, "details", {}).get("licence", "see OpenML")),
                      url=f"https://www.openml.org/d/{data_id}",
                      notes=f"random split: test_fraction={test_fraction}, seed={seed}")
    ds = MultiLabelDataset(nm, Split("train", X[tr], Y[tr], {"row": tr}),
                           Split("test", X[te], Y[te], {"row": te}), None, tnames, fnames, prov,
                           "vector", {"split": f"random {test_fraction} seed {seed}"})
    return ds.with_validation(validation_fraction, seed) if validation_fraction > 0 else ds


def mulan_files(name: str) -> list[str]:
    """The two files of Mulan's split of ``name``.

    Example
    -------
    >>> mulan_files("scene")
    ['scene-train.arff', 'scene-test.arff']
    """
    return [f"{name}-train.arff", f"{name}-test.arff"]


def _mulan_loader(name: str):
    def load(root: Path, source: str = "auto", n_labels: int | None = None,
             validation_fraction: float = 0.0, seed: int = 0,
             test_fraction: float = 0.3) -> MultiLabelDataset:
        if source in ("auto", "arff", "mulan"):
            # Mulan's documented split or an error: never a silent switch to a random split.
            d = locate("mulan", mulan_files(name), root, how_to_get=(
                f"Put Mulan's {name}-train.arff and {name}-test.arff ({MULAN_URL}) in "
                f"MLCL_DATA/mulan, or reinstall mlcl (it ships them). source='openml' gives a "
                "different, random split."))
            return load_mulan_arff(d, name, n_labels=n_labels,
                                   validation_fraction=validation_fraction, seed=seed)
        if source == "openml":
            return load_openml(OPENML_IDS[name], LABELS.get(name), name, root, test_fraction,
                               validation_fraction, seed)
        raise ValueError(f"source must be 'auto' (Mulan's split) or 'openml' (random split), "
                         f"got {source!r}")

    return load


for _n in ("scene", "emotions"):
    register(DatasetInfo(
        _n, _mulan_loader(_n), "Mulan ARFF, Mulan's train/test split (shipped with mlcl)",
        "vector", lambda root, n=_n: available("mulan", mulan_files(n), root),
        f"shipped with mlcl; or MLCL_DATA/mulan/{_n}-{{train,test}}.arff from {MULAN_URL}; "
        f"source='openml' (id {OPENML_IDS[_n]}) gives a random split instead",
        LICENCES[_n], False, "C-GMVAE" if _n == "scene" else ""))
