"""Build the Jupyter Book from the notebooks executed by ``mlcl reproduce`` (no re-execution).

A staging tree ``_build/src`` is assembled: ``_config.yml``, ``_toc.yml`` and ``book/`` copied,
``notebooks/<name>.ipynb`` taken from ``_build/executed/``, ``mlcl/``, ``results/`` and
``benchmarks/`` linked (for ``literalinclude``), MathJax copied to ``_mathjax/_static/mathjax``. Then
``jupyter-book build -W -n --keep-going`` writes ``_build/html``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mlcl.reproduce import default_data_root, root_dir

MATHJAX_HINT = ("MathJax is served locally: run `make mathjax` (npm install --prefix _build/npm mathjax@3) "
                "or set MLCL_MATHJAX to a folder holding tex-chtml.js")


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


def find_mathjax(root: Path) -> Path:
    cands = [os.environ.get("MLCL_MATHJAX"), root / "_build" / "npm" / "node_modules" / "mathjax" / "es5"]
    for c in cands:
        if c and (Path(c) / "tex-chtml.js").is_file():
            return Path(c)
    raise FileNotFoundError(MATHJAX_HINT)


def stage(root: Path | None = None) -> Path:
    root = root or root_dir()
    src = root / "_build" / "src"
    executed = root / "_build" / "executed"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / f, src / f)
    shutil.copytree(root / "book", src / "book")
    for d in ("mlcl", "results", "benchmarks"):
        if (root / d).exists():
            (src / d).symlink_to(root / d, target_is_directory=True)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    missing, failed = [], []
    for f in toc_files(toc):
        if f.startswith("notebooks/"):
            name = Path(f).stem
            nb = executed / f"{name}.ipynb"
            if not nb.is_file():
                missing.append(name)
                continue
            meta = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {})
            if meta.get("exception"):
                failed.append(name)
                continue
            (src / "notebooks").mkdir(exist_ok=True)
            shutil.copy2(nb, src / "notebooks" / f"{name}.ipynb")
    if failed:
        raise RuntimeError(f"execution failed for {failed}: fix the failing cell (see _build/executed/) and re-run "
                           f"`mlcl reproduce --only {' '.join(failed)}`")
    if missing:
        raise FileNotFoundError(f"not executed yet: {missing}; run `mlcl reproduce --only {' '.join(missing)}` first")
    # html_extra_path copies _mathjax/* to the html root, so this lands in _static/mathjax, where
    # Sphinx resolves the relative mathjax_path.
    shutil.copytree(find_mathjax(root), src / "_mathjax" / "_static" / "mathjax")
    return src


def build(root: Path | None = None, strict: bool = True) -> tuple[int, str, float]:
    """Stage and build; returns (exit code, build log, seconds). Log is also in _build/book.log."""
    root = root or root_dir()
    default_data_root(root)
    t0 = time.perf_counter()
    src = stage(root)
    for stale in ("html", ".doctrees"):  # a fresh HTML tree (cheap); executed pages stay cached
        shutil.rmtree(root / "_build" / stale, ignore_errors=True)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(src), "--path-output", str(root)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    log = proc.stdout + proc.stderr
    (root / "_build").mkdir(exist_ok=True)
    (root / "_build" / "book.log").write_text(log)
    return proc.returncode, log, time.perf_counter() - t0
