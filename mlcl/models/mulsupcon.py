"""MulSupCon pre-training model (Zhang & Wu, AAAI 2024): MoCo with a *labelled* queue.

What the authors' code (``williamzhangsjtu/MulSupCon`` @ 42b23028) does, reimplemented:

* a **query encoder** f_q (the backbone) followed by a **projection head** g_q
  ``Linear(r, r') – BatchNorm – ReLU – Dropout(0.1) – Linear(r', 256)``, L2-normalised;
* a **momentum key encoder** (f_k, g_k), a copy updated as θ_k ← m θ_k + (1 − m) θ_q with
  m = 0.999 **at the start of every training step**, never by gradients
  (:class:`mlcl.models.moco.MomentumEncoder`);
* a **queue** of past keys *and their label vectors* (256 for yeast); until it is full only the
  filled part (and the in-batch keys) is used (:class:`mlcl.models.moco.LabelledQueue`);
* two augmented **views** of every sample: the query view goes through (f_q, g_q), the key view
  through (f_k, g_k); the references of the loss are ``cat([keys, queue])`` so the anchor's own
  key is always one of its positives;
* the loss: :class:`mlcl.losses.MulSupConLoss` (``loss="mulsupcon"``, optionally with the 1/|y|
  weight of eq. 6) or :class:`mlcl.losses.SupConLoss` with the ALL / ANY positives.

For vector data the augmentation is :class:`FeatureMask` (every feature of each view zeroed with
probability 0.5, no rescaling) applied to **standardised** inputs (a scaler fitted on the training
split, see :func:`mlcl.training.mulsupcon.standardize`). For small images :class:`ImageJitter` is a pure-torch
stand-in (random shift and pixel noise); the paper's ImageNet-style augmentation lives in
:func:`mlcl.training.mulsupcon.image_settings` (torchvision, imported lazily).

Example:
    >>> import torch
    >>> from mlcl.models.backbones import MLP
    >>> m = MulSupConModel(MLP(103, [256, 512, 256], dropout=0.2), n_labels=14, queue_size=32)
    >>> x, y = torch.randn(8, 103), (torch.rand(8, 14) < 0.3).float()
    >>> out = m(x, y)
    >>> sorted(out)
    ['loss', 'queue_fill']
    >>> m.encode(x).shape
    torch.Size([8, 256])
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcl.losses import MulSupConLoss, SupConLoss
from mlcl.models.backbones import Dropout
from mlcl.models.inference import represent
from mlcl.models.moco import LabelledQueue, MomentumEncoder

__all__ = ["FeatureMask", "ImageJitter", "MulSupConModel", "ProjectionHead", "analytic_gradient", "key_weights",
           "make_loss"]

LossName = Literal["mulsupcon", "all", "any"]


class FeatureMask(nn.Module):
    """Zero every feature with probability ``p`` (independently per sample and view), no rescaling.

    Active in training mode only (identity in eval mode). The authors' vector augmentation.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        return x * torch.rand_like(x).ge_(self.p)  # the uniform draw becomes the 0/1 mask in place

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ImageJitter(nn.Module):
    """Pure-torch augmentation for small images ``(B, C, H, W)``: a random shift of up to
    ``max_shift`` pixels (zero padding) and Gaussian pixel noise. Training mode only."""

    def __init__(self, max_shift: int = 2, noise: float = 0.1) -> None:
        super().__init__()
        self.max_shift, self.noise = max_shift, noise

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        B, _, H, W = x.shape
        s = self.max_shift
        if s > 0:
            pad = F.pad(x, (s, s, s, s))
            dy = torch.randint(0, 2 * s + 1, (B,), device=x.device)
            dx = torch.randint(0, 2 * s + 1, (B,), device=x.device)
            rows = (dy[:, None] + torch.arange(H, device=x.device)[None, :])  # (B, H)
            cols = (dx[:, None] + torch.arange(W, device=x.device)[None, :])  # (B, W)
            b = torch.arange(B, device=x.device)[:, None, None]
            x = pad.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        return x


class ProjectionHead(nn.Module):
    """``Linear(r, r') – BatchNorm1d – ReLU – Dropout – Linear(r', out)``, output L2-normalised."""

    def __init__(self, in_dim: int, hidden: int = 256, out_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 Dropout(dropout), nn.Linear(hidden, out_dim))
        self.out_dim = out_dim

    def forward(self, h: Tensor) -> Tensor:
        return F.normalize(self.net(h), dim=-1)


