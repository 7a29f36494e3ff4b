"""``make gpu-check``: everything that can break on a GPU, on one GPU, in under 8 minutes.

Steps (in this order, each with its wall time and pass/fail in ``results/gpu/summary.json``):

1. ``unit tests (cuda)`` — the unit tests with ``MLCL_TEST_DEVICE=cuda`` (the ``device`` fixture
   of ``tests/conftest.py``), without the slow notebook / book / packaging ones, which the
   chapter step covers or which do not touch the device;
2. ``chapter NN`` — every chapter, ``mlcl reproduce --profile smoke --device cuda --only NN``
   (its results go to ``results/smoke/``, git-ignored, as any smoke run; copied to
   ``results/gpu/smoke/``);
3. ``bench_losses (cuda)`` / ``bench_train_step (cuda)`` — the CUDA rows of the benchmarks
   (``bench_train_step.py`` only if it exists), their JSON written to ``results/gpu/``.

The summary records the provenance (torch / CUDA / cuDNN versions, device name and memory, git
commit, date). A step that would run past the budget (default 480 s) is cut by a timeout and
counts as failed; once the budget is spent the remaining steps are recorded as skipped. The exit
status is 0 only if every step passed.

Without a CUDA device the script refuses with one line (exit 2); ``--dry-run`` prints the steps
and runs nothing (works anywhere). Run: ``python benchmarks/gpu_check.py [--dry-run]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = 480.0  # the target of issue 12: under 8 minutes on one GPU
# slow or device-free test groups the chapter step already covers (markers of pyproject.toml)
PYTEST_MARKERS = "not notebook and not book and not slow and not committed_executions"
PYTEST_IGNORE = ("tests/test_notebooks.py", "tests/test_book.py", "tests/test_packaging.py")


@dataclass
class Step:
    name: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # files the step writes, relative to REPO


@dataclass
class StepResult:
    name: str
    cmd: str
    status: str  # "pass" | "fail" | "timeout" | "skipped"
    returncode: int | None
    seconds: float
    log: str | None
    outputs: list[str]


class NoCuda(RuntimeError):
    pass


def require_cuda() -> None:
    """Raise :class:`NoCuda` with a one-line reason when no CUDA device is usable."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise NoCuda(f"torch is not importable ({exc}): run `make install` first") from exc
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        raise NoCuda(
            f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, CUDA "
            f"build {build}); run it on a machine with an NVIDIA GPU and a CUDA build of torch, "
            "or pass --dry-run to list the steps"
        )


def provenance() -> dict:
    import torch

    info: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(
            device_name=p.name,
            device_count=torch.cuda.device_count(),
            capability=f"{p.major}.{p.minor}",
            memory_gib=round(p.total_memory / 2**30, 1),
        )
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        info["driver"] = q.stdout.strip().splitlines()[0] if q.returncode == 0 and q.stdout.strip() else None
    for key, args in (("git_commit", ["rev-parse", "HEAD"]), ("git_status", ["status", "--porcelain"])):
        try:
            r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
            info[key] = r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            info[key] = None
    info["git_dirty"] = bool(info.pop("git_status", None))
    try:
        import mlcl

        info["mlcl"] = mlcl.__version__
    except Exception:  # pragma: no cover - reported, not fatal
        info["mlcl"] = None
    return info


def _chapters() -> list[str]:
    return sorted(p.name[:2] for p in (REPO / "notebooks").glob("[0-9][0-9]_*.md"))


