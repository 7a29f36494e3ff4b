"""Every chapter executed with papermill in the `smoke` profile, then the book built with -W.

A failing cell fails its test with the cell and the error; the book test needs every notebook
executed (so it runs last in this file) and fails on any Sphinx warning.
"""

from __future__ import annotations

import json

import jupytext
import pytest

from mlcl.reproduce import discover, run_notebook

NOTEBOOKS = discover()


def _code_sources(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("md", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_paired_ipynb_is_in_sync(md):
    """Colab opens the committed .ipynb: it must hold the same code as the reviewed .md."""
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run `jupytext --sync {md}`"
    assert _code_sources(jupytext.read(md)) == _code_sources(jupytext.read(ipynb)), (
        f"{ipynb.name} differs from {md.name}: run `jupytext --sync {md}`")


@pytest.mark.parametrize("md", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_cells_follow_the_template(md):
    cells = [c for c in jupytext.read(md).cells if c.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert 'profile = "smoke"' in cells[0].source
    assert "setup(" in cells[1].source, "second code cell must call mlcl.notebook.setup(...)"
    assert 'find_spec("mlcl") is None' in cells[1].source, "second cell must install mlcl on Colab first"


@pytest.mark.notebook
@pytest.mark.parametrize("md", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_in_smoke_profile(md, timed):
    res = run_notebook(md, profile="smoke", progress=False)
    assert res.ok, f"{md.name} failed: {res.error} (executed copy: {res.output})"
    nb = json.loads(res.output.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def _check_book(repo, source):
    from mlcl.book import build

    code, log, _ = build(repo, strict=True, source=source)
    tail = "\n".join(log.splitlines()[-40:])
    assert code == 0, f"jupyter-book build -W -n --keep-going failed:\n{tail}"
    html = repo / "_build" / "html"
    assert (html / "index.html").is_file()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax must be served from the book"
    for md in NOTEBOOKS:
        page = html / "notebooks" / f"{md.stem}.html"
        assert page.is_file(), f"{page} not rendered"
    # Sphinx warnings read "<file>:<line>: WARNING: ..." (kernel log lines such as
    # "[IPKernelApp] WARNING | ..." are not warnings about the book).
    sphinx_warnings = [ln for ln in log.splitlines() if "WARNING:" in ln and "[IPKernelApp]" not in ln]
    assert not sphinx_warnings, "\n".join(sphinx_warnings)
    status = (html / "book" / "execution_status.html").read_text()
    for md in NOTEBOOKS:
        assert md.stem in status, f"{md.stem} missing from the execution-status page"
    downloads = list((html / "_downloads").rglob("*.json"))
    assert downloads, "the execution-status page must link (and the site hold) the results JSON files"
    return html


@pytest.mark.book
def test_book_builds_from_the_smoke_executions(repo, timed):
    """CI's check: the chapters just executed in `smoke` (above) render with -W."""
    _check_book(repo, "build")


@pytest.mark.book
@pytest.mark.committed_executions
def test_book_builds_from_the_committed_full_executions(repo, timed):
    """The published book: every chapter's committed `full` execution exists, is complete and fresh
    (its code cells equal the current source's), and renders without re-executing. Deselected in
    pyproject's addopts until `mlcl reproduce --profile full` has produced book/executed/."""
    from mlcl.book import rendered_chapters

    chapters = rendered_chapters("committed")  # raises, naming every missing or stale chapter
    assert {nb.metadata["mlcl"]["profile"] for nb in chapters.values()} == {"full"}
    _check_book(repo, "committed")