def make_loss(loss: LossName = "mulsupcon", temperature: float = 0.1, label_weight: bool = False) -> nn.Module:
    """The contrastive loss by name: ``"mulsupcon"`` (eq. 4–5, or eq. 6 with ``label_weight``),
    ``"all"`` or ``"any"`` (SupCon eq. 1 with that positive set)."""
    if loss == "mulsupcon":
        return MulSupConLoss(temperature=temperature, label_weight=label_weight)
    if loss in ("all", "any"):
        if label_weight:
            raise ValueError("label_weight only applies to loss='mulsupcon'")
        return SupConLoss(temperature=temperature, positives=loss)
    raise ValueError(f"loss must be 'mulsupcon', 'all' or 'any', got {loss!r}")


def _out_dim(encoder: nn.Module) -> int:
    d = getattr(encoder, "out_dim", None)
    if d is None:
        raise ValueError("the encoder needs an `out_dim` attribute (the width of its output); set "
                         "encoder.out_dim = ... before building the model")
    return int(d)


class MulSupConModel(nn.Module):
    """MoCo pre-training with a labelled queue; ``model(x, y)`` returns ``{"loss", "queue_fill"}``.

    Args:
        encoder: the backbone f (needs ``out_dim``); kept after pre-training (``model.encoder``).
        n_labels: number of labels L (size of the queue's label rows).
        loss: ``"mulsupcon"``, ``"all"`` or ``"any"``.
        label_weight: MulSupCon with the 1/|y| weight (eq. 6, ablation Table 8).
        temperature: τ (0.1).
        queue_size: number of past keys kept (256 for yeast; 0 = in-batch keys only).
        momentum: m of the key encoder (0.999).
        proj_hidden, proj_dim, proj_dropout: the projection head (r' = 256, 256, 0.1).
        augment: the view transformation (default :class:`FeatureMask` (0.5)); each view draws its
            own randomness.
    """

    def __init__(self, encoder: nn.Module, n_labels: int, *, loss: LossName = "mulsupcon",
                 label_weight: bool = False, temperature: float = 0.1, queue_size: int = 256,
                 momentum: float = 0.999, proj_hidden: int = 256, proj_dim: int = 256,
                 proj_dropout: float = 0.1, augment: nn.Module | None = None) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        self.encoder = encoder
        self.head = ProjectionHead(_out_dim(encoder), proj_hidden, proj_dim, proj_dropout)
        self.encoder_k = MomentumEncoder(encoder, momentum)  # .encoder holds the copy
        self.head_k = MomentumEncoder(self.head, momentum)
        self.augment = augment if augment is not None else FeatureMask(0.5)
        self.criterion = make_loss(loss, temperature, label_weight)
        self.loss_name, self.label_weight, self.temperature = loss, label_weight, temperature
        self.momentum, self.queue_size, self.n_labels = momentum, queue_size, n_labels
        self.queue = LabelledQueue(queue_size, proj_dim, n_labels) if queue_size > 0 else None

    # ------------------------------------------------------------------ MoCo machinery
    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ_k ← m θ_k + (1 − m) θ_q for encoder and head (:class:`mlcl.models.moco.MomentumEncoder`;
        BatchNorm buffers are copied, irrelevant here since the key encoder runs in training mode
        and normalises with batch statistics)."""
        self.encoder_k.update(self.encoder)
        self.head_k.update(self.head)

    def references(self, keys: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``cat([keys, queue])`` and their labels (only the filled part of the queue)."""
        if self.queue is None:
            return keys, labels
        ref, ref_y = self.queue.references(keys, labels)
        return ref, ref_y.to(labels.dtype)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, y: Tensor, x_key: Tensor | None = None) -> dict[str, Tensor]:
        """One MoCo step's loss. ``x_key``: a ready-made key view (then neither view goes
        through ``self.augment``: the data pipeline made both, e.g. torchvision transforms)."""
        if self.training:
            self.momentum_update()
        y = y.float()
        if x_key is None:
            x_q, x_key = self.augment(x), self.augment(x)
        else:
            x_q = x
        q = self.head(self.encoder(x_q))
        with torch.no_grad():
            k = self.head_k(self.encoder_k(x_key))
        ref, ref_y = self.references(k, y)
        loss = self.criterion(q, y, ref, ref_y)
        if self.training and self.queue is not None:
            self.queue.enqueue(k, y)
        # a Python number: no tensor per step, no host sync (the queue counts in Python)
        return {"loss": loss, "queue_fill": float(len(self.queue)) if self.queue is not None else 0.0}

    def encode(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Backbone features f_q(x) in eval mode, on the CPU (what fine-tuning and probing use)."""
        return torch.from_numpy(represent(self.encoder, x, batch_size))

    def project(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Normalised projections g_q(f_q(x)) in eval mode, on the CPU."""
        both = nn.Sequential(self.encoder, self.head).train(self.training)  # represent() restores this mode
        return torch.from_numpy(represent(both, x, batch_size))


# ---------------------------------------------------------------------------------------------
# the gradient decomposition of the MulSupCon paper (eq. 2, 3, 7), in closed form
def key_weights(z_q: Tensor, y: Tensor, z_k: Tensor, y_k: Tensor, temperature: float = 0.1) -> Tensor:
    r"""The weight w_{it} that key t receives in ∇_{z_q^{(i)}} \mathcal L^{(i)} (eq. 4, one anchor
    sample summed over its labels), so that the gradient is Σ_t w_{it} z_k^{(t)}:

    .. math::

        w_{it} = -\frac1\tau \sum_{j \in y_i \cap y_t} \frac{1}{|P_j|}
                 + |y_i|\,\frac1\tau\,\frac{e^{s_t/\tau}}{\sum_a e^{s_a/\tau}}

    (the first term: the paper's "more shared labels, more weight"; the second: eq. 7's |y| ẑ).
    ``z_q`` (B, D) and ``z_k`` (M, D) are the **normalised** embeddings; ``y`` (B, L), ``y_k``
    (M, L) multi-hot. Returns (B, M). Labels with an empty positive set are skipped, as in
    :class:`mlcl.losses.MulSupConLoss`.
    """
    y, y_k = y.to(z_q.dtype), y_k.to(z_q.dtype)
    p = torch.softmax(z_q @ z_k.T / temperature, dim=1)  # (B, M)
    n_pos = y_k.sum(0)  # |P_j|
    valid = y * (n_pos > 0).to(y.dtype)  # anchors (i, j) that have a positive
    inv = torch.where(n_pos > 0, 1.0 / n_pos.clamp(min=1.0), torch.zeros_like(n_pos))
    pos = (valid * inv) @ y_k.T  # Σ_{j ∈ y_i ∩ y_t} 1/|P_j|
    return (-pos + valid.sum(1, keepdim=True) * p) / temperature


def analytic_gradient(z_q: Tensor, y: Tensor, z_k: Tensor, y_k: Tensor, temperature: float = 0.1,
                      per_label_sums: bool = True) -> Tensor:
    r"""∇_{z_q^{(i)}} \mathcal L^{(i)} for every anchor sample (B, D), eq. 7, with respect to the
    **normalised** query (for the raw embedding e = ‖e‖ z, multiply by (I − z zᵀ)/‖e‖).

    ``per_label_sums=True`` computes it as the paper's decomposition suggests: the class
    representations S_j = Σ_{m: j ∈ y_m} z_k^{(m)} (an L × D matrix) give the positive part
    −(1/τ) Σ_{j∈y_i} S_j/|P_j| without any B × M positive mask; ``False`` uses
    :func:`key_weights` (B × M weights).
    """
    if not per_label_sums:
        return key_weights(z_q, y, z_k, y_k, temperature) @ z_k
    y, y_k = y.to(z_q.dtype), y_k.to(z_q.dtype)
    p = torch.softmax(z_q @ z_k.T / temperature, dim=1)
    n_pos = y_k.sum(0)
    valid = y * (n_pos > 0).to(y.dtype)
    class_mean = (y_k.T @ z_k) / n_pos.clamp(min=1.0)[:, None]  # S_j / |P_j|  (L, D)
    z_bar = -(valid @ class_mean) / temperature  # Σ_j z̄_j
    z_hat = (p @ z_k) / temperature  # ẑ
    return z_bar + valid.sum(1, keepdim=True) * z_hat
