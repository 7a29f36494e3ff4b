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
