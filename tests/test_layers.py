"""The package's layers (pyproject.toml, [tool.importlinter]) hold: no module imports from a
layer above its own (data/metrics → losses → models → training → analysis/results → book/cli)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports not found: install the dev extra (pip install -e '.[dev]')")
    return exe


def test_import_layers_contract_is_kept():
    proc = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"a module imports from a layer above it:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"
    assert "1 kept, 0 broken" in proc.stdout


def test_contract_detects_an_upward_import(tmp_path):
    """The check can fail: a copy of the package where a loss imports the analysis layer breaks it."""
    pkg = tmp_path / "mlcl"
    shutil.copytree(ROOT / "mlcl", pkg, ignore=shutil.ignore_patterns("__pycache__", "_files"))
    (pkg / "losses" / "_upward.py").write_text("from mlcl.analysis import collapse_measures\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    proc = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "mlcl.losses._upward -> mlcl.analysis" in proc.stdout
