"""Forward+backward time and peak memory of mlcl.losses against authors'-style baselines.

    python benchmarks/bench_losses.py [--reps 20] [--device cpu|cuda|all] [--quick]

Setting (the issue's): B = 256, queue 8192, L = 80 labels, D = 128, about 3 and 8 labels per
sample; C-GMVAE: the whole objective (0.5·3 BCE + 6·KL + contrastive, latent 64, E = D = 128).
CPU runs use one thread (``torch.set_num_threads(1)``). Writes
``results/benchmarks/losses.json`` (with provenance) and ``book/_generated/losses_bench.md``
(the table the book includes). This is a script, not a timed test: the machine is shared, so
run it a few times and compare (``--repeat``).

CPU peak memory = rise of the resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) during one forward+backward, measured in a separate process with
glibc's mmap threshold pinned (``MALLOC_MMAP_THRESHOLD_=65536``) so that freed blocks go back
to the OS; the timings run in the main process with the default allocator. CUDA peak memory = ``torch.cuda.max_memory_allocated`` above
the inputs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import baselines  # noqa: E402

from mlcl.losses import (  # noqa: E402
    FeatureLabelContrastiveLoss,
    JaccardSupConLoss,
    LabelLevelContrastiveLoss,
    MSCLoss,
    MulSupConLoss,
    SupConLoss,
    gaussian_mixture_kl,
)

B, QUEUE, L, D, LATENT = 256, 8192, 80, 128, 64
TARGETS_MS = {"mulsupcon": 30.0, "msc": 15.0, "cgmvae": 8.0}  # 1 CPU thread
AUTHORS_MS = {  # official code, 1 CPU thread (../shared/reference/official_code_notes.md)
    "mulsupcon": "120–210",
    "supcon_any": "45–65",
    "supcon_all": "45–65",
    "msc": "67–87",
    "cgmvae": "18–56",
    "llcl": "14–18",
}


# ----------------------------------------------------------------------------- inputs
def _labels(n: int, per_sample: int, g: torch.Generator) -> torch.Tensor:
    """Bernoulli(per_sample / L) labels, every row with at least one (the baselines need it)."""
    y = (torch.rand(n, L, generator=g) < per_sample / L).long()
    empty = y.sum(1) == 0
    y[empty, torch.randint(0, L, (int(empty.sum()),), generator=g)] = 1
    return y


def make_inputs(per_sample: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = _labels(B, per_sample, g)
    yq = _labels(QUEUE, per_sample, g)
    d: dict[str, torch.Tensor] = dict(
        q=torch.randn(B, D, generator=g),
        keys=F.normalize(torch.randn(B + QUEUE, D, generator=g), dim=1),  # batch keys + queue
        y=y,
        yk=torch.cat([y, yq]),
        protos=torch.randn(L, D, generator=g),
        e=torch.randn(B, L, D, generator=g),
        # C-GMVAE
        e_label=F.normalize(torch.randn(B, D, generator=g), dim=1),
        e_feat1=F.normalize(torch.randn(B, D, generator=g), dim=1),
        e_feat2=F.normalize(torch.randn(B, D, generator=g), dim=1),
        W=torch.randn(D, L, generator=g) * 0.1,
        mu_q=torch.randn(B, LATENT, generator=g),
        logvar_q=torch.randn(B, LATENT, generator=g) * 0.1,
        mu_p=torch.randn(L, LATENT, generator=g),
        logvar_p=torch.randn(L, LATENT, generator=g) * 0.1,
        eps=torch.randn(B, LATENT, generator=g),
    )
    return {k: v.to(device) for k, v in d.items()}


GRAD = ("q", "protos", "e", "e_label", "e_feat1", "e_feat2", "W", "mu_q", "logvar_q", "mu_p",
        "logvar_p")


def leaves(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.detach().clone().requires_grad_(True) if k in GRAD else v) for k, v in d.items()}


# ----------------------------------------------------------------------------- the cases
def _z(d):  # C-GMVAE's KL sample (reparameterised)
    return d["mu_q"] + d["eps"] * (0.5 * d["logvar_q"]).exp()


_flcl = FeatureLabelContrastiveLoss(temperature=1.0, normalize_labels=False)


def ours_cgmvae(d):
    y = d["y"].float()
    bce = sum(F.binary_cross_entropy_with_logits(e @ d["W"], y)
              for e in (d["e_label"], d["e_feat1"], d["e_feat2"]))
    kl = gaussian_mixture_kl(_z(d), d["mu_q"], d["logvar_q"], d["mu_p"], d["logvar_p"], d["y"])
    cl = _flcl(torch.cat([d["e_label"], d["e_feat1"]]), d["W"].T, torch.cat([d["y"], d["y"]]))
    return 0.5 * bce + 6.0 * kl + cl


def base_cgmvae(d):
    return baselines.cgmvae_objective(d["e_label"], d["e_feat1"], d["e_feat2"], d["W"], d["y"],
                                      _z(d), d["mu_q"], d["logvar_q"], d["mu_p"], d["logvar_p"])


CASES: dict[str, dict] = {
    "mulsupcon": dict(
        title="MulSupCon (queue 8192)",
        ours=lambda d: MulSupConLoss(0.1)(d["q"], d["y"], d["keys"], d["yk"]),
        base=lambda d: baselines.mulsupcon_pairs(d["q"], d["y"], d["keys"], d["yk"], 0.1),
    ),
    "supcon_any": dict(
        title="SupCon ANY (queue 8192)",
        ours=lambda d: SupConLoss(0.1, "any")(d["q"], d["y"], d["keys"], d["yk"]),
        base=lambda d: baselines.supcon_all_any(d["q"], d["y"], d["keys"], d["yk"], 0.1, "any"),
    ),
    "supcon_all": dict(
        title="SupCon ALL (queue 8192)",
        ours=lambda d: SupConLoss(0.1, "all")(d["q"], d["y"], d["keys"], d["yk"]),
        base=lambda d: baselines.supcon_all_any(d["q"], d["y"], d["keys"], d["yk"], 0.1, "all"),
    ),
    "msc": dict(
        title="L_MSC (batch, no queue, as the authors)",
        ours=lambda d: MSCLoss(0.1, 0.1, 1.0)(d["q"], d["y"], d["protos"]),
        base=lambda d: baselines.msc_dense(d["q"], d["y"], d["protos"], 0.1, 0.1, 1.0),
    ),
    "msc_queue": dict(
        title="L_MSC with a queue of 8192 (the paper's description)",
        ours=lambda d: MSCLoss(0.1, 0.1, 1.0)(d["q"], d["y"], d["protos"], d["keys"], d["yk"]),
        base=None,
    ),
    "jaccard": dict(
        title="L_Base (Jaccard SupCon, batch)",
        ours=lambda d: JaccardSupConLoss(0.1)(d["q"], d["y"]),
        base=lambda d: baselines.jaccard_dense(d["q"], d["y"], 0.1),
    ),
    "llcl": dict(
        title="MulCon LLCL (B × L × D label embeddings)",
        ours=lambda d: LabelLevelContrastiveLoss(0.2)(d["e"], d["y"]),
        base=lambda d: baselines.llcl_rows(d["e"], d["y"], 0.2),
    ),
    "cgmvae": dict(
        title="C-GMVAE objective (BCE + 6·KL + contrastive)",
        ours=ours_cgmvae,
        base=base_cgmvae,
    ),
}


# ----------------------------------------------------------------------------- measuring
def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return -1


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def fwd_bwd(fn: Callable, d: dict) -> torch.Tensor:
    loss = fn(d)
    loss.backward()
    return loss


def peak_mb(fn: Callable, data: dict, device: str) -> float | None:
    d = leaves(data)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fwd_bwd(fn, d)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status("VmRSS")
    fwd_bwd(fn, d)
    return max(0, _status("VmHWM") - before) / 2**20


def time_ms(
    fn: Callable, data: dict, device: str, reps: int, warmup: int = 3
) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU times (ms) of forward+backward. On a shared machine the CPU
    time of the (single-threaded) process is the robust figure: it excludes the time spent
    waiting for a core."""
    d = leaves(data)
    wall, cpu = [], []
    for i in range(warmup + reps):
        for v in d.values():
            v.grad = None
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fwd_bwd(fn, d)
        _sync(device)
        if i >= warmup:
            wall.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    return wall, cpu


