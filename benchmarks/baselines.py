"""Authors'-style reference implementations, for the benchmark only.

Written for this project from the description of the official code in
``../shared/reference/official_code_notes.md`` (no code was copied; the repositories have no
licence that allows it). They reproduce the *data layout* of the official losses — one row per
(sample, label) pair, B × M × L masks, B × L × B weight tensors, B × L × d Gaussians — which is
what makes them slow and memory-hungry. Like the originals, they assume every sample has at
least one label (zero-label rows give NaN), so the benchmark data have none.

Each function returns a scalar loss and takes already-projected (not necessarily normalised)
tensors, like the ``mlcl.losses`` modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mulsupcon_pairs(q: Tensor, y: Tensor, k: Tensor, yk: Tensor, tau: float = 0.1) -> Tensor:
    """MulSupCon, one anchor row per (sample, label) pair: a P × M logit matrix (P = Σ|y_i|)."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    sample, label = y.nonzero(as_tuple=True)
    anchors = q[sample]  # (P, D): the query repeated once per label
    logits = anchors @ k.T / tau  # (P, M)
    mask = yk.T[label].float()  # (P, M): keys carrying the pair's label
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    per_pair = -(mask * log_prob).sum(1) / mask.sum(1)
    return per_pair.mean()


def supcon_all_any(
    q: Tensor, y: Tensor, k: Tensor, yk: Tensor, tau: float = 0.1, positives: str = "any"
) -> Tensor:
    """SupCon ALL / ANY with the positive mask built from a B × M × L comparison."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    yb, ykb = y.bool(), yk.bool()
    if positives == "all":
        mask = (yb[:, None, :] == ykb[None, :, :]).all(-1)
    else:
        mask = (yb[:, None, :] & ykb[None, :, :]).any(-1)
    mask = mask.float()
    logits = q @ k.T / tau
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return (-(mask * log_prob).sum(1) / mask.sum(1)).mean()


def msc_dense(
    z: Tensor, y: Tensor, protos: Tensor, tau: float = 0.1, beta: float = 0.1, alpha: float = 1.0
) -> Tensor:
    """L_MSC with the attraction weights of every (anchor, label, sample) in a B × L × B tensor
    (the batch is its own reference set, as in the authors' code, which has no queue)."""
    z, p = F.normalize(z, dim=1), F.normalize(protos, dim=1)
    B, L = y.shape
    yf = y.float()
    sim = z @ z.T / tau  # (B, B)
    proto = z @ p.T / tau  # (B, L)
    eye = torch.eye(B, dtype=torch.bool)
    exp_sim = torch.exp(sim).masked_fill(eye, 0.0)
    den = torch.exp(proto).sum(1) + beta * exp_sim.sum(1)  # (B,)
    inter = yf @ yf.T
    union = yf.sum(1)[:, None] + yf.sum(1)[None, :] - inter
    pair_w = (alpha / union).masked_fill(eye, 0.0)  # (B, B)
    w3 = yf[:, :, None] * yf.T[None, :, :] * pair_w[:, None, :]  # (B, L, B)
    proto_w = yf  # weight 1 for prototype c of each positive (i, c)
    norm = proto_w + w3.sum(2)  # (B, L)
    log_den = torch.log(den)[:, None]
    log_p_samples = sim[:, None, :] - log_den[:, :, None]  # (B, 1, B) broadcast
    log_p_proto = proto - log_den  # (B, L)
    num = (w3 * log_p_samples).sum(2) + proto_w * log_p_proto  # (B, L)
    per_label = -(num / norm) * yf
    per_label = torch.nan_to_num(per_label)  # rows of negative labels divide 0 by 0
    return (per_label.sum(1) / yf.sum(1)).mean()


def jaccard_dense(z: Tensor, y: Tensor, tau: float = 0.1) -> Tensor:
    """L_Base with intersections and unions from a B × B × L tensor."""
    z = F.normalize(z, dim=1)
    B = z.shape[0]
    yb = y.bool()
    inter = (yb[:, None, :] & yb[None, :, :]).sum(-1).float()
    union = (yb[:, None, :] | yb[None, :, :]).sum(-1).float()
    eye = torch.eye(B, dtype=torch.bool)
    w = (inter / union).masked_fill(eye, 0.0)
    logits = (z @ z.T / tau).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    log_prob = log_prob.masked_fill(eye, 0.0)
    return (-(w * log_prob).sum(1) / w.sum(1)).mean()


def llcl_rows(e: Tensor, y: Tensor, tau: float = 0.2) -> Tensor:
    """MulCon LLCL: the active rows, an N × N label-equality mask, self removed."""
    sample, label = y.nonzero(as_tuple=True)
    z = F.normalize(e[sample, label], dim=1)
    N = z.shape[0]
    eye = torch.eye(N, dtype=torch.bool)
    mask = (label[:, None] == label[None, :]) & ~eye
    logits = (z @ z.T / tau).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    log_prob = log_prob.masked_fill(eye, 0.0)
    return (-(mask * log_prob).sum(1) / mask.sum(1)).sum() / N


def cgmvae_objective(
    e_label: Tensor,
    e_feat1: Tensor,
    e_feat2: Tensor,
    W: Tensor,
    y: Tensor,
    z: Tensor,
    mu_q: Tensor,
    logvar_q: Tensor,
    mu_p: Tensor,
    logvar_p: Tensor,
) -> Tensor:
    """The whole C-GMVAE training loss as the authors' code assembles it:
    0.5·(BCE(label path) + BCE(feature sample 1) + BCE(feature sample 2)) + 6·KL + contrastive,
    the KL with a B × L × d tensor of per-label Gaussians, the contrastive term on 2B anchors
    against the unnormalised columns of W (E × L), temperature 1."""
    yf = y.float()
    bce = sum(F.binary_cross_entropy_with_logits(e @ W, yf) for e in (e_label, e_feat1, e_feat2))
    # KL, eq. 3, one Gaussian per (sample, label) broadcast in a B × L × d tensor
    var_p = logvar_p.exp()
    log_comp = -0.5 * (
        (z[:, None, :] - mu_p[None]) ** 2 / var_p[None] + logvar_p[None] + torch.log(
            torch.tensor(2 * torch.pi)
        )
    ).sum(-1)  # (B, L)
    log_comp = log_comp.masked_fill(yf == 0, float("-inf"))
    log_prior = torch.logsumexp(log_comp, 1) - torch.log(yf.sum(1))
    log_q = -0.5 * (
        (z - mu_q) ** 2 / logvar_q.exp() + logvar_q + torch.log(torch.tensor(2 * torch.pi))
    ).sum(1)
    kl = (log_q - log_prior).mean()
    # contrastive, eq. 5
    anchors = torch.cat([e_label, e_feat1])
    ya = torch.cat([yf, yf])
    log_prob = torch.log_softmax(anchors @ W, dim=1)
    cl = (-(ya * log_prob).sum(1) / ya.sum(1)).mean()
    return 0.5 * bce + 6.0 * kl + cl
