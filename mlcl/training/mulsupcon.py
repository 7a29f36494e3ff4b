"""MulSupCon's two stages on the engine: MoCo pre-training, then fine-tuning or linear probing.

* :func:`pretrain` — MoCo pre-training of a :class:`mlcl.models.mulsupcon.MulSupConModel`,
  iteration-counted as in the authors' code: an "epoch" is ``iters_per_epoch`` random batches
  (the authors: 1000 steps of batch 64 for yeast); the learning rate follows cosine warm restarts
  stepped once per epoch (T0 = 50, Tmult = 2, min 1e-4: the 150 epochs end exactly at the end of
  the second cycle). ``snapshots=`` keeps copies of the encoder at given step counts;
  ``checkpoint=`` makes the run resumable (weights, queue, optimiser, schedule: exactly).
* :func:`finetune` — drop the head, add ``Linear(r, L)``, BCE, Adam with lr for the classifier
  and ``backbone_lr_mult`` × lr for the backbone (4e-4 / 4e-5), ReduceLROnPlateau on the
  validation BCE, keep the epoch with the best validation BCE (30 epochs × 50 steps × batch 32).
  With ``backbone_lr_mult=1`` and a fresh encoder it is the "BCE from scratch" baseline.
* :func:`linear_probe` — the encoder frozen in eval mode: features are computed once, then a
  linear classifier is trained with the same loop (Adam 0.01, the paper's probing lr).

Settings: :data:`YEAST_PRETRAIN` / :data:`YEAST_FINETUNE` are the authors' yeast configuration
(``williamzhangsjtu/MulSupCon`` @ 42b23028); :func:`image_settings` returns the paper's image
recipe (ResNet-50 from scratch at 224², SGD 0.1, cosine, 400 epochs, batch 64; probing with Adam
0.01, fine-tuning with Adam 1e-4) with torchvision imported inside the function.

Example:
    >>> import numpy as np
    >>> from mlcl.models.backbones import MLP
    >>> from mlcl.models.mulsupcon import MulSupConModel
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(64, 10)).astype("float32"), (rng.random((64, 3)) < .4).astype("float32")
    >>> m = MulSupConModel(MLP(10, [16], dropout=0.0), n_labels=3, queue_size=16, proj_hidden=16, proj_dim=8)
    >>> res = pretrain(m, X, Y, PretrainConfig(epochs=2, iters_per_epoch=3, batch_size=16), progress=False)
    >>> len(res.history), res.history[-1]["step"]
    (2, 6.0)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcl.models.inference import predict_proba, represent
from mlcl.training.config import TrainConfig
from mlcl.training.loop import train
from mlcl.training.recipes import standardize
from mlcl.training.runtime import resolve_device

__all__ = ["PROBE", "YEAST_FINETUNE", "YEAST_PRETRAIN", "Classifier", "FinetuneConfig", "FinetuneResult",
           "PretrainConfig", "PretrainResult", "finetune", "image_settings", "linear_probe", "predict_proba",
           "pretrain", "scaled_pretrain", "standardize"]


# ---------------------------------------------------------------------------------------------
# configurations
@dataclass
class PretrainConfig:
    """Iteration-based pre-training schedule (defaults: the authors' yeast run)."""

    epochs: int = 150
    iters_per_epoch: int = 1000
    batch_size: int = 64
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 4e-4
    weight_decay: float = 1e-5
    momentum: float = 0.9  # SGD only
    scheduler: str | None = "cosine_restarts"  # "cosine_restarts" | "cosine" | None, stepped per epoch
    T_0: int = 50
    T_mult: int = 2
    eta_min: float = 1e-4
    grad_clip: float | None = None

    @property
    def steps(self) -> int:
        return self.epochs * self.iters_per_epoch

    def train_config(self, **engine: Any) -> TrainConfig:
        """The engine's configuration of this schedule (``engine``: seed, device, checkpoint, …)."""
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        kw = {"cosine_restarts": {"T_0": self.T_0, "T_mult": self.T_mult, "eta_min": self.eta_min},
              "cosine": {"eta_min": self.eta_min}}.get(self.scheduler or "", {})
        return TrainConfig(epochs=self.epochs, steps_per_epoch=self.iters_per_epoch, batch_size=self.batch_size,
                           optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
                           momentum=self.momentum, scheduler=self.scheduler, scheduler_kwargs=kw,
                           grad_clip=self.grad_clip, **engine)


@dataclass
class FinetuneConfig:
    """Fine-tuning / probing loop (defaults: the authors' yeast fine-tuning)."""

    epochs: int = 30
    iters_per_epoch: int = 50
    batch_size: int = 32
    lr: float = 4e-4  # classifier
    backbone_lr_mult: float = 0.1  # backbone lr = lr × this (4e-5)
    weight_decay: float = 0.0
    plateau_factor: float = 0.1
    plateau_patience: int = 3
    augment: bool = False  # apply the model's view augmentation while fine-tuning

    def train_config(self, **engine: Any) -> TrainConfig:
        # validate() returns −BCE; mode "min": the plateau rule applies to the BCE, as the authors'
        return TrainConfig(epochs=self.epochs, steps_per_epoch=self.iters_per_epoch, batch_size=self.batch_size,
                           lr=self.lr, weight_decay=self.weight_decay, lr_mult={"encoder": self.backbone_lr_mult},
                           scheduler="plateau", scheduler_kwargs={"mode": "min", "factor": self.plateau_factor,
                                                                  "patience": self.plateau_patience}, **engine)


#: The authors' yeast configuration (150 epochs × 1000 iterations × batch 64, queue 256).
YEAST_PRETRAIN = PretrainConfig()
YEAST_FINETUNE = FinetuneConfig()
#: Linear probing (frozen encoder): the paper's probing learning rate 0.01, same loop.
PROBE = FinetuneConfig(epochs=30, iters_per_epoch=50, batch_size=64, lr=1e-2, backbone_lr_mult=0.0)


def scaled_pretrain(steps: int, base: PretrainConfig = YEAST_PRETRAIN) -> PretrainConfig:
    """``base`` with the same 150-epoch cosine-restart shape compressed to ``steps`` iterations
    (``iters_per_epoch = steps / epochs``); ``steps = base.steps`` gives ``base`` back."""
    return replace(base, iters_per_epoch=max(1, int(round(steps / base.epochs))))


# ---------------------------------------------------------------------------------------------
# pre-training
@dataclass
class PretrainResult:
    model: nn.Module
    history: list[dict[str, float]]  # one dict per epoch: mean loss, queue fill, lr, step
    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict)  # step -> encoder state
    seconds: float = 0.0
    config: dict = field(default_factory=dict)


