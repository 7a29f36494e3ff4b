"""Build the Jupyter Book from executed notebooks, never re-executing a chapter: ``mlcl book``.

Two sources of executions:

* ``committed`` (the default): ``book/executed/<name>.ipynb``, stored by
  ``mlcl reproduce --profile full`` and committed: the published book shows the ``full`` runs.
* ``build``: ``_build/executed/<name>.ipynb``, what the last ``mlcl reproduce`` (any profile) wrote;
  ``make book PROFILE=smoke|full`` re-executes then builds from these.

Each chapter page is the *current* MyST source with the execution's outputs copied onto its code
cells (:func:`mlcl.executions.render`), so prose edited after a run is published as edited. A
missing, interrupted or stale execution (code changed since it ran) is refused, naming the chapter
and the command to run. A staging tree ``_build/src`` is assembled (``_config.yml``, ``_toc.yml``,
``book/``, the rendered chapters, ``mlcl/`` and ``results/`` linked for ``literalinclude`` and the
results downloads, MathJax under ``_extra/_static/mathjax``), the execution-status page is generated
into ``book/_generated/execution_status.md``, and ``jupyter-book build -W -n --keep-going`` writes
``_build/html``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

import mlcl
from mlcl.project import MlclError, executions_dirs, source_root, work_root
from mlcl.reproduce import default_data_root, require
from mlcl.results import repo_root, results_dir

MATHJAX_HINT = ("MathJax is served locally: run `make mathjax` (npm install --prefix _build/npm mathjax@3) "
                "or set MLCL_MATHJAX to a folder holding tex-chtml.js")
SOURCES = ("committed", "build")
BOOK_NEEDS = ("jupyter_book", "sphinxcontrib.bibtex", "jupytext", "nbformat", "ipykernel", "matplotlib")


def toc_files(toc: dict) -> list[str]:
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def find_mathjax(root: Path) -> Path | None:
    """The local MathJax folder; None outside a checkout when none is installed (the CDN is used)."""
    cands = [os.environ.get("MLCL_MATHJAX"), root / "_build" / "npm" / "node_modules" / "mathjax" / "es5"]
    for c in cands:
        if c and (Path(c) / "tex-chtml.js").is_file():
            return Path(c)
    if repo_root() is not None:
        raise MlclError(MATHJAX_HINT)
    return None


def rerun_hint(name: str, source: str) -> str:
    return f"mlcl reproduce --profile {'full' if source == 'committed' else '<profile>'} --only {name}"


def rendered_chapters(source: str = "committed") -> dict[str, object]:
    """name -> rendered notebook (current source + outputs) for every chapter in ``_toc.yml``.

    Raises one :class:`MlclError` listing every missing, incomplete or stale chapter."""
    import jupytext

    from mlcl import executions as ex

    if source not in SOURCES:
        raise MlclError(f"--from must be one of {', '.join(SOURCES)}, got {source!r}")
    src_root = source_root()
    dirs = executions_dirs() if source == "committed" else [work_root() / "_build" / "executed"]
    where = " or ".join(map(str, dirs))
    toc = yaml.safe_load((src_root / "_toc.yml").read_text())
    out, problems = {}, []
    for f in toc_files(toc):
        if not f.startswith("notebooks/"):
            continue
        name = Path(f).stem
        nb_path = next((d / f"{name}.ipynb" for d in dirs if (d / f"{name}.ipynb").is_file()), dirs[0] / "-")
        hint = rerun_hint(name, source)
        if not nb_path.is_file():
            problems.append(f"{name}: no execution in {where} (run `{hint}`)")
            continue
        try:
            executed = ex.read(nb_path)
            ex.check_complete(executed, name)
            current = jupytext.read(src_root / "notebooks" / f"{name}.md")
            ex.check_fresh(executed, current, name, hint)
        except MlclError as e:
            problems.append(str(e) if "run `" in str(e) else f"{e} (run `{hint}`)")
            continue
        out[name] = ex.render(current, executed)
    if problems and not out and all("no execution" in p for p in problems):
        cmd = "mlcl reproduce --profile full" if source == "committed" else "mlcl reproduce"
        raise MlclError(f"no {source} executions in {where}: run `{cmd}` first"
                        + (" (or render the last `mlcl reproduce`: `mlcl book --from build`)"
                           if source == "committed" else ""))
    if problems:
        raise MlclError(f"cannot build the book from the {source} executions: " + "; ".join(problems))
    return out


def status_page(chapters: dict[str, object], staging: Path | None = None) -> str:
    """The execution-status table; with ``staging``, the results JSON files each execution wrote are
    copied to ``<staging>/_results/`` (from ``results/``, else the packaged copy) so that the
    ``{download}`` links put them into the built site. A listed file found nowhere is marked missing."""
    from mlcl import executions as ex

    rows = []
    for name, nb in chapters.items():
        row = ex.stamp_of(nb) or {"notebook": name}
        found, missing = [], []
        for f in row.get("results", []):
            rel = Path(f).relative_to("results") if f.startswith("results/") else Path(f)
            src = next((c for c in (results_dir() / rel, source_root() / "results" / rel) if c.is_file()), None)
            if src is None:
                missing.append(f)
                continue
            found.append(f)
            if staging is not None:
                (staging / "_results" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, staging / "_results" / rel)
        rows.append({**row, "results": found, "missing_results": missing})
    return ex.status_markdown(rows, results_link="/_results")


def stage(root: Path | None = None, source: str = "committed") -> Path:
    """Assemble ``_build/src`` (see the module docstring) and return it."""
    root = root or work_root()
    src_root = source_root()
    chapters = rendered_chapters(source)
    import nbformat

    staging = root / "_build" / "src"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy2(src_root / f, staging / f)
    shutil.copytree(src_root / "book", staging / "book", ignore=shutil.ignore_patterns("executed"))
    (staging / "mlcl").symlink_to(Path(mlcl.__file__).resolve().parent, target_is_directory=True)
    res = results_dir()
    res.mkdir(parents=True, exist_ok=True)
    (staging / "results").symlink_to(res.resolve(), target_is_directory=True)
    if (src_root / "benchmarks").is_dir():
        (staging / "benchmarks").symlink_to(src_root / "benchmarks", target_is_directory=True)
    (staging / "notebooks").mkdir()
    for name, nb in chapters.items():
        nbformat.write(nb, str(staging / "notebooks" / f"{name}.ipynb"))
    gen = staging / "book" / "_generated"
    gen.mkdir(exist_ok=True)
    (gen / "execution_status.md").write_text(status_page(chapters, staging))
    mj = find_mathjax(root)
    if mj is not None:
        # html_extra_path copies _extra/* to the html root, so this lands in _static/mathjax, where
        # Sphinx resolves the relative mathjax_path.
        shutil.copytree(mj, staging / "_extra" / "_static" / "mathjax")
    else:
        cfg_path = staging / "_config.yml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["sphinx"]["config"].pop("mathjax_path", None)
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        print("note: no local MathJax (npm mathjax@3 or $MLCL_MATHJAX): the book loads it from a CDN",
              file=sys.stderr)
    (staging / "_extra").mkdir(exist_ok=True)
    return staging


def build(root: Path | None = None, strict: bool = True, source: str = "committed") -> tuple[int, str, float]:
    """Stage and build; returns (exit code, build log, seconds). Log is also in _build/book.log."""
    require(BOOK_NEEDS, "mlcl book")
    root = root or work_root()
    default_data_root(root)
    t0 = time.perf_counter()
    staging = stage(root, source)
    for stale in ("html", ".doctrees"):  # a fresh HTML tree (cheap); executed pages stay cached
        shutil.rmtree(root / "_build" / stale, ignore_errors=True)
    # this interpreter's jupyter-book, even when its script is not on PATH (a venv reached via .pth)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", str(staging), "--path-output", str(root)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    log = proc.stdout + proc.stderr
    (root / "_build").mkdir(exist_ok=True)
    (root / "_build" / "book.log").write_text(log)
    return proc.returncode, log, time.perf_counter() - t0


def write_ipynb_outputs(source: str = "committed") -> list[Path]:
    """Write the executions' outputs into the paired ``notebooks/<name>.ipynb`` (what Colab opens).

    Only in a checkout; every chapter must be fresh. The .md stays the source: the written .ipynb
    has the .md's cells with the outputs, so a later ``jupytext --sync`` keeps them."""
    import nbformat

    top = repo_root()
    if top is None:
        raise MlclError("--write-ipynb writes into a checkout's notebooks/: run it inside the repository")
    written = []
    for name, nb in rendered_chapters(source).items():
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        path = top / "notebooks" / f"{name}.ipynb"
        old = nbformat.read(str(path), as_version=4) if path.is_file() else None
        if old is not None and "jupytext" in old.metadata:
            nb.metadata["jupytext"] = old.metadata["jupytext"]
        from mlcl.executions import write_atomic

        write_atomic(nb, path)
        written.append(path)
    return written
