"""MomentumEncoder (EMA, m = 0.999) and LabelledQueue (FIFO, correct while partially filled)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlcl.losses import MulSupConLoss
from mlcl.models.moco import LabelledQueue, MomentumEncoder


def test_momentum_encoder_ema_and_no_grad():
    torch.manual_seed(0)
    q = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    k = MomentumEncoder(q, momentum=0.9)
    for a, b in zip(q.parameters(), k.encoder.parameters()):
        assert torch.equal(a, b) and not b.requires_grad
    before = [p.clone() for p in k.encoder.parameters()]
    with torch.no_grad():
        for p in q.parameters():
            p.add_(1.0)
    q(torch.randn(8, 4))  # changes BN running stats
    k.update(q)
    for old, new, target in zip(before, k.encoder.parameters(), q.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * target)
    assert torch.equal(k.encoder[1].running_mean, q[1].running_mean)
    out = k(torch.randn(2, 4))
    assert not out.requires_grad
    assert sum(p.numel() for p in k.parameters() if p.requires_grad) == 0


def test_momentum_validation():
    with pytest.raises(ValueError, match="momentum"):
        MomentumEncoder(nn.Linear(2, 2), momentum=1.5)
    with pytest.raises(ValueError, match="parameter names"):
        MomentumEncoder(nn.Linear(2, 2)).update(nn.Sequential(nn.Linear(2, 2)))


def test_queue_fifo_partial_and_wraparound():
    q = LabelledQueue(size=5, dim=2, num_labels=3)
    assert len(q) == 0 and q.keys.shape == (0, 2) and q.labels.shape == (0, 3)
    stream_k = torch.arange(26, dtype=torch.float32).reshape(13, 2)
    stream_y = torch.randint(0, 2, (13, 3))
    seen = 0
    for n in (2, 2, 3, 1, 5):
        q.enqueue(stream_k[seen : seen + n], stream_y[seen : seen + n])
        seen += n
        lo = max(0, seen - 5)
        assert torch.equal(q.keys, stream_k[lo:seen])  # the last <= 5, oldest first
        assert torch.equal(q.labels, stream_y[lo:seen].bool())
        assert len(q) == seen - lo
    assert q.is_full
    q.enqueue(torch.zeros(7, 2), torch.zeros(7, 3))  # more than the capacity
    assert torch.equal(q.keys, torch.zeros(5, 2)) and len(q) == 5


def test_queue_detaches_and_references():
    q = LabelledQueue(size=4, dim=2, num_labels=2)
    k = torch.randn(3, 2, requires_grad=True)
    q.enqueue(k * 2, torch.ones(3, 2))
    assert not q.keys.requires_grad
    refs, ref_y = q.references(torch.randn(2, 2), torch.zeros(2, 2))
    assert refs.shape == (5, 2) and ref_y.shape == (5, 2) and ref_y.dtype == torch.bool
    with pytest.raises(ValueError, match="keys must have shape"):
        q.enqueue(torch.randn(2, 3), torch.ones(2, 2))
    assert "_keys" in q.state_dict()


def test_moco_step_with_mulsupcon():
    torch.manual_seed(0)
    enc = nn.Linear(6, 4)
    key_enc = MomentumEncoder(enc, 0.999)
    queue = LabelledQueue(16, 4, 3)
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    loss_fn = MulSupConLoss(0.1)
    for _ in range(6):
        x, y = torch.randn(5, 6), torch.randint(0, 2, (5, 3))
        key_enc.update(enc)
        qv, kv = enc(x + 0.1 * torch.randn_like(x)), key_enc(x)
        refs, ref_y = queue.references(kv, y)
        loss = loss_fn(qv, y, refs, ref_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        queue.enqueue(kv, y)
        assert torch.isfinite(loss)
    assert len(queue) == 16


def test_momentum_encoder_follows_a_moved_or_reloaded_source():
    """The EMA pairs tensors once; a model moved (buffers replaced) or reloaded keeps updating."""
    torch.manual_seed(0)
    q = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    k = MomentumEncoder(q, momentum=0.5)
    k.update(q)
    q.load_state_dict({n: v + 1.0 if v.is_floating_point() else v for n, v in q.state_dict().items()})
    q.to(torch.float64)
    k.to(torch.float64)  # a conversion that replaces every tensor, as .to("cuda") does
    before = [p.clone() for p in k.encoder.parameters()]
    q(torch.randn(8, 4, dtype=torch.float64))
    k.update(q)
    for old, new, target in zip(before, k.encoder.parameters(), q.parameters()):
        assert torch.allclose(new, 0.5 * old + 0.5 * target)
    assert torch.equal(k.encoder[1].running_mean, q[1].running_mean)


def _plain_stats(queue: LabelledQueue) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label sums (fixed point) and counts recomputed from the stored keys and labels."""
    from mlcl.losses._common import FIXED_POINT

    k, y = queue.keys.double(), queue.labels
    fp = (k / k.norm(dim=1, keepdim=True).clamp_min(1e-300) * FIXED_POINT).round().long()
    sums = torch.zeros(queue.num_labels, queue.dim, dtype=torch.long)
    for j in range(queue.num_labels):
        sums[j] = fp[y[:, j]].sum(0)
    return sums, y.long().sum(0)


