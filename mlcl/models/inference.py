"""Batched eval-mode forward passes that return numpy: the one ``predict_proba``.

Every model of the package maps a batch to logits, or to a dict holding ``"logits"`` and other
outputs (``z``, ``g``, ``attention``, ...). Inputs are arrays / tensors ``(N, ...)`` or a dict of
token tensors ``{"input_ids": (N, T), "attention_mask": (N, T)}`` (the padding shared by a batch
is trimmed). The model is evaluated on its own device; results come back on the CPU.

Example:
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> predict_proba(net, torch.zeros(5, 3)).shape
    (5, 2)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["batched_inputs", "forward_outputs", "model_device", "predict_proba", "represent"]

Inputs = Any  # np.ndarray | Tensor | Mapping[str, Tensor]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free module)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _len(inputs: Inputs) -> int:
    return int(next(iter(inputs.values())).shape[0]) if isinstance(inputs, Mapping) else len(inputs)


def batched_inputs(inputs: Inputs, batch_size: int, device: torch.device) -> Iterator[Any]:
    """Consecutive batches of ``inputs`` on ``device`` (float32 for arrays, token dicts trimmed)."""
    n = _len(inputs)
    for s in range(0, n, batch_size):
        if isinstance(inputs, Mapping):
            b = {k: torch.as_tensor(v[s:s + batch_size]).to(device) for k, v in inputs.items()}
            if "attention_mask" in b:  # drop the padding every row of this batch shares
                t = int(b["attention_mask"].sum(1).max().clamp(min=1))
                b = {k: v[:, :t] for k, v in b.items()}
            yield b
        else:
            x = inputs[s:s + batch_size]
            yield (x.to(device) if isinstance(x, Tensor)
                   else torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device))


def _call(model: nn.Module, x: Any, **kw: Any) -> Any:
    return model(**x, **kw) if isinstance(x, Mapping) else model(x, **kw)


@torch.no_grad()
def forward_outputs(model: nn.Module, inputs: Inputs, keys: Sequence[str] | None = None,
                    batch_size: int = 256, **forward_kw: Any) -> dict[str, np.ndarray]:
    """Run ``model`` in eval mode over ``inputs``; concatenate its outputs as float numpy arrays.

    A tensor output is returned as ``{"out": ...}``; a dict output keeps the tensor entries named
    in ``keys`` (all tensor entries when None); a non-tensor entry named in ``keys`` (a token
    grid) is taken from the first batch. ``forward_kw`` go to every call (e.g.
    ``return_attention=True``). Autocast (float16) is used on CUDA.
    """
    dev = model_device(model)
    was = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    fixed: dict[str, np.ndarray] = {}  # non-tensor outputs (e.g. a token grid): the first batch's
    try:
        for x in batched_inputs(inputs, batch_size, dev):
            with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                out = _call(model, x, **forward_kw)
            out = {"out": out} if isinstance(out, Tensor) else out
            for k, v in out.items():
                if isinstance(v, Tensor) and (keys is None or k in keys):
                    parts.setdefault(k, []).append(v.detach().float().cpu().numpy())
                elif keys is not None and k in keys and v is not None:
                    fixed.setdefault(k, np.asarray(v))
    finally:
        model.train(was)
    return {**{k: np.concatenate(v) for k, v in parts.items()}, **fixed}


def predict_proba(model: nn.Module, inputs: Inputs, batch_size: int = 256) -> np.ndarray:
    r"""Probabilities :math:`\sigma(\text{logits})` ``(N, L)``, eval mode, on the model's device."""
    out = forward_outputs(model, inputs, ("out", "logits"), batch_size)
    logits = out.get("logits", out.get("out"))
    if logits is None:
        raise ValueError("the model must return logits or a dict with 'logits'")
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def represent(body: nn.Module, inputs: Inputs, batch_size: int = 256) -> np.ndarray:
    """The representation ``body(x)`` of every input (eval mode), e.g. before a projection head."""
    return forward_outputs(body, inputs, ("out",), batch_size)["out"]
