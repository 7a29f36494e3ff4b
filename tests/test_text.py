"""Tests of the ABALONE text pipeline: mlcl.models.text, mlcl.models.abalone, mlcl.training.abalone.

A tiny randomly initialised BERT keeps them fast; one test loads the offline MiniLM.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mlcl.analysis import (
    abalone_linear_probe,
    attraction_repulsion,
    averaged_attraction_repulsion,
    clustering_scores,
    label_buckets,
    no_positive_rates,
    per_label_f1,
    scores_to_records,
    stratified_validation,
)
from mlcl.losses import JaccardSupConLoss, MSCLoss
from mlcl.models.abalone import AbaloneModel, abalone_loss
from mlcl.models.heads import Projector, WithHead
from mlcl.models.inference import predict_proba, represent
from mlcl.models.text import FeatureAdapter, TextEncoder, minilm_path
from mlcl.training.abalone import (
    METHODS,
    AbalonePretrainConfig,
    SupervisedConfig,
    no_decay_parameters,
    pretrain_abalone,
    train_classifier,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    return BertModel(cfg, add_pooling_layer=False)


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)


def _labels(n, L, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, L, generator=g) < p).long()
    y[y.sum(1) == 0, 0] = 1
    return y


# ------------------------------------------------------------------------------- encoder
def test_pooling_cls_and_mean_ignore_padding(tiny_bert):
    tiny_bert.eval()
    enc_mean = TextEncoder(tiny_bert, pooling="mean")
    enc_cls = TextEncoder(tiny_bert, pooling="cls")
    ids = torch.tensor([[2, 5, 7, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        a = enc_mean(ids, mask)
        b = enc_mean(ids[:, :4], mask[:, :4])  # same text, no padding
        c = enc_cls(ids, mask)
        hidden = tiny_bert(input_ids=ids, attention_mask=mask).last_hidden_state
    assert a.shape == (1, 16) and c.shape == (1, 16)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, hidden[:, 0])
    with pytest.raises(ValueError, match="pooling"):
        TextEncoder(tiny_bert, pooling="max")


def test_freeze_top_layers(tiny_bert):
    import copy

    enc = TextEncoder(copy.deepcopy(tiny_bert)).freeze(1)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all("encoder.layer.1." in n for n in trainable)
    with pytest.raises(ValueError):
        enc.freeze(3)


def test_tokenize_truncates(tiny_bert, minilm_tokenizer):
    enc = TextEncoder(tiny_bert, minilm_tokenizer, pooling="mean", max_length=8)
    tok = enc.tokenize(["a very long sentence " * 20, "short"])
    assert tok["input_ids"].shape == (2, 8)
    assert tok["attention_mask"][1].sum() < 8


def test_encode_cached_reuses_and_keys_on_texts(minilm_tokenizer, tmp_path):
    from transformers import BertConfig, BertModel

    from mlcl.models.text import encode_cached

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32), add_pooling_layer=False)
    enc = TextEncoder(bert, minilm_tokenizer, pooling="mean", max_length=16)
    texts = ["grain exports", "a longer text about interest rates and money supply", "oil"]
    a = encode_cached(enc, texts, tag="t", cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert a.shape == (3, 16) and len(files) == 1
    np.testing.assert_allclose(a, enc.encode(texts), atol=1e-5)  # input order kept despite length sorting
    b = encode_cached(enc, texts, tag="t", cache_dir=tmp_path)
    np.testing.assert_array_equal(a, b)
    encode_cached(enc, texts[:2], tag="t", cache_dir=tmp_path)  # other texts, other key
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_offline_minilm_loads_and_embeds(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = TextEncoder.from_pretrained("minilm", max_length=32)
    assert enc.pooling == "mean" and enc.hidden_size == 384
    f = enc.encode(["The central bank cut interest rates.", "The Fed lowered its lending rate.",
                    "Wheat and corn harvests were poor this year."])
    assert f.shape == (3, 384) and np.isfinite(f).all()
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    assert f[0] @ f[1] > f[0] @ f[2]  # a pre-trained sentence encoder, not random weights


def test_projection_head_and_adapter_shapes():
    x = torch.randn(4, 12)
    assert Projector(12, 12, 256)(x).shape == (4, 256)
    ad = FeatureAdapter(12)
    assert ad(x).shape == (4, 12)
    torch.testing.assert_close(ad.eval()(x), x, atol=0.05, rtol=0)  # starts near the identity


# ------------------------------------------------------------------------------- losses
def test_abalone_loss_is_the_shared_losses_in_batch():
    g = torch.Generator().manual_seed(1)
    z, y, P = torch.randn(16, 8, generator=g), _labels(16, 5), torch.randn(5, 8, generator=g)
    torch.testing.assert_close(abalone_loss(z, y, kind="jaccard"), JaccardSupConLoss(0.1)(z, y))
    torch.testing.assert_close(abalone_loss(z, y, kind="msc", prototypes=P, beta=0.3),
                               MSCLoss(0.1, beta=0.3)(z, y, P))
    with pytest.raises(ValueError, match="needs prototypes"):
        abalone_loss(z, y, kind="msc")
    with pytest.raises(ValueError, match="kind"):
        abalone_loss(z, y, kind="supcon")


def _brute(z, y, qk, qy, protos, kind, beta=0.1, tau=0.1):
    """Loop implementation of the queue losses, written from the paper's formulas."""
    z = torch.nn.functional.normalize(z.double(), dim=1)
    qk = torch.nn.functional.normalize(qk.double(), dim=1)
    P = None if protos is None else torch.nn.functional.normalize(protos.double(), dim=1)
    refs = [(z[j], y[j]) for j in range(len(z))]
    refs += [(qk[j], qy[j]) for j in range(len(qk))]
    L = y.shape[1]
    losses = []
    for i in range(len(z)):
        others = [(r, ly) for j, (r, ly) in enumerate(refs) if j != i]
        yi = y[i].bool()
        if kind == "jaccard":
            items = [(r, int((yi & ly.bool()).sum()) / max(int((yi | ly.bool()).sum()), 1), 1.0) for r, ly in others]
            if P is not None:
                items += [(P[c], float(yi[c]) / max(int(yi.sum()), 1), 1.0) for c in range(L)]
            den = sum(g * torch.exp(z[i] @ r / tau) for r, _, g in items)
            N = sum(w for _, w, _ in items)
            if N == 0:
                continue
            losses.append(-sum(w * torch.log(torch.exp(z[i] @ r / tau) / den) for r, w, _ in items) / N)
        else:
            den = sum(torch.exp(z[i] @ P[c] / tau) for c in range(L))
            den = den + sum(beta * torch.exp(z[i] @ r / tau) for r, _ in others)
            terms = []
            if not yi.any():  # no label: not an anchor
                continue
            for c in torch.nonzero(yi).flatten().tolist():
                pos = [(P[c], 1.0)] + [(r, 1.0 / int((yi | ly.bool()).sum())) for r, ly in others if ly[c]]
                N = sum(w for _, w in pos)
                terms.append(-sum(w * torch.log(torch.exp(z[i] @ r / tau) / den) for r, w in pos) / N)
            losses.append(sum(terms) / len(terms))
    return torch.stack([torch.as_tensor(v) for v in losses]).mean()


