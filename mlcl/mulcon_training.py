r"""MulCon training: step 1 BCE, step 2 BCE + γ·LLCL with a small learning rate (eq. 7–9).

A run is a list of :class:`StageConfig` — one per step. A stage sets the loss weights
(``bce``, ``llcl`` = γ, ``supcon`` for the image-level baseline), the number of augmented views
per image (2 in step 2: the two views are stacked as 2B images for LLCL, as in the authors' code),
the optimiser (Adam / AdamW / SGD with momentum), the schedule (1-cycle, step, cosine, none), the
optional EMA of the weights (evaluated instead of the raw weights at the end, as the authors do)
and AMP on CUDA.

Why a loop of its own rather than :func:`mlcl.train.train`: MulCon needs a per-step EMA, SGD
with a step schedule, a per-batch 1-cycle schedule and two augmented views in step 2, which the
shared loop does not have; the conventions are the same (seeded, deterministic on CPU, returns
the per-epoch history).

Presets: :data:`DIGITS` (the offline multi-label digits, CPU-sized) and :data:`PAPER_SCALE`
(the authors' MS-COCO settings, ``../shared/reference/official_code_notes.md``): step 1 Adam,
1-cycle, max lr 2e-4, batch 32, 25 epochs; step 2 SGD momentum 0.9, weight decay 1e-4, lr 0.01
×0.1 every 20 epochs, batch 24 × 2 views, EMA 0.9997, AMP, γ = 0.5, τ = 0.2.

The collapse measures of ABALONE Appendix F live here too (:func:`collapse_measures`,
:func:`linear_probe_map`), so the notebook and the tests use the same code.

Example:
    >>> import numpy as np, torch
    >>> from mlcl.models.mulcon import LabelLevelNet
    >>> X = np.random.rand(32, 1, 32, 32).astype("float32"); Y = (np.random.rand(32, 10) < .3)
    >>> net = LabelLevelNet(10, dim=32, width=16)
    >>> hist = train_mulcon(net, X, Y, [StageConfig(epochs=1, batch_size=16)], progress=False)
    >>> probs = predict(net, X)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcl.losses import LabelLevelContrastiveLoss, SupConLoss

__all__ = [
    "StageConfig",
    "DIGITS",
    "PAPER_SCALE",
    "augment_digits",
    "mulcon_loss",
    "train_stage",
    "train_mulcon",
    "predict",
    "embed",
    "collapse_measures",
    "linear_probe_map",
    "attention_localisation",
    "retrieval_at_k",
    "within_label_retrieval",
    "nearest_labels",
]


@dataclass
class StageConfig:
    """One training step of MulCon (or one baseline run).

    ``bce``, ``llcl`` (γ of eq. 9) and ``supcon`` (image-level SupCon, ANY positives) weight the
    losses; ``views`` augmented views per image (LLCL / SupCon see all 2B rows, BCE is averaged
    over both views). ``ema`` is the decay of an exponential moving average of the weights
    (None: off); when set, the EMA weights replace the raw ones at the end of the stage.
    ``scheduler``: None, ``"onecycle"`` (per batch, max lr = ``lr``), ``"step"`` (×``step_gamma``
    every ``step_size`` epochs) or ``"cosine"`` (per epoch, to 0).
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

    def replace(self, **kw: Any) -> StageConfig:
        return replace(self, **kw)


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
                llcl=0.5, temperature=0.2, ema=0.9997, augment=False),
]


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


