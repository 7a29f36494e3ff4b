"""Does a label's attention find its object? (MulCon's attention maps on the digits canvas.)

Example:
    >>> import numpy as np
    >>> att = np.zeros((1, 1, 4)); att[0, 0, 0] = 1.0          # all mass on the top-left token
    >>> box = np.array([[0, 0, 0, 8, 8, 0]])                    # label 0 in the top-left cell
    >>> attention_localisation(att, (2, 2), [box], np.ones((1, 1), bool), (16, 16))["pointing"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["attention_localisation"]


def attention_localisation(attention: np.ndarray, grid: Sequence[int], boxes: Sequence[np.ndarray],
                           Y: np.ndarray, image_size: Sequence[int]) -> dict[str, float]:
    """How well each present label's attention (``(N, L, h·w)``, heads averaged) finds its digit.

    For every (image, present label): ``pointing`` = 1 when the most-attended token's cell
    overlaps the digit's box; ``mass`` = attention mass on tokens whose cell overlaps the box;
    ``chance_mass`` = the fraction of tokens overlapping it (the mass of a uniform attention).
    """
    h, w = int(grid[0]), int(grid[1])
    H, W = int(image_size[0]), int(image_size[1])
    sy, sx = H / h, W / w
    hits, mass, chance = [], [], []
    for i, b in enumerate(boxes):
        for c, y0, x0, y1, x1, _ in np.asarray(b).reshape(-1, 6):
            if not Y[i, c]:
                continue
            ty0, ty1 = int(np.floor(y0 / sy)), int(np.ceil(y1 / sy))
            tx0, tx1 = int(np.floor(x0 / sx)), int(np.ceil(x1 / sx))
            m = np.zeros((h, w), dtype=bool)
            m[ty0:ty1, tx0:tx1] = True
            a = attention[i, c].reshape(h, w)
            hits.append(bool(m.reshape(-1)[int(a.argmax())]))
            mass.append(float(a[m].sum() / max(a.sum(), 1e-12)))
            chance.append(float(m.mean()))
    return {"pointing": float(np.mean(hits)), "mass": float(np.mean(mass)),
            "chance_mass": float(np.mean(chance)), "n": len(hits)}
