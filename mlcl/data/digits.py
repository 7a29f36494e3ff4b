"""Multi-label digits: an offline stand-in for MS-COCO built from scikit-learn's 8×8 digits.

Each image is a ``canvas × canvas`` grey canvas holding 1–``max_digits`` different digits
(scikit-learn's bundled ``load_digits``, 1,797 images of 8×8, optionally up-scaled), placed at
random non-overlapping positions (``layout="random"``) or in the cells of a grid
(``layout="grid"``). Labels are the digits present (10 labels, ``"0"``..``"9"``).

What makes it COCO-like:

* **Long tail**: the first digit is drawn with probability ∝ ``rank^-alpha`` over
  ``class_order`` (default ``0`` most frequent … ``9`` rarest); with the default ``alpha=2``
  digit 0 is in ~78 % of the images and the rarest digits in ~5 % (a ~17× ratio; group
  partners are lifted by their co-occurrence, so the order is not strictly 0 … 9).
* **Label correlation**: every further digit comes, with probability ``p_group``, from a
  *co-occurrence group* of a digit already present (default groups ``(1, 7)``, ``(3, 5, 8)``,
  ``(4, 9)``: visually similar digits that tend to appear together, like "fork" and "knife"),
  otherwise from the long-tailed prior. Rare digits thus mostly appear next to their partners.
* **Unseen instances**: train, validation and test draw their 8×8 digits from disjoint pools of
  scikit-learn's images (``pool_fractions``), so test digits were never seen in training.
* **Ground-truth positions**: ``split.meta["boxes"][i]`` is an ``(k, 6)`` int array of
  ``(label, y0, x0, y1, x1, sklearn_index)`` rows (``y1``/``x1`` exclusive) — check attention
  maps against them with :func:`box_mask`.
* Optional zero-label (blank) images (``p_empty``) and Gaussian pixel noise (``noise``).

``X`` is float32 ``(N, 1, canvas, canvas)`` in [0, 1] (plus noise). Everything is
deterministic given ``seed``. Defaults (2,000 / 500 / 1,000 images of 32×32) build in about
a second (most of it importing scikit-learn) and train on a CPU in seconds.

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("digits", n_train=200, n_validation=50, n_test=100, seed=0)
>>> ds.train.X.shape, ds.train.Y.shape
((200, 1, 32, 32), (200, 10))
>>> ds.train.meta["boxes"][0].shape[1]
6
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .base import MultiLabelDataset, Provenance, Split
from .registry import DatasetInfo, register

DEFAULT_GROUPS: tuple[tuple[int, ...], ...] = ((1, 7), (3, 5, 8), (4, 9))
LICENCE = ("scikit-learn's copy of the UCI optdigits test set (CC BY 4.0, UCI ML repository); "
           "scikit-learn is BSD-3.")


@lru_cache(maxsize=1)
def _sk_digits() -> tuple[np.ndarray, np.ndarray, str, str]:
    from sklearn import __version__
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    h = hashlib.sha256(np.ascontiguousarray(d.images).tobytes()).hexdigest()
    return images, d.target.astype(np.int64), h, __version__


def _pools(target: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Per split, per class: indices of the scikit-learn digits that split may use."""
    fr = np.asarray(fractions, dtype=np.float64)
    fr = fr / fr.sum()
    out: list[list[np.ndarray]] = [[] for _ in fr]
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(target == c))
        cuts = np.round(np.cumsum(fr)[:-1] * len(idx)).astype(int)
        for s, part in enumerate(np.split(idx, cuts)):
            out[s].append(part)
    return out


