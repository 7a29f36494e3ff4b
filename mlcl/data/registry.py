"""Dataset registry: :func:`load_dataset`, :func:`list_datasets`, :func:`data_root`.

Example
-------
>>> from mlcl.data import list_datasets, load_dataset
>>> "yeast" in [d["name"] for d in list_datasets()]
True
>>> load_dataset("yeast").name
'yeast'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import MultiLabelDataset


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data / cache directory: ``root`` if given, else ``$MLCL_DATA``, else the user cache
    (``$MLCL_CACHE``, else ``platformdirs.user_cache_dir("mlcl")``).

    Loaders search further (:mod:`mlcl.data.store`: ``root`` → ``$MLCL_DATA`` → user cache →
    the copy packaged with mlcl → download); this is where they start and where downloads go.

    The layout under it is ``mulan/``, ``mulsupcon_yeast/``, ``reuters21578/``, ``coco/``, ...
    (the layout of ``../shared/data``).

    Example
    -------
    >>> str(data_root("/tmp/x"))
    '/tmp/x'
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MLCL_DATA")
    if env:
        return Path(env).expanduser()
    from .store import user_cache_dir

    return user_cache_dir()


@dataclass
class DatasetInfo:
    """Registry entry of one dataset name (see :func:`register`).

    Example
    -------
    >>> get_info("yeast").kind
    'vector'
    """

    name: str
    loader: Callable[..., MultiLabelDataset]
    source: str
    kind: str
    available: Callable[[Path], bool]
    how_to_get: str = ""
    licence: str = ""
    paper_scale: bool = False
    papers: str = ""


_REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    """Add (or replace) a registry entry, making ``load_dataset(info.name)`` work.

    Example
    -------
    >>> from mlcl.data import load_dataset
    >>> from mlcl.data.digits import load_digits_ml
    >>> _ = register(DatasetInfo("tiny-digits", lambda root, **kw: load_digits_ml(
    ...     root, n_train=20, n_validation=0, n_test=10, **kw), "generated", "image", lambda r: True))
    >>> len(load_dataset("tiny-digits").train)
    20
    >>> _ = _REGISTRY.pop("tiny-digits")
    """
    _REGISTRY[info.name] = info
    return info


def _ensure_loaded() -> None:
    # Importing the modules registers their datasets.
    from . import digits, images, mulan, reuters, textcsv, yeast  # noqa: F401


def get_info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (raises ``KeyError`` listing the known names).

    Example
    -------
    >>> get_info("reuters21578").paper_scale
    False
    """
    _ensure_loaded()
    key = name.lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[key]


def load_dataset(name: str, root: str | os.PathLike | None = None, *, drop_empty: bool | None = None,
                 **options: Any) -> MultiLabelDataset:
    """Load dataset ``name`` (see :func:`list_datasets`) from ``root`` / ``$MLCL_DATA`` / cache.

    Prefixed names load any file of a known format under the root:
    ``"mulan:<name>"`` (``mulan/<name>-{train,test}.arff``), ``"mulsupcon:<name>"``
    (``mulsupcon/<name>/<name>_official_*.hdf5``), ``"openml:<id>"`` (scikit-learn's
    ``fetch_openml``; internet on first use), ``"mpvae:yeast"`` / ``"mpvae:scene"`` (MPVAE's
    published split, :func:`load_mpvae_split`). Other MPVAE ``.npy`` files need their dimensions:
    use :func:`mlcl.data.formats.load_mpvae_dir`.

    ``drop_empty`` removes zero-label samples from every split; ``None`` keeps the dataset's
    documented default (``False`` for all built-in sets: zero-label counts are reported in the
    card). Other ``options`` go to the dataset's loader (e.g. ``digits``: ``n_train``, ``seed``).

    Example
    -------
    >>> ds = load_dataset("yeast")
    >>> ds.train.X.dtype, ds.train.Y.dtype
    (dtype('float32'), dtype('uint8'))
    """
    if ":" in name:
        ds = _load_prefixed(name, data_root(root), **options)
    else:
        ds = get_info(name).loader(data_root(root), **options)
    if drop_empty:
        ds = ds.drop_empty()
    return ds


