"""The two-layer projection head of SupCon, used by MulCon and ABALONE.

``Linear(d, hidden) – ReLU – Linear(hidden, out)``: the contrastive loss sees its (normalised)
output; it is discarded after contrastive training (probes and fine-tuning use its input).
MulSupCon's head differs (BatchNorm and dropout, normalised output): it is
:class:`mlcl.models.mulsupcon.ProjectionHead`.

Example:
    >>> import torch
    >>> Projector(8, 16, 4)(torch.zeros(2, 8)).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["Projector", "WithHead"]


class Projector(nn.Sequential):
    """``Linear(dim, hidden) – ReLU – Linear(hidden, out)``; outputs are L2-normalised by the caller."""

    def __init__(self, dim: int, hidden: int, out: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


class WithHead(nn.Module):
    """``head(body(*args, **kwargs))``: unlike ``nn.Sequential``, the body receives keyword inputs
    (a text encoder's ``input_ids=..., attention_mask=...``). ``body`` / ``head`` stay reachable."""

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body, self.head = body, head

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.head(self.body(*args, **kwargs))
