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
    """A FIFO queue of (detached) keys and their multi-hot labels, with per-label statistics.

    Until the queue is full only the stored entries are returned (never the zero-initialised
    slots), so it is correct from the first step. When more keys arrive than the queue holds,
    the most recent ``size`` are kept. State is kept in buffers (moves with ``.to()``, saved in
    ``state_dict``).

    Labels are stored as bool, checked (0/1 only) once at enqueue. The queue also maintains,
    on every enqueue/dequeue, the per-label sums of its normalised keys and the per-label
    counts that MulSupCon's loss needs (eq. 7), so that
    ``references(keys, labels, stats=True)`` lets the loss skip the (Q, L) label matrix
    (:class:`mlcl.losses.ReferenceLabels`). The sums are int64 fixed point: exact and
    independent of the order of updates, so they are a function of the stored keys alone —
    rebuilt from them after ``load_state_dict`` (not saved), bit-identical to the running ones.

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
        # per-label statistics of the stored keys (derived state: rebuilt on load)
        self.register_buffer("_label_sums", torch.zeros(self.num_labels, self.dim, dtype=torch.long),
                             persistent=False)
        self.register_buffer("_label_counts", torch.zeros(self.num_labels, dtype=torch.long),
                             persistent=False)
        # Python mirrors of _ptr/_count: reading a CUDA buffer every step would sync with the host.
        self._p, self._n = 0, 0
        # statistics are maintained from the first references(stats=True) on (built from the
        # stored keys then): a queue whose loss never asks for them pays nothing
        self._tracking = False
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_counters())

    def _sync_counters(self) -> None:
        self._p, self._n = int(self._ptr), int(self._count)
        if self._tracking:
            self._rebuild_stats()

    def _rebuild_stats(self) -> None:
        self._label_sums.zero_()
        self._label_counts.zero_()
        self._update_stats(self._fixed_point(self._keys[: self._n]),
                           self._labels[: self._n].to(torch.float64))

    @staticmethod
    def _fixed_point(keys: Tensor) -> Tensor:
        """Normalised keys in fixed point (|x| ≤ 1, so ≤ 2^40 each: integer sums are exact),
        as float64 integers; normalised in float64, i.e. to float32 round-off the loss's own
        normalisation of the same stored keys."""
        from mlcl.losses._common import FIXED_POINT

        kd = keys.to(torch.float64)
        return kd.div_(torch.linalg.vector_norm(kd, dim=1, keepdim=True).clamp_min_(1e-300)) \
            .mul_(FIXED_POINT).round_()

    def _update_stats(self, fp: Tensor, labels: Tensor) -> None:
        """Add rows' contributions to the label statistics: ``fp`` from :meth:`_fixed_point`,
        ``labels`` float64 with entries in {-1, 0, 1} (-1: a dequeued row's label)."""
        from mlcl.losses._common import SPARSE_LABELS

        if fp.shape[0] == 0:
            return
        if fp.device.type == "cpu" and self.num_labels >= SPARSE_LABELS:
            rows, cols = labels.nonzero(as_tuple=True)  # many labels: nnz · D work
            s = labels[rows, cols]
            self._label_sums.index_add_(0, cols, fp[rows].mul_(s[:, None]).long())
            self._label_counts.index_add_(0, cols, s.long())
            return
        # a float64 product of integers: exact while partial sums stay below 2^53 (2^13 rows)
        for i in range(0, fp.shape[0], 1 << 13):
            yb = labels[i : i + (1 << 13)]
            self._label_sums.add_(torch.mm(yb.t(), fp[i : i + (1 << 13)]).long())
            self._label_counts.add_(yb.sum(0).long())

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
        if labels.dtype != torch.bool:  # checked once here: the losses trust stored labels
            from mlcl.losses._common import check_labels

            labels = check_labels(labels, keys.shape[0], "labels", self.num_labels, "keys")
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
        spans = [(p, p + first)] + ([(0, n - first)] if first < n else [])
        if not self._tracking:
            self._store(keys, labels, p, first, n)
            return
        # dequeue: the overwritten slots that held keys leave the statistics, with label -1
        old = [(a, min(b, self._n)) for a, b in spans if min(b, self._n) > a]
        out_fp = [self._fixed_point(self._keys[a:b]) for a, b in old]
        out_y = [self._labels[a:b].to(torch.float64).neg_() for a, b in old]
        self._store(keys, labels, p, first, n)
        # enqueue: the stored copies (what the loss reads), one update for both
        in_fp = [self._fixed_point(self._keys[a:b]) for a, b in spans]
        in_y = [self._labels[a:b].to(torch.float64) for a, b in spans]
        self._update_stats(torch.cat(out_fp + in_fp), torch.cat(out_y + in_y))

    def _store(self, keys: Tensor, labels: Tensor, p: int, first: int, n: int) -> None:
        self._keys[p : p + first].copy_(keys[:first])
        self._labels[p : p + first].copy_(labels[:first])
        if first < n:
            self._keys[: n - first].copy_(keys[first:])
            self._labels[: n - first].copy_(labels[first:])
        self._p, self._n = (p + n) % self.size, min(self.size, self._n + n)
        self._ptr.fill_(self._p)
        self._count.fill_(self._n)

    def references(self, keys: Tensor, labels: Tensor, stats: bool = False):
        """``cat([keys, queue])`` and their labels: the reference set of a MoCo step. Once the
        queue is full its slots are taken in storage order (not oldest first): every loss here
        sums over the reference set, so the order does not matter and no copy is needed.

        ``stats=True``: the labels come as :class:`mlcl.losses.ReferenceLabels` (the batch's
        labels, the queue's, and the queue's per-label key sums and counts): MulSupConLoss then
        reads only the batch's labels; any other loss gets the same matrix as without.
        """
        stored = slice(0, self._n)
        refs = torch.cat([keys, self._keys[stored].to(keys.dtype)])
        if stats:
            from mlcl.losses._common import ReferenceLabels

            if not self._tracking:
                self._tracking = True
                self._rebuild_stats()

            return refs, ReferenceLabels(labels, self._labels[stored], self._label_sums,
                                         self._label_counts)
        return refs, torch.cat([labels.to(torch.bool), self._labels[stored].to(labels.device)])
