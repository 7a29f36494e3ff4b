"""Focal and asymmetric losses against loop references of ABALONE section 4.2.2 / Ridnik et al."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlcl.losses import AsymmetricLoss, FocalLoss

DT = torch.float64


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def ref_focal(x, y, gamma):
    N, L = x.shape
    tot = 0.0
    for i in range(N):
        for j in range(L):
            p = _sig(float(x[i, j]))
            if int(y[i, j]):
                tot += -((1 - p) ** gamma) * math.log(p)
            else:
                tot += -(p**gamma) * math.log(1 - p)
    return tot / (N * L)


def ref_asl(x, y, gp, gn, m):
    N, L = x.shape
    tot = 0.0
    for i in range(N):
        for j in range(L):
            p = _sig(float(x[i, j]))
            if int(y[i, j]):
                tot += -((1 - p) ** gp) * math.log(p)
            else:
                pm = max(p - m, 0.0)
                tot += -(pm**gn) * math.log(1 - pm)
    return tot / (N * L)


@pytest.mark.parametrize("seed", range(4))
def test_match_references(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 4, generator=g, dtype=DT) * 3
    y = torch.randint(0, 2, (5, 4), generator=g)
    y[0] = 0
    for gamma in (0.0, 1.0, 2.0):
        assert abs(FocalLoss(gamma)(x, y).item() - ref_focal(x, y, gamma)) < 1e-10
    for gp, gn, m in ((0.0, 4.0, 0.05), (1.0, 2.0, 0.0), (0.0, 0.0, 0.2)):
        assert abs(AsymmetricLoss(gp, gn, m)(x, y).item() - ref_asl(x, y, gp, gn, m)) < 1e-10


def test_gamma_zero_is_bce_and_reductions():
    x, y = torch.randn(6, 3, dtype=DT), torch.randint(0, 2, (6, 3))
    bce = F.binary_cross_entropy_with_logits(x, y.to(DT))
    assert torch.allclose(FocalLoss(0)(x, y), bce)
    assert torch.allclose(AsymmetricLoss(0, 0, 0)(x, y), bce)
    none = FocalLoss(2, reduction="none")(x, y)
    assert none.shape == (6, 3) and torch.allclose(FocalLoss(2, reduction="sum")(x, y), none.sum())


def test_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=DT, requires_grad=True)
    y = torch.randint(0, 2, (4, 3), generator=g)
    assert torch.autograd.gradcheck(lambda a: FocalLoss(2)(a, y), (x,))
    assert torch.autograd.gradcheck(lambda a: AsymmetricLoss(1, 4, 0.05)(a, y), (x,))


def test_extreme_logits_and_empty_batch():
    x = torch.tensor([[80.0, -80.0, 0.0]], requires_grad=True)
    y = torch.tensor([[0, 1, 1]])
    for loss in (FocalLoss(2), AsymmetricLoss()):
        out = loss(x, y)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(x.grad).all()
        e = torch.zeros(0, 3, requires_grad=True)
        out = loss(e, torch.zeros(0, 3))
        out.backward()
        assert out.item() == 0.0


def test_errors():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="clip"):
        AsymmetricLoss(clip=1.0)
    with pytest.raises(ValueError, match="0 and 1"):
        FocalLoss()(torch.randn(2, 3), torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="before the sigmoid"):
        FocalLoss()(torch.randn(2, 3, 1), torch.ones(2, 3))