def _load_prefixed(name: str, root: Path, **options: Any) -> MultiLabelDataset:
    prefix, _, rest = name.partition(":")
    if prefix == "mulan":
        from .mulan import load_mulan_arff

        return load_mulan_arff(root / "mulan", rest, **options)
    if prefix == "openml":
        from .mulan import load_openml

        return load_openml(int(rest), root=root, **options)
    if prefix == "mulsupcon":
        from .formats import load_mulsupcon_hdf5

        return load_mulsupcon_hdf5(root / "mulsupcon" / rest, rest, **options)
    if prefix == "mpvae":
        return load_mpvae_split(rest, root, **options)
    raise KeyError(f"unknown dataset prefix {prefix!r} (mulan:, openml:, mulsupcon:, mpvae:)")


# (labels, features) of the MPVAE archive's data sets that C-GMVAE's Tables 1-3 use; the .npy
# rows are labels then features, no meta columns.
MPVAE_DIMS: dict[str, tuple[int, int]] = {"yeast": (14, 103), "scene": (6, 294)}
MPVAE_ARCHIVE_HINT = ("MPVAE_data.tar.gz, linked from the authors' MPVAE repository "
                      "(https://github.com/JunwenBai/MPVAE)")


def mpvae_dir(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """Where the MPVAE archive's ``<name>_{data,train_idx,val_idx,test_idx}.npy`` lie under the
    data root (``mpvae/<name>/`` or ``MPVAE_data/<name>/``, the unpacked archive), else ``None``.

    Example
    -------
    >>> mpvae_dir("yeast", "/nonexistent") is None
    True
    """
    r = data_root(root)
    for d in (r / "mpvae" / name, r / "MPVAE_data" / name, r / "mpvae" / "data" / name):
        if (d / f"{name}_data.npy").exists():
            return d
    return None


def load_mpvae_split(name: str, root: str | os.PathLike | None = None, **options: Any) -> MultiLabelDataset:
    """``name`` on the split MPVAE and C-GMVAE published (``load_dataset("mpvae:yeast")``).

    The archive is not shipped with mlcl; without it this raises ``FileNotFoundError`` naming
    it and where to unpack it.

    Example
    -------
    >>> load_mpvae_split("yeast", "/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: ...MPVAE_data.tar.gz...
    """
    if name not in MPVAE_DIMS:
        raise KeyError(f"mpvae:{name}: known MPVAE data sets are {sorted(MPVAE_DIMS)}")
    d = mpvae_dir(name, root)
    if d is None:
        raise FileNotFoundError(
            f"mpvae:{name} needs the published split: download {MPVAE_ARCHIVE_HINT} and unpack it so "
            f"that {data_root(root) / 'mpvae' / name / (name + '_data.npy')} exists "
            "(also accepted: MPVAE_data/<name>/)")
    from .formats import load_mpvae_dir

    n_labels, n_features = MPVAE_DIMS[name]
    return load_mpvae_dir(d, name, label_dim=n_labels, feat_dim=n_features, **options)


def list_datasets(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """For every dataset name: source, kind, whether it is available offline under ``root``.

    Each row: ``name``, ``kind`` (vector / text / image), ``available`` (alias ``offline``),
    ``source``, ``how_to_get``, ``licence``, ``paper_scale``, ``papers``.

    Example
    -------
    >>> rows = {d["name"]: d for d in list_datasets()}
    >>> rows["yeast"]["available"], rows["digits"]["available"]
    (True, True)
    """
    _ensure_loaded()
    r = data_root(root)
    out = []
    for name in sorted(_REGISTRY):
        info = _REGISTRY[name]
        try:
            avail = bool(info.available(r))
        except Exception:  # noqa: BLE001 - availability is best-effort
            avail = False
        out.append({
            "name": name, "kind": info.kind, "available": avail, "offline": avail,
            "source": info.source,
            "how_to_get": info.how_to_get, "licence": info.licence,
            "paper_scale": info.paper_scale, "papers": info.papers,
        })
    return out
