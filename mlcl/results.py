"""Results store: ``results/<profile>/<experiment>.json``.

Every number the book shows is written here by the code that computed it, with its provenance::

    {"provenance": {"git_commit", "git_dirty", "date", "profile", "seeds", "versions": {...},
                    "device", "wall_seconds", ...},
     "records": [{"dataset", "method", "protocol", "metric", "seed", "value"}, ...]}

``protocol`` is ``"paper"`` (threshold chosen on the evaluated set itself: what the authors' code
does, optimistic) or ``"honest"`` (same grid, threshold chosen on validation), or ``"-"`` for
numbers with no threshold protocol (timings, derivation checks).

Example:
    >>> from mlcl import results
    >>> recs = [{"dataset": "yeast", "method": "BR", "protocol": "honest",
    ...          "metric": "micro_f1", "seed": 0, "value": 0.64}]
    >>> path = results.save("demo", recs, profile="smoke", seeds=[0], wall_seconds=1.0,
    ...                     root=tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

RECORD_KEYS = ("dataset", "method", "protocol", "metric", "seed", "value")
PROFILES = ("smoke", "full", "paper-scale")


def repo_root(start: Path | None = None) -> Path | None:
    """The mlcl checkout containing ``start`` (default: cwd), or None outside a checkout."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        pp = d / "pyproject.toml"
        if pp.is_file() and 'name = "mlcl"' in pp.read_text(encoding="utf-8", errors="ignore"):
            return d
    pkg_root = Path(__file__).resolve().parent.parent  # editable install: the checkout itself
    if (pkg_root / "pyproject.toml").is_file():
        return pkg_root
    return None


def results_dir(root: str | os.PathLike | None = None) -> Path:
    """Where results live: ``root``, else ``$MLCL_RESULTS``, else ``<checkout>/results``, else ``./results``."""
    if root is not None:
        return Path(root)
    if os.environ.get("MLCL_RESULTS"):
        return Path(os.environ["MLCL_RESULTS"])
    top = repo_root()
    return (top / "results") if top is not None else Path("results").resolve()


