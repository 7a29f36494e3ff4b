"""MulSupCon pre-training model (MoCo + labelled queue), the gradient decomposition, and the
pre-training / fine-tuning / probing loops. Small and fast (CPU, < 10 s in all)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlcl.losses import MulSupConLoss, SupConLoss
from mlcl.models.backbones import MLP, SmallCNN
from mlcl.models.mulsupcon import (
    FeatureMask,
    ImageJitter,
    MulSupConModel,
    ProjectionHead,
    analytic_gradient,
    key_weights,
    make_loss,
)
from mlcl.training.mulsupcon import (
    PROBE,
    YEAST_FINETUNE,
    YEAST_PRETRAIN,
    FinetuneConfig,
    PretrainConfig,
    finetune,
    linear_probe,
    predict_proba,
    pretrain,
    scaled_pretrain,
    standardize,
)

torch.set_num_threads(1)


def _data(n=96, f=12, L=4, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.4).astype(np.float32)
    X = (rng.normal(size=(n, f)) + Y @ rng.normal(size=(L, f)) * 2).astype(np.float32)
    return X, Y


def _model(f=12, L=4, **kw):
    kw = {"queue_size": 16, "proj_hidden": 16, "proj_dim": 8, **kw}
    return MulSupConModel(MLP(f, [16], dropout=0.0), n_labels=L, **kw)


# ------------------------------------------------------------------------------ building blocks
def test_feature_mask_zeroes_without_rescaling_and_is_identity_in_eval():
    torch.manual_seed(0)
    m, x = FeatureMask(0.5), torch.randn(200, 50) + 3.0
    out = m.train()(x)
    kept = out != 0
    assert torch.equal(out[kept], x[kept])  # no 1/(1-p) rescaling (unlike nn.Dropout)
    assert 0.45 < 1 - kept.float().mean().item() < 0.55
    assert torch.equal(m.eval()(x), x)
    with pytest.raises(ValueError):
        FeatureMask(1.0)


def test_image_jitter_keeps_shape_and_eval_identity():
    x = torch.rand(5, 1, 16, 16)
    j = ImageJitter(2, 0.0)
    assert j.train()(x).shape == x.shape
    assert torch.equal(j.eval()(x), x)
    # a pure shift: the mass of a centred blob is preserved
    blob = torch.zeros(3, 1, 16, 16)
    blob[:, :, 6:10, 6:10] = 1
    assert torch.allclose(j.train()(blob).sum((1, 2, 3)), blob.sum((1, 2, 3)))


def test_projection_head_layout_and_normalised_output():
    h = ProjectionHead(32, 256, 256, 0.1)
    kinds = (nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear)
    assert len(h.net) == len(kinds) and all(isinstance(m, k) for m, k in zip(h.net, kinds))
    assert h.net[3].p == 0.1 and h.net[4].out_features == 256
    out = h(torch.randn(7, 32))
    assert torch.allclose(out.norm(dim=1), torch.ones(7), atol=1e-6)


def test_make_loss():
    assert isinstance(make_loss("mulsupcon"), MulSupConLoss)
    assert make_loss("mulsupcon", label_weight=True).label_weight
    assert make_loss("all").positives == "all" and isinstance(make_loss("any"), SupConLoss)
    with pytest.raises(ValueError):
        make_loss("some")
    with pytest.raises(ValueError):
        make_loss("any", label_weight=True)


# ------------------------------------------------------------------------------ MoCo machinery
def test_momentum_update_rule():
    m = _model(momentum=0.9)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.encoder_k.parameters()]
    m.momentum_update()
    for pk, b, pq in zip(m.encoder_k.parameters(), before, m.encoder.parameters()):
        assert torch.allclose(pk, 0.9 * b + 0.1 * pq)
        assert not pk.requires_grad
    m0 = _model(momentum=0.0)
    with torch.no_grad():
        next(m0.encoder.parameters()).mul_(3)
    m0.momentum_update()
    assert all(torch.equal(a, b) for a, b in zip(m0.encoder.parameters(), m0.encoder_k.parameters()))


def test_references_are_keys_then_the_filled_queue():
    m = _model(queue_size=5)
    k1, y1 = torch.arange(3.0)[:, None].repeat(1, 8), torch.eye(4)[:3]
    m.queue.enqueue(k1, y1)
    ref, ref_y = m.references(torch.full((2, 8), -1.0), torch.zeros(2, 4))
    assert ref.shape == (5, 8) and torch.equal(ref[2:, 0], torch.arange(3.0))
    assert torch.equal(ref_y[2:], y1) and ref_y.dtype == torch.float32
    assert _model(queue_size=0).queue is None


def test_forward_is_the_loss_of_queries_against_keys_plus_queue():
    torch.manual_seed(0)
    X, Y = _data(16)
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    m = _model(momentum=1.0, augment=nn.Identity(), proj_dropout=0.0).train()
    q = m.head(m.encoder(x))
    k = m.head_k(m.encoder_k(x))
    expected = MulSupConLoss(0.1)(q, y, k, y)  # empty queue: in-batch keys only
    out = m(x, y)
    assert torch.allclose(out["loss"], expected, atol=1e-6)
    assert len(m.queue) == 16
    # second step: references = keys + the 16 queued keys (now full)
    q2, k2 = m.head(m.encoder(x)), m.head_k(m.encoder_k(x))
    exp2 = MulSupConLoss(0.1)(q2, y, torch.cat([k2, m.queue.keys]), torch.cat([y, m.queue.labels.float()]))
    assert torch.allclose(m(x, y)["loss"], exp2, atol=1e-6)
    # gradients reach the query encoder only
    m.zero_grad()
    m(x, y)["loss"].backward()
    assert next(m.encoder.parameters()).grad is not None
    assert all(p.grad is None for p in m.encoder_k.parameters())


@pytest.mark.parametrize("loss", ["mulsupcon", "all", "any"])
def test_zero_label_rows_give_finite_loss(loss):
    m = _model(loss=loss)
    x = torch.randn(8, 12)
    y = torch.zeros(8, 4)
    y[0, 1] = 1
    out = m(x, y)["loss"]
    assert torch.isfinite(out)
    out.backward()


# ------------------------------------------------------------------------------ eq. 7
def test_analytic_gradient_matches_autograd_in_float64():
    torch.manual_seed(1)
    B, M, L, D, tau = 7, 19, 6, 8, 0.1
    e = torch.randn(B, D, dtype=torch.float64, requires_grad=True)
    k = F.normalize(torch.randn(M, D, dtype=torch.float64), dim=1)
    y = (torch.rand(B, L) < 0.5).double()
    yk = (torch.rand(M, L) < 0.5).double()
    yk[:, -1] = 0  # a label without positives is skipped by both
    MulSupConLoss(tau, reduction="sum")(e, y, k, yk).backward()
    z = F.normalize(e.detach(), dim=1)
    g = analytic_gradient(z, y, k, yk, tau)
    assert torch.allclose(g, analytic_gradient(z, y, k, yk, tau, per_label_sums=False), atol=1e-12)
    # projection onto the tangent space of the sphere for the raw embedding
    g_raw = (g - (g * z).sum(1, keepdim=True) * z) / e.detach().norm(dim=1, keepdim=True)
    assert (g_raw - e.grad).abs().max().item() < 1e-12
    # the per-key weights w_it reproduce the same gradient: sum_t w_it z_k^(t)
    w = key_weights(z, y, k, yk, tau)
    assert (w @ k - g).abs().max().item() < 1e-12


# ------------------------------------------------------------------------------ loops
def test_yeast_configuration_is_the_authors():
    c = YEAST_PRETRAIN
    assert (c.epochs, c.iters_per_epoch, c.batch_size, c.lr, c.weight_decay) == (150, 1000, 64, 4e-4, 1e-5)
    assert (c.T_0, c.T_mult, c.eta_min, c.steps) == (50, 2, 1e-4, 150_000)
    f = YEAST_FINETUNE
    assert (f.epochs, f.iters_per_epoch, f.batch_size, f.lr, f.backbone_lr_mult) == (30, 50, 32, 4e-4, 0.1)
    assert scaled_pretrain(150_000) == YEAST_PRETRAIN
    assert scaled_pretrain(3000).steps == 3000 and scaled_pretrain(3000).epochs == 150
    assert PROBE.lr == 1e-2 and PROBE.backbone_lr_mult == 0.0


def test_standardize_fits_on_train_only():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, size=(50, 4)), rng.normal(size=(10, 4))
    a[:, 2] = 1.0  # constant feature: scale 1
    sa, sb = standardize(a, b)
    assert np.allclose(sa[:, [0, 1, 3]].mean(0), 0, atol=1e-6) and np.allclose(sa[:, [0, 1, 3]].std(0), 1, atol=1e-5)
    assert np.allclose(sa[:, 2], 0) and sb.dtype == np.float32
    assert np.allclose(sb[:, 0], (b[:, 0] - a[:, 0].mean()) / a[:, 0].std(), atol=1e-5)


def test_pretrain_is_deterministic_lowers_the_loss_and_keeps_snapshots():
    X, Y = _data(96)
    cfg = PretrainConfig(epochs=6, iters_per_epoch=10, batch_size=32, lr=3e-3, T_0=3, T_mult=1)
    torch.manual_seed(0)
    m1 = _model()
    torch.manual_seed(0)
    m2 = _model()
    r1 = pretrain(m1, X, Y, cfg, seed=3, device="cpu", snapshots=[10, 60], progress=False)
    torch.manual_seed(123)  # the seed argument, not the global state, decides the run
    r2 = pretrain(m2, X, Y, cfg, seed=3, device="cpu", progress=False)
    assert [h["loss"] for h in r1.history] == pytest.approx([h["loss"] for h in r2.history], rel=1e-5)
    assert r1.history[-1]["loss"] < r1.history[0]["loss"]
    assert sorted(r1.snapshots) == [10, 60] and r1.history[-1]["step"] == 60
    enc_state = r1.model.encoder.state_dict()
    assert all(torch.equal(enc_state[k], v) for k, v in r1.snapshots[60].items())


def test_finetune_uses_two_learning_rates_and_keeps_the_best_validation_epoch():
    X, Y = _data(120)
    enc = MLP(12, [16], dropout=0.0)
    enc.out_dim = 16
    cfg = FinetuneConfig(epochs=4, iters_per_epoch=5, batch_size=16)
    res = finetune(enc, X[:80], Y[:80], X[80:], Y[80:], cfg, seed=0, device="cpu")
    vals = [-h["val"] for h in res.history]  # validate() returns −BCE (higher is better)
    assert res.best_epoch == int(np.argmin(vals)) and res.best_val_bce == pytest.approx(min(vals))
    p = predict_proba(res.model, X[80:])
    bce = F.binary_cross_entropy(torch.from_numpy(p).double(), torch.from_numpy(Y[80:]).double()).item()
    assert bce == pytest.approx(res.best_val_bce, rel=1e-4)
    # the original encoder is untouched (deep copy)
    assert not any(p1 is p2 for p1, p2 in zip(enc.parameters(), res.model.encoder.parameters()))


def test_finetune_backbone_lr_is_a_tenth(monkeypatch):
    seen = {}
    real = torch.optim.Adam

    def spy(groups, **kw):
        seen["lrs"] = [g["lr"] for g in groups]
        return real(groups, **kw)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    X, Y = _data(40)
    enc = MLP(12, [16])
    finetune(enc, X[:30], Y[:30], X[30:], Y[30:], FinetuneConfig(epochs=1, iters_per_epoch=1), device="cpu")
    assert seen["lrs"] == pytest.approx([4e-4, 4e-5])


def test_linear_probe_freezes_the_encoder():
    X, Y = _data(120)
    m = _model()
    before = {k: v.clone() for k, v in m.encoder.state_dict().items()}
    res = linear_probe(m.encoder, X[:80], Y[:80], X[80:], Y[80:],
                       FinetuneConfig(epochs=3, iters_per_epoch=5, batch_size=16, lr=1e-2, backbone_lr_mult=0),
                       device="cpu")
    assert all(torch.equal(before[k], v) for k, v in m.encoder.state_dict().items())
    res.model.train()
    assert not res.model.encoder.encoder.training  # the frozen encoder stays in eval mode
    p = predict_proba(res.model, X[80:])
    assert p.shape == (40, 4) and np.isfinite(p).all()


def test_small_cnn_pretrains_on_images():
    rng = np.random.default_rng(0)
    X = rng.random((32, 1, 16, 16)).astype(np.float32)
    Y = (rng.random((32, 3)) < 0.5).astype(np.float32)
    m = MulSupConModel(SmallCNN(1, 16, width=4), 3, queue_size=8, proj_hidden=16, proj_dim=8,
                       augment=ImageJitter(1, 0.05))
    r = pretrain(m, X, Y, PretrainConfig(epochs=1, iters_per_epoch=2, batch_size=16), device="cpu",
                 progress=False)
    assert np.isfinite(r.history[-1]["loss"]) and m.encode(X).shape == (32, 16)
