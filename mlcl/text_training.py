"""Training and evaluation for the ABALONE chapter (Audibert et al., 2024): contrastive
pre-training (L_Base → L_BQueue → L_BQProto → L_MSC), the BCE / focal / asymmetric baselines,
the linear probe, fine-tuning ("-FT"), and the chapter's measurements (lack of positives,
attraction–repulsion per label, clustering quality, head / medium / tail buckets).

What trains is a ``body`` (any module mapping a batch of inputs to the representation ``h``:
a :class:`mlcl.models.text.TextEncoder` on token ids, or a :class:`~mlcl.models.text.FeatureAdapter`
on cached frozen features) followed by the projection head (hidden → hidden → 256) whose
L2-normalised output ``z`` enters the contrastive loss. ``inputs`` is a float tensor ``(N, H)``
or a dict of token tensors ``{"input_ids": (N, T), "attention_mask": (N, T)}``.

Pre-training methods (:data:`METHODS`):

==================  =========  ===========  =====================================================
method              queue      prototypes   loss
==================  =========  ===========  =====================================================
``L_Base``          no         no           SupCon, Jaccard pair weights outside the log
``L_BQueue``        512 + MoCo no           same, references = batch ∪ queue of momentum keys
``L_BQProto``       512 + MoCo yes          same + L prototypes as references with one label each
``L_MSC``           512 + MoCo yes          ABALONE eq. 2–5 (β-weighted repulsion, f weights)
``L_MSC-inbatch``   no         yes          L_MSC as the authors' code runs it (no queue)
==================  =========  ===========  =====================================================

The losses are computed by :func:`contrastive_loss`, which generalises
:class:`mlcl.losses.JaccardSupConLoss` and :class:`mlcl.losses.MSCLoss` to a reference set
made of the batch (self excluded) plus a queue (the tests check that it equals them in-batch).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcl.models.text import ProjectionHead

__all__ = [
    "METHODS",
    "PAPER_TABLE1",
    "LinearProbe",
    "PretrainConfig",
    "SupervisedConfig",
    "attraction_repulsion",
    "clustering_scores",
    "contrastive_loss",
    "cosine_with_warmup",
    "label_buckets",
    "linear_probe",
    "no_positive_rates",
    "param_groups",
    "per_label_f1",
    "predict_proba",
    "pretrain",
    "represent",
    "scores_to_records",
    "stratified_validation",
    "train_classifier",
]

#: ABALONE Table 1 (train / val / test in thousands, L, mean labels per doc, mean words per doc).
PAPER_TABLE1 = {
    "RCV1-v2": {"train_k": 19.7, "val_k": 3.5, "test_k": 781.0, "L": 91, "labels_per_doc": 3.2, "words_per_doc": 241},
    "AAPD": {"train_k": 42.5, "val_k": 4.8, "test_k": 8.5, "L": 54, "labels_per_doc": 2.4, "words_per_doc": 163},
    "UK-LEX": {"train_k": 20.0, "val_k": 8.0, "test_k": 8.5, "L": 69, "labels_per_doc": 1.7, "words_per_doc": 1154},
}

#: queue / prototypes / loss kind of every pre-training method.
METHODS: dict[str, dict[str, Any]] = {
    "L_Base": {"queue": False, "prototypes": False, "kind": "jaccard"},
    "L_BQueue": {"queue": True, "prototypes": False, "kind": "jaccard"},
    "L_BQProto": {"queue": True, "prototypes": True, "kind": "jaccard"},
    "L_MSC": {"queue": True, "prototypes": True, "kind": "msc"},
    "L_MSC-inbatch": {"queue": False, "prototypes": True, "kind": "msc"},
}


# =============================================================================================
# optimisation helpers
# =============================================================================================
def param_groups(modules: Sequence[nn.Module | nn.Parameter | None], lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices (and prototypes), none on biases and LayerNorm.

    A parameter is exempt when its name contains ``bias`` or ``LayerNorm`` / ``norm``, or it is
    1-D (biases, LayerNorm scales). Frozen parameters are skipped.
    """
    decay, no_decay, seen = [], [], set()
    for m in modules:
        if m is None:
            continue
        named = [("prototypes", m)] if isinstance(m, nn.Parameter) else list(m.named_parameters())
        for name, p in named:
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            low = name.lower()
            if p.ndim <= 1 or "bias" in low or "layernorm" in low or ".norm" in low or low.startswith("norm"):
                no_decay.append(p)
            else:
                decay.append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})
    return groups


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05,
                       schedule: str = "cosine") -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine (or linear) decay to 0."""
    total = max(1, int(total_steps))
    warm = int(round(warmup_fraction * total))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1.0 + math.cos(math.pi * t)) if schedule == "cosine" else 1.0 - t

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def _n(inputs: Tensor | Mapping[str, Tensor]) -> int:
    return int(next(iter(inputs.values())).shape[0]) if isinstance(inputs, Mapping) else int(inputs.shape[0])


def _take(inputs: Tensor | Mapping[str, Tensor], idx: Tensor, device: torch.device) -> Any:
    if isinstance(inputs, Mapping):
        batch = {k: v[idx].to(device) for k, v in inputs.items()}
        if "attention_mask" in batch:  # trim padding shared by the batch
            t = int(batch["attention_mask"].sum(1).max().clamp(min=1))
            batch = {k: v[:, :t] for k, v in batch.items()}
        return batch
    return inputs[idx].to(device)


def _call(body: nn.Module, x: Any) -> Tensor:
    return body(**x) if isinstance(x, Mapping) else body(x)


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batches(n: int, batch_size: int, gen: torch.Generator, drop_last: bool = True) -> list[Tensor]:
    perm = torch.randperm(n, generator=gen)
    stop = n - (n % batch_size) if (drop_last and n >= batch_size) else n
    return [perm[s : s + batch_size] for s in range(0, stop, batch_size)]


def _step(loss: Tensor, opt: torch.optim.Optimizer, scaler: Any, sched: Any, grad_clip: float | None) -> None:
    """One optimiser step: (AMP-scaled) backward, optional gradient clipping on unscaled gradients,
    optimiser and scheduler steps."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
    scaler.step(opt)
    scaler.update()
    sched.step()


