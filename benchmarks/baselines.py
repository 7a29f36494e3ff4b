"""Baselines for the loss benchmark (for the benchmark only; never imported by ``mlcl``).

Two families, each named for what it is:

* ``authors_*`` follow the **authors' algorithm**: the same tensors and the same operations, in
  the same order, as each paper's public loss code (read from the repositories listed in
  ``../shared/reference/official_code_notes.md``; written here, not copied — the repositories
  have no licence that allows copying). Only the hard-coded ``.cuda()`` / ``device='cuda'``
  become the input's device. Like the originals they assume every sample has a label (the
  benchmark data have no label-less row).
* ``dense_*`` are straightforward dense implementations that build a per-label mask (a
  B × M × L comparison, B × B × L Jaccard counts, a B × L × B weight tensor, one row per
  (sample, label) pair): what a direct transcription of the equations costs.

Every function takes the raw (not yet normalised) anchors and the references as the benchmark
gives them, creates every tensor on the input's device, and returns a scalar loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


# ---------------------------------------------------------------------------------------------
# MulSupCon (williamzhangsjtu/MulSupCon: models.PretrainModel.forward, utils.get_output_func,
# losses.SupCon / losses.WeightedSupCon)
# ---------------------------------------------------------------------------------------------
def _authors_scores(q: Tensor, keys: Tensor, n_batch: int) -> Tensor:
    """The model's scores: q normalised, one einsum for the batch keys and one for the queue
    (stored D × Q), concatenated."""
    q = F.normalize(q, dim=1)
    batch_score = torch.einsum("bd,dk->bk", q, keys[:n_batch].transpose(0, 1))
    queue = keys[n_batch:].t()  # the authors' MoCoQueue buffer is (D, Q)
    if queue.shape[1] == 0:
        return batch_score
    queue_score = torch.einsum("bd,dk->bk", q, queue)
    return torch.cat([batch_score, queue_score], dim=1)


def _authors_supcon(score: Tensor, mask: Tensor, tau: float) -> Tensor:
    num_pos = mask.sum(1)
    loss = -(torch.log(F.softmax(score / tau, dim=1)) * mask).sum(1) / num_pos
    return loss.mean()


def authors_supcon(q: Tensor, y: Tensor, keys: Tensor, yk: Tensor, n_batch: int,
                   tau: float = 0.1, positives: str = "any") -> Tensor:
    """SupCon ALL / ANY as the authors' code computes it (``generate_output_all`` /
    ``generate_output_any`` + ``SupCon``): the label products in float, int16 counts for ALL."""
    score = _authors_scores(q, keys, n_batch)
    y, yk = y.float(), yk.float()
    mul_matrix = y @ yk.T
    if positives == "all":
        mul_matrix = mul_matrix.to(torch.int16)
        mask1 = torch.sum(y, dim=1).unsqueeze(1).to(torch.int16) == mul_matrix
        mask2 = torch.sum(yk, dim=1).unsqueeze(1).to(torch.int16) == mul_matrix.T
        mask = (mask1 & mask2.T).to(torch.long)
    else:
        mask = (mul_matrix > 0).to(torch.long)
    return _authors_supcon(score, mask, tau)


def authors_mulsupcon(q: Tensor, y: Tensor, keys: Tensor, yk: Tensor, n_batch: int,
                      tau: float = 0.1) -> Tensor:
    """MulSupCon as the authors' code computes it (``generate_output_MulSupCon`` +
    ``WeightedSupCon``): one score row per (sample, label) pair, a one-hot label matrix times
    the reference labels for the masks, per-pair weights built through a Python list."""
    scores = _authors_scores(q, keys, n_batch)
    y, yk = y.float(), yk.float()
    indices = torch.where(y == 1)
    scores = scores[indices[0]]
    labels = torch.zeros(len(scores), y.shape[1], device=scores.device)
    labels[range(len(labels)), indices[1]] = 1
    masks = (labels @ yk.T).to(torch.bool)
    n_score_per_sample = y.sum(dim=1).to(torch.int16).tolist()
    weights = [1 / len(scores) for n in n_score_per_sample for _ in range(n)]
    weights = torch.tensor(weights, device=scores.device, dtype=torch.float32)
    mask = masks.to(torch.long)
    num_pos = mask.sum(1)
    loss = -(torch.log(F.softmax(scores / tau, dim=1)) * mask).sum(1) / num_pos
    return (loss * weights).sum()


def dense_supcon(q: Tensor, y: Tensor, keys: Tensor, yk: Tensor, tau: float = 0.1,
                 positives: str = "any") -> Tensor:
    """SupCon ALL / ANY with the positive mask from a dense B × M × L comparison."""
    q, k = F.normalize(q, dim=1), F.normalize(keys, dim=1)
    yb, ykb = y.bool(), yk.bool()
    if positives == "all":
        mask = (yb[:, None, :] == ykb[None, :, :]).all(-1)
    else:
        mask = (yb[:, None, :] & ykb[None, :, :]).any(-1)
    mask = mask.float()
    logits = q @ k.T / tau
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return (-(mask * log_prob).sum(1) / mask.sum(1)).mean()


def dense_mulsupcon(q: Tensor, y: Tensor, keys: Tensor, yk: Tensor, tau: float = 0.1) -> Tensor:
    """MulSupCon with one anchor row per (sample, label) pair and a dense per-pair mask."""
    q, k = F.normalize(q, dim=1), F.normalize(keys, dim=1)
    sample, label = y.nonzero(as_tuple=True)
    logits = q[sample] @ k.T / tau  # (P, M)
    mask = yk.T[label].float()  # (P, M)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return (-(mask * log_prob).sum(1) / mask.sum(1)).mean()


# ---------------------------------------------------------------------------------------------
# ABALONE (audibert-alexandre-fra/Multi-label-contrastive-comprehensive:
# src/trainer/loss/loss_contrastive_base.py and loss_contrastive_msc.py)
# ---------------------------------------------------------------------------------------------
_EPS = 1e-8


def _authors_or(a: Tensor, b: Tensor) -> Tensor:
    or_build = a.unsqueeze(1) + b  # (B, B, L)
    or_build[or_build == 2] = 1
    return or_build.sum(dim=2)


def _authors_log_softmax_temp(matrix: Tensor, temp: float, mask: Tensor) -> Tensor:
    matrix_temp = torch.div(matrix, temp)
    max_columns = torch.max(matrix_temp, dim=1, keepdim=True)[0]
    logits = matrix_temp - max_columns.detach()
    exp_logits = torch.exp(logits)
    return logits - torch.log((exp_logits * mask).sum(dim=1, keepdim=True))


def authors_jaccard(z: Tensor, y: Tensor, tau: float = 0.1) -> Tensor:
    """L_Base as the authors' ``LossContrastiveBase`` computes it (batch only, no queue)."""
    f = F.normalize(z, dim=-1, p=2)
    labels = y.float()
    total = labels.size(0)
    mask_diagonal = torch.ones(total * total, device=f.device, dtype=torch.uint8)
    mask_diagonal[0 :: (total + 1)] = 0
    mask_diagonal = mask_diagonal.reshape(total, total)
    sim = f @ f.T
    mask_and = labels @ labels.T * mask_diagonal
    mask_or = _authors_or(labels, labels)
    mask_and = mask_and * (1 / (mask_or + _EPS))
    mask = mask_and / (mask_and.sum(dim=1, keepdim=True) + _EPS)
    log_softmax = _authors_log_softmax_temp(sim, tau, mask_diagonal)
    per = -(log_softmax * mask).sum(dim=1) / ((mask.sum(dim=1) != 0).int().sum() + _EPS)
    return per.sum()


