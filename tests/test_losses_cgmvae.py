"""C-GMVAE losses against loop-by-loop references written from the paper (eq. 3 and eq. 5)."""

from __future__ import annotations

import math

import pytest
import torch

from mlcl.losses import FeatureLabelContrastiveLoss, GaussianMixtureKL, gaussian_mixture_kl

torch.set_default_dtype(torch.float32)
DT = torch.float64


def _labels(g: torch.Generator, B: int, L: int, p: float = 0.4) -> torch.Tensor:
    y = (torch.rand(B, L, generator=g) < p).long()
    if B > 1:
        y[0] = 0  # a zero-label row
    if L > 1:
        y[:, -1] = 0  # a label no sample has
    return y


# ---------------------------------------------------------------- references (from the paper)
def ref_log_normal(z, mu, logvar) -> float:
    s = 0.0
    for d in range(len(z)):
        var = math.exp(float(logvar[d]))
        s += -0.5 * (math.log(2 * math.pi) + float(logvar[d]) + (float(z[d]) - float(mu[d])) ** 2 / var)
    return s


def ref_kl(z, mu_q, lv_q, mu_p, lv_p, y):
    """eq. 3: log N(z; mu_q, s_q) - log (1/|y|) sum_{i: y_i=1} N(z; mu_i, s_i), batch mean."""
    out, n = 0.0, 0
    for b in range(z.shape[0]):
        comps = [ref_log_normal(z[b], mu_p[c], lv_p[c]) for c in range(y.shape[1]) if y[b, c]]
        if not comps:
            continue
        m = max(comps)
        log_mix = m + math.log(sum(math.exp(c - m) for c in comps)) - math.log(len(comps))
        out += ref_log_normal(z[b], mu_q[b], lv_q[b]) - log_mix
        n += 1
    return out / n if n else 0.0


def ref_flcl(f, w, y, tau, normalize_labels):
    """eq. 5: 1/|B| sum_x 1/|P(y)| sum_p -log sim(f, w_p) / sum_t sim(f, w_t)."""
    def nrm(v):
        s = math.sqrt(sum(float(a) ** 2 for a in v))
        return [float(a) / s for a in v]

    fs = [nrm(r) for r in f]
    ws = [nrm(r) for r in w] if normalize_labels else [[float(a) for a in r] for r in w]
    out, n = 0.0, 0
    for i in range(len(fs)):
        P = [c for c in range(len(ws)) if y[i, c]]
        if not P:
            continue
        logits = [sum(a * b for a, b in zip(fs[i], ws[t])) / tau for t in range(len(ws))]
        m = max(logits)
        lse = m + math.log(sum(math.exp(x - m) for x in logits))
        out += sum(-(logits[p] - lse) for p in P) / len(P)
        n += 1
    return out / n if n else 0.0


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize("seed", range(4))
def test_kl_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    B, L, d = int(torch.randint(2, 9, (1,), generator=g)), int(torch.randint(2, 7, (1,), generator=g)), 3
    mu_q, lv_q = torch.randn(B, d, generator=g, dtype=DT), torch.randn(B, d, generator=g, dtype=DT)
    z = mu_q + torch.randn(B, d, generator=g, dtype=DT) * (0.5 * lv_q).exp()
    mu_p, lv_p = torch.randn(L, d, generator=g, dtype=DT), torch.randn(L, d, generator=g, dtype=DT)
    y = _labels(g, B, L)
    got = gaussian_mixture_kl(z, mu_q, lv_q, mu_p, lv_p, y)
    assert abs(got.item() - ref_kl(z, mu_q, lv_q, mu_p, lv_p, y)) < 1e-10
    per = gaussian_mixture_kl(z, mu_q, lv_q, mu_p, lv_p, y, reduction="none")
    assert per.shape == (B,) and per[0].item() == 0.0
    assert abs(gaussian_mixture_kl(z, mu_q, lv_q, mu_p, lv_p, y, reduction="sum").item() - per.sum().item()) < 1e-12
    assert torch.equal(GaussianMixtureKL()(z, mu_q, lv_q, mu_p, lv_p, y), got)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("normalize_labels", [True, False])
