"""mlcl.models.cgmvae: shapes, presets, edge cases, equality with the authors' loss, a tiny overfit."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mlcl.models.cgmvae import CGMVAE, PRESETS, TABLE7, CGMVAEConfig, preset_config
from mlcl.training import TrainConfig, train

torch.set_num_threads(1)
N_F, N_L = 12, 5


def _batch(B: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N_F, generator=g)
    y = (torch.rand(B, N_L, generator=g) < 0.4).float()
    y[:, 0] = torch.where(y.sum(1) == 0, 1.0, y[:, 0])
    return x, y


def _model(preset="code", **kw) -> CGMVAE:
    torch.manual_seed(0)
    kw.setdefault("emb_size", 32)
    return CGMVAE.from_preset(preset, N_F, N_L, **kw)


@pytest.mark.parametrize("preset", ["code", "paper"])
def test_shapes_and_outputs(preset):
    m = _model(preset)
    x, y = _batch()
    out = m(x, y)
    assert set(out) == {"loss", "bce", "kl", "contrastive", "recon"}
    assert all(v.shape == () and torch.isfinite(v) for v in out.values())
    p = m.predict(x)
    assert p.shape == (8, N_L) and (p >= 0).all() and (p <= 1).all()
    assert m.training  # predict restores the mode
    mu, lv = m.latent(x)
    assert mu.shape == lv.shape == (8, 64)
    mu_p, lv_p = m.label_gaussians()
    assert mu_p.shape == lv_p.shape == (N_L, 64)
    assert m.label_embeddings.shape == (N_L, 32)
    out["loss"].backward()
    missing = [n for n, q in m.named_parameters() if q.grad is None]
    assert not missing, missing


def test_presets_differ_exactly_as_documented():
    code, paper = preset_config("code", N_F, N_L), preset_config("paper", N_F, N_L)
    diff = {f.name for f in dataclasses.fields(CGMVAEConfig) if getattr(code, f.name) != getattr(paper, f.name)}
    assert diff == {"decoder_hidden", "decoder_input", "normalize_decoder", "label_path", "n_samples",
                    "normalize_label_embeddings", "kl_weight", "recon_weight"}
    assert (code.temperature, code.kl_weight, code.n_samples, code.decoder_input) == (1.0, 6.0, 2, "concat")
    assert not code.normalize_label_embeddings and code.recon_weight == 0
    assert paper.normalize_label_embeddings and paper.recon_weight == 1 and paper.decoder_input == "latent"
    assert _model("code").x_decoder is None and _model("paper").x_decoder is not None
    assert set(PRESETS) == {"code", "paper"}
    with pytest.raises(ValueError, match="preset"):
        preset_config("nope", N_F, N_L)


def test_table7_hyperparameters():
    y = preset_config("code", N_F, N_L, dataset="yeast")
    s = preset_config("paper", N_F, N_L, dataset="scene")
    assert (y.emb_size, y.dropout, y.bce_weight, y.contrastive_weight) == (512, 0.5, 0.5, 1.0)
    assert (s.emb_size, s.dropout, s.bce_weight) == (512, 0.3, 0.5)
    assert preset_config("paper", N_F, N_L, dataset="mirflickr").contrastive_weight == 2.0  # α
    assert preset_config("code", N_F, N_L, dataset="mirflickr").contrastive_weight == 1.0  # hard-coded in code
    assert TABLE7["yeast"]["lr"] == 0.002 and TABLE7["scene"]["lr"] == 0.003


@pytest.mark.parametrize("preset", ["code", "paper"])
@pytest.mark.parametrize("case", ["zero_label_rows", "all_labels", "single_row", "all_zero"])
def test_losses_finite_on_edge_cases(preset, case):
    m = _model(preset)
    x, y = _batch()
    if case == "zero_label_rows":
        y[:3] = 0
    elif case == "all_labels":
        y[:] = 1
    elif case == "single_row":
        x, y = x[:1], y[:1]
    else:
        y[:] = 0
    out = m(x, y)
    assert all(torch.isfinite(v) for v in out.values()), out
    out["loss"].backward()
    assert all(torch.isfinite(q.grad).all() for q in m.parameters() if q.grad is not None)
    m.eval()
    assert all(torch.isfinite(v) for v in m(x, y).values())


def test_code_preset_equals_the_authors_loss():
    """Re-derive the total loss of the authors' ``compute_loss`` by hand, with the same draws."""
    m = _model("code", dropout=0.0)
    x, y = _batch()
    torch.manual_seed(5)
    out = m(x, y)
    torch.manual_seed(5)
    mu, lv = m.encode(x)
    eps1, eps2, eps0 = torch.randn_like(mu), torch.randn_like(mu), torch.randn_like(mu)
    W = m.label_lookup.weight  # (E, L)
    h = m.fe(F.relu(m.label_lookup(torch.eye(N_L))))
    mu_p, lv_p = m.fe_mu(h), m.fe_logvar(h)

    def dec(z):
        return F.normalize(F.leaky_relu(m.fd(torch.cat([x, z], 1))), dim=1)

    std = (0.5 * lv).exp()
    e_lab, e1, e2 = dec(y @ mu_p / y.sum(1, keepdim=True)), dec(mu + eps1 * std), dec(mu + eps2 * std)

    def nll(e):
        p = torch.sigmoid(e @ W)
        return -(torch.log(p) * y + torch.log(1 - p) * (1 - y)).sum(1).mean()

    def log_normal(v, mm, var):
        return (-0.5 * (torch.log(var) + (v - mm).pow(2) / var)).sum(-1)

    s = mu + eps0 * std
    comp = log_normal(s[:, None, :], mu_p[None], lv_p.exp()[None]) + (-1e6) * (1 - y)
    kl = (log_normal(s, mu, lv.exp()) - (torch.logsumexp(comp, 1) - torch.log(y.sum(1)))).mean()
    feats = torch.cat([e_lab, e1])
    logp = torch.log_softmax(feats @ W, 1)
    yy = torch.cat([y, y])
    cpc = (-(yy * logp).sum(1) / yy.sum(1)).mean()
    total = 0.5 * (nll(e_lab) + nll(e1) + nll(e2)) + 6.0 * kl + cpc
    torch.testing.assert_close(out["kl"], kl.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["contrastive"], cpc.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["loss"], total, rtol=1e-4, atol=1e-4)


