"""Scaling benchmark of mlcl.losses: forward+backward time, peak memory and operator counts of
ours (dense and tiled) against a dense per-label-mask baseline, the authors' algorithm and the
bare limit, over batch size B, queue Q, labels L and labels per sample k.

    python benchmarks/bench_losses.py                  # CPU subset (≈ 10 min on 1 thread)
    python benchmarks/bench_losses.py --device cuda    # the complete grid on a GPU
    python benchmarks/bench_losses.py --quick          # main shape only (smoke)

Grid: B ∈ {64, 256, 1024, 4096}, Q ∈ {0, 8192, 65536}, L ∈ {14, 80, 1000}, k ∈ {1, 3, 8, 30},
D = 128. On the CPU (one thread) a documented subset: the main shape (256, 8192, 80, 3), each
axis varied alone around it, and large corners for the tiled path. With ``--device cuda`` the
complete grid.

What is timed (each a forward + backward, the anchors requiring gradients, the references —
MoCo keys and a queue — not):

* ``ours``: the ``mlcl.losses`` module, dense path (the default below the tiling threshold);
* ``tiled``: the same module with ``chunk_size=`` (column blocks, recomputation in backward);
* ``dense``: ``baselines.dense_*``, a direct dense transcription with per-label masks;
* ``authors``: ``baselines.authors_*``, the authors' algorithm (same tensors, same ops);
* ``limit``: the bare arithmetic every such loss needs — the B × M × D similarity product, one
  exp pass over it, and the B × M × D product of the backward (no masks, no labels).

CPU times are the process CPU time (``time.process_time``, one thread), medians of repeats
interleaved across the five contenders (so a busy period hits all of them); CUDA times are
wall-clock after synchronisation. Peak memory: CPU = rise of the resident-set high-water mark
(``VmHWM``, reset through ``/proc/self/clear_refs``) over one forward+backward, measured in a
separate process with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed blocks return to the OS;
CUDA = ``torch.cuda.max_memory_allocated`` above the inputs. Operator counts: every ``aten::``
event ``torch.profiler`` records on the CPU during one forward+backward after a warm-up (a
device-independent proxy for kernel launches; nested events count, as the profiler lists them).

Writes ``results/benchmarks/losses.json`` (with provenance), ``book/_generated/losses_bench.md``
and ``book/_generated/losses_scaling.png``.
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

from mlcl.models.moco import LabelledQueue  # noqa: E402
from mlcl.losses import (  # noqa: E402
    FeatureLabelContrastiveLoss,
    JaccardSupConLoss,
    LabelLevelContrastiveLoss,
    MSCLoss,
    MulSupConLoss,
    SupConLoss,
    gaussian_mixture_kl,
)

D, LATENT, TAU = 128, 64, 0.1
MAIN = (256, 8192, 80, 3)
CHUNK = 2048  # tiled path: references per block
WHO = ("ours", "tiled", "dense", "authors", "limit")
MAX_BASELINE_GB = 3.0  # baselines whose estimated peak exceeds this are not run (noted)
MAX_DENSE_ELEMENTS = 1 << 26  # our dense path is not timed above this B × M (the tiled one is)


def cpu_shapes() -> list[tuple[int, int, int, int]]:
    B, Q, L, k = MAIN
    shapes = [MAIN]
    shapes += [(b, Q, L, k) for b in (64, 1024)]
    shapes += [(B, q, L, k) for q in (0, 65536)]
    shapes += [(B, Q, l, k) for l in (14, 1000)]
    shapes += [(B, Q, L, kk) for kk in (1, 8, 30)]
    shapes += [(1024, 65536, 1000, 30), (4096, 65536, 80, 3)]  # tiled corners
    return shapes


def full_grid() -> list[tuple[int, int, int, int]]:
    return [(b, q, l, k) for b in (64, 256, 1024, 4096) for q in (0, 8192, 65536)
            for l in (14, 80, 1000) for k in (1, 3, 8, 30) if k < l]


# ----------------------------------------------------------------------------- inputs
def _labels(n: int, L: int, k: int, g: torch.Generator) -> torch.Tensor:
    """Bernoulli(k / L) labels, every row with at least one (the authors' code needs it)."""
    y = torch.rand(n, L, generator=g) < min(1.0, k / L)
    empty = ~y.any(1)
    y[empty, torch.randint(0, L, (int(empty.sum()),), generator=g)] = True
    return y


def make_inputs(shape, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Anchors q (B, D), MoCo keys of the batch + the queue (B + Q, D, unit norm), labels y
    (B, L) as int64 (as a data loader gives them) and the references' labels as bool (as
    ``LabelledQueue.references`` returns them), L prototypes and the C-GMVAE tensors."""
    B, Q, L, k = shape
    g = torch.Generator().manual_seed(seed)
    y = _labels(B, L, k, g)
    d = dict(
        q=torch.randn(B, D, generator=g),
        keys=F.normalize(torch.randn(B + Q, D, generator=g), dim=1),
        y=y.long(),
        yk=torch.cat([y, _labels(Q, L, k, g)]),
        protos=torch.randn(L, D, generator=g),
        e=torch.randn(B, L, D, generator=g) if B * L * D <= 1 << 23 else torch.zeros(0),
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
    return {n: v.to(device) for n, v in d.items()}


GRAD = ("q", "protos")  # the leaves of the sample-level losses; other cases name theirs
CGMVAE_GRAD = ("e_label", "e_feat1", "e_feat2", "W", "mu_q", "logvar_q", "mu_p", "logvar_p")


def leaves(d: dict, grad=GRAD) -> dict:
    """Fresh leaf copies of the tensors that receive gradients (made outside the timed region)."""
    return {n: (v.detach().clone().requires_grad_(True) if n in grad else v) for n, v in d.items()}


# ----------------------------------------------------------------------------- the cases
def bare_limit(q: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """The arithmetic floor: s = q kᵀ, one exp pass, and the backward product exp(s) k."""
    with torch.no_grad():
        e = torch.mm(q, refs.t()).exp_()
        return torch.mm(e, refs)


def _ours_cgmvae(d):
    """The C-GMVAE objective as ``mlcl.models.cgmvae`` computes it: BCE summed over labels
    (mean over samples), 0.5 · three BCE terms + 6 · KL + the feature-label contrastive term."""
    y = d["y"].float()
    bce = sum(F.binary_cross_entropy_with_logits(e @ d["W"], y, reduction="none").sum(1).mean()
              for e in (d["e_label"], d["e_feat1"], d["e_feat2"]))
    z = d["mu_q"] + d["eps"] * (0.5 * d["logvar_q"]).exp()
    kl = gaussian_mixture_kl(z, d["mu_q"], d["logvar_q"], d["mu_p"], d["logvar_p"], d["y"])
    cl = FeatureLabelContrastiveLoss(1.0, normalize_labels=False)(
        torch.cat([d["e_label"], d["e_feat1"]]), d["W"].T, torch.cat([d["y"], d["y"]]))
    return 0.5 * bce + 6.0 * kl + cl


def _authors_cgmvae(d):
    return baselines.authors_cgmvae(d["e_label"], d["e_feat1"], d["e_feat2"], d["W"], d["y"],
                                    d["mu_q"], d["logvar_q"], d["mu_p"], d["logvar_p"], d["eps"])


_QUEUES: dict = {}


def _queue_for(d) -> LabelledQueue:
    """A LabelledQueue holding the Q tail keys of ``d`` and tracking its label statistics
    (built once per input set, outside the timed region, as a training run has it)."""
    key = (d["keys"].data_ptr(), tuple(d["keys"].shape))
    if key not in _QUEUES:
        B = d["q"].shape[0]
        tail, ytail = d["keys"][B:], d["yk"][B:]
        queue = LabelledQueue(tail.shape[0], tail.shape[1], ytail.shape[1]).to(tail.device)
        queue.references(d["keys"][:0], d["y"][:0], stats=True)  # start tracking
        queue.enqueue(tail, ytail)
        _QUEUES.clear()
        _QUEUES[key] = queue
    return _QUEUES[key]


def _mulsupcon_queue_stats(d):
    """A MoCo step's loss through the queue's label statistics, enqueue included (the queue
    keeps its size: the batch's keys replace the oldest B)."""
    B = d["q"].shape[0]
    queue = _queue_for(d)
    refs, ref_y = queue.references(d["keys"][:B], d["y"], stats=True)
    loss = MulSupConLoss(TAU)(d["q"], d["y"], refs, ref_y)
    queue.enqueue(d["keys"][:B], d["y"])
    return loss


def cases(shape) -> dict[str, dict]:
    """name -> {who: fn(d) -> loss | None, 'refs': fn(d) -> reference set of the limit}."""
    B = shape[0]
    keys = lambda d: d["keys"]  # noqa: E731
    batch = lambda d: F.normalize(d["q"].detach(), dim=1)  # noqa: E731
    c: dict[str, dict] = {
        "mulsupcon": dict(
            title="MulSupCon (MoCo keys + queue)",
            ours=lambda d: MulSupConLoss(TAU)(d["q"], d["y"], d["keys"], d["yk"]),
            tiled=lambda d: MulSupConLoss(TAU, chunk_size=CHUNK)(d["q"], d["y"], d["keys"], d["yk"]),
            dense=lambda d: baselines.dense_mulsupcon(d["q"], d["y"], d["keys"], d["yk"], TAU),
            authors=lambda d: baselines.authors_mulsupcon(d["q"], d["y"], d["keys"], d["yk"], B, TAU),
            refs=keys),
    }
    if shape[1] > 0:
        c["mulsupcon_stats"] = dict(
            title="MulSupCon (keys + LabelledQueue label statistics, enqueue timed)",
            ours=_mulsupcon_queue_stats, tiled=None, dense=None, authors=None, refs=keys)
    for pos in ("any", "all"):
        c[f"supcon_{pos}"] = dict(
            title=f"SupCon {pos.upper()} (MoCo keys + queue)",
            ours=lambda d, p=pos: SupConLoss(TAU, p)(d["q"], d["y"], d["keys"], d["yk"]),
            tiled=lambda d, p=pos: SupConLoss(TAU, p, chunk_size=CHUNK)(d["q"], d["y"], d["keys"], d["yk"]),
            dense=lambda d, p=pos: baselines.dense_supcon(d["q"], d["y"], d["keys"], d["yk"], TAU, p),
            authors=lambda d, p=pos: baselines.authors_supcon(d["q"], d["y"], d["keys"], d["yk"], B, TAU, p),
            refs=keys)
    c["jaccard"] = dict(
        title="L_Base (batch, as the authors)",
        ours=lambda d: JaccardSupConLoss(TAU)(d["q"], d["y"]),
        tiled=lambda d: JaccardSupConLoss(TAU, chunk_size=max(1, B // 4))(d["q"], d["y"]),
        dense=lambda d: baselines.dense_jaccard(d["q"], d["y"], TAU),
        authors=lambda d: baselines.authors_jaccard(d["q"], d["y"], TAU),
        refs=batch, batch_only=True)
    c["msc"] = dict(
        title="L_MSC (batch + L prototypes, as the authors)",
        ours=lambda d: MSCLoss(TAU, 0.1, 1.0)(d["q"], d["y"], d["protos"]),
        tiled=lambda d: MSCLoss(TAU, 0.1, 1.0, chunk_size=max(1, B // 4))(d["q"], d["y"], d["protos"]),
        dense=lambda d: baselines.dense_msc(d["q"], d["y"], d["protos"], TAU, 0.1, 1.0),
        authors=lambda d: baselines.authors_msc(d["q"], d["y"], d["protos"], TAU, 0.1, 1.0),
        refs=lambda d: torch.cat([batch(d), F.normalize(d["protos"].detach(), dim=1)]),
        batch_only=True)
    c["jaccard_queue"] = dict(
        title="L_BQueue (L_Base with keys + queue; no authors' code)",
        ours=lambda d: JaccardSupConLoss(TAU)(d["q"], d["y"], d["keys"], d["yk"]),
        tiled=lambda d: JaccardSupConLoss(TAU, chunk_size=CHUNK)(d["q"], d["y"], d["keys"], d["yk"]),
        dense=None, authors=None, refs=keys)
    c["msc_queue"] = dict(
        title="L_MSC with keys + queue (the paper's description; no authors' code)",
        ours=lambda d: MSCLoss(TAU)(d["q"], d["y"], d["protos"], d["keys"], d["yk"]),
        tiled=lambda d: MSCLoss(TAU, chunk_size=CHUNK)(d["q"], d["y"], d["protos"], d["keys"], d["yk"]),
        dense=None, authors=None, refs=keys)
    if shape == MAIN:
        c["flcl"] = dict(
            title="C-GMVAE feature-label contrastive (2B anchors, L label embeddings)",
            ours=lambda d: FeatureLabelContrastiveLoss(1.0, normalize_labels=False)(
                torch.cat([d["e_label"], d["e_feat1"]]), d["W"].T, torch.cat([d["y"], d["y"]])),
            tiled=None, dense=None, authors=None, refs=None, grad=("e_label", "e_feat1", "W"))
        c["cgmvae"] = dict(
            title="C-GMVAE objective (0.5·3 BCE summed over labels + 6·KL + contrastive)",
            ours=_ours_cgmvae, tiled=None, dense=None, authors=_authors_cgmvae, refs=None,
            grad=CGMVAE_GRAD)
        c["llcl"] = dict(
            title="MulCon LLCL (B × L × D label embeddings)",
            ours=lambda d: LabelLevelContrastiveLoss(0.2)(d["e"], d["y"]), tiled=None,
            dense=lambda d: baselines.dense_llcl(d["e"], d["y"], 0.2), authors=None, refs=None,
            grad=("e",))
    return c


def _m(shape, case) -> int:
    B, Q, L, _ = shape
    return B + L if case.get("batch_only") else B + Q


def estimate_gb(shape, name: str, who: str, k_mean: float) -> float:
    """Rough peak of a baseline (float32): its largest intermediates."""
    B, Q, L, _ = shape
    M = B if name in ("jaccard", "msc") else B + Q
    if who == "dense":
        per = {"mulsupcon": 4 * B * k_mean * M, "supcon_any": 2 * B * M * L / 4 + 6 * B * M,
               "supcon_all": 2 * B * M * L / 4 + 6 * B * M, "jaccard": 3 * B * B * L,
               "msc": 4 * B * B * L, "llcl": 6 * (B * k_mean) ** 2}
    else:
        per = {"mulsupcon": 8 * B * k_mean * M + B * k_mean * L, "supcon_any": 10 * B * M,
               "supcon_all": 10 * B * M, "jaccard": 3 * B * B * L, "msc": 4 * B * B * L,
               "cgmvae": 4 * B * L * LATENT}
    return per.get(name, 0) * 4 / 2**30


# ----------------------------------------------------------------------------- measuring
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_once(fn: Callable, data: dict, device: str, limit_refs=None) -> None:
    """One forward + backward on ``data`` (leaves prepared by the caller), or the bare limit."""
    if limit_refs is not None:
        bare_limit(data["q"], limit_refs)
        return
    fn(data).backward()


def op_count(fn, data, device, limit_refs=None, grad=()) -> int:
    from torch.profiler import ProfilerActivity, profile

    run_once(fn, leaves(data, grad), device, limit_refs)
    _sync(device)
    data = leaves(data, grad)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_once(fn, data, device, limit_refs)
        _sync(device)
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return -1


def peak_mb(fn, data, device, limit_refs=None) -> float | None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run_once(fn, data, device, limit_refs)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status("VmRSS")
    run_once(fn, data, device, limit_refs)
    return max(0, _status("VmHWM") - before) / 2**20


def contenders(shape, name, case, k_mean, device, data):
    """who -> (fn, limit_refs) for the contenders run at this shape, and who -> skip reason."""
    B, Q, L, _ = shape
    M = _m(shape, case)
    run, skipped = {}, {}
    for who in WHO:
        if who == "limit":
            if case["refs"] is not None:
                run[who] = (None, case["refs"](data).contiguous(), ())
            continue
        fn = case.get(who)
        if fn is None:
            continue
        if who == "ours" and B * M > MAX_DENSE_ELEMENTS:
            skipped[who] = f"dense path not run above {MAX_DENSE_ELEMENTS} B × M entries (the tiled one is)"
            continue
        if who in ("dense", "authors") and estimate_gb(shape, name, who, k_mean) > MAX_BASELINE_GB:
            skipped[who] = f"estimated peak > {MAX_BASELINE_GB} GB"
            continue
        if who == "tiled" and M <= (CHUNK if not case.get("batch_only") else max(1, B // 4)):
            skipped[who] = "one block: identical to the dense path"
            continue
        run[who] = (fn, None, case.get("grad", GRAD))
    return run, skipped


def measure_shape(shape, device: str, reps: int, names: list[str], mem: dict | None) -> list[dict]:
    data = make_inputs(shape, device)
    k_mean = float(data["y"].float().sum(1).mean())
    rows = []
    for name, case in cases(shape).items():
        if names and name not in names:
            continue
        if case.get("batch_only") and shape[1] != 0 and (shape[0], 0, shape[2], shape[3]) in SHAPES:
            continue  # batch-only losses ignore Q: measured once, at Q = 0
        run, skipped = contenders(shape, name, case, k_mean, device, data)
        for fn, refs, grad in run.values():  # warm-up (lazy initialisation, allocator)
            run_once(fn, leaves(data, grad), device, refs)
        times = {who: [] for who in run}
        for _ in range(reps):  # interleaved repeats
            for who, (fn, refs, grad) in run.items():
                dd = leaves(data, grad)
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                run_once(fn, dd, device, refs)
                _sync(device)
                dt = (time.process_time() - c0) if device == "cpu" else (time.perf_counter() - t0)
                times[who].append(dt * 1e3)
        row = dict(loss=name, title=case["title"], device=device, B=shape[0],
                   Q=0 if case.get("batch_only") else shape[1], L=shape[2], k=shape[3],
                   M=_m(shape, case), labels_per_sample=round(k_mean, 2), skipped=skipped)
        for who, (fn, refs, grad) in run.items():
            key = f"{name}|{shape}|{who}"
            row[who] = dict(
                time_ms=statistics.median(times[who]), times_ms=[round(t, 3) for t in times[who]],
                ops=op_count(fn, data, device, refs, grad),
                peak_mb=(mem or {}).get(key) if device == "cpu"
                else peak_mb(fn, leaves(data, grad), device, refs))
        lim = row.get("limit", {}).get("time_ms")
        best = row.get("ours") or row.get("tiled")
        row["ours_over_limit"] = best["time_ms"] / lim if lim else None
        if "tiled" in row and lim:
            row["tiled_over_limit"] = row["tiled"]["time_ms"] / lim
        for who in ("dense", "authors"):
            if who in row and best:
                row[f"{who}_over_ours"] = row[who]["time_ms"] / best["time_ms"]
        if (shape[0], shape[2], shape[3]) == (MAIN[0], MAIN[2], MAIN[3]) and "authors" in row and device == "cpu":
            d64 = {n: (v.double() if v.is_floating_point() else v) for n, v in data.items()}
            d64 = {n: (v.requires_grad_(True) if n in case.get("grad", GRAD) else v) for n, v in d64.items()}
            with torch.no_grad():
                a, b = case["ours"](d64), case["authors"](d64)
            row["abs_diff_vs_authors_float64"] = abs(float(a) - float(b))
        print(f"[{device}] {name:13s} B={shape[0]:5d} Q={row['Q']:6d} L={shape[2]:5d} k={shape[3]:2d}: "
              + " ".join(f"{w} {row[w]['time_ms']:8.2f}ms/{row[w]['ops']}op" for w in WHO if w in row),
              flush=True)
        rows.append(row)
    return rows


def memory_only(device: str, names: list[str]) -> None:
    torch.set_num_threads(1)
    out = {}
    for shape in SHAPES:
        data = make_inputs(shape, device)
        k_mean = float(data["y"].float().sum(1).mean())
        for name, case in cases(shape).items():
            if names and name not in names:
                continue
            run, _ = contenders(shape, name, case, k_mean, device, data)
            for who, (fn, refs, grad) in run.items():
                run_once(fn, leaves(data, grad), device, refs)
                out[f"{name}|{shape}|{who}"] = min(
                    peak_mb(fn, leaves(data, grad), device, refs) or 0.0 for _ in range(2))
    print(json.dumps(out))


def cpu_memory(names: list[str]) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, __file__, "--memory-only", "--shapes", json.dumps(SHAPES)]
    if names:
        cmd += ["--cases", ",".join(names)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- output
def provenance(device: str, note: str) -> dict:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except Exception:
            return None

    return dict(
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        commit=git("rev-parse", "HEAD") or "unknown",
        uncommitted_changes=bool(git("status", "--porcelain", "mlcl/losses", "benchmarks")),
        python=platform.python_version(), torch=torch.__version__, platform=platform.platform(),
        cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
        load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
        device=device, cuda=torch.cuda.get_device_name(0) if device == "cuda" else None,
        threads=torch.get_num_threads(), note=note,
    )


def _f(x, nd=1):
    return "—" if x is None else f"{x:.{nd}f}"


def markdown(result: dict) -> str:
    prov = result["provenance"]
    lines = [
        "<!-- generated by benchmarks/bench_losses.py from results/benchmarks/losses.json; "
        "do not edit -->", "",
        f"Measured {prov['date']} (commit `{str(prov['commit'])[:12]}`"
        + (", uncommitted changes" if prov.get("uncommitted_changes") else "")
        + f"), torch {prov['torch']}, device {prov['device']}"
        + (f" ({prov['cuda']})" if prov.get("cuda") else f", {prov['threads']} thread")
        + f". {prov['note']} Times: medians of {result['reps']} interleaved repeats (main "
        f"shape: {result['reps_main']}), forward + backward, ms; ops: `aten::` operator calls "
        "per forward + backward; peak: MB above the inputs. The ratios divide by our time "
        "(the dense path, or the tiled one where the dense is not run).", "",
    ]
    rem = prov.get("remeasured") or []
    for m in [rem] if isinstance(rem, dict) else rem:
        load = m.get("load_average")
        lines += [
            f"Re-measured {m.get('date')} ({', '.join(m.get('cases') or []) or 'every loss'} at "
            + "; ".join("×".join(map(str, sh)) for sh in m.get("shapes", []))
            + (", rows marked †" if m.get("cases") else "") + ")"
            + (f", load average {load[0]:.1f} on {prov.get('cpu_count')} cores" if load else "")
            + (f": {m['why']}" if m.get("why") else "") + ".", ""]
    lines += [
        "| loss | B | Q | L | k | ours ms (ops) | tiled ms (ops) | dense baseline ms | authors' ms "
        "| limit ms | ours / limit | authors' / ours | dense / ours | peak MB ours / tiled / dense / authors' |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        def t(w, r=r):
            return f"{r[w]['time_ms']:.1f} ({r[w]['ops']})" if w in r else "—"

        def tm(w, r=r):
            return f"{r[w]['time_ms']:.1f}" if w in r else ("n/r" if w in r["skipped"] else "—")

        peaks = " / ".join(_f(r[w]["peak_mb"], 0) if w in r and r[w]["peak_mb"] is not None
                           else "—" for w in ("ours", "tiled", "dense", "authors"))
        lines.append(
            f"| {r['title']}{' †' if r.get('remeasured') else ''} | {r['B']} | {r['Q']} | {r['L']} | {r['k']} | {t('ours')} | "
            f"{t('tiled')} | {tm('dense')} | {tm('authors')} | {tm('limit')} | "
            f"{_f(r['ours_over_limit'], 2)} | {_f(r.get('authors_over_ours'), 2)} | "
            f"{_f(r.get('dense_over_ours'), 2)} | {peaks} |")
    lines += ["", "n/r: not run (estimated peak above "
              f"{MAX_BASELINE_GB} GB, or our dense path above {MAX_DENSE_ELEMENTS} B × M entries); "
              "—: no such contender for this loss.", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    axes = [("B", 1), ("Q", 2), ("L", 3), ("k", 4)]
    main = dict(zip(("B", "Q", "L", "k"), MAIN))
    fig, axs = plt.subplots(1, 4, figsize=(15, 3.6), sharey=True)
    for ax, (var, _) in zip(axs, axes):
        for name, color in (("mulsupcon", "C0"), ("supcon_any", "C1"), ("supcon_all", "C2")):
            pts = sorted((r[var], r) for r in rows if r["loss"] == name
                         and all(r[v] == main[v] for v in main if v != var))
            if not pts:
                continue
            xs = [x for x, _ in pts]
            for who, style in (("ours", "-o"), ("authors", ":s")):
                ys = [(r.get(who) or (r.get("tiled") if who == "ours" else None) or {}).get("time_ms")
                      for _, r in pts]
                ax.plot([x for x, y in zip(xs, ys) if y], [y for y in ys if y], style, color=color,
                        label=f"{name} {who}" if var == "B" else None, markersize=4)
            lim = [r.get("limit", {}).get("time_ms") for _, r in pts]
            ax.plot(xs, lim, "--", color="gray", label="limit" if var == "B" and name == "mulsupcon" else None)
        ax.set_xscale("symlog" if var == "Q" else "log")
        ax.set_yscale("log")
        ax.set_xlabel(var)
    axs[0].set_ylabel("forward + backward, ms")
    fig.legend(loc="upper center", ncol=7, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


SHAPES: list[tuple[int, int, int, int]] = cpu_shapes()


def _row_key(r: dict) -> tuple:
    return (r["loss"], r["device"], r["B"], r["Q"], r["L"], r["k"])


def merge(result: dict, rows: list[dict], args) -> dict:
    """Replace (or add) the re-measured rows in a previous result; record which, when and under
    what load in ``provenance["remeasured"]`` (each row also carries ``remeasured``: its date)."""
    prov = provenance(args.device, args.note)
    for r in rows:
        r["remeasured"] = prov["date"]
    new = {_row_key(r): r for r in rows}
    kept = [new.pop(_row_key(r)) if _row_key(r) in new else r for r in result["rows"]]
    for key, r in new.items():  # a new row goes after the last one of its shape
        at = [i for i, o in enumerate(kept) if _row_key(o)[1:] == key[1:]]
        kept.insert(at[-1] + 1 if at else len(kept), r)
    result["rows"] = kept
    log = result["provenance"].get("remeasured") or []
    log = [log] if isinstance(log, dict) else log
    log.append(dict(date=prov["date"], commit=prov["commit"],
                    uncommitted_changes=prov["uncommitted_changes"],
                    load_average=prov["load_average"], shapes=[list(s) for s in SHAPES],
                    cases=sorted({r["loss"] for r in rows}), rows=len(rows), why=args.why,
                    note=args.note))
    result["provenance"]["remeasured"] = log
    return result


def main() -> None:
    global SHAPES
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--reps-main", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="main shape only")
    ap.add_argument("--cases", default="")
    ap.add_argument("--shapes", default="", help=argparse.SUPPRESS)
    ap.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only", default="",
                    help='re-measure these shapes only, "B,Q,L,k;B,Q,L,k" (with --cases: those '
                         "losses), and merge the rows into --out (provenance records which)")
    ap.add_argument("--why", default="", help="with --only: why these rows were re-measured")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default=str(REPO / "results/benchmarks/losses.json"))
    ap.add_argument("--md", default=str(REPO / "book/_generated/losses_bench.md"))
    ap.add_argument("--png", default=str(REPO / "book/_generated/losses_scaling.png"))
    args = ap.parse_args()
    names = [n for n in args.cases.split(",") if n]
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    if args.only:
        SHAPES = [tuple(int(v) for v in sh.split(",")) for sh in args.only.split(";") if sh]
    if args.shapes:
        SHAPES = [tuple(s) for s in json.loads(args.shapes)]
    elif args.quick:
        SHAPES = [MAIN]
    elif args.device == "cuda":
        SHAPES = full_grid()
    if args.memory_only:
        memory_only(args.device, names)
        return
    if args.device == "cpu":
        torch.set_num_threads(1)
    mem = cpu_memory(names) if args.device == "cpu" else None
    rows = []
    for shape in SHAPES:
        reps = args.reps_main if shape == MAIN else (3 if shape[0] * (shape[1] + shape[0]) > 1 << 26 else args.reps)
        rows += measure_shape(shape, args.device, reps, names, mem)
    out = Path(args.out)
    if args.only:
        result = merge(json.loads(out.read_text()), rows, args)
    else:
        result = dict(provenance=provenance(args.device, args.note), reps=args.reps,
                      reps_main=args.reps_main, main_shape=dict(zip(("B", "Q", "L", "k"), MAIN)),
                      dim=D, temperature=TAU, chunk=CHUNK, shapes=[list(s) for s in SHAPES],
                      rows=rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    Path(args.md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text(markdown(result))
    plot(result, Path(args.png))
    print(f"wrote {out}, {args.md} and {args.png}")


if __name__ == "__main__":
    main()
