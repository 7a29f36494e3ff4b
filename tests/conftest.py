"""Shared fixtures. Nothing here downloads. Data come from ../shared/data via MLCL_DATA when it sits
beside the checkout (CI, developers); a newcomer's clone without it uses the copy that ships with
the package (the same files, pinned by sha256)."""

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
    """``../shared/data``, the maintainers' independent reference copy, for the tests that compare
    the shipped data with it. In CI (``CI`` set) a missing copy FAILS; on a newcomer's clone those
    comparisons are skipped with this reason (every other data test runs on :func:`data_root`)."""
    d = SHARED / "data"
    if not d.is_dir():
        msg = f"{d} (the maintainers' reference copy) is missing"
        if os.environ.get("CI"):
            pytest.fail(f"{msg}: CI must clone the project with ../shared beside it", pytrace=False)
        pytest.skip(f"{msg}: this test compares the shipped data with it")
    return d


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root in the cache layout (``mulan/``, ``reuters21578/``, ``mulsupcon_yeast/``):
    ``../shared/data`` when present, else the packaged copy decompressed (sha256-checked)."""
    d = SHARED / "data"
    if d.is_dir():
        return d
    from mlcl.data import store

    root = tmp_path_factory.mktemp("packaged_data")
    for dname, info in store.manifest()["datasets"].items():
        files = [f for f, e in info.get("files", {}).items() if e.get("packaged")]
        (root / dname).mkdir()
        for f in files:
            store._unpack_one(dname, f, root / dname)
    return root


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
