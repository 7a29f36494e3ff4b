r"""ABALONE on the engine (Audibert et al., 2024): contrastive pre-training (L_Base → L_BQueue →
L_BQProto → L_MSC) and the supervised rows (BCE / focal / asymmetric baselines, fine-tuning "-FT").

What trains is a ``body`` (a :class:`mlcl.models.text.TextEncoder` on token ids, or a
:class:`~mlcl.models.text.FeatureAdapter` on cached frozen features); ``inputs`` is a float
tensor ``(N, H)`` or a dict of token tensors ``{"input_ids": (N, T), "attention_mask": (N, T)}``
(each batch is trimmed to its longest row). The objective is
:class:`mlcl.models.abalone.AbaloneModel` (losses from :mod:`mlcl.losses`, MoCo queue and
prototypes in its state); the loop, checkpoint / exact resume, AMP and DDP are
:func:`mlcl.training.train`'s. Optimisation as in ABALONE Appendix A:

* AdamW, weight decay on weight matrices and prototypes, **none on biases and norms**
  (:func:`no_decay_parameters`);
* a linear warm-up over ``warmup_fraction`` of the steps, then cosine (pre-training) or linear
  (supervised rows) decay to 0, stepped every batch:
  :math:`\eta_k = \eta\,\frac{k+1}{w+1}` for k < w, then
  :math:`\eta\,\tfrac12(1+\cos\pi t)` or :math:`\eta(1-t)` with :math:`t = \frac{k-w}{K-w}`;
* gradient clipping at 1, the last incomplete batch dropped.

The schedules are the engine's (``scheduler="cosine"`` / ``"linear"`` with ``warmup``); the
weight-decay exemption is a hook scoped to one run (:func:`_no_decay`, see there why).

Example:
    >>> import torch
    >>> from mlcl.models.text import FeatureAdapter
    >>> X, Y = torch.randn(64, 12), (torch.rand(64, 4) < 0.3).float()
    >>> res = pretrain_abalone(FeatureAdapter(12), X, Y, AbalonePretrainConfig(
    ...     method="L_MSC", epochs=1, batch_size=16, queue_size=32, proj_dim=8, device="cpu"))
    >>> len(res.history), res.prototypes.shape
    (1, torch.Size([4, 8]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from mlcl.models.abalone import METHODS, AbaloneModel
from mlcl.models.heads import WithHead
from mlcl.models.inference import predict_proba
from mlcl.training.config import TrainConfig
from mlcl.training.loop import train
from mlcl.training.recipes import Objective
from mlcl.training.runtime import resolve_device

__all__ = [
    "METHODS",
    "PAPER_TABLE1",
    "AbalonePretrainConfig",
    "AbalonePretrainResult",
    "SupervisedConfig",
    "no_decay_parameters",
    "pretrain_abalone",
    "train_classifier",
]

#: ABALONE Table 1 (train / val / test in thousands, L, mean labels per doc, mean words per doc).
PAPER_TABLE1 = {
    "RCV1-v2": {"train_k": 19.7, "val_k": 3.5, "test_k": 781.0, "L": 91, "labels_per_doc": 3.2, "words_per_doc": 241},
    "AAPD": {"train_k": 42.5, "val_k": 4.8, "test_k": 8.5, "L": 54, "labels_per_doc": 2.4, "words_per_doc": 163},
    "UK-LEX": {"train_k": 20.0, "val_k": 8.0, "test_k": 8.5, "L": 69, "labels_per_doc": 1.7, "words_per_doc": 1154},
}


# =============================================================================================
# configurations
# =============================================================================================
@dataclass
class AbalonePretrainConfig:
    """Contrastive pre-training settings (defaults: ABALONE Appendix A where they apply)."""

    method: str = "L_MSC"
    epochs: int = 80
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    temperature: float = 0.1
    beta: float = 0.1
    alpha: float = 1.0
    queue_size: int = 512
    momentum: float = 0.999
    proj_dim: int = 256
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    monitor_epochs: Sequence[int] = ()

    def spec(self) -> dict[str, Any]:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        return METHODS[self.method]


@dataclass
class AbalonePretrainResult:
    body: nn.Module
    head: nn.Module
    prototypes: nn.Parameter | None
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch (1-based)
    monitor: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    model: nn.Module | None = None  # the whole objective (key encoder and queue included)


@dataclass
class SupervisedConfig:
    """Settings of the BCE-family baselines and of fine-tuning (ABALONE Appendix A)."""

    loss: str = "bce"  # "bce" | "focal" | "asl"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    schedule: str = "linear"  # decay after the warm-up: "linear" | "cosine"
    grad_clip: float = 1.0
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    focal_gamma: float = 2.0
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 3.0
    asl_clip: float = 0.3


# =============================================================================================
# glue: data, parameter groups, the two optimiser hooks
# =============================================================================================
def _train_data(inputs: Tensor | Mapping[str, Tensor], Y: Any) -> tuple[tuple[Tensor, ...], Callable | None]:
    """The engine's ``(tensors…, Y)`` and, for token dicts, the ``views`` that rebuild the dict."""
    Yt = torch.as_tensor(np.asarray(Y)).float()
    if not isinstance(inputs, Mapping):
        return (torch.as_tensor(inputs), Yt), None
    keys = list(inputs)

    def as_dict(batch: Sequence[Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        x = dict(zip(keys, batch[:-1]))
        if "attention_mask" in x:  # trim the padding every row of this batch shares
            t = int(x["attention_mask"].sum(1).max().clamp(min=1))
            x = {k: v[:, :t] for k, v in x.items()}
        return x, batch[-1]

    return (*(torch.as_tensor(inputs[k]) for k in keys), Yt), as_dict


def _n_rows(inputs: Tensor | Mapping[str, Tensor]) -> int:
    return int(next(iter(inputs.values())).shape[0]) if isinstance(inputs, Mapping) else int(inputs.shape[0])


def no_decay_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable parameters AdamW must not decay: biases, LayerNorm / norm weights and every
    1-D parameter (weight matrices and the prototypes are decayed)."""
    out = []
    for name, p in model.named_parameters():
        low = name.lower()
        if p.requires_grad and (p.ndim <= 1 or "bias" in low or "layernorm" in low or ".norm" in low
                                or low.startswith("norm")):
            out.append(p)
    return out


@contextmanager
def _no_decay(exempt: Sequence[nn.Parameter]) -> Iterator[None]:
    """No weight decay on ``exempt`` for the duration of one run, through two global optimiser-step
    hooks: AdamW's step is ``p ← p·(1 − η·λ) − η·u`` with ``u`` independent of ``p``, so adding
    ``η·λ·p_before`` after the step gives ``p − η·u``. (The engine's ``TrainConfig.no_decay``
    group does the same in one rounding instead of two, so its weights differ in the last bits;
    this hook keeps the published runs reproducible bit for bit.)"""
    ids = {id(p) for p in exempt}
    saved: list[tuple[Tensor, Tensor, float]] = []

    def pre(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        saved.clear()
        for g in opt.param_groups:
            c = g["lr"] * g.get("weight_decay", 0.0)
            if c:
                saved.extend((p, p.detach().clone(), c) for p in g["params"] if id(p) in ids and p.grad is not None)

    def post(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            for p, before, c in saved:
                p.add_(before, alpha=c)
        saved.clear()

    h1, h2 = register_optimizer_step_pre_hook(pre), register_optimizer_step_post_hook(post)
    try:
        yield
    finally:
        h1.remove()
        h2.remove()


def _engine_config(cfg: AbalonePretrainConfig | SupervisedConfig, n: int, schedule: str, progress: bool,
                   checkpoint: str | Path | None) -> TrainConfig:
    """The engine's settings: AdamW, warm-up then cosine or linear decay stepped per batch, the
    last incomplete batch dropped."""
    if schedule not in ("cosine", "linear"):
        raise ValueError(f"schedule must be 'cosine' or 'linear', got {schedule!r}")
    steps = cfg.epochs * max(1, n // cfg.batch_size)
    return TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, drop_last=n >= cfg.batch_size, lr=cfg.lr,
                       weight_decay=cfg.weight_decay, optimizer="adamw", grad_clip=cfg.grad_clip, amp=cfg.amp,
                       seed=cfg.seed, device=str(resolve_device(cfg.device)), progress=progress,
                       checkpoint=None if checkpoint is None else str(checkpoint), scheduler=schedule,
                       scheduler_interval="step", warmup=int(round(cfg.warmup_fraction * steps)))


# =============================================================================================
# pre-training
# =============================================================================================
def pretrain_abalone(
    body: nn.Module,
    inputs: Tensor | Mapping[str, Tensor],
    Y: np.ndarray | Tensor,
    cfg: AbalonePretrainConfig,
    hidden: int | None = None,
    monitor: Callable[[nn.Module, nn.Module, nn.Parameter | None, int], dict[str, Any]] | None = None,
    verbose: bool = False,
    checkpoint: str | Path | None = None,
) -> AbalonePretrainResult:
    """Contrastive pre-training of ``body`` + projection head (+ prototypes) with ``cfg.method``.

    Queue methods follow the paper (Appendix A, Algorithm 1): a momentum copy of body + head
    (m = ``cfg.momentum``) encodes the batch into keys that are enqueued after the loss (FIFO,
    ``cfg.queue_size``); the anchors' references are the other batch embeddings (with gradients)
    and the queue. ``monitor(body, head, prototypes, epoch)`` is called in eval mode before
    training (epoch 0) and after each epoch listed in ``cfg.monitor_epochs``. ``checkpoint``:
    saved every epoch and resumed from, exactly (weights, key encoder, queue, optimiser, schedule).
    """
    cfg.spec()  # validates the method
    hidden = hidden or getattr(body, "hidden_size", None)
    if hidden is None:
        raise ValueError("pass hidden= (the size of body's output)")
    N, L = _n_rows(inputs), np.asarray(Y).shape[1]
    torch.manual_seed(cfg.seed)  # the head and prototypes' initialisation
    model = AbaloneModel(body, hidden, L, cfg.method, proj_dim=cfg.proj_dim, temperature=cfg.temperature,
                         beta=cfg.beta, alpha=cfg.alpha, queue_size=cfg.queue_size, momentum=cfg.momentum)
    tc = _engine_config(cfg, N, "cosine", verbose, checkpoint)
    model.to(tc.device)
    res = AbalonePretrainResult(body, model.head, model.prototypes, model=model)

    def watch(epoch: int) -> None:
        model.eval()
        with torch.no_grad():
            res.monitor.append({"epoch": epoch, **monitor(body, model.head, model.prototypes, epoch)})  # type: ignore[misc]

    if monitor is not None:
        watch(0)
    wanted = set(cfg.monitor_epochs)
    callbacks = [lambda e, logs: watch(e + 1) if e + 1 in wanted else None] if monitor is not None else []
    data, views = _train_data(inputs, Y)
    with _no_decay(no_decay_parameters(model)):
        out = train(model, data, tc, views=views, callbacks=callbacks)
    res.history = [{**h, "epoch": e + 1} for e, h in enumerate(out.history)]
    res.seconds = out.seconds
    body.eval()
    return res


# =============================================================================================
# supervised training: BCE / focal / asymmetric baselines and fine-tuning (-FT)
# =============================================================================================
def _make_bce_family(cfg: SupervisedConfig) -> nn.Module:
    from mlcl.losses import AsymmetricLoss, FocalLoss

    if cfg.loss == "bce":
        return FocalLoss(gamma=0.0)
    if cfg.loss == "focal":
        return FocalLoss(gamma=cfg.focal_gamma)
    if cfg.loss == "asl":
        return AsymmetricLoss(gamma_pos=cfg.asl_gamma_pos, gamma_neg=cfg.asl_gamma_neg, clip=cfg.asl_clip)
    raise ValueError(f"loss must be 'bce', 'focal' or 'asl', got {cfg.loss!r}")


def train_classifier(
    body: nn.Module,
    inputs: Tensor | Mapping[str, Tensor],
    Y: np.ndarray,
    val_inputs: Tensor | Mapping[str, Tensor],
    val_Y: np.ndarray,
    cfg: SupervisedConfig,
    hidden: int | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[nn.Module, nn.Linear, list[dict[str, float]]]:
    """Train ``body`` + a linear layer with a BCE-family loss; keep the epoch with the best
    validation micro-F1 at threshold 0.5 (ABALONE keeps the best checkpoint on validation).

    Used for the L_BCE / L_FCL / L_ASY baselines (body from the pre-trained encoder) and for the
    "-FT" rows (body from contrastive pre-training, its projection head discarded).
    """
    from mlcl.metrics import micro_f1

    hidden = hidden or getattr(body, "hidden_size", None)
    N, L = _n_rows(inputs), np.asarray(Y).shape[1]
    torch.manual_seed(cfg.seed)
    lin = nn.Linear(hidden, L)
    model = Objective(WithHead(body, lin), _make_bce_family(cfg))
    tc = _engine_config(cfg, N, cfg.schedule, False, checkpoint)
    data, views = _train_data(inputs, Y)

    def validate(m: nn.Module) -> float:
        return float(micro_f1(val_Y, predict_proba(WithHead(body, lin), val_inputs), 0.5))

    with _no_decay(no_decay_parameters(model)):
        out = train(model, data, tc, views=views, validate=validate)
    hist = [{"epoch": e + 1, "loss": h["loss"], "val_micro_f1": h["val"], "lr": h["lr"]}
            for e, h in enumerate(out.history)]
    body.eval()
    return body, lin, hist
