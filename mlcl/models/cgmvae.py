"""C-GMVAE (Bai, Kong & Gomes, 2022): a Gaussian-mixture VAE with a feature–label contrastive loss.

Two presets:

``"code"`` — what the authors' public code (JunwenBai/C-GMVAE @ 6b435df0, ``model.py``) runs and
what produced the published tables:

* the label embeddings are the weight ``W`` (E×L) of ``Linear(L, E)`` (``label_lookup``), are **not**
  L2-normalised, and **double as the classifier**: ``logits = embedding @ W``;
* the decoder input is ``concat(x, z)`` (raw features beside the latent sample), the decoder is
  ``Linear(F+d, 512) – ReLU – Linear(512, E) – LeakyReLU`` and its output is L2-normalised;
* a *label path* decodes ``z_y`` = mean of the positive labels' means, a *feature path* decodes two
  reparameterised samples of ``q(z|x)`` (the mean at test time);
* loss = ``β·(BCE_label + BCE_feat1 + BCE_feat2) + 6·KL + 1·contrastive`` (β is ``--nll_coeff``
  = 0.5; the KL weight 6 and contrastive weight 1 are hard-coded); **no reconstruction term**;
* the contrastive loss has temperature 1, anchors = label-path and first feature-path embeddings;
* dropout ``p`` (the argument is called ``keep_prob`` but is the drop probability), shared by the
  feature encoder and the label encoder, none in the decoder.

``"paper"`` — what the paper's text describes (Methods, eq. 1–7, appendix architecture):

* normalised feature *and* label embeddings inside the contrastive loss (appendix eq. 13 and the
  remark under eq. 9), raw inner products in the cross-entropy (eq. 6);
* the decoder sees only the latent sample ``z`` and has two hidden layers [512, 512];
* one latent sample, feature path only (no label path is described);
* loss = ``KL + recon + α·CL + β·BCE`` (eq. 7), recon = a Gaussian likelihood of ``x`` given ``z``
  (eq. 4; the paper does not state the likelihood: we use unit variance, i.e. ½‖x − x̂‖²);
* temperature: never stated in the paper (the appendix illustration uses τ = 1/2); we keep τ = 1.

Per-dataset hyper-parameters (lr, α, β, E, dropout, batch size) follow the paper's Table 7
(:data:`TABLE7`). ``prior="unimodal"`` gives the uni-Gaussian ablation of Table 4 (the label set is
embedded as a whole and mapped to one Gaussian, as in MPVAE).

Example:
    >>> import torch
    >>> m = CGMVAE.from_preset("code", n_features=103, n_labels=14, dataset="yeast")
    >>> x, y = torch.randn(8, 103), (torch.rand(8, 14) < 0.3).float()
    >>> out = m(x, y)
    >>> sorted(out)
    ['bce', 'contrastive', 'kl', 'loss', 'recon']
    >>> m.predict(x).shape
    torch.Size([8, 14])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlcl.losses import FeatureLabelContrastiveLoss, gaussian_mixture_kl
from mlcl.models.backbones import MLP

# Paper, appendix Table 7 ("Major hyperparameters used in training"). emotions is not in the
# paper: it gets yeast's values (stated in the chapter).
TABLE7: dict[str, dict[str, Any]] = {
    "eBird": dict(lr=0.001, alpha=1.0, beta=0.5, emb_size=2048, dropout=0.5, batch_size=128),
    "bookmarks": dict(lr=0.002, alpha=1.0, beta=1.0, emb_size=2048, dropout=0.5, batch_size=128),
    "nus-vec": dict(lr=0.004, alpha=1.0, beta=0.5, emb_size=1024, dropout=0.5, batch_size=256),
    "mirflickr": dict(lr=0.001, alpha=2.0, beta=0.5, emb_size=2048, dropout=0.5, batch_size=128),
    "reuters": dict(lr=0.005, alpha=2.0, beta=1.0, emb_size=2048, dropout=0.5, batch_size=128),
    "scene": dict(lr=0.003, alpha=1.0, beta=0.5, emb_size=512, dropout=0.3, batch_size=128),
    "sider": dict(lr=0.002, alpha=1.0, beta=0.5, emb_size=512, dropout=0.5, batch_size=128),
    "yeast": dict(lr=0.002, alpha=1.0, beta=0.5, emb_size=512, dropout=0.5, batch_size=128),
    "delicious": dict(lr=0.001, alpha=1.0, beta=0.5, emb_size=2048, dropout=0.5, batch_size=128),
}
TABLE7["emotions"] = dict(TABLE7["yeast"])

# Training settings outside Table 7: the paper says 100 epochs and Adam; the code's only public
# script adds weight decay 1e-5 and cosine warm restarts (T0=50, Tmult=2, eta_min=2e-4).
TRAINING = {
    "code": dict(epochs=100, weight_decay=1e-5, scheduler="cosine_restarts",
                 scheduler_kwargs={"T_0": 50, "T_mult": 2, "eta_min": 2e-4}),
    "paper": dict(epochs=100, weight_decay=0.0, scheduler=None, scheduler_kwargs={}),
}


@dataclass(frozen=True)
class CGMVAEConfig:
    n_features: int
    n_labels: int
    latent_dim: int = 64
    emb_size: int = 2048
    dropout: float = 0.5
    encoder_hidden: tuple[int, ...] = (256, 512, 256)
    label_hidden: tuple[int, ...] = (512, 256)
    decoder_hidden: tuple[int, ...] = (512,)
    decoder_input: str = "concat"  # "concat" (x, z) | "latent" (z only)
    normalize_decoder: bool = True  # L2-normalise the decoder output before the classifier
    label_path: bool = True  # decode z_y and train it with BCE + contrastive (code only)
    n_samples: int = 2  # reparameterised samples of q(z|x) in the feature path
    temperature: float = 1.0
    normalize_label_embeddings: bool = False  # inside the contrastive loss
    kl_weight: float = 6.0
    contrastive_weight: float = 1.0  # α
    bce_weight: float = 0.5  # β
    recon_weight: float = 0.0
    prior: str = "mixture"  # "mixture" (C-GMVAE) | "unimodal" (Table 4 ablation)


PRESETS: dict[str, dict[str, Any]] = {
    "code": dict(decoder_hidden=(512,), decoder_input="concat", normalize_decoder=True, label_path=True,
                 n_samples=2, temperature=1.0, normalize_label_embeddings=False, kl_weight=6.0,
                 contrastive_weight=1.0, recon_weight=0.0),
    "paper": dict(decoder_hidden=(512, 512), decoder_input="latent", normalize_decoder=False, label_path=False,
                  n_samples=1, temperature=1.0, normalize_label_embeddings=True, kl_weight=1.0,
                  contrastive_weight=1.0, recon_weight=1.0),
}


def preset_config(preset: str, n_features: int, n_labels: int, dataset: str | None = None,
                  **overrides: Any) -> CGMVAEConfig:
    """The config of a preset, with Table 7's E, dropout, α (paper only) and β for ``dataset``."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    kw: dict[str, Any] = dict(PRESETS[preset])
    if dataset is not None:
        t7 = TABLE7[dataset]
        kw.update(emb_size=t7["emb_size"], dropout=t7["dropout"], bce_weight=t7["beta"])
        if preset == "paper":  # the code hard-codes the contrastive weight to 1
            kw["contrastive_weight"] = t7["alpha"]
    kw.update(overrides)
    return CGMVAEConfig(n_features=n_features, n_labels=n_labels, **kw)


