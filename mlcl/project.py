"""Where the book's sources are read from and where a run writes.

Two situations, one rule:

* **a checkout** (the repository, or an editable install of it): the sources are the checkout's
  ``notebooks/``, ``book/``, ``_config.yml``, ``_toc.yml``, ``results/paper/``; runs write under
  the checkout (``_build/``, ``results/``, ``book/executed/``).
* **an installed wheel**, run from any directory: the same sources travel inside the package
  (``mlcl/_project/``, copied there by ``setup.py`` at build time); runs write under the current
  working directory.

Example:
    >>> from mlcl.project import source_root, work_root
    >>> (source_root() / "_toc.yml").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

from mlcl.results import repo_root

#: The copy of the book sources inside an installed package (absent in a checkout).
PACKAGED = Path(__file__).resolve().parent / "_project"

#: What ``setup.py`` copies into ``mlcl/_project`` (paths relative to the repository root).
PROJECT_FILES = ("_config.yml", "_toc.yml", "book", "notebooks/[0-9][0-9]_*.md",
                 "results/paper/paper_results.csv", "results/full/*.json")


class MlclError(Exception):
    """An error the command line prints as one line (bad argument, missing extra, stale page)."""


def source_root() -> Path:
    """The folder holding ``notebooks/``, ``book/``, ``_toc.yml``: the checkout, else the packaged copy."""
    top = repo_root()
    if top is not None and (top / "notebooks").is_dir():
        return top
    if (PACKAGED / "_toc.yml").is_file():
        return PACKAGED
    raise MlclError("the book sources are missing: neither an mlcl checkout nor a packaged copy "
                    f"({PACKAGED}); reinstall with `pip install --force-reinstall mlcl`")


def work_root() -> Path:
    """Where runs write ``_build/``, ``results/`` and ``book/executed/``: the checkout, else the cwd."""
    top = repo_root()
    return top if top is not None else Path.cwd().resolve()


def executions_dir() -> Path:
    """Where ``mlcl reproduce --profile full`` stores the stamped executions: ``<work root>/book/executed``."""
    return work_root() / "book" / "executed"


def executions_dirs() -> list[Path]:
    """Where ``mlcl book`` looks for committed executions, per chapter in this order: the work root's
    ``book/executed``, then the packaged copy (an installed wheel ships the committed ones)."""
    dirs = [work_root() / "book" / "executed", source_root() / "book" / "executed"]
    return [d for i, d in enumerate(dirs) if d not in dirs[:i]]