def authors_msc(z: Tensor, y: Tensor, protos: Tensor, tau: float = 0.1, beta: float = 0.1,
                alpha: float = 1.0) -> Tensor:
    """L_MSC as the authors' ``LossContrastiveMSC`` computes it (batch only: their code has no
    queue), with its B × B × L einsum for the attraction weights."""
    f = F.normalize(z, dim=-1, p=2)
    p = F.normalize(protos, dim=-1, p=2)
    labels = y.float()
    total, nb_labels = labels.size(0), p.size(0)
    mask_diagonal = torch.ones(total * (total + nb_labels), device=f.device, dtype=torch.uint8)
    mask_diagonal[0 :: (total + nb_labels) + 1] = 0
    mask_diagonal = mask_diagonal.reshape(total, total + nb_labels)
    sim_qq = f @ f.T
    sim_qp = f @ p.T
    mask_and = torch.einsum("ac, bc -> abc", labels, labels)
    mask_or = _authors_or(labels, labels)
    mask_and = mask_and * (1 / mask_or.unsqueeze(2)) * alpha
    normalize = mask_and.sum(dim=1) + (-alpha / labels.sum(dim=1, keepdim=True) + 1) * labels
    w_ff = (mask_and / (normalize.unsqueeze(1) + _EPS)).sum(dim=2)
    w_fp = labels / (normalize + _EPS)
    w = torch.cat((w_ff, w_fp), dim=1) * mask_diagonal
    final = torch.cat((sim_qq, sim_qp), dim=1)
    normalize_mask = torch.ones(total + nb_labels, device=f.device) * beta
    normalize_mask[-nb_labels:] = 1
    log_softmax = _authors_log_softmax_temp(final, tau, mask_diagonal * normalize_mask.unsqueeze(0))
    per = -(log_softmax * w).sum(dim=1) / labels.sum(dim=1)
    return per.mean()


