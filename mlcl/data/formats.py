"""Readers for the papers' own file formats: MulSupCon HDF5 and MPVAE / C-GMVAE ``.npy``.

Users who hold these files (mirflickr, nus-vec, eBird, bookmarks, delicious, mediamill, ...) can
run the papers' exact splits with :func:`load_mulsupcon_hdf5` and :func:`load_mpvae_npy`, or via
``load_dataset("mpvae:<name>")`` / ``load_dataset("mulsupcon:<name>")`` (files under
``<root>/mpvae/<name>/`` and ``<root>/mulsupcon/<name>/``).

Example
-------
>>> from mlcl.data.formats import load_mulsupcon_hdf5
>>> ds = load_mulsupcon_hdf5("../shared/data/mulsupcon_yeast", "yeast")  # doctest: +SKIP
>>> len(ds.train), len(ds.validation), len(ds.test)  # doctest: +SKIP
(1200, 300, 917)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import MultiLabelDataset, Provenance, Split, sha256_file


def read_mulsupcon_hdf5(path: str | Path, *, allow_nonfinite: bool = False,
                       expected_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X float32, Y uint8)`` from one MulSupCon HDF5 file (datasets ``feature``, ``target``).

    Checks: an HDF5 file, both datasets 2-D with the same number of rows (``expected_rows`` when
    given), ``target`` 0/1, ``feature`` finite unless ``allow_nonfinite``. Errors name the file.

    Example
    -------
    >>> X, Y = read_mulsupcon_hdf5("../shared/data/mulsupcon_yeast/yeast_official_val.hdf5")  # doctest: +SKIP
    >>> X.shape, Y.shape  # doctest: +SKIP
    ((300, 103), (300, 14))
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file ({e}): truncated or not HDF5?") from e
    with f:
        if "feature" not in f or "target" not in f:
            raise ValueError(f"{path}: expected HDF5 datasets 'feature' and 'target', got {list(f)}")
        try:
            X = np.asarray(f["feature"][:], dtype=np.float32)
            Y = np.asarray(f["target"][:])
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read 'feature'/'target' ({e}): file damaged?") from e
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise ValueError(f"{path}: 'feature' {X.shape} and 'target' {Y.shape} must be 2-D with "
                         "the same number of rows")
    if expected_rows is not None and len(X) != expected_rows:
        raise ValueError(f"{path} has {len(X)} rows, expected {expected_rows}")
    if Y.size and not np.isin(Y, (0, 1)).all():
        raise ValueError(f"{path}: 'target' is not 0/1")
    if not allow_nonfinite and not np.isfinite(X).all():
        raise ValueError(f"{path}: {int((~np.isfinite(X)).sum())} feature values are not finite; "
                         "pass allow_nonfinite=True to keep them")
    return X, Y.astype(np.uint8)


def load_mulsupcon_hdf5(directory: str | Path, name: str,
                        label_names: list[str] | None = None) -> MultiLabelDataset:
    """A dataset from ``<directory>/<name>_official_{train,val,test}.hdf5`` (MulSupCon layout).

    A missing ``val`` file gives ``validation=None``.

    Example
    -------
    >>> ds = load_mulsupcon_hdf5("../shared/data/mulsupcon_yeast", "yeast")  # doctest: +SKIP
    >>> ds.n_labels  # doctest: +SKIP
    14
    """
    d = Path(directory)
    splits: dict[str, Split | None] = {}
    sums = []
    for key, fn in (("train", "train"), ("validation", "val"), ("test", "test")):
        p = d / f"{name}_official_{fn}.hdf5"
        if not p.exists():
            if key == "validation":
                splits[key] = None
                continue
            raise FileNotFoundError(f"{p} not found (MulSupCon layout <name>_official_<split>.hdf5)")
        X, Y = read_mulsupcon_hdf5(p)
        splits[key] = Split(key, X, Y)
        sums.append(f"{fn}:{sha256_file(p)[:16]}")
    tr = splits["train"]
    assert tr is not None and splits["test"] is not None
    L, F = tr.Y.shape[1], tr.X.shape[1]
    prov = Provenance(source=f"{d}/{name}_official_*.hdf5", version="MulSupCon HDF5",
                      checksum="sha256 prefixes " + " ".join(sums),
                      licence="see the original dataset's licence",
                      url="https://github.com/williamzhangsjtu/MulSupCon")
    return MultiLabelDataset(name, tr, splits["test"], splits["validation"],
                             label_names or [f"label{i}" for i in range(L)],
                             [f"f{i}" for i in range(F)], prov, "vector")


def load_mpvae_npy(data: str | Path, train_idx: str | Path, val_idx: str | Path | None,
                   test_idx: str | Path, label_dim: int, feat_dim: int | None = None,
                   meta_offset: int = 0, name: str = "mpvae",
                   allow_nonfinite: bool = False) -> MultiLabelDataset:
    """A dataset from the MPVAE / C-GMVAE ``.npy`` format.

    ``data`` is an ``(N, meta_offset + label_dim + feat_dim)`` array: meta columns, then labels,
    then features; ``*_idx`` are ``.npy`` arrays of row indices (the papers' splits).

    Example
    -------
    >>> ds = load_mpvae_npy("mirflickr_data.npy", "mirflickr_train_idx.npy",
    ...                     "mirflickr_val_idx.npy", "mirflickr_test_idx.npy",
    ...                     label_dim=38, feat_dim=1000)  # doctest: +SKIP
    """
    try:
        arr = np.load(data, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{data} is not a readable .npy array ({e}): truncated or wrong file?") from e
    if arr.ndim != 2:
        raise ValueError(f"{data}: expected a 2-D array, got shape {arr.shape}")
    lab = slice(meta_offset, meta_offset + label_dim)
    if feat_dim is None:
        feat_dim = arr.shape[1] - meta_offset - label_dim
    feat = slice(meta_offset + label_dim, meta_offset + label_dim + feat_dim)
    if feat.stop > arr.shape[1]:
        raise ValueError(f"{data}: {arr.shape[1]} columns < meta {meta_offset} + labels "
                         f"{label_dim} + features {feat_dim}")
    Y = arr[:, lab]
    if set(np.unique(Y).tolist()) - {0, 1}:
        raise ValueError(f"{data}: label columns {lab.start}:{lab.stop} are not 0/1 "
                         "(check meta_offset / label_dim)")

    if not allow_nonfinite and not np.isfinite(arr[:, feat].astype(np.float64)).all():
        raise ValueError(f"{data}: feature columns {feat.start}:{feat.stop} hold non-finite values; "
                         "pass allow_nonfinite=True to keep them")

    def mk(key: str, idx_path: str | Path | None) -> Split | None:
        if idx_path is None:
            return None
        try:
            raw_idx = np.load(idx_path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{idx_path} is not a readable .npy index array ({e})") from e
        if raw_idx.dtype.kind not in "iu" and not (raw_idx.dtype.kind == "f" and
                                                   np.all(raw_idx == np.round(raw_idx))):
            raise ValueError(f"{idx_path}: row indices must be integers, got {raw_idx.dtype}")
        idx = raw_idx.astype(np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= len(arr)):
            raise ValueError(f"{idx_path}: row indices must lie in 0..{len(arr) - 1} ({data} has "
                             f"{len(arr)} rows), got {idx.min()}..{idx.max()}")
        if len(np.unique(idx)) != len(idx):
            raise ValueError(f"{idx_path}: repeated row indices")
        return Split(key, arr[idx, feat].astype(np.float32), arr[idx, lab].astype(np.uint8),
                     {"row": idx, "meta": arr[idx, :meta_offset]} if meta_offset else {"row": idx})

    tr, va, te = mk("train", train_idx), mk("validation", val_idx), mk("test", test_idx)
    assert tr is not None and te is not None
    if set(tr.meta["row"].tolist()) & set(te.meta["row"].tolist()):
        raise ValueError(f"{train_idx} and {test_idx} share rows: the split leaks test data")
    prov = Provenance(source=str(data), version="MPVAE npy", checksum=f"sha256:{sha256_file(data)}",
                      licence="see the original dataset's licence",
                      url="https://github.com/JunwenBai/MPVAE")
    return MultiLabelDataset(name, tr, te, va, [f"label{i}" for i in range(label_dim)],
                             [f"f{i}" for i in range(feat_dim)], prov, "vector")


def load_mpvae_dir(directory: str | Path, name: str, label_dim: int, feat_dim: int | None = None,
                   meta_offset: int = 0) -> MultiLabelDataset:
    """:func:`load_mpvae_npy` for ``<directory>/<name>_{data,train_idx,val_idx,test_idx}.npy``.

    Example
    -------
    >>> ds = load_mpvae_dir("data/mirflickr", "mirflickr", label_dim=38, feat_dim=1000)  # doctest: +SKIP
    """
    d = Path(directory)
    val = d / f"{name}_val_idx.npy"
    return load_mpvae_npy(d / f"{name}_data.npy", d / f"{name}_train_idx.npy",
                          val if val.exists() else None, d / f"{name}_test_idx.npy",
                          label_dim=label_dim, feat_dim=feat_dim, meta_offset=meta_offset, name=name)
