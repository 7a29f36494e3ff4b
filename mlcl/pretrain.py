"""MulSupCon's two stages: contrastive pre-training, then fine-tuning or linear probing.

* :func:`pretrain` — MoCo pre-training of a :class:`mlcl.models.mulsupcon.MulSupConModel`,
  iteration-based as in the authors' code: an "epoch" is ``iters_per_epoch`` steps of a random
  sampler (the authors: 1000 steps of batch 64 for yeast), the learning rate follows cosine warm
  restarts stepped once per epoch (T0 = 50, Tmult = 2, min 1e-4: the 150 epochs end exactly at
  the end of the second cycle). ``snapshots=`` keeps copies of the encoder at given step counts
  (how the result depends on the length of pre-training, from one run).
* :func:`finetune` — drop the head, add ``Linear(r, L)``, BCE, Adam with lr for the classifier
  and ``backbone_lr_mult`` × lr for the backbone (4e-4 / 4e-5), ReduceLROnPlateau on the
  validation BCE, keep the epoch with the best validation BCE (30 epochs × 50 steps × batch 32).
  With ``backbone_lr_mult=1`` and a fresh encoder it is the "BCE from scratch" baseline.
* :func:`linear_probe` — the encoder frozen in eval mode: features are computed once, then a
  linear classifier is trained with the same loop (Adam 0.01, the paper's probing lr).

Why not :func:`mlcl.train.train`: its epochs are passes over the data set with one parameter
group and an epoch-wise cosine schedule; MulSupCon's schedules are counted in iterations, the
fine-tuning needs two learning rates and a plateau scheduler, the paper's image recipe uses SGD.
The loop here is small (on CUDA it uses float16 autocast); C-GMVAE and the other baselines still
train with :func:`mlcl.train.train`.

Settings: :data:`YEAST_PRETRAIN` / :data:`YEAST_FINETUNE` are the authors' yeast configuration
(``williamzhangsjtu/MulSupCon`` @ 42b23028); :func:`image_settings` returns the paper's image
recipe (ResNet-50 from scratch at 224², SGD 0.1, cosine, 400 epochs, batch 64; probing with Adam
0.01, fine-tuning with Adam 1e-4) with torchvision imported inside the function.

Example:
    >>> import numpy as np, torch
    >>> from mlcl.models.backbones import MLP
    >>> from mlcl.models.mulsupcon import MulSupConModel
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(64, 10)).astype("float32"), (rng.random((64, 3)) < .4).astype("float32")
    >>> m = MulSupConModel(MLP(10, [16], dropout=0.0), n_labels=3, queue_size=16, proj_hidden=16, proj_dim=8)
    >>> res = pretrain(m, X, Y, PretrainConfig(epochs=2, iters_per_epoch=3, batch_size=16), progress=False)
    >>> len(res.history)
    2
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Classifier",
    "FinetuneConfig",
    "PretrainConfig",
    "PretrainResult",
    "FitResult",
    "PROBE",
    "YEAST_FINETUNE",
    "YEAST_PRETRAIN",
    "finetune",
    "image_settings",
    "linear_probe",
    "predict_proba",
    "pretrain",
    "scaled_pretrain",
    "standardize",
]


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


#: The authors' yeast configuration (150 epochs × 1000 iterations × batch 64, queue 256).
YEAST_PRETRAIN = PretrainConfig()
YEAST_FINETUNE = FinetuneConfig()
#: Linear probing (frozen encoder): the paper's probing learning rate 0.01, same loop.
PROBE = FinetuneConfig(epochs=30, iters_per_epoch=50, batch_size=64, lr=1e-2, backbone_lr_mult=0.0)


def scaled_pretrain(steps: int, base: PretrainConfig = YEAST_PRETRAIN) -> PretrainConfig:
    """``base`` with the same 150-epoch cosine-restart shape compressed to ``steps`` iterations
    (``iters_per_epoch = steps / epochs``); ``steps = base.steps`` gives ``base`` back."""
    ipe = max(1, int(round(steps / base.epochs)))
    return replace(base, iters_per_epoch=ipe)


# ---------------------------------------------------------------------------------------------
# data helpers
def standardize(train: np.ndarray, *others: np.ndarray, eps: float = 1e-8) -> list[np.ndarray]:
    """Fit a StandardScaler on ``train`` (features with zero variance keep scale 1) and apply it
    to ``train`` and every array of ``others``; returns float32 arrays in the same order."""
    train = np.asarray(train, dtype=np.float64)
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd < eps, 1.0, sd)
    return [((np.asarray(a, dtype=np.float64) - mu) / sd).astype(np.float32) for a in (train, *others)]


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _tensor(a: Any, device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=torch.float32).to(device)


class _Batches:
    """Random batches of row indices: a fresh permutation per pass, as a shuffled sampler."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.b, self.g = n, min(batch_size, n), generator
        self.perm, self.pos = torch.randperm(n, generator=generator), 0

    def next(self) -> Tensor:
        if self.pos + self.b > self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=self.g), 0
        idx = self.perm[self.pos:self.pos + self.b]
        self.pos += self.b
        return idx