@torch.no_grad()
def represent(body: nn.Module, inputs: Tensor | Mapping[str, Tensor], batch_size: int = 256,
              device: str | torch.device | None = None) -> np.ndarray:
    """The representation ``h = body(x)`` (before the projection head) of every input, eval mode."""
    dev = _device(device) if device is not None else next(body.parameters()).device
    was = body.training
    body.eval()
    out = []
    for s in range(0, _n(inputs), batch_size):
        idx = torch.arange(s, min(s + batch_size, _n(inputs)))
        with torch.autocast(device_type=dev.type, enabled=dev.type == "cuda"):
            out.append(_call(body, _take(inputs, idx, dev)).float().cpu())
    body.train(was)
    return torch.cat(out).numpy()


# =============================================================================================
# the contrastive losses, with a queue
# =============================================================================================
def contrastive_loss(
    q: Tensor,
    y: Tensor,
    *,
    kind: str = "jaccard",
    queue_keys: Tensor | None = None,
    queue_labels: Tensor | None = None,
    prototypes: Tensor | None = None,
    temperature: float = 0.1,
    beta: float = 0.1,
    alpha: float = 1.0,
    return_parts: bool = False,
) -> Tensor | dict[str, Tensor]:
    """ABALONE's losses over references H = (batch \\ self) ∪ queue (∪ prototypes).

    ``kind="jaccard"`` (L_Base / L_BQueue / L_BQProto): for anchor i,
    ``-(1/N_i) Σ_l w_il log softmax_l`` with ``w_il = |y_i∩y_l|/|y_i∪y_l|`` over every reference l;
    prototypes (if given) are references with one label each, so prototype c is a positive of
    weight ``1/|y_i|`` when i carries c; every reference has weight 1 in the denominator.

    ``kind="msc"`` (L_MSC, eq. 2–5 as :class:`mlcl.losses.MSCLoss` computes them): per (i, c),
    positives = prototype c (f = 1) and the references carrying c (f = α/|y_i ∪ y_l|), normalised
    by N(i, c); denominator = all L prototypes (weight 1) + β × every other reference.

    ``q`` (B, D) and ``queue_keys`` (K, D) are L2-normalised here; ``y`` (B, L) multi-hot. Anchors
    without a positive contribute nothing; the mean is over the others (0 if none).
    With ``return_parts`` returns the pieces used by :func:`attraction_repulsion`.
    """
    if kind not in ("jaccard", "msc"):
        raise ValueError(f"kind must be 'jaccard' or 'msc', got {kind!r}")
    if kind == "msc" and prototypes is None:
        raise ValueError("kind='msc' needs prototypes (L_MSC always has them)")
    with torch.autocast(device_type=q.device.type, enabled=False):
        z = F.normalize(q.float(), dim=1)
        yf = (y != 0).float()
        B, L = yf.shape
        refs, ref_y = z, yf
        if queue_keys is not None and queue_keys.shape[0] > 0:
            refs = torch.cat([z, F.normalize(queue_keys.float(), dim=1)])
            ref_y = torch.cat([yf, (queue_labels != 0).float()])
        M = refs.shape[0]
        keep = torch.ones(B, M, dtype=torch.bool, device=z.device)
        keep[torch.arange(B), torch.arange(B)] = False  # self
        sim = (z @ refs.T) / temperature  # (B, M)
        n_i = yf.sum(1)
        inter = yf @ ref_y.T
        union = n_i[:, None] + ref_y.sum(1)[None, :] - inter
        if prototypes is not None:
            protos = F.normalize(prototypes.float(), dim=1)
            psim = (z @ protos.T) / temperature  # (B, L)
        if kind == "jaccard":
            w = (inter / union.clamp(min=1.0)) * keep
            logits, mask, wts = sim, keep, w
            if prototypes is not None:
                logits = torch.cat([sim, psim], 1)
                mask = torch.cat([keep, torch.ones(B, L, dtype=torch.bool, device=z.device)], 1)
                wts = torch.cat([w, yf / n_i.clamp(min=1.0)[:, None]], 1)
            lse = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), 1)
            norm = wts.sum(1)
            valid = norm > 0
            per = lse - (wts * logits).sum(1) / torch.where(valid, norm, torch.ones_like(norm))
        else:
            den = torch.cat([psim, sim + math.log(beta)], 1)
            den_mask = torch.cat([torch.ones(B, L, dtype=torch.bool, device=z.device), keep], 1)
            lse = torch.logsumexp(den.masked_fill(~den_mask, float("-inf")), 1)
            w = (alpha / union.clamp(min=1.0)) * keep
            num = psim + (w * sim) @ ref_y
            norm_ic = 1.0 + w @ ref_y
            pair = lse[:, None] - num / norm_ic
            valid = n_i > 0
            per = (pair * yf).sum(1) / n_i.clamp(min=1.0)
        loss = (per * valid).sum() / valid.sum().clamp(min=1)
        if not return_parts:
            return loss
        return {"loss": loss, "per_anchor": per, "valid": valid, "sim": sim, "keep": keep, "ref_y": ref_y,
                "psim": psim if prototypes is not None else None, "lse": lse}


