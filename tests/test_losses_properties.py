"""Hypothesis properties of every loss: invariance to the order of samples and to a permutation of
labels, scale invariance of the embeddings, finiteness at τ = 0.05 under fp16/bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcl.losses import (
    AsymmetricLoss,
    FeatureLabelContrastiveLoss,
    FocalLoss,
    JaccardSupConLoss,
    LabelLevelContrastiveLoss,
    MSCLoss,
    MulSupConLoss,
    SupConLoss,
    gaussian_mixture_kl,
)

DT = torch.float64
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)


def _data(seed: int, B: int, L: int, M: int, D: int = 4, dtype=DT):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(B, L, generator=g) < 0.4).long()
    y[0] = 0
    yk = (torch.rand(M, L, generator=g) < 0.4).long()
    return dict(
        z=torch.randn(B, D, generator=g, dtype=dtype),
        y=y,
        k=torch.randn(M, D, generator=g, dtype=dtype),
        yk=yk,
        p=torch.randn(L, D, generator=g, dtype=dtype),
        e=torch.randn(B, L, D, generator=g, dtype=dtype),
        g=g,
    )


# name -> f(data, use_refs) ; every entry takes embeddings z/k (B,D)/(M,D), labels y/yk,
# per-label tensors p (L, D) and label-level embeddings e (B, L, D)
LOSSES = {
    "supcon-any": lambda d, r: SupConLoss(0.2, "any")(d["z"], d["y"], *((d["k"], d["yk"]) if r else ())),
    "supcon-all": lambda d, r: SupConLoss(0.2, "all")(d["z"], d["y"], *((d["k"], d["yk"]) if r else ())),
    "mulsupcon": lambda d, r: MulSupConLoss(0.2)(d["z"], d["y"], *((d["k"], d["yk"]) if r else ())),
    "mulsupcon-lw": lambda d, r: MulSupConLoss(0.2, label_weight=True)(
        d["z"], d["y"], *((d["k"], d["yk"]) if r else ())
    ),
    "jaccard": lambda d, r: JaccardSupConLoss(0.2)(d["z"], d["y"], *((d["k"], d["yk"]) if r else ())),
    "msc": lambda d, r: MSCLoss(0.2)(d["z"], d["y"], d["p"], *((d["k"], d["yk"]) if r else ())),
    "flcl": lambda d, r: FeatureLabelContrastiveLoss(0.5)(d["z"], d["p"], d["y"]),
    "llcl": lambda d, r: LabelLevelContrastiveLoss(0.2)(d["e"], d["y"]),
}

shapes = dict(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 7),
    L=st.integers(1, 5),
    M=st.integers(1, 8),
    use_refs=st.booleans(),
)


@pytest.mark.parametrize("name", sorted(LOSSES))
@SETTINGS
@given(**shapes)
def test_invariant_to_sample_order(name, seed, B, L, M, use_refs):
    d = _data(seed, B, L, M)
    base = LOSSES[name](d, use_refs)
    pb, pm = torch.randperm(B, generator=d["g"]), torch.randperm(M, generator=d["g"])
    d2 = dict(d, z=d["z"][pb], y=d["y"][pb], e=d["e"][pb], k=d["k"][pm], yk=d["yk"][pm])
    assert torch.allclose(LOSSES[name](d2, use_refs), base, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(LOSSES))
@SETTINGS
@given(**shapes)
def test_invariant_to_label_permutation(name, seed, B, L, M, use_refs):
    d = _data(seed, B, L, M)
    base = LOSSES[name](d, use_refs)
    pl = torch.randperm(L, generator=d["g"])
    d2 = dict(d, y=d["y"][:, pl], yk=d["yk"][:, pl], p=d["p"][pl], e=d["e"][:, pl])
    assert torch.allclose(LOSSES[name](d2, use_refs), base, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(LOSSES))
@SETTINGS
@given(**shapes, log_scale=st.floats(-3, 3))
def test_scale_invariant_embeddings(name, seed, B, L, M, use_refs, log_scale):
    d = _data(seed, B, L, M)
    base = LOSSES[name](d, use_refs)
    s = lambda t: t * torch.exp(log_scale + torch.rand(t.shape[:-1] + (1,), generator=d["g"], dtype=DT))  # noqa: E731
    d2 = dict(d, z=s(d["z"]), k=s(d["k"]), e=s(d["e"]), p=s(d["p"]))
    assert torch.allclose(LOSSES[name](d2, use_refs), base, atol=1e-10, rtol=1e-10)


def test_kl_invariant_to_sample_order_and_label_permutation():
    g = torch.Generator().manual_seed(0)
    B, L, d = 7, 5, 3
    mu, lv = torch.randn(B, d, generator=g, dtype=DT), torch.randn(B, d, generator=g, dtype=DT)
    z = mu + torch.randn(B, d, generator=g, dtype=DT)
    mp, lp = torch.randn(L, d, generator=g, dtype=DT), torch.randn(L, d, generator=g, dtype=DT)
    y = (torch.rand(B, L, generator=g) < 0.5).long()
    base = gaussian_mixture_kl(z, mu, lv, mp, lp, y)
    pb, pl = torch.randperm(B, generator=g), torch.randperm(L, generator=g)
    assert torch.allclose(gaussian_mixture_kl(z[pb], mu[pb], lv[pb], mp, lp, y[pb]), base)
    assert torch.allclose(gaussian_mixture_kl(z, mu, lv, mp[pl], lp[pl], y[:, pl]), base)


def test_bce_family_invariances():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 4, generator=g, dtype=DT), torch.randint(0, 2, (6, 4), generator=g)
    pb, pl = torch.randperm(6, generator=g), torch.randperm(4, generator=g)
    for loss in (FocalLoss(2), AsymmetricLoss()):
        base = loss(x, y)
        assert torch.allclose(loss(x[pb], y[pb]), base)
        assert torch.allclose(loss(x[:, pl], y[:, pl]), base)


# ---------------------------------------------------------------- mixed precision
LOW_TEMP = {
    "supcon-any": lambda z, y, k, yk, p, e: SupConLoss(0.05, "any")(z, y, k, yk),
    "supcon-all": lambda z, y, k, yk, p, e: SupConLoss(0.05, "all")(z, y),
    "mulsupcon": lambda z, y, k, yk, p, e: MulSupConLoss(0.05)(z, y, k, yk),
    "mulsupcon-self": lambda z, y, k, yk, p, e: MulSupConLoss(0.05)(z, y),
    "jaccard": lambda z, y, k, yk, p, e: JaccardSupConLoss(0.05)(z, y),
    "msc": lambda z, y, k, yk, p, e: MSCLoss(0.05)(z, y, p, k, yk),
    "flcl": lambda z, y, k, yk, p, e: FeatureLabelContrastiveLoss(0.05, normalize_labels=False)(z, p, y),
    "llcl": lambda z, y, k, yk, p, e: LabelLevelContrastiveLoss(0.05)(e, y),
    "focal": lambda z, y, k, yk, p, e: FocalLoss(2)(z[:, : y.shape[1]], y),
    "asl": lambda z, y, k, yk, p, e: AsymmetricLoss()(z[:, : y.shape[1]], y),
}


@pytest.mark.parametrize("name", sorted(LOW_TEMP))
@pytest.mark.parametrize("amp_dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@settings(max_examples=5, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 16), scale=st.floats(1e-3, 1e3))
def test_finite_under_autocast_at_low_temperature(name, amp_dtype, seed, B, scale):
    g = torch.Generator().manual_seed(seed)
    L, F, D = 6, 8, 16
    lin = torch.nn.Linear(F, D)
    x = torch.randn(B, F, generator=g) * scale
    xk = torch.randn(32, F, generator=g) * scale
    y = (torch.rand(B, L, generator=g) < 0.3).long()
    y[0] = 0
    yk = (torch.rand(32, L, generator=g) < 0.3).long()
    p = torch.randn(L, D, generator=g, requires_grad=True)
    with torch.autocast("cpu", dtype=amp_dtype):
        z, k = lin(x), lin(xk)
        e = lin(x[:, None, :].expand(B, L, F) + torch.randn(B, L, F, generator=g))
        assert z.dtype == amp_dtype
        loss = LOW_TEMP[name](z, y, k, yk, p, e)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(t.grad).all() for t in (lin.weight, lin.bias) if t.grad is not None)