class CGMVAE(nn.Module):
    """C-GMVAE. ``forward(x, y)`` → dict of losses (``loss`` = weighted total); ``predict(x)`` →
    label probabilities in [0, 1]. See the module docstring for the two presets."""

    def __init__(self, config: CGMVAEConfig) -> None:
        super().__init__()
        c = self.config = config
        F_, L, E, d = c.n_features, c.n_labels, c.emb_size, c.latent_dim
        # feature encoder q(z|x): F → 256 → 512 → 256 (ReLU, dropout) → (μ, log σ²)
        self.fx = MLP(F_, c.encoder_hidden, dropout=c.dropout)
        self.fx_mu, self.fx_logvar = nn.Linear(self.fx.out_dim, d), nn.Linear(self.fx.out_dim, d)
        # label embeddings W = label_lookup.weight (E×L): column c is label c; also the classifier
        self.label_lookup = nn.Linear(L, E)
        self.drop = nn.Dropout(c.dropout)
        # label encoder: one Gaussian per label (mixture) or per label set (unimodal)
        self.fe = MLP(E, c.label_hidden, dropout=c.dropout)
        self.fe_mu, self.fe_logvar = nn.Linear(self.fe.out_dim, d), nn.Linear(self.fe.out_dim, d)
        # decoder: (x, z) or z → E
        dec_in = d + (F_ if c.decoder_input == "concat" else 0)
        self.fd = MLP(dec_in, c.decoder_hidden, E)
        self.x_decoder = MLP(d, (256,), F_) if c.recon_weight > 0 else None
        self.contrastive = FeatureLabelContrastiveLoss(temperature=c.temperature,
                                                       normalize_labels=c.normalize_label_embeddings)

    @classmethod
    def from_preset(cls, preset: str, n_features: int, n_labels: int, dataset: str | None = None,
                    **overrides: Any) -> CGMVAE:
        return cls(preset_config(preset, n_features, n_labels, dataset, **overrides))

    # -- pieces -----------------------------------------------------------------------------------
    @property
    def label_embeddings(self) -> torch.Tensor:
        """(L, E): row c is label c's embedding (column c of ``label_lookup.weight``)."""
        return self.label_lookup.weight.t()

    def label_gaussians(self, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixture prior: per-label (μ_c, log σ²_c), each (L, d). Unimodal: per-row (B, d) from ``y``."""
        if self.config.prior == "mixture":
            inp = torch.eye(self.config.n_labels, device=self.label_lookup.weight.device)
        else:
            inp = y / y.sum(1, keepdim=True).clamp_min(1.0)
        h = self.fe(self.drop(F.relu(self.label_lookup(inp))))
        return self.fe_mu(h), self.fe_logvar(h)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fx(x)
        return self.fx_mu(h), self.fx_logvar(h)

    def decode(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([x, z], 1) if self.config.decoder_input == "concat" else z
        out = self.fd(inp)
        if self.config.normalize_decoder:
            out = F.normalize(F.leaky_relu(out), dim=1)
        return out

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return emb @ self.label_lookup.weight  # (B, E) @ (E, L)

    @staticmethod
    def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum over labels, mean over the batch (as in the code's ``compute_BCE_and_RL_loss``)."""
        return F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="none").sum(1).mean()

    # -- training / inference ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        y = y.float()
        mu_x, logvar_x = self.encode(x)
        mu_p, logvar_p = self.label_gaussians(y)
        zero = x.new_zeros(())
        # feature path: n_samples reparameterised samples of q(z|x) (the mean in eval mode)
        feats = []
        for _ in range(c.n_samples):
            z = mu_x + torch.randn_like(mu_x) * (0.5 * logvar_x).exp() if self.training else mu_x
            feats.append(self.decode(x, z))
        bce = sum(self._bce(self.logits(f), y) for f in feats)
        anchors = [feats[0]]
        # label path (code): z_y = mean of the positive labels' means, decoded with the same decoder
        if c.label_path:
            if c.prior == "mixture":
                z_y = (y @ mu_p) / y.sum(1, keepdim=True).clamp_min(1.0)
            else:
                z_y = mu_p
            label_emb = self.decode(x, z_y)
            bce = bce + self._bce(self.logits(label_emb), y)
            anchors.insert(0, label_emb)
        # KL(q(z|x) || p(z|y)) by one fresh sample (eq. 3)
        if c.kl_weight > 0:
            z0 = mu_x + torch.randn_like(mu_x) * (0.5 * logvar_x).exp()
            if c.prior == "mixture":
                kl = gaussian_mixture_kl(z0.float(), mu_x.float(), logvar_x.float(), mu_p.float(),
                                         logvar_p.float(), y)
            else:  # one "component" per row: the row's own Gaussian
                kl = _unimodal_kl_estimate(z0.float(), mu_x.float(), logvar_x.float(), mu_p.float(),
                                           logvar_p.float())
        else:
            kl = zero
        # contrastive loss: anchors = decoded embeddings, candidates = the L label embeddings
        if c.contrastive_weight > 0:
            cl = self.contrastive(torch.cat(anchors), self.label_embeddings, y.repeat(len(anchors), 1))
        else:
            cl = zero
        recon = zero
        if self.x_decoder is not None:
            z_r = mu_x + torch.randn_like(mu_x) * (0.5 * logvar_x).exp() if self.training else mu_x
            recon = 0.5 * (self.x_decoder(z_r) - x).pow(2).sum(1).mean()
        loss = c.bce_weight * bce + c.kl_weight * kl + c.contrastive_weight * cl + c.recon_weight * recon
        return {"loss": loss, "bce": bce.detach(), "kl": kl.detach(), "contrastive": cl.detach(),
                "recon": recon.detach()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """P(label | x) = sigmoid(feature embedding @ W), with z = μ(x). Runs in eval mode."""
        was_training = self.training
        self.eval()
        dev = self.label_lookup.weight.device
        x = torch.as_tensor(x, dtype=torch.float32)
        outs = [torch.sigmoid(self.logits(self.decode(xb.to(dev), self.encode(xb.to(dev))[0]))).cpu()
                for xb in x.split(batch_size)]
        self.train(was_training)
        return torch.cat(outs)

    @torch.no_grad()
    def latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x) in eval mode, on CPU."""
        was_training = self.training
        self.eval()
        mu, logvar = self.encode(torch.as_tensor(x, dtype=torch.float32).to(self.label_lookup.weight.device))
        self.train(was_training)
        return mu.cpu(), logvar.cpu()

    def describe(self) -> dict[str, Any]:
        return asdict(self.config)

    def with_config(self, **changes: Any) -> CGMVAE:
        return CGMVAE(replace(self.config, **changes))


def _unimodal_kl_estimate(z, mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """log q(z|x) − log p(z|y) for one Gaussian prior per row (constants cancel), batch mean."""
    def log_normal(v, m, lv):
        return (-0.5 * (lv + (v - m).pow(2) / lv.exp())).sum(-1)

    return (log_normal(z, mu_q, logvar_q) - log_normal(z, mu_p, logvar_p)).mean()


# ------------------------------------------------------------------------------------------------
# The chapter's MLP + BCE baseline (trained by :func:`mlcl.training.cgmvae.fit_baseline`)
class MLPBCE(nn.Module):
    """C-GMVAE's feature encoder (F → 256 → 512 → 256, ReLU, dropout) + Linear(256, L), trained
    with BCE (summed over labels): the same capacity without latent space or contrastive loss."""

    def __init__(self, n_features: int, n_labels: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = MLP(n_features, (256, 512, 256), n_labels, dropout=dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": CGMVAE._bce(self.net(x), y)}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """P(label | x), eval mode, on the CPU."""
        was_training = self.training
        self.eval()
        p = torch.sigmoid(self.net(torch.as_tensor(x, dtype=torch.float32, device=next(self.parameters()).device))).cpu()
        self.train(was_training)
        return p
