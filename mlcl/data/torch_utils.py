"""Adapters from :class:`~mlcl.data.base.Split` to ``torch.utils.data``.

Example
-------
>>> from mlcl.data import load_dataset, make_dataloader
>>> ds = load_dataset("yeast")
>>> loader = make_dataloader(ds.torch("train"), batch_size=32, shuffle=True, seed=0)
>>> x, y = next(iter(loader))
>>> tuple(x.shape)
(32, 103)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .base import Split


class SplitDataset(Dataset):
    """``torch`` view of a split: ``(x, y)`` with ``y`` a float32 multi-hot tensor.

    * array inputs → float32 tensor (then ``transform`` if given);
    * text inputs → the string (tokenise in your collate function or ``transform``);
    * image paths → a PIL RGB image (``transform`` should turn it into a tensor).

    ``return_index=True`` yields ``(x, y, i)`` (useful for queues / attention checks).

    Example
    -------
    >>> from mlcl.data import load_dataset
    >>> d = SplitDataset(load_dataset("yeast").test)
    >>> len(d)
    917
    """

    def __init__(self, split: Split, transform: Callable | None = None, return_index: bool = False):
        self.split = split
        self.transform = transform
        self.return_index = return_index
        self._Y = torch.from_numpy(split.Y.astype(np.float32))
        X = split.X
        self._X = torch.from_numpy(X) if isinstance(X, np.ndarray) and X.dtype == np.float32 else None
        self._paths = split.meta.get("is_path", False)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Any:
        if self._X is not None:
            x: Any = self._X[i]
        elif self._paths:
            from PIL import Image  # lazy

            with Image.open(self.split.X[i]) as im:
                x = im.convert("RGB")
        else:
            x = self.split.X[i]
        if self.transform is not None:
            x = self.transform(x)
        if self.return_index:
            return x, self._Y[i], i
        return x, self._Y[i]


def make_dataloader(dataset: Dataset, batch_size: int = 64, shuffle: bool = False,
                    seed: int | None = None, drop_last: bool = False, num_workers: int = 0,
                    **kwargs: Any) -> DataLoader:
    """A ``DataLoader`` with a seeded generator (``seed``) for reproducible shuffling.

    Example
    -------
    >>> from mlcl.data import load_dataset
    >>> dl = make_dataloader(load_dataset("yeast").torch("validation"), batch_size=100)
    >>> len(dl)
    3
    """
    gen = None
    if seed is not None:
        gen = torch.Generator()
        gen.manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen,
                      drop_last=drop_last, num_workers=num_workers, **kwargs)