def _optimizer(model: nn.Module, st: StageConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if st.optimizer == "adam":
        return torch.optim.Adam(params, lr=st.lr, weight_decay=st.weight_decay)
    if st.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=st.lr, weight_decay=st.weight_decay)
    if st.optimizer == "sgd":
        return torch.optim.SGD(params, lr=st.lr, momentum=st.momentum, weight_decay=st.weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {st.optimizer!r}")


class _EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.state[k].copy_(v)


def _batches(data: Any, batch_size: int, gen: torch.Generator, device: torch.device):
    """Yield (x, y) from (X, Y) arrays (shuffled with ``gen``) or from a DataLoader."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, Y = data
        n = len(X)
        perm = torch.randperm(n, generator=gen).numpy()
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            if len(idx) < 2:
                continue  # contrastive losses need ≥ 2 rows; BatchNorm too
            yield (torch.as_tensor(X[idx], dtype=torch.float32, device=device),
                   torch.as_tensor(np.asarray(Y[idx]), dtype=torch.float32, device=device))
    else:  # a DataLoader yielding (x, y) or (x_view1, x_view2, y)
        for b in data:
            yield tuple(t.to(device, non_blocking=True) for t in b)


def _device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_stage(model: nn.Module, data: Any, stage: StageConfig, *, seed: int = 0,
                device: str | torch.device = "cpu",
                augment_fn: Callable[[Tensor, torch.Generator], Tensor] | None = augment_digits,
                callback: Callable[[int, nn.Module], dict[str, float]] | None = None,
                progress: bool = True, desc: str = "stage") -> list[dict[str, float]]:
    """Train ``model`` for one stage; return one dict per epoch (mean losses, lr, seconds and
    whatever ``callback(epoch, model)`` returns — it is called in eval mode under ``no_grad``).

    ``data``: ``(X, Y)`` arrays, or a DataLoader yielding ``(x, y)`` (augmented by ``augment_fn``)
    or ``(x_view1, x_view2, y)`` (views made by the loader: pass ``augment_fn=None``).
    """
    dev = _device(device)
    model.to(dev)
    gen = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    torch.manual_seed(seed)
    opt = _optimizer(model, stage)
    n_batches = None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        n = len(data[0])
        n_batches = sum(1 for s in range(0, n, stage.batch_size) if min(stage.batch_size, n - s) >= 2)
    else:
        n_batches = len(data)
    if stage.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=stage.lr,
                                                    total_steps=max(stage.epochs * n_batches, 1))
    elif stage.scheduler == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, stage.step_size, stage.step_gamma)
    elif stage.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(stage.epochs, 1))
    elif stage.scheduler is None:
        sched = None
    else:
        raise ValueError(f"unknown scheduler {stage.scheduler!r}")
    use_amp = stage.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = _EMA(model, stage.ema) if stage.ema else None
    llcl_fn = LabelLevelContrastiveLoss(stage.temperature)
    supcon_fn = SupConLoss(stage.supcon_temperature, positives="any")
    history: list[dict[str, float]] = []
    for epoch in range(stage.epochs):
        t0 = time.perf_counter()
        model.train()
        sums: dict[str, float] = {}
        nb = 0
        for batch in _batches(data, stage.batch_size, gen, dev):
            if len(batch) == 3:
                views, y = [batch[0], batch[1]][: stage.views], batch[2]
            else:
                x, y = batch
                if augment_fn is not None and stage.augment:
                    views = [augment_fn(x, gen) for _ in range(stage.views)]
                else:
                    views = [x] * stage.views
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                losses = mulcon_loss(model, views, y, stage, llcl_fn, supcon_fn)
            opt.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            if stage.grad_clip is not None:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
            scaler.step(opt)
            scaler.update()
            if ema is not None:
                ema.update(model)
            if stage.scheduler == "onecycle":
                sched.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            nb += 1
        logs = {k: v / max(nb, 1) for k, v in sums.items()}
        logs["lr"] = opt.param_groups[0]["lr"]
        logs["epoch"] = epoch
        if sched is not None and stage.scheduler != "onecycle":
            sched.step()
        logs["seconds"] = time.perf_counter() - t0
        if callback is not None:
            model.eval()
            with torch.no_grad():
                logs.update(callback(epoch, model) or {})
        history.append(logs)
        if progress:
            msg = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k not in ("epoch",))
            print(f"[{desc}] epoch {epoch + 1}/{stage.epochs} {msg}", flush=True)
    if ema is not None:
        model.load_state_dict(ema.state)
    model.eval()
    return history


def train_mulcon(model: nn.Module, X: Any, Y: Any = None, stages: Sequence[StageConfig] = DIGITS, *,
                 seed: int = 0, device: str | torch.device = "cpu",
                 augment_fn: Callable | None = augment_digits,
                 callback: Callable[[int, nn.Module], dict[str, float]] | None = None,
                 progress: bool = True) -> list[dict[str, float]]:
    """Run the stages in order (two-step MulCon: ``DIGITS`` or ``PAPER_SCALE``); the history rows
    carry ``stage`` (0-based) and a global ``step_epoch``. ``X`` may be a DataLoader (``Y=None``)."""
    data = X if Y is None else (X, Y)
    out: list[dict[str, float]] = []
    for s, st in enumerate(stages):
        cb = None
        if callback is not None:
            base = len(out)
            cb = (lambda e, m, base=base: callback(base + e, m))  # noqa: E731
        hist = train_stage(model, data, st, seed=seed + 1000 * s, device=device, augment_fn=augment_fn,
                           callback=cb, progress=progress, desc=f"step {s + 1}")
        for h in hist:
            h["stage"] = s
            h["step_epoch"] = len(out)
            out.append(h)
    return out


# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def embed(model: nn.Module, X: np.ndarray, batch_size: int = 256, device: str | torch.device = "cpu",
          attention: bool = False) -> dict[str, np.ndarray]:
    """Eval-mode outputs over ``X`` as numpy: ``probs``, ``z`` and (label-level nets) ``g``,
    optionally ``attention`` averaged over heads ``(N, L, h·w)`` and ``grid``."""
    dev = _device(device)
    model.to(dev).eval()
    parts: dict[str, list[np.ndarray]] = {}
    grid = None
    for s in range(0, len(X), batch_size):
        x = torch.as_tensor(X[s:s + batch_size], dtype=torch.float32, device=dev)
        out = model(x, return_attention=attention)
        parts.setdefault("probs", []).append(torch.sigmoid(out["logits"].float()).cpu().numpy())
        for k in ("z", "g", "h"):
            if k in out:
                parts.setdefault(k, []).append(out[k].float().cpu().numpy())
        if attention and out.get("attention") is not None:
            parts.setdefault("attention", []).append(out["attention"].float().mean(1).cpu().numpy())
            grid = out["grid"]
    res = {k: np.concatenate(v) for k, v in parts.items()}
    if grid is not None:
        res["grid"] = np.asarray(grid)
    return res


def predict(model: nn.Module, X: np.ndarray, batch_size: int = 256,
            device: str | torch.device = "cpu") -> np.ndarray:
    """Probabilities ``σ(logits)`` ``(N, L)``."""
    return embed(model, X, batch_size, device)["probs"]


# ----------------------------------------------------------------------------------------------
# the collapse measures (ABALONE Appendix F / Graf et al. 2021)
def collapse_measures(z: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    r"""Neural-collapse measures of label-level embeddings ``z (N, L, d)`` under labels ``Y``.

    Over the **active** pairs ``{z_ij : y_ij = 1}`` (the only rows LLCL sees), with label means
    ``μ_j`` and global mean ``μ``:

    * ``within_total`` = Σ_j Σ_{i: y_ij=1} ‖z_ij − μ_j‖² / Σ_{(i,j) active} ‖z_ij − μ‖²
      (0 = every label collapsed to a point);
    * ``mean_cos`` / ``max_cos_dev``: mean pairwise cosine of the (centred at the origin, i.e. raw)
      label means and the largest |cos − (−1/(L−1))| (a regular simplex centred at the origin has
      every pairwise cosine −1/(L−1));
    * ``mean_norm``: mean ‖μ_j‖ (1 when each label is a single point on the sphere);
    * ``input_dependence`` = Σ_j Σ_i ‖z_ij − z̄_j‖² / Σ_{i,j} ‖z_ij − z̄‖² over **all** pairs, active
      or not (how much z_·j still varies with the image);
    * ``active_inactive_gap``: mean over labels of ‖mean of active z_·j − mean of inactive z_·j‖
      (≈ 0 when the embedding no longer depends on whether the label is present).
    """
    z = np.asarray(z, dtype=np.float64)
    Y = np.asarray(Y).astype(bool)
    N, L, d = z.shape
    act = [z[Y[:, j], j] for j in range(L)]
    present = [j for j in range(L) if len(act[j]) > 0]
    mus = np.stack([act[j].mean(0) for j in present])
    allact = np.concatenate([act[j] for j in present])
    within = sum(((act[j] - act[j].mean(0)) ** 2).sum() for j in present)
    total = ((allact - allact.mean(0)) ** 2).sum()
    mn = mus / np.maximum(np.linalg.norm(mus, axis=1, keepdims=True), 1e-12)
    cos = mn @ mn.T
    off = cos[~np.eye(len(present), dtype=bool)]
    target = -1.0 / (L - 1)
    zbar_j = z.mean(0, keepdims=True)
    dep = ((z - zbar_j) ** 2).sum() / max(((z - z.reshape(-1, d).mean(0)) ** 2).sum(), 1e-12)
    gaps = [np.linalg.norm(z[Y[:, j], j].mean(0) - z[~Y[:, j], j].mean(0))
            for j in present if (~Y[:, j]).any()]
    return {
        "within_total": float(within / max(total, 1e-12)),
        "mean_cos": float(off.mean()) if off.size else float("nan"),
        "max_cos_dev": float(np.abs(off - target).max()) if off.size else float("nan"),
        "simplex_cos": float(target),
        "mean_norm": float(np.linalg.norm(mus, axis=1).mean()),
        "input_dependence": float(dep),
        "active_inactive_gap": float(np.mean(gaps)) if gaps else float("nan"),
    }


def linear_probe_map(z_train: np.ndarray, Y_train: np.ndarray, z_test: np.ndarray, Y_test: np.ndarray,
                     C: float = 1.0, per_label: bool = True) -> float:
    """mAP of logistic-regression probes on frozen embeddings.

    ``per_label=True``: label j's probe sees only ``z_·j`` (its own label-level embedding, what
    MulCon's per-label classifier sees); otherwise every probe sees the flattened ``z_i``.
    """
    from sklearn.linear_model import LogisticRegression

    from mlcl.metrics import mean_average_precision

    Ytr, Yte = np.asarray(Y_train).astype(int), np.asarray(Y_test).astype(int)
    N, L = Ytr.shape
    scores = np.zeros(Yte.shape, dtype=np.float64)
    flat_tr = z_train.reshape(len(z_train), -1)
    flat_te = z_test.reshape(len(z_test), -1)
    for j in range(L):
        a, b = (z_train[:, j], z_test[:, j]) if (per_label and z_train.ndim == 3) else (flat_tr, flat_te)
        if Ytr[:, j].min() == Ytr[:, j].max():
            scores[:, j] = Ytr[0, j]
            continue
        clf = LogisticRegression(C=C, max_iter=500)
        clf.fit(a, Ytr[:, j])
        scores[:, j] = clf.predict_proba(b)[:, 1]
    return float(mean_average_precision(Yte, scores))


# ----------------------------------------------------------------------------------------------
def attention_localisation(attention: np.ndarray, grid: Sequence[int], boxes: Sequence[np.ndarray],
                           Y: np.ndarray, image_size: Sequence[int]) -> dict[str, float]:
    """How well each present label's attention (``(N, L, h·w)``, heads averaged) finds its digit.

    For every (image, present label): ``pointing`` = 1 when the most-attended token's cell
    overlaps the digit's box; ``mass`` = attention mass on tokens whose cell overlaps the box;
    ``chance_mass`` = the fraction of tokens overlapping it (the mass of a uniform attention).
    """
    h, w = int(grid[0]), int(grid[1])
    H, W = int(image_size[0]), int(image_size[1])
    sy, sx = H / h, W / w
    hits, mass, chance = [], [], []
    for i, b in enumerate(boxes):
        for c, y0, x0, y1, x1, _ in np.asarray(b).reshape(-1, 6):
            if not Y[i, c]:
                continue
            ty0, ty1 = int(np.floor(y0 / sy)), int(np.ceil(y1 / sy))
            tx0, tx1 = int(np.floor(x0 / sx)), int(np.ceil(x1 / sx))
            m = np.zeros((h, w), dtype=bool)
            m[ty0:ty1, tx0:tx1] = True
            a = attention[i, c].reshape(h, w)
            hits.append(bool(m.reshape(-1)[int(a.argmax())]))
            mass.append(float(a[m].sum() / max(a.sum(), 1e-12)))
            chance.append(float(m.mean()))
    return {"pointing": float(np.mean(hits)), "mass": float(np.mean(mass)),
            "chance_mass": float(np.mean(chance)), "n": len(hits)}


def retrieval_at_k(emb: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (3, 5, 10, 15, 20)) -> dict[str, float]:
    """MulCon Appendix A.4 / Table 6: ``emb (N, d)`` are the active label-level embeddings,
    ``labels (N,)`` their label. For each embedding, the others ranked by cosine similarity;
    ``P@k = TP@k / k`` and ``R@k = TP@k / min(k, #relevant)`` (the paper's definition, which equals
    P@k whenever a label has ≥ k other embeddings)."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    order = np.argsort(-sim, axis=1, kind="stable")
    n_rel = same.sum(1)
    out = {}
    for k in ks:
        tp = np.take_along_axis(same, order[:, :k], axis=1).sum(1)
        out[f"P@{k}"] = float(np.mean(tp / k))
        out[f"R@{k}"] = float(np.mean(tp / np.maximum(np.minimum(k, n_rel), 1)))
    return out


def within_label_retrieval(emb: np.ndarray, Y: np.ndarray, ks: Sequence[int] = (3, 5, 10, 20)) -> dict[str, float]:
    """Retrieval **within a label**: for every present pair (i, j), rank the embeddings ``emb[k, j]``
    of all other images k under the same label j (present or not) by cosine similarity; relevant =
    label j present in image k. ``P@k`` averaged over the present pairs. Unlike
    :func:`retrieval_at_k`, the label identity carried by the label query cannot answer it."""
    N, L, _ = emb.shape
    Y = np.asarray(Y).astype(bool)
    e = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    out = {f"label_P@{k}": [] for k in ks}
    for j in range(L):
        q = np.flatnonzero(Y[:, j])
        if len(q) < 2:
            continue
        sim = e[q, j] @ e[:, j].T  # (|q|, N)
        sim[np.arange(len(q)), q] = -np.inf
        order = np.argsort(-sim, axis=1, kind="stable")
        for k in ks:
            out[f"label_P@{k}"].extend(Y[order[:, :k], j].mean(1))
    return {k: float(np.mean(v)) for k, v in out.items()}


def nearest_labels(emb: np.ndarray, labels: np.ndarray, num_labels: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """MulCon Table 7: each label's ``k`` nearest labels by cosine between label means of the
    active label-level embeddings. Returns ``(nearest (L, k), cosine matrix (L, L))``."""
    mus = np.stack([emb[labels == j].mean(0) if (labels == j).any() else np.zeros(emb.shape[1])
                    for j in range(num_labels)])
    mn = mus / np.maximum(np.linalg.norm(mus, axis=1, keepdims=True), 1e-12)
    cos = mn @ mn.T
    c2 = cos.copy()
    np.fill_diagonal(c2, -np.inf)
    return np.argsort(-c2, axis=1, kind="stable")[:, :k], cos


def stage_dict(stages: Sequence[StageConfig]) -> list[dict[str, Any]]:
    """The stages as plain dicts (for provenance)."""
    return [asdict(s) for s in stages]



