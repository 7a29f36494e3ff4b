"""SupCon (ALL/ANY), MulSupCon, LLCL, L_Base and L_MSC against loop-by-loop references written
straight from the papers' equations (float64, agreement to 1e-10), gradchecks, edge cases and
error messages."""

from __future__ import annotations

import math

import pytest
import torch

from mlcl.losses import (
    JaccardSupConLoss,
    LabelLevelContrastiveLoss,
    MSCLoss,
    MulSupConLoss,
    SupConLoss,
)

DT = torch.float64
TOL = 1e-10


# ---------------------------------------------------------------- helpers
def _nrm(v) -> list[float]:
    s = math.sqrt(sum(float(a) ** 2 for a in v))
    return [float(a) / s for a in v]


def _dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


def _lse(xs) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _lab(y, i) -> set[int]:
    return {c for c in range(y.shape[1]) if int(y[i, c])}


def _setup(z, y, k, yk):
    """Anchors, references and the reference index sets A(i) (self removed iff k is None)."""
    Z = [_nrm(r) for r in z]
    if k is None:
        K, YK = Z, y
        A = [[j for j in range(len(Z)) if j != i] for i in range(len(Z))]
    else:
        K, YK = [_nrm(r) for r in k], yk
        A = [list(range(len(K))) for _ in range(len(Z))]
    return Z, K, YK, A


# ---------------------------------------------------------------- references (paper equations)
def ref_supcon(z, y, k, yk, tau, positives):
    """MulSupCon eq. 1, ALL / ANY positive sets."""
    Z, K, YK, A = _setup(z, y, k, yk)
    tot, n = 0.0, 0
    for i in range(len(Z)):
        yi = _lab(y, i)
        if not yi:
            continue
        if positives == "any":
            P = [j for j in A[i] if yi & _lab(YK, j)]
        else:
            P = [j for j in A[i] if _lab(YK, j) == yi]
        if not P:
            continue
        lse = _lse([_dot(Z[i], K[a]) / tau for a in A[i]])
        tot += -sum(_dot(Z[i], K[p]) / tau - lse for p in P) / len(P)
        n += 1
    return tot / n if n else 0.0


def ref_mulsupcon(z, y, k, yk, tau, label_weight):
    """MulSupCon eq. 4 + 5 (or eq. 6 with label_weight)."""
    Z, K, YK, A = _setup(z, y, k, yk)
    pairs = []  # (i, loss)
    for i in range(len(Z)):
        lse = _lse([_dot(Z[i], K[a]) / tau for a in A[i]]) if A[i] else 0.0
        for c in sorted(_lab(y, i)):
            P = [j for j in A[i] if int(YK[j, c])]
            if not P:
                continue
            pairs.append((i, -sum(_dot(Z[i], K[p]) / tau - lse for p in P) / len(P)))
    if not pairs:
        return 0.0
    if not label_weight:
        return sum(v for _, v in pairs) / len(pairs)
    per = {}
    for i, v in pairs:
        per.setdefault(i, []).append(v)
    return sum(sum(v) / len(v) for v in per.values()) / len(per)


def ref_llcl(e, y, tau):
    """MulCon eq. 8 and the batch mean over I."""
    I = [(i, j) for i in range(e.shape[0]) for j in range(e.shape[1]) if int(y[i, j])]
    Z = {a: _nrm(e[a[0], a[1]]) for a in I}
    tot, n = 0.0, 0
    for a in I:
        A = [b for b in I if b != a]
        P = [b for b in A if b[1] == a[1]]
        if not P:
            continue
        lse = _lse([_dot(Z[a], Z[b]) / tau for b in A])
        tot += -sum(_dot(Z[a], Z[p]) / tau - lse for p in P) / len(P)
        n += 1
    return tot / n if n else 0.0


def ref_jaccard(z, y, k, yk, tau):
    """ABALONE L_Base (section 3.1)."""
    Z, K, YK, A = _setup(z, y, k, yk)
    tot, n = 0.0, 0
    for i in range(len(Z)):
        yi = _lab(y, i)
        w = {}
        for j in A[i]:
            yj = _lab(YK, j)
            if yi | yj:
                w[j] = len(yi & yj) / len(yi | yj)
        N = sum(w.values())
        if N == 0:
            continue
        lse = _lse([_dot(Z[i], K[a]) / tau for a in A[i]])
        tot += -sum(wj * (_dot(Z[i], K[j]) / tau - lse) for j, wj in w.items()) / N
        n += 1
    return tot / n if n else 0.0


