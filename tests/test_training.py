"""mlcl.training: schedulers, parameter groups, EMA, data paths, hooks, checkpoint safety, NaN
guards, and exact resume of the methods that train on the engine (MulSupCon pre-training with its
queue, C-GMVAE). The basic loop, DDP and AMP are in tests/test_train.py. Device-portable: the
engine runs on CUDA when present, so every tensor a test compares is moved to the CPU first."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from mlcl.training import (
    TrainConfig,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    param_groups,
    train,
)

torch.set_num_threads(1)


class Net(nn.Module):
    """BCE on ``fc(encoder(x))`` with dropout and a noise draw (every RNG must be restored)."""

    def __init__(self, d: int = 6, L: int = 3, p: float = 0.2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(p))
        self.fc = nn.Linear(16, L)

    def forward(self, x, y):
        h = self.fc(self.encoder(x))
        if self.training:
            h = h + 0.1 * torch.randn_like(h)
        return {"loss": F.binary_cross_entropy_with_logits(h, y)}


def _data(n: int = 64, d: int = 6, L: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    return X, (X[:, :L] + 0.3 * torch.randn(n, L, generator=g) > 0).float()


def _net(**kw) -> Net:
    torch.manual_seed(5)
    return Net(**kw)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 4, "batch_size": 16, "lr": 1e-2, "progress": False, **kw})


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}


def _val(Xv, Yv):
    def validate(m):
        dev = next(m.parameters()).device
        return -float(m(Xv.to(dev), Yv.to(dev))["loss"])

    return validate


class _Crash(RuntimeError):
    pass


def _crash_after(k: int):
    def cb(epoch, logs):
        if epoch == k:
            raise _Crash

    return cb


def _interrupt_and_resume(make_model, data, cfg: TrainConfig, tmp_path, crash_epoch: int = 1, **kw):
    """(uninterrupted result, resumed result, the resumed model): the run is killed after
    ``crash_epoch`` and resumed from its checkpoint by a fresh model under another global seed."""
    from dataclasses import replace

    ref = train(make_model(), data, replace(cfg, checkpoint=str(tmp_path / "ref.pt")), **kw)
    ck = replace(cfg, checkpoint=str(tmp_path / "run.pt"))
    with pytest.raises(_Crash):
        train(make_model(), data, ck, callbacks=[_crash_after(crash_epoch)], **kw)
    torch.manual_seed(999)
    res = train(make_model(), data, ck, **kw)
    assert res.resumed_from == crash_epoch + 1
    return ref, res


def _assert_same_run(ref, res):
    assert res.history == ref.history and res.best_epoch == ref.best_epoch and res.steps == ref.steps
    a, b = _state(ref.model), _state(res.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------
# optimiser and parameter groups
def test_param_groups_multiplier_freeze_and_bad_prefix():
    net = _net()
    groups = param_groups(net, 1e-2, {"encoder": 0.1})
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 1e-3])
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.encoder.parameters()}
    frozen = param_groups(net, 1e-2, {"encoder": 0.0})
    assert len(frozen) == 1 and {id(p) for p in frozen[0]["params"]} == {id(p) for p in net.fc.parameters()}
    # the longest prefix wins
    assert [g["lr"] for g in param_groups(net, 1.0, {"encoder": 0.5, "encoder.0.bias": 0.25})] == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="matches no parameter"):
        param_groups(net, 1e-2, {"backbone": 0.1})


def test_lr_mult_trains_the_backbone_at_its_rate_and_freezes_at_zero():
    X, Y = _data()
    net = _net()
    before = _state(net)
    res = train(net, (X, Y), _cfg(epochs=2, lr_mult={"encoder": 0.0}))
    after = _state(res.model)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder"))
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_and_options(name):
    net = _net()
    opt = make_optimizer(net, _cfg(optimizer=name, weight_decay=0.1, optimizer_kwargs={"nesterov": True}
                                   if name == "sgd" else {"betas": [0.8, 0.9]}), torch.device("cpu"))
    assert type(opt).__name__.lower() == name and opt.param_groups[0]["weight_decay"] == 0.1
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]
    else:
        assert opt.param_groups[0]["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="optimizer"):
        _cfg(optimizer="lion")


class _Normed(nn.Module):
    """A weight matrix, a bias, a LayerNorm and a 2-D parameter whose name says "norm"."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.ln = nn.Linear(3, 4), nn.LayerNorm(4)
        self.norm_table = nn.Parameter(torch.randn(2, 4))