def pretrain(model: nn.Module, X: Any, Y: Any, config: PretrainConfig | None = None, *, seed: int = 0,
             device: str | torch.device | None = "auto", snapshots: Sequence[int] = (),
             progress: bool = True, dataset: torch.utils.data.Dataset | None = None,
             num_workers: int = 0, checkpoint: str | None = None) -> PretrainResult:
    """Pre-train ``model`` (``model(x, y) -> {"loss": ...}``) on ``(X, Y)`` with :func:`mlcl.training.train`.

    Vector data stay on the device and batches are indexed directly (no DataLoader). For image
    data sets that make their own two views pass ``dataset=`` (items ``(view_q, view_k, y)``,
    e.g. from :func:`image_settings`); X and Y are then ignored. ``snapshots``: step counts at
    which a copy of ``model.encoder``'s state is kept (in this call: not across a resume).
    """
    cfg = config or PretrainConfig()
    tc = cfg.train_config(seed=seed, device=str(resolve_device(device)), progress=progress,
                          checkpoint=checkpoint, num_workers=num_workers, drop_last=dataset is not None)
    want, snaps = {int(s) for s in snapshots}, {}

    def snapshot(m: nn.Module, step: int) -> None:
        if step in want:
            snaps[step] = {k: v.detach().cpu().clone() for k, v in m.encoder.state_dict().items()}

    def two_views(b: Sequence[Tensor]) -> tuple[Tensor, ...]:  # a data set's (view_q, view_k, y)
        return (b[0], b[2].float(), b[1])

    res = train(model, dataset if dataset is not None else (X, Y), tc, on_step=[snapshot] if want else (),
                views=two_views if dataset is not None else None)
    return PretrainResult(model=res.model, history=res.history, snapshots=snaps, seconds=res.seconds,
                          config=asdict(cfg))