def dense_jaccard(z: Tensor, y: Tensor, tau: float = 0.1) -> Tensor:
    """L_Base with intersections and unions from a dense B × B × L tensor."""
    z = F.normalize(z, dim=1)
    B = z.shape[0]
    yb = y.bool()
    inter = (yb[:, None, :] & yb[None, :, :]).sum(-1).float()
    union = (yb[:, None, :] | yb[None, :, :]).sum(-1).float()
    eye = torch.eye(B, dtype=torch.bool, device=z.device)
    w = (inter / union).masked_fill(eye, 0.0)
    logits = (z @ z.T / tau).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    log_prob = log_prob.masked_fill(eye, 0.0)
    return (-(w * log_prob).sum(1) / w.sum(1)).mean()


def dense_msc(z: Tensor, y: Tensor, protos: Tensor, tau: float = 0.1, beta: float = 0.1,
              alpha: float = 1.0) -> Tensor:
    """L_MSC with the attraction weight of every (anchor, label, sample) in a B × L × B tensor."""
    z, p = F.normalize(z, dim=1), F.normalize(protos, dim=1)
    B = y.shape[0]
    yf = y.float()
    sim = z @ z.T / tau
    proto = z @ p.T / tau
    eye = torch.eye(B, dtype=torch.bool, device=z.device)
    exp_sim = torch.exp(sim).masked_fill(eye, 0.0)
    den = torch.exp(proto).sum(1) + beta * exp_sim.sum(1)
    inter = yf @ yf.T
    union = yf.sum(1)[:, None] + yf.sum(1)[None, :] - inter
    pair_w = (alpha / union).masked_fill(eye, 0.0)
    w3 = yf[:, :, None] * yf.T[None, :, :] * pair_w[:, None, :]  # (B, L, B)
    norm = yf + w3.sum(2)
    log_den = torch.log(den)[:, None]
    num = (w3 * (sim[:, None, :] - log_den[:, :, None])).sum(2) + yf * (proto - log_den)
    per_label = torch.nan_to_num(-(num / norm) * yf)
    return (per_label.sum(1) / yf.sum(1)).mean()