# =============================================================================================
# pre-training
# =============================================================================================
@dataclass
class PretrainConfig:
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
class PretrainResult:
    body: nn.Module
    head: nn.Module
    prototypes: nn.Parameter | None
    history: list[dict[str, float]] = field(default_factory=list)
    monitor: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def pretrain(
    body: nn.Module,
    inputs: Tensor | Mapping[str, Tensor],
    Y: np.ndarray | Tensor,
    cfg: PretrainConfig,
    hidden: int | None = None,
    monitor: Callable[[nn.Module, nn.Module, nn.Parameter | None, int], dict[str, Any]] | None = None,
    verbose: bool = False,
) -> PretrainResult:
    """Contrastive pre-training of ``body`` + projection head (+ prototypes) with ``cfg.method``.

    Queue methods follow the paper's description (Appendix A, Algorithm 1): a momentum copy of
    body + head (m = ``cfg.momentum``) encodes the batch into keys that are enqueued after the
    step (FIFO, ``cfg.queue_size``); the anchors' references are the other batch embeddings
    (with gradients) and the queue. ``monitor(body, head, prototypes, epoch)`` is called before
    training (epoch 0) and after each epoch listed in ``cfg.monitor_epochs``.
    AdamW (no decay on bias / LayerNorm), warm-up + cosine, gradient clipping, AMP on CUDA.
    """
    from mlcl.models.moco import LabelledQueue, MomentumEncoder

    spec = cfg.spec()
    dev = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    Yt = torch.as_tensor(np.asarray(Y)).bool()
    N, L = Yt.shape
    hidden = hidden or getattr(body, "hidden_size", None)
    if hidden is None:
        raise ValueError("pass hidden= (the size of body's output)")
    body.to(dev).train()
    head = ProjectionHead(hidden, cfg.proj_dim).to(dev)
    protos = nn.Parameter(F.normalize(torch.randn(L, cfg.proj_dim), dim=1).to(dev)) if spec["prototypes"] else None
    net = nn.Sequential(body, head)
    key_net = MomentumEncoder(net, cfg.momentum).to(dev) if spec["queue"] else None
    queue = LabelledQueue(cfg.queue_size, cfg.proj_dim, L).to(dev) if spec["queue"] else None
    opt = torch.optim.AdamW(param_groups([body, head, protos], cfg.lr, cfg.weight_decay), lr=cfg.lr)
    steps_per_epoch = max(1, N // cfg.batch_size) if N >= cfg.batch_size else 1
    sched = cosine_with_warmup(opt, steps_per_epoch * cfg.epochs, cfg.warmup_fraction)
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    res = PretrainResult(body, head, protos)
    if monitor is not None:
        res.monitor.append({"epoch": 0, **monitor(body, head, protos, 0)})
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        tot, nb = 0.0, 0
        for idx in _batches(N, cfg.batch_size, gen):
            x, y = _take(inputs, idx, dev), Yt[idx].to(dev)
            if key_net is not None:
                key_net.update(net)
            with torch.autocast(device_type=dev.type, enabled=use_amp):
                q = head(_call(body, x))
                loss = contrastive_loss(
                    q, y, kind=spec["kind"],
                    queue_keys=queue.keys if queue is not None else None,
                    queue_labels=queue.labels if queue is not None else None,
                    prototypes=protos, temperature=cfg.temperature, beta=cfg.beta, alpha=cfg.alpha,
                )
            _step(loss, opt, scaler, sched, cfg.grad_clip)
            if queue is not None:
                with torch.no_grad(), torch.autocast(device_type=dev.type, enabled=use_amp):
                    k = key_net.encoder[1](_call(key_net.encoder[0], x))
                queue.enqueue(F.normalize(k.float(), dim=1), y)
            tot += float(loss.detach())
            nb += 1
        res.history.append({"epoch": epoch, "loss": tot / max(1, nb)})
        if verbose:
            print(f"  [{cfg.method}] epoch {epoch}/{cfg.epochs} loss {tot / max(1, nb):.4f}", flush=True)
        if monitor is not None and epoch in set(cfg.monitor_epochs):
            body.eval()
            res.monitor.append({"epoch": epoch, **monitor(body, head, protos, epoch)})
            body.train()
    res.seconds = time.perf_counter() - t0
    body.eval()
    return res


# =============================================================================================
# supervised training: BCE / focal / asymmetric baselines and fine-tuning (-FT)
# =============================================================================================
@dataclass
class SupervisedConfig:
    """Settings of the BCE-family baselines and of fine-tuning (ABALONE Appendix A)."""

    loss: str = "bce"  # "bce" | "focal" | "asl"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    schedule: str = "linear"
    grad_clip: float = 1.0
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    focal_gamma: float = 2.0
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 3.0
    asl_clip: float = 0.3


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
) -> tuple[nn.Module, nn.Linear, list[dict[str, float]]]:
    """Train ``body`` + a linear layer with a BCE-family loss; keep the epoch with the best
    validation micro-F1 at threshold 0.5 (ABALONE keeps the best checkpoint on validation).

    Used for the L_BCE / L_FCL / L_ASY baselines (body from the pre-trained encoder) and for the
    "-FT" rows (body from contrastive pre-training, its projection head discarded).
    """
    from mlcl.metrics import micro_f1

    dev = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    hidden = hidden or getattr(body, "hidden_size", None)
    Yt = torch.as_tensor(np.asarray(Y)).float()
    N, L = Yt.shape
    body.to(dev).train()
    lin = nn.Linear(hidden, L).to(dev)
    crit = _make_bce_family(cfg)
    opt = torch.optim.AdamW(param_groups([body, lin], cfg.lr, cfg.weight_decay), lr=cfg.lr)
    spe = max(1, N // cfg.batch_size)
    sched = cosine_with_warmup(opt, spe * cfg.epochs, cfg.warmup_fraction, cfg.schedule)
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    best, best_state, hist = -1.0, None, []
    model = nn.Sequential(body, lin)
    for epoch in range(1, cfg.epochs + 1):
        body.train()
        tot, nb = 0.0, 0
        for idx in _batches(N, cfg.batch_size, gen):
            x, y = _take(inputs, idx, dev), Yt[idx].to(dev)
            with torch.autocast(device_type=dev.type, enabled=use_amp):
                logits = lin(_call(body, x))
            loss = crit(logits.float(), y)
            _step(loss, opt, scaler, sched, cfg.grad_clip)
            tot, nb = tot + float(loss.detach()), nb + 1
        p_val = predict_proba(body, lin, val_inputs)
        f = micro_f1(val_Y, p_val, 0.5)
        hist.append({"epoch": epoch, "loss": tot / max(1, nb), "val_micro_f1": f})
        if f > best:
            best, best_state = f, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    body.eval()
    return body, lin, hist


@torch.no_grad()
def predict_proba(body: nn.Module, lin: nn.Module, inputs: Tensor | Mapping[str, Tensor], batch_size: int = 256) -> np.ndarray:
    """σ(lin(body(x))) for every input (eval mode)."""
    dev = next(lin.parameters()).device
    was = body.training
    body.eval()
    out = []
    for s in range(0, _n(inputs), batch_size):
        idx = torch.arange(s, min(s + batch_size, _n(inputs)))
        out.append(torch.sigmoid(lin(_call(body, _take(inputs, idx, dev)).float())).cpu())
    body.train(was)
    return torch.cat(out).numpy()


# =============================================================================================
# linear probe: per-label logistic regressions, per-label hyper-parameters on validation
# =============================================================================================
@dataclass
class LinearProbe:
    """Per-label logistic regressions: ``heads`` (K, D, L) weights, ``bias`` (K, L), averaged over K.

    ``config[c]`` is the (lr, weight decay) chosen for label c on validation; ``extra_heads`` > 0
    reproduces the authors' probe, which averages 5 heads of which only 3 are trained (the
    remaining heads stay at their random initialisation).
    """

    W: Tensor
    b: Tensor
    mean: Tensor
    std: Tensor
    config: list[tuple[float, float]]
    val_f1: np.ndarray
    W_untrained: Tensor | None = None
    b_untrained: Tensor | None = None

    def predict_proba(self, H: np.ndarray | Tensor, authors_bug: bool = False) -> np.ndarray:
        X = (torch.as_tensor(np.asarray(H), dtype=torch.float32) - self.mean) / self.std
        with torch.no_grad():
            p = torch.sigmoid(torch.einsum("nd,kdl->knl", X, self.W) + self.b[:, None, :])  # (K, N, L)
            if authors_bug:
                if self.W_untrained is None:
                    raise ValueError("this probe was trained without untrained heads")
                pu = torch.sigmoid(torch.einsum("nd,kdl->knl", X, self.W_untrained) + self.b_untrained[:, None, :])
                p = torch.cat([p, pu])
            return p.mean(0).numpy()


def linear_probe(
    H_train: np.ndarray,
    Y_train: np.ndarray,
    H_val: np.ndarray,
    Y_val: np.ndarray,
    lrs: Sequence[float] = (1.0, 1e-1, 1e-2),
    weight_decays: Sequence[float] = (1.0, 1e-1, 1e-2, 1e-4, 1e-6),
    epochs: int = 40,
    n_heads: int = 3,
    batch_size: int = 256,
    seed: int = 0,
    standardize: bool = True,
    untrained_heads: int = 2,
) -> LinearProbe:
    """ABALONE's linear evaluation (Appendix A), done right.

    For every (lr, weight decay) of the grid, ``n_heads`` logistic regressions per label are
    trained with AdamW for ``epochs`` epochs on the frozen representation; their probabilities
    are averaged. For each label separately the configuration with the best validation F1 at
    0.5 is kept (ties broken by the lower validation log-loss). All labels × configurations × heads
    are trained at once: one weight tensor per configuration, and since BCE separates over
    labels and AdamW acts per coordinate, this is exactly L·K independent regressions.
    Features are standardised with the training mean / std (``standardize``).

    ``untrained_heads`` extra heads are only *initialised* (never trained) so that
    ``predict_proba(..., authors_bug=True)`` can reproduce the authors' code, which averages
    5 heads but trains 3.
    """
    g = torch.Generator().manual_seed(seed)
    Xtr = torch.as_tensor(np.asarray(H_train), dtype=torch.float32)
    Xva = torch.as_tensor(np.asarray(H_val), dtype=torch.float32)
    Ytr = torch.as_tensor(np.asarray(Y_train), dtype=torch.float32)
    Yva = np.asarray(Y_val)
    mean = Xtr.mean(0) if standardize else torch.zeros(Xtr.shape[1])
    std = Xtr.std(0).clamp(min=1e-6) if standardize else torch.ones(Xtr.shape[1])
    Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
    N, D = Xtr.shape
    L = Ytr.shape[1]
    grid = [(lr, wd) for lr in lrs for wd in weight_decays]
    G, K = len(grid), int(n_heads)
    bound = 1.0 / math.sqrt(D)  # nn.Linear's default initialisation
    Ws = [nn.Parameter((torch.rand(K, D, L, generator=g) * 2 - 1) * bound) for _ in grid]
    bs = [nn.Parameter((torch.rand(K, 1, L, generator=g) * 2 - 1) * bound) for _ in grid]
    opt = torch.optim.AdamW(
        [{"params": [Ws[i]], "lr": lr, "weight_decay": wd} for i, (lr, wd) in enumerate(grid)]
        + [{"params": [bs[i]], "lr": lr, "weight_decay": 0.0} for i, (lr, _) in enumerate(grid)]
    )
    for _ in range(epochs):
        for idx in _batches(N, batch_size, g, drop_last=False):
            x, y = Xtr[idx], Ytr[idx]
            W = torch.stack(Ws)  # (G, K, D, L)
            b = torch.stack(bs)  # (G, K, 1, L)
            logits = torch.einsum("nd,gkdl->gknl", x, W) + b
            loss = F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="sum") / x.shape[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        W, b = torch.stack(Ws), torch.stack(bs)
        p = torch.sigmoid(torch.einsum("nd,gkdl->gknl", Xva, W) + b).mean(1).numpy()  # (G, Nv, L)
    f1 = np.stack([per_label_f1(Yva, p[i] >= 0.5) for i in range(G)])  # (G, L)
    eps = 1e-7
    nll = -(Yva[None] * np.log(p + eps) + (1 - Yva[None]) * np.log(1 - p + eps)).mean(1)  # (G, L)
    choice = np.lexsort((nll, -f1), axis=0)[0]  # best F1, then lowest log-loss
    lab = np.arange(L)
    Wc = W[torch.as_tensor(choice), :, :, torch.as_tensor(lab)]  # (L, K, D)
    bc = b[torch.as_tensor(choice), :, 0, torch.as_tensor(lab)]  # (L, K)
    Wu = (torch.rand(untrained_heads, D, L, generator=g) * 2 - 1) * bound if untrained_heads else None
    bu = (torch.rand(untrained_heads, L, generator=g) * 2 - 1) * bound if untrained_heads else None
    return LinearProbe(
        W=Wc.permute(1, 2, 0).contiguous(), b=bc.T.contiguous(), mean=mean, std=std,
        config=[grid[i] for i in choice], val_f1=f1[choice, lab], W_untrained=Wu, b_untrained=bu,
    )


# =============================================================================================
# evaluation helpers
# =============================================================================================
def per_label_f1(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """F1 of every label column (0 when a label has no positive and no prediction, as sklearn)."""
    Y, P = np.asarray(Y).astype(bool), np.asarray(P).astype(bool)
    tp = (Y & P).sum(0)
    den = 2 * tp + (~Y & P).sum(0) + (Y & ~P).sum(0)
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def label_buckets(Y_train: np.ndarray, n_buckets: int = 3, names: Sequence[str] = ("head", "medium", "tail")) -> dict[str, np.ndarray]:
    """Split the labels into equal-count buckets by training frequency (most frequent first)."""
    counts = np.asarray(Y_train).astype(np.int64).sum(0)  # uint8 sums are unsigned: negate safely
    order = np.argsort(-counts, kind="stable")
    parts = np.array_split(order, n_buckets)
    return {names[i]: np.sort(p) for i, p in enumerate(parts)}


def scores_to_records(
    Y_test: np.ndarray, scores: np.ndarray, buckets: Mapping[str, np.ndarray], *, dataset: str, method: str,
    seed: int, protocol: str = "honest", threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """micro-F1, macro-F1, Hamming loss and macro-F1 per label bucket at ``threshold``."""
    from mlcl.metrics import hamming_loss, macro_f1, micro_f1

    P = np.asarray(scores) >= threshold
    f1 = per_label_f1(Y_test, P)
    vals = {
        "micro_f1": micro_f1(Y_test, scores, threshold),
        "macro_f1": macro_f1(Y_test, scores, threshold),
        "hamming_loss": hamming_loss(Y_test, scores, threshold),
    }
    for name, idx in buckets.items():
        vals[f"macro_f1_{name}"] = float(f1[idx].mean())
    return [{"dataset": dataset, "method": method, "protocol": protocol, "metric": k, "seed": int(seed),
             "value": float(v)} for k, v in vals.items()]


def stratified_validation(Y: np.ndarray, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a seeded random ``fraction`` for validation, then, for every label
    with ≥ 2 training documents and none in validation, one of its documents is moved there
    (so per-label selection on validation sees every label that can be seen)."""
    Y = np.asarray(Y).astype(bool)
    n = len(Y)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    is_val = np.zeros(n, bool)
    is_val[perm[: int(round(fraction * n))]] = True
    for c in np.argsort(Y.sum(0), kind="stable"):
        docs = np.flatnonzero(Y[:, c])
        if len(docs) >= 2 and not is_val[docs].any():
            is_val[rng.choice(docs)] = True
    for c in range(Y.shape[1]):  # never leave a label without a training document
        docs = np.flatnonzero(Y[:, c])
        if len(docs) and is_val[docs].all():
            is_val[docs[0]] = False
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def no_positive_rates(
    Y: np.ndarray, batch_size: int = 32, queue_size: int = 0, epochs: int = 1, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Measured lack of positives under shuffled batches (and a FIFO queue of past samples).

    Returns, per label c, ``pair_rate[c]`` = fraction of (anchor carrying c) occurrences whose
    references (the other batch members, plus the ``queue_size`` previous samples) hold no other
    document with c; and ``anchor_rate`` = fraction of anchors sharing no label with any reference
    (L_Base ignores those anchors). Prototypes make both rates 0 by construction.
    """
    Y = np.asarray(Y).astype(bool)
    N, L = Y.shape
    rng = np.random.default_rng(seed)
    miss, occ = np.zeros(L), np.zeros(L)
    anchors_without, anchors = 0, 0
    history: list[np.ndarray] = []
    for _ in range(epochs):
        perm = rng.permutation(N)
        for s in range(0, N - batch_size + 1, batch_size):
            yb = Y[perm[s : s + batch_size]]
            cnt = yb.sum(0).astype(int)
            if queue_size:
                qy = np.concatenate(history)[-queue_size:] if history else np.zeros((0, L), bool)
                cnt = cnt + qy.sum(0)
            others = cnt[None, :] - yb  # count of c among the references of each anchor
            has = yb & (others > 0)
            occ += yb.sum(0)
            miss += (yb & ~has).sum(0)
            shared = (yb & (others > 0)).any(1)
            anchors += int((yb.sum(1) > 0).sum())
            anchors_without += int(((yb.sum(1) > 0) & ~shared).sum())
            if queue_size:
                history.append(yb)
                if sum(len(h) for h in history) > queue_size + batch_size:
                    history.pop(0)
    return {"pair_rate": np.where(occ > 0, miss / np.maximum(occ, 1), np.nan), "occurrences": occ,
            "anchor_rate": np.array(anchors_without / max(1, anchors))}


@torch.no_grad()
def attraction_repulsion(
    z: Tensor, y: Tensor, *, kind: str, prototypes: Tensor | None = None, temperature: float = 0.1,
    beta: float = 0.1, alpha: float = 1.0,
) -> dict[str, np.ndarray]:
    """Per-label attraction and repulsion in one batch, under the loss's own weights.

    Returns (each (L,)):

    * ``attraction``: Σ over anchors i with label c of the attraction weight the loss puts on
      pulling i toward references *through* c (the positive weights of the gradient,
      ∂ℓ/∂s_il = p_il − a_il, split over the labels i and l share; for L_MSC the weight of the
      (i, c) term; the prototype's share included);
    * ``repulsion``: Σ over anchors i **without** c of the softmax mass p_ik on references k that
      carry c (and on prototype c): how hard the members of c push everyone else away;
    * ``s_att`` / ``s_rep``: Graf et al.'s geometric terms (ABALONE eq. 9–10), averaged over the
      anchors with c: −mean cos to the other members of c, mean cos to the non-members.
    """
    parts = contrastive_loss(z, y, kind=kind, prototypes=prototypes, temperature=temperature, beta=beta,
                             alpha=alpha, return_parts=True)
    zf = F.normalize(z.float(), dim=1)
    yf = (y != 0).float()
    B, L = yf.shape
    sim, keep, lse = parts["sim"], parts["keep"], parts["lse"]
    gw = torch.full_like(sim, 1.0 if kind == "jaccard" else beta)
    p = gw * torch.exp(sim - lse[:, None]) * keep  # softmax mass on samples (B, B)
    n_i = yf.sum(1).clamp(min=1.0)
    inter = yf @ yf.T
    union = yf.sum(1)[:, None] + yf.sum(1)[None, :] - inter
    rep = ((p @ yf) * (1 - yf)).sum(0)  # (L,)
    if prototypes is not None:
        pp = torch.exp(parts["psim"] - lse[:, None])  # (B, L), weight 1
        rep = rep + (pp * (1 - yf)).sum(0)
    if kind == "jaccard":
        w = (inter / union.clamp(min=1.0)) * keep
        norm = w.sum(1, keepdim=True)
        if prototypes is not None:
            norm = norm + 1.0  # Σ_c y_ic/|y_i| = 1
        a = w / norm.clamp(min=1e-12)  # (B, B) attraction weight per pair
        share = a / inter.clamp(min=1.0)  # split over the shared labels
        att = ((share @ yf) * yf).sum(0)
        if prototypes is not None:
            att = att + (yf / n_i[:, None] / norm.clamp(min=1e-12)).sum(0)
    else:
        att = (yf / n_i[:, None]).sum(0)  # each (i, c) term carries weight 1/|y_i|
    cos = zf @ zf.T
    s_att = torch.full((L,), float("nan"))
    s_rep = torch.full((L,), float("nan"))
    for c in range(L):
        m = yf[:, c] > 0
        if m.sum() >= 2 and (~m).any():
            cm = cos[m][:, m]
            k = int(m.sum())
            s_att[c] = -((cm.sum(1) - cm.diagonal()) / (k - 1)).mean()
            s_rep[c] = cos[m][:, ~m].mean()
    return {"attraction": att.numpy(), "repulsion": rep.numpy(), "s_att": s_att.numpy(), "s_rep": s_rep.numpy(),
            "count": yf.sum(0).numpy()}


def clustering_scores(
    H: np.ndarray, Y: np.ndarray, keep_fraction: float = 0.5, max_samples: int = 10_000, seed: int = 0,
) -> dict[str, float]:
    """Silhouette and Davies–Bouldin with ABALONE's protocol (section 5.3, Appendix D).

    Each distinct label combination is a class; the combinations are ranked by frequency and the
    most frequent ``keep_fraction`` of them (at least 2) are kept, with their documents. At most
    ``max_samples`` documents (ABALONE: 1e4) are used. Embeddings are L2-normalised and compared
    with the Euclidean distance (equivalently, cosine). A class of one document has silhouette
    0 (scikit-learn's convention).
    """
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    Y = np.asarray(Y).astype(np.uint8)
    keys = np.array([r.tobytes() for r in np.packbits(Y, axis=1)])
    uniq, first, inv, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))  # by frequency, ties by first appearance
    k = max(2, int(math.ceil(keep_fraction * len(uniq))))
    kept_classes = order[:k]
    rank = np.full(len(uniq), -1)
    rank[kept_classes] = np.arange(len(kept_classes))
    lab = rank[inv]
    sel = np.flatnonzero(lab >= 0)
    if len(sel) > max_samples:
        sel = np.sort(np.random.default_rng(seed).choice(sel, max_samples, replace=False))
    X = np.asarray(H, dtype=np.float64)[sel]
    X /= np.linalg.norm(X, axis=1, keepdims=True).clip(min=1e-12)
    labels = lab[sel]
    if len(np.unique(labels)) < 2:
        return {"silhouette": float("nan"), "davies_bouldin": float("nan"), "n_docs": len(sel), "n_classes": 1}
    return {
        "silhouette": float(silhouette_score(X, labels, metric="euclidean")),
        "davies_bouldin": float(davies_bouldin_score(X, labels)),
        "n_docs": int(len(sel)),
        "n_classes": int(len(np.unique(labels))),
        "docs_fraction": float(len(np.flatnonzero(lab >= 0)) / len(lab)),
    }
