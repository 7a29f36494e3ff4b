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
from collections.abc import Callable
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
    yb = labels != 0
    # 0/1 only ⇔ the bool matrix converts back to the same values (NaN ≠ 1): two passes
    if labels.numel() and not torch.equal(yb.to(labels.dtype), labels):
        raise ValueError(
            f"{name} must contain only 0 and 1 (multi-hot); got other values. Threshold "
            f"soft labels first, e.g. ({name} > 0.5)."
        )
    return yb


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


class _Normalize(torch.autograd.Function):
    """z = x / ‖x‖ along the last dimension, without overflow or underflow.

    ``F.normalize`` squares in the input precision: a float32 row with a norm above ~1.8e19
    overflows to inf and becomes a zero vector (float64: above ~1e154), and rows below ~1e-19
    lose their precision. Such rows are divided by their largest |entry| before squaring. On
    the CPU the plain norm is computed first and the scaled path runs only when a norm is out
    of the safe range (a host check, free there); on accelerators the scaled path always runs
    (no host synchronisation). The backward is the closed form (g − z (z·g)) / ‖x‖. A
    non-finite row gives NaN (never a silent zero vector); a zero row stays zero.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        fi = torch.finfo(x.dtype)
        if x.device.type == "cpu":
            n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
            if torch.equal(n.clamp(fi.tiny**0.5 * 16, fi.max), n):  # no over/underflow, finite
                n = n.clamp_min_(1e-12)
                ctx.save_for_backward((z := x / n), n)
                return z
        s = x.abs().amax(-1, keepdim=True).clamp_min_(fi.tiny)
        xs = x / s
        n = torch.linalg.vector_norm(xs, dim=-1, keepdim=True).clamp_min_(1e-12)
        z = xs.div_(n)
        ctx.save_for_backward(z, n.mul_(s))  # n · s = ‖x‖ (clamped)
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        z, n = ctx.saved_tensors
        return torch.addcmul(g, z, (z * g).sum(-1, keepdim=True), value=-1.0).div_(n)


def normalize(x: Tensor, dtype: torch.dtype) -> Tensor:
    """L2-normalise the last dimension in ``dtype``, without overflow (see :class:`_Normalize`)."""
    if x.dtype != dtype:
        x = x.to(dtype)
    if x.numel() == 0:
        return x * 1.0
    return _Normalize.apply(x)


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
# the fused similarity kernel: dense or tiled
# --------------------------------------------------------------------------------------------
#: Above this many B × M entries (64 MB in float32) the similarity matrix is processed in
#: blocks of references (override per loss with ``chunk_size=``) ...
AUTO_ELEMENTS = 1 << 24
#: ... of about this many entries each (8 MB: blocks that stay in cache are faster than one
#: huge block; measured on the CPU, benchmarks/bench_losses.py)
AUTO_BLOCK_ELEMENTS = 1 << 21

#: weight_fn(j0, j1) -> positive weights of references j0..j1-1, reference-major (j1-j0, B)
WeightFn = Callable[[int, int], Tensor]


class Values:
    """A reference-side matrix V (M, C) that weighted similarities are multiplied with
    (interface; see :class:`LabelValues`). ``width`` = C."""

    width: int

    def right(self, at: Tensor, j0: int, j1: int) -> Tensor:  # pragma: no cover - interface
        """A @ V[j0:j1] for a reference-major block ``at`` = Aᵀ (j1 - j0, B) → (B, C)."""
        raise NotImplementedError

    def left(self, g: Tensor, j0: int, j1: int) -> Tensor:  # pragma: no cover - interface
        """V[j0:j1] @ Gᵀ for G (B, C) → reference-major (j1 - j0, B)."""
        raise NotImplementedError


def _block_weights(weight_fn: WeightFn, j0: int, j1: int, off: int | None) -> Tensor:
    w = weight_fn(j0, j1)
    if off is not None:  # the anchor's own entry is never a positive
        w.diagonal(off).zero_()
    return w


def _weighted(xt: Tensor, wt: Tensor, values: Values | None, j0: int, j1: int, keep=None):
    """(Σ_m w·x, Σ_m w) or ((w ⊙ x) V, w V) for one reference-major block. ``keep``: a list
    that receives the w ⊙ x buffer (the dense backward reuses it for the gradient: a fresh
    B × M buffer costs page faults on the CPU)."""
    wx = xt * wt
    if keep is not None:
        keep.append(wx)
    if values is None:
        return wx.sum(0), wt.sum(0)
    return values.right(wx, j0, j1), values.right(wt, j0, j1)


class _SimContrast(torch.autograd.Function):
    """The one B × M pass every sample-level loss needs.

    With x_im = scale · q_i·k_m (anchor i's own entry k_{self_offset+i} removed when
    ``self_offset`` is set) and positive weights w_im (from ``weight_fn``, no gradient) it
    returns

        lse_i = log Σ_m exp x_im,    pos_i = Σ_m w_im x_im  (or (w ⊙ x) V),   wsum_i = Σ_m w_im

    in one pass over the similarity matrix: the weights are folded into the sweep that forms
    the log-sum-exp. The matrix is stored reference-major (M × B, i.e. xᵀ): the label products
    produce the weights in that layout and the reductions over m run along contiguous rows.

    ``bounded`` (unit-norm q and k, so |x| ≤ scale): the log-sum-exp is stabilised by the
    constant ``scale`` instead of the row maximum, and the shift is applied inside the GEMM
    (``addmm`` with beta = 1): no max pass, no subtraction pass, and the tiled path needs no
    running maximum. exp(x − scale) ≥ exp(−2·scale) stays a normal float for scale ≤ 30
    (τ ≥ 1/30); otherwise, and for unbounded inputs, the row maximum is used.

    ``block ≥ M``: dense; the unnormalised exponentials and the weights are kept for the
    backward pass. ``block < M``: the references are swept in blocks of ``block`` with a
    streaming (online) log-sum-exp; only q, k and lse are kept and the backward recomputes each
    block, so memory is O(B · block).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, q, k, scale, self_offset, weight_fn, values, block, symmetric, bounded
    ):
        B, M = q.shape[0], k.shape[0]
        qt = q.t()
        shift = bounded and scale <= 30.0
        # base: -scale (the constant shift, added by the GEMM) or a (B,) tensor addmm ignores
        base = q.new_full((B,), -scale) if shift else q[:, 0]
        beta = 1.0 if shift else 0.0
        has_pos = weight_fn is not None
        ctx.scale, ctx.self_offset, ctx.block, ctx.beta = scale, self_offset, block, beta
        ctx.weight_fn, ctx.values, ctx.symmetric = weight_fn, values, symmetric
        # in the M × B layout anchor i's own entry (m = self_offset + i, i) lies on the
        # diagonal with offset -self_offset (j0 - self_offset for the block starting at j0)
        pos = wsum = None
        if block >= M:  # dense
            xt = torch.addmm(base, k, qt, beta=beta, alpha=scale)
            off = None if self_offset is None else -self_offset
            wt = None
            if has_pos:
                wt = _block_weights(weight_fn, 0, M, off)
                scratch: list[Tensor] = []
                pos, wsum = _weighted(xt, wt, values, 0, M, scratch)
                ctx.scratch = scratch[0]  # not a saved tensor: only ever written to
            if off is not None:
                xt.diagonal(off).fill_(-math.inf)
            if shift:
                m = base
            else:
                m = xt.amax(0)
                xt.sub_(m)
            s = xt.exp_().sum(0)
            lse = s.log().sub_(base) if shift else s.log().add_(m)
            ctx.save_for_backward(q, k, xt, s, wt)
        else:  # tiled: streaming log-sum-exp over blocks of references
            run_s = q.new_zeros(B)
            run_m = None if shift else q.new_full((B,), torch.finfo(q.dtype).min)
            for j0 in range(0, M, block):
                j1 = min(j0 + block, M)
                xt = torch.addmm(base, k[j0:j1], qt, beta=beta, alpha=scale)
                off = None if self_offset is None else j0 - self_offset
                if has_pos:
                    wt = _block_weights(weight_fn, j0, j1, off)
                    bp, bw = _weighted(xt, wt, values, j0, j1)
                    pos = bp if pos is None else pos.add_(bp)
                    wsum = bw if wsum is None else wsum.add_(bw)
                if off is not None:
                    xt.diagonal(off).fill_(-math.inf)
                if shift:
                    run_s.add_(xt.exp_().sum(0))
                else:
                    new_m = torch.maximum(run_m, xt.amax(0))
                    run_s.mul_((run_m - new_m).exp_()).add_(xt.sub_(new_m).exp_().sum(0))
                    run_m = new_m
            lse = run_s.log_().sub_(base) if shift else run_s.log_().add_(run_m)
            ctx.save_for_backward(q, k, lse, None, None)
        ctx.set_materialize_grads(False)
        if not has_pos:
            return lse
        if shift:  # the weighted sums saw x − scale: add scale · Σ w back
            pos = torch.add(pos, wsum, alpha=scale)
        ctx.mark_non_differentiable(wsum)
        return lse, pos, wsum

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_lse, g_pos=None, _g_wsum=None):  # type: ignore[override]
        q, k, saved, s, wt = ctx.saved_tensors
        scale, values, self_offset = ctx.scale, ctx.values, ctx.self_offset
        need_q, need_k = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        M = k.shape[0]

        def block_grad(et: Tensor, coef: Tensor | None, wt, j0: int, j1: int, fresh: bool,
                       out: Tensor | None = None):
            # d lse / dx = softmax = e / s; d pos / dx = w (or w ⊙ (V g) for per-label outputs)
            if coef is None:
                gx = torch.zeros_like(et) if out is None else out.zero_()
            elif fresh:
                gx = et.mul_(coef)
            else:
                gx = et * coef if out is None else torch.mul(et, coef, out=out)
            if wt is not None and g_pos is not None:
                gw = g_pos if values is None else values.left(g_pos, j0, j1)
                gx.addcmul_(wt, gw)
            return gx

        if ctx.block >= M:
            coef = None if g_lse is None else g_lse / s
            if coef is not None and not ctx.symmetric and (wt is None or g_pos is None):
                # only the log-sum-exp has a gradient: its coefficient g_i / s_i is per anchor
                # (a column of xᵀ), so it scales the B × D products instead of the B × M matrix
                # (one elementwise pass over the similarities fewer)
                cs = coef.mul_(scale)[:, None]
                gq = torch.mm(saved.t(), k).mul_(cs) if need_q else None
                gk = torch.mm(saved, q * cs) if need_k else None
                return gq, gk, None, None, None, None, None, None, None
            # not in place on the saved softmax (gradcheck and retain_graph=True run the
            # backward more than once): into the forward's w ⊙ x buffer
            gxt = block_grad(saved, coef, wt, 0, M, False, getattr(ctx, "scratch", None))
            if ctx.symmetric:
                gq = torch.addmm(q, gxt + gxt.t(), q, beta=0.0, alpha=scale)
                return gq, None, None, None, None, None, None, None, None
            gq = torch.addmm(q, gxt.t(), k, beta=0.0, alpha=scale) if need_q else None
            gk = torch.addmm(k, gxt, q, beta=0.0, alpha=scale) if need_k else None
            return gq, gk, None, None, None, None, None, None, None
        lse, qt = saved, q.t()
        neg_lse = -lse  # x − lse in the GEMM: e = exp(x − lse) is the softmax itself
        gq = torch.zeros_like(q) if need_q else None
        gk = torch.empty_like(k) if need_k else None
        for j0 in range(0, M, ctx.block):
            j1 = min(j0 + ctx.block, M)
            kb = k[j0:j1]
            xt = torch.addmm(neg_lse, kb, qt, alpha=scale)
            off = None if self_offset is None else j0 - self_offset
            wb = None
            if ctx.weight_fn is not None and g_pos is not None:
                wb = _block_weights(ctx.weight_fn, j0, j1, off)
            if off is not None:
                xt.diagonal(off).fill_(-math.inf)
            gxt = block_grad(xt.exp_(), g_lse, wb, j0, j1, True)
            if need_q:
                gq.addmm_(gxt.t(), kb, alpha=scale)
            if need_k:
                torch.addmm(kb, gxt, q, beta=0.0, alpha=scale, out=gk[j0:j1])
        return gq, gk, None, None, None, None, None, None, None