def ref_msc(z, y, protos, k, yk, tau, beta, alpha):
    """ABALONE eq. 1-5 as the authors' code computes it: all L prototypes (weight 1) and
    beta x every other sample in the denominator; prototype c (weight 1) and every other sample
    carrying c (weight alpha/|y_i U y_j|) as positives, weights normalised; mean over c in y_i;
    mean over samples."""
    Z, K, YK, A = _setup(z, y, k, yk)
    C = [_nrm(r) for r in protos]
    tot, n = 0.0, 0
    for i in range(len(Z)):
        yi = _lab(y, i)
        if not yi:
            continue
        den = sum(math.exp(_dot(Z[i], c) / tau) for c in C) + beta * sum(
            math.exp(_dot(Z[i], K[a]) / tau) for a in A[i]
        )
        li = 0.0
        for c in sorted(yi):
            terms = [(1.0, _dot(Z[i], C[c]) / tau)]
            for j in A[i]:
                if int(YK[j, c]):
                    terms.append((alpha / len(yi | _lab(YK, j)), _dot(Z[i], K[j]) / tau))
            N = sum(w for w, _ in terms)
            li += -sum(w * (s - math.log(den)) for w, s in terms) / N
        tot += li / len(yi)
        n += 1
    return tot / n if n else 0.0


# ---------------------------------------------------------------- random cases
def _case(seed: int, with_refs: bool):
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi, (1,), generator=g))  # noqa: E731
    B, L, D = r(2, 9), r(2, 7), r(2, 6)
    y = (torch.rand(B, L, generator=g) < 0.45).long()
    y[0] = 0  # a zero-label row
    y[:, -1] = 0  # a label no sample has
    if seed % 3 == 0 and B > 2:
        y[2] = y[1]  # identical label sets (ALL positives)
    z = torch.randn(B, D, generator=g, dtype=DT) * 3
    if not with_refs:
        return z, y, None, None, g
    M = r(1, 11)
    yk = (torch.rand(M, L, generator=g) < 0.45).long()
    yk[:, -1] = 0
    if M > 1:
        yk[-1] = 0
    if M > 2:
        yk[0] = y[1]
    return z, y, torch.randn(M, D, generator=g, dtype=DT), yk, g


SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_refs", [False, True])
@pytest.mark.parametrize("positives", ["any", "all"])
def test_supcon_matches_reference(seed, with_refs, positives):
    z, y, k, yk, _ = _case(seed, with_refs)
    tau = 0.1 + 0.1 * seed
    got = SupConLoss(tau, positives=positives)(z, y, k, yk)
    assert abs(got.item() - ref_supcon(z, y, k, yk, tau, positives)) < TOL


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_refs", [False, True])
@pytest.mark.parametrize("grouped", [False, True])
def test_supcon_all_mask_and_grouping_paths_match_reference(seed, with_refs, grouped, monkeypatch):
    """ALL has two exact algorithms (the same-set mask in the fused pass below
    GROUP_ELEMENTS, grouping by label set above it): both against the float64 reference, and
    their gradients against each other."""
    import mlcl.losses.supcon as supcon_mod

    z, y, k, yk, _ = _case(seed, with_refs)
    tau = 0.1 + 0.1 * seed
    grads = []
    for threshold in (0, 1 << 60) if grouped else (1 << 60,):
        monkeypatch.setattr(supcon_mod, "GROUP_ELEMENTS", threshold)
        zz = z.clone().requires_grad_(True)
        kk = None if k is None else k.clone().requires_grad_(True)
        got = SupConLoss(tau, positives="all")(zz, y, kk, yk)
        assert abs(got.item() - ref_supcon(z, y, k, yk, tau, "all")) < TOL
        got.backward()
        grads.append((zz.grad, None if kk is None else kk.grad))
    if grouped:
        for a, b in zip(*grads):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_refs", [False, True])
@pytest.mark.parametrize("label_weight", [False, True])
def test_mulsupcon_matches_reference(seed, with_refs, label_weight):
    z, y, k, yk, _ = _case(seed, with_refs)
    tau = 0.1 + 0.1 * seed
    got = MulSupConLoss(tau, label_weight=label_weight)(z, y, k, yk)
    assert abs(got.item() - ref_mulsupcon(z, y, k, yk, tau, label_weight)) < TOL


