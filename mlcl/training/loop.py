"""The training loop every method uses (see the package docstring for the contract)."""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from mlcl.training.batching import LoaderBatches, TensorBatches, as_tensors, fingerprint
from mlcl.training.checkpoint import check_resumable, config_json, load_checkpoint, save_atomic
from mlcl.training.config import TrainConfig, TrainResult
from mlcl.training.optim import make_optimizer, make_scheduler
from mlcl.training.runtime import distributed, reseed, resolve_device

Batch = Sequence[Tensor]
LossFn = Callable[[nn.Module, Batch], dict[str, Tensor]]


def _default_loss(model: nn.Module, batch: Batch) -> dict[str, Tensor]:
    return model(*batch)


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def train(
    model: nn.Module,
    train_data: Dataset | Sequence[Any],
    config: TrainConfig | None = None,
    *,
    validate: Callable[[nn.Module], float] | None = None,
    loss_fn: LossFn | None = None,
    views: Callable[[Batch], Batch] | None = None,
    on_step: Sequence[Callable[[nn.Module, int], None]] = (),
    callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
    data_fingerprint: str | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_data`` ((X, Y, …) arrays/tensors or a Dataset of tuples).

    ``views(batch) -> batch`` maps a device batch to the model's arguments (two augmented views,
    reordering a data set's ``(view_q, view_k, y)``). ``on_step(model, step)`` runs after every
    optimiser step; ``callbacks(epoch, logs)`` after each epoch's checkpoint is written (an
    exception there stops training: how the resume tests simulate a crash).
    """
    cfg = config or TrainConfig()
    loss_fn = loss_fn or _default_loss
    t_start = time.perf_counter()
    rank, world = distributed()
    device = resolve_device(cfg.device, rank)
    use_amp = cfg.amp and device.type == "cuda"
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the {world} ranks")
    model.to(device)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model

    if isinstance(train_data, Dataset):
        batches: Any = LoaderBatches(train_data, cfg.batch_size, seed=cfg.seed, rank=rank, world=world,
                                     drop_last=cfg.drop_last, device=device, num_workers=cfg.num_workers)
        per_epoch = cfg.steps_per_epoch or len(batches.loader)
    else:
        tensors = as_tensors(train_data, device)
        batches = TensorBatches(tensors, cfg.batch_size, seed=cfg.seed, rank=rank, world=world, drop_last=cfg.drop_last)
        n = len(tensors[0])
        per_epoch = cfg.steps_per_epoch or (n // cfg.batch_size if cfg.drop_last else math.ceil(n / cfg.batch_size))
    fp = data_fingerprint or fingerprint(train_data)

    opt = make_optimizer(model, cfg, device)
    per_step = cfg.scheduler_interval == "step" and cfg.scheduler != "plateau"
    sched = make_scheduler(opt, cfg, cfg.epochs * per_epoch if per_step else cfg.epochs)
    plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and validate is None:
        raise ValueError("scheduler='plateau' follows the validation score: pass validate=")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) \
        if cfg.ema is not None else None
    judged = ema.module if (ema is not None and cfg.validate_ema) else model  # what validate() sees
    params = [p for g in opt.param_groups for p in g["params"]]

    # ---- resume ---------------------------------------------------------------------------------
    start, step, history = 0, 0, []
    best: dict[str, Any] = {"score": None, "epoch": -1, "state": None}
    path, resumed_from = cfg.checkpoint, None
    if path is not None and os.path.isfile(path):
        ck = load_checkpoint(path, map_location=device)
        check_resumable(ck, cfg, fp, path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        scaler.load_state_dict(ck["scaler"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        start, step, history, best = ck["epoch"] + 1, ck["step"], ck["history"], ck["best"]
        resumed_from = start

    # ---- epochs ---------------------------------------------------------------------------------
    show = cfg.progress and rank == 0
    bar = tqdm(total=cfg.epochs * per_epoch, initial=start * per_epoch, disable=not show, desc="train", leave=False)
    for epoch in range(start, cfg.epochs):
        reseed(cfg.seed, epoch, rank)
        net.train()
        lr = opt.param_groups[0]["lr"]
        sums: dict[str, Any] = {}  # device tensors: no host sync inside the epoch
        n_steps = 0
        for batch in batches.epoch(epoch, cfg.steps_per_epoch):  # ---- one training step ----
            if views is not None:
                batch = views(batch)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                losses = loss_fn(net, batch)
            opt.zero_grad(set_to_none=True)
            if use_amp:
                scaler.scale(losses["loss"]).backward()
                if cfg.grad_clip is not None:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
                scaler.step(opt)
                scaler.update()
            else:
                losses["loss"].backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
                opt.step()
            if ema is not None:
                ema.update_parameters(model)
            if per_step and sched is not None:
                sched.step()
            step += 1
            n_steps += 1
            for hook in on_step:
                hook(model, step)
            for k, v in losses.items():
                v = v.detach() if torch.is_tensor(v) else v
                sums[k] = sums[k] + v if k in sums else v
            if show:
                bar.update(1)
        logs = {k: float(v) / max(n_steps, 1) for k, v in sums.items()}  # one host sync per epoch
        if not math.isfinite(logs.get("loss", 0.0)):
            raise FloatingPointError(
                f"training loss is {logs['loss']} in epoch {epoch} (steps {step - n_steps + 1}-{step}); no "
                "checkpoint was written for it. Lower the learning rate, set grad_clip, or check the data.")
        logs.update(lr=lr, step=float(step))
        if validate is not None:  # model selection: keep the best finite validation score
            judged.eval()
            with torch.no_grad():
                logs["val"] = float(validate(judged))
            if math.isfinite(logs["val"]) and (best["score"] is None or logs["val"] > best["score"]):
                best = {"score": logs["val"], "epoch": epoch, "state": _cpu_state(judged)}
        if plateau:  # mode "min": validate() returns a negated loss (−BCE); the rule applies to the loss
            sched.step(-logs["val"] if sched.mode == "min" else logs["val"])
        elif sched is not None and not per_step:
            sched.step()
        history.append(logs)
        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val")})

        if path is not None and rank == 0 and ((epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs):
            save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict() if sched is not None else None,
                         "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                         "epoch": epoch, "step": step, "history": history, "best": best,
                         "config": config_json(cfg), "fingerprint": fp}, path)
        if world > 1:
            dist.barrier()
        for cb in callbacks:
            cb(epoch, logs)
    bar.close()

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    elif ema is not None and cfg.validate_ema:
        model.load_state_dict(ema.module.state_dict())
    model.eval()
    return TrainResult(model=model, history=copy.deepcopy(history),
                       best_epoch=best["epoch"] if validate is not None else cfg.epochs - 1,
                       best_score=best["score"], resumed_from=resumed_from, steps=step,
                       seconds=time.perf_counter() - t_start)