# ---------------------------------------------------------------------------------------------
# fine-tuning and linear probing
class Classifier(nn.Module):
    """``Linear(encoder.out_dim, L)`` on top of an encoder (the projection head is dropped)."""

    def __init__(self, encoder: nn.Module, n_labels: int, in_dim: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(int(in_dim if in_dim is not None else encoder.out_dim), n_labels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.encoder(x))


@dataclass
class FinetuneResult:
    model: Classifier
    history: list[dict[str, float]]  # per epoch: "loss" (train BCE), "val" (−validation BCE), "lr"
    best_epoch: int
    best_val_bce: float
    seconds: float = 0.0


def _fit(model: Classifier, data: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], cfg: FinetuneConfig,
         seed: int, device: torch.device, augment: nn.Module | None) -> FinetuneResult:
    Xva, Yva = (torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=torch.float32).to(device)
                for a in val)

    def bce(m: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        xb, yb = batch
        if augment is not None and cfg.augment:
            augment.train()
            xb = augment(xb)
        return {"loss": F.binary_cross_entropy_with_logits(m(xb), yb)}

    def neg_val_bce(m: nn.Module) -> float:
        return -float(sum(F.binary_cross_entropy_with_logits(m(xb), yb, reduction="sum")
                          for xb, yb in zip(Xva.split(4096), Yva.split(4096))) / Yva.numel())

    tc = cfg.train_config(seed=seed, device=str(device), progress=False)
    if not any(True for _ in model.encoder.parameters()):  # a probe's head on precomputed features
        tc = replace(tc, lr_mult={})
    res = train(model, data, tc, loss_fn=bce, validate=neg_val_bce)
    return FinetuneResult(model=res.model, history=res.history, best_epoch=res.best_epoch,
                          best_val_bce=-float(res.best_score), seconds=res.seconds)


def finetune(encoder: nn.Module, X_train: Any, Y_train: Any, X_val: Any, Y_val: Any,
             config: FinetuneConfig | None = None, *, seed: int = 0, device: str | torch.device | None = "auto",
             augment: nn.Module | None = None, copy_encoder: bool = True) -> FinetuneResult:
    """Fine-tune ``encoder`` + a new linear classifier with BCE (see the module docstring).

    The encoder is deep-copied first (``copy_encoder``), so one pre-trained encoder can be
    fine-tuned and probed several times. Returns the model of the epoch with the best validation
    BCE.
    """
    cfg = config or FinetuneConfig()
    dev = resolve_device(device)
    enc = copy.deepcopy(encoder) if copy_encoder else encoder
    for p in enc.parameters():
        p.requires_grad_(True)
    torch.manual_seed(seed)
    model = Classifier(enc, np.shape(Y_train)[1]).to(dev)
    return _fit(model, (X_train, Y_train), (X_val, Y_val), cfg, seed, dev, augment)


class _Frozen(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.out_dim = encoder.out_dim

    def train(self, mode: bool = True):  # noqa: D102 - the frozen encoder always stays in eval mode
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encoder(x)


def linear_probe(encoder: nn.Module, X_train: Any, Y_train: Any, X_val: Any, Y_val: Any,
                 config: FinetuneConfig | None = None, *, seed: int = 0,
                 device: str | torch.device | None = "auto") -> FinetuneResult:
    """Linear classifier on the frozen encoder (eval mode). The features of every split are
    computed once; the returned ``Classifier`` wraps the frozen encoder, so ``predict_proba(
    result.model, X_test)`` takes raw inputs."""
    cfg = config or PROBE
    dev = resolve_device(device)
    enc = copy.deepcopy(encoder).to(dev).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    frozen = _Frozen(enc)
    Ftr, Fva = (torch.from_numpy(represent(frozen, X, 1024)) for X in (X_train, X_val))
    torch.manual_seed(seed)
    head = Classifier(nn.Identity(), np.shape(Y_train)[1], in_dim=Ftr.shape[1]).to(dev)
    res = _fit(head, (Ftr, Y_train), (Fva, Y_val), replace(cfg, backbone_lr_mult=0.0), seed, dev, None)
    model = Classifier(frozen, np.shape(Y_train)[1]).to(dev)
    model.fc.load_state_dict(res.model.fc.state_dict())
    res.model = model.eval()
    return res


# ---------------------------------------------------------------------------------------------
# the paper's image recipe (GPU users): torchvision only inside this function
def image_settings(n_labels: int, size: int = 224) -> dict[str, Any]:
    """The paper's image settings: a ResNet-50 trained **from scratch** (the authors' "pretrained"
    flag is ignored in their code), 224×224 inputs, random resized crop + colour jitter + random
    greyscale for the views, SGD lr 0.1 with a cosine schedule for 400 epochs at batch 64 (128 for
    Objects365), probing with Adam 0.01, fine-tuning with Adam 1e-4, both with a plateau scheduler.
    The authors normalise with CIFAR constants for every data set; we do the same.

    Returns ``{"encoder", "augment", "to_tensor", "pretrain", "probe", "finetune"}``; build the
    model with ``MulSupConModel(s["encoder"], n_labels, queue_size=..., augment=nn.Identity(),
    proj_hidden=2048)`` and pass a data set yielding ``(s["augment"](img), s["augment"](img), y)``
    to :func:`pretrain` (``dataset=``).
    """
    import torchvision  # noqa: PLC0415 - lazy on purpose (paper-scale path only)
    from torchvision import transforms as T  # noqa: PLC0415

    net = torchvision.models.resnet50(weights=None)
    net.out_dim = net.fc.in_features  # 2048
    net.fc = nn.Identity()
    cifar_mean, cifar_std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    augment = T.Compose([
        T.RandomResizedCrop(size),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.ToTensor(),
        T.Normalize(cifar_mean, cifar_std),
    ])
    to_tensor = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(cifar_mean, cifar_std)])
    return {
        "encoder": net,
        "augment": augment,
        "to_tensor": to_tensor,
        "pretrain": PretrainConfig(epochs=400, iters_per_epoch=1,  # set to len(train) // 64
                                   batch_size=64, optimizer="sgd", lr=0.1,
                                   weight_decay=1e-4, scheduler="cosine", eta_min=0.0),
        "probe": FinetuneConfig(lr=1e-2, backbone_lr_mult=0.0),
        "finetune": FinetuneConfig(lr=1e-4, backbone_lr_mult=1.0),
        "n_labels": n_labels,
    }
