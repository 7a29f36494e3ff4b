"""Execute the book's notebooks with papermill: ``mlcl reproduce``.

The MyST markdown in ``notebooks/`` is the reviewed source. Each one is converted with jupytext to
``_build/executed/<name>.src.ipynb``, executed by papermill (kernel ``python3``, parameters
``profile``, ``seeds``, ``device``) into ``_build/executed/<name>.ipynb``. Results are written by the
notebooks themselves under ``results/<profile>/``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlcl.results import PROFILES, repo_root

#: Per-notebook time limit (seconds) by profile: the BoTorch tutorial runner's idea.
TIME_LIMITS = {"smoke": 600, "full": 4 * 3600, "paper-scale": 48 * 3600}


@dataclass
class RunResult:
    name: str
    ok: bool
    seconds: float
    output: Path
    error: str = ""


def root_dir() -> Path:
    top = repo_root()
    if top is None:
        raise RuntimeError("not inside an mlcl checkout: run from the repository (notebooks/ must exist)")
    return top


def discover(root: Path | None = None) -> list[Path]:
    """The chapter sources, ``notebooks/NN_name.md``, in book order."""
    nb_dir = (root or root_dir()) / "notebooks"
    return sorted(p for p in nb_dir.glob("[0-9][0-9]_*.md"))


def select(names: Sequence[str] | None, root: Path | None = None) -> list[Path]:
    """Notebooks whose stem equals or starts with any of ``names`` (``01``, ``01_cgmvae``, ``cgmvae``)."""
    all_nbs = discover(root)
    if not names:
        return all_nbs
    chosen = [p for p in all_nbs if any(p.stem == n or p.stem.startswith(n) or p.stem[3:] == n for n in names)]
    unknown = [n for n in names if not any(p.stem == n or p.stem.startswith(n) or p.stem[3:] == n for p in all_nbs)]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; available: {[p.stem for p in all_nbs]}")
    return chosen


def default_data_root(root: Path) -> None:
    """Point ``MLCL_DATA`` at ``../shared/data`` when it exists and nothing else was chosen."""
    shared = root.parent / "shared" / "data"
    if "MLCL_DATA" not in os.environ and shared.is_dir():
        os.environ["MLCL_DATA"] = str(shared)


def to_ipynb(md: Path, out: Path) -> Path:
    """Convert a MyST notebook to .ipynb with jupytext (papermill reads only .ipynb)."""
    import jupytext

    nb = jupytext.read(md)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"):
        raise ValueError(f"{md}: no code cell tagged 'parameters' (papermill needs it for `profile`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, out, fmt="ipynb")
    return out


def run_notebook(md: Path, profile: str = "smoke", seeds: int | None = None, device: str = "auto",
                 out_dir: Path | None = None, progress: bool = True, timeout: int | None = None) -> RunResult:
    """Execute one notebook; never raises on a failing cell (the error is in the result)."""
    import papermill as pm

    root = root_dir()
    default_data_root(root)
    out_dir = out_dir or root / "_build" / "executed"
    src = to_ipynb(md, out_dir / f"{md.stem}.src.ipynb")
    out = out_dir / f"{md.stem}.ipynb"
    params: dict = {"profile": profile, "device": device}
    if seeds is not None:
        params["seeds"] = int(seeds)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(out), parameters=params, kernel_name="python3", cwd=str(root),
                            progress_bar=progress, execution_timeout=timeout or TIME_LIMITS[profile],
                            log_output=False)
    except pm.PapermillExecutionError as e:
        msg = f"cell {e.exec_count} (index {e.cell_index}) raised {e.ename}: {e.evalue}"
        return RunResult(md.stem, False, time.perf_counter() - t0, out, msg)
    except Exception as e:  # kernel died, timeout, ...
        return RunResult(md.stem, False, time.perf_counter() - t0, out, f"{type(e).__name__}: {e}")
    finally:
        src.unlink(missing_ok=True)
    return RunResult(md.stem, True, time.perf_counter() - t0, out)


def summary_table(results: Sequence[RunResult]) -> str:
    w = max([len(r.name) for r in results] + [8])
    lines = [f"{'notebook':<{w}}  {'status':<6}  {'seconds':>8}", "-" * (w + 18)]
    for r in results:
        lines.append(f"{r.name:<{w}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:8.1f}")
    lines.append(f"{'total':<{w}}  {'':<6}  {sum(r.seconds for r in results):8.1f}")
    return "\n".join(lines)


def reproduce(profile: str = "smoke", only: Sequence[str] | None = None, seeds: int | None = None,
              device: str = "auto") -> list[RunResult]:
    if profile not in PROFILES:
        raise SystemExit(f"--profile must be one of {PROFILES}")
    nbs = select(only)
    results: list[RunResult] = []
    for i, md in enumerate(nbs, 1):
        print(f"[{i}/{len(nbs)}] {md.stem} (profile={profile})", flush=True)
        r = run_notebook(md, profile=profile, seeds=seeds, device=device)
        results.append(r)
        print(f"    {'ok' if r.ok else 'FAILED'} in {r.seconds:.1f} s -> {r.output}", flush=True)
        if not r.ok:
            print(f"    {md.name}: {r.error}\n    (open {r.output} to see the failing cell)", file=sys.stderr)
    print("\n" + summary_table(results))
    return results
