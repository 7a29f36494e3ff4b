"""Where a run executes: the one device choice of the package, torchrun's process group, seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.distributed as dist


def distributed() -> tuple[int, int]:
    """(rank, world_size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_device(name: str | torch.device | None = "auto", rank: int | None = None) -> torch.device:
    """``"auto"``/None → CUDA when available, else CPU; under DDP ``"cuda"`` → this rank's GPU.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available: use device='cpu' or 'auto'")
    if name == "cuda" and dist.is_initialized():
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', rank or 0))}"
    return torch.device(name)


def reseed(seed: int, epoch: int = 0, rank: int = 0) -> None:
    """Seed every RNG from (seed, epoch, rank): what makes a resumed epoch identical."""
    s = (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31 - 1)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)  # also seeds every CUDA device
