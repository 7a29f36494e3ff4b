"""Small generic backbones: an MLP for vector data and a tiny CNN for small images.

Both are plain ``nn.Sequential``-style modules with an ``out_dim`` attribute so heads can be sized
without running a forward pass.

Example:
    >>> import torch
    >>> net = MLP(103, [256, 512, 256], dropout=0.5)
    >>> net(torch.zeros(4, 103)).shape
    torch.Size([4, 256])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same semantics: zero with probability p, scale the rest by 1/(1 − p), only in
    training mode) drawing its mask with ``rand_like``, about twice as fast on CPU as the
    ``bernoulli_`` kernel of ``F.dropout`` (a vector MLP's step spends most of its RNG time here).

    Example:
        >>> d = Dropout(0.5).train()
        >>> out = d(torch.ones(4, 1000))
        >>> bool(((out == 0) | (out == 2)).all())
        True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        # one uniform draw turned in place into the scaled mask: no bool tensor, no dtype copy
        mask = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * mask


_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Sequential):
    """``in_dim → hidden[0] → … → hidden[-1]`` (each Linear followed by activation and dropout),
    then an optional ``Linear(hidden[-1], out_dim)`` head without activation.

    Args:
        in_dim: input width.
        hidden: hidden widths; may be empty (then the module is a single Linear when ``out_dim``).
        out_dim: width of a final linear layer, or None for none (output = last hidden layer).
        dropout: drop probability after every hidden activation (one shared value).
        activation: ``"relu"``, ``"leaky_relu"``, ``"gelu"`` or ``"tanh"``.
        batch_norm: insert ``BatchNorm1d`` between each hidden Linear and its activation.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int | None = None, *,
                 dropout: float = 0.0, activation: str = "relu", batch_norm: bool = False) -> None:
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout))
            width = h
        if out_dim is not None:
            layers.append(nn.Linear(width, out_dim))
            width = out_dim
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, width


class SmallCNN(nn.Module):
    """A 4-block conv net for small images (e.g. 28×28 or 32×32): ``(B, C, H, W) → (B, out_dim)``.

    Each block is Conv3×3 – BatchNorm – ReLU, with 2×2 max-pooling after blocks 2 and 4, then global
    average pooling and a Linear to ``out_dim``.
    """

    def __init__(self, in_channels: int = 1, out_dim: int = 128, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        w = width
        self.features = nn.Sequential(
            *block(in_channels, w), *block(w, w), nn.MaxPool2d(2),
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * w, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
