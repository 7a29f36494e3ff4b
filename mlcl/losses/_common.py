"""Shared machinery of :mod:`mlcl.losses`: input checks, normalisation, masking, reduction and
the distributed gather.

Every loss in the package follows the same conventions (documented once, here and in the book):

* embeddings are L2-normalised inside the loss;
* logits are computed in float32 (float64 if an input is float64), with autocast disabled, so
  fp16/bf16 inputs are safe;
* when ``ref_embeddings`` is ``None`` the batch is its own reference set and each anchor's own
  entry is removed from its positives and from its denominator; when references are given
  (MoCo keys, a queue) nothing is removed;
* an anchor without any positive contributes nothing and is not counted; a batch without a valid
  anchor returns a 0 that still back-propagates; a sample without labels is never an anchor and
  never a positive (it stays a negative), so zero-label rows never give NaN or inf;
* ``reduction="mean" | "sum" | "none"``;
* ``gather_distributed=True`` (with ``torch.distributed`` initialised) gathers the references
  from every rank *with* gradients (anchors stay local) and scales the result so that the
  gradients DDP averages equal the single-process gradients on the concatenated batch;
* the log-sum-exp functions are ``once_differentiable`` (exact first derivatives, no double
  backward).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------
def check_temperature(temperature: float, name: str = "temperature") -> float:
    """Return ``temperature`` as a float, or raise a ``ValueError`` that names the fix."""
    t = float(temperature)
    if not (t > 0.0) or not math.isfinite(t):
        raise ValueError(
            f"{name} must be a finite number > 0, got {temperature!r}; "
            f"pass e.g. {name}=0.1 (the MulSupCon / ABALONE value)."
        )
    return t


def check_reduction(reduction: str) -> Reduction:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}.")
    return reduction  # type: ignore[return-value]


def check_embeddings(x: Tensor, name: str = "embeddings", ndim: int = 2) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.dim() != ndim:
        shape = "(batch, dim)" if ndim == 2 else "(batch, num_labels, dim)"
        raise ValueError(
            f"{name} must have shape {shape} ({ndim} dimensions), got {tuple(x.shape)}; "
            f"reshape it, e.g. {name}.flatten(1) for a {ndim + 1}-d feature map."
            if x.dim() > ndim
            else f"{name} must have shape {shape} ({ndim} dimensions), got {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; call .float().")


def check_labels(
    labels: Tensor,
    n: int,
    name: str = "labels",
    num_labels: int | None = None,
    what: str = "embeddings",
) -> Tensor:
    """Validate a multi-hot label matrix and return it as a bool tensor of shape (n, L)."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of 0/1 values, got {type(labels).__name__}.")
    if labels.dim() != 2:
        raise ValueError(
            f"{name} must be a multi-hot matrix of shape (batch, num_labels), got "
            f"{tuple(labels.shape)}; for class indices use "
            f"torch.nn.functional.one_hot(idx, num_labels)."
        )
    if labels.shape[0] != n:
        raise ValueError(
            f"{name} has {labels.shape[0]} rows but {what} has {n}: they must describe the same "
            f"samples, in the same order."
        )
    if num_labels is not None and labels.shape[1] != num_labels:
        raise ValueError(
            f"{name} has {labels.shape[1]} label columns, expected {num_labels} (the number of "
            f"labels of the other inputs)."
        )
    if labels.dtype == torch.bool:
        return labels
    if labels.numel() and not _is_binary(labels):
        raise ValueError(
            f"{name} must contain only 0 and 1 (multi-hot); got other values. Threshold "
            f"soft labels first, e.g. ({name} > 0.5)."
        )
    return labels != 0


def _is_binary(labels: Tensor) -> bool:
    if labels.is_floating_point():
        return bool(((labels == 0) | (labels == 1)).all())
    lo, hi = torch.aminmax(labels)
    return bool(lo >= 0) and bool(hi <= 1)


# --------------------------------------------------------------------------------------------
# numerics
# --------------------------------------------------------------------------------------------
def compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """float64 if any input is float64, float32 otherwise (fp16/bf16 are promoted)."""
    for t in tensors:
        if t is not None and t.dtype == torch.float64:
            return torch.float64
    return torch.float32


def no_autocast(x: Tensor) -> AbstractContextManager:
    """Context that disables autocast on ``x``'s device (logits stay in float32)."""
    dev = x.device.type
    if dev in ("cpu", "cuda", "xpu", "mps"):
        return torch.autocast(device_type=dev, enabled=False)
    return nullcontext()


def normalize(x: Tensor, dtype: torch.dtype) -> Tensor:
    """L2-normalise the last dimension, in ``dtype``."""
    return F.normalize(x.to(dtype), p=2.0, dim=-1, eps=1e-12)


