r"""Comparing runs with each other and with a paper: the chapters' shared table helpers.

Result records are the long rows of :mod:`mlcl.results` (``dataset, method, protocol, metric,
seed, value``). Two comparisons recur in every chapter:

* ours next to the paper: mean and standard deviation over seeds (sample std, ``ddof=1``) of
  one protocol, the paper's value and :math:`\Delta = \overline{x} - x_{paper}`;
* two methods paired by seed: :math:`d_s = x_{a,s} - x_{b,s}`, its mean and how many seeds
  favour ``a`` (a paired comparison removes the seed-to-seed variation both methods share).

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"dataset": "d", "method": ["a", "a", "b", "b"], "protocol": "paper",
    ...                    "metric": "f1", "seed": [0, 1, 0, 1], "value": [0.5, 0.75, 0.25, 1.0]})
    >>> paired_differences(df, "a", "b")[["mean diff", "wins"]].values.tolist()
    [[0.0, '1/2']]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["load_with_validation", "paired_differences", "paper_comparison"]


def load_with_validation(name: str, fraction: float = 0.2, seed: int = 0, **kw: Any) -> Any:
    """``load_dataset(name, **kw)`` with a validation split: the data set's own when it has one,
    else a seeded random ``fraction`` of the training part (the chapters' convention)."""
    from mlcl.data import load_dataset

    ds = load_dataset(name, **kw)
    return ds if ds.validation is not None else ds.with_validation(fraction, seed=seed)


def paper_comparison(ours: pd.DataFrame, paper: pd.DataFrame, protocol: str,
                     keys: Sequence[str] = ("dataset", "method", "metric")) -> pd.DataFrame:
    """One row per ``keys``: ``mean``, ``std`` (``ddof=1``, NaN for one seed) and ``n`` of our
    ``protocol`` records, the paper's ``value`` as ``paper`` (NaN where it has none) and ``Δ``.

    ``paper`` is e.g. ``mlcl.results.paper_results(paper="MulSupCon")`` filtered to the rows to
    compare; the protocol is named by the caller's table, never implied.
    """
    keys = list(keys)
    sel = ours[ours.protocol == protocol]
    if sel.empty:
        raise ValueError(f"no records with protocol {protocol!r}; found {sorted(ours.protocol.unique())}")
    m = sel.groupby(keys)["value"].agg(mean="mean", std="std", n="count").reset_index()
    p = paper[keys + ["value"]].rename(columns={"value": "paper"}).drop_duplicates(keys)
    m = m.merge(p, on=keys, how="left")
    m["Δ"] = m["mean"] - m["paper"]
    return m


def paired_differences(df: pd.DataFrame, a: str, b: str, by: Sequence[str] = ("dataset", "metric"),
                       protocol: str | None = None) -> pd.DataFrame:
    """Per-seed differences ``a − b`` (methods), grouped by ``by``: ``mean diff``, ``wins`` (seeds
    where a > b, as ``"k/n"``) and ``per seed`` (the differences, by seed). Seeds present for
    only one of the two methods are left out."""
    sel = df if protocol is None else df[df.protocol == protocol]
    piv = sel[sel.method.isin([a, b])].pivot_table(index=[*by, "seed"], columns="method", values="value")
    for m in (a, b):
        if m not in piv.columns:
            raise ValueError(f"no records for method {m!r}; found {sorted(sel.method.unique())}")
    d = (piv[a] - piv[b]).dropna().groupby(list(by))
    return pd.DataFrame({"mean diff": d.mean(), "wins": d.apply(lambda s: f"{(s > 0).sum()}/{len(s)}"),
                         "per seed": d.apply(lambda s: tuple(float(x) for x in s))})