def sample_labelsets(n: int, rng: np.random.Generator, alpha: float = 2.0,
                     class_order: Sequence[int] = tuple(range(10)),
                     groups: Sequence[Sequence[int]] = DEFAULT_GROUPS, p_group: float = 0.75,
                     n_digits_probs: Sequence[float] = (0.3, 0.35, 0.2, 0.15),
                     p_empty: float = 0.0) -> list[list[int]]:
    """Draw ``n`` label sets (lists of distinct digits, in placement order).

    Example
    -------
    >>> sets = sample_labelsets(5, np.random.default_rng(0))
    >>> all(1 <= len(s) <= 4 and len(set(s)) == len(s) for s in sets)
    True
    """
    order = list(class_order)
    if sorted(order) != list(range(10)):
        raise ValueError("class_order must be a permutation of 0..9")
    prior = np.zeros(10)
    prior[order] = np.arange(1, 11, dtype=np.float64) ** (-float(alpha))
    prior /= prior.sum()
    group_of: dict[int, list[int]] = {c: [] for c in range(10)}
    for g in groups:
        for c in g:
            group_of[int(c)] = sorted(set(group_of[int(c)]) | {int(x) for x in g if x != c})
    kp = np.asarray(n_digits_probs, dtype=np.float64)
    kp = kp / kp.sum()
    sets: list[list[int]] = []
    for _ in range(n):
        if p_empty > 0 and rng.random() < p_empty:
            sets.append([])
            continue
        k = int(rng.choice(len(kp), p=kp)) + 1
        chosen = [int(rng.choice(10, p=prior))]
        while len(chosen) < k:
            partners = sorted({p for c in chosen for p in group_of[c]} - set(chosen))
            if partners and rng.random() < p_group:
                w = prior[partners] / prior[partners].sum()
                chosen.append(int(rng.choice(partners, p=w)))
            else:
                w = prior.copy()
                w[chosen] = 0.0
                chosen.append(int(rng.choice(10, p=w / w.sum())))
        sets.append(chosen)
    return sets


