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
    """``"auto"`` → ``"cuda"`` when available else ``"cpu"``; explicit values are checked
    (:func:`mlcl.training.resolve_device`, the one device choice)."""
    from mlcl.training.runtime import resolve_device

    return str(resolve_device(device))


class SavedPath(type(Path())):  # the concrete PosixPath/WindowsPath: Path cannot be subclassed before 3.12
    """The absolute path of a saved results file (every ``Path`` method works) whose repr is its
    name in the book, ``results/<profile>/<experiment>.json``: a page never shows the machine's
    path or a ``PosixPath(...)``. In a notebook it displays nothing (``Context.save`` already
    printed where it went).

    Example:
        >>> p = SavedPath("/somewhere/results/smoke/demo.json")
        >>> p, p.is_absolute()
        (results/smoke/demo.json, True)
    """

    @property
    def name_in_book(self) -> str:
        return "/".join(("results", *self.parts[-2:]))

    def __repr__(self) -> str:  # paths derived from it (``.parent``) on Python < 3.12 look like paths
        return self.name_in_book if self.suffix == ".json" else repr(Path(self))

    def _ipython_display_(self) -> None:
        pass

    def with_segments(self, *segments: Any) -> Path:  # Python >= 3.12: derived paths are plain
        return Path(*segments)


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
        if self.profile == "full":  # the book replaces this by the execution's own stamp
            return Markdown(lines[0] + " Every number on it comes from this run.")
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
        return Markdown("".join(lines) + ("\n\n" + "\n".join(rows) if rows else ""))

    def save(self, experiment: str, records: Iterable[Mapping[str, Any]], extra: Mapping[str, Any] | None = None,
             seeds: Sequence[int] | None = None) -> SavedPath:
        """Save tidy records to ``results/<profile>/<experiment>.json`` with provenance.

        Prints one line naming the file by that name (never the builder's absolute path) and
        returns the absolute :class:`SavedPath`, which a cell ending in ``ctx.save(...)`` does not
        display a second time."""
        records = list(records)
        path = _results.save(experiment, records, profile=self.profile, seeds=self.seeds if seeds is None else seeds,
                             wall_seconds=self.elapsed(), device=self.device, extra=extra)
        saved = SavedPath(path)
        print(f"saved {len(records)} records -> {saved.name_in_book}")
        return saved


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
    plot_style()
    table_style()
    print(f"mlcl setup: profile={profile} seeds={seed_list} device={dev}")
    return Context(profile=profile, seeds=seed_list, device=dev)


#: The book's text column is 688 CSS px wide at a 1280 px window (sphinx-book-theme): a figure
#: drawn 6.8 in wide at 100 dpi is shown at its own size, so its text keeps the size set here.
FIGURE_WIDTH_IN = 6.8
#: Smallest font (pt) in a figure: 9 pt at 100 dpi is 12.5 px, CSS 9 pt is 12 px.
MIN_FONT_PT = 9


def plot_style() -> None:
    """Matplotlib defaults for the book: a figure as wide as the text column, no text under 9 pt.

    A figure wider than :data:`FIGURE_WIDTH_IN` is shrunk by the page, and its text with it
    (``python -m mlcl.pagecheck`` flags it): stack or split multi-panel figures instead. Legends
    default to the best spot with an opaque frame, so that a legend over data still reads."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - the book extra brings matplotlib
        return
    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (FIGURE_WIDTH_IN, 3.6),
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "figure.titlesize": 11,
        "xtick.labelsize": MIN_FONT_PT, "ytick.labelsize": MIN_FONT_PT, "legend.fontsize": MIN_FONT_PT,
        "legend.title_fontsize": MIN_FONT_PT, "legend.framealpha": 0.9,
        "axes.spines.top": False, "axes.spines.right": False,
    })


def _number(x: float) -> str:
    """One cell of a float column: integral values as integers (counts stored as float), tiny ones
    in scientific notation (errors of 1e-12 must not read 0.000), the rest at 3 decimals."""
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{x:.0f}"
    if abs(x) < 5e-4:
        return f"{x:.2e}"
    return f"{x:.3f}"


def table_style() -> None:
    """Pandas display defaults for the book: floats at 3 decimals, integral values (counts held in a
    float column) as integers, tiny values in scientific notation."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - a core dependency
        return
    pd.set_option("display.precision", 3)
    pd.set_option("display.float_format", _number)