def check_chunk_size(chunk_size: int | None) -> int | None:
    """Validate a loss's ``chunk_size=`` argument (None = automatic)."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or int(chunk_size) < 1:
        raise ValueError(
            f"chunk_size must be a positive integer (references per block) or None "
            f"(automatic), got {chunk_size!r}."
        )
    return int(chunk_size)


def resolve_chunk(chunk_size: int | None, n_anchors: int, n_refs: int) -> int:
    """References per block: ``chunk_size`` if given; otherwise all of them while the B × M
    matrix has at most :data:`AUTO_ELEMENTS` entries, else blocks of about
    :data:`AUTO_BLOCK_ELEMENTS` entries (at least 256 references)."""
    if chunk_size is not None:
        return max(1, min(chunk_size, n_refs))
    if n_anchors * n_refs <= AUTO_ELEMENTS:
        return max(n_refs, 1)
    return max(256, AUTO_BLOCK_ELEMENTS // max(n_anchors, 1))


def sim_contrast(
    q: Tensor,
    k: Tensor,
    scale: float,
    self_offset: int | None = None,
    weight_fn: WeightFn | None = None,
    values: Values | None = None,
    chunk: int | None = None,
    bounded: bool = True,
):
    """Run :class:`_SimContrast`: lse (B,), or (lse, pos, wsum) when ``weight_fn`` is given.

    ``bounded``: q and k have unit (or zero) norm, so |q·k| ≤ 1 (see :class:`_SimContrast`).

    Empty reference sets (or a single reference that is the anchor itself) give lse = 0 and
    pos = wsum = 0, attached to the graph.
    """
    B, M = q.shape[0], k.shape[0]
    if B == 0 or M - (self_offset is not None) <= 0:
        zero = (q.sum(1) + k.sum() * 0.0) * 0.0
        if weight_fn is None:
            return zero
        c = zero if values is None else zero[:, None].expand(B, values.width).contiguous()
        return zero, c, c.detach()
    block = resolve_chunk(chunk, B, M)
    symmetric = q is k and self_offset in (None, 0) and block >= M
    return _SimContrast.apply(
        q, k, float(scale), self_offset, weight_fn, values, block, symmetric, bounded
    )


# --------------------------------------------------------------------------------------------
# label statistics, once per batch
# --------------------------------------------------------------------------------------------
class _quiet_sparse:
    """Silence torch's 'sparse CSR support is in beta' warning around our (tested) use."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


