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
        """EMA step towards ``encoder`` (call it before each optimisation step): one fused
        ``lerp`` over all parameters, no per-parameter Python loop."""
        pairs = getattr(self, "_pairs", None)
        # pair the tensors once per source encoder (again if a conversion replaced the parameters)
        if getattr(self, "_source", None) is not encoder or (pairs[0] and (
                pairs[0][0] is not next(self.encoder.parameters()) or pairs[1][0] is not next(encoder.parameters()))):
            mine, theirs = dict(self.encoder.named_parameters()), dict(encoder.named_parameters())
            if mine.keys() != theirs.keys():
                raise ValueError(
                    "update() needs the encoder this MomentumEncoder was built from (parameter "
                    "names differ)."
                )
            object.__setattr__(self, "_source", encoder)  # not a submodule: no second copy in state_dict
            object.__setattr__(self, "_pairs", ([mine[n] for n in mine], [theirs[n] for n in mine]))
        k, q = self._pairs
        if k:
            torch._foreach_lerp_(k, [t.detach() for t in q], 1.0 - self.momentum)  # m·θ_k + (1 − m)·θ_q
        # buffers are looked up every time: .to(device) replaces buffer tensors (not parameters)
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
        # Python mirrors of _ptr/_count: reading a CUDA buffer every step would sync with the host.
        self._p, self._n = 0, 0
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_counters())

    def _sync_counters(self) -> None:
        self._p, self._n = int(self._ptr), int(self._count)

    def __len__(self) -> int:
        return self._n

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
        if self._n < self.size:
            return buf[: self._n]
        return buf if self._p == 0 else torch.cat([buf[self._p :], buf[: self._p]])

    @torch.no_grad()
    def enqueue(self, keys: Tensor, labels: Tensor, gather_distributed: bool = False) -> None:
        """Append a batch (detached, copied in place); the oldest entries are overwritten once full.

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
        n = keys.shape[0]
        if n >= self.size:
            keys, labels, n = keys[-self.size :], labels[-self.size :], self.size
        p, first = self._p, min(n, self.size - self._p)  # [p, p+first) then wrap to [0, n-first)
        self._keys[p : p + first].copy_(keys[:first])
        self._labels[p : p + first].copy_(labels[:first] != 0)
        if first < n:
            self._keys[: n - first].copy_(keys[first:])
            self._labels[: n - first].copy_(labels[first:] != 0)
        self._p, self._n = (p + n) % self.size, min(self.size, self._n + n)
        self._ptr.fill_(self._p)
        self._count.fill_(self._n)

    def references(self, keys: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``cat([keys, queue])`` and their labels: the reference set of a MoCo step. Once the
        queue is full its slots are taken in storage order (not oldest first): every loss here
        sums over the reference set, so the order does not matter and no copy is needed."""
        stored = slice(0, self._n)
        return (
            torch.cat([keys, self._keys[stored].to(keys.dtype)]),
            torch.cat([labels.to(torch.bool), self._labels[stored].to(labels.device)]),
        )
