r"""ABALONE's contrastive losses (Audibert et al., 2024) on vector features, as an estimator.

A body (by default chapter 04's residual adapter over frozen features,
:class:`mlcl.models.text.FeatureAdapter`; or an MLP) and a projection head are pre-trained with

* ``"L_Base"`` — SupCon with Jaccard pair weights :math:`w_{il}=|y_i\cap y_l|/|y_i\cup y_l|`
  (:class:`mlcl.losses.JaccardSupConLoss`), in-batch references;
* ``"L_MSC"`` — the balanced loss with label prototypes, β-weighted repulsion and a MoCo queue
  (:class:`mlcl.losses.MSCLoss`, eq. 2–5);

(``"L_BQueue"``, ``"L_BQProto"``, ``"L_MSC-inbatch"`` are accepted too: :data:`mlcl.models.abalone.METHODS`),
then either ABALONE's linear probe on the frozen body (``mode="probe"``: per-label logistic
regressions, AdamW over a learning-rate × weight-decay grid chosen per label on validation F1) or
fine-tuning body + a linear layer with BCE (``mode="finetune"``, the "-FT" rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mlcl.estimators._base import MultiLabelNetClassifier
from mlcl.estimators._recipes import abalone_recipe

__all__ = ["AbaloneClassifier"]


class AbaloneClassifier(MultiLabelNetClassifier):
    """ABALONE pre-training (``method="L_MSC"`` or ``"L_Base"``, ...) then a linear probe or fine-tuning.

    Defaults are chapter 04's ``full`` recipe on frozen MiniLM features: ``body="adapter"``,
    5 pre-training epochs, AdamW lr 10⁻³ (warm-up + cosine, gradient clipping 1), batch 32, queue
    512 with momentum 0.99, τ = 0.1, β = 0.1, projection to 256; the probe trains 10 epochs
    (1 head); fine-tuning 10 epochs at lr 10⁻³ (the chapter also tries 3·10⁻³: a grid search).
    ``body="mlp"`` uses an MLP with ``hidden_layer_sizes`` instead (for tabular data).

    Example:
        >>> import numpy as np
        >>> from mlcl.estimators import AbaloneClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 6)); Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype(int)
        >>> clf = AbaloneClassifier(method="L_Base", pretrain_epochs=1, probe_epochs=2, random_state=0)
        >>> clf.fit(X, Y).predict(X[:2]).shape
        (2, 2)
    """

    def __init__(self, method: str = "L_MSC", mode: str = "probe", body: str = "adapter",
                 hidden_layer_sizes: Sequence[int] = (256,), pretrain_epochs: int = 5,
                 pretrain_lr: float = 1e-3, batch_size: int = 32, queue_size: int = 512,
                 momentum: float = 0.99, temperature: float = 0.1, beta: float = 0.1, probe_epochs: int = 10,
                 finetune_epochs: int = 10, finetune_lr: float = 1e-3, validation_fraction: float = 0.2,
                 threshold: float | str = "auto", threshold_metric: str = "micro_f1", standardize: bool = True,
                 random_state=None, device: str = "auto") -> None:
        self.method = method
        self.mode = mode
        self.body = body
        self.hidden_layer_sizes = hidden_layer_sizes
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.momentum = momentum
        self.temperature = temperature
        self.beta = beta
        self.probe_epochs = probe_epochs
        self.finetune_epochs = finetune_epochs
        self.finetune_lr = finetune_lr
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.standardize = standardize
        self.random_state = random_state
        self.device = device

    def _check_params(self) -> None:
        from mlcl.models.abalone import METHODS

        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if self.mode not in ("probe", "finetune"):
            raise ValueError(f"mode must be 'probe' (frozen body) or 'finetune', got {self.mode!r}")
        if self.body not in ("adapter", "mlp"):
            raise ValueError(f"body must be 'adapter' (residual adapter, width = n_features) or 'mlp', "
                             f"got {self.body!r}")
        for name in ("pretrain_epochs", "batch_size", "probe_epochs", "finetune_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def _fit_network(self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
                     seed: int, device: torch.device) -> nn.Module:
        if self.body == "adapter":
            from mlcl.models.text import FeatureAdapter

            body, hidden = FeatureAdapter(X.shape[1]), X.shape[1]
        else:
            from mlcl.models.backbones import MLP

            body = MLP(X.shape[1], list(self.hidden_layer_sizes))
            hidden = body.out_dim
        probe = self.mode == "probe"
        model, self.history_ = abalone_recipe(
            X, Y, X_val, Y_val, method=self.method, body=body, hidden=hidden,
            pretrain_epochs=int(self.pretrain_epochs), pretrain_lr=float(self.pretrain_lr),
            batch_size=int(self.batch_size), queue_size=int(self.queue_size), momentum=float(self.momentum),
            temperature=float(self.temperature), beta=float(self.beta), mode=self.mode,
            epochs=int(self.probe_epochs if probe else self.finetune_epochs), lr=float(self.finetune_lr),
            seed=seed, device=device)
        return model