@pytest.mark.parametrize("kind,with_protos", [("jaccard", False), ("jaccard", True), ("msc", True)])
def test_abalone_loss_with_queue_matches_brute_force(kind, with_protos):
    """Values and gradients (float64) against the loop over the formulas; a zero-label anchor
    and a zero-label queue entry included."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y, qy = _labels(6, 3, seed=3), _labels(5, 3, seed=4)
    y[5], qy[4] = 0, 0
    qk = torch.randn(5, 4, generator=g, dtype=torch.float64)
    P = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True) if with_protos else None
    got = abalone_loss(z, y, kind=kind, queue_keys=qk, queue_labels=qy, prototypes=P)
    want = _brute(z, y, qk, qy, P, kind)
    assert math.isclose(float(got.detach()), float(want.detach()), rel_tol=1e-10)
    ins = [z] + ([P] if with_protos else [])
    for a, b in zip(torch.autograd.grad(got, ins), torch.autograd.grad(want, ins)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    empty = abalone_loss(z, y, kind=kind, queue_keys=qk[:0], queue_labels=qy[:0], prototypes=P)
    torch.testing.assert_close(empty, abalone_loss(z, y, kind=kind, prototypes=P))


def test_attraction_repulsion_beta_reduces_sample_repulsion():
    g = torch.Generator().manual_seed(5)
    z, y, P = torch.randn(32, 8, generator=g), _labels(32, 6, p=0.25), torch.randn(6, 8, generator=g)
    lo = attraction_repulsion(z, y, kind="msc", prototypes=P, beta=0.1)
    hi = attraction_repulsion(z, y, kind="msc", prototypes=P, beta=1.0)
    base = attraction_repulsion(z, y, kind="jaccard")
    for r in (lo, hi, base):
        assert r["attraction"].shape == (6,) and np.isfinite(r["repulsion"]).all()
    # every anchor's softmax sums to 1 over samples + prototypes; samples get less with small β
    assert lo["repulsion"].sum() < hi["repulsion"].sum()
    # the L_Base attraction masses sum to the number of anchors with a positive
    assert math.isclose(base["attraction"].sum(), 32, rel_tol=1e-4)


# ------------------------------------------------------------------------------- training
@pytest.mark.parametrize("method", list(METHODS))
def test_pretrain_all_methods_on_features(method):
    torch.manual_seed(0)
    y = _labels(64, 5).numpy()
    x = torch.randn(64, 12) + 2.0 * torch.as_tensor(y, dtype=torch.float32) @ torch.randn(5, 12)
    body = FeatureAdapter(12)
    before = [p.detach().clone() for p in body.parameters()]
    cfg = AbalonePretrainConfig(method=method, epochs=2, batch_size=16, lr=1e-3, queue_size=24, momentum=0.9,
                         proj_dim=8, device="cpu", monitor_epochs=(2,))
    calls = []
    res = pretrain_abalone(body, x, y, cfg, monitor=lambda b, h, p, e: calls.append(e) or {"ok": 1})
    assert len(res.history) == 2 and all(np.isfinite(h["loss"]) for h in res.history)
    assert calls == [0, 2]
    assert (res.prototypes is not None) == METHODS[method]["prototypes"]
    assert any(not torch.equal(a, b) for a, b in zip(before, body.parameters()))
    assert represent(body, x).shape == (64, 12)


def test_pretrain_tiny_bert_on_tokens(tiny_bert):
    import copy

    enc = TextEncoder(copy.deepcopy(tiny_bert), pooling="cls")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50, (32, 10), generator=g)
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    mask[::2, 7:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    y = _labels(32, 4).numpy()
    res = pretrain_abalone(enc, inputs, y, AbalonePretrainConfig(method="L_MSC", epochs=1, batch_size=8, queue_size=16,
                                                  proj_dim=8, device="cpu"))
    assert np.isfinite(res.history[0]["loss"])
    assert represent(enc, inputs).shape == (32, 16)


@pytest.mark.parametrize("loss", ["bce", "focal", "asl"])
def test_train_classifier_learns(loss):
    torch.manual_seed(0)
    y = _labels(200, 4, p=0.3).numpy()
    x = torch.as_tensor(y, dtype=torch.float32) @ torch.randn(4, 8) + 0.1 * torch.randn(200, 8)
    body, lin, hist = train_classifier(FeatureAdapter(8), x[:150], y[:150], x[150:], y[150:],
                                       SupervisedConfig(loss=loss, epochs=15, lr=1e-2, batch_size=16, device="cpu"))
    # ASL (γ⁻ = 3, m = 0.3) shifts probabilities up: at 0.5 it scores lower on this toy problem
    assert max(h["val_micro_f1"] for h in hist) > (0.5 if loss == "asl" else 0.8)


def test_no_decay_on_bias_and_layernorm():
    m = AbaloneModel(FeatureAdapter(6), 6, 3, "L_MSC", proj_dim=4, queue_size=8)
    exempt = {id(p) for p in no_decay_parameters(m)}
    assert id(m.body.fc1.bias) in exempt and id(m.body.norm.weight) in exempt and id(m.head[0].bias) in exempt
    assert id(m.body.fc1.weight) not in exempt and id(m.prototypes) not in exempt
    assert not any(id(p) in exempt for p in m.key_net.parameters())  # not trained at all


def _reference_adamw(params, exempt, lr, wd, factor):
    """torch's AdamW with two groups (decay / no decay) and a LambdaLR: the ABALONE optimiser."""
    ids = {id(p) for p in exempt}
    opt = torch.optim.AdamW([{"params": [p for p in params if id(p) not in ids], "weight_decay": wd},
                             {"params": [p for p in params if id(p) in ids], "weight_decay": 0.0}], lr=lr)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def test_no_decay_hook_and_engine_linear_schedule_equal_adamw_groups_with_resume():
    """One-weight-decay AdamW + the run's no-decay hook + the engine's "linear" scheduler == AdamW
    with a no-decay group + LambdaLR (warm-up then linear decay), float64, including a rebuilt
    optimiser and scheduler resumed from their state."""
    from mlcl.training import TrainConfig, make_scheduler
    from mlcl.training.abalone import _no_decay

    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)).double()
    mine = copy.deepcopy(ref)
    total, warm, lr, wd = 8, 2, 0.1, 0.5

    def factor(k):  # ABALONE Appendix A, written out independently of the engine
        return (k + 1) / (warm + 1) if k < warm else 1.0 - (k - warm) / (total - warm)

    opt_r, sched = _reference_adamw(list(ref.parameters()), [ref[0].bias, *ref[1].parameters()], lr, wd, factor)
    xs = [torch.randn(5, 4, dtype=torch.float64) for _ in range(total)]
    cfg = TrainConfig(lr=lr, scheduler="linear", scheduler_interval="step", warmup=warm)

    def step(net, opt, x):
        opt.zero_grad()
        (net(x) ** 2).sum().backward()
        opt.step()

    opt_m = torch.optim.AdamW(mine.parameters(), lr=lr, weight_decay=wd)
    sched_m = make_scheduler(opt_m, cfg, total)
    for k, x in enumerate(xs):
        step(ref, opt_r, x)
        sched.step()
        if k == 4:  # "resume": a new optimiser and scheduler loaded from the old ones' state
            state, s_state = copy.deepcopy(opt_m.state_dict()), copy.deepcopy(sched_m.state_dict())
            opt_m = torch.optim.AdamW(mine.parameters(), lr=lr, weight_decay=wd)
            sched_m = make_scheduler(opt_m, cfg, total)  # the engine's order: build, then load
            opt_m.load_state_dict(state)
            sched_m.load_state_dict(s_state)
        with _no_decay([mine[0].bias, *mine[1].parameters()]):
            step(mine, opt_m, x)
        sched_m.step()
        for a, b in zip(ref.parameters(), mine.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # the hooks live only for one run
    import torch.optim.optimizer as O

    assert not O._global_optimizer_pre_hooks and not O._global_optimizer_post_hooks


# ------------------------------------------------------------------------------- evaluation
def test_linear_probe_per_label_selection_and_authors_bug():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 3)) < 0.3).astype(np.uint8)
    x = y @ rng.normal(size=(3, 10)) * 2 + rng.normal(size=(400, 10)) * 0.3
    probe = abalone_linear_probe(x[:300], y[:300], x[300:], y[300:], lrs=(0.1, 0.01), weight_decays=(1e-2, 1e-4),
                         epochs=10, n_heads=3, batch_size=64)
    assert len(probe.config) == 3 and all(c in [(0.1, 1e-2), (0.1, 1e-4), (0.01, 1e-2), (0.01, 1e-4)]
                                          for c in probe.config)
    p = probe.predict_proba(x[300:])
    assert per_label_f1(y[300:], p >= 0.5).mean() > 0.9
    pb = probe.predict_proba(x[300:], authors_bug=True)
    assert np.abs(pb - 0.5).mean() < np.abs(p - 0.5).mean()  # 2 untrained heads of 5 pull toward 0.5


