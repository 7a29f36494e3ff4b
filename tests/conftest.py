"""Shared fixtures. Nothing here downloads: data come from ../shared/data via MLCL_DATA."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# Point the data root at ../shared/data for the whole session (the loaders' cache layout).
if "MLCL_DATA" not in os.environ and (SHARED / "data").is_dir():
    os.environ["MLCL_DATA"] = str(SHARED / "data")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: name -> (seconds, status) of the long steps, printed as a table at the end of the run.
TIMINGS: dict[str, tuple[float, str]] = {}


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``. FAILS (never skips) when it is missing: CI always has it."""
    d = SHARED / "data"
    if not d.is_dir():
        pytest.fail(f"{d} is missing: clone the project with ../shared beside it (CI does)", pytrace=False)
    return d


@pytest.fixture(scope="session")
def device() -> str:
    """The torch device tests put their tensors and models on: ``"cuda"`` when available, else
    ``"cpu"``; ``MLCL_TEST_DEVICE`` overrides it (``make gpu-check`` sets ``cuda``). An explicit
    CUDA request on a machine without CUDA FAILS (never falls back to the CPU silently)."""
    import torch

    want = os.environ.get("MLCL_TEST_DEVICE", "").strip()
    if not want:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(want)
    except RuntimeError as exc:
        pytest.fail(f"MLCL_TEST_DEVICE={want!r} is not a torch device ({exc}): use cpu or cuda", pytrace=False)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"MLCL_TEST_DEVICE={want!r} but torch.cuda.is_available() is False: unset it or run on a GPU", pytrace=False)
    return want


@pytest.fixture
def timed(request):
    """Record the wall time of a test in the end-of-run timing table."""
    t0 = time.perf_counter()
    yield
    rep = getattr(request.node, "rep_call", None)
    status = "ok" if rep is not None and rep.passed else "FAILED"
    TIMINGS[request.node.name] = (time.perf_counter() - t0, status)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    tr = terminalreporter
    tr.section("timing table (notebooks and book)")
    w = max(len(k) for k in TIMINGS)
    tr.write_line(f"{'step':<{w}}  {'seconds':>8}  status")
    for k, (s, st) in TIMINGS.items():
        tr.write_line(f"{k:<{w}}  {s:8.1f}  {st}")
    tr.write_line(f"{'total':<{w}}  {sum(s for s, _ in TIMINGS.values()):8.1f}")