@pytest.mark.parametrize("sparse", [False, True])
def test_queue_label_statistics_follow_enqueue_and_dequeue(sparse, monkeypatch):
    """Sums and counts equal a recomputation from the stored rows after every enqueue, through
    partial filling, wrap-around and batches larger than the queue (integer-exact), by the
    dense product and by the nonzero entries (many labels)."""
    import mlcl.losses._common as common

    monkeypatch.setattr(common, "SPARSE_LABELS", 1 if sparse else 1 << 30)
    g = torch.Generator().manual_seed(0)
    q = LabelledQueue(size=7, dim=3, num_labels=4)
    for i, n in enumerate((2, 3, 4, 1, 6, 9, 7, 2)):
        q.enqueue(torch.randn(n, 3, generator=g) * 5, torch.rand(n, 4, generator=g) < 0.4)
        if i < 2:  # not tracked yet: the first request builds them from the stored rows
            assert not q._tracking
            continue
        ref_y = q.references(torch.zeros(1, 3), torch.zeros(1, 4), stats=True)[1]
        sums, counts = _plain_stats(q)
        assert torch.equal(ref_y.tail_sums, sums) and torch.equal(ref_y.tail_counts, counts)
        assert torch.equal(ref_y.dense()[1:], q._labels[: len(q)])


def test_queue_rejects_non_binary_labels_at_enqueue():
    q = LabelledQueue(size=4, dim=2, num_labels=2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        q.enqueue(torch.randn(2, 2), torch.tensor([[0.0, 0.7], [1.0, 0.0]]))
    assert len(q) == 0


def test_queue_statistics_rebuilt_bit_exactly_after_load_state_dict():
    """The statistics are derived state: not saved, rebuilt on load, identical to the running
    ones (an exact resume of a MulSupCon run)."""
    g = torch.Generator().manual_seed(1)
    a = LabelledQueue(size=6, dim=3, num_labels=5)
    a.references(torch.zeros(0, 3), torch.zeros(0, 5), stats=True)  # tracked from the start
    for n in (4, 4, 3):
        a.enqueue(torch.randn(n, 3, generator=g), torch.rand(n, 5, generator=g) < 0.5)
    assert "_label_sums" not in a.state_dict()
    b = LabelledQueue(size=6, dim=3, num_labels=5)
    b.references(torch.zeros(0, 3), torch.zeros(0, 5), stats=True)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a._label_sums, b._label_sums) and torch.equal(a._label_counts, b._label_counts)
    k, y = torch.randn(2, 3, generator=g), torch.rand(2, 5, generator=g) < 0.5
    a.enqueue(k, y)
    b.enqueue(k, y)
    assert torch.equal(a._label_sums, b._label_sums) and torch.equal(a._label_counts, b._label_counts)


@pytest.mark.parametrize("label_weight", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mulsupcon_with_queue_statistics_equals_the_plain_path(label_weight, reduction):
    """MulSupConLoss on ReferenceLabels (queue statistics) = on the full label matrix: values
    and the gradients of queries and batch keys, at every step of a stream (float32 round-off)."""
    g = torch.Generator().manual_seed(2)
    q = LabelledQueue(size=11, dim=6, num_labels=5)
    loss_fn = MulSupConLoss(0.2, label_weight=label_weight, reduction=reduction)
    for step in range(6):
        z = torch.randn(4, 6, generator=g)
        kb = torch.randn(4, 6, generator=g)
        y = (torch.rand(4, 5, generator=g) < 0.4).long()
        y[0] = 0  # a label-less sample
        out, grads = [], []
        for stats in (False, True):
            zz, kk = z.clone().requires_grad_(True), kb.clone().requires_grad_(True)
            refs, ref_y = q.references(kk, y, stats=stats)
            loss = loss_fn(zz, y, refs, ref_y)
            loss.sum().backward()
            out.append(loss.detach())
            grads.append((zz.grad, kk.grad))
        assert torch.allclose(out[0], out[1], rtol=1e-5, atol=1e-6), step
        for a, b in zip(*grads):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), step
        q.enqueue(kb, y)


def test_other_losses_accept_queue_statistics_as_plain_labels():
    from mlcl.losses import JaccardSupConLoss, SupConLoss

    g = torch.Generator().manual_seed(3)
    q = LabelledQueue(size=9, dim=4, num_labels=3)
    q.enqueue(torch.randn(9, 4, generator=g), torch.rand(9, 3, generator=g) < 0.5)
    z, kb, y = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.rand(5, 3, generator=g) < 0.5
    for loss_fn in (SupConLoss(0.2, "any"), SupConLoss(0.2, "all"), JaccardSupConLoss(0.2)):
        plain = loss_fn(z, y, *q.references(kb, y))
        assert torch.equal(loss_fn(z, y, *q.references(kb, y, stats=True)), plain)
