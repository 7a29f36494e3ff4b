"""MoCo machinery used by MulSupCon (and by L_MSC with a queue): a momentum key encoder and a
FIFO queue of keys *with their labels*.

Typical step (MulSupCon, m = 0.999, the key encoder is updated at the start of every step)::

    key_encoder.update(query_encoder)            # EMA before the step
    q = query_encoder(view1)                     # (B, D), with gradients
    k = key_encoder(view2)                       # (B, D), no gradients
    refs, ref_labels = queue.references(k, y)    # cat([k, queue]) and their labels
    loss = MulSupConLoss(0.1)(q, y, refs, ref_labels)
    loss.backward(); optimizer.step()
    queue.enqueue(k, y)                          # after the loss: FIFO
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["LabelledQueue", "MomentumEncoder"]


class MomentumEncoder(nn.Module):
    """An exponential-moving-average copy of an encoder (MoCo's key encoder).

    θ_k ← m·θ_k + (1 − m)·θ_q for every parameter; buffers (e.g. BatchNorm statistics) are
    copied. The copy never receives gradients and its forward runs under ``torch.no_grad()``.

    Args:
        encoder: the query encoder to copy (it is deep-copied once; not stored).
        momentum: m in [0, 1] (0.999 in MulSupCon and ABALONE).

    Example:
        >>> q_enc = nn.Linear(4, 3)
        >>> k_enc = MomentumEncoder(q_enc, momentum=0.999)
        >>> k_enc.update(q_enc)          # at the start of every step
        >>> keys = k_enc(torch.randn(2, 4))
    """

    def __init__(self, encoder: nn.Module, momentum: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] (MoCo uses 0.999), got {momentum!r}.")
        self.momentum = float(momentum)
        self.encoder = copy.deepcopy(encoder)
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, encoder: nn.Module) -> None:
        """EMA step towards ``encoder`` (call it before each optimisation step)."""
        mine = dict(self.encoder.named_parameters())
        theirs = dict(encoder.named_parameters())
        if mine.keys() != theirs.keys():
            raise ValueError(
                "update() needs the encoder this MomentumEncoder was built from (parameter "
                "names differ)."
            )
        m = self.momentum
        for name, p in mine.items():
            p.mul_(m).add_(theirs[name].detach(), alpha=1.0 - m)
        their_buffers = dict(encoder.named_buffers())
        for name, b in self.encoder.named_buffers():
            b.copy_(their_buffers[name])

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.encoder(*args, **kwargs)


class LabelledQueue(nn.Module):
    """A FIFO queue of (detached) keys and their multi-hot labels.

    Until the queue is full only the stored entries are returned (never the zero-initialised
    slots), so it is correct from the first step. When more keys arrive than the queue holds,
    the most recent ``size`` are kept. State is kept in buffers (moves with ``.to()``, saved in
    ``state_dict``).

    Args:
        size: capacity K (MulSupCon: 2048 by default, 256 for yeast; ABALONE: 512).
        dim: key dimension D.
        num_labels: L.

    Example:
        >>> queue = LabelledQueue(size=8, dim=3, num_labels=4)
        >>> queue.enqueue(torch.randn(2, 3), torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0]]))
        >>> len(queue), queue.keys.shape, queue.labels.shape
        (2, torch.Size([2, 3]), torch.Size([2, 4]))
    """

    _keys: Tensor
    _labels: Tensor
    _ptr: Tensor
    _count: Tensor

    def __init__(self, size: int, dim: int, num_labels: int) -> None:
        super().__init__()
        if int(size) < 1 or int(dim) < 1 or int(num_labels) < 1:
            raise ValueError("size, dim and num_labels must be positive integers.")
        self.size, self.dim, self.num_labels = int(size), int(dim), int(num_labels)
        self.register_buffer("_keys", torch.zeros(self.size, self.dim))
        self.register_buffer("_labels", torch.zeros(self.size, self.num_labels, dtype=torch.bool))
        self.register_buffer("_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("_count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self._count)

    @property
    def is_full(self) -> bool:
        return len(self) == self.size

    @property
    def keys(self) -> Tensor:
        """Stored keys, oldest first, shape (len(queue), D)."""
        return self._ordered(self._keys)

    @property
    def labels(self) -> Tensor:
        """Labels of the stored keys (bool), oldest first, shape (len(queue), L)."""
        return self._ordered(self._labels)

    def _ordered(self, buf: Tensor) -> Tensor:
        n, ptr = len(self), int(self._ptr)
        if n < self.size:
            return buf[:n]
        return buf if ptr == 0 else torch.cat([buf[ptr:], buf[:ptr]])

    @torch.no_grad()
    def enqueue(self, keys: Tensor, labels: Tensor, gather_distributed: bool = False) -> None:
        """Append a batch (detached); the oldest entries are overwritten once full.

        With ``gather_distributed=True`` and ``torch.distributed`` initialised, the keys of all
        ranks are appended (in rank order), so every rank holds the same queue.
        """
        if keys.dim() != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"keys must have shape (batch, {self.dim}), got {tuple(keys.shape)}.")
        if labels.shape != (keys.shape[0], self.num_labels):
            raise ValueError(
                f"labels must have shape ({keys.shape[0]}, {self.num_labels}), got "
                f"{tuple(labels.shape)}."
            )
        keys, labels = keys.detach(), labels.detach()
        if gather_distributed:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                from mlcl.losses._common import gather_rows

                keys = gather_rows(keys)[0]
                labels = gather_rows(labels.to(keys.dtype))[0]
        labels = labels != 0
        n = keys.shape[0]
        if n >= self.size:
            keys, labels, n = keys[-self.size :], labels[-self.size :], self.size
        ptr = int(self._ptr)
        idx = (torch.arange(n, device=self._keys.device) + ptr) % self.size
        self._keys[idx] = keys.to(self._keys.dtype)
        self._labels[idx] = labels.to(self._labels.device)
        self._ptr.fill_((ptr + n) % self.size)
        self._count.fill_(min(self.size, int(self._count) + n))

    def references(self, keys: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``cat([keys, queue.keys])`` and their labels: the reference set of a MoCo step."""
        return (
            torch.cat([keys, self.keys.to(keys.dtype)]),
            torch.cat([labels.to(torch.bool), self.labels.to(labels.device)]),
        )
