r"""MulCon's label-level network with LLCL (Dao et al., 2022) on vector features, as an estimator.

:class:`mlcl.models.mulcon.LabelLevelNet` turns an input into one embedding per label: label
queries attend over input tokens, then over each other; a per-label linear classifier scores
each label embedding. For an image the tokens are a CNN's feature grid; for a feature vector
:class:`VectorTokens` makes them (``Linear(n_features, n_tokens·width)``, reshaped to
``n_tokens`` tokens). Training follows MulCon's two steps: BCE, then
:math:`\mathcal L = \mathrm{BCE} + \gamma\,\mathcal L_{LLCL}` on two views (eq. 9), where LLCL is
SupCon over the active (sample, label) embeddings with the same label as positives
(:class:`mlcl.losses.LabelLevelContrastiveLoss`, eq. 8). A view zeroes each feature with
probability ``mask_prob`` (our choice for vectors; MulCon augments images).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from mlcl.estimators._base import MultiLabelNetClassifier
from mlcl.estimators._recipes import mulcon_recipe

__all__ = ["MulConClassifier", "VectorTokens"]


class VectorTokens(nn.Module):
    """``(B, n_features) → (B, width, n_tokens, 1)``: a feature vector as a grid of tokens, the
    input :class:`mlcl.models.mulcon.LabelLevelNet` expects from an image encoder."""

    def __init__(self, n_features: int, n_tokens: int = 16, width: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(n_features, n_tokens * width)
        self.norm = nn.LayerNorm(width)  # tokens on one scale before attention
        self.n_tokens, self.out_channels = n_tokens, width

    def forward(self, x: Tensor) -> Tensor:
        t = self.norm(self.proj(x).view(x.shape[0], self.n_tokens, self.out_channels))
        return t.transpose(1, 2).unsqueeze(-1)


class MulConClassifier(MultiLabelNetClassifier):
    """MulCon: label-level embeddings, step 1 BCE, step 2 BCE + γ·LLCL on two views.

    Defaults follow chapter 03's ``full`` recipe on the multi-label digits (``mlcl.training.mulcon.
    DIGITS``): embeddings of width 64, 4 heads, two self-attention blocks over the input tokens and
    one over the labels, projector to 32; step 1 Adam 2·10⁻³ with cosine decay for 15 epochs,
    step 2 Adam 2·10⁻⁴ for 10 epochs with γ = 0.5, τ = 0.2, batch 64. The vector tokens
    (16 tokens of width 64) and ``mask_prob=0.1`` are ours. No epoch selection (as in MulCon):
    the last weights are kept; the validation split chooses the threshold.

    Example:
        >>> import numpy as np
        >>> from mlcl.estimators import MulConClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 6)); Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype(int)
        >>> clf = MulConClassifier(dim=16, n_tokens=4, width=16, stage1_epochs=2, stage2_epochs=1,
        ...                        random_state=0).fit(X, Y)
        >>> clf.predict_proba(X[:2]).shape
        (2, 2)
    """

    def __init__(self, dim: int = 64, heads: int = 4, n_tokens: int = 16, width: int = 64, image_blocks: int = 2,
                 label_blocks: int = 1, proj_dim: int = 32, gamma: float = 0.5, temperature: float = 0.2,
                 mask_prob: float = 0.1, stage1_epochs: int = 15, stage1_lr: float = 2e-3, stage2_epochs: int = 10,
                 stage2_lr: float = 2e-4, batch_size: int = 64, validation_fraction: float = 0.2,
                 threshold: float | str = "auto", threshold_metric: str = "micro_f1", standardize: bool = True,
                 random_state=None, device: str = "auto") -> None:
        self.dim = dim
        self.heads = heads
        self.n_tokens = n_tokens
        self.width = width
        self.image_blocks = image_blocks
        self.label_blocks = label_blocks
        self.proj_dim = proj_dim
        self.gamma = gamma
        self.temperature = temperature
        self.mask_prob = mask_prob
        self.stage1_epochs = stage1_epochs
        self.stage1_lr = stage1_lr
        self.stage2_epochs = stage2_epochs
        self.stage2_lr = stage2_lr
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.standardize = standardize
        self.random_state = random_state
        self.device = device

    def _check_params(self) -> None:
        if int(self.dim) % int(self.heads) or int(self.width) % int(self.heads):
            raise ValueError(f"dim ({self.dim}) and width ({self.width}) must be divisible by heads ({self.heads})")
        if not 0.0 <= float(self.mask_prob) < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {self.mask_prob!r}")
        if int(self.stage1_epochs) < 0 or int(self.stage2_epochs) < 0 or int(self.stage1_epochs) + int(self.stage2_epochs) < 1:
            raise ValueError("stage1_epochs and stage2_epochs must be >= 0 and not both 0")

    def _fit_network(self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
                     seed: int, device: torch.device) -> nn.Module:
        from mlcl.models.mulcon import LabelLevelNet
        from mlcl.training.mulcon import DIGITS

        enc = VectorTokens(X.shape[1], int(self.n_tokens), int(self.width))
        net = LabelLevelNet(Y.shape[1], enc, dim=int(self.dim), heads=int(self.heads),
                            image_blocks=int(self.image_blocks), label_blocks=int(self.label_blocks),
                            proj_dim=int(self.proj_dim))
        s1, s2 = DIGITS
        stages = [s1.replace(epochs=int(self.stage1_epochs), lr=float(self.stage1_lr), batch_size=int(self.batch_size)),
                  s2.replace(epochs=int(self.stage2_epochs), lr=float(self.stage2_lr), batch_size=int(self.batch_size),
                             llcl=float(self.gamma), temperature=float(self.temperature))]
        stages = [s for s in stages if s.epochs > 0]
        model, self.history_ = mulcon_recipe(X, Y, net=net, stages=stages, mask_prob=float(self.mask_prob),
                                             seed=seed, device=device)
        return model
