"""The one place where :mod:`mlcl.estimators` calls the training code.

Each function runs one method's recipe on already standardised float32 arrays and returns the
trained network (eval mode). They are thin: models come from :mod:`mlcl.models`, losses from
:mod:`mlcl.losses`, and every run goes through the training engine :mod:`mlcl.training` (its
method recipes where one exists) — nothing is re-implemented here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["abalone_recipe", "cgmvae_recipe", "mlp_recipe", "mulcon_recipe", "mulsupcon_recipe"]


def mlp_recipe(X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray, *, hidden: Sequence[int],
               dropout: float, loss: nn.Module, epochs: int, batch_size: int, lr: float, weight_decay: float,
               seed: int, device: torch.device) -> tuple[nn.Module, list[dict[str, float]]]:
    """The one MLP recipe, :func:`mlcl.training.recipes.fit_mlp` (chapter 00's MLP-BCE, any loss)."""
    from mlcl.training.recipes import fit_mlp

    fit = fit_mlp(X, Y, X_val, Y_val, hidden=tuple(hidden), dropout=dropout, loss=loss, epochs=epochs,
                  batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, device=device)
    return fit.net, fit.history


def cgmvae_recipe(X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray, *, preset: str,
                  model_kwargs: dict[str, Any], epochs: int, batch_size: int, lr: float, weight_decay: float,
                  seed: int, device: torch.device) -> tuple[nn.Module, list[dict[str, float]]]:
    """C-GMVAE (:class:`mlcl.models.cgmvae.CGMVAE`) trained as ``mlcl.models.cgmvae.fit`` does: Adam,
    cosine warm restarts (T0 = 50, Tmult = 2, min 2·10⁻⁴), the epoch with the best validation
    macro-F1 over the threshold grid (the authors' model selection)."""
    from mlcl.metrics import evaluate
    from mlcl.models.cgmvae import CGMVAE, TRAINING
    from mlcl.training import TrainConfig, train

    model = CGMVAE.from_preset(preset, X.shape[1], Y.shape[1], **model_kwargs)
    tr = TRAINING[preset]
    Xv = torch.from_numpy(np.ascontiguousarray(X_val))

    def validate(m: nn.Module) -> float:
        return evaluate(Y_val, m.predict(Xv).numpy(), "paper", metrics=["macro_f1"]).values["macro_f1"]

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      scheduler=tr["scheduler"], scheduler_kwargs=dict(tr["scheduler_kwargs"]), seed=seed,
                      device=str(device), progress=False)
    res = train(model, (X, Y), cfg, validate=validate)
    return res.model.eval(), res.history


