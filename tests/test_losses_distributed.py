"""gather_distributed=True: 2 CPU processes on gloo give DDP-equivalent gradients.

Each rank holds a slice of one batch (uneven sizes, zero-label rows). With DDP the gradients of
the parameters are averaged over ranks, so the check is: mean over ranks of each rank's loss =
the single-process loss on the concatenated batch, and (gradient on rank r) / world_size = the
single-process gradient of rank r's rows (shared parameters such as prototypes: the mean over
ranks of their gradients = the single-process gradient).
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.multiprocessing as mp

from mlcl.losses import (
    FeatureLabelContrastiveLoss,
    JaccardSupConLoss,
    LabelLevelContrastiveLoss,
    MSCLoss,
    MulSupConLoss,
    SupConLoss,
    gaussian_mixture_kl,
)

WORLD = 2
SIZES = (5, 3)  # rows per rank
DT = torch.float64


def _full_data():
    g = torch.Generator().manual_seed(123)
    B, L, D, M = sum(SIZES), 4, 3, sum(SIZES) * 2
    y = (torch.rand(B, L, generator=g) < 0.45).long()
    y[0] = 0
    y[6] = 0
    y[:, -1] = 0
    return dict(
        z=torch.randn(B, D, generator=g, dtype=DT),
        y=y,
        k=torch.randn(M, D, generator=g, dtype=DT),
        yk=(torch.rand(M, L, generator=g) < 0.45).long(),
        p=torch.randn(L, D, generator=g, dtype=DT),
        e=torch.randn(B, L, D, generator=g, dtype=DT),
        lv=torch.randn(B, D, generator=g, dtype=DT),
        lp=torch.randn(L, D, generator=g, dtype=DT),
    )


def _cases(gather: bool):
    """name -> f(d) returning the loss; d holds leaf tensors z, k, p, e, lv, lp and labels."""
    kw = dict(gather_distributed=gather)
    return {
        "supcon-any": lambda d: SupConLoss(0.2, "any", **kw)(d["z"], d["y"]),
        "supcon-all-refs": lambda d: SupConLoss(0.2, "all", **kw)(d["z"], d["y"], d["k"], d["yk"]),
        "mulsupcon": lambda d: MulSupConLoss(0.2, **kw)(d["z"], d["y"]),
        "mulsupcon-refs": lambda d: MulSupConLoss(0.2, **kw)(d["z"], d["y"], d["k"], d["yk"]),
        "mulsupcon-lw": lambda d: MulSupConLoss(0.2, label_weight=True, **kw)(d["z"], d["y"]),
        "mulsupcon-sum": lambda d: MulSupConLoss(0.2, reduction="sum", **kw)(d["z"], d["y"]),
        "jaccard": lambda d: JaccardSupConLoss(0.2, **kw)(d["z"], d["y"]),
        "msc": lambda d: MSCLoss(0.2, **kw)(d["z"], d["y"], d["p"]),
        "msc-refs": lambda d: MSCLoss(0.2, **kw)(d["z"], d["y"], d["p"], d["k"], d["yk"]),
        "llcl": lambda d: LabelLevelContrastiveLoss(0.2, **kw)(d["e"], d["y"]),
        "flcl": lambda d: FeatureLabelContrastiveLoss(0.5, **kw)(d["z"], d["p"], d["y"]),
        "kl": lambda d: gaussian_mixture_kl(
            d["z"], d["z"] * 0.5, d["lv"], d["p"], d["lp"], d["y"], gather_distributed=gather
        ),
    }


def _slice(d: dict, rank: int) -> dict:
    lo = sum(SIZES[:rank])
    hi = lo + SIZES[rank]
    M = d["k"].shape[0] // WORLD
    out = {n: d[n][lo:hi] for n in ("z", "y", "e", "lv")}
    out.update(k=d["k"][rank * M : (rank + 1) * M], yk=d["yk"][rank * M : (rank + 1) * M])
    out.update(p=d["p"], lp=d["lp"])
    return out


LEAVES = ("z", "k", "p", "e", "lv", "lp")


def _run(fn, d):
    d = {n: (v.clone().requires_grad_(True) if n in LEAVES else v) for n, v in d.items()}
    loss = fn(d)
    loss.backward()
    grads = {n: (d[n].grad if d[n].grad is not None else torch.zeros_like(d[n])) for n in LEAVES}
    return loss.detach(), grads


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        local = _slice(_full_data(), rank)
        results = {name: _run(fn, local) for name, fn in _cases(True).items()}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_ddp_equivalent_gradients_gloo():
    full = _full_data()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD, join=True)
        ranks = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(WORLD)]
    for name, fn in _cases(False).items():
        loss, grads = _run(fn, full)
        mean_loss = sum(r[name][0] for r in ranks) / WORLD
        assert torch.allclose(mean_loss, loss, atol=1e-10), name
        for n in ("z", "e", "lv"):  # per-row tensors: rank slices
            got = torch.cat([r[name][1][n] for r in ranks]) / WORLD
            assert torch.allclose(got, grads[n], atol=1e-10), (name, n)
        # references: each rank held a contiguous half of k
        got_k = torch.cat([r[name][1]["k"] for r in ranks]) / WORLD
        assert torch.allclose(got_k, grads["k"], atol=1e-10), (name, "k")
        for n in ("p", "lp"):  # shared parameters: DDP averages
            got = sum(r[name][1][n] for r in ranks) / WORLD
            assert torch.allclose(got, grads[n], atol=1e-10), (name, n)


def test_gather_is_a_no_op_without_process_group():
    d = _full_data()
    for name, fn in _cases(True).items():
        assert torch.equal(fn(d), _cases(False)[name](d)), name