def _scheduler(opt: torch.optim.Optimizer, cfg: PretrainConfig):
    if cfg.scheduler == "cosine_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=cfg.T_0, T_mult=cfg.T_mult,
                                                                    eta_min=cfg.eta_min)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.eta_min)
    if cfg.scheduler is None:
        return None
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}")


# ---------------------------------------------------------------------------------------------
# pre-training
@dataclass
class PretrainResult:
    model: nn.Module
    history: list[dict[str, float]]  # one dict per epoch: mean loss, lr, step, seconds
    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict)  # step -> encoder state
    seconds: float = 0.0
    config: dict = field(default_factory=dict)


def pretrain(model: nn.Module, X: Any, Y: Any, config: PretrainConfig | None = None, *, seed: int = 0,
             device: str | torch.device | None = "auto", snapshots: Sequence[int] = (),
             progress: bool = True, dataset: torch.utils.data.Dataset | None = None,
             num_workers: int = 0) -> PretrainResult:
    """Pre-train ``model`` (``model(x, y) -> {"loss": ...}``) on ``(X, Y)``.

    Vector data stay on the device and batches are indexed directly (no DataLoader). For image
    data sets that make their own two views pass ``dataset=`` (items ``(view_q, view_k, y)``,
    e.g. from :func:`image_settings`), then X and Y are ignored and a shuffled DataLoader is used.
    ``snapshots``: step counts at which a copy of ``model.encoder``'s state is kept.
    """
    cfg = config or PretrainConfig()
    dev = _device(device)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model.to(dev).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              foreach=True)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {cfg.optimizer!r}")
    sched = _scheduler(opt, cfg)
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if dataset is None:
        Xt, Yt = _tensor(X, dev), _tensor(Y, dev)
        batches = _Batches(Xt.shape[0], cfg.batch_size, g)

        def next_batch():
            idx = batches.next().to(dev)
            return (Xt[idx], Yt[idx])
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                             num_workers=num_workers, generator=g,
                                             pin_memory=dev.type == "cuda")
        it = iter(loader)

        def next_batch():
            nonlocal it
            try:
                xq, xk, yb = next(it)
            except StopIteration:
                it = iter(loader)
                xq, xk, yb = next(it)
            return (xq.to(dev, non_blocking=True), yb.to(dev).float(), xk.to(dev, non_blocking=True))

    want = sorted({int(s) for s in snapshots})
    snaps: dict[int, dict[str, Tensor]] = {}
    history: list[dict[str, float]] = []
    t0, step = time.perf_counter(), 0
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, disable=not progress, desc="pretrain", leave=False)
    except ImportError:  # pragma: no cover
        bar = None
    for epoch in range(cfg.epochs):
        tot = 0.0
        for _ in range(cfg.iters_per_epoch):
            batch = next_batch()
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                out = model(*batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(out["loss"]).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            tot += float(out["loss"].detach())
            step += 1
            if step in want:
                snaps[step] = {k: v.detach().cpu().clone() for k, v in model.encoder.state_dict().items()}
            if bar is not None:
                bar.update(1)
        history.append({"epoch": epoch, "step": step, "loss": tot / max(cfg.iters_per_epoch, 1),
                        "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
        if sched is not None:
            sched.step()
        if not math.isfinite(history[-1]["loss"]):
            raise FloatingPointError(f"pre-training loss is {history[-1]['loss']} at epoch {epoch}")
    if bar is not None:
        bar.close()
    model.eval()
    return PretrainResult(model=model, history=history, snapshots=snaps, seconds=time.perf_counter() - t0,
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
class FitResult:
    model: Classifier
    history: list[dict[str, float]]  # per epoch: train BCE, validation BCE, lrs
    best_epoch: int
    best_val_bce: float
    seconds: float = 0.0


@torch.no_grad()
def predict_proba(model: nn.Module, X: Any, batch_size: int = 2048) -> np.ndarray:
    """sigmoid(model(X)) in eval mode, as a numpy array."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    X = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X, dtype=torch.float32)
    out = torch.cat([torch.sigmoid(model(xb.to(dev)).float()).cpu() for xb in X.split(batch_size)])
    model.train(was)
    return out.numpy()


def _fit(model: Classifier, Xtr: Tensor, Ytr: Tensor, Xva: Tensor, Yva: Tensor, cfg: FinetuneConfig,
         seed: int, augment: nn.Module | None, train_encoder: bool) -> FitResult:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    groups = [{"params": list(model.fc.parameters()), "lr": cfg.lr}]
    if train_encoder and cfg.backbone_lr_mult > 0:
        groups.append({"params": [p for p in model.encoder.parameters() if p.requires_grad],
                       "lr": cfg.lr * cfg.backbone_lr_mult})
    opt = torch.optim.Adam(groups, weight_decay=cfg.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                       patience=cfg.plateau_patience)
    batches = _Batches(Xtr.shape[0], cfg.batch_size, g)
    best = (math.inf, -1, None)
    history = []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        if not train_encoder:
            model.encoder.eval()
        tot = 0.0
        for _ in range(cfg.iters_per_epoch):
            idx = batches.next().to(Xtr.device)
            xb, yb = Xtr[idx], Ytr[idx]
            if augment is not None and cfg.augment:
                augment.train()
                xb = augment(xb)
            loss = F.binary_cross_entropy_with_logits(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach())
        model.eval()
        with torch.no_grad():
            val = float(torch.cat([F.binary_cross_entropy_with_logits(model(xb), yb, reduction="none")
                                   for xb, yb in zip(Xva.split(4096), Yva.split(4096))]).mean())
        sched.step(val)
        history.append({"epoch": epoch, "train_bce": tot / cfg.iters_per_epoch, "val_bce": val,
                        "lr": opt.param_groups[0]["lr"]})
        if val < best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    return FitResult(model=model, history=history, best_epoch=best[1], best_val_bce=best[0],
                     seconds=time.perf_counter() - t0)


def finetune(encoder: nn.Module, X_train: Any, Y_train: Any, X_val: Any, Y_val: Any,
             config: FinetuneConfig | None = None, *, seed: int = 0, device: str | torch.device | None = "auto",
             augment: nn.Module | None = None, copy_encoder: bool = True) -> FitResult:
    """Fine-tune ``encoder`` + a new linear classifier with BCE (see the module docstring).

    The encoder is deep-copied first (``copy_encoder``), so one pre-trained encoder can be
    fine-tuned and probed several times. Returns the model of the epoch with the best validation
    BCE.
    """
    cfg = config or FinetuneConfig()
    dev = _device(device)
    enc = copy.deepcopy(encoder) if copy_encoder else encoder
    for p in enc.parameters():
        p.requires_grad_(True)
    Ytr = _tensor(Y_train, dev)
    torch.manual_seed(seed)
    model = Classifier(enc, Ytr.shape[1]).to(dev)
    return _fit(model, _tensor(X_train, dev), Ytr, _tensor(X_val, dev), _tensor(Y_val, dev), cfg, seed,
                augment, train_encoder=True)


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
                 device: str | torch.device | None = "auto") -> FitResult:
    """Linear classifier on the frozen encoder (eval mode). The features of every split are
    computed once; the returned ``Classifier`` wraps the frozen encoder, so ``predict_proba(
    result.model, X_test)`` takes raw inputs."""
    cfg = config or PROBE
    dev = _device(device)
    enc = copy.deepcopy(encoder).to(dev).eval()
    for p in enc.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def feats(X):
        X = _tensor(X, dev)
        return torch.cat([enc(xb).float() for xb in X.split(1024)])

    Ftr, Fva = feats(X_train), feats(X_val)
    Ytr = _tensor(Y_train, dev)
    torch.manual_seed(seed)
    head = Classifier(nn.Identity(), Ytr.shape[1], in_dim=Ftr.shape[1]).to(dev)
    res = _fit(head, Ftr, Ytr, Fva, _tensor(Y_val, dev), replace(cfg, backbone_lr_mult=0.0), seed, None,
               train_encoder=False)
    model = Classifier(_Frozen(enc), Ytr.shape[1]).to(dev)
    model.fc.load_state_dict(res.model.fc.state_dict())
    model.eval()
    res.model = model
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
