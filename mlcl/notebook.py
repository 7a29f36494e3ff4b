"""What the first cells of every chapter call: ``ctx = setup(profile, seeds, device)``.

The notebook's own second cell installs ``mlcl`` on Colab before importing it (an import cannot
install its own package); ``setup`` then fixes every seed, picks the device, starts the wall
clock used in the provenance of saved results, and sets a plot style.

Example:
    >>> ctx = setup(profile="smoke", seeds=1)   # doctest: +SKIP
    >>> ctx.save("demo", records)               # results/smoke/demo.json  # doctest: +SKIP
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcl import results as _results


def on_colab() -> bool:
    return "google.colab" in sys.modules


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def pick_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when available else ``"cpu"``; explicit values are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} but CUDA is not available: use device='cpu' or 'auto'")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return device


@dataclass
class Context:
    profile: str
    seeds: list[int]
    device: str
    started: float = field(default_factory=time.perf_counter)

    @property
    def is_smoke(self) -> bool:
        return self.profile == "smoke"

    def pick(self, smoke: Any, full: Any, paper_scale: Any | None = None) -> Any:
        """A setting per profile: ``ctx.pick(smoke=5, full=200)``."""
        if self.profile == "smoke":
            return smoke
        if self.profile == "paper-scale" and paper_scale is not None:
            return paper_scale
        return full

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def profile_note(self, *experiments: str) -> Any:
        """A note for the top of a chapter: which profile executed this page, and where the
        committed ``full`` results that the text discusses come from (commit, date, seeds, time)."""
        from IPython.display import Markdown

        lines = [f"**This page was executed with profile `{self.profile}`** (seeds {self.seeds}, device "
                 f"`{self.device}`)."]
        if self.profile != "full":
            lines.append(" Its tables and figures come from this run; the numbers quoted in the text are "
                         "those of the committed `full` run:")
        rows = []
        for exp in experiments:
            try:
                prov, df = _results.load(exp, "full")
            except FileNotFoundError:
                rows.append(f"- `results/full/{exp}.json`: not computed yet (`mlcl reproduce --profile full`)")
                continue
            commit = (prov.get("git_commit") or "unknown")[:10]
            rows.append(f"- `results/full/{exp}.json`: {len(df)} records, commit `{commit}`"
                        f"{' (uncommitted changes)' if prov.get('git_dirty') else ''}, {prov.get('date', '?')}, "
                        f"seeds {prov.get('seeds')}, {prov.get('wall_seconds', 0) / 60:.1f} min on "
                        f"{prov.get('device', '?')}")
        if self.profile == "full" and rows:
            lines.append(" Committed results:")
        return Markdown("".join(lines) + ("\n\n" + "\n".join(rows) if rows else ""))

    def save(self, experiment: str, records: Iterable[Mapping[str, Any]], extra: Mapping[str, Any] | None = None,
             seeds: Sequence[int] | None = None) -> Path:
        """Save tidy records to ``results/<profile>/<experiment>.json`` with provenance."""
        records = list(records)
        path = _results.save(experiment, records, profile=self.profile, seeds=self.seeds if seeds is None else seeds,
                             wall_seconds=self.elapsed(), device=self.device, extra=extra)
        print(f"saved {len(records)} records -> {path}")
        return path


def setup(profile: str = "smoke", seeds: int | Sequence[int] = 3, device: str = "auto",
          seed_offset: int = 0) -> Context:
    """Prepare a chapter run. ``seeds`` is a count (→ ``[0, …, n-1]``) or an explicit list."""
    if profile not in _results.PROFILES:
        raise ValueError(f"profile must be one of {_results.PROFILES}, got {profile!r}")
    seed_list = [seed_offset + i for i in range(int(seeds))] if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must be a positive count or a non-empty list")
    seed_everything(seed_list[0])
    dev = pick_device(device)
    if dev == "cpu" and os.environ.get("MLCL_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["MLCL_THREADS"]))
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (6.4, 3.6),
                                    "axes.spines.top": False, "axes.spines.right": False})
    except ImportError:  # pragma: no cover
        pass
    print(f"mlcl setup: profile={profile} seeds={seed_list} device={dev}")
    return Context(profile=profile, seeds=seed_list, device=dev)
