r"""Linear probes on frozen representations.

* :func:`abalone_linear_probe` — ABALONE's linear evaluation (Appendix A): per label, logistic
  regressions trained with AdamW over a (lr, weight decay) grid, the configuration chosen per
  label on validation F1. (MulSupCon's probe — one linear layer on the frozen encoder, trained
  like fine-tuning — is a different protocol: :func:`mlcl.training.mulsupcon.linear_probe`.)
* :func:`linear_probe_map` — MulCon chapter: test mAP of scikit-learn per-label logistic
  regressions (:class:`mlcl.models.logistic.BinaryRelevance`) on frozen (label-level) embeddings.

Each regression minimises :math:`\frac1N\sum_i \mathrm{BCE}(\sigma(w_c^\top h_i + b_c), y_{ic})`
(+ decoupled weight decay for the AdamW probe, + :math:`\frac{1}{2C}\|w_c\|^2` for scikit-learn).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); H = rng.normal(size=(60, 4)); Y = (H[:, :2] > 0).astype(int)
    >>> probe = abalone_linear_probe(H, Y, H, Y, lrs=(0.1,), weight_decays=(1e-4,), epochs=5)
    >>> probe.predict_proba(H).shape
    (60, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcl.analysis.evaluation import per_label_f1

__all__ = ["AbaloneProbe", "abalone_linear_probe", "linear_probe_map"]


@dataclass
class AbaloneProbe:
    """Per-label logistic regressions: ``heads`` (K, D, L) weights, ``bias`` (K, L), averaged over K.

    ``config[c]`` is the (lr, weight decay) chosen for label c on validation; ``extra_heads`` > 0
    reproduces the authors' probe, which averages 5 heads of which only 3 are trained (the
    remaining heads stay at their random initialisation).
    """

    W: Tensor
    b: Tensor
    mean: Tensor
    std: Tensor
    config: list[tuple[float, float]]
    val_f1: np.ndarray
    W_untrained: Tensor | None = None
    b_untrained: Tensor | None = None

    def predict_proba(self, H: np.ndarray | Tensor, authors_bug: bool = False) -> np.ndarray:
        X = (torch.as_tensor(np.asarray(H), dtype=torch.float32) - self.mean) / self.std
        with torch.no_grad():
            p = torch.sigmoid(torch.einsum("nd,kdl->knl", X, self.W) + self.b[:, None, :])  # (K, N, L)
            if authors_bug:
                if self.W_untrained is None:
                    raise ValueError("this probe was trained without untrained heads")
                pu = torch.sigmoid(torch.einsum("nd,kdl->knl", X, self.W_untrained) + self.b_untrained[:, None, :])
                p = torch.cat([p, pu])
            return p.mean(0).numpy()


def abalone_linear_probe(
    H_train: np.ndarray,
    Y_train: np.ndarray,
    H_val: np.ndarray,
    Y_val: np.ndarray,
    lrs: Sequence[float] = (1.0, 1e-1, 1e-2),
    weight_decays: Sequence[float] = (1.0, 1e-1, 1e-2, 1e-4, 1e-6),
    epochs: int = 40,
    n_heads: int = 3,
    batch_size: int = 256,
    seed: int = 0,
    standardize: bool = True,
    untrained_heads: int = 2,
) -> AbaloneProbe:
    """ABALONE's linear evaluation (Appendix A), done right.

    For every (lr, weight decay) of the grid, ``n_heads`` logistic regressions per label are
    trained with AdamW for ``epochs`` epochs on the frozen representation; their probabilities
    are averaged. For each label separately the configuration with the best validation F1 at
    0.5 is kept (ties broken by the lower validation log-loss). All labels × configurations × heads
    are trained at once: one weight tensor per configuration, and since BCE separates over
    labels and AdamW acts per coordinate, this is exactly L·K independent regressions.
    Features are standardised with the training mean / std (``standardize``).

    ``untrained_heads`` extra heads are only *initialised* (never trained) so that
    ``predict_proba(..., authors_bug=True)`` can reproduce the authors' code, which averages
    5 heads but trains 3.
    """
    g = torch.Generator().manual_seed(seed)
    Xtr = torch.as_tensor(np.asarray(H_train), dtype=torch.float32)
    Xva = torch.as_tensor(np.asarray(H_val), dtype=torch.float32)
    Ytr = torch.as_tensor(np.asarray(Y_train), dtype=torch.float32)
    Yva = np.asarray(Y_val)
    mean = Xtr.mean(0) if standardize else torch.zeros(Xtr.shape[1])
    std = Xtr.std(0).clamp(min=1e-6) if standardize else torch.ones(Xtr.shape[1])
    Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
    N, D = Xtr.shape
    L = Ytr.shape[1]
    grid = [(lr, wd) for lr in lrs for wd in weight_decays]
    G, K = len(grid), int(n_heads)
    bound = 1.0 / math.sqrt(D)  # nn.Linear's default initialisation
    Ws = [nn.Parameter((torch.rand(K, D, L, generator=g) * 2 - 1) * bound) for _ in grid]
    bs = [nn.Parameter((torch.rand(K, 1, L, generator=g) * 2 - 1) * bound) for _ in grid]
    opt = torch.optim.AdamW(
        [{"params": [Ws[i]], "lr": lr, "weight_decay": wd} for i, (lr, wd) in enumerate(grid)]
        + [{"params": [bs[i]], "lr": lr, "weight_decay": 0.0} for i, (lr, _) in enumerate(grid)]
    )
    for _ in range(epochs):
        for idx in torch.randperm(N, generator=g).split(batch_size):
            x, y = Xtr[idx], Ytr[idx]
            W = torch.stack(Ws)  # (G, K, D, L)
            b = torch.stack(bs)  # (G, K, 1, L)
            logits = torch.einsum("nd,gkdl->gknl", x, W) + b
            loss = F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="sum") / x.shape[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        W, b = torch.stack(Ws), torch.stack(bs)
        p = torch.sigmoid(torch.einsum("nd,gkdl->gknl", Xva, W) + b).mean(1).numpy()  # (G, Nv, L)
    f1 = np.stack([per_label_f1(Yva, p[i] >= 0.5) for i in range(G)])  # (G, L)
    eps = 1e-7
    nll = -(Yva[None] * np.log(p + eps) + (1 - Yva[None]) * np.log(1 - p + eps)).mean(1)  # (G, L)
    choice = np.lexsort((nll, -f1), axis=0)[0]  # best F1, then lowest log-loss
    lab = np.arange(L)
    Wc = W[torch.as_tensor(choice), :, :, torch.as_tensor(lab)]  # (L, K, D)
    bc = b[torch.as_tensor(choice), :, 0, torch.as_tensor(lab)]  # (L, K)
    Wu = (torch.rand(untrained_heads, D, L, generator=g) * 2 - 1) * bound if untrained_heads else None
    bu = (torch.rand(untrained_heads, L, generator=g) * 2 - 1) * bound if untrained_heads else None
    return AbaloneProbe(
        W=Wc.permute(1, 2, 0).contiguous(), b=bc.T.contiguous(), mean=mean, std=std,
        config=[grid[i] for i in choice], val_f1=f1[choice, lab], W_untrained=Wu, b_untrained=bu,
    )


def linear_probe_map(z_train: np.ndarray, Y_train: np.ndarray, z_test: np.ndarray, Y_test: np.ndarray,
                     C: float = 1.0, per_label: bool = True) -> float:
    """mAP of logistic-regression probes on frozen embeddings.

    ``per_label=True``: label j's probe sees only ``z_·j`` (its own label-level embedding, what
    MulCon's per-label classifier sees); otherwise every probe sees the flattened ``z_i``.
    """
    from mlcl.metrics import mean_average_precision
    from mlcl.models.logistic import BinaryRelevance

    z_train, z_test = np.asarray(z_train), np.asarray(z_test)
    if not (per_label and z_train.ndim == 3):
        z_train, z_test = z_train.reshape(len(z_train), -1), z_test.reshape(len(z_test), -1)
    scores = BinaryRelevance(C=C, max_iter=500).fit(z_train, Y_train).predict_proba(z_test)
    return float(mean_average_precision(np.asarray(Y_test).astype(int), scores))
