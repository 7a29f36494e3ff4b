"""The notebooks' install cell and the book's repository / launch buttons, generated from ONE URL.

The repository URL lives in ``pyproject.toml`` (``[project.urls] Repository``). From it this module
generates the second code cell of every chapter (which installs ``mlcl`` where it is missing, e.g.
on Colab) and ``_config.yml``'s ``repository.url`` (the repository and Colab launch buttons).
``python -m mlcl.colab --check`` fails when they disagree; ``--write`` rewrites them in place
(only the install cell and the one config line are touched).

The install cell takes, in order: a wheel named by ``$MLCL_WHEEL``; a ``mlcl-*.whl`` lying beside
the notebook; else ``git+<repository>``. It installs the ``colab`` extra (matplotlib and the text
model; no jupyter-book / Sphinx, which Colab does not need).

Example:
    >>> cell = install_cell("https://github.com/o/r")
    >>> 'git+https://github.com/o/r' in cell and 'MLCL_WHEEL' in cell
    True
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EXTRA = "colab"

_TEMPLATE = '''\
import importlib.util, os, pathlib, subprocess, sys
if importlib.util.find_spec("mlcl") is None:  # Colab or a bare kernel: install mlcl first
    # a wheel named by $MLCL_WHEEL or lying beside the notebook, else the repository
    whl = os.environ.get("MLCL_WHEEL") or next(map(str, sorted(pathlib.Path().glob("mlcl-*.whl"))), "")
    src = pathlib.Path(whl).resolve().as_uri() if whl else "git+{url}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"mlcl[{extra}] @ {{src}}"], check=True)
from mlcl.notebook import setup

ctx = setup(profile=profile, seeds=seeds, device=device)'''

#: The block of a MyST notebook holding the install cell (the second code cell).
_CELL = re.compile(r"(```\{code-cell\}[^\n]*\n)(import importlib\.util.*?\nctx = setup\([^\n]*\))\n```", re.S)


def repository_url(root: Path) -> str:
    """``[project.urls] Repository`` from ``pyproject.toml``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("urls", {})
    if "Repository" not in urls:
        raise KeyError("pyproject.toml needs [project.urls] Repository = \"https://github.com/<org>/<repo>\"")
    return urls["Repository"].rstrip("/")


def install_cell(url: str) -> str:
    """The exact source of every chapter's second code cell for repository ``url``."""
    return _TEMPLATE.format(url=url, extra=EXTRA)


def _config_url(text: str) -> str | None:
    m = re.search(r"^repository:\n(?:[ \t]+#[^\n]*\n)*[ \t]+url:[ \t]*(\S+)", text, re.M)
    return m.group(1) if m else None


def problems(root: Path) -> list[str]:
    """Where the generated pieces disagree with ``pyproject.toml``'s repository URL."""
    url, cell, out = repository_url(root), None, []
    cell = install_cell(url)
    for md in sorted((root / "notebooks").glob("[0-9][0-9]_*.md")):
        m = _CELL.search(md.read_text())
        if m is None:
            out.append(f"{md.name}: no install cell (import importlib.util ... ctx = setup(...)) found")
        elif m.group(2) != cell:
            out.append(f"{md.name}: install cell differs from the generated one")
    if _config_url((root / "_config.yml").read_text()) != url:
        out.append(f"_config.yml: repository.url is not {url}")
    return out


def write(root: Path) -> list[Path]:
    """Rewrite the install cells and the config URL; returns the files changed (sync the .ipynb after)."""
    url, changed = repository_url(root), []
    cell = install_cell(url)
    for md in sorted((root / "notebooks").glob("[0-9][0-9]_*.md")):
        text = md.read_text()
        new = _CELL.sub(lambda m: f"{m.group(1)}{cell}\n```", text, count=1)
        if new != text:
            md.write_text(new)
            changed.append(md)
    cfg = root / "_config.yml"
    text = cfg.read_text()
    old = _config_url(text)
    if old is not None and old != url:
        cfg.write_text(text.replace(f"url: {old}", f"url: {url}", 1))
        changed.append(cfg)
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    from mlcl.results import repo_root

    p = argparse.ArgumentParser(prog="python -m mlcl.colab", description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite the install cells and _config.yml")
    a = p.parse_args(argv)
    root = repo_root()
    if root is None:
        print("python -m mlcl.colab: run it inside the checkout", file=sys.stderr)
        return 2
    if a.write:
        for f in write(root):
            print(f"updated {f} (then: jupytext --sync {f})" if f.suffix == ".md" else f"updated {f}")
        return 0
    bad = problems(root)
    for b in bad:
        print(b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
