"""Contrastive and BCE-family losses of the four papers (C-GMVAE, MulSupCon, MulCon, ABALONE).

Every loss is a small ``torch.nn.Module``. The conventions they share (normalisation, float32
logits, self-pairs, anchors without positives, zero-label rows, reductions, distributed gather)
are documented in :mod:`mlcl.losses._common` and in the book's "The losses" page.

=================================  ==========================================================
``FeatureLabelContrastiveLoss``    C-GMVAE eq. 5 (feature anchor, label-embedding candidates)
``gaussian_mixture_kl``            C-GMVAE eq. 3 (single-sample KL to the label mixture prior)
``SupConLoss``                     MulSupCon eq. 1 with ALL / ANY positives
``MulSupConLoss``                  MulSupCon eq. 4–6, computed through eq. 7's per-label sums
``LabelLevelContrastiveLoss``      MulCon LLCL, eq. 8–9
``JaccardSupConLoss``              ABALONE L_Base (Jaccard pair weights)
``MSCLoss``                        ABALONE L_MSC, eq. 1–5, as the authors' code computes it
``FocalLoss``, ``AsymmetricLoss``  BCE-family baselines of ABALONE
``ReferenceLabels``                a queue's labels with their per-label statistics
=================================  ==========================================================
"""

from ._common import ReferenceLabels
from .bce import AsymmetricLoss, FocalLoss
from .cgmvae import FeatureLabelContrastiveLoss, GaussianMixtureKL, gaussian_mixture_kl
from .jaccard import JaccardSupConLoss
from .msc import MSCLoss
from .mulcon import LabelLevelContrastiveLoss
from .mulsupcon import MulSupConLoss
from .supcon import SupConLoss

__all__ = [
    "AsymmetricLoss",
    "FeatureLabelContrastiveLoss",
    "FocalLoss",
    "GaussianMixtureKL",
    "JaccardSupConLoss",
    "LabelLevelContrastiveLoss",
    "MSCLoss",
    "MulSupConLoss",
    "ReferenceLabels",
    "SupConLoss",
    "gaussian_mixture_kl",
]