def test_no_decay_group_exempts_biases_norms_and_named_parameters():
    torch.manual_seed(0)
    net = _Normed()
    groups = param_groups(net, 1e-2, {}, ("bias", "norm"))
    assert [g.get("weight_decay") for g in groups] == [None, 0.0]  # None: the optimiser's own decay
    assert {id(p) for p in groups[0]["params"]} == {id(net.fc.weight)}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for n, p in net.named_parameters() if n != "fc.weight"}
    # one AdamW step with zero gradients is the decay alone: p(1 − lr·λ) for fc.weight, nothing for the rest
    lr, wd = 0.1, 0.5
    before = _state(net)
    opt = make_optimizer(net, _cfg(optimizer="adamw", lr=lr, weight_decay=wd, no_decay=("bias", "norm")),
                         torch.device("cpu"))
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = _state(net)
    torch.testing.assert_close(after["fc.weight"], before["fc.weight"] * (1 - lr * wd))
    assert all(torch.equal(after[k], before[k]) for k in before if k != "fc.weight")
    # lr_mult groups are split the same way; without no_decay nothing changes
    assert len(param_groups(net, 1e-2, {"fc": 0.1}, ("bias",))) == 4
    assert len(param_groups(net, 1e-2, {})) == 1


# ---------------------------------------------------------------------------------------------
# schedulers: the learning rate of every epoch (or step) is the torch scheduler's
def _lrs(cfg: TrainConfig, n: int) -> list[float]:
    """lr at the start of each of ``n`` scheduler intervals, as make_scheduler steps it."""
    opt = make_optimizer(_net(), cfg, torch.device("cpu"))
    sched = make_scheduler(opt, cfg, n)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_each_scheduler_follows_its_formula():
    lr, n = 0.1, 8
    cos = _lrs(_cfg(lr=lr, scheduler="cosine"), n)
    assert cos == pytest.approx([lr * (1 + math.cos(math.pi * t / n)) / 2 for t in range(n)])
    restarts = _lrs(_cfg(lr=lr, scheduler="cosine_restarts", scheduler_kwargs={"T_0": 3, "T_mult": 1}), n)
    assert restarts == pytest.approx([lr * (1 + math.cos(math.pi * (t % 3) / 3)) / 2 for t in range(n)])
    step = _lrs(_cfg(lr=lr, scheduler="step", scheduler_kwargs={"step_size": 3, "gamma": 0.5}), n)
    assert step == pytest.approx([lr * 0.5 ** (t // 3) for t in range(n)])
    warm = _lrs(_cfg(lr=lr, scheduler="cosine", warmup=3), n)
    assert warm[:3] == pytest.approx([lr * (1 + t) / 4 for t in range(3)])  # linear ramp to lr
    assert warm[3:] == pytest.approx([lr * (1 + math.cos(math.pi * t / 5)) / 2 for t in range(5)])
    assert _lrs(_cfg(lr=lr, warmup=2), 4) == pytest.approx([lr / 3, 2 * lr / 3, lr, lr])  # warm-up alone
    one = _lrs(_cfg(lr=lr, scheduler="onecycle", scheduler_kwargs={"pct_start": 0.25}), n)
    assert one[0] == pytest.approx(lr / 25) and max(one) == pytest.approx(lr)  # div_factor 25, peak lr
    assert one.index(max(one)) == 1 and one[-1] < one[0]  # peak after pct_start·n − 1 steps, then anneal
    with pytest.raises(ValueError, match="warmup"):
        _lrs(_cfg(scheduler="onecycle", warmup=1), 2)
    # "linear": lr·(k+1)/(w+1) during the warm-up, then lr·(1 − (k−w)/(K−w)) down to 0 at K
    lin = _lrs(_cfg(lr=lr, scheduler="linear", warmup=2), n)
    assert lin == pytest.approx([lr / 3, 2 * lr / 3, lr, lr * 5 / 6, lr * 4 / 6, lr / 2, lr / 3, lr / 6])
    assert _lrs(_cfg(lr=lr, scheduler="linear"), 4) == pytest.approx([lr, 0.75 * lr, 0.5 * lr, 0.25 * lr])


def test_scheduler_stepped_per_epoch_or_per_step_in_the_loop():
    X, Y = _data()  # 4 steps per epoch at batch 16
    per_epoch = train(_net(), (X, Y), _cfg(lr=0.1, scheduler="step", scheduler_kwargs={"step_size": 1,
                                                                                      "gamma": 0.5}))
    assert [h["lr"] for h in per_epoch.history] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    per_step = train(_net(), (X, Y), _cfg(lr=0.1, scheduler="step", scheduler_interval="step",
                                          scheduler_kwargs={"step_size": 1, "gamma": 0.5}))
    assert [h["lr"] for h in per_step.history] == pytest.approx([0.1 * 0.5 ** (4 * e) for e in range(4)])
    assert [h["step"] for h in per_step.history] == [4.0, 8.0, 12.0, 16.0]
    linear = train(_net(), (X, Y), _cfg(lr=0.1, scheduler="linear", scheduler_interval="step", warmup=3))
    assert [h["lr"] for h in linear.history] == pytest.approx([0.025, 0.1 * 12 / 13, 0.1 * 8 / 13, 0.1 * 4 / 13])


def test_plateau_follows_the_validation_score():
    X, Y = _data()
    scores = iter([1.0, 0.5, 0.5, 0.5, 0.5, 0.5])  # improves once, then never again
    res = train(_net(), (X, Y), _cfg(epochs=6, lr=0.1, scheduler="plateau",
                                     scheduler_kwargs={"patience": 1, "factor": 0.1}),
                validate=lambda m: next(scores))
    assert [h["lr"] for h in res.history] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 1e-3])
    with pytest.raises(ValueError, match="validate"):
        train(_net(), (X, Y), _cfg(scheduler="plateau"))


def test_plateau_min_mode_applies_the_rule_to_the_negated_score():
    """validate() returns −BCE; mode "min" must act as torch's plateau on the BCE itself (in mode
    "max" torch's relative threshold would count a slightly worse negative score as a gain)."""
    X, Y = _data()
    losses = [0.30, 0.29999, 0.29999, 0.29999, 0.29999]  # improvements far below the 1e-4 threshold
    it = iter(losses)
    kw = {"mode": "min", "patience": 1, "factor": 0.5}
    res = train(_net(), (X, Y), _cfg(epochs=5, lr=0.1, scheduler="plateau", scheduler_kwargs=kw),
                validate=lambda m: -next(it))
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), **kw)
    expected = []
    for v in losses:
        expected.append(ref.optimizer.param_groups[0]["lr"])
        ref.step(v)
    assert [h["lr"] for h in res.history] == pytest.approx(expected) and expected[-1] < expected[0]


