"""Optimiser (parameter groups, fused kernels) and learning-rate schedule from a TrainConfig."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlcl.training.config import TrainConfig


def param_groups(model: nn.Module, lr: float, lr_mult: dict[str, float],
                 no_decay: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """One group per multiplier: a parameter takes the multiplier of the longest matching name
    prefix (1 when none matches); multiplier 0 leaves it out of the optimiser (frozen). With
    ``no_decay``, each group is split in two and the 1-D parameters and those whose lower-cased
    name contains one of its strings form a group with ``weight_decay`` 0.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> [(g["lr"], len(g["params"])) for g in param_groups(net, 1e-3, {"0": 0.1})]
        [(0.001, 2), (0.0001, 2)]
        >>> [(g["lr"], len(g["params"]), g.get("weight_decay")) for g in param_groups(net, 1e-3, {}, ("bias",))]
        [(0.001, 2, None), (0.001, 2, 0.0)]
    """
    for prefix in lr_mult:
        if not any(n == prefix or n.startswith(prefix + ".") for n, _ in model.named_parameters()):
            raise ValueError(f"lr_mult prefix {prefix!r} matches no parameter of {type(model).__name__}")
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        hits = [k for k in lr_mult if name == k or name.startswith(k + ".")]
        mult = float(lr_mult[max(hits, key=len)]) if hits else 1.0
        if mult > 0:
            groups.setdefault(mult, []).append(p)
    if not groups:
        raise ValueError("no trainable parameter (all frozen or lr_mult 0)")
    out = [{"params": ps, "lr": lr * m} for m, ps in sorted(groups.items(), reverse=True)]
    if no_decay is None:
        return out
    ids = {id(p) for n, p in model.named_parameters() if p.ndim <= 1 or any(s in n.lower() for s in no_decay)}
    split = [[{"params": [p for p in g["params"] if id(p) not in ids], "lr": g["lr"]},
              {"params": [p for p in g["params"] if id(p) in ids], "lr": g["lr"], "weight_decay": 0.0}] for g in out]
    return [g for pair in split for g in pair if g["params"]]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD with the fused kernel (one kernel for all parameters) where torch has it
    for this device, else the foreach one."""
    groups = param_groups(model, cfg.lr, cfg.lr_mult, cfg.no_decay)
    kw: dict[str, Any] = {"weight_decay": cfg.weight_decay, **cfg.optimizer_kwargs}
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[cfg.optimizer]
    if cfg.optimizer == "sgd":
        kw.setdefault("momentum", cfg.momentum)
    if "fused" not in kw and "foreach" not in kw:
        kw["fused" if device.type in ("cuda", "cpu") else "foreach"] = True
    return cls(groups, lr=cfg.lr, **kw)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, intervals: int):
    """The torch scheduler for ``cfg`` over ``intervals`` scheduler steps (epochs or steps).

    Defaults: cosine ``T_max`` = intervals − warmup, ``eta_min`` 0; linear: the warm-up, then
    down to 0 at ``intervals``; cosine_restarts ``T_0`` 50,
    ``T_mult`` 2; step ``step_size`` 30, ``gamma`` 0.1; onecycle ``max_lr`` = lr; plateau
    ``factor`` 0.1, ``patience`` 10, mode "max" on the validation score; ``mode="min"`` when
    validate() returns a negated loss: the scheduler then sees the loss itself (torch's relative
    threshold assumes positive values, so "max" on −BCE would count small losses of ground as gains).
    """
    S, kw, warm = torch.optim.lr_scheduler, dict(cfg.scheduler_kwargs), cfg.warmup
    name = cfg.scheduler
    if name == "plateau":
        if warm:
            raise ValueError("warmup does not combine with the plateau scheduler")
        return S.ReduceLROnPlateau(opt, **{"mode": "max", "factor": 0.1, "patience": 10, **kw})
    if name == "onecycle":
        if warm:
            raise ValueError("onecycle has its own warm-up (pct_start); set warmup=0")
        return S.OneCycleLR(opt, **{"max_lr": [g["lr"] for g in opt.param_groups], "total_steps": intervals, **kw})
    if name == "linear":  # lr = base · factor(k), k = scheduler steps taken (exact on resume)
        total = max(1, intervals - warm)
        return S.LambdaLR(opt, lambda k: (k + 1) / (warm + 1) if k < warm else 1.0 - min(1.0, (k - warm) / total))
    main = None
    if name == "cosine":
        main = S.CosineAnnealingLR(opt, **{"T_max": max(1, intervals - warm), "eta_min": 0.0, **kw})
    elif name == "cosine_restarts":
        main = S.CosineAnnealingWarmRestarts(opt, **{"T_0": 50, "T_mult": 2, "eta_min": 0.0, **kw})
    elif name == "step":
        main = S.StepLR(opt, **{"step_size": 30, "gamma": 0.1, **kw})
    if not warm:
        return main
    ramp = S.LinearLR(opt, start_factor=1.0 / (warm + 1), end_factor=1.0, total_iters=warm)
    if main is None:
        return ramp
    return S.SequentialLR(opt, [ramp, main], milestones=[warm])