def test_no_positive_rates_match_theory():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.1, 0.02])
    Y = (rng.random((20000, 3)) < p).astype(np.uint8)
    r = no_positive_rates(Y, batch_size=32, epochs=1)
    np.testing.assert_allclose(r["pair_rate"], (1 - p) ** 31, atol=0.03)
    rq = no_positive_rates(Y, batch_size=32, queue_size=64, epochs=1)
    np.testing.assert_allclose(rq["pair_rate"], (1 - p) ** (31 + 64), atol=0.03)


def test_clustering_scores_protocol():
    rng = np.random.default_rng(0)
    combos = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], np.uint8)
    counts = [50, 40, 20, 5]
    Y = np.concatenate([np.repeat(c[None], n, 0) for c, n in zip(combos, counts)])
    H = np.concatenate([rng.normal(size=(n, 5)) * 0.05 + 3 * np.eye(5)[i] for i, n in enumerate(counts)])
    half = clustering_scores(H, Y, keep_fraction=0.5)
    assert half["n_classes"] == 2 and half["n_docs"] == 90 and half["silhouette"] > 0.8
    full = clustering_scores(H, Y, keep_fraction=1.0)
    assert full["n_classes"] == 4 and full["davies_bouldin"] < 0.5


def test_stratified_validation_and_buckets():
    rng = np.random.default_rng(0)
    Y = (rng.random((500, 20)) < np.linspace(0.3, 0.004, 20)).astype(np.uint8)
    tr, va = stratified_validation(Y, 0.1, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 500
    counts = Y.sum(0)
    assert all(Y[va, c].any() for c in range(20) if counts[c] >= 2)
    assert all(Y[tr, c].any() for c in range(20) if counts[c] >= 1)
    b = label_buckets(Y)
    assert sorted(np.concatenate(list(b.values())).tolist()) == list(range(20))
    assert counts[b["head"]].min() >= counts[b["tail"]].max()
    recs = scores_to_records(Y, Y * 0.9, b, dataset="d", method="m", seed=0)
    vals = {r["metric"]: r["value"] for r in recs}
    assert vals["micro_f1"] == 1.0 and vals["hamming_loss"] == 0.0 and "macro_f1_tail" in vals


def test_attraction_repulsion_repulsion_is_the_softmax_mass_on_other_labels():
    """Brute force: repulsion of c = Σ over anchors without c of the softmax over references
    (other batch rows with weight β, prototypes with weight 1) on the rows / prototype carrying c."""
    g = torch.Generator().manual_seed(7)
    z, y, P = torch.randn(10, 4, generator=g, dtype=torch.float64), _labels(10, 3, seed=8), None
    P = torch.randn(3, 4, generator=g, dtype=torch.float64)
    beta, tau = 0.3, 0.5
    zn, pn = torch.nn.functional.normalize(z, dim=1), torch.nn.functional.normalize(P, dim=1)
    want = np.zeros(3)
    for i in range(10):
        refs = [(float(zn[i] @ zn[k]) / tau + math.log(beta), y[k].bool()) for k in range(10) if k != i]
        refs += [(float(zn[i] @ pn[c]) / tau, torch.nn.functional.one_hot(torch.tensor(c), 3).bool())
                 for c in range(3)]
        lse = torch.logsumexp(torch.tensor([s for s, _ in refs]), 0)
        for s, lab in refs:
            for c in range(3):
                if lab[c] and not y[i, c]:
                    want[c] += math.exp(s - float(lse))
    got = attraction_repulsion(z, y, kind="msc", prototypes=P, temperature=tau, beta=beta)["repulsion"]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_averaged_attraction_repulsion_over_fixed_batches():
    g = torch.Generator().manual_seed(9)
    X, Y = torch.randn(40, 6, generator=g), _labels(40, 4, seed=10).numpy()
    head = torch.nn.Linear(6, 5)
    batches = [torch.arange(0, 20), torch.arange(20, 40)]
    got = averaged_attraction_repulsion(head, X, Y, batches, kind="jaccard")
    parts = [attraction_repulsion(head(X[b]).detach(), torch.as_tensor(Y[b.numpy()]), kind="jaccard") for b in batches]
    np.testing.assert_allclose(got["repulsion"], parts[0]["repulsion"] + parts[1]["repulsion"], rtol=1e-6)
    np.testing.assert_allclose(got["count"], Y.sum(0))
    with pytest.raises(ValueError, match="batches is empty"):
        averaged_attraction_repulsion(head, X, Y, [], kind="jaccard")


def test_predict_proba_and_represent_on_token_dicts_and_keyword_bodies(tiny_bert, device):
    import copy

    enc = TextEncoder(copy.deepcopy(tiny_bert), pooling="mean", max_length=16).to(device)
    inputs = {"input_ids": torch.randint(5, 50, (7, 10)), "attention_mask": torch.ones(7, 10, dtype=torch.long)}
    inputs["attention_mask"][:, 6:] = 0  # shared padding is trimmed per batch: same result
    lin = torch.nn.Linear(enc.hidden_size, 3).to(device)
    p = predict_proba(WithHead(enc, lin), inputs, batch_size=3)
    assert p.shape == (7, 3) and ((p > 0) & (p < 1)).all()
    with torch.no_grad():
        enc.eval()
        want = torch.sigmoid(lin(enc(**{k: v[:, :6].to(device) for k, v in inputs.items()}))).cpu().numpy()
    np.testing.assert_allclose(p, want, rtol=1e-4, atol=1e-5)
    assert represent(enc, inputs).shape == (7, enc.hidden_size)


class _Crash(RuntimeError):
    pass


def test_interrupted_pretraining_resumes_to_the_same_weights_queue_and_key_encoder(tmp_path, device):
    """L_MSC pre-training (MoCo key encoder, queue, prototypes, AdamW without decay on biases,
    warm-up + cosine) killed after epoch 2 of 3 and rerun from its checkpoint == uninterrupted."""
    torch.manual_seed(0)
    y = _labels(64, 5).numpy()
    x = torch.randn(64, 12) + 2.0 * torch.as_tensor(y, dtype=torch.float32) @ torch.randn(5, 12)

    def run(path, crash_at=None):
        def monitor(body, head, protos, epoch):
            if epoch == crash_at:
                raise _Crash
            return {}

        cfg = AbalonePretrainConfig(method="L_MSC", epochs=3, batch_size=16, lr=1e-3, queue_size=24, momentum=0.9,
                                    proj_dim=8, device=device, seed=4, monitor_epochs=(1, 2, 3))
        torch.manual_seed(1)
        return pretrain_abalone(FeatureAdapter(12), x, y, cfg, monitor=monitor, checkpoint=path)

    ref = run(tmp_path / "ref.pt")
    with pytest.raises(_Crash):
        run(tmp_path / "run.pt", crash_at=2)
    res = run(tmp_path / "run.pt")
    assert len(res.model.queue) == 24
    for (k, a), b in zip(ref.model.state_dict().items(), res.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert [h["loss"] for h in res.history] == pytest.approx([h["loss"] for h in ref.history])
    with pytest.raises(ValueError, match="different configuration"):
        pretrain_abalone(FeatureAdapter(12), x, y, AbalonePretrainConfig(
            method="L_MSC", epochs=3, batch_size=16, lr=1e-2, queue_size=24, momentum=0.9, proj_dim=8,
            device=device, seed=4), checkpoint=tmp_path / "ref.pt")
