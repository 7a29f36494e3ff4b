"""Batches for the loop: vector data indexed on the device, or a DataLoader for datasets.

Both are *stateless per epoch*: epoch e's batches depend only on (seed, e), so a run resumed at
epoch e sees the batches the uninterrupted run saw. Under DDP each rank gets its contiguous slice
of the global batch, so W ranks × B/W rows compute the update of one process × B rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def as_tensors(data: Sequence[Any], device: torch.device) -> tuple[Tensor, ...]:
    """Arrays → float32 tensors on ``device``; torch tensors keep an integer dtype (token ids)."""
    out = []
    for a in data:
        t = a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a), dtype=torch.float32)
        out.append((t.float() if t.is_floating_point() or t.dtype == torch.bool else t).to(device))
    if len({len(t) for t in out}) != 1:
        raise ValueError(f"all arrays of the training data need the same length, got {[len(t) for t in out]}")
    return tuple(out)


def fingerprint(data: Dataset | Sequence[Any]) -> str:
    """A hash of the training data (tensors: shapes, dtypes and every byte; a Dataset: its type,
    its length and its ``fingerprint`` attribute when it has one): resuming on other data fails."""
    h = hashlib.sha256()
    if isinstance(data, Dataset):
        h.update(f"{type(data).__qualname__}:{len(data)}:{getattr(data, 'fingerprint', '')}".encode())  # type: ignore[arg-type]
    else:
        for a in data:
            t = (a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))).detach().cpu().contiguous()
            h.update(f"{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


class TensorBatches:
    """Random batches of on-device tensors: ``X[idx]`` with a ``randperm`` index, no DataLoader
    (a DataLoader costs more per step than a small MLP's whole update).

    ``steps=None``: one pass (``ceil(n / B)`` batches, ``floor`` with ``drop_last``); else
    ``steps`` batches of ``min(B, n)`` rows, drawing a new permutation when one is used up.
    """

    def __init__(self, tensors: tuple[Tensor, ...], batch_size: int, *, seed: int, rank: int = 0,
                 world: int = 1, drop_last: bool = False) -> None:
        self.t, self.B, self.seed, self.rank, self.world = tensors, batch_size, seed, rank, world
        self.n, self.drop_last = len(tensors[0]), drop_last

    def epoch(self, epoch: int, steps: int | None) -> Iterator[tuple[Tensor, ...]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        dev = self.t[0].device
        if steps is None:
            perm = torch.randperm(self.n, generator=g).to(dev)
            stop = self.n - self.n % self.B if self.drop_last else self.n
            for lo in range(0, stop, self.B):
                yield self._rows(perm[lo:lo + self.B])
            return
        b, perm, pos = min(self.B, self.n), None, self.n
        for _ in range(steps):
            if pos + b > self.n:
                perm, pos = torch.randperm(self.n, generator=g).to(dev), 0
            yield self._rows(perm[pos:pos + b])
            pos += b

    def _rows(self, idx: Tensor) -> tuple[Tensor, ...]:
        if self.world > 1:  # this rank's contiguous share of the global batch
            k = len(idx) // self.world
            idx = idx[self.rank * k:(self.rank + 1) * k]
        return tuple(t[idx] for t in self.t)


class LoaderBatches:
    """A shuffled DataLoader (DistributedSampler seeded from (seed, epoch)); with ``steps`` it
    restarts the sampler with a new seed whenever it runs out within an epoch."""

    def __init__(self, data: Dataset, batch_size: int, *, seed: int, rank: int, world: int, drop_last: bool,
                 device: torch.device, num_workers: int = 0) -> None:
        self.sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=drop_last)
        self.loader = DataLoader(data, batch_size=batch_size // world, sampler=self.sampler, drop_last=drop_last,
                                 num_workers=num_workers, pin_memory=device.type == "cuda")
        self.device = device

    def epoch(self, epoch: int, steps: int | None) -> Iterator[tuple[Tensor, ...]]:
        done, k = 0, 0
        while True:
            self.sampler.set_epoch(epoch * 100_003 + k)
            for batch in self.loader:
                yield tuple(b.to(self.device, non_blocking=True) for b in batch)
                done += 1
                if steps is not None and done == steps:
                    return
            if steps is None or done == 0:
                return
            k += 1
