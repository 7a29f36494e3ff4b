"""C-GMVAE losses (Bai, Kong & Gomes, ICML 2022): the Gaussian-mixture KL (eq. 3) and the
feature-label contrastive loss (eq. 5).

Notation of the paper: a sample is (x, y) with y ∈ {0,1}^L; P(y) = {i : y_i = 1}; the feature
encoder gives q(z|x) = N(μ_φ(x), diag σ²_φ(x)); each label c has a Gaussian N(μ_c, diag σ²_c)
(the label encoder); w^f_x is the feature embedding (decoder output) and w^l_c the label
embeddings; sim(a, b) = exp(a·b/τ).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._common import (
    Reduction,
    check_embeddings,
    check_labels,
    check_reduction,
    check_temperature,
    compute_dtype,
    distributed_world,
    masked_logsumexp,
    no_autocast,
    normalize,
    reduce_loss,
    sim_contrast,
)

__all__ = ["FeatureLabelContrastiveLoss", "GaussianMixtureKL", "gaussian_mixture_kl"]

_LOG_2PI = math.log(2.0 * math.pi)


def _diag_gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z_i; μ_c, diag exp(logvar_c)) for every pair (i, c): (B, d) × (L, d) → (B, L).

    The quadratic form is expanded into three matrix products (no (B, L, d) tensor) and computed
    in float64, which removes the cancellation of the expansion.
    """
    z64, mu64, lv64 = z.double(), mu.double(), logvar.double()
    prec = torch.exp(-lv64)  # (L, d)
    quad = (z64 * z64) @ prec.T - 2.0 * z64 @ (mu64 * prec).T + (mu64 * mu64 * prec).sum(1)
    const = z.shape[1] * _LOG_2PI + lv64.sum(1)  # (L,)
    return -0.5 * (quad + const)


def gaussian_mixture_kl(
    z: Tensor,
    mu_q: Tensor,
    logvar_q: Tensor,
    mu_p: Tensor,
    logvar_p: Tensor,
    labels: Tensor,
    reduction: Reduction = "mean",
    gather_distributed: bool = False,
) -> Tensor:
    r"""Single-sample KL estimate between the posterior and the label-conditioned mixture prior.

    C-GMVAE eq. 3:

    .. math::

        L_{KL} \approx \log \mathcal N(z_0; \mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))
        - \log \frac{1}{\sum_i y_i} \sum_{i=1}^L 1\{y_i = 1\}\,
        \mathcal N(z_0; \mu_i, \operatorname{diag}\sigma^2_i)

    with z_0 ~ q(z|x) a single sample (the authors draw a fresh one for the KL).

    Args:
        z: the latent sample, (B, d).
        mu_q, logvar_q: posterior mean and log-variance, (B, d).
        mu_p, logvar_p: one Gaussian per label (the label encoder's outputs), (L, d).
        labels: multi-hot (B, L). A sample without labels has no prior: it contributes nothing
            (0 for ``reduction="none"``) and is not counted in the mean.

    Non-finite inputs, or log-variances so extreme that a log-density overflows float64, raise
    a ``ValueError`` on the CPU (one host check of B values); on accelerators the loss is NaN
    instead (no host synchronisation). Never a 0 with NaN gradients.
        reduction: ``"mean"`` over samples with ≥ 1 label (the authors' batch mean), ``"sum"``,
            or ``"none"`` (shape (B,)).
        gather_distributed: count the samples of every rank in the mean (DDP-equivalent).

    Example:
        >>> B, L, d = 4, 5, 3
        >>> mu, lv = torch.randn(B, d), torch.zeros(B, d)
        >>> z = mu + torch.randn(B, d) * (0.5 * lv).exp()
        >>> y = torch.randint(0, 2, (B, L))
        >>> kl = gaussian_mixture_kl(z, mu, lv, torch.randn(L, d), torch.zeros(L, d), y)
    """
    reduction = check_reduction(reduction)
    for name, t in (("z", z), ("mu_q", mu_q), ("logvar_q", logvar_q)):
        check_embeddings(t, name)
        if t.shape != z.shape:
            raise ValueError(f"{name} must have the shape of z {tuple(z.shape)}, got {tuple(t.shape)}.")
    for name, t in (("mu_p", mu_p), ("logvar_p", logvar_p)):
        check_embeddings(t, name)
        if t.shape != mu_p.shape or t.shape[1] != z.shape[1]:
            raise ValueError(
                f"{name} must have shape (num_labels, {z.shape[1]}) (one Gaussian per label, same "
                f"latent size as z), got {tuple(t.shape)}."
            )
    y = check_labels(labels, z.shape[0], num_labels=mu_p.shape[0], what="z")
    dtype = compute_dtype(z, mu_q, logvar_q, mu_p, logvar_p)
    world, _ = distributed_world(gather_distributed)
    with no_autocast(z):
        zq = z.double()
        log_q = -0.5 * (
            (zq - mu_q.double()).pow(2) * torch.exp(-logvar_q.double())
            + logvar_q.double()
            + _LOG_2PI
        ).sum(1)
        log_comp = _diag_gaussian_log_density(z, mu_p, logvar_p)  # (B, L) float64
        n_pos = y.sum(1)
        log_prior = masked_logsumexp(log_comp, y) - torch.log(n_pos.clamp(min=1).double())
        kl = log_q - log_prior
        if kl.device.type == "cpu" and not bool(torch.isfinite(kl).all()):
            _raise_non_finite_kl(z, mu_q, logvar_q, mu_p, logvar_p)
        # 0/1 weights (not a select): on accelerators, where the check above would cost a host
        # synchronisation, a non-finite row makes the loss NaN instead of a silent 0
        valid = n_pos.clamp(max=1).to(dtype)
        return reduce_loss(kl.to(dtype), valid, reduction, world)


