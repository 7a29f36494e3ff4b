r"""ABALONE's contrastive pre-training objective (Audibert et al., 2024): a body, the projection
head, optional label prototypes, and optionally a MoCo key encoder with a labelled queue.

``model(x, y)`` returns ``{"loss": ...}`` (the contract of :mod:`mlcl.training`); in training
mode each call first moves the key encoder towards the query network (θ_k ← m θ_k + (1 − m) θ_q)
and, after computing the loss against the current queue, enqueues the batch's keys — so the
whole state (weights, key encoder, queue, prototypes) is in ``state_dict`` and resumes exactly.

==================  =========  ===========  ==================================================
method              queue      prototypes   loss (:mod:`mlcl.losses`)
==================  =========  ===========  ==================================================
``L_Base``          no         no           ``JaccardSupConLoss`` (Jaccard weights outside log)
``L_BQueue``        512 + MoCo no           same, references = batch ∪ queue of momentum keys
``L_BQProto``       512 + MoCo yes          same + L prototypes as references with one label each
``L_MSC``           512 + MoCo yes          ``MSCLoss`` (eq. 2–5, β-weighted repulsion)
``L_MSC-inbatch``   no         yes          L_MSC as the authors' code runs it (no queue)
==================  =========  ===========  ==================================================

References are the batch (each anchor's own row removed) plus the queue (plus, for L_BQProto,
the prototypes c_j with labels e_j: the Jaccard weight of a prototype is then
:math:`|y_i\cap\{j\}|/|y_i\cup\{j\}| = 1/|y_i|` for j ∈ y_i, and 1 in the denominator).
``mlcl.losses`` removes self-pairs only when the batch is its own reference set, so the batch
and the extra references are passed *as anchors too* and only the batch's rows are kept
(``reduction="none"``); the dropped rows contribute nothing to the loss or the gradients. This
costs (B + K)² instead of B·(B + K) similarities; a batch-plus-references option in
``mlcl.losses.ContrastiveInputs`` would remove the overhead.

Example:
    >>> import torch
    >>> net = AbaloneModel(torch.nn.Linear(6, 8), hidden=8, num_labels=3, method="L_MSC", queue_size=16)
    >>> out = net(torch.randn(4, 6), torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]]))
    >>> sorted(out)
    ['loss', 'queue_fill']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcl.losses import JaccardSupConLoss, MSCLoss
from mlcl.models.heads import Projector, WithHead
from mlcl.models.moco import LabelledQueue, MomentumEncoder

__all__ = ["METHODS", "AbaloneModel", "abalone_loss"]

#: queue / prototypes / loss kind of every pre-training method.
METHODS: dict[str, dict[str, Any]] = {
    "L_Base": {"queue": False, "prototypes": False, "kind": "jaccard"},
    "L_BQueue": {"queue": True, "prototypes": False, "kind": "jaccard"},
    "L_BQProto": {"queue": True, "prototypes": True, "kind": "jaccard"},
    "L_MSC": {"queue": True, "prototypes": True, "kind": "msc"},
    "L_MSC-inbatch": {"queue": False, "prototypes": True, "kind": "msc"},
}


def abalone_loss(q: Tensor, y: Tensor, *, kind: str, queue_keys: Tensor | None = None,
                 queue_labels: Tensor | None = None, prototypes: Tensor | None = None,
                 temperature: float = 0.1, beta: float = 0.1, alpha: float = 1.0) -> Tensor:
    """ABALONE's losses over references (batch \\ self) ∪ queue (∪ prototypes), through
    :class:`mlcl.losses.JaccardSupConLoss` (``kind="jaccard"``) and :class:`mlcl.losses.MSCLoss`
    (``kind="msc"``, prototypes required). Mean over the anchors with a positive."""
    if kind not in ("jaccard", "msc"):
        raise ValueError(f"kind must be 'jaccard' or 'msc', got {kind!r}")
    if kind == "msc" and prototypes is None:
        raise ValueError("kind='msc' needs prototypes (L_MSC always has them)")
    B, L = y.shape
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32  # fp16 queries under autocast too
    yb = (y != 0).to(dt)
    rows, labels = [q.to(dt)], [yb]
    if queue_keys is not None and queue_keys.shape[0] > 0:
        rows.append(queue_keys.to(dt))
        labels.append((queue_labels != 0).to(dt))
    if kind == "jaccard" and prototypes is not None:  # references with one label each
        rows.append(prototypes.to(dt))
        labels.append(torch.eye(L, dtype=dt, device=q.device))
    z, yall = torch.cat(rows), torch.cat(labels)
    if kind == "jaccard":
        per = JaccardSupConLoss(temperature, reduction="none")(z, yall)[:B]
        # an anchor counts when another reference shares one of its labels (N(i) > 0)
        valid = (yb @ yall.sum(0) - yb.sum(1)) > 0
    else:
        per = MSCLoss(temperature, beta, alpha, reduction="none")(z, yall, prototypes)[:B]
        valid = yb.sum(1) > 0
    return per.sum() / valid.sum().clamp(min=1).to(per.dtype)


class AbaloneModel(nn.Module):
    """Body + projection head (+ prototypes, + key encoder and queue) for one ABALONE method.

    Args:
        body: maps a batch (tensor, or token dict passed as keywords) to ``(B, hidden)``.
        hidden: the body's output width.
        num_labels: L.
        method: a key of :data:`METHODS`.
        proj_dim: the head's output (256); temperature τ (0.1); beta β (0.1); alpha α (1.0);
        queue_size (512) and momentum (0.999) of the MoCo key encoder, for queue methods.
    """

    def __init__(self, body: nn.Module, hidden: int, num_labels: int, method: str = "L_MSC", *,
                 proj_dim: int = 256, temperature: float = 0.1, beta: float = 0.1, alpha: float = 1.0,
                 queue_size: int = 512, momentum: float = 0.999) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        spec = METHODS[method]
        self.method, self.kind = method, spec["kind"]
        self.temperature, self.beta, self.alpha = temperature, beta, alpha
        self.body, self.head = body, Projector(hidden, hidden, proj_dim)
        self.prototypes = (nn.Parameter(F.normalize(torch.randn(num_labels, proj_dim), dim=1))
                           if spec["prototypes"] else None)
        self.key_net = MomentumEncoder(WithHead(body, self.head), momentum) if spec["queue"] else None
        self.queue = LabelledQueue(queue_size, proj_dim, num_labels) if spec["queue"] else None

    def net(self) -> nn.Module:
        """The query network ``head ∘ body``."""
        return WithHead(self.body, self.head)

    def _call(self, module: nn.Module, x: Any) -> Tensor:
        return module(**x) if isinstance(x, Mapping) else module(x)

    def forward(self, x: Any, y: Tensor) -> dict[str, Tensor]:
        if self.training and self.key_net is not None:
            self.key_net.update(self.net())
        q = self._call(self.net(), x)
        queue = self.queue
        loss = abalone_loss(q, y, kind=self.kind,
                            queue_keys=queue.keys if queue is not None else None,
                            queue_labels=queue.labels if queue is not None else None,
                            prototypes=self.prototypes, temperature=self.temperature, beta=self.beta,
                            alpha=self.alpha)
        out = {"loss": loss}
        if queue is not None:
            if self.training:
                k = self._call(self.key_net, x)
                queue.enqueue(F.normalize(k.float(), dim=1), y)
            out["queue_fill"] = torch.tensor(float(len(queue)), device=loss.device)
        return out
