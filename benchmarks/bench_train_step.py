"""Time of one MulSupCon pre-training step on yeast's shape, before and after the training engine.

    python benchmarks/bench_train_step.py [--steps 300] [--reps 5] [--baseline c546517] [--device cpu|cuda|all]

Setting (issue 18, item 3): the authors' yeast run — MLP 103 → 256 → 512 → 256 (dropout 0.2),
projection head 256 → 256 → 256, 14 labels (~30 % positive), batch 64, queue 256, MulSupCon loss,
Adam 4e-4 — on 1,500 synthetic rows (the step time does not depend on the values). CPU runs use
one thread. "before" is the pre-engine loop and models of git revision ``--baseline``
(``mlcl/pretrain.py``, ``mlcl/models/{moco,mulsupcon,backbones}.py`` read with ``git show``, so
it needs a git checkout; the losses are today's for both), "after" is
:func:`mlcl.training.mulsupcon.pretrain` on :func:`mlcl.training.train`. Each measurement is the
wall time of ``--steps`` steps after a warm-up, divided by the steps (CUDA: synchronised at the
end only); the two are interleaved ``--reps`` times and the medians reported. Writes
``results/benchmarks/train_step.json`` with provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mlcl.models.backbones import MLP  # noqa: E402
from mlcl.models.mulsupcon import MulSupConModel  # noqa: E402
from mlcl.results import provenance  # noqa: E402
from mlcl.training.mulsupcon import PretrainConfig, pretrain  # noqa: E402

N, F_IN, L, B, QUEUE = 1500, 103, 14, 64, 256
OLD_FILES = {"_old_backbones": "mlcl/models/backbones.py", "_old_moco": "mlcl/models/moco.py",
             "_old_mulsupcon": "mlcl/models/mulsupcon.py", "_old_pretrain": "mlcl/pretrain.py"}


def load_baseline(rev: str) -> dict[str, types.ModuleType]:
    """The baseline revision's modules, imported under private names (imports between them rewired)."""
    mods: dict[str, types.ModuleType] = {}
    for name, path in OLD_FILES.items():
        src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
        for other, p in OLD_FILES.items():
            src = src.replace(p[:-3].replace("/", "."), other)
        mod = types.ModuleType(name)
        sys.modules[name] = mod
        exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)  # noqa: S102 - our own repository's code
        mods[name] = mod
    return mods


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    Y = (rng.random((N, L)) < 0.3).astype(np.float32)
    return rng.normal(size=(N, F_IN)).astype(np.float32), Y


def ms_per_step(which: str, mods: dict | None, device: str, steps: int) -> float:
    X, Y = data()
    torch.manual_seed(0)
    if which == "before":
        m = mods["_old_mulsupcon"].MulSupConModel(mods["_old_backbones"].MLP(F_IN, [256, 512, 256], dropout=0.2), L,
                                                  queue_size=QUEUE)
        run = mods["_old_pretrain"].pretrain
        cfg = mods["_old_pretrain"].PretrainConfig
    else:
        m = MulSupConModel(MLP(F_IN, [256, 512, 256], dropout=0.2), L, queue_size=QUEUE)
        run, cfg = pretrain, PretrainConfig
    run(m, X, Y, cfg(epochs=1, iters_per_epoch=30, batch_size=B), device=device, progress=False)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.process_time()
    run(m, X, Y, cfg(epochs=1, iters_per_epoch=steps, batch_size=B), device=device, progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.process_time() - t0) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--baseline", default="c546517", help="git revision of the pre-engine code")
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--note", default="", help="recorded in the provenance (e.g. machine load)")
    ap.add_argument("--out", default=str(REPO / "results" / "benchmarks" / "train_step.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    try:
        mods = load_baseline(args.baseline)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"baseline {args.baseline} unavailable ({e}); timing 'after' only", file=sys.stderr)
        mods = None
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    rows = []
    for dev in devices:
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.reps):  # interleaved: machine load affects both alike
            for which in ("before", "after") if mods else ("after",):
                times[which].append(ms_per_step(which, mods, dev, args.steps))
        row = {"device": dev, "threads": 1 if dev == "cpu" else None,
               **{f"{k}_ms": round(statistics.median(v), 3) for k, v in times.items() if v},
               **{f"{k}_all_ms": [round(t, 3) for t in v] for k, v in times.items() if v}}
        if mods:
            row["speedup"] = round(row["before_ms"] / row["after_ms"], 2)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("all_ms")}))
    out = {"setting": {"n": N, "features": F_IN, "labels": L, "batch": B, "queue": QUEUE,
                       "encoder": [256, 512, 256], "dropout": 0.2, "steps": args.steps, "reps": args.reps,
                       "baseline_revision": args.baseline},
           "rows": rows,
           "provenance": provenance(profile="full", seeds=0, wall_seconds=time.perf_counter() - t_start,
                                    device=",".join(devices), extra={
                                        "torch_num_threads": 1,
                                        # the machine may be shared: CPU times, but caches and
                                        # memory bandwidth are not
                                        "load_average_start": load_start,
                                        "load_average_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
                                        "cpu_count": os.cpu_count(), "note": args.note})}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
