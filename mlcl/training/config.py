"""What a training run is: :class:`TrainConfig` (every knob of the loop) and :class:`TrainResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

#: Fields that may change between a run and its resume (they do not change the numbers).
RESUME_FREE = ("progress", "checkpoint", "checkpoint_every", "device", "num_workers")


@dataclass
class TrainConfig:
    r"""Every setting of :func:`mlcl.training.train`; the defaults are those of the loop it replaced.

    Schedule: ``epochs`` epochs; an epoch is one pass over the data (``steps_per_epoch=None``) or
    ``steps_per_epoch`` random batches (MulSupCon's iteration-counted "epochs").
    ``scheduler`` ∈ {None, "cosine", "cosine_restarts", "step", "onecycle", "plateau", "linear"},
    stepped every epoch or every step (``scheduler_interval``); ``warmup`` > 0 prepends a linear
    warm-up of that many intervals (alone with ``scheduler=None``); ``"linear"`` is the warm-up
    then a linear decay to 0, :math:`\eta_k = \eta\frac{k+1}{w+1}` for k < w, else
    :math:`\eta(1-\frac{k-w}{K-w})` (BERT's schedule). ``"plateau"`` watches the validation
    score (higher is better) once per epoch. ``lr_mult`` maps a parameter-name prefix to a
    learning-rate multiplier (``{"encoder": 0.1}``: the backbone at lr/10; 0 freezes it).
    ``no_decay=("bias", "norm")``: no weight decay on 1-D parameters and on those whose lower-cased
    name contains one of the strings (biases, LayerNorm; None: weight decay on every parameter).
    """

    epochs: int = 100
    steps_per_epoch: int | None = None
    batch_size: int = 128  # global batch: split evenly across DDP ranks
    drop_last: bool = False
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    momentum: float = 0.9  # SGD only
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"betas": [0.9, 0.99]}
    lr_mult: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> lr multiplier
    no_decay: tuple[str, ...] | None = None  # name parts exempt from weight decay (with every 1-D one)
    scheduler: str | None = None
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the torch scheduler
    scheduler_interval: str = "epoch"  # "epoch" | "step"
    warmup: int = 0  # linear warm-up length, in scheduler intervals
    ema: float | None = None  # decay of an exponential moving average of the weights
    validate_ema: bool = True  # validate (and select) the EMA weights when ``ema`` is set
    grad_clip: float | None = None  # max global gradient norm
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda[:N]"
    amp: bool = True  # float16 autocast + GradScaler, only on CUDA
    checkpoint: str | None = None  # written every ``checkpoint_every`` epochs, resumed from when it exists
    checkpoint_every: int = 1
    progress: bool = True
    num_workers: int = 0  # DataLoader workers (Dataset input only)

    def __post_init__(self) -> None:
        def bad(msg: str) -> ValueError:
            return ValueError(f"TrainConfig: {msg}")

        if self.epochs < 0 or self.batch_size < 1:
            raise bad(f"epochs >= 0 and batch_size >= 1 needed, got {self.epochs}, {self.batch_size}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise bad(f"steps_per_epoch must be None or >= 1, got {self.steps_per_epoch}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise bad(f"optimizer must be 'adam', 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.scheduler not in (None, "cosine", "cosine_restarts", "step", "onecycle", "plateau", "linear"):
            raise bad(f"unknown scheduler {self.scheduler!r}; use None, 'cosine', 'cosine_restarts', "
                      "'step', 'onecycle', 'plateau' or 'linear'")
        if self.scheduler_interval not in ("epoch", "step"):
            raise bad(f"scheduler_interval must be 'epoch' or 'step', got {self.scheduler_interval!r}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise bad(f"ema must be a decay in [0, 1), got {self.ema}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: nn.Module  # the unwrapped model holding the best (or last) weights, in eval mode
    history: list[dict[str, float]]  # one dict per epoch: mean losses, "val", "lr", "step"
    best_epoch: int  # 0-based; the last epoch when no ``validate`` is given
    best_score: float | None
    resumed_from: int | None = None  # epoch the run resumed at, if it resumed
    steps: int = 0  # optimiser steps taken in total (including those before a resume)
    seconds: float = 0.0  # wall time of this call
