r"""MulCon on the engine: step 1 BCE, step 2 BCE + γ·LLCL with a small learning rate (eq. 7–9).

A run is a list of :class:`StageConfig` — one per step, each trained by :func:`mlcl.training.train`.
A stage sets the loss weights (``bce``, ``llcl`` = γ, ``supcon`` for the image-level baseline),
the number of augmented views per image (2 in step 2: the views are stacked as 2B images for
LLCL, as in the authors' code), the optimiser, the schedule (1-cycle per batch, step, cosine,
none), the per-step EMA of the weights (returned instead of the raw weights, as the authors
evaluate it) and AMP on CUDA. What is MulCon's own is here: the presets, the objective
(:class:`MulConObjective`, eq. 9 on the views) and the digits augmentation.

Presets: :data:`DIGITS` (the offline multi-label digits, CPU-sized) and :data:`PAPER_SCALE`
(the authors' MS-COCO settings, ``../shared/reference/official_code_notes.md``): step 1 Adam,
1-cycle, max lr 2e-4, batch 32, 25 epochs; step 2 SGD momentum 0.9, weight decay 1e-4, lr 0.01
×0.1 every 20 epochs, batch 24 × 2 views, EMA 0.9997, AMP, γ = 0.5, τ = 0.2.

.. math::

    \mathcal L = w_{bce}\,\mathrm{BCE} + \gamma\,\mathcal L_{LLCL} + w_{sc}\,\mathrm{SupCon_{ANY}}

Example:
    >>> import numpy as np
    >>> from mlcl.models.mulcon import LabelLevelNet
    >>> X = np.random.rand(32, 1, 32, 32).astype("float32"); Y = (np.random.rand(32, 10) < .3)
    >>> net = LabelLevelNet(10, dim=32, width=16)
    >>> hist = train_mulcon(net, X, Y, [StageConfig(epochs=1, batch_size=16)], progress=False)
    >>> sorted(hist[0])[:3], hist[0]["stage"]
    (['bce', 'epoch', 'loss'], 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from mlcl.losses import LabelLevelContrastiveLoss, SupConLoss
from mlcl.training.config import TrainConfig
from mlcl.training.loop import train

__all__ = [
    "AUTHORS",
    "AUTHORS_LR_MULT",
    "DIGITS",
    "PAPER_SCALE",
    "MulConObjective",
    "StageConfig",
    "augment_digits",
    "authors",
    "mulcon_loss",
    "stage_dict",
    "train_mulcon",
    "train_stage",
]


@dataclass
class StageConfig:
    """One training step of MulCon (or one baseline run).

    ``bce``, ``llcl`` (γ of eq. 9) and ``supcon`` (image-level SupCon, ANY positives) weight the
    losses; ``views`` augmented views per image (LLCL / SupCon see all 2B rows, BCE is averaged
    over both views). ``ema`` is the decay of an exponential moving average of the weights
    (None: off); when set, the EMA weights replace the raw ones at the end of the stage.
    ``scheduler``: None, ``"onecycle"`` (per batch, max lr = ``lr``), ``"step"`` (×``step_gamma``
    every ``step_size`` epochs), ``"cosine"`` (per epoch, to 0) or ``"plateau"`` (×``step_gamma``
    once more than ``patience`` epochs pass without a better validation score; needs ``validate=``).
    ``lr_mult`` maps a parameter-name prefix to a learning-rate multiplier (the authors' ``lrp``:
    :data:`AUTHORS_LR_MULT`).
    """

    epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str | None = None
    step_size: int = 20
    step_gamma: float = 0.1
    batch_size: int = 64
    bce: float = 1.0
    llcl: float = 0.0
    supcon: float = 0.0
    temperature: float = 0.2
    supcon_temperature: float = 0.1
    views: int = 1
    augment: bool = True
    ema: float | None = None
    grad_clip: float | None = None
    amp: bool = True  # float16 autocast on CUDA only
    lr_mult: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> lr multiplier
    patience: int = 3  # "plateau" only: epochs without a better validation score before lr × step_gamma

    def replace(self, **kw: Any) -> StageConfig:
        return replace(self, **kw)

    def train_config(self, n: int | None, *, seed: int, device: str, progress: bool,
                     checkpoint: str | None, param_prefix: str = "") -> TrainConfig:
        """The engine's configuration of this stage (``n`` training rows, None for a Dataset;
        ``param_prefix``: where the network sits in the trained module, ``"net."`` in
        :class:`MulConObjective`, prepended to the ``lr_mult`` prefixes)."""
        sched, kw, interval = self.scheduler, {}, "epoch"
        if sched == "onecycle":  # per batch, max lr = lr
            interval = "step"
        elif sched == "step":
            kw = {"step_size": self.step_size, "gamma": self.step_gamma}
        elif sched == "plateau":
            kw = {"factor": self.step_gamma, "patience": self.patience}
        elif sched not in (None, "cosine"):
            raise ValueError(f"unknown scheduler {sched!r}; use None, 'onecycle', 'step', 'cosine' or 'plateau'")
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
            momentum=self.momentum, weight_decay=self.weight_decay, lr_mult={param_prefix + k: v for k, v in self.lr_mult.items()},
            scheduler=sched, scheduler_kwargs=kw,
            scheduler_interval=interval, ema=self.ema, grad_clip=self.grad_clip, amp=self.amp, seed=seed,
            device=device, progress=progress, checkpoint=checkpoint,
            # a last batch of one row is skipped (BatchNorm and the contrastive losses need two)
            drop_last=n is not None and n % self.batch_size == 1)


#: The authors' ``lrp`` = 0.1 (``get_config_optim`` of their stage-two model): the backbone and the
#: whole attention module (image self-attention, label queries U, label attention, label
#: self-attention) at lr × 0.1; the per-label classifiers and the projector at lr.
AUTHORS_LR_MULT: dict[str, float] = {"encoder": 0.1, "image_sa": 0.1, "label_queries": 0.1,
                                     "label_attention": 0.1, "label_sa": 0.1}


#: CPU-sized settings for the multi-label digits (our choice, not the authors'): step 1 Adam
#: 2e-3 with cosine decay; step 2 BCE + 0.5·LLCL, two views, Adam at a 10× smaller lr.
DIGITS: list[StageConfig] = [
    StageConfig(epochs=15, lr=2e-3, scheduler="cosine", batch_size=64),
    StageConfig(epochs=10, lr=2e-4, batch_size=64, llcl=0.5, views=2),
]

#: The authors' MS-COCO settings (official code, SonDaoDuy/MulCon 8ca16f10). The notes do not give
#: the number of step-2 epochs; 40 (two lr steps) is our choice. Use with
#: ``LabelLevelNet(80, "resnet101", dim=1024, proj_hidden=1024, proj_dim=128, heads=4)`` on
#: 448×448 images with RandAugment (step 1) / Cutout (step 2) applied by the data loader.
PAPER_SCALE: list[StageConfig] = [
    StageConfig(epochs=25, lr=2e-4, optimizer="adam", scheduler="onecycle", batch_size=32,
                augment=False),
    StageConfig(epochs=40, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
                scheduler="step", step_size=20, step_gamma=0.1, batch_size=24, views=2,
                llcl=0.5, temperature=0.2, ema=0.9997, augment=False, lr_mult=dict(AUTHORS_LR_MULT)),
]


def authors(gamma: float = 0.1, *, step1_epochs: int = 30, step2_epochs: int = 5,
            steps_per_epoch: int = 24, batch_size: int = 64, step1_batch_size: int = 64) -> list[StageConfig]:
    """The authors' step 2 on a CPU-sized step 1, for the digits (``gamma`` = 0.1 in the paper's
    appendix A.1, 0.5 in the code's default).

    Step 1 (ours; the authors fine-tune an ImageNet ResNet with Adam 1-cycle 2e-4, which does not
    train a network from scratch in a few epochs): Adam 2e-3, cosine, ``step1_epochs``, batch
    ``step1_batch_size`` (64 as in the paper's appendix A.1; their code uses 32); pass ``validate=`` to :func:`train_stage` to keep
    the best epoch. Step 2 (the authors'): SGD,
    momentum 0.9, weight decay 1e-4, lr 0.01 with the backbone and attention at 0.1 × that
    (:data:`AUTHORS_LR_MULT`), lr × 0.1 halfway (their 40 epochs with a step every 20, scaled to
    ``step2_epochs``), two views, τ = 0.2, an EMA of the weights whose horizon is one epoch as
    theirs is (decay 0.9997 ≈ 1 − 1/3,400 steps per MS-COCO epoch; here 1 − 1/``steps_per_epoch``,
    the step-2 batches of ``batch_size`` rows in one epoch).

    Example:
        >>> s1, s2 = authors(0.5, steps_per_epoch=24)
        >>> s2.optimizer, s2.lr, s2.lr_mult["encoder"], s2.llcl, round(s2.ema, 4)
        ('sgd', 0.01, 0.1, 0.5, 0.9583)
    """
    if steps_per_epoch < 1 or step2_epochs < 1 or step1_epochs < 0 or min(batch_size, step1_batch_size) < 2:
        raise ValueError(f"authors(): need steps_per_epoch >= 1, step2_epochs >= 1, step1_epochs >= 0 and batch "
                         f"sizes >= 2 (LLCL needs two rows), got {steps_per_epoch}, {step2_epochs}, {step1_epochs}, "
                         f"{batch_size}, {step1_batch_size}")
    if gamma < 0:
        raise ValueError(f"authors(): gamma (the weight of LLCL) must be >= 0, got {gamma}")
    step1 = StageConfig(epochs=step1_epochs, lr=2e-3, scheduler="cosine", batch_size=step1_batch_size)
    step2 = StageConfig(epochs=step2_epochs, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
                        scheduler="step", step_size=(step2_epochs + 1) // 2, step_gamma=0.1,
                        batch_size=batch_size, views=2, llcl=gamma, temperature=0.2,
                        ema=1.0 - 1.0 / steps_per_epoch, lr_mult=dict(AUTHORS_LR_MULT))
    return [step1, step2]


#: :func:`authors` with the paper's γ = 0.1, sized for the `full` digits (1,500 rows; step 2 in
#: batches of 64, 24 per epoch).
AUTHORS: list[StageConfig] = authors(0.1)


# ----------------------------------------------------------------------------------------------
def augment_digits(x: Tensor, generator: torch.Generator | None = None, shift: int = 2,
                   cutout: int = 4, p_cutout: float = 0.5, noise: float = 0.05) -> Tensor:
    """Cheap on-tensor augmentation for the digits canvas: a random translation of up to
    ``shift`` pixels (zero padding), a ``cutout``×``cutout`` erased square with probability
    ``p_cutout`` (smaller than a digit, so no label disappears) and Gaussian pixel noise."""
    B, C, H, W = x.shape
    dev = x.device
    out = x
    if shift > 0:
        pad = F.pad(x, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (B,), generator=generator).to(dev)
        dx = torch.randint(0, 2 * shift + 1, (B,), generator=generator).to(dev)
        iy = (dy[:, None] + torch.arange(H, device=dev)[None, :])  # (B, H)
        ix = (dx[:, None] + torch.arange(W, device=dev)[None, :])  # (B, W)
        bidx = torch.arange(B, device=dev)[:, None, None]
        out = pad.permute(0, 2, 3, 1)[bidx, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
    if cutout > 0 and p_cutout > 0:
        cy = torch.randint(0, H - cutout + 1, (B,), generator=generator).to(dev)
        cx = torch.randint(0, W - cutout + 1, (B,), generator=generator).to(dev)
        on = (torch.rand(B, generator=generator) < p_cutout).to(dev)
        yy = torch.arange(H, device=dev)[None, :]
        xx = torch.arange(W, device=dev)[None, :]
        my = (yy >= cy[:, None]) & (yy < cy[:, None] + cutout)
        mx = (xx >= cx[:, None]) & (xx < cx[:, None] + cutout)
        m = (my[:, :, None] & mx[:, None, :]) & on[:, None, None]
        out = out.masked_fill(m[:, None], 0.0)
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator).to(dev)
    return out


def mulcon_loss(model: nn.Module, views: Sequence[Tensor], y: Tensor, stage: StageConfig,
                llcl_fn: nn.Module | None = None, supcon_fn: nn.Module | None = None) -> dict[str, Tensor]:
    """Eq. 9: ``bce·BCE + γ·LLCL (+ supcon·SupCon_ANY)`` on the stacked views ``(V·B, …)``."""
    x = torch.cat(list(views), 0)
    yy = y.repeat(len(views), 1)
    need_z = stage.llcl > 0 or stage.supcon > 0
    out = model(x)
    losses: dict[str, Tensor] = {}
    total = x.new_zeros(())
    if stage.bce > 0:
        losses["bce"] = F.binary_cross_entropy_with_logits(out["logits"].float(), yy.float())
        total = total + stage.bce * losses["bce"]
    if need_z and stage.llcl > 0:
        fn = llcl_fn or LabelLevelContrastiveLoss(stage.temperature)
        losses["llcl"] = fn(out["z"], yy)
        total = total + stage.llcl * losses["llcl"]
    if need_z and stage.supcon > 0:
        fn = supcon_fn or SupConLoss(stage.supcon_temperature, positives="any")
        losses["supcon"] = fn(out["z"], yy)
        total = total + stage.supcon * losses["supcon"]
    losses["loss"] = total
    return losses


class MulConObjective(nn.Module):
    """``objective(*batch)`` for one stage: eq. 9 on ``stage.views`` views of the batch.

    A batch is ``(x_view1, x_view2, y)`` made by a data set, or ``(x, y)``: then the views are
    made here by ``augment_fn(x, None)``, which with no generator draws from the global RNG; the
    engine reseeds it every epoch, so a resumed epoch draws the same views. ``net`` is the
    network being trained.
    """

    def __init__(self, net: nn.Module, stage: StageConfig,
                 augment_fn: Callable[[Tensor, torch.Generator | None], Tensor] | None = None) -> None:
        super().__init__()
        self.net, self.stage, self.augment_fn = net, stage, augment_fn
        self.llcl_fn = LabelLevelContrastiveLoss(stage.temperature)
        self.supcon_fn = SupConLoss(stage.supcon_temperature, positives="any")

    def forward(self, *batch: Tensor) -> dict[str, Tensor]:
        st = self.stage
        if len(batch) == 3:
            views, y = [batch[0], batch[1]][: st.views], batch[2]
        elif len(batch) == 2:
            x, y = batch
            aug = self.augment_fn is not None and st.augment and self.training
            views = [self.augment_fn(x, None) for _ in range(st.views)] if aug else [x] * st.views
        else:
            raise ValueError(f"a MulCon batch is (x, y) or (x_view1, x_view2, y), got {len(batch)} tensors")
        return mulcon_loss(self.net, views, y, st, self.llcl_fn, self.supcon_fn)


def _data(X: Any, Y: Any) -> tuple[Any, int | None]:
    if isinstance(X, Dataset):
        return X, None
    if isinstance(X, torch.utils.data.DataLoader):
        raise TypeError("pass the DataLoader's dataset (items (x, y) or (x_view1, x_view2, y)): the "
                        "engine batches and shuffles it itself, reproducibly")
    if Y is None:
        raise ValueError("pass (X, Y) arrays, or a Dataset as X with Y=None")
    return (X, np.asarray(Y)), len(X)


def train_stage(model: nn.Module, data: Any, stage: StageConfig, *, seed: int = 0,
                device: str | torch.device = "cpu",
                augment_fn: Callable[[Tensor, torch.Generator | None], Tensor] | None = augment_digits,
                callback: Callable[[int, nn.Module], dict[str, float]] | None = None,
                progress: bool = True, checkpoint: str | Path | None = None,
                validate: Callable[[nn.Module], float] | None = None) -> list[dict[str, float]]:
    """Train ``model`` for one stage with :func:`mlcl.training.train`; return one dict per epoch
    (mean losses, ``lr``, ``step``, ``epoch`` and whatever ``callback(epoch, model)`` returns — it
    is called in eval mode under ``no_grad``). With an EMA the EMA weights are loaded at the end.

    ``data``: ``(X, Y)`` arrays, or a Dataset of ``(x, y)`` (augmented by ``augment_fn``) or
    ``(x_view1, x_view2, y)`` (pass ``augment_fn=None``). ``checkpoint``: a file the stage is
    saved to every epoch and resumed from, exactly (weights, EMA, optimiser, schedule).
    ``validate(net) -> float`` (higher is better, e.g. validation mAP) runs after every epoch on
    the network (its EMA when ``stage.ema`` is set); the best epoch's weights are kept at the end
    and its score is the history's ``val``. Needed by ``scheduler="plateau"``.
    """
    X, Y = (data, None) if isinstance(data, (Dataset, torch.utils.data.DataLoader)) else data
    train_data, n = _data(X, Y)
    objective = MulConObjective(model, stage, augment_fn)
    extra: dict[int, dict[str, float]] = {}

    def measure(epoch: int, logs: dict[str, float]) -> None:
        was = model.training
        model.eval()
        with torch.no_grad():
            extra[epoch] = dict(callback(epoch, model) or {})
        model.train(was)

    cfg = stage.train_config(n, seed=seed, device=str(device), progress=progress,
                             checkpoint=None if checkpoint is None else str(checkpoint), param_prefix="net.")
    judge = None if validate is None else (lambda obj: validate(obj.net))  # noqa: E731
    res = train(objective, train_data, cfg, validate=judge, callbacks=[measure] if callback is not None else ())
    return [{**h, "epoch": e, **extra.get(e, {})} for e, h in enumerate(res.history)]


def train_mulcon(model: nn.Module, X: Any, Y: Any = None, stages: Sequence[StageConfig] = DIGITS, *,
                 seed: int = 0, device: str | torch.device = "cpu",
                 augment_fn: Callable[[Tensor, torch.Generator | None], Tensor] | None = augment_digits,
                 callback: Callable[[int, nn.Module], dict[str, float]] | None = None,
                 progress: bool = True, checkpoint_dir: str | Path | None = None) -> list[dict[str, float]]:
    """Run the stages in order (two-step MulCon: ``DIGITS`` or ``PAPER_SCALE``); the history rows
    carry ``stage`` (0-based) and a global ``step_epoch``. ``X`` may be a Dataset (``Y=None``).
    ``checkpoint_dir``: stage s is checkpointed to ``stage{s}.pt`` there; a rerun skips the
    finished stages and resumes the interrupted one."""
    out: list[dict[str, float]] = []
    for s, st in enumerate(stages):
        base = len(out)
        cb = None if callback is None else (lambda e, m, base=base: callback(base + e, m))  # noqa: E731
        ck = None if checkpoint_dir is None else Path(checkpoint_dir) / f"stage{s}.pt"
        hist = train_stage(model, X if Y is None else (X, Y), st, seed=seed + 1000 * s, device=device,
                           augment_fn=augment_fn, callback=cb, progress=progress, checkpoint=ck)
        out += [{**h, "stage": s, "step_epoch": base + i} for i, h in enumerate(hist)]
    return out


def stage_dict(stages: Sequence[StageConfig]) -> list[dict[str, Any]]:
    """The stages as plain dicts (for provenance)."""
    return [asdict(s) for s in stages]
