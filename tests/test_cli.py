from __future__ import annotations

import subprocess
import sys

import pytest

from mlcl.cli import build_parser, main
from mlcl.project import MlclError
from mlcl.reproduce import RunResult, select, summary_table


def test_parser_accepts_the_documented_commands():
    p = build_parser()
    a = p.parse_args(["reproduce", "--profile", "full", "--only", "00", "--seeds", "2", "--device", "cpu"])
    assert (a.profile, a.only, a.seeds, a.device) == ("full", ["00"], 2, "cpu")
    assert p.parse_args(["book"]).command == "book"
    assert p.parse_args(["data", "list"]).data_command == "list"
    with pytest.raises(SystemExit):
        p.parse_args(["reproduce", "--profile", "quick"])


def test_select_by_prefix_and_unknown_names(repo):
    assert [p.stem for p in select(["00"], repo)] == ["00_multilabel_basics"]
    assert [p.stem for p in select(["cgmvae", "01_cg"], repo)] == ["01_cgmvae"]
    assert len(select(None, repo)) == len(select(["00", "01", "02", "03", "04"], repo))
    with pytest.raises(MlclError, match="unknown notebook"):
        select(["99_nothing"], repo)
    for bad in ("0", "", " "):  # once ran every notebook
        with pytest.raises(MlclError, match="prefix of at least 2 characters"):
            select([bad], repo)


def test_ambiguous_prefix_is_refused(repo, monkeypatch):
    from mlcl import reproduce as r

    real = r.discover(repo)
    monkeypatch.setattr(r, "discover", lambda root=None: sorted([*real, real[0].with_name("00_other.md")]))
    with pytest.raises(MlclError, match=r"--only '00' is ambiguous \(00_multilabel_basics, 00_other\)"):
        select(["00"], repo)
    assert [p.stem for p in select(["00_mu"], repo)] == ["00_multilabel_basics"]


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "--seeds", "0"], "--seeds: must be a positive integer"),
    (["reproduce", "--seeds", "-1"], "--seeds: must be a positive integer"),
    (["reproduce", "--only", "0"], "prefix of at least 2 characters"),
    (["reproduce", "--only", ""], "prefix of at least 2 characters"),
    (["reproduce", "--only", "99"], "unknown notebook"),
])
def test_bad_arguments_fail_in_one_line_before_any_kernel(argv, message):
    out = subprocess.run([sys.executable, "-m", "mlcl", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "[1/" not in out.stdout, "a kernel started or a traceback leaked"


def test_cuda_requested_without_a_gpu_is_refused_before_any_kernel():
    import torch

    out = subprocess.run([sys.executable, "-m", "mlcl", "reproduce", "--only", "00", "--device", "cuda"],
                         capture_output=True, text=True, timeout=120)
    if torch.cuda.is_available():  # on a GPU machine the same command must be accepted by validation
        from mlcl.reproduce import validate

        assert [p.stem for p in validate("smoke", ["00"], None, "cuda")] == ["00_multilabel_basics"]
        return
    assert out.returncode == 2 and "CUDA is not available" in out.stderr and "Traceback" not in out.stderr


def test_missing_extra_names_the_pip_install(monkeypatch):
    import importlib.util

    from mlcl.reproduce import require

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "papermill" else real(n, *a))
    with pytest.raises(MlclError, match=r'mlcl reproduce needs papermill, not installed: pip install "mlcl\[book\]"'):
        require(["papermill", "jupytext"], "mlcl reproduce")


def test_book_errors_are_one_line(monkeypatch, capsys):
    import mlcl.book

    def boom(**kw):
        raise MlclError("01_cgmvae: stale execution, code cell 3 changed since it was executed: run `x`")

    monkeypatch.setattr(mlcl.book, "build", boom)
    assert main(["book"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mlcl book: error: 01_cgmvae: stale execution, code cell 3 changed since it was executed: run `x`"]


def test_version():
    import mlcl

    out = subprocess.run([sys.executable, "-m", "mlcl", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"mlcl {mlcl.__version__}"


def test_summary_table_reports_failures():
    from pathlib import Path

    t = summary_table([RunResult("a", True, 1.0, Path("a")), RunResult("b", False, 2.5, Path("b"), "x")])
    assert "FAILED" in t and "3.5" in t


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "mlcl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "reproduce" in out.stdout


def test_data_list_shows_offline_datasets(data_root, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("yeast", "yeast-mulsupcon", "scene", "emotions", "reuters21578", "digits"):
        line = next((ln for ln in out.splitlines() if ln.split() and ln.split()[0] == name), None)
        assert line is not None, f"{name} missing from `mlcl data list`:\n{out}"
        assert " yes " in f" {line} ", f"{name} should be available offline here: {line}"


def test_a_chapter_needing_a_missing_extra_is_refused_before_its_kernel(monkeypatch):
    """Chapter 04 imports mlcl.models.text, which loads transformers lazily: name the extra up front."""
    import importlib.util

    from mlcl.reproduce import chapter_imports, discover, validate

    abalone = next(p for p in discover() if p.stem.startswith("04"))
    assert "transformers" in chapter_imports(abalone)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "transformers" else real(n, *a))
    with pytest.raises(MlclError, match=r'chapter 04_abalone needs transformers, not installed: pip install "mlcl\[text\]"'):
        validate("smoke", ["04"], None, "cpu")
    assert [p.stem for p in validate("smoke", ["00"], None, "cpu")] == ["00_multilabel_basics"]


@pytest.mark.parametrize("command", ["reproduce", "book"])
def test_without_the_book_extra_the_command_says_what_to_install(command):
    """No traceback: one line naming `pip install "mlcl[book]"` (papermill / jupyter-book absent)."""
    code = ("import sys; sys.modules['papermill'] = sys.modules['jupyter_book'] = None; "
            f"from mlcl.cli import main; raise SystemExit(main(['{command}']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"mlcl {command}: error: mlcl {command} needs ") and 'pip install "mlcl[book]"' in lines[0]