def test_flcl_matches_reference(seed, normalize_labels):
    g = torch.Generator().manual_seed(seed)
    B, L, E = int(torch.randint(1, 9, (1,), generator=g)), int(torch.randint(1, 7, (1,), generator=g)), 4
    f, w = torch.randn(B, E, generator=g, dtype=DT), torch.randn(L, E, generator=g, dtype=DT)
    y = _labels(g, B, L, p=0.5)
    tau = [1.0, 0.1, 0.5, 2.0][seed]
    got = FeatureLabelContrastiveLoss(tau, normalize_labels=normalize_labels)(f, w, y)
    assert abs(got.item() - ref_flcl(f, w, y, tau, normalize_labels)) < 1e-10


def test_kl_no_big_cancellation_in_float32():
    """Small variances far from the origin: the expanded quadratic form must stay accurate."""
    g = torch.Generator().manual_seed(0)
    B, L, d = 16, 6, 64
    mu_p = 5 + torch.randn(L, d, generator=g, dtype=DT)
    lv_p = torch.full((L, d), -8.0, dtype=DT)
    mu_q = mu_p[torch.randint(0, L, (B,), generator=g)] + 0.01 * torch.randn(B, d, generator=g, dtype=DT)
    lv_q = torch.full((B, d), -8.0, dtype=DT)
    z = mu_q + 0.01 * torch.randn(B, d, generator=g, dtype=DT)
    y = (torch.rand(B, L, generator=g) < 0.5).long()
    y[:, 0] = 1
    exact = gaussian_mixture_kl(z, mu_q, lv_q, mu_p, lv_p, y)
    f32 = gaussian_mixture_kl(*(t.float() for t in (z, mu_q, lv_q, mu_p, lv_p)), y)
    assert abs(f32.item() - exact.item()) < 1e-3 * max(1.0, abs(exact.item()))


# ---------------------------------------------------------------- gradients
def test_kl_gradcheck():
    g = torch.Generator().manual_seed(1)
    B, L, d = 5, 4, 3
    ts = [torch.randn(s, d, generator=g, dtype=DT, requires_grad=True) for s in (B, B, B, L, L)]
    y = _labels(g, B, L, p=0.6)
    y[1, 0] = 1
    assert torch.autograd.gradcheck(lambda *a: gaussian_mixture_kl(*a, y), tuple(ts))


@pytest.mark.parametrize("normalize_labels", [True, False])
def test_flcl_gradcheck(normalize_labels):
    g = torch.Generator().manual_seed(2)
    f = torch.randn(5, 4, generator=g, dtype=DT, requires_grad=True)
    w = torch.randn(3, 4, generator=g, dtype=DT, requires_grad=True)
    y = _labels(g, 5, 3, p=0.6)
    y[1, 0] = 1
    loss = FeatureLabelContrastiveLoss(0.5, normalize_labels=normalize_labels)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, y), (f, w))


# ---------------------------------------------------------------- edge cases and errors
def test_zero_label_and_empty_batches_back_propagate():
    d, L = 3, 4
    for B in (0, 3):
        z = torch.randn(B, d, requires_grad=True)
        f = torch.randn(B, 5, requires_grad=True)
        w = torch.randn(L, 5, requires_grad=True)
        y = torch.zeros(B, L, dtype=torch.long)
        kl = gaussian_mixture_kl(z, z * 1.0, torch.zeros(B, d), torch.randn(L, d), torch.zeros(L, d), y)
        cl = FeatureLabelContrastiveLoss()(f, w, y)
        (kl + cl).backward()
        assert kl.item() == 0.0 and cl.item() == 0.0
        assert torch.isfinite(z.grad).all() and torch.isfinite(f.grad).all()
        assert torch.isfinite(w.grad).all()


def test_errors_name_the_fix():
    f, w, y = torch.randn(4, 5), torch.randn(3, 5), torch.randint(0, 2, (4, 3))
    with pytest.raises(ValueError, match="temperature"):
        FeatureLabelContrastiveLoss(temperature=0.0)
    with pytest.raises(ValueError, match="W.T"):
        FeatureLabelContrastiveLoss()(f, w.T, y)
    with pytest.raises(ValueError, match="0 and 1"):
        FeatureLabelContrastiveLoss()(f, w, y * 2)
    with pytest.raises(ValueError, match="rows"):
        FeatureLabelContrastiveLoss()(f, w, y[:3])
    with pytest.raises(ValueError, match="shape of z"):
        gaussian_mixture_kl(f, f[:3], f, w, w, y)
    with pytest.raises(ValueError, match="one Gaussian per label"):
        gaussian_mixture_kl(f, f, f, w[:, :2], w, y)