def mulsupcon_recipe(X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray, *, loss: str,
                     hidden: Sequence[int], dropout: float, queue_size: int, temperature: float,
                     pretrain_steps: int, pretrain_batch_size: int, pretrain_lr: float, mode: str,
                     epochs: int, iters_per_epoch: int, batch_size: int, lr: float, backbone_lr_mult: float,
                     seed: int, device: torch.device) -> tuple[nn.Module, list[dict[str, float]]]:
    """MulSupCon's two stages (chapter 02): MoCo pre-training of an MLP encoder with a labelled
    queue (the authors' cosine-restart schedule compressed to ``pretrain_steps``), then
    fine-tuning or a linear probe (BCE, the epoch with the lowest validation BCE)."""
    from dataclasses import replace

    from mlcl.models.backbones import MLP
    from mlcl.models.mulsupcon import MulSupConModel
    from mlcl.training.mulsupcon import (
        PROBE,
        YEAST_FINETUNE,
        YEAST_PRETRAIN,
        finetune,
        linear_probe,
        pretrain,
        scaled_pretrain,
    )

    enc = MLP(X.shape[1], list(hidden), dropout=dropout)
    model = MulSupConModel(enc, Y.shape[1], loss=loss, queue_size=queue_size, temperature=temperature)
    if pretrain_steps >= YEAST_PRETRAIN.epochs:  # the authors' 150-epoch shape, compressed
        pre = scaled_pretrain(pretrain_steps, YEAST_PRETRAIN)
    else:  # fewer steps than epochs: one step per epoch, the two restarts' cycles (1/3, 2/3) kept
        pre = replace(YEAST_PRETRAIN, epochs=pretrain_steps, iters_per_epoch=1, T_0=max(1, pretrain_steps // 3))
    pre = replace(pre, batch_size=pretrain_batch_size, lr=pretrain_lr)
    pr = pretrain(model, X, Y, pre, seed=seed, device=device, progress=False)
    base = YEAST_FINETUNE if mode == "finetune" else PROBE
    cfg = replace(base, epochs=epochs, iters_per_epoch=iters_per_epoch, batch_size=batch_size, lr=lr,
                  backbone_lr_mult=backbone_lr_mult if mode == "finetune" else 0.0)
    step = finetune if mode == "finetune" else linear_probe
    res = step(pr.model.encoder, X, Y, X_val, Y_val, cfg, seed=seed, device=device)
    return res.model.eval(), [*pr.history, *res.history]


class _ProbeNet(nn.Module):
    """A frozen body followed by ABALONE's per-label logistic probe, as one network (logits)."""

    def __init__(self, body: nn.Module, probe: Any) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("mean", probe.mean.clone())
        self.register_buffer("std", probe.std.clone())
        self.register_buffer("W", probe.W.clone())  # (K, D, L)
        self.register_buffer("b", probe.b.clone())  # (K, L)

    def forward(self, x: Tensor) -> Tensor:
        h = (self.body(x).float() - self.mean) / self.std
        p = torch.sigmoid(torch.einsum("nd,kdl->knl", h, self.W) + self.b[:, None, :]).mean(0)
        return torch.logit(p, eps=1e-7)  # the probe averages its heads' probabilities


def abalone_recipe(X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray, *, method: str,
                   body: nn.Module, hidden: int, pretrain_epochs: int, pretrain_lr: float, batch_size: int,
                   queue_size: int, momentum: float, temperature: float, beta: float, mode: str,
                   epochs: int, lr: float, seed: int, device: torch.device) -> tuple[nn.Module, list[dict[str, float]]]:
    """ABALONE (chapter 04): contrastive pre-training of ``body`` with ``method`` (``L_Base`` /
    ``L_MSC`` / ...), then ABALONE's linear probe on the frozen body, or fine-tuning body + a
    linear layer with BCE (AdamW, warm-up, the epoch with the best validation micro-F1)."""
    from mlcl.analysis.probe import abalone_linear_probe
    from mlcl.models.heads import WithHead
    from mlcl.models.inference import represent
    from mlcl.training.abalone import (
        AbalonePretrainConfig,
        SupervisedConfig,
        pretrain_abalone,
        train_classifier,
    )

    cfg = AbalonePretrainConfig(method=method, epochs=pretrain_epochs, batch_size=batch_size, lr=pretrain_lr,
                         temperature=temperature, beta=beta, queue_size=queue_size, momentum=momentum,
                         seed=seed, device=str(device))
    res = pretrain_abalone(body, torch.from_numpy(np.ascontiguousarray(X)), Y, cfg, hidden=hidden)
    history = list(res.history)
    Xt, Xvt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(np.ascontiguousarray(X_val))
    if mode == "probe":
        res.body.eval()
        probe = abalone_linear_probe(represent(res.body, Xt), Y, represent(res.body, Xvt), Y_val,
                                     epochs=epochs, n_heads=1, seed=seed, untrained_heads=0)
        net = _ProbeNet(res.body, probe).to(device)
    else:
        body_ft, lin, hist = train_classifier(res.body, Xt, Y, Xvt, Y_val,
                                              SupervisedConfig(loss="bce", epochs=epochs, lr=lr, seed=seed,
                                                               device=str(device)), hidden=hidden)
        net, history = WithHead(body_ft, lin), history + hist
    return net.eval(), history


def mulcon_recipe(X: np.ndarray, Y: np.ndarray, *, net: nn.Module, stages: Sequence[Any], mask_prob: float,
                  seed: int, device: torch.device) -> tuple[nn.Module, list[dict[str, float]]]:
    """MulCon's two steps (chapter 03): BCE, then BCE + γ·LLCL on two views; the views of a
    feature vector zero each feature with probability ``mask_prob``."""
    from mlcl.training.mulcon import train_mulcon

    def augment(x: Tensor, gen: torch.Generator | None) -> Tensor:
        keep = torch.rand(x.shape, generator=gen, device=x.device if gen is None else "cpu") >= mask_prob
        return x * keep.to(device=x.device, dtype=x.dtype)

    history = train_mulcon(net, X, Y, list(stages), seed=seed, device=device, augment_fn=augment, progress=False)
    return net.eval(), history
