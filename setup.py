"""Build hook: the book's sources travel inside the wheel as ``mlcl/_project``.

``pip install mlcl[book]`` then ``mlcl reproduce`` / ``mlcl book`` work in any directory because the
notebooks (MyST .md), the book pages, ``_config.yml``, ``_toc.yml``, the committed executions and
``results/paper/paper_results.csv`` are copied into the package at build time (from a checkout or
from the sdist, which MANIFEST.in fills). The list lives in ``mlcl/project.py`` (PROJECT_FILES).
Everything else is configured in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROJECT_FILES = ("_config.yml", "_toc.yml", "book", "notebooks/[0-9][0-9]_*.md",
                 "results/paper/paper_results.csv", "results/full/*.json")  # = mlcl.project.PROJECT_FILES (a test checks)


class build_py_with_book(build_py):
    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "mlcl" / "_project"
        if dest.exists():
            shutil.rmtree(dest)
        for pattern in PROJECT_FILES:
            hits = sorted(HERE.glob(pattern))
            if not hits:
                raise FileNotFoundError(f"setup.py: {pattern} missing from {HERE}: cannot package the book")
            for src in hits:
                target = dest / src.relative_to(HERE)
                target.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.tmp"))
                else:
                    shutil.copy2(src, target)


setup(cmdclass={"build_py": build_py_with_book})