# ---------------------------------------------------------------------------------------------
# EMA, data paths, hooks
def test_ema_is_the_average_of_the_steps_weights_and_is_returned():
    X, Y = _data()
    seen = []
    res = train(_net(p=0.0), (X, Y), _cfg(epochs=2, ema=0.5),
                on_step=[lambda m, s: seen.append({k: v.detach().cpu().clone() for k, v in m.state_dict().items()})])
    ema = seen[0]  # AveragedModel's first update copies; then ema ← 0.5·ema + 0.5·θ
    for s in seen[1:]:
        ema = {k: 0.5 * ema[k] + 0.5 * s[k] for k in ema}
    out = _state(res.model)
    assert all(torch.allclose(out[k], ema[k], atol=1e-6) for k in ema)
    assert not torch.allclose(out["fc.weight"], seen[-1]["fc.weight"])  # not the raw last weights


def test_iteration_counted_epochs_hooks_and_views():
    X, Y = _data(40)
    steps, shapes = [], []

    def views(batch):
        shapes.append(tuple(batch[0].shape))
        return batch[0] * 0 + batch[0], batch[1]

    res = train(_net(), (X, Y), _cfg(epochs=3, steps_per_epoch=5, batch_size=16), views=views,
                on_step=[lambda m, s: steps.append(s)])
    assert steps == list(range(1, 16)) and res.steps == 15 and set(shapes) == {(16, 6)}
    # one pass per epoch otherwise (ceil(40 / 16) = 3 batches, 2 with drop_last)
    assert train(_net(), (X, Y), _cfg(epochs=1)).steps == 3
    assert train(_net(), (X, Y), _cfg(epochs=1, drop_last=True)).steps == 2


