"""Core containers: :class:`Split`, :class:`Provenance`, :class:`MultiLabelDataset`.

Every loader in :mod:`mlcl.data` returns a :class:`MultiLabelDataset` whose splits hold

* ``X``: a ``np.float32`` array (vectors ``(N, F)`` or images ``(N, C, H, W)``), or a list of
  texts, or a list of image paths (paper-scale image sets);
* ``Y``: a ``(N, L)`` ``np.uint8`` multi-hot matrix;
* ``meta``: optional per-sample extras (document ids, digit boxes, ...).

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("yeast")
>>> ds.train.X.shape, ds.train.Y.shape
((1200, 103), (1200, 14))
>>> round(ds.card()["cardinality"], 2)
4.24
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class Provenance:
    """Where a dataset comes from.

    Example
    -------
    >>> Provenance(source="Mulan ARFF", version="Mulan", checksum="sha256:...", licence="research").source
    'Mulan ARFF'
    """

    source: str
    version: str = ""
    checksum: str = ""
    licence: str = ""
    url: str = ""
    notes: str = ""

    def to_dict(self) -> dict[str, str]:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)


@dataclass
class Split:
    """One split of a multi-label dataset.

    ``X`` is an array (``np.float32``) or a list (texts, image paths); ``Y`` is ``(N, L)`` uint8.

    Example
    -------
    >>> s = Split("train", np.zeros((2, 3), np.float32), np.array([[1, 0], [0, 0]], np.uint8))
    >>> len(s), s.n_empty
    (2, 1)
    """

    name: str
    X: Any
    Y: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.Y = np.asarray(self.Y, dtype=np.uint8)
        if self.Y.ndim != 2:
            raise ValueError(f"Y must be 2-D (N, L), got shape {self.Y.shape}")
        if isinstance(self.X, np.ndarray) and self.X.dtype.kind == "f":
            self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        if len(self.X) != len(self.Y):
            raise ValueError(f"split {self.name!r}: {len(self.X)} inputs but {len(self.Y)} label rows")

    def __len__(self) -> int:
        return int(self.Y.shape[0])

    @property
    def n_empty(self) -> int:
        """Number of samples with no label."""
        return int((self.Y.sum(1) == 0).sum())

    def subset(self, index: Sequence[int] | np.ndarray, name: str | None = None) -> Split:
        """Rows ``index`` of this split (``X``, ``Y`` and per-sample ``meta``).

        Example
        -------
        >>> s = Split("train", np.arange(6, dtype=np.float32).reshape(3, 2), np.eye(3, dtype=np.uint8))
        >>> s.subset([2, 0]).Y.tolist()
        [[0, 0, 1], [1, 0, 0]]
        """
        idx = np.asarray(index, dtype=np.int64)
        n = len(self)
        return Split(
            name or self.name,
            _take(self.X, idx),
            self.Y[idx],
            {k: _take(v, idx) if _is_per_sample(v, n) else v for k, v in self.meta.items()},
        )


def _is_per_sample(v: Any, n: int) -> bool:
    return isinstance(v, (list, np.ndarray)) and len(v) == n


def _take(x: Any, idx: np.ndarray) -> Any:
    if isinstance(x, np.ndarray):
        return x[idx]
    return [x[i] for i in idx]


def label_stats(Y: np.ndarray) -> dict[str, float | int]:
    """Size, cardinality (mean labels per sample), density (cardinality / L), zero-label count.

    Example
    -------
    >>> label_stats(np.array([[1, 1, 0], [0, 0, 0]]))
    {'n': 2, 'cardinality': 1.0, 'density': 0.3333333333333333, 'n_empty': 1, 'n_labelsets': 2}
    """
    Y = np.asarray(Y)
    n, L = Y.shape
    k = Y.sum(1) if n else np.zeros(0)
    card = float(k.mean()) if n else 0.0
    n_sets = len({r.tobytes() for r in np.packbits(Y.astype(bool), axis=1)}) if n else 0
    return {
        "n": int(n),
        "cardinality": card,
        "density": card / L if L else 0.0,
        "n_empty": int((k == 0).sum()),
        "n_labelsets": n_sets,
    }


class MultiLabelDataset:
    """A multi-label dataset: ``train`` / ``validation`` / ``test`` splits plus metadata.

    ``validation`` may be ``None`` when the source has no validation split (see the loader's
    ``validation_fraction`` option). ``feature_names`` is ``None`` for texts and images.

    Example
    -------
    >>> from mlcl.data import load_dataset
    >>> ds = load_dataset("yeast")
    >>> [len(s) for s in ds.splits.values()]
    [1200, 300, 917]
    >>> ds.label_names[:3]
    ['Class1', 'Class2', 'Class3']
    >>> ds.card()["n_empty"]
    0
    """

    def __init__(
        self,
        name: str,
        train: Split,
        test: Split,
        validation: Split | None,
        label_names: Sequence[str],
        feature_names: Sequence[str] | None,
        provenance: Provenance,
        kind: str = "vector",
        info: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.train = train
        self.validation = validation
        self.test = test
        self.label_names = list(label_names)
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.provenance = provenance
        self.kind = kind
        self.info: dict[str, Any] = dict(info or {})
        L = len(self.label_names)
        for s in self.splits.values():
            if s.Y.shape[1] != L:
                raise ValueError(f"split {s.name!r} has {s.Y.shape[1]} labels, expected {L}")

    # ------------------------------------------------------------------ access
    @property
    def splits(self) -> dict[str, Split]:
        """The present splits in the order train, validation, test."""
        out = {"train": self.train}
        if self.validation is not None:
            out["validation"] = self.validation
        out["test"] = self.test
        return out

    def __getitem__(self, split: str) -> Split:
        if split == "val":
            split = "validation"
        if split not in self.splits:
            raise KeyError(f"{self.name} has no split {split!r}; present: {list(self.splits)}")
        return self.splits[split]

    @property
    def n_labels(self) -> int:
        """Number of labels ``L``."""
        return len(self.label_names)

    @property
    def n_features(self) -> int | None:
        """Number of input features (vectors), or ``None`` for texts / images."""
        X = self.train.X
        if isinstance(X, np.ndarray) and X.ndim == 2:
            return int(X.shape[1])
        return None

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"MultiLabelDataset({self.name!r}, {sizes}, labels={self.n_labels}, kind={self.kind!r})"

    # ------------------------------------------------------------------ stats
    def Y_all(self) -> np.ndarray:
        """Label matrix of all splits stacked (train, validation, test).

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> load_dataset("yeast").Y_all().shape
        (2417, 14)
        """
        return np.concatenate([s.Y for s in self.splits.values()], 0)

    def label_frequencies(self, split: str | None = None) -> np.ndarray:
        """Number of samples carrying each label (``split=None``: all splits).

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> int(load_dataset("yeast").label_frequencies("test").max())
        688
        """
        Y = self.Y_all() if split is None else self[split].Y
        return Y.sum(0).astype(np.int64)

    def cooccurrence(self, split: str | None = None, normalize: bool = False) -> np.ndarray:
        """``(L, L)`` label co-occurrence counts; ``normalize=True`` gives P(column | row).

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> C = load_dataset("yeast").cooccurrence()
        >>> C.shape
        (14, 14)
        """
        Y = (self.Y_all() if split is None else self[split].Y).astype(np.float64)
        C = Y.T @ Y
        if normalize:
            d = np.diag(C).copy()
            d[d == 0] = 1.0
            C = C / d[:, None]
        return C

    def card(self) -> dict[str, Any]:
        """Dataset card: sizes, features, labels, cardinality, density, zero-label count.

        Statistics are computed over all splits; ``splits`` gives them per split.

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> c = load_dataset("yeast").card()
        >>> c["n_train"], c["n_validation"], c["n_test"], c["n_labels"], c["n_features"]
        (1200, 300, 917, 14, 103)
        """
        allst = label_stats(self.Y_all())
        freq = self.label_frequencies()
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "n_train": len(self.train),
            "n_validation": len(self.validation) if self.validation is not None else 0,
            "n_test": len(self.test),
            "n_features": self.n_features,
            "n_labels": self.n_labels,
            "cardinality": allst["cardinality"],
            "density": allst["density"],
            "n_empty": allst["n_empty"],
            "n_labelsets": allst["n_labelsets"],
            "label_freq_max": int(freq.max()) if len(freq) else 0,
            "label_freq_min": int(freq.min()) if len(freq) else 0,
            "splits": {k: label_stats(v.Y) for k, v in self.splits.items()},
            "source": self.provenance.source,
            "licence": self.provenance.licence,
        }
        if self.kind == "image" and isinstance(self.train.X, np.ndarray):
            out["image_shape"] = tuple(int(d) for d in self.train.X.shape[1:])
        return out

    # ------------------------------------------------------------------ transforms
    def drop_empty(self, splits: Iterable[str] = ("train", "validation", "test")) -> MultiLabelDataset:
        """A copy without zero-label samples in ``splits`` (the C-GMVAE code cannot take them).

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> ds = load_dataset("digits", n_train=50, n_validation=10, n_test=10, p_empty=0.2)
        >>> ds.drop_empty().card()["n_empty"]
        0
        """
        new = {}
        for k, s in self.splits.items():
            new[k] = s.subset(np.flatnonzero(s.Y.sum(1) > 0)) if k in splits else s
        info = dict(self.info, drop_empty=True)
        return MultiLabelDataset(
            self.name, new["train"], new["test"], new.get("validation"), self.label_names,
            self.feature_names, self.provenance, self.kind, info,
        )

    def with_validation(self, fraction: float = 0.2, seed: int = 0) -> MultiLabelDataset:
        """Carve a seeded random validation split out of ``train`` (replaces any existing one).

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> ds = load_dataset("yeast").with_validation(0.1, seed=1)
        >>> len(ds.train), len(ds.validation)
        (1350, 150)
        """
        train = self.train
        if self.validation is not None:  # merge back first
            train = _concat_splits(self.train, self.validation, "train")
        n = len(train)
        n_val = int(round(fraction * n))
        perm = np.random.default_rng(seed).permutation(n)
        val_idx, tr_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        info = dict(self.info, validation=f"random {fraction:g} of train, seed {seed}")
        return MultiLabelDataset(
            self.name, train.subset(tr_idx, "train"), self.test, train.subset(val_idx, "validation"),
            self.label_names, self.feature_names, self.provenance, self.kind, info,
        )

    # ------------------------------------------------------------------ torch
    def torch(self, split: str = "train", transform: Callable | None = None) -> Any:
        """A ``torch.utils.data.Dataset`` over ``split`` yielding ``(x, y)``.

        ``x`` is a float32 tensor for arrays, the raw string for texts, a PIL image (or
        ``transform(image)``) for image paths; ``y`` is a float32 multi-hot tensor.

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> tds = load_dataset("yeast").torch("train")
        >>> x, y = tds[0]
        >>> tuple(x.shape), tuple(y.shape), str(y.dtype)
        ((103,), (14,), 'torch.float32')
        """
        from .torch_utils import SplitDataset

        return SplitDataset(self[split], transform=transform)

    def dataloader(self, split: str = "train", batch_size: int = 64, shuffle: bool | None = None,
                   transform: Callable | None = None, **kwargs: Any) -> Any:
        """A ``torch.utils.data.DataLoader`` over ``split`` (shuffled for ``train`` by default).

        Example
        -------
        >>> from mlcl.data import load_dataset
        >>> x, y = next(iter(load_dataset("yeast").dataloader("test", batch_size=8)))
        >>> tuple(x.shape), tuple(y.shape)
        ((8, 103), (8, 14))
        """
        from .torch_utils import make_dataloader

        return make_dataloader(self.torch(split, transform), batch_size=batch_size,
                               shuffle=(split == "train") if shuffle is None else shuffle, **kwargs)


def _concat_splits(a: Split, b: Split, name: str) -> Split:
    if isinstance(a.X, np.ndarray):
        X = np.concatenate([a.X, b.X], 0)
    else:
        X = list(a.X) + list(b.X)
    meta = {}
    for k in a.meta:
        if k in b.meta and _is_per_sample(a.meta[k], len(a)) and _is_per_sample(b.meta[k], len(b)):
            va, vb = a.meta[k], b.meta[k]
            meta[k] = np.concatenate([va, vb], 0) if isinstance(va, np.ndarray) else list(va) + list(vb)
    return Split(name, X, np.concatenate([a.Y, b.Y], 0), meta)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f"); _ = open(p, "wb").write(b"abc")
    >>> sha256_file(p)[:8]
    'ba7816bf'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """sha256 over the names and sha256 digests of ``paths`` (sorted): one checksum for a file set.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f"); _ = open(p, "wb").write(b"abc")
    >>> len(sha256_files([p]))
    64
    """
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()
