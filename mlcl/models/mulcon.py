r"""MulCon's label-level embedding network (Dao et al., ICLR 2022 submission, eq. 1–6).

An image ``x`` becomes one embedding **per label**:

1. a token encoder gives a grid of image tokens ``r ∈ R^{HW×C}`` (eq. 6's ``Enc``): a small
   pure-torch CNN for the offline digits (:class:`ConvTokenEncoder`) or torchvision's ResNet-101 at
   448×448 for paper-scale runs (:class:`ResNetTokenEncoder`, torchvision imported lazily);
2. ``r ← SA(r)`` — self-attention blocks over the image tokens (eq. 4, twice in the authors' code);
3. ``g ← MultiAttBlock(U, r, r)`` — multi-head attention whose queries are ``L`` learnable label
   embeddings ``U ∈ R^{L×C}`` (eq. 2–3); its attention weights say where each label looks;
4. ``g ← SA(g)`` — self-attention over the ``L`` label tokens (label correlations);
5. one linear classifier per label, ``s_ij = σ(fc_j(g_ij))``, and the projector
   ``z_ij = normalise(Proj(g_ij))`` on which the label-level contrastive loss (LLCL) acts.

``MultiAttBlock`` (eq. 3) is the Set-Transformer block of Lee et al. (2019):
``Q' = LN(QW_q + MultiAtt(Q, K, V))``, ``out = LN(Q' + ReLU(Q'W'))``. Eq. 3 prints ``Q'W'``
without a non-linearity; we keep the ReLU of the block it cites (``relu_ff=False`` removes it).

:class:`GlobalPoolNet` is the "backbone + BCE" baseline of the ablation (MulCon Table 3,
"R101 + BCE"): the same token encoder, global average pooling, one linear layer for all labels,
and an image-level projector for the "+ SCL" row.

Example:
    >>> import torch
    >>> net = LabelLevelNet(num_labels=10, encoder="cnn", dim=32, heads=4)
    >>> out = net(torch.zeros(2, 1, 32, 32), return_attention=True)
    >>> out["logits"].shape, out["g"].shape, out["z"].shape, out["attention"].shape
    (torch.Size([2, 10]), torch.Size([2, 10, 32]), torch.Size([2, 10, 32]), torch.Size([2, 4, 10, 64]))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcl.models.heads import Projector

__all__ = [
    "ConvTokenEncoder",
    "ResNetTokenEncoder",
    "MultiAttBlock",
    "LabelLevelNet",
    "label_level_outputs",
    "GlobalPoolNet",
    "make_encoder",
]


# ----------------------------------------------------------------------------------------------
# token encoders: (B, C_in, H, W) -> (B, C, h, w)
class ConvTokenEncoder(nn.Module):
    """A small CNN giving a ``(B, width, H/4, W/4)`` grid of tokens (8×8 for a 32×32 canvas).

    Conv3×3–BN–ReLU ×2, max-pool, Conv3×3–BN–ReLU ×2, max-pool. Each token sees a 16×16 window
    (receptive field) centred on its 4×4 cell, i.e. about one 8×8 digit and its surroundings.
    """

    def __init__(self, in_channels: int = 1, width: int = 64, stride: int = 4) -> None:
        super().__init__()
        if stride not in (2, 4):
            raise ValueError("stride must be 2 or 4")
        w1 = max(width // 2, 8)

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        layers = [*block(in_channels, w1), nn.MaxPool2d(2), *block(w1, width)]
        if stride == 4:
            layers += [nn.MaxPool2d(2), *block(width, width)]
        self.net = nn.Sequential(*layers)
        self.out_channels = width
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ResNetTokenEncoder(nn.Module):
    """torchvision ResNet-101 without pooling/fc: 448×448 → ``(B, 2048, 14, 14)`` (paper scale).

    torchvision is imported here, not at module level. ``weights="IMAGENET1K_V1"`` (or any
    torchvision weights name) loads ImageNet weights, which needs them cached or a download.
    """

    def __init__(self, weights: str | None = "IMAGENET1K_V1", arch: str = "resnet101") -> None:
        super().__init__()
        import torchvision  # noqa: PLC0415 - lazily, paper-scale only

        net = getattr(torchvision.models, arch)(weights=weights)
        self.net = nn.Sequential(*list(net.children())[:-2])
        self.out_channels = net.fc.in_features
        self.stride = 32

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_encoder(encoder: str | nn.Module, in_channels: int = 1, width: int = 64, **kw) -> nn.Module:
    """``"cnn"`` → :class:`ConvTokenEncoder`, ``"resnet101"`` → :class:`ResNetTokenEncoder`, or a
    module with an ``out_channels`` attribute returning ``(B, C, h, w)``."""
    if isinstance(encoder, nn.Module):
        if not hasattr(encoder, "out_channels"):
            raise ValueError("a custom encoder needs an `out_channels` attribute")
        return encoder
    if encoder == "cnn":
        return ConvTokenEncoder(in_channels, width, **kw)
    if encoder in ("resnet101", "resnet50"):
        return ResNetTokenEncoder(arch=encoder, **kw)
    raise ValueError(f"encoder must be 'cnn', 'resnet101', 'resnet50' or an nn.Module, got {encoder!r}")


# ----------------------------------------------------------------------------------------------
class MultiAttBlock(nn.Module):
    r"""Eq. 2–3: multi-head attention of queries ``Q`` over keys/values ``K`` with residual + LN.

    ``Q (B, n_q, d_q)``, ``K (B, n_v, d_k)`` → ``(B, n_q, dim)``; ``attention`` of the last call
    (``(B, heads, n_q, n_v)``, softmax over ``n_v``) is kept when ``keep_attention`` is set.
    """

    def __init__(self, d_q: int, d_k: int, dim: int, heads: int = 4, relu_ff: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads, self.dim = heads, dim
        self.w_q = nn.Linear(d_q, dim)
        self.w_k = nn.Linear(d_k, dim)
        self.w_v = nn.Linear(d_k, dim)
        self.w_o = nn.Linear(dim, dim)  # W^O of eq. 2
        self.ff = nn.Linear(dim, dim)  # W^{q'} of eq. 3
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.relu_ff = relu_ff
        self.drop = nn.Dropout(dropout)
        self.keep_attention = False
        self.attention: Tensor | None = None

    def forward(self, q: Tensor, k: Tensor, v: Tensor | None = None) -> Tensor:
        v = k if v is None else v
        B, nq, _ = q.shape
        nv = k.shape[1]
        h, dh = self.heads, self.dim // self.heads
        qp = self.w_q(q)  # concat(QW_1, …, QW_h)
        qh = qp.view(B, nq, h, dh).transpose(1, 2)
        kh = self.w_k(k).view(B, nv, h, dh).transpose(1, 2)
        vh = self.w_v(v).view(B, nv, h, dh).transpose(1, 2)
        att = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(dh), dim=-1)  # ω(QK^T), eq. 1
        self.attention = att.detach() if self.keep_attention else None
        o = (self.drop(att) @ vh).transpose(1, 2).reshape(B, nq, self.dim)
        q1 = self.ln1(qp + self.w_o(o))
        f = self.ff(q1)
        return self.ln2(q1 + (F.relu(f) if self.relu_ff else f))


class SelfAttention(MultiAttBlock):
    """Eq. 4: ``SA(X) = MultiAttBlock(X, X, X)``."""

    def __init__(self, dim: int, heads: int = 4, **kw) -> None:
        super().__init__(dim, dim, dim, heads, **kw)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, x, x)


# ----------------------------------------------------------------------------------------------
class LabelLevelNet(nn.Module):
    """MulCon's label-level embedding network + per-label classifiers + projector (eq. 1–6).

    Args:
        num_labels: ``L``.
        encoder: ``"cnn"`` (digits), ``"resnet101"`` (paper scale, lazy torchvision) or a module
            with ``out_channels`` returning ``(B, C, h, w)``.
        in_channels, width: of the ``"cnn"`` encoder (``width`` = C, the token width).
        dim: ``D``, width of the label-level embeddings ``g_ij`` (1024 in the paper).
        heads: attention heads (4 in the paper).
        image_blocks: self-attention blocks over the image tokens (2 in the authors' code).
        label_blocks: self-attention blocks over the label tokens (1).
        proj_hidden, proj_dim: projector ``D → proj_hidden → proj_dim`` (1024 → 128 in the paper).
        encoder_kwargs: passed to :func:`make_encoder` (e.g. ``weights=None`` for ResNet).

    ``forward(x, return_attention=False)`` returns a dict: ``logits (B, L)``, ``g (B, L, D)``,
    ``z (B, L, proj_dim)`` (L2-normalised projections, the LLCL input), ``grid (h, w)``, and with
    ``return_attention`` the label→image-token attention ``attention (B, heads, L, h·w)``.
    """

    def __init__(self, num_labels: int, encoder: str | nn.Module = "cnn", *, in_channels: int = 1,
                 width: int = 64, dim: int = 64, heads: int = 4, image_blocks: int = 2,
                 label_blocks: int = 1, proj_hidden: int | None = None, proj_dim: int = 32,
                 dropout: float = 0.0, encoder_kwargs: dict | None = None) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.encoder = make_encoder(encoder, in_channels, width, **(encoder_kwargs or {}))
        c = self.encoder.out_channels
        self.image_sa = nn.ModuleList(SelfAttention(c, heads, dropout=dropout) for _ in range(image_blocks))
        self.label_queries = nn.Parameter(torch.randn(num_labels, c) * c**-0.5)  # U ∈ R^{L×C}
        self.label_attention = MultiAttBlock(c, c, dim, heads, dropout=dropout)
        self.label_sa = nn.ModuleList(SelfAttention(dim, heads, dropout=dropout) for _ in range(label_blocks))
        # one Linear(D, 1) per label, stored as one (L, D) weight and an (L,) bias
        self.cls_weight = nn.Parameter(torch.empty(num_labels, dim))
        self.cls_bias = nn.Parameter(torch.zeros(num_labels))
        nn.init.kaiming_uniform_(self.cls_weight, a=math.sqrt(5))
        self.projector = Projector(dim, proj_hidden or dim, proj_dim)
        self.dim, self.proj_dim = dim, proj_dim

    def tokens(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        fmap = self.encoder(x)  # (B, C, h, w)
        h, w = fmap.shape[-2:]
        return fmap.flatten(2).transpose(1, 2), (int(h), int(w))  # (B, h·w, C)

    def embed(self, x: Tensor, return_attention: bool = False) -> dict[str, Tensor]:
        """Label-level embeddings ``g`` (eq. 6) without classifier and projector."""
        r, grid = self.tokens(x)
        for blk in self.image_sa:
            r = blk(r)  # r = SA(r)
        u = self.label_queries.unsqueeze(0).expand(r.shape[0], -1, -1)
        self.label_attention.keep_attention = return_attention
        g = self.label_attention(u, r, r)  # g = MultiAttBlock(U, r, r)
        for blk in self.label_sa:
            g = blk(g)  # g = SA(g)
        out = {"g": g, "grid": grid}
        if return_attention:
            out["attention"] = self.label_attention.attention
            self.label_attention.keep_attention = False
        return out

    def classify(self, g: Tensor) -> Tensor:
        """Per-label linear classifiers: ``fc_j(g_ij)`` → logits ``(B, L)``."""
        return (g * self.cls_weight).sum(-1) + self.cls_bias

    def project(self, g: Tensor) -> Tensor:
        return F.normalize(self.projector(g), dim=-1)

    def forward(self, x: Tensor, return_attention: bool = False) -> dict[str, Tensor]:
        out = self.embed(x, return_attention)
        out["logits"] = self.classify(out["g"])
        out["z"] = self.project(out["g"])
        return out


class GlobalPoolNet(nn.Module):
    """Baseline "backbone + BCE" (MulCon Table 3, R101 + BCE): encoder → global average pool →
    ``Linear(C, L)``; ``z`` is an image-level normalised projection (for the "+ SCL" row).

    ``forward(x)`` returns ``logits (B, L)``, ``h (B, C)`` (pooled feature), ``z (B, proj_dim)``.
    """

    def __init__(self, num_labels: int, encoder: str | nn.Module = "cnn", *, in_channels: int = 1,
                 width: int = 64, proj_hidden: int | None = None, proj_dim: int = 32,
                 encoder_kwargs: dict | None = None) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.encoder = make_encoder(encoder, in_channels, width, **(encoder_kwargs or {}))
        c = self.encoder.out_channels
        self.classifier = nn.Linear(c, num_labels)
        self.projector = Projector(c, proj_hidden or c, proj_dim)

    def forward(self, x: Tensor, return_attention: bool = False) -> dict[str, Tensor]:
        h = self.encoder(x).mean(dim=(-2, -1))
        return {"logits": self.classifier(h), "h": h, "z": F.normalize(self.projector(h), dim=-1)}


def label_level_outputs(model: nn.Module, X: Any, batch_size: int = 256,
                        attention: bool = False) -> dict[str, np.ndarray]:
    """Eval-mode outputs over ``X`` as numpy: ``probs`` = σ(logits), ``z`` and (label-level nets)
    ``g``; with ``attention`` also the label→token attention averaged over heads ``(N, L, h·w)``
    and the token ``grid`` (h, w)."""
    from mlcl.models.inference import forward_outputs

    out = forward_outputs(model, X, ("logits", "z", "g", "h", "attention", "grid"), batch_size,
                          **({"return_attention": True} if attention else {}))
    out["probs"] = torch.sigmoid(torch.from_numpy(out.pop("logits"))).numpy()
    if "attention" in out:
        out["attention"] = out["attention"].mean(1)
    elif "grid" in out:
        del out["grid"]
    return out