def _raise_non_finite_kl(*tensors: Tensor) -> None:
    names = ("z", "mu_q", "logvar_q", "mu_p", "logvar_p")
    bad = [n for n, t in zip(names, tensors) if not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"gaussian_mixture_kl: {', '.join(bad)} contain NaN or inf.")
    lo = min(float(t.min()) for t in tensors[2::2])
    hi = max(float(t.max()) for t in tensors[2::2])
    raise ValueError(
        f"gaussian_mixture_kl: the log-densities overflow float64 (log-variances span "
        f"[{lo:.4g}, {hi:.4g}]; exp(-logvar) overflows below about -709). Bound the "
        f"log-variances, e.g. logvar.clamp(-30, 30), or check the encoder for divergence."
    )


class GaussianMixtureKL(nn.Module):
    """Module form of :func:`gaussian_mixture_kl` (C-GMVAE eq. 3)."""

    def __init__(self, reduction: Reduction = "mean", gather_distributed: bool = False) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.gather_distributed = gather_distributed

    def forward(
        self,
        z: Tensor,
        mu_q: Tensor,
        logvar_q: Tensor,
        mu_p: Tensor,
        logvar_p: Tensor,
        labels: Tensor,
    ) -> Tensor:
        return gaussian_mixture_kl(
            z, mu_q, logvar_q, mu_p, logvar_p, labels, self.reduction, self.gather_distributed
        )


class FeatureLabelContrastiveLoss(nn.Module):
    r"""C-GMVAE feature-label contrastive loss (eq. 5).

    .. math::

        L_{CL} = \frac{1}{|B|} \sum_{(x,y)\in B} \frac{1}{|P(y)|} \sum_{p\in P(y)}
        -\log \frac{\exp(w^f_x \cdot w^l_p / \tau)}{\sum_{t=1}^{L} \exp(w^f_x \cdot w^l_t/\tau)}

    The anchor is a sample's feature embedding; the candidates are the L label embeddings, the
    positives the sample's labels. It is a categorical cross-entropy with a multi-hot target
    spread uniformly over the positive labels.

    Args:
        temperature: τ (the authors use 1.0).
        normalize_labels: L2-normalise the label embeddings (cosine similarity). ``False``
            reproduces the authors' code, where the label embeddings are the unnormalised
            columns of the classifier weight W. The feature embeddings are always normalised
            (the authors' decoder output already is).
        reduction: ``"mean"`` over samples with ≥ 1 label, ``"sum"`` or ``"none"`` (shape (B,)).
        gather_distributed: count the anchors of every rank in the mean (DDP-equivalent).

    Call: ``loss(features, label_embeddings, labels)`` with features (B, E), label_embeddings
    (L, E) (the authors' W is (E, L): pass ``W.T``) and multi-hot labels (B, L). The authors
    stack the label-path and feature-path embeddings as 2B anchors: pass
    ``torch.cat([e_label, e_feat])`` and ``torch.cat([y, y])``.

    Example:
        >>> loss_fn = FeatureLabelContrastiveLoss(temperature=1.0)
        >>> feats, W = torch.randn(8, 16), torch.randn(5, 16)
        >>> loss = loss_fn(feats, W, torch.randint(0, 2, (8, 5)))
    """

    def __init__(
        self,
        temperature: float = 1.0,
        normalize_labels: bool = True,
        reduction: Reduction = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.normalize_labels = normalize_labels
        self.reduction = check_reduction(reduction)
        self.gather_distributed = gather_distributed

    def forward(self, features: Tensor, label_embeddings: Tensor, labels: Tensor) -> Tensor:
        check_embeddings(features, "features")
        check_embeddings(label_embeddings, "label_embeddings")
        if label_embeddings.shape[1] != features.shape[1]:
            raise ValueError(
                f"label_embeddings must have shape (num_labels, {features.shape[1]}), got "
                f"{tuple(label_embeddings.shape)}; if you hold the authors' W of shape "
                f"(dim, num_labels), pass W.T."
            )
        y = check_labels(labels, features.shape[0], num_labels=label_embeddings.shape[0],
                         what="features")
        dtype = compute_dtype(features, label_embeddings)
        world, _ = distributed_world(self.gather_distributed)
        with no_autocast(features):
            f = normalize(features, dtype)
            if self.normalize_labels:
                w = normalize(label_embeddings, dtype)
            else:
                w = label_embeddings if label_embeddings.dtype == dtype else label_embeddings.to(dtype)
            yt = y.t().to(dtype)  # (L, B): the kernel's label-major layout
            # one fused pass over the B × L logits: log-sum-exp, Σ_{p∈P(y)} logit_p and |P(y)|
            lse, pos, n_pos = sim_contrast(
                f, w, 1.0 / self.temperature, None,
                lambda j0, j1: yt if j0 == 0 and j1 == yt.shape[0] else yt[j0:j1],
                bounded=self.normalize_labels,
            )
            return reduce_loss(lse - pos / n_pos.clamp_min(1.0), n_pos.clamp_max(1.0),
                               self.reduction, world)
