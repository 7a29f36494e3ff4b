"""MulCon: the label-level embedding network (eq. 1–6), two-step training, collapse measures."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch
from torch import nn

from mlcl.analysis import (
    attention_localisation,
    collapse_measures,
    nearest_labels,
    retrieval_at_k,
    within_label_retrieval,
)
from mlcl.models.mulcon import GlobalPoolNet, LabelLevelNet, MultiAttBlock, label_level_outputs
from mlcl.training.mulcon import (
    AUTHORS,
    AUTHORS_LR_MULT,
    DIGITS,
    PAPER_SCALE,
    StageConfig,
    augment_digits,
    authors,
    mulcon_loss,
    train_mulcon,
    train_stage,
)

torch.set_num_threads(1)


class TokenIdentity(nn.Module):
    """An 'encoder' whose tokens are the input itself: (B, C, h, w) → (B, C, h, w)."""

    out_channels = 8

    def forward(self, x):
        return x


def _net(**kw) -> LabelLevelNet:
    torch.manual_seed(0)
    return LabelLevelNet(5, TokenIdentity(), dim=16, heads=4, proj_dim=8, **kw).eval()


def test_shapes_normalised_projection_and_attention():
    net = LabelLevelNet(10, "cnn", width=16, dim=32, heads=4, proj_dim=8).eval()
    out = net(torch.rand(3, 1, 32, 32), return_attention=True)
    assert out["logits"].shape == (3, 10) and out["g"].shape == (3, 10, 32)
    assert out["z"].shape == (3, 10, 8)
    torch.testing.assert_close(out["z"].norm(dim=-1), torch.ones(3, 10))
    assert out["grid"] == (8, 8)
    att = out["attention"]
    assert att.shape == (3, 4, 10, 64)
    torch.testing.assert_close(att.sum(-1), torch.ones(3, 4, 10))
    assert "attention" not in net(torch.rand(3, 1, 32, 32))  # only on request


def test_image_token_permutation_invariance():
    """No positional code: the label-level embeddings depend on the set of tokens, not their order."""
    net = _net()
    x = torch.randn(2, 8, 3, 4)
    perm = torch.randperm(12)
    xp = x.flatten(2)[:, :, perm].reshape(2, 8, 3, 4)
    torch.testing.assert_close(net(x)["g"], net(xp)["g"], atol=1e-5, rtol=1e-5)


def test_label_query_permutation_equivariance():
    """Permuting the label queries (and the per-label classifiers) permutes the outputs."""
    net = _net()
    x = torch.randn(2, 8, 3, 4)
    out = net(x)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        net.label_queries.copy_(net.label_queries[perm])
        net.cls_weight.copy_(net.cls_weight[perm])
        net.cls_bias.copy_(net.cls_bias[perm])
    out2 = net(x)
    torch.testing.assert_close(out2["g"], out["g"][:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out2["logits"], out["logits"][:, perm], atol=1e-5, rtol=1e-5)


def test_one_linear_classifier_per_label():
    """logit_j depends on g_ij only (one Linear(D, 1) per label, eq. 'fc_j(g_ij)')."""
    net = _net()
    g = torch.randn(2, 5, 16, requires_grad=True)
    net.classify(g)[:, 2].sum().backward()
    grad = g.grad.abs().sum(dim=(0, 2))
    assert grad[2] > 0 and torch.all(grad[[0, 1, 3, 4]] == 0)


def test_multiattblock_matches_a_reference_single_head():
    torch.manual_seed(1)
    blk = MultiAttBlock(6, 6, 6, heads=1).eval()
    blk.keep_attention = True
    q, k = torch.randn(2, 3, 6), torch.randn(2, 7, 6)
    out = blk(q, k, k)
    qp, kp, vp = blk.w_q(q), blk.w_k(k), blk.w_v(k)
    a = torch.softmax(qp @ kp.transpose(1, 2) / 6**0.5, -1)
    q1 = blk.ln1(qp + blk.w_o(a @ vp))
    ref = blk.ln2(q1 + torch.relu(blk.ff(q1)))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(blk.attention[:, 0], a)


def test_no_torchvision_at_import():
    """torchvision is imported only when a ResNet encoder is built (paper scale)."""
    import mlcl.models.mulcon  # noqa: F401
    import mlcl.training.mulcon  # noqa: F401

    assert "torchvision" not in sys.modules


def test_global_pool_baseline():
    net = GlobalPoolNet(10, width=16, proj_dim=8).eval()
    out = net(torch.rand(4, 1, 32, 32))
    assert out["logits"].shape == (4, 10) and out["z"].shape == (4, 8)


def test_augment_digits_deterministic_and_identity():
    x = torch.rand(5, 1, 32, 32)
    a = augment_digits(x, torch.Generator().manual_seed(0))
    b = augment_digits(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape
    torch.testing.assert_close(augment_digits(x, shift=0, cutout=0, noise=0.0), x)
    # a pure shift moves pixels without changing them
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 10:14, 10:14] = 1.0
    s = augment_digits(x, torch.Generator().manual_seed(3), shift=2, cutout=0, noise=0.0)
    assert s.sum() == 16 and s.max() == 1.0


def test_loss_two_views_and_zero_label_rows():
    net = LabelLevelNet(4, "cnn", width=8, dim=16, proj_dim=8)
    x = torch.rand(6, 1, 16, 16)
    y = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 1.]])
    st = StageConfig(llcl=0.5, views=2)
    losses = mulcon_loss(net, [x, x.flip(-1)], y, st)
    assert set(losses) == {"bce", "llcl", "loss"}
    assert torch.isfinite(losses["loss"])
    torch.testing.assert_close(losses["loss"], losses["bce"] + 0.5 * losses["llcl"])
    losses["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    gp = mulcon_loss(GlobalPoolNet(4, width=8), [x, x], y, StageConfig(supcon=1.0, views=2))
    assert "supcon" in gp and torch.isfinite(gp["loss"])


def _toy(n=96, L=4, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.4).astype(np.float32)
    Y[Y.sum(1) == 0, 0] = 1
    X = np.zeros((n, 1, 16, 16), np.float32)
    for j in range(L):  # label j lights up quadrant j
        r, c = divmod(j, 2)
        X[:, 0, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += Y[:, j, None, None]
    X += 0.1 * rng.standard_normal(X.shape).astype(np.float32)
    return X, Y


def test_training_learns_and_is_deterministic():
    X, Y = _toy()
    stages = [StageConfig(epochs=6, lr=3e-3, batch_size=32), StageConfig(epochs=2, lr=3e-4, batch_size=32,
                                                                        llcl=0.5, views=2)]
    res = []
    for _ in range(2):
        torch.manual_seed(0)
        net = LabelLevelNet(4, "cnn", width=8, dim=16, proj_dim=8)
        hist = train_mulcon(net, X, Y, stages, seed=0, progress=False)
        res.append((net, hist))
    (n1, h1), (n2, h2) = res
    assert [h["stage"] for h in h1] == [0] * 6 + [1] * 2
    assert h1[5]["bce"] < h1[0]["bce"]
    assert "llcl" in h1[-1] and "llcl" not in h1[0]
    for a, b in zip(n1.state_dict().values(), n2.state_dict().values()):
        torch.testing.assert_close(a, b)
    from mlcl.metrics import mean_average_precision

    assert mean_average_precision(Y, label_level_outputs(n1, X)["probs"]) > 0.65  # chance ≈ 0.45


def test_per_step_ema_is_returned_and_sgd_step_schedule():
    """One step per epoch: the raw weights after each step (no EMA) give the expected EMA
    e_1 = w_1, e_t = d·e_(t-1) + (1-d)·w_t, which the EMA run must return; lr ×0.1 every epoch."""
    X, Y = _toy(n=32)
    stage = StageConfig(epochs=3, lr=0.01, optimizer="sgd", scheduler="step", step_size=1, step_gamma=0.1,
                        batch_size=32, augment=False)
    runs = {}
    for ema in (None, 0.5):
        torch.manual_seed(0)
        net = LabelLevelNet(4, "cnn", width=8, dim=16, proj_dim=8)
        w: list[dict] = []

        def record(e, m, w=w):
            w.append({k: v.clone() for k, v in m.named_parameters()})
            return {}

        hist = train_stage(net, (X, Y), stage.replace(ema=ema), progress=False, callback=record)
        runs[ema] = (net, w, hist)
    _, w, hist = runs[None]
    assert [h["lr"] for h in hist] == pytest.approx([0.01, 0.001, 0.0001])
    want = w[0]
    for wt in w[1:]:
        want = {k: 0.5 * want[k] + 0.5 * wt[k] for k in want}
    got = dict(runs[0.5][0].named_parameters())
    for k, v in want.items():
        torch.testing.assert_close(got[k], v)
    assert any(not torch.equal(got[k], w[-1][k]) for k in got)  # not the raw weights


def test_presets_follow_the_authors_settings():
    s1, s2 = PAPER_SCALE
    assert (s1.optimizer, s1.scheduler, s1.lr, s1.batch_size, s1.epochs, s1.llcl) == ("adam", "onecycle", 2e-4, 32, 25, 0)
    assert (s2.optimizer, s2.lr, s2.momentum, s2.weight_decay, s2.step_size, s2.step_gamma) == ("sgd", 0.01, 0.9, 1e-4, 20, 0.1)
    assert (s2.batch_size, s2.views, s2.ema, s2.llcl, s2.temperature) == (24, 2, 0.9997, 0.5, 0.2)
    assert DIGITS[0].llcl == 0 and DIGITS[1].llcl > 0 and DIGITS[1].lr < DIGITS[0].lr
    assert s2.lr_mult == AUTHORS_LR_MULT and s1.lr_mult == {}


def test_authors_preset_is_the_authors_step_two():
    """SGD 0.01 (momentum 0.9, wd 1e-4), lrp 0.1 on backbone + attention, lr × 0.1 halfway, EMA with a
    one-epoch horizon, γ as given (0.1 = paper A.1 by default); bad sizes are named errors."""
    s1, s2 = AUTHORS
    assert s1.llcl == 0 and s1.views == 1 and s2.llcl == 0.1
    assert (s2.optimizer, s2.lr, s2.momentum, s2.weight_decay, s2.scheduler, s2.step_gamma) == ("sgd", 0.01, 0.9, 1e-4, "step", 0.1)
    assert (s2.views, s2.temperature, s2.step_size) == (2, 0.2, (s2.epochs + 1) // 2)
    a1, a2 = authors(0.5, step1_epochs=7, step2_epochs=1, steps_per_epoch=1)
    assert (a1.epochs, a2.epochs, a2.step_size, a2.llcl, a2.ema) == (7, 1, 1, 0.5, 0.0)  # boundary: 1 epoch, 1 step
    assert authors(0.0)[1].llcl == 0.0  # γ = 0: the "more epochs" control
    assert a1.batch_size == 64 and a2.batch_size == 64  # step 1 as the paper's A.1; step 2: two views of 64
    for bad in (dict(steps_per_epoch=0), dict(step2_epochs=0), dict(step1_epochs=-1), dict(batch_size=1),
                dict(step1_batch_size=1)):
        with pytest.raises(ValueError, match="authors"):
            authors(0.1, **bad)
    with pytest.raises(ValueError, match="gamma"):
        authors(-0.1)


def test_lr_mult_reaches_the_right_parameters(device):
    """lrp: after one SGD step from zero momentum, every parameter moved by lr·mult·grad, with mult 0.1
    for the backbone and the attention module (label queries U included) and 1 for classifiers/projector."""
    X, Y = _toy(n=16)
    torch.manual_seed(0)
    net = LabelLevelNet(4, "cnn", width=8, dim=16, proj_dim=8)
    stage = StageConfig(epochs=1, lr=0.01, optimizer="sgd", momentum=0.0, batch_size=16, llcl=0.5, views=2,
                        augment=False, lr_mult=dict(AUTHORS_LR_MULT), amp=False)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    ref = copy.deepcopy(net).to(device)
    loss = mulcon_loss(ref, [torch.as_tensor(X, device=device)] * 2, torch.as_tensor(Y, device=device).float(), stage)
    loss["loss"].backward()
    grads = {k: p.grad.detach().cpu() for k, p in ref.named_parameters()}
    train_stage(net, (X, Y), stage, device=device, progress=False)
    slow = [k for k in before if k.split(".")[0] in AUTHORS_LR_MULT]
    assert "label_queries" in slow and any(k.startswith("projector") for k in before if k not in slow)
    for k, p in net.named_parameters():
        mult = 0.1 if k in slow else 1.0
        torch.testing.assert_close(p.detach().cpu(), before[k] - 0.01 * mult * grads[k], atol=1e-6, rtol=1e-4, msg=k)
    with pytest.raises(ValueError, match="matches no parameter"):
        train_stage(net, (X, Y), stage.replace(lr_mult={"backbone": 0.1}), device=device, progress=False)


def test_validation_selection_and_plateau_in_a_stage():
    """validate= keeps the best epoch's weights (here: the first, by a score that falls every epoch)
    and "plateau" lowers the lr by step_gamma once more than `patience` epochs pass without a better
    score (torch's rule: with patience 1, after the second bad epoch; the counter then restarts)."""
    X, Y = _toy(n=32)
    torch.manual_seed(0)
    net = LabelLevelNet(4, "cnn", width=8, dim=16, proj_dim=8)
    snaps: list[dict] = []

    def snap(e, m):
        snaps.append({k: v.clone() for k, v in m.state_dict().items()})
        return {}

    scores = iter([3.0, 2.0, 1.0, 0.0])
    hist = train_stage(net, (X, Y), StageConfig(epochs=4, lr=1e-3, batch_size=32, scheduler="plateau", patience=1,
                                                step_gamma=0.5, augment=False),
                       progress=False, callback=snap, validate=lambda m: next(scores))
    assert [h["val"] for h in hist] == [3.0, 2.0, 1.0, 0.0]
    assert [h["lr"] for h in hist] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snaps[0][k], msg=k)
    with pytest.raises(ValueError, match="validate"):
        train_stage(net, (X, Y), StageConfig(epochs=1, scheduler="plateau"), progress=False)


