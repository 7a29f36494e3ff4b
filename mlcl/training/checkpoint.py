"""Checkpoints that are safe to resume from: atomic writes, ``weights_only`` loads, and a check
that the run being resumed is the one that wrote them (same configuration, same data)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from mlcl.training.config import RESUME_FREE, TrainConfig


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file, then rename: a kill mid-write never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)``: only tensors and plain Python values are accepted, so a
    crafted file cannot run code. A corrupt or truncated file raises an error naming it."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise RuntimeError(f"checkpoint {path} holds objects other than tensors and plain values (refused by "
                           f"torch.load(weights_only=True): {e}). If you did not write it, delete it; this "
                           "package writes only tensors and plain values.") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise RuntimeError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); delete it "
                           "to train from the start.") from e


def config_json(cfg: TrainConfig) -> str:
    """The configuration as stored in a checkpoint (JSON: plain values only)."""
    return json.dumps(cfg.to_dict(), sort_keys=True, default=str)


def check_resumable(ck: dict[str, Any], cfg: TrainConfig, data_fingerprint: str, path: str | Path) -> None:
    """Raise when ``ck`` was written by another configuration or on other data."""
    old, new = json.loads(ck["config"]), json.loads(config_json(cfg))
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if k not in RESUME_FREE and old.get(k) != new.get(k)]
    if diff:
        raise ValueError(f"checkpoint {path} was written with a different configuration ({'; '.join(diff)}). "
                         "Resume with the original configuration, or delete the checkpoint (or choose "
                         "another path) to start a new run.")
    if ck["fingerprint"] != data_fingerprint:
        raise ValueError(f"checkpoint {path} was written for different training data (fingerprint "
                         f"{ck['fingerprint']} != {data_fingerprint}). Resume on the same data, or delete the "
                         "checkpoint (or choose another path) to start a new run.")
