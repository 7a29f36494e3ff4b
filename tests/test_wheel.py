"""The newcomer path through the package, not the checkout (issue 12.3, 12.4, 12.6).

sdist from the working tree -> the sdist carries the tests and the book sources -> wheel built from
the unpacked sdist -> a fresh virtual environment without mlcl -> the notebooks' own install cell,
with no network (PIP_NO_INDEX), installs the wheel named by $MLCL_WHEEL -> from an empty directory,
with MLCL_DATA unset and an empty home, `mlcl reproduce --profile smoke --only 00` executes chapter 00
and `mlcl.results.paper_results()` reads the packaged table.

The fresh environment borrows the project's already installed dependencies (torch, papermill, ...)
through a .pth file pointing at a folder of links to them, leaving out mlcl itself and pip; this keeps
the test offline and fast while mlcl comes only from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import jupytext
import pytest

pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(repo, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "tree"
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo).stdout.split()
    for f in files:
        p = repo / f
        if p.is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / f)
    build = "from setuptools import build_meta as b; import sys; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    name = _run([sys.executable, "-c", build, "build_sdist", str(tmp / "sdist")], cwd=src).stdout.split()[-1]
    with tarfile.open(tmp / "sdist" / name) as t:
        t.extractall(tmp / "unpacked", filter="data")
    sdist_root = next((tmp / "unpacked").iterdir())
    for need in ("tests/conftest.py", "tests/fixtures/tiny_dense.arff", "notebooks/00_multilabel_basics.md",
                 "results/paper/paper_results.csv", "LICENSE", "setup.py"):
        assert (sdist_root / need).is_file(), f"the sdist lacks {need}"
    whl = _run([sys.executable, "-c", build, "build_wheel", str(tmp / "dist")], cwd=sdist_root).stdout.split()[-1]
    return tmp / "dist" / whl


def test_wheel_carries_the_book_sources_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("mlcl/_project/_toc.yml", "mlcl/_project/_config.yml", "mlcl/_project/book/intro.md",
                 "mlcl/_project/book/references.bib", "mlcl/_project/notebooks/00_multilabel_basics.md",
                 "mlcl/_project/results/paper/paper_results.csv"):
        assert need in names, f"{need} missing from {wheel.name}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "LICENSE not in the wheel"
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta and "Project-URL: Repository, https://" in meta


def _fresh_venv(tmp: Path) -> Path:
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    shadow = tmp / "borrowed-site-packages"
    shadow.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        low = entry.name.lower()
        if low.startswith(("mlcl", "__editable__", "pip", "_distutils_hack", "distutils-precedence")) or low.endswith(".pth"):
            continue
        (shadow / entry.name).symlink_to(entry)
    (site / "zz_borrowed.pth").write_text(f"{shadow}\n")
    # the venv's own (older, bundled) setuptools would shadow the one torch's metadata requires
    _run([str(py), "-m", "pip", "uninstall", "-q", "-y", "setuptools"])
    return py


@pytest.fixture(scope="module")
def installed(repo, wheel, tmp_path_factory):
    """A fresh venv in which the notebook's install cell installed the wheel (offline); its env."""
    tmp = tmp_path_factory.mktemp("fresh")
    py = _fresh_venv(tmp)
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MLCL_DATA", "MLCL_RESULTS", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(home), PIP_NO_INDEX="1", PYTHONNOUSERSITE="1", MLCL_WHEEL=str(wheel),
               XDG_CACHE_HOME=str(home / ".cache"), PATH=f"{py.parent}:{env.get('PATH', '')}",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MLCL_THREADS="1")
    probe = [str(py), "-c", "import importlib.util as u; s = u.find_spec('mlcl'); print(s.origin if s else None)"]
    assert _run(probe, cwd=home, env=env).stdout.strip() == "None", "the fresh venv must start without mlcl"
    cell = [c for c in jupytext.read(repo / "notebooks" / "00_multilabel_basics.md").cells if c.cell_type == "code"][1]
    _run([str(py), "-c", cell.source.split("from mlcl.notebook import setup")[0]], cwd=home, env=env)
    origin = Path(_run(probe, cwd=home, env=env).stdout.strip())
    assert origin.is_relative_to(tmp / "venv"), f"mlcl imported from {origin}, not from the installed wheel"
    return py, env, tmp


def test_install_cell_then_chapter_00_outside_the_checkout(installed, tmp_path, timed):
    py, env, _ = installed
    work = tmp_path / "empty"
    work.mkdir()
    n = _run([str(py), "-c", "from mlcl.results import paper_results; print(len(paper_results()))"], cwd=work, env=env)
    assert int(n.stdout.strip()) > 0
    run = subprocess.run([str(py.parent / "mlcl"), "reproduce", "--profile", "smoke", "--only", "00"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"chapter 00 failed outside the checkout:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    executed = work / "_build" / "executed" / "00_multilabel_basics.ipynb"
    from mlcl import executions as ex

    ex.check_complete(ex.read(executed), "00_multilabel_basics")
    assert (work / "results" / "smoke" / "basics.json").is_file(), "results must land under the working directory"
    assert ex.read(executed).metadata["mlcl"]["results"] == ["results/smoke/basics.json"]


@pytest.mark.committed_executions
def test_book_from_the_packaged_committed_executions_in_an_empty_directory(installed, tmp_path, timed):
    """`pip install mlcl[book]` then `mlcl book` in an empty directory: the committed full executions
    travel in the wheel and render without re-executing (MathJax from the CDN: no npm here)."""
    py, env, _ = installed
    work = tmp_path / "empty"
    work.mkdir()
    run = subprocess.run([str(py.parent / "mlcl"), "book"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, f"`mlcl book` failed outside the checkout:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert (work / "_build" / "html" / "book" / "execution_status.html").is_file()