def _simplex(L: int) -> np.ndarray:
    v = np.eye(L) - 1.0 / L
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_collapse_measures_on_a_collapsed_and_a_random_configuration():
    L, N = 5, 200
    rng = np.random.default_rng(0)
    Y = (rng.random((N, L)) < 0.4).astype(int)
    z = np.broadcast_to(_simplex(L), (N, L, L)).copy()
    m = collapse_measures(z, Y)
    assert m["within_total"] < 1e-12
    assert m["mean_cos"] == pytest.approx(-1 / (L - 1)) and m["max_cos_dev"] < 1e-9
    assert m["input_dependence"] < 1e-12 and m["active_inactive_gap"] < 1e-12
    zr = rng.standard_normal((N, L, 8))
    mr = collapse_measures(zr, Y)
    assert mr["within_total"] > 0.8 and mr["input_dependence"] > 0.8


def test_retrieval_nearest_labels_and_localisation():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    emb = np.eye(4)[labels] * 5 + 0.1 * rng.standard_normal((100, 4))
    r = retrieval_at_k(emb, labels, ks=(3, 10))
    assert r["P@3"] == 1.0 and r["R@10"] == 1.0
    emb2 = np.eye(4)[labels] + np.eye(4)[(labels // 2) * 2]  # labels 0/1 and 2/3 share a direction
    near, cos = nearest_labels(emb2, labels, 4, k=1)
    assert list(near[:, 0]) == [1, 0, 3, 2] and cos.shape == (4, 4)
    # attention of label 3 on the token covering its box (rows 8:16, cols 0:8 of a 16x16 image)
    att = np.full((1, 4, 16), 1e-3)
    att[0, 3, 2 * 4 + 0] = 1.0  # grid 4x4: token (2, 0) covers pixels (8:12, 0:4)
    Y = np.array([[0, 0, 0, 1]])
    boxes = [np.array([[3, 8, 0, 16, 8, 0]])]
    loc = attention_localisation(att, (4, 4), boxes, Y, (16, 16))
    assert loc["pointing"] == 1.0 and loc["chance_mass"] == pytest.approx(4 / 16) and loc["n"] == 1


def test_within_label_retrieval():
    rng = np.random.default_rng(0)
    Y = (rng.random((60, 3)) < 0.5).astype(int)
    emb = np.where(Y[:, :, None] == 1, 1.0, -1.0) * np.ones((60, 3, 4)) + 0.01 * rng.standard_normal((60, 3, 4))
    r = within_label_retrieval(emb, Y, ks=(3,))
    assert r["label_P@3"] == 1.0
    r0 = within_label_retrieval(np.ones((60, 3, 4)), Y, ks=(3,))
    assert 0.2 < r0["label_P@3"] < 0.8  # no information: about the label frequency


def test_binary_relevance_equals_sklearn_per_label_and_constant_labels():
    from sklearn.linear_model import LogisticRegression

    from mlcl.models.logistic import BinaryRelevance

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    Y = np.c_[(X[:, 0] > 0), (X[:, 1] + X[:, 2] > 0), np.zeros(80), np.ones(80)].astype(int)
    P = BinaryRelevance(C=0.5).fit(X, Y).predict_proba(X[:7])
    for j in range(2):
        want = LogisticRegression(C=0.5, max_iter=2000).fit(X, Y[:, j]).predict_proba(X[:7])[:, 1]
        np.testing.assert_allclose(P[:, j], want)
    assert (P[:, 2] == 0).all() and (P[:, 3] == 1).all()  # one class only: its constant
    # label-level input: label j's model sees only X[:, j]
    Z = rng.normal(size=(80, 2, 3))
    Y2 = np.c_[Z[:, 0, 0] > 0, Z[:, 1, 2] > 0].astype(int)
    P2 = BinaryRelevance().fit(Z, Y2).predict_proba(Z)
    want = LogisticRegression(max_iter=2000).fit(Z[:, 1], Y2[:, 1]).predict_proba(Z[:, 1])[:, 1]
    np.testing.assert_allclose(P2[:, 1], want)
    with pytest.raises(ValueError, match="labels"):
        BinaryRelevance().fit(Z, np.c_[Y2, Y2])
    with pytest.raises(RuntimeError, match="fit"):
        BinaryRelevance().predict_proba(X)


def test_label_level_outputs_on_the_model_device(device):
    net = _net().to(device)
    X = np.random.default_rng(0).random((5, 8, 3, 3)).astype("float32")
    out = label_level_outputs(net, X, batch_size=2, attention=True)
    assert out["probs"].shape == (5, 5) and out["z"].shape == (5, 5, 8) and out["g"].shape == (5, 5, 16)
    assert out["attention"].shape == (5, 5, 9) and tuple(out["grid"]) == (3, 3)
    np.testing.assert_allclose(out["attention"].sum(-1), 1.0, rtol=1e-4)
    with torch.no_grad():
        want = torch.sigmoid(net(torch.as_tensor(X, device=device))["logits"]).cpu().numpy()
    np.testing.assert_allclose(out["probs"], want, rtol=1e-4, atol=1e-5)
    assert "attention" not in label_level_outputs(net, X) and "grid" not in label_level_outputs(net, X)


class _Crash(RuntimeError):
    pass


def test_interrupted_stage_two_resumes_to_the_same_weights_and_ema(tmp_path, device):
    """Stage 2 (two views, LLCL, per-step EMA) killed after its first epoch, then rerun: stage 1
    is taken from its checkpoint, stage 2 resumes; weights (the EMA's, returned) are identical."""
    X, Y = _toy(n=40)
    stages = [StageConfig(epochs=2, lr=3e-3, batch_size=16),
              StageConfig(epochs=3, lr=3e-4, batch_size=16, llcl=0.5, views=2, ema=0.9, scheduler="cosine")]

    def run(ckdir, crash_at=None):
        torch.manual_seed(0)
        net = LabelLevelNet(4, "cnn", width=8, dim=16, proj_dim=8)

        def cb(epoch, m):
            if epoch == crash_at:
                raise _Crash
            return {}

        hist = train_mulcon(net, X, Y, stages, seed=3, device=device, progress=False, checkpoint_dir=ckdir,
                            callback=cb)
        return net, hist

    ref, ref_hist = run(tmp_path / "ref")
    with pytest.raises(_Crash):
        run(tmp_path / "crash", crash_at=2)  # global epoch 2 = stage 2's first epoch
    assert (tmp_path / "crash" / "stage0.pt").exists() and (tmp_path / "crash" / "stage1.pt").exists()
    resumed, hist = run(tmp_path / "crash")
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in ref_hist])
    with pytest.raises(ValueError, match="different configuration"):
        torch.manual_seed(0)
        train_mulcon(LabelLevelNet(4, "cnn", width=8, dim=16, proj_dim=8), X, Y,
                     [stages[0].replace(lr=1e-2)], device=device, progress=False, checkpoint_dir=tmp_path / "ref")


def test_linear_probe_map_per_label_and_flattened():
    from sklearn.linear_model import LogisticRegression

    from mlcl.analysis import linear_probe_map
    from mlcl.metrics import mean_average_precision

    rng = np.random.default_rng(1)
    Y = (rng.random((120, 3)) < 0.4).astype(int)
    z = rng.normal(size=(120, 3, 4)) + 1.5 * Y[:, :, None]  # label j readable from z[:, j] only
    tr, te = slice(0, 80), slice(80, 120)
    want = np.stack([LogisticRegression(max_iter=500).fit(z[tr, j], Y[tr, j]).predict_proba(z[te, j])[:, 1]
                     for j in range(3)], 1)
    assert linear_probe_map(z[tr], Y[tr], z[te], Y[te]) == pytest.approx(mean_average_precision(Y[te], want))
    flat = z.reshape(120, -1)
    want_flat = np.stack([LogisticRegression(max_iter=500).fit(flat[tr], Y[tr, j]).predict_proba(flat[te])[:, 1]
                          for j in range(3)], 1)
    assert linear_probe_map(z[tr], Y[tr], z[te], Y[te], per_label=False) == pytest.approx(
        mean_average_precision(Y[te], want_flat))
