"""The training loop every chapter reuses.

``train(model, (X, Y), TrainConfig(...), validate=...)`` runs Adam/AdamW (optional cosine warm
restarts), keeps the epoch with the best validation score, writes a checkpoint after every epoch
and resumes from it, uses AMP on CUDA, shows a progress bar, and runs data-parallel under
``torchrun`` (DistributedDataParallel, ``gloo`` on CPU, ``nccl`` on GPU).

The model contract is small: ``model(*batch)`` returns a dict of losses with a ``"loss"`` entry
(or pass ``loss_fn(model, batch) -> dict``). ``validate(model) -> float`` (higher is better) is
called after each epoch in eval mode under ``no_grad``; the best epoch's weights are restored at
the end.

Determinism and resume: the sampler is shuffled from ``(seed, epoch)`` and every RNG is reseeded
from ``(seed, epoch, rank)`` at the start of each epoch, so a run resumed from the checkpoint
written after epoch k reproduces the uninterrupted run exactly (tested). With DDP the global batch
``batch_size`` is split evenly across ranks, so 2 ranks × 64 rows compute the same update as
1 process × 128 rows (tested on CPU/gloo).

Example:
    >>> cfg = TrainConfig(epochs=100, batch_size=128, lr=2e-3, checkpoint="ckpt/yeast.pt")
    >>> result = train(model, (X_train, Y_train), cfg, validate=lambda m: score(m))  # doctest: +SKIP
    >>> result.best_epoch, result.best_score                                          # doctest: +SKIP

Multi-GPU: ``torchrun --nproc_per_node=4 my_script.py`` where the script calls ``train(...)``.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset
from tqdm import tqdm


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128  # global batch: split evenly across DDP ranks
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "adamw"
    scheduler: str | None = None  # None | "cosine_restarts" (stepped once per epoch)
    scheduler_kwargs: dict = field(default_factory=dict)  # e.g. {"T_0": 50, "T_mult": 2, "eta_min": 2e-4}
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda[:N]"
    amp: bool = True  # float16 autocast + GradScaler, only on CUDA
    checkpoint: str | None = None  # file written after every epoch; resumed from when it exists
    progress: bool = True
    drop_last: bool = False


@dataclass
class TrainResult:
    model: nn.Module  # the unwrapped model holding the best (or last) weights
    history: list[dict[str, float]]  # one dict per epoch: mean losses, "val" score, "lr"
    best_epoch: int  # 0-based; the last epoch when no ``validate`` is given
    best_score: float | None
    resumed_from: int | None = None  # epoch the run resumed at, if it resumed


# ----------------------------------------------------------------------------------------------
# small helpers
def _distributed() -> tuple[int, int]:
    """(rank, world_size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.is_initialized():
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    return torch.device(name)


def _reseed(seed: int, epoch: int, rank: int) -> None:
    s = (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31 - 1)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)  # also seeds every CUDA device


def _as_dataset(data: Dataset | Sequence) -> Dataset:
    if isinstance(data, Dataset):
        return data
    return TensorDataset(*(torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in data))


def _default_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    return model(*batch)


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill during torch.save never leaves a half-written checkpoint


def _make_optimizer(model: nn.Module, cfg: TrainConfig):
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = None
    if cfg.scheduler == "cosine_restarts":
        kw = {"T_0": 50, "T_mult": 2, "eta_min": 0.0, **cfg.scheduler_kwargs}
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, **kw)
    elif cfg.scheduler is not None:
        raise ValueError(f"unknown scheduler {cfg.scheduler!r}")
    return opt, sched


# ----------------------------------------------------------------------------------------------
def train(
    model: nn.Module,
    train_data: Dataset | Sequence,
    config: TrainConfig | None = None,
    *,
    validate: Callable[[nn.Module], float] | None = None,
    loss_fn: Callable[[nn.Module, Sequence[torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
) -> TrainResult:
    """Train ``model`` on ``train_data`` ((X, Y, …) arrays or a Dataset of tuples); see module doc.

    ``callbacks`` are called as ``cb(epoch, logs)`` after each epoch's checkpoint is written; an
    exception raised there stops training (that is how the resume test simulates a crash).
    """
    cfg = config or TrainConfig()
    loss_fn = loss_fn or _default_loss
    rank, world = _distributed()
    device = _device(cfg.device, rank)
    use_amp = cfg.amp and device.type == "cuda"
    model.to(device)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model

    data = _as_dataset(train_data)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the {world} ranks")
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                 drop_last=cfg.drop_last)
    loader = DataLoader(data, batch_size=cfg.batch_size // world, sampler=sampler, drop_last=cfg.drop_last)
    opt, sched = _make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    # ---- resume -------------------------------------------------------------------------------
    start, history, best = 0, [], {"score": None, "epoch": -1, "state": None}
    ckpt_path = Path(cfg.checkpoint) if cfg.checkpoint else None
    resumed_from = None
    if ckpt_path is not None and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        scaler.load_state_dict(ck["scaler"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        start, history, best = ck["epoch"] + 1, ck["history"], ck["best"]
        resumed_from = start

    # ---- epochs -------------------------------------------------------------------------------
    bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, disable=not (cfg.progress and rank == 0),
               desc="train", leave=False)
    for epoch in bar:
        sampler.set_epoch(epoch)
        _reseed(cfg.seed, epoch, rank)
        net.train()
        sums: dict[str, float] = {}
        n_batches = 0
        for batch in loader:  # ---------------- one training step ----------------
            batch = [b.to(device, non_blocking=True) for b in batch]
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                losses = loss_fn(net, batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            for k, v in losses.items():  # ---------- bookkeeping ----------
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            n_batches += 1
        logs = {k: v / max(n_batches, 1) for k, v in sums.items()}
        logs["lr"] = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()

        if validate is not None:  # model selection: keep the best validation score
            model.eval()
            with torch.no_grad():
                logs["val"] = float(validate(model))
            if best["score"] is None or logs["val"] > best["score"]:
                best = {"score": logs["val"], "epoch": epoch,
                        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        history.append(logs)
        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val")})

        if ckpt_path is not None and rank == 0:
            _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict() if sched is not None else None,
                          "scaler": scaler.state_dict(), "epoch": epoch, "history": history, "best": best,
                          "config": asdict(cfg)}, ckpt_path)
        if world > 1:
            dist.barrier()
        for cb in callbacks:
            cb(epoch, logs)
    bar.close()

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return TrainResult(model=model, history=copy.deepcopy(history),
                       best_epoch=best["epoch"] if validate is not None else cfg.epochs - 1,
                       best_score=best["score"], resumed_from=resumed_from)
