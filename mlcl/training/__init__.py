"""The one training engine: every method of the book trains through :func:`train`.

Contract: ``model(*batch)`` returns a dict of losses with
a ``"loss"`` entry (or pass ``loss_fn(model, batch) -> dict``); ``validate(model) -> float``
(higher is better) runs after each epoch in eval mode under ``no_grad``; the epoch with the best
*finite* score is restored at the end. Everything else is a :class:`TrainConfig` field:

* schedule: ``epochs`` passes over the data, or ``steps_per_epoch`` random batches per epoch
  (iteration-counted runs such as MulSupCon's 150 × 1000 steps);
* optimiser: ``"adam"``, ``"adamw"``, ``"sgd"`` (fused kernels where torch has them);
  ``lr_mult={"encoder": 0.1}`` puts parameters under a name prefix at lr × 0.1 (0 = frozen);
  ``no_decay=("bias", "norm")`` exempts 1-D and so-named parameters from weight decay;
* scheduler: ``"cosine"``, ``"cosine_restarts"``, ``"step"``, ``"onecycle"``, ``"linear"``
  (warm-up then linear decay to 0), ``"plateau"``
  (on the validation score; ``scheduler_kwargs={"mode": "min"}`` when validate returns a negated
  loss), ``scheduler_interval="epoch"|"step"``, ``warmup=k`` linear warm-up;
* ``ema=0.999``: an EMA of the weights (``torch.optim.swa_utils.AveragedModel``), validated and
  returned instead of the raw weights (``validate_ema``);
* data: ``(X, Y, …)`` arrays/tensors stay on the device and are indexed with a ``randperm`` (no
  DataLoader); a ``torch.utils.data.Dataset`` goes through a DataLoader (images, text);
  ``views=`` maps each device batch to the model's arguments (two augmented views);
* AMP (float16 + GradScaler) on CUDA, ``grad_clip``, a progress bar, DDP under ``torchrun``
  (the global ``batch_size`` is split across ranks: 2 × 64 rows = 1 × 128 rows, tested);
* ``checkpoint="run.pt"``: written every ``checkpoint_every`` epochs (atomically) and resumed
  from when it exists, exactly: weights, every buffer (MoCo queues), optimiser, scheduler,
  scaler, EMA, history, best state. It stores the configuration and a fingerprint of the data;
  resuming with others is an error, as is a corrupt file (named, with "delete it").
  Files are read with ``torch.load(weights_only=True)``.
* ``on_step=[fn(model, step)]`` runs after every optimiser step (momentum encoders, queues that
  are not updated inside ``forward``); ``callbacks=[fn(epoch, logs)]`` after each epoch.
* A NaN/inf mean loss stops training with :class:`FloatingPointError`; a NaN validation score
  never becomes the best. The loop syncs with the host once per epoch, not per step.

Example:
    >>> import torch, torch.nn.functional as F
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.encoder, self.fc = nn.Linear(5, 8), nn.Linear(8, 3)
    ...     def forward(self, x, y):
    ...         return {"loss": F.binary_cross_entropy_with_logits(self.fc(self.encoder(x).relu()), y)}
    >>> X, Y = torch.randn(64, 5), (torch.rand(64, 3) < 0.5).float()
    >>> cfg = TrainConfig(epochs=3, steps_per_epoch=4, batch_size=16, optimizer="adamw", lr=1e-2,
    ...                   lr_mult={"encoder": 0.1}, scheduler="cosine", warmup=1, ema=0.9, progress=False)
    >>> res = train(Net(), (X, Y), cfg, validate=lambda m: -float(m(X, Y)["loss"]))
    >>> len(res.history), res.steps, sorted(res.history[0])
    (3, 12, ['loss', 'lr', 'step', 'val'])

Method recipes built on it: :mod:`mlcl.training.mulsupcon` (MoCo pre-training, fine-tuning,
linear probing), :mod:`mlcl.training.cgmvae` (C-GMVAE and its baselines),
:mod:`mlcl.training.recipes` (the MLP + BCE / focal / ASL baselines every chapter uses).
"""

from mlcl.training.batching import LoaderBatches, TensorBatches, fingerprint
from mlcl.training.checkpoint import load_checkpoint, save_atomic
from mlcl.training.config import TrainConfig, TrainResult
from mlcl.training.loop import train
from mlcl.training.optim import make_optimizer, make_scheduler, param_groups
from mlcl.training.runtime import distributed, reseed, resolve_device

__all__ = [
    "LoaderBatches",
    "TensorBatches",
    "TrainConfig",
    "TrainResult",
    "distributed",
    "fingerprint",
    "load_checkpoint",
    "make_optimizer",
    "make_scheduler",
    "param_groups",
    "reseed",
    "resolve_device",
    "save_atomic",
    "train",
]
