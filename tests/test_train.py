"""mlcl.training.train: learning, model selection, exact resume after an interruption, DDP on 2 CPU ranks.

More of the engine (schedulers, parameter groups, EMA, checkpoint safety, NaN guards, method
resumes) is in tests/test_training.py."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlcl.training import TrainConfig, TrainResult, train

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """BCE on a 2-layer MLP; ``noise`` adds a random draw per step (like a VAE's sampling)."""

    def __init__(self, d: int = 10, L: int = 4, p: float = 0.0, noise: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, L))
        self.noise = noise

    def forward(self, x, y):
        h = self.net(x)
        if self.training and self.noise:
            h = h + self.noise * torch.randn_like(h)
        return {"loss": F.binary_cross_entropy_with_logits(h, y), "extra": h.detach().abs().mean()}


def _data(n: int = 96, d: int = 10, L: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    Y = (X @ torch.randn(d, L, generator=g) > 0).float()
    return X, Y


def _model(**kw) -> TinyNet:
    torch.manual_seed(123)
    return TinyNet(**kw)


def _val_bce(m: nn.Module, Xv: torch.Tensor, Yv: torch.Tensor) -> float:
    """−BCE on the validation rows, moved to the model's device (the engine picks CUDA when present)."""
    dev = next(m.parameters()).device
    return -F.binary_cross_entropy_with_logits(m.net(Xv.to(dev)), Yv.to(dev)).item()


def test_learns_and_keeps_best_validation_epoch():
    X, Y = _data()
    Xv, Yv = _data(seed=1)
    scores = []

    def validate(m):
        assert not m.training  # called in eval mode
        s = _val_bce(m, Xv, Yv)
        scores.append(s)
        return s

    res = train(_model(), (X, Y), TrainConfig(epochs=8, batch_size=32, lr=1e-2, progress=False), validate=validate)
    assert isinstance(res, TrainResult)
    assert len(res.history) == 8 and {"loss", "extra", "lr", "val"} <= set(res.history[0])
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.best_epoch == max(range(8), key=scores.__getitem__)
    assert res.best_score == pytest.approx(max(scores))
    # the returned model holds the best epoch's weights, not the last ones
    assert _val_bce(res.model, Xv, Yv) == pytest.approx(max(scores))
    assert not res.model.training


def test_cosine_restarts_schedule_and_bad_options():
    X, Y = _data()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-2, scheduler="cosine_restarts",
                      scheduler_kwargs={"T_0": 2, "eta_min": 1e-3}, progress=False)
    lrs = [h["lr"] for h in train(_model(), (X, Y), cfg).history]
    assert lrs[0] == pytest.approx(1e-2) and lrs[1] < lrs[0] and lrs[2] == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="scheduler"):
        train(_model(), (X, Y), TrainConfig(epochs=1, scheduler="nope", progress=False))


class _Crash(RuntimeError):
    pass


def test_resume_after_interruption_is_identical(tmp_path):
    """Kill after epoch k (an exception in a callback, after the checkpoint is written), resume
    from the checkpoint with a fresh process state: same weights and history as an uninterrupted run."""
    X, Y = _data()
    Xv, Yv = _data(seed=1)

    def validate(m):
        return _val_bce(m, Xv, Yv)

    def cfg(path):  # dropout + noise + scheduler: every RNG and every state must be restored
        return TrainConfig(epochs=6, batch_size=16, lr=5e-3, seed=7, scheduler="cosine_restarts",
                           scheduler_kwargs={"T_0": 3}, checkpoint=str(path), progress=False)

    ref = train(_model(p=0.3, noise=0.5), (X, Y), cfg(tmp_path / "a.pt"), validate=validate)

    def crash_after_2(epoch, logs):
        if epoch == 2:
            raise _Crash

    with pytest.raises(_Crash):
        train(_model(p=0.3, noise=0.5), (X, Y), cfg(tmp_path / "b.pt"), validate=validate, callbacks=[crash_after_2])
    torch.manual_seed(999)  # the resumed run must not depend on the global RNG state
    res = train(_model(p=0.3, noise=0.5), (X, Y), cfg(tmp_path / "b.pt"), validate=validate)
    assert res.resumed_from == 3
    assert res.history == ref.history
    assert res.best_epoch == ref.best_epoch
    for a, b in zip(ref.model.state_dict().values(), res.model.state_dict().values()):
        assert torch.equal(a, b)
    # a finished run resumed again trains no further epoch
    again = train(_model(p=0.3, noise=0.5), (X, Y), cfg(tmp_path / "b.pt"), validate=validate)
    assert again.resumed_from == 6 and again.history == ref.history


# ---------------------------------------------------------------------------------------------
# DDP: 2 CPU processes on gloo give the same update as 1 process on the whole batch
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    X, Y = _data()
    res = train(_model(), (X, Y), TrainConfig(epochs=3, batch_size=32, lr=1e-2, device="cpu", progress=False))
    torch.save({k: v.clone() for k, v in res.model.state_dict().items()}, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.distributed
def test_ddp_two_cpu_ranks_match_single_process(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "state")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    s0, s1 = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    X, Y = _data()
    single = train(_model(), (X, Y), TrainConfig(epochs=3, batch_size=32, lr=1e-2, device="cpu", progress=False))
    for k, v in single.model.state_dict().items():
        assert torch.equal(s0[k], s1[k])  # ranks stay in sync
        torch.testing.assert_close(s0[k], v, rtol=1e-5, atol=1e-6)  # = one process on the global batch
    assert not torch.equal(s0["net.0.weight"], _model().state_dict()["net.0.weight"])  # it trained


@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP runs only on CUDA")
def test_amp_on_cuda_trains():
    X, Y = _data()
    res = train(_model(), (X, Y), TrainConfig(epochs=3, batch_size=32, lr=1e-2, device="cuda", progress=False))
    assert next(res.model.parameters()).is_cuda
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_progress_bar_and_cpu_amp_flag_are_harmless(capsys):
    X, Y = _data()
    res = train(_model(), (X, Y), TrainConfig(epochs=2, batch_size=32, amp=True, device="cpu", progress=True))
    assert len(res.history) == 2
    assert "train" in capsys.readouterr().err  # tqdm writes to stderr
