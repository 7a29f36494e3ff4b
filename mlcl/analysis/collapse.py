r"""Neural collapse of label-level embeddings (ABALONE Appendix F, after Graf et al., 2021).

Contrastive losses with label-level positives can drive every embedding of a label to one point
(collapse) and the label means to a regular simplex; these measures say how far a trained
embedding has gone, and whether it still depends on the input at all.

Example:
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(20, 3, 4)); Y = np.ones((20, 3), bool)
    >>> round(collapse_measures(z, Y)["simplex_cos"], 3)
    -0.5
"""

from __future__ import annotations

import numpy as np

__all__ = ["collapse_measures"]


def collapse_measures(z: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    r"""Neural-collapse measures of label-level embeddings ``z (N, L, d)`` under labels ``Y``.

    Over the **active** pairs ``{z_ij : y_ij = 1}`` (the only rows LLCL sees), with label means
    ``μ_j`` and global mean ``μ``:

    * ``within_total`` = Σ_j Σ_{i: y_ij=1} ‖z_ij − μ_j‖² / Σ_{(i,j) active} ‖z_ij − μ‖²
      (0 = every label collapsed to a point);
    * ``mean_cos`` / ``max_cos_dev``: mean pairwise cosine of the (centred at the origin, i.e. raw)
      label means and the largest |cos − (−1/(L−1))| (a regular simplex centred at the origin has
      every pairwise cosine −1/(L−1));
    * ``mean_norm``: mean ‖μ_j‖ (1 when each label is a single point on the sphere);
    * ``input_dependence`` = Σ_j Σ_i ‖z_ij − z̄_j‖² / Σ_{i,j} ‖z_ij − z̄‖² over **all** pairs, active
      or not (how much z_·j still varies with the image);
    * ``active_inactive_gap``: mean over labels of ‖mean of active z_·j − mean of inactive z_·j‖
      (≈ 0 when the embedding no longer depends on whether the label is present).
    """
    z = np.asarray(z, dtype=np.float64)
    Y = np.asarray(Y).astype(bool)
    N, L, d = z.shape
    act = [z[Y[:, j], j] for j in range(L)]
    present = [j for j in range(L) if len(act[j]) > 0]
    mus = np.stack([act[j].mean(0) for j in present])
    allact = np.concatenate([act[j] for j in present])
    within = sum(((act[j] - act[j].mean(0)) ** 2).sum() for j in present)
    total = ((allact - allact.mean(0)) ** 2).sum()
    mn = mus / np.maximum(np.linalg.norm(mus, axis=1, keepdims=True), 1e-12)
    cos = mn @ mn.T
    off = cos[~np.eye(len(present), dtype=bool)]
    target = -1.0 / (L - 1)
    zbar_j = z.mean(0, keepdims=True)
    dep = ((z - zbar_j) ** 2).sum() / max(((z - z.reshape(-1, d).mean(0)) ** 2).sum(), 1e-12)
    gaps = [np.linalg.norm(z[Y[:, j], j].mean(0) - z[~Y[:, j], j].mean(0))
            for j in present if (~Y[:, j]).any()]
    return {
        "within_total": float(within / max(total, 1e-12)),
        "mean_cos": float(off.mean()) if off.size else float("nan"),
        "max_cos_dev": float(np.abs(off - target).max()) if off.size else float("nan"),
        "simplex_cos": float(target),
        "mean_norm": float(np.linalg.norm(mus, axis=1).mean()),
        "input_dependence": float(dep),
        "active_inactive_gap": float(np.mean(gaps)) if gaps else float("nan"),
    }
