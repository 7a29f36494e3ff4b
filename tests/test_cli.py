from __future__ import annotations

import subprocess
import sys

import pytest

from mlcl.cli import build_parser, main
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
    with pytest.raises(SystemExit, match="unknown notebook"):
        select(["99_nothing"], repo)


def test_summary_table_reports_failures():
    from pathlib import Path

    t = summary_table([RunResult("a", True, 1.0, Path("a")), RunResult("b", False, 2.5, Path("b"), "x")])
    assert "FAILED" in t and "3.5" in t


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "mlcl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "reproduce" in out.stdout


def test_data_list_shows_offline_datasets(shared_data, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("yeast", "yeast-mulsupcon", "scene", "emotions", "reuters21578", "digits"):
        line = next((ln for ln in out.splitlines() if ln.split() and ln.split()[0] == name), None)
        assert line is not None, f"{name} missing from `mlcl data list`:\n{out}"
        assert " yes " in f" {line} ", f"{name} should be available offline here: {line}"