def _accepts_out(script: Path) -> bool:
    """Whether a benchmark script takes ``--out`` (bench_train_step.py is written elsewhere)."""
    r = subprocess.run([sys.executable, str(script), "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    return r.returncode == 0 and "--out" in r.stdout


def plan(out: Path, probe_benchmarks: bool = True) -> list[Step]:
    """The steps, in order. ``probe_benchmarks=False`` does not run ``--help`` (dry run, tests)."""
    py = sys.executable
    rel = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    steps = [
        Step(
            "unit tests (cuda)",
            [py, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "-m", PYTEST_MARKERS,
             *(f"--ignore={p}" for p in PYTEST_IGNORE), f"--junitxml={rel / 'pytest.xml'}"],
            env={"MLCL_TEST_DEVICE": "cuda"},
            outputs=[str(rel / "pytest.xml")],
        )
    ]
    mlcl_cli = [py, "-m", "mlcl"]
    for nn in _chapters():
        steps.append(Step(f"chapter {nn} (smoke, cuda)",
                          [*mlcl_cli, "reproduce", "--profile", "smoke", "--device", "cuda", "--only", nn]))
    bench = REPO / "benchmarks"
    steps.append(Step(
        "bench_losses (cuda)",
        [py, str(bench.relative_to(REPO) / "bench_losses.py"), "--device", "cuda", "--repeat", "1",
         "--out", str(rel / "bench_losses.json"), "--md", str(rel / "bench_losses.md")],
        outputs=[str(rel / "bench_losses.json"), str(rel / "bench_losses.md")],
    ))
    ts = bench / "bench_train_step.py"
    if ts.is_file():
        cmd = [py, str(ts.relative_to(REPO)), "--device", "cuda"]
        outputs: list[str] = []
        if not probe_benchmarks or _accepts_out(ts):
            cmd += ["--out", str(rel / "bench_train_step.json")]
            outputs = [str(rel / "bench_train_step.json")]
        steps.append(Step("bench_train_step (cuda)", cmd, outputs=outputs))
    return steps


GROUPS = ("tests", "chapters", "bench")


def _select(steps: list[Step], groups: list[str]) -> list[Step]:
    def group(st: Step) -> str:
        return "tests" if st.name.startswith("unit tests") else "chapters" if st.name.startswith("chapter") else "bench"

    return [st for st in steps if group(st) in groups]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def run_steps(steps: list[Step], out: Path, budget: float) -> list[StepResult]:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results = []
    for st in steps:
        left = budget - (time.perf_counter() - t_start)
        shown = shlex.join(st.cmd)
        if left <= 1:
            results.append(StepResult(st.name, shown, "skipped", None, 0.0, None, []))
            print(f"[gpu-check] {st.name}: skipped (budget of {budget:.0f} s spent)", flush=True)
            continue
        log = logs / f"{_slug(st.name)}.log"
        env = {**os.environ, **st.env}
        print(f"[gpu-check] {st.name}: {shown}", flush=True)
        t0 = time.perf_counter()
        with open(log, "w") as fh:
            # own process group: a timeout also ends the step's children (papermill's kernel)
            proc = subprocess.Popen(st.cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc: int | None = proc.wait(timeout=left)
                status = "pass" if rc == 0 else "fail"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc, status = None, "timeout"
                fh.write(f"\n[gpu-check] killed after {left:.0f} s: the budget ran out\n")
        secs = time.perf_counter() - t0
        made = [o for o in st.outputs if (REPO / o).is_file()]
        results.append(StepResult(st.name, shown, status, rc, round(secs, 1),
                                  str(log.relative_to(REPO) if log.is_relative_to(REPO) else log), made))
        print(f"[gpu-check] {st.name}: {status} in {secs:.1f} s (log {log})", flush=True)
    return results


def _copy_smoke_results(out: Path, since: float) -> list[str]:
    """The smoke results JSONs this run wrote, copied next to the summary."""
    src = REPO / "results" / "smoke"
    copied = []
    if src.is_dir():
        (out / "smoke").mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*.json")):
            if f.stat().st_mtime >= since:
                shutil.copy2(f, out / "smoke" / f.name)
                copied.append(f.name)
    return copied


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the steps, run nothing (no GPU needed)")
    ap.add_argument("--out", default=str(REPO / "results" / "gpu"), help="output folder (default results/gpu)")
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all steps (default 480)")
    ap.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS),
                    help="step groups to run (default: all), e.g. --only chapters bench to rerun those")
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    if a.budget <= 0:
        print(f"gpu_check: error: --budget must be > 0 seconds, got {a.budget}", file=sys.stderr)
        return 2
    if a.dry_run:
        for i, st in enumerate(_select(plan(out, probe_benchmarks=False), a.only), 1):
            env = " ".join(f"{k}={v}" for k, v in st.env.items())
            print(f"{i:2d}. {st.name}: {(env + ' ') if env else ''}{shlex.join(st.cmd)}")
        print(f"budget {a.budget:.0f} s; summary -> {out / 'summary.json'}")
        return 0
    try:
        require_cuda()
    except NoCuda as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    t0, wall0 = time.perf_counter(), time.time()
    prov = provenance()
    results = run_steps(_select(plan(out), a.only), out, a.budget)
    total = time.perf_counter() - t0
    passed = all(r.status == "pass" for r in results)
    summary = {
        "passed": passed,
        "total_seconds": round(total, 1),
        "budget_seconds": a.budget,
        "within_budget": total <= a.budget,
        "provenance": prov,
        "steps": [asdict(r) for r in results],
        "smoke_results": _copy_smoke_results(out, wall0),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    width = max(len(r.name) for r in results)
    print(f"\n{'step':<{width}}  {'seconds':>8}  status")
    for r in results:
        print(f"{r.name:<{width}}  {r.seconds:8.1f}  {r.status}")
    print(f"{'total':<{width}}  {total:8.1f}  {'PASS' if passed else 'FAIL'} -> {out / 'summary.json'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