def test_dataset_input_goes_through_a_dataloader_and_resumes_exactly(tmp_path):
    X, Y = _data()
    ref, res = _interrupt_and_resume(_net, TensorDataset(X, Y), _cfg(epochs=3, steps_per_epoch=6), tmp_path,
                                     validate=_val(X, Y))
    _assert_same_run(ref, res)


def test_tensor_batches_cover_every_row_once_per_pass():
    X = torch.arange(50.0)[:, None]
    seen = []
    model = nn.Linear(1, 1)
    train(model, (X,), _cfg(epochs=2, batch_size=16),
          loss_fn=lambda m, b: (seen.append(b[0].flatten().cpu()), {"loss": m(b[0]).sum()})[1])
    first, second = torch.cat(seen[:4]), torch.cat(seen[4:])
    assert sorted(first.tolist()) == list(range(50)) == sorted(second.tolist())
    assert not torch.equal(first, second)  # a new permutation every epoch


# ---------------------------------------------------------------------------------------------
# guards
def test_nan_loss_stops_training_without_writing_a_checkpoint(tmp_path):
    X, Y = _data()
    Xbad = X.clone()
    Xbad[5, 0] = float("nan")
    path = tmp_path / "nan.pt"
    with pytest.raises(FloatingPointError, match="loss is nan in epoch 0"):
        train(_net(), (Xbad, Y), _cfg(checkpoint=str(path)))
    assert not path.exists()
    with pytest.raises(FloatingPointError, match="training loss is (inf|nan)"):
        train(_net(), (X, Y), _cfg(), loss_fn=lambda m, b: {"loss": m(*b)["loss"] * float("inf")})


def test_nan_validation_score_never_wins():
    X, Y = _data()
    scores = iter([float("nan"), 0.3, float("nan"), 0.5, float("nan")])
    res = train(_net(), (X, Y), _cfg(epochs=5), validate=lambda m: next(scores))
    assert res.best_epoch == 3 and res.best_score == 0.5
    allnan = train(_net(), (X, Y), _cfg(epochs=2), validate=lambda m: float("nan"))
    assert allnan.best_score is None and len(allnan.history) == 2


# ---------------------------------------------------------------------------------------------
# checkpoint safety
def test_resume_refuses_another_configuration_or_other_data(tmp_path):
    X, Y = _data()
    path = str(tmp_path / "c.pt")
    train(_net(), (X, Y), _cfg(epochs=2, checkpoint=path))
    with pytest.raises(ValueError, match=r"different configuration \(lr: 0.01 -> 0.02\).*delete"):
        train(_net(), (X, Y), _cfg(epochs=2, lr=2e-2, checkpoint=path))
    X2 = X.clone()
    X2[0, 0] += 1.0
    with pytest.raises(ValueError, match="different training data.*delete"):
        train(_net(), (X2, Y), _cfg(epochs=2, checkpoint=path))
    # what does not change the numbers may change
    again = train(_net(), (X, Y), _cfg(epochs=2, checkpoint=path, progress=True, checkpoint_every=5))
    assert again.resumed_from == 2


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the hand-made pickle below
def test_corrupt_truncated_and_crafted_checkpoints_are_refused(tmp_path):
    X, Y = _data()
    path = tmp_path / "c.pt"
    train(_net(), (X, Y), _cfg(epochs=1, checkpoint=str(path)))
    ck = load_checkpoint(path)  # written with plain values only: weights_only loads it
    assert {"model", "optimizer", "config", "fingerprint", "history", "best"} <= set(ck)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(RuntimeError, match=rf"{path.name} is corrupt or truncated.*delete it"):
        train(_net(), (X, Y), _cfg(epochs=1, checkpoint=str(path)))

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    crafted = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, crafted)
    with pytest.raises(RuntimeError, match=rf"{crafted.name} holds objects other than tensors"):
        load_checkpoint(crafted)
    crafted.write_bytes(pickle.dumps({"x": 1}))  # not a torch file at all
    with pytest.raises(RuntimeError, match=crafted.name):
        load_checkpoint(crafted)


