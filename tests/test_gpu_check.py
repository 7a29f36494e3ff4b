"""benchmarks/gpu_check.py (``make gpu-check``): its plan, its refusal without CUDA, its summary.

The real run needs a GPU; these tests check everything around it on any machine."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


def _run(*args, **env):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_dry_run_lists_every_step_without_a_gpu():
    r = _run("--dry-run", CUDA_VISIBLE_DEVICES="")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    tests = [ln for ln in lines if "unit tests (cuda)" in ln]
    assert len(tests) == 1 and "MLCL_TEST_DEVICE=cuda" in tests[0] and "-m pytest tests" in tests[0]
    assert "not notebook and not book" in tests[0] and "--ignore=tests/test_notebooks.py" in tests[0]
    chapters = sorted(p.name[:2] for p in (REPO / "notebooks").glob("[0-9][0-9]_*.md"))
    assert chapters, "no chapter found"
    for nn in chapters:
        step = [ln for ln in lines if f"chapter {nn} " in ln]
        assert len(step) == 1, nn
        assert "reproduce --profile smoke --device cuda --only " + nn in step[0]
    bench = [ln for ln in lines if "bench_losses (cuda)" in ln]
    assert len(bench) == 1 and "--device cuda" in bench[0] and "results/gpu/bench_losses.json" in bench[0]
    has_ts = (REPO / "benchmarks" / "bench_train_step.py").is_file()
    assert any("bench_train_step (cuda)" in ln for ln in lines) == has_ts
    assert lines[-1].startswith("budget 480 s") and "summary.json" in lines[-1]


def test_refuses_without_cuda_in_one_clear_line(tmp_path):
    # CUDA_VISIBLE_DEVICES="" hides every GPU, so this holds on a GPU machine too
    r = _run("--out", str(tmp_path / "gpu"), CUDA_VISIBLE_DEVICES="")
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert err[0].startswith("gpu_check: error: no CUDA device: torch.cuda.is_available() is False")
    assert "--dry-run" in err[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "gpu").exists()  # nothing written


def test_only_selects_step_groups():
    r = _run("--dry-run", "--only", "chapters")
    assert r.returncode == 0, r.stderr
    steps = r.stdout.splitlines()[:-1]
    assert steps and all("chapter" in ln for ln in steps)
    r = _run("--dry-run", "--only", "tests", "bench")
    assert not any("chapter" in ln for ln in r.stdout.splitlines()) and "unit tests" in r.stdout


def test_bad_budget_is_refused():
    r = _run("--budget", "0", "--dry-run")
    assert r.returncode == 2 and "--budget must be > 0" in r.stderr


def test_summary_records_provenance_and_each_step(gc, tmp_path, monkeypatch):
    """The whole main() with a fake plan: pass, fail, timeout, and a step skipped for budget."""
    py = sys.executable
    steps = [
        gc.Step("ok", [py, "-c", "print('fine')"]),
        gc.Step("broken", [py, "-c", "import sys; sys.exit(3)"]),
        gc.Step("env seen", [py, "-c", "import os, sys; sys.exit(os.environ['MLCL_TEST_DEVICE'] != 'cuda')"],
                env={"MLCL_TEST_DEVICE": "cuda"}),
        gc.Step("slow", [py, "-c", "import time; time.sleep(60)"]),
        gc.Step("never", [py, "-c", "pass"]),
    ]
    monkeypatch.setattr(gc, "require_cuda", lambda: None)
    monkeypatch.setattr(gc, "plan", lambda out, probe_benchmarks=True: steps)
    out = tmp_path / "gpu"
    rc = gc.main(["--out", str(out), "--budget", "5"])
    assert rc == 1
    s = json.loads((out / "summary.json").read_text())
    assert s["passed"] is False and s["budget_seconds"] == 5
    for key in ("torch", "cuda_build", "cudnn", "python", "date", "git_commit", "git_dirty"):
        assert key in s["provenance"], key
    got = {r["name"]: (r["status"], r["returncode"]) for r in s["steps"]}
    assert got["ok"] == ("pass", 0) and got["broken"] == ("fail", 3) and got["env seen"] == ("pass", 0)
    assert got["slow"] == ("timeout", None) and got["never"] == ("skipped", None)
    assert all(r["seconds"] >= 0 for r in s["steps"])
    assert (out / "logs" / "ok.log").read_text().strip() == "fine"


def test_no_cuda_check_names_the_build(gc, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(gc.NoCuda, match=r"torch\.cuda\.is_available\(\) is False \(torch "):
        gc.require_cuda()