class _LogSumExp(torch.autograd.Function):
    """Row-wise log Σ exp over the kept entries, keeping the softmax for the backward pass.

    Compared with ``torch.logsumexp`` (which recomputes exp(x − lse) in backward) this makes two
    fewer passes over the B × M similarity matrix, the dominant elementwise cost of every loss
    here. Rows with nothing kept return 0 with a zero gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, keep: Tensor | None) -> Tensor:  # type: ignore[override]
        if keep is not None:
            x = x.masked_fill(~keep, float("-inf"))
        m = x.amax(dim=1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = torch.exp(x - m) if keep is None else torch.exp_(x.sub_(m))
        s = e.sum(dim=1, keepdim=True)
        empty = s == 0
        s = torch.where(empty, torch.ones_like(s), s)
        ctx.save_for_backward(e.div_(s))
        return torch.where(empty, torch.zeros_like(s), s.log_() + m).squeeze(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (p,) = ctx.saved_tensors
        return p * grad[:, None], None


class _SimLogSumExp(torch.autograd.Function):
    """lse_i = log Σ_{j kept} exp(scale · q_i · k_j), fused with the similarity matrix: the
    B × M matrix is allocated once, turned into the softmax in place and kept for the backward.
    When q and k are the same tensor (the batch as its own reference set) the backward uses one
    matrix product, (G + Gᵀ) q, instead of two."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        q: Tensor,
        k: Tensor,
        scale: float,
        keep: Tensor | None,
        self_offset: int | None,
        symmetric: bool,
    ) -> Tensor:
        x = (q * scale) @ k.T
        if keep is not None:
            x.masked_fill_(~keep, float("-inf"))
        if self_offset is not None:  # anchor i is reference self_offset + i: drop it
            x.diagonal(offset=self_offset).fill_(float("-inf"))
        m = x.amax(dim=1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        x.sub_(m).exp_()
        s = x.sum(dim=1, keepdim=True)
        empty = s == 0
        s = torch.where(empty, torch.ones_like(s), s)
        x.div_(s)
        ctx.save_for_backward(q, k, x)
        ctx.scale, ctx.symmetric = scale, symmetric
        return torch.where(empty, torch.zeros_like(s), s.log_() + m).squeeze(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        q, k, p = ctx.saved_tensors
        gp = p * grad[:, None]
        if ctx.symmetric:
            gq = (gp + gp.T) @ q * ctx.scale
            return gq, None, None, None, None, None
        gq = gp @ k * ctx.scale if ctx.needs_input_grad[0] else None
        gk = gp.T @ q * ctx.scale if ctx.needs_input_grad[1] else None
        return gq, gk, None, None, None, None


def similarity_logsumexp(
    q: Tensor,
    k: Tensor,
    scale: float = 1.0,
    keep: Tensor | None = None,
    self_offset: int | None = None,
) -> Tensor:
    """``masked_logsumexp(scale * q @ k.T, keep)`` without keeping the similarity matrix.

    ``self_offset``: anchor i's own entry is reference ``self_offset + i`` and is removed (a
    cheaper alternative to a B × M ``keep`` mask).
    """
    if q.shape[0] == 0 or k.shape[0] == 0:
        return (q.sum(1) + k.sum() * 0.0) * 0.0
    symmetric = q is k and keep is None and self_offset in (None, 0)
    return _SimLogSumExp.apply(q, k, float(scale), keep, self_offset, symmetric)


def masked_logsumexp(logits: Tensor, keep: Tensor | None, dim: int = -1) -> Tensor:
    """log Σ exp over the entries where ``keep`` is True (all entries when ``keep`` is None).

    Rows with nothing to keep return 0 (not -inf), with a zero gradient, so that the caller can
    discard them without NaN in the backward pass.
    """
    if logits.dim() == 2 and dim in (1, -1):
        if logits.shape[1] == 0:
            return logits.sum(1) * 0.0
        return _LogSumExp.apply(logits, keep)
    if keep is None:
        if logits.shape[dim] == 0:
            return logits.sum(dim) * 0.0
        return torch.logsumexp(logits, dim=dim)
    any_kept = keep.any(dim=dim, keepdim=True)
    filled = logits.masked_fill(~keep, float("-inf"))
    filled = torch.where(any_kept, filled, torch.zeros_like(filled))
    out = torch.logsumexp(filled, dim=dim)
    return torch.where(any_kept.squeeze(dim), out, torch.zeros_like(out))


# --------------------------------------------------------------------------------------------
# distributed
# --------------------------------------------------------------------------------------------
def distributed_world(gather_distributed: bool) -> tuple[int, int]:
    """(world_size, rank) when gathering is requested and possible, else (1, 0)."""
    if not gather_distributed:
        return 1, 0
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(), dist.get_rank()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 (ranks may hold different numbers of rows) with a backward that
    sums the gradient of every rank's copy and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        world = dist.get_world_size()
        n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
        sizes = [torch.zeros_like(n) for _ in range(world)]
        dist.all_gather(sizes, n)
        sizes_i = [int(s.item()) for s in sizes]
        max_n = max(sizes_i)
        pad = x.new_zeros((max_n - x.shape[0], *x.shape[1:]))
        xp = torch.cat([x, pad], 0).contiguous()
        parts = [torch.empty_like(xp) for _ in range(world)]
        dist.all_gather(parts, xp)
        rank = dist.get_rank()
        ctx.offset = sum(sizes_i[:rank])
        ctx.n = x.shape[0]
        return torch.cat([p[:s] for p, s in zip(parts, sizes_i)], 0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        g = grad.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g[ctx.offset : ctx.offset + ctx.n]


def gather_rows(x: Tensor) -> tuple[Tensor, int]:
    """Gather ``x`` (rows) from every rank with gradients; return (gathered, offset of ours)."""
    import torch.distributed as dist

    out = _GatherWithGrad.apply(x)
    world, rank = dist.get_world_size(), dist.get_rank()
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    return out, int(sum(int(s.item()) for s in sizes[:rank]))


def global_count(count: Tensor, world: int) -> Tensor:
    """Sum a count over ranks (no gradient)."""
    if world == 1:
        return count
    import torch.distributed as dist

    c = count.detach().clone()
    dist.all_reduce(c, op=dist.ReduceOp.SUM)
    return c


def reduce_loss(values: Tensor, valid: Tensor, reduction: Reduction, world: int = 1) -> Tensor:
    """Reduce per-anchor losses over the valid anchors.

    ``values`` and ``valid`` have the same shape; invalid entries are set to 0 (with a zero
    gradient). ``mean`` divides by the number of valid anchors (over all ranks when ``world`` >
    1, and multiplies by ``world`` so that DDP's gradient averaging gives the single-process
    gradient); an empty selection returns a 0 that is still attached to the graph.
    """
    values = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    total = values.sum()
    if reduction == "sum":
        return total * world if world > 1 else total
    count = global_count(valid.sum().to(values.dtype), world)
    loss = total / count.clamp(min=1.0)
    return loss * world if world > 1 else loss


class ContrastiveInputs:
    """Normalised anchors / references, their labels and the self-pair mask (internal)."""

    __slots__ = ("z", "y", "k", "yk", "self_offset", "world", "dtype")

    def __init__(
        self,
        embeddings: Tensor,
        labels: Tensor,
        ref_embeddings: Tensor | None,
        ref_labels: Tensor | None,
        gather_distributed: bool,
    ) -> None:
        check_embeddings(embeddings, "embeddings")
        y = check_labels(labels, embeddings.shape[0])
        if (ref_embeddings is None) != (ref_labels is None):
            raise ValueError(
                "ref_embeddings and ref_labels go together: pass both (MoCo keys / a queue and "
                "their labels) or neither (the batch is its own reference set)."
            )
        self.dtype = dtype = compute_dtype(embeddings, ref_embeddings)
        world, _ = distributed_world(gather_distributed)
        self.world = world
        z = normalize(embeddings, dtype)
        self.z, self.y = z, y.to(dtype)
        if ref_embeddings is None:
            k, yk, offset = z, self.y, 0
            if world > 1:
                k, offset = gather_rows(z)
                yk, _ = gather_rows(self.y)
            self.self_offset: int | None = offset
        else:
            check_embeddings(ref_embeddings, "ref_embeddings")
            if ref_embeddings.shape[1] != embeddings.shape[1]:
                raise ValueError(
                    f"ref_embeddings has dimension {ref_embeddings.shape[1]} but embeddings has "
                    f"{embeddings.shape[1]}: queries and keys must come from the same head."
                )
            yk_b = check_labels(
                ref_labels,  # type: ignore[arg-type]
                ref_embeddings.shape[0],
                "ref_labels",
                num_labels=labels.shape[1],
                what="ref_embeddings",
            )
            k, yk = normalize(ref_embeddings, dtype), yk_b.to(dtype)
            if world > 1:
                k, _ = gather_rows(k)
                yk, _ = gather_rows(yk)
            self.self_offset = None
        self.k, self.yk = k, yk

    @property
    def self_mask(self) -> Tensor | None:
        """(B, M) mask of each anchor's own entry (None when references were given)."""
        if self.self_offset is None:
            return None
        B, M = self.z.shape[0], self.k.shape[0]
        idx = torch.arange(B, device=self.z.device) + self.self_offset
        return torch.arange(M, device=self.z.device)[None, :] == idx[:, None]

    def others(self) -> Tensor | None:
        """Mask of the references that may enter an anchor's denominator (None = all)."""
        mask = self.self_mask
        return None if mask is None else ~mask