# ---------------------------------------------------------------------------------------------
# exact resume, with every scheduler state, EMA shadows and a step-stepped schedule
@pytest.mark.parametrize("kw", [
    {"scheduler": "cosine", "warmup": 2, "scheduler_interval": "step", "ema": 0.9},
    {"scheduler": "onecycle", "scheduler_interval": "step", "optimizer": "sgd"},
    {"scheduler": "plateau", "scheduler_kwargs": {"patience": 0}, "lr_mult": {"encoder": 0.1}},
    {"scheduler": "step", "scheduler_kwargs": {"step_size": 1}, "optimizer": "adamw", "grad_clip": 0.5},
    {"scheduler": "linear", "warmup": 2, "scheduler_interval": "step", "optimizer": "adamw", "weight_decay": 0.1,
     "no_decay": ("bias",)},
], ids=["cosine-warmup-ema", "onecycle-sgd", "plateau-groups", "step-adamw-clip", "linear-nodecay"])
def test_exact_resume_for_every_schedule(tmp_path, kw):
    X, Y = _data()
    Xv, Yv = _data(seed=1)
    ref, res = _interrupt_and_resume(_net, (X, Y), _cfg(epochs=4, steps_per_epoch=3, **kw), tmp_path,
                                     validate=_val(Xv, Yv))
    _assert_same_run(ref, res)


def test_mulsupcon_pretraining_resumes_to_the_same_weights_and_queue(tmp_path):
    from mlcl.models.backbones import MLP
    from mlcl.models.mulsupcon import MulSupConModel
    from mlcl.training.mulsupcon import PretrainConfig, pretrain

    rng = np.random.default_rng(0)
    Y = (rng.random((60, 4)) < 0.4).astype(np.float32)
    X = (rng.normal(size=(60, 8)) + Y @ rng.normal(size=(4, 8))).astype(np.float32)
    cfg = PretrainConfig(epochs=4, iters_per_epoch=5, batch_size=16, T_0=2, T_mult=1)

    def model():
        torch.manual_seed(0)
        return MulSupConModel(MLP(8, [16], dropout=0.2), n_labels=4, queue_size=24, proj_hidden=16, proj_dim=8)

    ref = pretrain(model(), X, Y, cfg, seed=1, progress=False, checkpoint=str(tmp_path / "ref.pt"))
    # interrupt after epoch 1 by loading the checkpoint of a 2-epoch run with the same schedule:
    # the engine is what resumes, so crash it the way the engine tests do
    from mlcl.training import train as engine_train

    tc = cfg.train_config(seed=1, progress=False, device=str(next(ref.model.parameters()).device),
                          checkpoint=str(tmp_path / "run.pt"))
    with pytest.raises(_Crash):
        engine_train(model(), (X, Y), tc, callbacks=[_crash_after(1)])
    torch.manual_seed(42)
    res = pretrain(model(), X, Y, cfg, seed=1, progress=False, checkpoint=str(tmp_path / "run.pt"))
    assert res.history == ref.history
    a, b = _state(ref.model), _state(res.model)
    assert any("queue" in k for k in a)  # the queue (keys, labels, pointer) is part of the state
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(res.model.queue) == len(ref.model.queue) == 24
    assert torch.equal(res.model.queue.keys.cpu(), ref.model.queue.keys.cpu())


def test_cgmvae_resumes_exactly(tmp_path):
    from mlcl.models.cgmvae import CGMVAE

    X, Y = _data(48, d=8, L=4)

    def model():
        torch.manual_seed(0)
        return CGMVAE.from_preset("code", 8, 4, emb_size=16, latent_dim=4)

    ref, res = _interrupt_and_resume(model, (X, Y), _cfg(epochs=3, scheduler="cosine_restarts",
                                                         scheduler_kwargs={"T_0": 2}), tmp_path)
    _assert_same_run(ref, res)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP (float16 + GradScaler) runs only on CUDA")
def test_amp_path_with_clipping_ema_and_resume_on_cuda(tmp_path):
    X, Y = _data()
    cfg = _cfg(epochs=3, steps_per_epoch=4, device="cuda", amp=True, grad_clip=1.0, ema=0.9,
               checkpoint=str(tmp_path / "amp.pt"))
    with pytest.raises(_Crash):
        train(_net(), (X, Y), cfg, callbacks=[_crash_after(0)])
    ck = load_checkpoint(tmp_path / "amp.pt")
    assert ck["scaler"]["scale"] > 0 and ck["ema"] is not None  # the GradScaler state is saved
    res = train(_net(), (X, Y), cfg)
    assert res.resumed_from == 1 and next(res.model.parameters()).is_cuda
    assert all(math.isfinite(h["loss"]) for h in res.history)