def test_ablation_switches():
    x, y = _batch()
    assert _model(kl_weight=0.0)(x, y)["kl"] == 0
    assert _model(contrastive_weight=0.0)(x, y)["contrastive"] == 0
    m = _model(prior="unimodal")
    out = m(x, y)
    assert torch.isfinite(out["loss"]) and out["kl"] != 0
    assert m.label_gaussians(y)[0].shape == (8, 64)


def test_eval_mode_is_deterministic():
    m = _model().eval()
    x, _ = _batch()
    assert torch.equal(m.predict(x), m.predict(x))


@pytest.mark.parametrize("preset,kw", [("code", {}), ("paper", {"kl_weight": 0.0})])
def test_tiny_overfit(preset, kw):
    """32 samples, 5 labels: the model memorises its training set (micro-F1 at 0.5 ≥ 0.95).

    The paper preset is tested without its KL term: with it, q(z|x) collapses onto a mixture whose
    components have merged (KL → 0.02) and the decoder, which sees only z, cannot fit — a finding
    the chapter shows on real data, not a bug of the network."""
    x, y = _batch(B=32, seed=3)
    m = _model(preset, dropout=0.0, **kw)
    res = train(m, (x, y), TrainConfig(epochs=150, batch_size=32, lr=3e-3, progress=False))
    pred = (res.model.predict(x) > 0.5).float()
    tp = (pred * y).sum()
    f1 = 2 * tp / (pred.sum() + y.sum())
    assert f1 >= 0.95, float(f1)
    assert res.history[-1]["bce"] < 0.5 * res.history[0]["bce"]


def _tiny_data(seed: int = 0):
    from types import SimpleNamespace as NS

    import numpy as np

    rng = np.random.default_rng(seed)
    split = lambda n: NS(X=rng.normal(size=(n, 6)).astype("float32"),  # noqa: E731
                         Y=(rng.random((n, 3)) < .4).astype("float32"))
    return NS(train=split(48), validation=split(20), test=split(20))


def test_epoch_scores_select_any_epoch_and_shorter_runs_are_prefixes():
    """The chapter scores other selection rules from one run's per-epoch scores, and states that a
    k-epoch run's epochs are the first k of a longer run (per-epoch reseeding, schedule independent
    of the run length): both checked bit for bit."""
    import numpy as np

    from mlcl.training.cgmvae import fit

    data = _tiny_data()
    long = fit(data, "yeast", seed=3, epochs=4, emb_size=16, epoch_scores=True)
    short = fit(data, "yeast", seed=3, epochs=2, emb_size=16, epoch_scores=True)
    assert len(long.epoch_scores) == 4 and len(short.epoch_scores) == 2
    for k in range(2):
        for a, b in zip(long.epoch_scores[k], short.epoch_scores[k]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(long.scores_test, long.epoch_scores[long.best_epoch][1])
    assert fit(data, "yeast", seed=3, epochs=2, emb_size=16).epoch_scores is None
    # recording scores must not change the run
    np.testing.assert_array_equal(fit(data, "yeast", seed=3, epochs=2, emb_size=16).scores_test,
                                  short.scores_test)


def test_mpvae_split_loads_the_published_indices(tmp_path):
    import numpy as np

    from mlcl.data import load_dataset
    from mlcl.data.registry import MPVAE_DIMS

    n_lab, n_feat = MPVAE_DIMS["scene"]
    rng = np.random.default_rng(0)
    arr = np.concatenate([(rng.random((30, n_lab)) < .3), rng.normal(size=(30, n_feat))], 1)
    d = tmp_path / "mpvae" / "scene"
    d.mkdir(parents=True)
    np.save(d / "scene_data.npy", arr)
    perm = rng.permutation(30)
    for part, idx in (("train", perm[:20]), ("val", perm[20:25]), ("test", perm[25:])):
        np.save(d / f"scene_{part}_idx.npy", idx)
    ds = load_dataset("mpvae:scene", root=tmp_path)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (20, 5, 5)
    np.testing.assert_array_equal(ds.test.Y, arr[perm[25:], :n_lab])
    np.testing.assert_allclose(ds.train.X, arr[perm[:20], n_lab:].astype("float32"))
    with pytest.raises(FileNotFoundError, match="MPVAE_data.tar.gz"):
        load_dataset("mpvae:yeast", root=tmp_path)
    with pytest.raises(KeyError, match="known MPVAE"):
        load_dataset("mpvae:nope", root=tmp_path)