@pytest.mark.parametrize("seed", SEEDS)
def test_llcl_matches_reference(seed):
    z, y, _, _, g = _case(seed, False)
    e = torch.randn(z.shape[0], y.shape[1], 4, generator=g, dtype=DT)
    tau = 0.2 + 0.1 * seed
    got = LabelLevelContrastiveLoss(tau)(e, y)
    assert abs(got.item() - ref_llcl(e, y, tau)) < TOL
    per = LabelLevelContrastiveLoss(tau, reduction="none")(e, y)
    assert per.shape == y.shape and (per[y == 0] == 0).all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_refs", [False, True])
def test_jaccard_matches_reference(seed, with_refs):
    z, y, k, yk, _ = _case(seed, with_refs)
    tau = 0.1 + 0.1 * seed
    got = JaccardSupConLoss(tau)(z, y, k, yk)
    assert abs(got.item() - ref_jaccard(z, y, k, yk, tau)) < TOL


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_refs", [False, True])
def test_msc_matches_reference(seed, with_refs):
    z, y, k, yk, g = _case(seed, with_refs)
    protos = torch.randn(y.shape[1], z.shape[1], generator=g, dtype=DT)
    tau, beta, alpha = 0.1 + 0.1 * seed, [0.1, 0.5, 1.0][seed % 3], [1.0, 0.5][seed % 2]
    got = MSCLoss(tau, beta=beta, alpha=alpha)(z, y, protos, k, yk)
    assert abs(got.item() - ref_msc(z, y, protos, k, yk, tau, beta, alpha)) < TOL


def test_reductions_are_consistent():
    z, y, k, yk, g = _case(4, True)
    protos = torch.randn(y.shape[1], z.shape[1], generator=g, dtype=DT)
    for make, args in [
        (lambda r: SupConLoss(0.2, reduction=r), (z, y)),
        (lambda r: MulSupConLoss(0.2, reduction=r), (z, y, k, yk)),
        (lambda r: MulSupConLoss(0.2, label_weight=True, reduction=r), (z, y)),
        (lambda r: JaccardSupConLoss(0.2, reduction=r), (z, y)),
        (lambda r: MSCLoss(0.2, reduction=r), (z, y, protos)),
    ]:
        none = make("none")(*args)
        assert torch.allclose(make("sum")(*args), none.sum())
        n_valid = (none != 0).sum()
        assert torch.allclose(make("mean")(*args), none.sum() / n_valid)


# ---------------------------------------------------------------- gradients
def _grad_case(seed=11):
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0]])
    z = torch.randn(5, 3, generator=g, dtype=DT, requires_grad=True)
    k = torch.randn(6, 3, generator=g, dtype=DT, requires_grad=True)
    yk = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0], [0, 0, 1, 0], [1, 0, 1, 0]])
    return z, y, k, yk, g


@pytest.mark.parametrize(
    "loss",
    [SupConLoss(0.3, "any"), SupConLoss(0.3, "all"), MulSupConLoss(0.3),
     MulSupConLoss(0.3, label_weight=True), JaccardSupConLoss(0.3)],
    ids=["supcon-any", "supcon-all", "mulsupcon", "mulsupcon-lw", "jaccard"],
)
def test_gradcheck(loss):
    z, y, k, yk, _ = _grad_case()
    assert torch.autograd.gradcheck(lambda a: loss(a, y), (z,))
    assert torch.autograd.gradcheck(lambda a, b: loss(a, y, b, yk), (z, k))


def test_gradcheck_msc_and_llcl():
    z, y, k, yk, g = _grad_case()
    p = torch.randn(4, 3, generator=g, dtype=DT, requires_grad=True)
    msc = MSCLoss(0.3, beta=0.2, alpha=0.7)
    assert torch.autograd.gradcheck(lambda a, c: msc(a, y, c), (z, p))
    assert torch.autograd.gradcheck(lambda a, b, c: msc(a, y, c, b, yk), (z, k, p))
    e = torch.randn(5, 4, 3, generator=g, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: LabelLevelContrastiveLoss(0.3)(a, y), (e,))


