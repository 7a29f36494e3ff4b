"""The package metadata, conda environment and book configuration agree with each other."""

from __future__ import annotations

import re
import sys

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_installs_what_pyproject_declares(repo):
    pp = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    want = set(map(_norm, pp["dependencies"]))
    for extra in ("book", "text", "dev"):
        want |= set(map(_norm, pp["optional-dependencies"][extra]))
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    have = {_norm(p) for p in pip if not p.startswith("-e")}
    assert have == want, f"only in environment.yml: {have - want}; only in pyproject: {want - have}"
    assert "-e ." in pip, "environment.yml must install mlcl itself (-e .)"


def test_pins_decided_by_the_design(repo):
    pp = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    assert pp["requires-python"] == ">=3.10"
    assert "torch>=2.2" in pp["dependencies"]
    assert "jupyter-book>=1.0.4.post1,<2" in pp["optional-dependencies"]["book"]
    assert any(r.startswith("torchvision") for r in pp["optional-dependencies"]["vision"])
    assert "torch==2.13.0" in (repo / "Makefile").read_text()


def test_book_config_is_offline_and_strict(repo):
    cfg = yaml.safe_load((repo / "_config.yml").read_text())
    sphinx = cfg["sphinx"]["config"]
    assert sphinx["mathjax_path"].startswith("mathjax/"), "MathJax must be served locally"
    assert cfg["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert cfg["execute"]["exclude_patterns"] == ["notebooks/*"]
    assert "-W" in (repo / "mlcl" / "book.py").read_text()


def test_toc_lists_existing_pages_and_every_notebook(repo):
    from mlcl.book import toc_files
    from mlcl.reproduce import discover

    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    files = toc_files(toc)
    for f in files:
        cands = [repo / f"{f}.md", repo / f"{f}.ipynb"]
        assert any(c.is_file() for c in cands), f"_toc.yml lists {f}, which does not exist"
    for md in discover(repo):
        assert f"notebooks/{md.stem}" in files, f"{md.name} is not in _toc.yml"


def test_readme_names_the_two_commands(repo):
    text = (repo / "README.md").read_text()
    assert "make book" in text and "make test" in text
    assert "make test" in (repo / ".ci" / "run").read_text()