def agreement(case: dict, data: dict) -> float | None:
    if case["base"] is None:
        return None
    d64 = {k: (v.double() if v.is_floating_point() else v) for k, v in data.items()}
    with torch.no_grad():
        a, b = case["ours"](d64), case["base"](d64)
    return abs(float(a) - float(b))


def cpu_peaks(names: list[str]) -> dict:
    """Peak memory of every case, measured in a fresh process with a pinned mmap threshold."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(
        [sys.executable, __file__, "--memory-only", "--cases", ",".join(names)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def memory_only(names: list[str]) -> None:
    torch.set_num_threads(1)
    res = {}
    for per_sample in (3, 8):
        data = make_inputs(per_sample, "cpu")
        for name in names:
            for who in ("ours", "base"):
                fn = CASES[name][who]
                if fn is not None:
                    fwd_bwd(fn, leaves(data))  # warm-up (lazy initialisation)
                    res[f"{name}/{per_sample}/{who}"] = min(
                        peak_mb(fn, data, "cpu") or 0.0 for _ in range(2)
                    )
    print(json.dumps(res))


def run(device: str, reps: int, names: list[str]) -> list[dict]:
    rows = []
    peaks = cpu_peaks(names) if device == "cpu" else {}
    for per_sample in (3, 8):
        data = make_inputs(per_sample, device)
        mean_labels = float(data["y"].float().sum(1).mean())
        for name in names:
            case = CASES[name]
            row = dict(loss=name, title=case["title"], device=device,
                       labels_per_sample=round(mean_labels, 2))
            for who in ("ours", "base"):
                fn = case[who]
                if fn is None:
                    row[who] = None
                    continue
                mem = (peaks.get(f"{name}/{per_sample}/{who}") if device == "cpu"
                       else peak_mb(fn, data, device))
                wall, cpu = time_ms(fn, data, device, reps)
                row[who] = dict(median_ms=statistics.median(wall), min_ms=min(wall),
                                cpu_median_ms=statistics.median(cpu), cpu_min_ms=min(cpu),
                                peak_mb=mem, reps=reps)
                # the headline figure: CPU time of the 1-thread process on CPU, wall on CUDA
                row[who]["time_ms"] = row[who]["cpu_median_ms" if device == "cpu" else "median_ms"]
            row["abs_diff_float64"] = agreement(case, data) if device == "cpu" else None
            o, b = row["ours"], row["base"]
            row["speedup"] = (b["time_ms"] / o["time_ms"]) if b else None
            print(f"[{device}] {name:11s} ~{per_sample} labels: ours {o['median_ms']:7.2f} ms "
                  f"(cpu {o['cpu_median_ms']:6.2f}) "
                  f"{o['peak_mb'] if o['peak_mb'] is not None else float('nan'):7.1f} MB | "
                  + (f"baseline {b['median_ms']:7.2f} ms {b['peak_mb'] or 0:7.1f} MB"
                     if b else "baseline —"), flush=True)
            rows.append(row)
    return rows


def provenance(threads: dict) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
    except Exception:
        commit = None
    try:
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "mlcl/losses", "benchmarks"],
                                    cwd=REPO, capture_output=True, text=True).stdout.strip())
    except Exception:
        dirty = None
    return dict(
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        commit=commit or "none (no commit yet)",
        uncommitted_changes=dirty,
        python=platform.python_version(),
        torch=torch.__version__,
        platform=platform.platform(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
        cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        threads=threads,
        setting=dict(batch=B, queue=QUEUE, labels=L, dim=D, latent=LATENT),
        note="shared machine: other jobs compete for the CPU; see 'runs' for repeat stability",
    )


# ----------------------------------------------------------------------------- output
def _fmt(x: float | None, nd: int = 1) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def markdown(result: dict) -> str:
    prov = result["provenance"]
    lines = [
        "<!-- generated by benchmarks/bench_losses.py from results/benchmarks/losses.json; "
        "do not edit -->",
        "",
        f"Measured {prov['date']} (commit `{prov['commit'][:12]}`"
        + (", uncommitted changes" if prov.get("uncommitted_changes") else "")
        + f"), torch {prov['torch']}, Python {prov['python']}, {prov['cpu_count']} CPU cores "
        f"(shared), CPU runs on 1 thread"
        + (f", CUDA: {prov['cuda']}" if prov.get("cuda") else "")
        + f". Each figure is the median of {result['reps']} forward+backward passes after 3 "
        f"warm-ups; {len(result['runs'])} separate runs, the range of their medians in "
        "brackets. **CPU rows report the CPU time of the single-threaded process** "
        "(`time.process_time`), which excludes the time spent waiting for a core on this shared "
        "machine; the wall-clock median is given beside it. CUDA rows report wall-clock time. "
        "Peak memory: see the script's docstring.",
        "",
        "| loss | device | labels/sample | ours (ms) | ours, wall (ms) | baseline (ms) "
        "| speed-up | ours peak (MB) | baseline peak (MB) | authors' code (ms) | target (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        o, b = r["ours"], r["base"]
        rng = r.get("ours_run_range_ms")
        o_txt = _fmt(o["time_ms"], 1) + (f" ({rng[0]:.1f}–{rng[1]:.1f})" if rng else "")
        brng = r.get("base_run_range_ms")
        b_txt = (_fmt(b["time_ms"], 1) + (f" ({brng[0]:.0f}–{brng[1]:.0f})" if brng else "")
                 if b else "—")
        tgt = TARGETS_MS.get(r["loss"]) if r["device"] == "cpu" else None
        lines.append(
            f"| {r['title']} | {r['device']} | {r['labels_per_sample']} | {o_txt} | "
            f"{_fmt(o['median_ms'], 1)} | {b_txt} | "
            f"{_fmt(r['speedup'], 1) + '×' if r['speedup'] else '—'} | {_fmt(o['peak_mb'])} | "
            f"{_fmt(b['peak_mb']) if b else '—'} | "
            f"{AUTHORS_MS.get(r['loss'], '—') if r['device'] == 'cpu' else '—'} | "
            f"{_fmt(tgt, 0) if tgt else '—'} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2, help="separate runs (stability check)")
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default=str(REPO / "results/benchmarks/losses.json"))
    ap.add_argument("--md", default=str(REPO / "book/_generated/losses_bench.md"))
    ap.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_only:
        memory_only([n for n in args.cases.split(",") if n])
        return
    names = [n for n in args.cases.split(",") if n]
    devices = ["cpu"] if args.device == "cpu" else (["cuda"] if args.device == "cuda" else
                                                   ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    torch.set_num_threads(1)
    runs = []
    for i in range(args.repeat):
        print(f"--- run {i + 1}/{args.repeat}", flush=True)
        rows = []
        for dev in devices:
            rows += run(dev, args.reps, names)
        runs.append(rows)
    # the table shows, per row, the median over runs of each run's median, and their range
    final = runs[0]
    for j, r in enumerate(final):
        for who in ("ours", "base"):
            if r[who]:
                meds = [run_rows[j][who]["time_ms"] for run_rows in runs]
                walls = [run_rows[j][who]["median_ms"] for run_rows in runs]
                r[f"{who}_run_range_ms"] = [min(meds), max(meds)]
                r[who]["time_ms"] = statistics.median(meds)
                r[who]["median_ms"] = statistics.median(walls)
                mems = [run_rows[j][who]["peak_mb"] for run_rows in runs
                        if run_rows[j][who]["peak_mb"] is not None]
                r[who]["peak_mb"] = max(mems) if mems else None
        if r["base"]:
            r["speedup"] = r["base"]["time_ms"] / r["ours"]["time_ms"]
    result = dict(provenance=provenance({"torch_num_threads": 1}), reps=args.reps,
                  targets_ms_1_cpu_thread=TARGETS_MS, authors_ms_1_cpu_thread=AUTHORS_MS,
                  rows=final, runs=runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    md = Path(args.md)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(result))
    print(f"wrote {out} and {md}")


if __name__ == "__main__":
    main()