def _git(*args: str) -> str | None:
    top = repo_root()
    if top is None or not (top / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", *args], cwd=top, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(
    *,
    profile: str,
    seeds: Sequence[int] | int,
    wall_seconds: float,
    device: str = "cpu",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Provenance block: git commit and dirty flag, date, profile, seeds, versions, device, wall time."""
    import torch

    import mlcl

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    # "dirty" is about code: modified or untracked files outside the run's own outputs (results/,
    # book/executed/) mean the commit alone does not reproduce the numbers. `mlcl reproduce` reads
    # the state once, before a notebook starts, and hands it to the kernel (MLCL_GIT_COMMIT /
    # MLCL_GIT_DIRTY): the code that ran is the code at the start, whatever happens to the tree later.
    status = _git("status", "--porcelain", "--", ".", ":(exclude)results", ":(exclude)book/executed")
    commit = _git("rev-parse", "HEAD")
    if os.environ.get("MLCL_GIT_COMMIT"):
        commit, status = os.environ["MLCL_GIT_COMMIT"], os.environ.get("MLCL_GIT_DIRTY", "")
    versions = {"python": platform.python_version(), "torch": torch.__version__, "mlcl": mlcl.__version__}
    for mod in ("numpy", "sklearn", "pandas"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover - all are dependencies
            pass
    prov: dict[str, Any] = {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": profile,
        "seeds": [int(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds],
        "versions": versions,
        "device": str(device),
        "device_name": _device_name(str(device)),
        "cpu_threads": torch.get_num_threads(),
        "wall_seconds": round(float(wall_seconds), 3),
    }
    if os.environ.get("MLCL_NOTEBOOK"):
        prov["notebook"] = os.environ["MLCL_NOTEBOOK"]  # which execution wrote it (set by `mlcl reproduce`)
    if extra:
        prov.update(dict(extra))
    return prov


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def _as_records(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[dict[str, Any]]:
    rows = records.to_dict("records") if isinstance(records, pd.DataFrame) else [dict(r) for r in records]
    for i, r in enumerate(rows):
        missing = [k for k in RECORD_KEYS if k not in r]
        if missing:
            raise ValueError(f"record {i} lacks {missing}; every record needs {RECORD_KEYS}")
        if r["protocol"] not in ("paper", "honest", "-"):
            raise ValueError(f"record {i}: protocol must be 'paper', 'honest' or '-', got {r['protocol']!r}")
        v = r["value"]
        r["value"] = None if v is None else float(v)
        r["seed"] = None if r["seed"] is None else int(r["seed"])
    return rows


def save(
    experiment: str,
    records: Iterable[Mapping[str, Any]] | pd.DataFrame,
    *,
    profile: str,
    seeds: Sequence[int] | int,
    wall_seconds: float,
    device: str = "cpu",
    extra: Mapping[str, Any] | None = None,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write ``<root>/<profile>/<experiment>.json`` (atomically) and return its path."""
    rows = _as_records(records)
    prov = provenance(profile=profile, seeds=seeds, wall_seconds=wall_seconds, device=device, extra=extra)
    path = results_dir(root) / profile / f"{experiment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"provenance": prov, "records": rows}, indent=1, default=str) + "\n")
    tmp.replace(path)
    return path


def load(experiment: str, profile: str, root: str | os.PathLike | None = None) -> tuple[dict, pd.DataFrame]:
    """Read one results file: ``(provenance, records DataFrame)``."""
    path = results_dir(root) / profile / f"{experiment}.json"
    if not path.is_file() and root is None:  # outside a checkout: the committed full results packaged with mlcl
        from mlcl.project import PACKAGED

        if (PACKAGED / "results" / profile / f"{experiment}.json").is_file():
            path = PACKAGED / "results" / profile / f"{experiment}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run `mlcl reproduce --profile {profile}` (or the notebook that "
            f"writes '{experiment}') first"
        )
    data = json.loads(path.read_text())
    return data["provenance"], pd.DataFrame(data["records"])


def load_records(experiment: str, profile: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The records of one results file as a tidy DataFrame."""
    return load(experiment, profile, root)[1]


def summarize(
    df: pd.DataFrame,
    index: Sequence[str] = ("dataset", "method"),
    columns: Sequence[str] = ("protocol", "metric"),
    digits: int = 3,
    fmt: bool = True,
) -> pd.DataFrame:
    """Pivot tidy records to a table of mean ± std over seeds (strings when ``fmt``)."""
    g = df.groupby(list(index) + list(columns))["value"]
    mean, std, n = g.mean(), g.std(ddof=1), g.count()
    if not fmt:
        return pd.DataFrame({"mean": mean, "std": std, "n": n}).unstack(list(columns))
    cell = [
        f"{m:.{digits}f}" if (k < 2 or pd.isna(s)) else f"{m:.{digits}f} ± {s:.{digits}f}"
        for m, s, k in zip(mean, std, n)
    ]
    return pd.Series(cell, index=mean.index).unstack(list(columns))


def paper_results(paper: str | None = None, table: str | None = None,
                  root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every numeric table cell of the four papers (``results/paper/paper_results.csv``).

    Columns: paper, table, dataset, method, metric, value, std. ABALONE's Hamming loss is ×1e3 as
    printed; MulCon percentages are fractions.
    """
    path = results_dir(root) / "paper" / "paper_results.csv"
    if not path.is_file() and root is None:  # outside a checkout: the copy packaged with mlcl
        from mlcl.project import PACKAGED

        path = PACKAGED / "results" / "paper" / "paper_results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: it is committed with the repository and packaged "
                                "in the wheel (reinstall mlcl)")
    df = pd.read_csv(path)
    if paper is not None:
        df = df[df["paper"] == paper]
    if table is not None:
        df = df[df["table"] == table]
    return df.reset_index(drop=True)