def _place(k: int, canvas: int, size: int, layout: str, grid: tuple[int, int],
           rng: np.random.Generator) -> list[tuple[int, int]]:
    if layout == "grid":
        rows, cols = grid
        cells = rng.choice(rows * cols, size=k, replace=False)
        return [(int(c // cols) * size, int(c % cols) * size) for c in cells]
    out: list[tuple[int, int]] = []
    for _ in range(1000):
        if len(out) == k:
            break
        y, x = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
        if all(abs(y - y2) >= size or abs(x - x2) >= size for y2, x2 in out):
            out.append((y, x))
    if len(out) < k:
        raise ValueError(f"cannot place {k} digits of {size}px on a {canvas}px canvas")
    return out


def make_digits_split(n: int, pool: list[np.ndarray], rng: np.random.Generator, *,
                      canvas: int = 32, scale: int = 1, layout: str = "random",
                      grid: tuple[int, int] = (2, 2), noise: float = 0.0,
                      name: str = "train", **label_options: object) -> Split:
    """One split of ``n`` images from the per-class index ``pool`` (see :func:`load_digits_ml`).

    Example
    -------
    >>> imgs, target, _, _ = _sk_digits()
    >>> pool = [np.flatnonzero(target == c) for c in range(10)]
    >>> s = make_digits_split(4, pool, np.random.default_rng(0))
    >>> s.X.shape
    (4, 1, 32, 32)
    """
    images, _, _, _ = _sk_digits()
    size = 8 * scale
    if layout == "grid":
        canvas = size * max(grid)
        max_k = grid[0] * grid[1]
    else:
        max_k = 10**9
    sets = sample_labelsets(n, rng, **label_options)  # type: ignore[arg-type]
    X = np.zeros((n, 1, canvas, canvas), dtype=np.float32)
    Y = np.zeros((n, 10), dtype=np.uint8)
    boxes: list[np.ndarray] = []
    for i, labels in enumerate(sets):
        labels = labels[:max_k]
        pos = _place(len(labels), canvas, size, layout, grid, rng)
        b = np.zeros((len(labels), 6), dtype=np.int64)
        for j, (c, (y, x)) in enumerate(zip(labels, pos)):
            src = int(rng.choice(pool[c]))
            img = images[src]
            if scale > 1:
                img = np.kron(img, np.ones((scale, scale), np.float32))
            X[i, 0, y:y + size, x:x + size] = np.maximum(X[i, 0, y:y + size, x:x + size], img)
            Y[i, c] = 1
            b[j] = (c, y, x, y + size, x + size, src)
        boxes.append(b)
    if noise > 0:
        X += rng.normal(0.0, noise, size=X.shape).astype(np.float32)
    return Split(name, X, Y, {"boxes": boxes})


def box_mask(boxes: np.ndarray, label: int, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the pixels covered by digit ``label`` (all its boxes).

    Example
    -------
    >>> int(box_mask(np.array([[3, 0, 0, 8, 8, 0]]), 3, (32, 32)).sum())
    64
    """
    m = np.zeros(shape, dtype=bool)
    for c, y0, x0, y1, x1, _ in np.asarray(boxes).reshape(-1, 6):
        if c == label:
            m[y0:y1, x0:x1] = True
    return m


def load_digits_ml(root: Path | None = None, *, n_train: int = 2000, n_validation: int = 500,
                   n_test: int = 1000, seed: int = 0, canvas: int = 32, scale: int = 1,
                   layout: str = "random", grid: tuple[int, int] = (2, 2), max_digits: int = 4,
                   n_digits_probs: Sequence[float] | None = None, alpha: float = 2.0,
                   class_order: Sequence[int] = tuple(range(10)),
                   groups: Sequence[Sequence[int]] = DEFAULT_GROUPS, p_group: float = 0.75,
                   p_empty: float = 0.0, noise: float = 0.0,
                   pool_fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> MultiLabelDataset:
    """Build the multi-label digits dataset (see the module docstring for every option).

    ``n_digits_probs`` (default ``(0.3, 0.35, 0.2, 0.15)`` truncated to ``max_digits``) gives
    the probability of 1, 2, ... digits per image. ``alpha=0`` and ``p_group=0`` give uniform,
    independent labels (the ablation "no long tail, no correlation"). ``layout="grid"`` uses a
    ``grid`` of ``8*scale`` cells (2×2 → 16×16 canvas, ``canvas`` ignored).

    Example
    -------
    >>> ds = load_digits_ml(n_train=100, n_validation=0, n_test=50, layout="grid", grid=(2, 2))
    >>> ds.train.X.shape, ds.validation is None
    ((100, 1, 16, 16), True)
    """
    if layout not in ("random", "grid"):
        raise ValueError("layout must be 'random' or 'grid'")
    if n_digits_probs is None:
        n_digits_probs = (0.3, 0.35, 0.2, 0.15)[:max_digits] + (0.1,) * max(0, max_digits - 4)
    n_digits_probs = tuple(n_digits_probs)[:max_digits]
    _, target, sk_sha, sk_ver = _sk_digits()
    rng = np.random.default_rng(seed)
    pools = _pools(target, pool_fractions, rng)
    opts = dict(alpha=alpha, class_order=tuple(class_order), groups=tuple(tuple(g) for g in groups),
                p_group=p_group, n_digits_probs=n_digits_probs, p_empty=p_empty)
    geo = dict(canvas=canvas, scale=scale, layout=layout, grid=tuple(grid), noise=noise)
    # one child generator per split: changing n_test does not change the training images
    seeds = np.random.SeedSequence(seed).spawn(3)
    splits = {}
    for k, (name, n) in enumerate((("train", n_train), ("validation", n_validation), ("test", n_test))):
        if name == "validation" and n == 0:
            splits[name] = None
            continue
        splits[name] = make_digits_split(n, pools[k], np.random.default_rng(seeds[k]), name=name,
                                         **geo, **opts)  # type: ignore[arg-type]
    config = dict(n_train=n_train, n_validation=n_validation, n_test=n_test, seed=seed,
                  pool_fractions=tuple(pool_fractions), **geo, **opts)
    cfg_json = json.dumps(config, sort_keys=True, default=list)
    prov = Provenance(
        source="generated from scikit-learn load_digits (1797 8x8 images)",
        version=f"scikit-learn=={sk_ver}; mlcl digits v1",
        checksum=f"sha256(sklearn digits):{sk_sha}; config sha256:"
                 f"{hashlib.sha256(cfg_json.encode()).hexdigest()[:16]}",
        licence=LICENCE, url="https://archive.ics.uci.edu/dataset/80", notes=cfg_json)
    return MultiLabelDataset("digits", splits["train"], splits["test"], splits["validation"],
                             [str(c) for c in range(10)], None, prov, "image",
                             {"config": config})


register(DatasetInfo(
    "digits", lambda root, **kw: load_digits_ml(root, **kw),
    "generated: scikit-learn's bundled 8x8 digits on a canvas (offline MS-COCO stand-in)", "image",
    lambda root: True, "built in (scikit-learn)", LICENCE, False, "MulCon, MulSupCon (stand-in)"))