#: On the CPU, label matrices with at least this many columns are used through their nonzero
#: entries (see :class:`LabelStats`); below it dense float products are faster.
SPARSE_LABELS = 256


class LabelStats:
    """Statistics of the anchors' labels ``y`` (B, L) against the references' ``yk`` (M, L)
    (both bool), computed once per call and shared by a loss's weight functions.

    On the CPU the reference labels are read once, as their nonzero entries: an overlap
    |y_i ∩ yk_m| is then a sum of |yk_m| anchor-label columns (an ``embedding_bag``, cost
    nnz(yk) · B instead of M · L · B) and per-label key sums cost nnz · D. At L = 1000 the dense
    products would cost several times the similarity matrix itself. On accelerators, where
    ``nonzero`` synchronises with the host, and on the CPU below :data:`SPARSE_LABELS` labels
    (where a dense product costs less than reading the nonzero entries), the same quantities
    are dense float products. ``sparse=`` forces either path (both are tested).
    """

    def __init__(self, y: Tensor, yk: Tensor, dtype: torch.dtype, sparse: bool | None = None):
        self.y, self.yk, self.dtype = y, yk, dtype
        if sparse is None:  # dense products are faster below a few hundred labels
            sparse = yk.device.type == "cpu" and yk.shape[1] >= SPARSE_LABELS
        self.sparse = bool(sparse)
        self._cache: dict = {}

    def _get(self, key: str, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def nz(self) -> tuple[Tensor, Tensor]:
        """(rows, cols) of yk's nonzero entries, row-sorted."""
        return self._get("nz", lambda: self.yk.nonzero(as_tuple=True))

    @property
    def crow(self) -> Tensor:
        """CSR row pointers of yk: the entries of reference m are nz[.][crow[m]:crow[m + 1]]."""

        def make():
            rows = self.nz[0]
            crow = rows.new_zeros(self.yk.shape[0] + 1)
            crow[1:].scatter_add_(0, rows, torch.ones_like(rows)).cumsum_(0)
            return crow

        return self._get("crow", make)

    def bag_rows(self, table: Tensor, j0: int, j1: int) -> Tensor:
        """Σ_{c ∈ yk_m} table[c] for m in j0..j1-1: (j1 - j0, table.shape[1])."""
        cols, crow = self.nz[1], self.crow
        a, b = int(crow[j0]), int(crow[j1])
        return F.embedding_bag(cols[a:b], table, crow[j0:j1] - a, mode="sum")

    @property
    def yf(self) -> Tensor:
        """Anchor labels as float (B, L)."""
        return self._get("yf", lambda: self.y.to(self.dtype))

    @property
    def yft(self) -> Tensor:
        """Anchor labels, label-major float (L, B), contiguous (an embedding_bag table)."""
        return self._get("yft", lambda: self.y.t().to(self.dtype).contiguous())

    @property
    def ykf(self) -> Tensor:
        """Reference labels as float (M, L) (the anchors' when the batch is its own reference)."""
        if self.yk is self.y:
            return self.yf
        return self._get("ykf", lambda: self.yk.to(self.dtype))

    @property
    def n_anchor(self) -> Tensor:
        """|y_i| (B,), float."""
        return self._get("na", lambda: self.y.sum(1, dtype=self.dtype))

    @property
    def n_ref(self) -> Tensor:
        """|yk_m| (M,), float."""
        if self.yk is self.y:
            return self.n_anchor
        if self.sparse:
            return self._get("nr", lambda: self.crow.diff().to(self.dtype))
        return self._get("nr", lambda: self.yk.sum(1, dtype=self.dtype))

    def prepare_overlaps(self) -> LabelStats:
        """Build what :meth:`inter` and :attr:`n_ref` read, before the fused kernel runs (the
        kernel's weight functions must not fill this cache from inside an autograd.Function:
        ``torch.compile`` traces them as a side-effect-free subgraph)."""
        if self.sparse:
            self.crow, self.yft  # noqa: B018 - populate the cache
        else:
            self.ykf, self.yf  # noqa: B018
        self.n_anchor, self.n_ref  # noqa: B018
        return self

    def inter(self, j0: int, j1: int) -> Tensor:
        """|y_i ∩ yk_m| for the references j0..j1-1, reference-major (j1 - j0, B), float."""
        if self.sparse:
            return self.bag_rows(self.yft, j0, j1)
        ykf = self.ykf if (j0, j1) == (0, self.yk.shape[0]) else self.ykf[j0:j1]
        return torch.mm(ykf, self.yf.t())

    def label_sums(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """(S, n): S_j = Σ_{m: j ∈ yk_m} k_m (L, D) and n_j = |{m: j ∈ yk_m}| (L,)."""
        L = self.yk.shape[1]
        if self.sparse:
            rows, cols = self.nz
            s = k.new_zeros(L, k.shape[1]).index_add_(0, cols, k[rows])
            n = k.new_zeros(L).index_add_(0, cols, k.new_ones(()).expand(cols.shape[0]))
            return s, n
        return self.ykf.t() @ k, self.yk.sum(0, dtype=self.dtype)

    def group_ids(self) -> tuple[Tensor, Tensor]:
        """Ids of identical label sets: (anchors (B,), references (M,)), in [0, B + M).

        Exact (no hashing) and without host synchronisation: each row is packed into words
        (52 bits per float64 word from a dense product, or 62 bits per int64 word from the
        nonzero entries when sparse), the rows are sorted lexicographically by stable sorts
        (last word first), and a new id starts wherever a sorted row differs from the previous.
        """
        B, L = self.y.shape
        rows = torch.cat([self.y, self.yk])
        n, dev = rows.shape[0], rows.device
        if self.sparse:
            W = max(1, -(-L // 62))
            r, c = rows.nonzero(as_tuple=True)
            keys = torch.zeros(n, W, dtype=torch.long, device=dev)
            keys.index_put_((r, c // 62), torch.bitwise_left_shift(torch.ones_like(c), c % 62),
                            accumulate=True)
        else:  # one product with the (L, W) matrix of bit values: no padded copy
            W = max(1, -(-L // 52))
            c = torch.arange(L, device=dev)
            bits = torch.zeros(L, W, dtype=torch.float64, device=dev)
            bits[c, c // 52] = torch.pow(2.0, (c % 52).to(torch.float64))
            keys = rows.to(torch.float64) @ bits
        order = torch.sort(keys[:, W - 1], stable=True).indices
        for col in range(W - 2, -1, -1):
            order = order[torch.sort(keys[order, col], stable=True).indices]
        sk = keys[order]
        new = torch.ones(n, dtype=torch.long, device=dev)
        new[1:] = (sk[1:] != sk[:-1]).any(1)
        ids = torch.empty_like(order).scatter_(0, order, new.cumsum(0) - 1)
        return ids[:B], ids[B:]


class LabelValues(Values):
    """V = yk (M, L) for :class:`_SimContrast` (L_MSC's per-label sums): sparse on the CPU,
    dense float blocks elsewhere."""

    def __init__(self, stats: LabelStats) -> None:
        self.stats = stats
        self.width = stats.yk.shape[1]

    def _csr_t(self) -> Tensor:
        st = self.stats

        def make():
            rows, cols = st.nz
            order = torch.sort(cols, stable=True).indices
            crow = cols.new_zeros(self.width + 1)
            crow[1:].scatter_add_(0, cols, torch.ones_like(cols)).cumsum_(0)
            return torch.sparse_csr_tensor(
                crow, rows[order], torch.ones(rows.shape[0], dtype=st.dtype, device=rows.device),
                size=(self.width, st.yk.shape[0]), check_invariants=False,
            )

        return st._get("csr_t", make)

    def right(self, at: Tensor, j0: int, j1: int) -> Tensor:
        st = self.stats
        if st.sparse and j0 == 0 and j1 == st.yk.shape[0]:
            with _quiet_sparse():
                return (self._csr_t() @ at).t()
        full = (j0, j1) == (0, st.yk.shape[0])
        return torch.mm(at.t(), st.ykf if full else st.yk[j0:j1].to(st.dtype))

    def left(self, g: Tensor, j0: int, j1: int) -> Tensor:
        st = self.stats
        if st.sparse:
            return st.bag_rows(g.t().contiguous(), j0, j1)
        full = (j0, j1) == (0, st.yk.shape[0])
        return torch.mm(st.ykf if full else st.yk[j0:j1].to(st.dtype), g.t())


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


def reduce_loss(
    values: Tensor,
    valid: Tensor,
    reduction: Reduction,
    world: int = 1,
    check: Tensor | None = None,
) -> Tensor:
    """Reduce per-anchor losses over the valid anchors.

    ``values`` and ``valid`` have the same shape; invalid entries are set to 0 (with a zero
    gradient). ``valid`` may be bool (entries replaced by 0) or float 0/1 weights (entries
    multiplied by 0, so a NaN value — a non-finite embedding — still makes the loss NaN). ``mean`` divides by the number of valid anchors (over all ranks when ``world`` >
    1, and multiplies by ``world`` so that DDP's gradient averaging gives the single-process
    gradient); an empty selection returns a 0 that is still attached to the graph.

    ``check``: a tensor every input reaches (e.g. the log-sum-exp over all references); its
    sum, detached, is added as ``s - s``: 0 when finite, NaN when an input was NaN or inf, so
    a non-finite embedding never hides behind the masking as a 0 loss with NaN gradients.
    """
    if valid.is_floating_point():  # 0/1 weights: a NaN row stays NaN (x · 0 = NaN)
        values = values * valid
        count = valid
    else:
        values = torch.where(valid, values, 0.0)
        count = valid
    if reduction == "none":
        out = values
    elif reduction == "sum":
        out = values.sum()
        out = out * world if world > 1 else out
    else:
        count = global_count(count.sum(dtype=values.dtype), world)
        out = values.sum() / count.clamp_min(1.0)
        out = out * world if world > 1 else out
    if check is not None:
        s = check.detach().sum()
        out = out + (s - s)
    return out


#: Fixed-point scale of :class:`ReferenceLabels`' key sums: unit-norm coordinates become
#: integers (|x| · 2^40 ≤ 2^40), so sums are exact, order-free and reversible in int64 for up
#: to 2^23 keys, with a resolution (2^-40) far below float32 round-off.
FIXED_POINT = 2.0**40


class ReferenceLabels:
    r"""Labels of a reference set ``cat([head, tail])`` whose *tail* (a MoCo queue) comes with
    its label statistics, so a loss need not re-read the tail's (Q, L) label matrix.

    ``head``: the labels (B_k, L) of the leading references (the batch's keys); ``tail``: the
    tail's labels (Q, L), bool, already validated (used only by losses that need every row);
    ``tail_sums``: S_j = Σ_{m ∈ tail, j ∈ y_m} k_m / ‖k_m‖ as int64 fixed point (×
    :data:`FIXED_POINT`), (L, D); ``tail_counts``: |{m ∈ tail : j ∈ y_m}|, int64 (L,).
    :class:`mlcl.models.moco.LabelledQueue` maintains them on enqueue/dequeue
    (``queue.references(keys, labels, stats=True)``); :class:`MulSupConLoss` then reads only
    the head's labels, and every other loss uses :meth:`dense` (the plain path).

    Example:
        >>> from mlcl.models.moco import LabelledQueue
        >>> queue = LabelledQueue(size=8, dim=3, num_labels=4)
        >>> queue.enqueue(torch.randn(2, 3), torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0]]))
        >>> refs, ref_labels = queue.references(torch.randn(2, 3), torch.eye(2, 4), stats=True)
        >>> refs.shape, ref_labels.dense().shape
        (torch.Size([4, 3]), torch.Size([4, 4]))
    """

    __slots__ = ("head", "tail", "tail_sums", "tail_counts")

    def __init__(self, head: Tensor, tail: Tensor, tail_sums: Tensor, tail_counts: Tensor):
        self.head, self.tail, self.tail_sums, self.tail_counts = head, tail, tail_sums, tail_counts

    def __len__(self) -> int:
        return self.head.shape[0] + self.tail.shape[0]

    def dense(self) -> Tensor:
        """All reference labels, (B_k + Q, L) bool (the plain ``ref_labels``)."""
        return torch.cat([self.head.to(torch.bool), self.tail])

    def label_sums(self, k_head: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(S, n) of :meth:`LabelStats.label_sums` over the whole reference set, reading only
        the head's labels: ``k_head`` are the normalised head keys."""
        yh = self.head.to(dtype)
        s = torch.addmm(self.tail_sums.to(dtype), yh.t(), k_head, alpha=1.0, beta=1.0 / FIXED_POINT)
        return s, torch.add(self.tail_counts, yh.sum(0)).to(dtype)


class ContrastiveInputs:
    """Normalised anchors / references, their labels (bool) and the self-pair offset (internal).

    ``y`` / ``yk`` (float copies) are built only when asked for; the losses use the bool
    ``yb`` / ``ykb`` and :attr:`stats`.
    """

    __slots__ = ("z", "yb", "k", "_ykb", "refl", "self_offset", "world", "dtype", "_stats")

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
        self.z, self.yb = z, y
        self._stats: LabelStats | None = None
        self.refl: ReferenceLabels | None = None
        if isinstance(ref_labels, ReferenceLabels):
            if world > 1:  # the statistics are this rank's: gather the plain labels instead
                ref_labels = ref_labels.dense()
            else:
                self.refl = ref_labels
        if ref_embeddings is None:
            k, yk, offset = z, y, 0
            if world > 1:
                k, offset = gather_rows(z)
                yk = gather_rows(y.to(torch.uint8))[0] != 0
            self.self_offset: int | None = offset
        else:
            check_embeddings(ref_embeddings, "ref_embeddings")
            if ref_embeddings.shape[1] != embeddings.shape[1]:
                raise ValueError(
                    f"ref_embeddings has dimension {ref_embeddings.shape[1]} but embeddings has "
                    f"{embeddings.shape[1]}: queries and keys must come from the same head."
                )
            if self.refl is not None:  # only the head is checked: the tail was, at enqueue
                n_tail = self.refl.tail.shape[0]
                if ref_embeddings.shape[0] < n_tail:
                    raise ValueError(
                        f"ref_embeddings has {ref_embeddings.shape[0]} rows but ref_labels "
                        f"describes a tail of {n_tail}: pass the references the queue returned."
                    )
                head = y if self.refl.head is labels else check_labels(  # a MoCo step: y again
                    self.refl.head, ref_embeddings.shape[0] - n_tail, "ref_labels.head",
                    num_labels=labels.shape[1], what="ref_embeddings without the tail",
                )
                if self.refl.tail.shape[1] != labels.shape[1]:
                    raise ValueError(
                        f"ref_labels.tail has {self.refl.tail.shape[1]} label columns, expected "
                        f"{labels.shape[1]}."
                    )
                self.refl = ReferenceLabels(head, *(getattr(self.refl, n) for n in (
                    "tail", "tail_sums", "tail_counts")))
                yk = None  # built on demand (dense)
            else:
                yk = check_labels(
                    ref_labels,  # type: ignore[arg-type]
                    ref_embeddings.shape[0],
                    "ref_labels",
                    num_labels=labels.shape[1],
                    what="ref_embeddings",
                )
            k = normalize(ref_embeddings, dtype)
            if world > 1:
                k, _ = gather_rows(k)
                yk = gather_rows(yk.to(torch.uint8))[0] != 0
            self.self_offset = None
        self.k, self._ykb = k, yk

    @property
    def ykb(self) -> Tensor:
        """Reference labels (M, L), bool."""
        if self._ykb is None:
            self._ykb = self.refl.dense()  # type: ignore[union-attr]
        return self._ykb

    def label_sums(self) -> tuple[Tensor, Tensor]:
        """Per-label sums of the normalised references and counts (L, D), (L,): from the tail's
        statistics when :class:`ReferenceLabels` were given, else from the label matrix."""
        if self.refl is not None and self._ykb is None:
            return self.refl.label_sums(self.k[: self.refl.head.shape[0]], self.dtype)
        return self.stats.label_sums(self.k)

    @property
    def y(self) -> Tensor:
        """Anchor labels as a float (B, L) matrix."""
        return self.yb.to(self.dtype)

    @property
    def yk(self) -> Tensor:
        """Reference labels as a float (M, L) matrix."""
        return self.ykb.to(self.dtype)

    @property
    def stats(self) -> LabelStats:
        """Label statistics of anchors against references (computed once, lazily)."""
        if self._stats is None:
            self._stats = LabelStats(self.yb, self.ykb, self.dtype)
        return self._stats

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

    def reduce(self, values: Tensor, valid: Tensor, reduction: Reduction) -> Tensor:
        """:func:`reduce_loss` over this batch's ranks."""
        return reduce_loss(values, valid, reduction, self.world)