# ---------------------------------------------------------------- edge cases
ALL_LOSSES = {
    "supcon-any": lambda z, y, k, yk, p: SupConLoss(0.1, "any")(z, y, k, yk),
    "supcon-all": lambda z, y, k, yk, p: SupConLoss(0.1, "all")(z, y, k, yk),
    "mulsupcon": lambda z, y, k, yk, p: MulSupConLoss(0.1)(z, y, k, yk),
    "mulsupcon-lw": lambda z, y, k, yk, p: MulSupConLoss(0.1, label_weight=True)(z, y, k, yk),
    "jaccard": lambda z, y, k, yk, p: JaccardSupConLoss(0.1)(z, y, k, yk),
    "msc": lambda z, y, k, yk, p: MSCLoss(0.1)(z, y, p, k, yk),
}


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
@pytest.mark.parametrize("B", [0, 1, 3])
@pytest.mark.parametrize("with_refs", [False, True])
def test_no_valid_anchor_gives_zero_that_backpropagates(name, B, with_refs):
    L, D = 4, 5
    z = torch.randn(B, D, requires_grad=True)
    y = torch.zeros(B, L, dtype=torch.long)
    k = torch.randn(3, D, requires_grad=True) if with_refs else None
    yk = torch.zeros(3, L, dtype=torch.long) if with_refs else None
    p = torch.randn(L, D, requires_grad=True)
    loss = ALL_LOSSES[name](z, y, k, yk, p)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_llcl_no_active_pair():
    e = torch.randn(3, 4, 5, requires_grad=True)
    for y in (torch.zeros(3, 4, dtype=torch.long), torch.eye(3, 4, dtype=torch.long)):
        loss = LabelLevelContrastiveLoss()(e, y)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(e.grad).all()


def test_single_anchor_self_reference_is_finite():
    """One sample, batch as its own reference: the denominator is empty; no NaN."""
    z = torch.randn(1, 4, requires_grad=True)
    y = torch.ones(1, 3, dtype=torch.long)
    for name, fn in ALL_LOSSES.items():
        loss = fn(z, y, None, None, torch.randn(3, 4))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z.grad).all(), name


def test_own_key_is_a_positive_with_references():
    """With references nothing is removed: the anchor's own key (another view) is a positive."""
    z = torch.randn(1, 4, dtype=DT)
    y = torch.tensor([[1, 0]])
    loss = MulSupConLoss(0.1)(z, y, z.clone(), y)
    assert abs(loss.item()) < 1e-12  # one key, the anchor itself: log softmax = 0


# ---------------------------------------------------------------- errors
def test_errors_name_the_fix():
    z, y = torch.randn(4, 5), torch.randint(0, 2, (4, 3))
    with pytest.raises(ValueError, match="temperature must be"):
        MulSupConLoss(temperature=-1)
    with pytest.raises(ValueError, match="temperature must be"):
        SupConLoss(temperature=0)
    with pytest.raises(ValueError, match="positives"):
        SupConLoss(positives="some")
    with pytest.raises(ValueError, match="reduction"):
        SupConLoss(reduction="avg")
    with pytest.raises(ValueError, match="same samples"):
        MulSupConLoss()(z, y[:3])
    with pytest.raises(ValueError, match="0 and 1"):
        MulSupConLoss()(z, y * 3)
    with pytest.raises(ValueError, match="one_hot"):
        MulSupConLoss()(z, torch.arange(4))
    with pytest.raises(ValueError, match="go together"):
        MulSupConLoss()(z, y, torch.randn(2, 5))
    with pytest.raises(ValueError, match="same head"):
        MulSupConLoss()(z, y, torch.randn(2, 6), y[:2])
    with pytest.raises(ValueError, match="label columns"):
        MulSupConLoss()(z, y, torch.randn(2, 5), torch.ones(2, 4))
    with pytest.raises(ValueError, match="flatten"):
        JaccardSupConLoss()(torch.randn(4, 2, 5), y)
    with pytest.raises(ValueError, match="one prototype per label"):
        MSCLoss()(z, y, torch.randn(4, 5))
    with pytest.raises(ValueError, match="beta"):
        MSCLoss(beta=0)
    with pytest.raises(ValueError, match=r"\(batch, num_labels, dim\)"):
        LabelLevelContrastiveLoss()(z, y)
    with pytest.raises(TypeError, match="float"):
        SupConLoss()(torch.ones(4, 5, dtype=torch.long), y)
