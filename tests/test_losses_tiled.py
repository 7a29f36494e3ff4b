"""The tiled (column-block) path of the sample-level losses, the two label-statistics paths
(sparse on the CPU, dense as on accelerators), the torch.compile path, and the numerics at the
edge (huge / tiny / non-finite embeddings, extreme log-variances).

Tiled and dense must agree to float32 round-off, gradients included, and the tiled path must
match the float64 loop references of ``test_losses_contrastive`` to 1e-10.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_losses_contrastive import ref_jaccard, ref_msc, ref_mulsupcon, ref_supcon

import mlcl.losses._common as common
from mlcl.losses import (
    FeatureLabelContrastiveLoss,
    JaccardSupConLoss,
    LabelLevelContrastiveLoss,
    MSCLoss,
    MulSupConLoss,
    SupConLoss,
    gaussian_mixture_kl,
)

DT = torch.float64


def _data(seed: int, B: int = 9, M: int = 23, L: int = 6, D: int = 5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(B, L, generator=g) < 0.4).long()
    y[0] = 0  # a zero-label anchor
    y[2] = y[1]  # identical label sets (ALL positives)
    yk = torch.rand(M, L, generator=g) < 0.4
    yk[0] = y[1].bool()
    yk[-1] = False
    return dict(
        z=torch.randn(B, D, generator=g, dtype=dtype),
        y=y,
        k=torch.randn(M, D, generator=g, dtype=dtype),
        yk=yk,
        p=torch.randn(L, D, generator=g, dtype=dtype),
    )


# name -> (make(chunk_size), call(loss, data, with_refs))
LOSSES = {
    "supcon-any": (lambda c: SupConLoss(0.2, "any", chunk_size=c),
                   lambda f, d, r: f(d["z"], d["y"], *((d["k"], d["yk"]) if r else ()))),
    "supcon-all": (lambda c: SupConLoss(0.2, "all", chunk_size=c),
                   lambda f, d, r: f(d["z"], d["y"], *((d["k"], d["yk"]) if r else ()))),
    "mulsupcon": (lambda c: MulSupConLoss(0.2, chunk_size=c),
                  lambda f, d, r: f(d["z"], d["y"], *((d["k"], d["yk"]) if r else ()))),
    "mulsupcon-lw": (lambda c: MulSupConLoss(0.2, label_weight=True, chunk_size=c),
                     lambda f, d, r: f(d["z"], d["y"], *((d["k"], d["yk"]) if r else ()))),
    "jaccard": (lambda c: JaccardSupConLoss(0.2, chunk_size=c),
                lambda f, d, r: f(d["z"], d["y"], *((d["k"], d["yk"]) if r else ()))),
    "msc": (lambda c: MSCLoss(0.2, beta=0.3, alpha=0.7, chunk_size=c),
            lambda f, d, r: f(d["z"], d["y"], d["p"], *((d["k"], d["yk"]) if r else ()))),
}
LEAVES = ("z", "k", "p")


def _run(name: str, chunk, d: dict, with_refs: bool, reduction: str = "mean"):
    make, call = LOSSES[name]
    d = {n: (v.clone().requires_grad_(True) if n in LEAVES else v) for n, v in d.items()}
    loss_fn = make(chunk)
    loss_fn.reduction = reduction
    out = call(loss_fn, d, with_refs)
    out.sum().backward()
    grads = {n: d[n].grad for n in LEAVES if d[n].grad is not None}
    return out.detach(), grads


# ---------------------------------------------------------------- tiled == dense
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("with_refs", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 7])
def test_tiled_matches_dense_float32(name, with_refs, chunk):
    d = _data(3)
    for reduction in ("mean", "none"):
        dense, gd = _run(name, None, d, with_refs, reduction)
        tiled, gt = _run(name, chunk, d, with_refs, reduction)
        assert torch.allclose(tiled, dense, rtol=1e-5, atol=1e-6), (name, reduction)
        assert gd.keys() == gt.keys() and gd  # gradients reach the same leaves
        for n in gd:
            assert torch.allclose(gt[n], gd[n], rtol=1e-4, atol=1e-6), (name, reduction, n)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("with_refs", [False, True])
def test_tiled_matches_float64_references(seed, with_refs):
    d = _data(seed, dtype=DT)
    z, y, k, yk, p = d["z"], d["y"], d["k"], d["yk"], d["p"]
    k, yk = (k, yk) if with_refs else (None, None)
    refs = (k, yk) if with_refs else ()
    for positives in ("any", "all"):
        got = SupConLoss(0.3, positives, chunk_size=5)(z, y, *refs)
        assert abs(got.item() - ref_supcon(z, y, k, yk, 0.3, positives)) < 1e-10
    for lw in (False, True):
        got = MulSupConLoss(0.3, label_weight=lw, chunk_size=5)(z, y, *refs)
        assert abs(got.item() - ref_mulsupcon(z, y, k, yk, 0.3, lw)) < 1e-10
    got = JaccardSupConLoss(0.3, chunk_size=5)(z, y, *refs)
    assert abs(got.item() - ref_jaccard(z, y, k, yk, 0.3)) < 1e-10
    got = MSCLoss(0.3, beta=0.2, alpha=0.6, chunk_size=5)(z, y, p, *refs)
    assert abs(got.item() - ref_msc(z, y, p, k, yk, 0.3, 0.2, 0.6)) < 1e-10


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_tiled_gradcheck(name):
    d = _data(5, B=5, M=7, L=4, D=3, dtype=DT)
    make, call = LOSSES[name]
    f = make(3)

    def fn(z, k, p):
        return call(f, dict(d, z=z, k=k, p=p), True) + call(f, dict(d, z=z, p=p), False)

    leaves = tuple(d[n].clone().requires_grad_(True) for n in LEAVES)
    assert torch.autograd.gradcheck(fn, leaves)


def test_tiled_is_chosen_automatically_above_the_threshold(monkeypatch):
    B = 256
    assert common.resolve_chunk(None, B, 8448) == 8448  # 2.2 M entries: dense
    block = common.resolve_chunk(None, B, 65792)  # 16.8 M entries: blocks
    assert 256 <= block < 65792 and B * block <= common.AUTO_BLOCK_ELEMENTS
    assert common.resolve_chunk(100, B, 65792) == 100  # chunk_size= wins
    # and the losses use it: a tiny threshold makes the same call tiled, with the same result
    d = _data(1)
    dense, _ = _run("mulsupcon", None, d, True)
    calls = []
    real = common._SimContrast.apply

    def spy(*args):
        calls.append(args[6])  # block
        return real(*args)

    monkeypatch.setattr(common._SimContrast, "apply", spy)
    monkeypatch.setattr(common, "AUTO_ELEMENTS", 9 * 8)
    monkeypatch.setattr(common, "AUTO_BLOCK_ELEMENTS", 9 * 8)
    auto, _ = _run("mulsupcon", None, d, True)
    assert calls == [256]  # never fewer than 256 references per block (here: one block)
    monkeypatch.setattr(common, "resolve_chunk", lambda c, b, m: 8 if c is None else c)
    calls.clear()
    auto, _ = _run("mulsupcon", None, d, True)
    assert calls == [8] and torch.allclose(auto, dense, rtol=1e-5, atol=1e-6)


def test_chunk_size_must_be_a_positive_integer():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            SupConLoss(chunk_size=bad)


def test_tiled_peak_memory_is_one_block():
    """The tiled forward keeps q, k and B numbers: no saved tensor grows with B × M."""
    z = torch.randn(16, 4, requires_grad=True)
    k = torch.randn(1000, 4)
    y, yk = torch.randint(0, 2, (16, 3)), torch.randint(0, 2, (1000, 3)).bool()
    loss = SupConLoss(0.2, "any", chunk_size=50)(z, y, k, yk)
    sizes = []
    node = loss.grad_fn
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if n is None or n in seen:
            continue
        seen.add(n)
        for t in getattr(n, "saved_tensors", ()) or ():
            if t is not None:
                sizes.append(t.numel())
        stack.extend(f for f, _ in n.next_functions)
    assert sizes and max(sizes) <= 1000 * 4  # the references themselves, not 16 × 1000


# ---------------------------------------------------------------- label statistics paths
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("chunk", [None, 5])
def test_sparse_and_dense_label_paths_agree(name, chunk, monkeypatch):
    """The CPU sparse path (nonzero entries) and the dense path accelerators use."""
    d = _data(7, L=9)
    out = {}
    for mode, threshold in (("sparse", 1), ("dense", 10**9)):
        monkeypatch.setattr(common, "SPARSE_LABELS", threshold)
        out[mode] = _run(name, chunk, d, True) + _run(name, chunk, d, False)
    assert torch.allclose(out["sparse"][0], out["dense"][0], rtol=1e-5, atol=1e-6)
    assert torch.allclose(out["sparse"][2], out["dense"][2], rtol=1e-5, atol=1e-6)
    for n in out["dense"][1]:
        assert torch.allclose(out["sparse"][1][n], out["dense"][1][n], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_group_ids_are_exact(sparse):
    g = torch.Generator().manual_seed(0)
    for L in (3, 52, 53, 130):
        y = torch.rand(6, L, generator=g) < 0.5
        yk = torch.cat([y[[1, 3]], torch.rand(9, L, generator=g) < 0.5, torch.zeros(1, L, dtype=torch.bool)])
        yk[4] = y[0]
        yk[4, -1] = ~yk[4, -1]  # differs from y[0] only in the last label (the last word)
        ga, gr = common.LabelStats(y, yk, torch.float32, sparse=sparse).group_ids()
        rows = torch.cat([y, yk])
        ids = torch.cat([ga, gr])
        same = (rows[:, None, :] == rows[None, :, :]).all(-1)
        assert torch.equal(ids[:, None] == ids[None, :], same), L


# ---------------------------------------------------------------- torch.compile
def _compile_or_skip(module):
    try:
        import torch._dynamo  # noqa: F401
        import torch._inductor  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the installation
        pytest.skip(f"torch.compile is unavailable in this installation ({exc!r})")
    return torch.compile(module)


@pytest.mark.parametrize(
    "name, chunk",
    [("supcon-any", None), ("supcon-all", None), ("mulsupcon", None), ("jaccard", None),
     ("msc", None), ("supcon-any", 4), ("msc", 4)],
)
def test_torch_compile_matches_eager(name, chunk):
    torch._dynamo.reset()
    d = _data(2)
    make, call = LOSSES[name]
    eager, compiled = make(chunk), _compile_or_skip(make(chunk))
    outs = []
    for f in (eager, compiled):
        dd = {n: (v.clone().requires_grad_(True) if n in LEAVES else v) for n, v in d.items()}
        loss = call(f, dd, True)
        loss.backward()
        outs.append((loss.detach(), dd["z"].grad, dd["k"].grad))
    (a, ga, ka), (b, gb, kb) = outs
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-6) and torch.allclose(ka, kb, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- numerics at the edge
ALL_SAMPLE_LOSSES = {
    "supcon-any": lambda z, y, k, yk, p: SupConLoss(0.1, "any")(z, y, k, yk),
    "supcon-all": lambda z, y, k, yk, p: SupConLoss(0.1, "all")(z, y, k, yk),
    "mulsupcon": lambda z, y, k, yk, p: MulSupConLoss(0.1)(z, y, k, yk),
    "jaccard": lambda z, y, k, yk, p: JaccardSupConLoss(0.1)(z, y, k, yk),
    "msc": lambda z, y, k, yk, p: MSCLoss(0.1)(z, y, p, k, yk),
    "flcl": lambda z, y, k, yk, p: FeatureLabelContrastiveLoss(0.5)(z, p, y),
    "llcl": lambda z, y, k, yk, p: LabelLevelContrastiveLoss(0.2)(z[:, None].expand(-1, y.shape[1], -1), y),
}


@pytest.mark.parametrize("name", sorted(ALL_SAMPLE_LOSSES))
@pytest.mark.parametrize("dtype", [torch.float32, DT])
@pytest.mark.parametrize("with_refs", [False, True])
def test_huge_and_tiny_embeddings_are_normalised_not_zeroed(name, dtype, with_refs):
    """Norms far outside the squarable range give the loss of the unit-norm embeddings
    (float32 squares overflow above ~1.8e19 and lose precision below ~1e-19)."""
    d = _data(4, dtype=dtype)
    z, y, p = d["z"], d["y"], d["p"]
    k, yk = (d["k"], d["yk"]) if with_refs else (None, None)
    base = ALL_SAMPLE_LOSSES[name](z, y, k, yk, p)
    big, tiny = (1e30, 1e-30) if dtype == torch.float32 else (1e200, 1e-200)
    scale = torch.ones(z.shape[0], 1, dtype=dtype)
    scale[::2] = big
    scale[1::3] = tiny
    got = ALL_SAMPLE_LOSSES[name](z * scale, y, None if k is None else k * big, yk, p * tiny)
    assert torch.isfinite(got)
    assert torch.allclose(got, base, rtol=1e-4 if dtype == torch.float32 else 1e-10), name


@pytest.mark.parametrize("name", sorted(ALL_SAMPLE_LOSSES))
@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("where", ["anchor", "reference"])
def test_non_finite_embedding_gives_nan_never_a_silent_zero(name, bad, where):
    d = _data(6)
    z, k = d["z"].clone(), d["k"].clone()
    y = d["y"].clone()
    y[1:] = 0  # no valid anchor but row 0 ... and row 0 has no labels either
    if where == "anchor":
        z[0, 1] = bad
    else:
        k[3, 0] = bad
    z.requires_grad_(True)
    loss = ALL_SAMPLE_LOSSES[name](z, y, k, d["yk"], d["p"])
    if name == "llcl" or (where == "reference" and name == "flcl"):
        # LLCL reads only the active (labelled) rows and FLCL has no reference set: the bad
        # row is never used, so the loss is a true 0 with zero (finite) gradients
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
        return
    assert torch.isnan(loss), (name, loss)


def test_supcon_all_nan_row_without_valid_anchor_is_nan():
    """The reproducer of issue 14.7: was 0.0 with NaN gradients."""
    z = torch.randn(3, 4)
    z[0] = math.nan
    z.requires_grad_(True)
    loss = SupConLoss(0.1, "all")(z, torch.tensor([[1, 0], [0, 1], [1, 1]]))
    assert torch.isnan(loss)


def test_huge_norm_is_not_a_zero_vector():
    """Issue 14.7: a float32 embedding of norm 1e20 was normalised to 0 (loss log(B − 1))."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 8, generator=g)
    y = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]])
    z_big = z.clone()
    z_big[0] *= 1e20 / z_big[0].norm()
    base = SupConLoss(0.1, "any")(z, y)
    got = SupConLoss(0.1, "any")(z_big, y)
    assert abs(got.item() - base.item()) < 1e-5
    assert abs(got.item() - math.log(3)) > 1e-3