# ---------------------------------------------------------------------------------------------
# MulCon LLCL: a dense label-equality mask over the active rows (not the authors' code, which
# was not re-read for this benchmark)
# ---------------------------------------------------------------------------------------------
def dense_llcl(e: Tensor, y: Tensor, tau: float = 0.2) -> Tensor:
    """LLCL over the active rows with an N × N label-equality mask, self removed."""
    sample, label = y.nonzero(as_tuple=True)
    z = F.normalize(e[sample, label], dim=1)
    N = z.shape[0]
    eye = torch.eye(N, dtype=torch.bool, device=z.device)
    mask = (label[:, None] == label[None, :]) & ~eye
    logits = (z @ z.T / tau).masked_fill(eye, float("-inf"))
    log_prob = (logits - torch.logsumexp(logits, dim=1, keepdim=True)).masked_fill(eye, 0.0)
    return (-(mask * log_prob).sum(1) / mask.sum(1)).sum() / N


# ---------------------------------------------------------------------------------------------
# C-GMVAE (JunwenBai/C-GMVAE: model.compute_loss, utils.log_normal / log_normal_mixture)
# ---------------------------------------------------------------------------------------------
def authors_cgmvae(e_label: Tensor, e_feat1: Tensor, e_feat2: Tensor, W: Tensor, y: Tensor,
                   mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor,
                   eps: Tensor, nll_coeff: float = 0.5) -> Tensor:
    """The whole C-GMVAE objective as the authors' ``compute_loss`` assembles it: BCE from
    sigmoid probabilities **summed over labels** (mean over samples, through their
    log-sum-exp over one sample), the KL from a B × L × d broadcast with a −1e6 mask, and the
    contrastive term against the columns of W with an L × L identity mask; temperature 1."""
    label = y.float()
    fe_out, fx_out, fx_out2 = e_label @ W, e_feat1 @ W, e_feat2 @ W
    fx_sample = mu_q + eps * torch.exp(0.5 * logvar_q)  # reparameterize (eps fixed here)
    fx_var, fe_var = torch.exp(logvar_q), torch.exp(logvar_p)

    def log_normal(x, m, v):
        return (-0.5 * (torch.log(v) + (x - m).pow(2) / v)).sum(-1)

    def log_normal_mixture(zs, m, v, mask):
        m = m.unsqueeze(0).expand(zs.shape[0], -1, -1)
        v = v.unsqueeze(0).expand(zs.shape[0], -1, -1)
        batch, mix, dim = m.size()
        zs = zs.view(batch, 1, dim).expand(batch, mix, dim)
        indiv = log_normal(zs, m, v) + torch.ones_like(mask) * (-1e6) * (1.0 - mask)
        max_x = torch.max(indiv, 1)[0]
        new_x = indiv - max_x.unsqueeze(1).expand_as(indiv)
        return max_x + (new_x.exp().sum(1)).log() - torch.log(mask.sum(1))

    kl = (log_normal(fx_sample, mu_q, fx_var) - log_normal_mixture(fx_sample, mu_p, fe_var, label)).mean()

    def bce(E):
        sample_nll = -(torch.log(E) * label + torch.log(1 - E) * (1 - label))
        logprob = -torch.sum(sample_nll, dim=2)
        maxlogprob = torch.max(logprob, dim=0)[0]
        Eprob = torch.mean(torch.exp(logprob - maxlogprob), axis=0)
        return torch.mean(-torch.log(Eprob) - maxlogprob)

    nll = sum(bce(torch.sigmoid(o).unsqueeze(0)) for o in (fe_out, fx_out, fx_out2))
    features = torch.cat((e_label, e_feat1))
    labels = torch.cat((label, label)).float()
    mask = torch.matmul(labels, torch.eye(labels.shape[1], device=labels.device))
    adc = torch.div(torch.matmul(features, W), 1.0)
    logits = adc - torch.max(adc, dim=1, keepdim=True)[0].detach()
    log_prob = logits - torch.log(torch.exp(logits).sum(1, keepdim=True))
    cl = (-(mask * log_prob).sum(1) / mask.sum(1)).mean()
    return nll * nll_coeff + kl * 6.0 + cl


def log_2pi_d(d: int) -> float:
    """d · log 2π: the constant the authors' log-densities omit (it cancels in their KL)."""
    return d * math.log(2 * math.pi)
