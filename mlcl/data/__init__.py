"""Datasets for multi-label learning: one API, offline where possible.

``load_dataset(name, root=None, **options)`` returns a :class:`MultiLabelDataset` with
``train`` / ``validation`` / ``test`` splits (``X``, ``Y`` multi-hot), ``label_names``,
``feature_names``, ``provenance``, ``card()``, and torch adapters. ``list_datasets()`` says where
each dataset comes from and whether it is available offline. Files are looked up in ``root=``,
then ``$MLCL_DATA``, then the user cache, then the copy shipped with mlcl (Mulan scene / emotions /
yeast, MulSupCon's yeast split, Reuters-21578), then a verified download; every shipped file is
checked against its pinned sha256 wherever it is found (:mod:`mlcl.data.store`).

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("yeast")
>>> ds
MultiLabelDataset('yeast', train=1200, validation=300, test=917, labels=14, kind='vector')
>>> x, y = next(iter(ds.dataloader("train", batch_size=16)))
"""

from .base import MultiLabelDataset, Provenance, Split, label_stats
from .registry import DatasetInfo, data_root, get_info, list_datasets, load_dataset, register
from .store import DataIntegrityError


def __getattr__(name: str):  # torch is imported lazily (only the adapters need it)
    if name in ("SplitDataset", "make_dataloader"):
        from . import torch_utils

        return getattr(torch_utils, name)
    raise AttributeError(f"module 'mlcl.data' has no attribute {name!r}")


__all__ = [
    "DataIntegrityError",
    "DatasetInfo",
    "MultiLabelDataset",
    "Provenance",
    "Split",
    "SplitDataset",
    "data_root",
    "get_info",
    "label_stats",
    "list_datasets",
    "load_dataset",
    "make_dataloader",
    "register",
]