@pytest.mark.parametrize("lv", [-1000.0, -800.0])
@pytest.mark.parametrize("which", ["prior", "posterior"])
def test_kl_extreme_log_variances_raise_a_clear_error(lv, which):
    g = torch.Generator().manual_seed(0)
    B, L, d = 4, 3, 2
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1]])
    mu_q, mu_p = torch.randn(B, d, generator=g), torch.randn(L, d, generator=g)
    lv_q, lv_p = torch.zeros(B, d), torch.zeros(L, d)
    z = mu_q + torch.randn(B, d, generator=g)
    if which == "prior":
        lv_p = torch.full((L, d), lv)
    else:
        lv_q = torch.full((B, d), lv)
    with pytest.raises(ValueError, match="log-variances"):
        gaussian_mixture_kl(z, mu_q, lv_q, mu_p, lv_p, y)


def test_kl_large_log_variances_stay_finite_with_finite_gradients():
    g = torch.Generator().manual_seed(1)
    B, L, d = 4, 3, 2
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1]])
    ts = [torch.randn(s, d, generator=g, requires_grad=True) for s in (B, B, L)]
    lv_q = torch.full((B, d), 600.0, requires_grad=True)
    lv_p = torch.full((L, d), 700.0, requires_grad=True)
    kl = gaussian_mixture_kl(ts[0], ts[1], lv_q, ts[2], lv_p, y)
    kl.backward()
    assert torch.isfinite(kl) and kl.item() != 0.0
    assert all(torch.isfinite(t.grad).all() for t in (*ts, lv_q, lv_p))


def test_kl_non_finite_input_names_the_tensor():
    z = torch.randn(2, 2)
    z[0, 0] = math.nan
    with pytest.raises(ValueError, match="z contain NaN or inf"):
        gaussian_mixture_kl(z, torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(3, 2),
                            torch.zeros(3, 2), torch.ones(2, 3))
