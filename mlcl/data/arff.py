"""A small ARFF reader for multi-label (Mulan / MEKA) files: dense and sparse data.

Labels are the attributes given by name (``label_names=``), by count (``n_labels=``; positive =
last ``n`` attributes, Mulan's convention), or read from a MEKA relation ``'name: -C 6'``
(first 6 attributes) / ``'name: -C -6'`` (last 6).

Example
-------
>>> from mlcl.data.arff import read_arff
>>> a = read_arff("../shared/data/mulan/scene-train.arff")  # doctest: +SKIP
>>> a.X.shape, a.Y.shape, a.label_names[:2]  # doctest: +SKIP
((1211, 294), (1211, 6), ['Beach', 'Sunset'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_ATTR = re.compile(r"@attribute\s+('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)\s+(.+)$", re.I)
_MEKA_C = re.compile(r"-C\s+(-?\d+)")


@dataclass
class ArffData:
    """Parsed multi-label ARFF: features ``X`` (float32), labels ``Y`` (uint8) and names."""

    relation: str
    X: np.ndarray
    Y: np.ndarray
    feature_names: list[str]
    label_names: list[str]
    sparse: bool


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1].replace("\\'", "'").replace('\\"', '"')
    return s


def _split_values(line: str) -> list[str]:
    if "'" not in line and '"' not in line:
        return line.split(",")
    out, cur, q = [], [], ""
    for ch in line:
        if q:
            if ch == q:
                q = ""
            else:
                cur.append(ch)
        elif ch in "'\"":
            q = ch
        elif ch == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def sniff_text_file(path: str | Path, kind: str) -> None:
    """Raise a ``ValueError`` naming ``path`` when it is empty, binary or an HTML page.

    Catches the usual wrong files (a failed download saved as an error page, a compressed file
    not decompressed) before a parser produces a misleading message.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.arff"); _ = open(p, "w").write("<!DOCTYPE html>")
    >>> sniff_text_file(p, "ARFF")
    Traceback (most recent call last):
    ...
    ValueError: ...x.arff is an HTML page, not the expected ARFF file (a failed download saved as the file?)
    """
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(4096)
    if not head:
        raise ValueError(f"{p} is empty (0 bytes), not the expected {kind} file")
    if head.startswith((b"\xfd7zXZ", b"\x1f\x8b", b"BZh", b"PK\x03\x04")):
        raise ValueError(f"{p} is compressed, not the expected {kind} text file: decompress it first")
    if b"\x00" in head:
        raise ValueError(f"{p} is a binary file, not the expected {kind} text file")
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html")) or b"<html" in low[:512]:
        raise ValueError(f"{p} is an HTML page, not the expected {kind} file (a failed "
                         "download saved as the file?)")


def read_arff(path: str | Path, n_labels: int | None = None,
              label_names: list[str] | None = None, *, allow_nonfinite: bool = False,
              expected_rows: int | None = None, expected_features: int | None = None) -> ArffData:
    """Read a dense or sparse multi-label ARFF file, checking what it reads.

    Numeric attributes become floats; nominal attributes become their value when numeric
    (``{0,1}``) or their index in the declared list otherwise. Label attributes must be 0/1.
    Missing (``?``) or non-finite (``nan``, ``inf``) features are an error unless
    ``allow_nonfinite=True`` (then ``?`` → NaN). The file must have ``@attribute`` lines, an
    ``@data`` line and at least one row; ``expected_rows`` / ``expected_features`` (the known
    datasets pass them) catch a file cut at a line boundary or with its data doubled. Every error
    names the file (and the line).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.arff")
    >>> _ = open(p, "w").write("@relation 't: -C -2'\\n@attribute a numeric\\n@attribute b numeric\\n"
    ...     "@attribute y1 {0,1}\\n@attribute y2 {0,1}\\n@data\\n{0 1.5,3 1}\\n2,3,1,0\\n")
    >>> d = read_arff(p)
    >>> d.X.tolist(), d.Y.tolist(), d.label_names
    ([[1.5, 0.0], [2.0, 3.0]], [[0, 1], [1, 0]], ['y1', 'y2'])
    >>> read_arff(p, expected_rows=3)
    Traceback (most recent call last):
    ...
    ValueError: ...t.arff has 2 data rows, expected 3 (file cut short, or data section doubled?)
    """
    path = Path(path)
    sniff_text_file(path, "ARFF")
    relation = ""
    names: list[str] = []
    nominal: list[list[str] | None] = []
    rows: list[list[float]] = []
    sparse_seen = False
    in_data = False
    lookup: list[dict[str, float] | None] = []
    n_attr = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line[0] == "%":
                continue
            if line[0] == "@":
                low = line.lower()
                if in_data:
                    raise ValueError(f"{path}, line {lineno}: {line.split()[0]!r} inside the @data "
                                     "section (two files concatenated?)")
                if low.startswith("@relation"):
                    relation = _unquote(line[9:].strip())
                elif low.startswith("@attribute"):
                    m = _ATTR.match(line)
                    if m is None:
                        raise ValueError(f"{path}, line {lineno}: cannot parse {line!r}")
                    names.append(_unquote(m.group(1)))
                    t = m.group(2).strip()
                    if t.startswith("{"):
                        nominal.append([_unquote(v) for v in _split_values(t.strip("{} \t"))])
                    else:
                        nominal.append(None)
                elif low.startswith("@data"):
                    if not names:
                        raise ValueError(f"{path}: @data before any @attribute line")
                    in_data = True
                    lookup = [_nominal_map(v) for v in nominal]
                    n_attr = len(names)
                continue
            if not in_data:
                raise ValueError(f"{path}, line {lineno}: unexpected text in the header: "
                                 f"{line[:60]!r} (not an ARFF file?)")
            try:
                if line[0] == "{":
                    sparse_seen = True
                    row = [0.0] * n_attr
                    for i, m in enumerate(lookup):  # omitted nominal = first declared value
                        if m is not None:
                            row[i] = m[nominal[i][0]]  # type: ignore[index]
                    if "}" not in line:
                        raise ValueError("sparse row without closing '}' (file cut?)")
                    body = line[1:line.rindex("}")].strip()
                    if body:
                        for item in _split_values(body):
                            k, v = item.strip().split(None, 1)
                            j = int(k)
                            if not 0 <= j < n_attr:
                                raise ValueError(f"attribute index {j} out of range 0..{n_attr - 1}")
                            row[j] = _convert(v.strip(), lookup[j])
                    rows.append(row)
                else:
                    vals = _split_values(line)
                    if len(vals) != n_attr:
                        raise ValueError(f"{len(vals)} values, expected {n_attr} (line cut?)")
                    rows.append([_convert(v.strip(), lookup[j]) for j, v in enumerate(vals)])
            except ValueError as e:
                raise ValueError(f"{path}, line {lineno} (data row {len(rows)}): {e}") from None
    if not names:
        raise ValueError(f"{path}: no @attribute lines: not an ARFF file")
    if not in_data:
        raise ValueError(f"{path}: no @data line: the header is cut short or the data section is "
                         "missing")
    if not rows:
        raise ValueError(f"{path}: the @data section has no rows")
    if expected_rows is not None and len(rows) != expected_rows:
        raise ValueError(f"{path} has {len(rows)} data rows, expected {expected_rows} (file cut "
                         "short, or data section doubled?)")
    A = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))
    lab_idx = _label_indices(path, relation, names, n_labels, label_names)
    feat_idx = [i for i in range(len(names)) if i not in set(lab_idx)]
    if expected_features is not None and len(feat_idx) != expected_features:
        raise ValueError(f"{path} has {len(feat_idx)} feature attributes, expected "
                         f"{expected_features}")
    Y = A[:, lab_idx]
    if Y.size and not np.isin(Y, (0.0, 1.0)).all():
        bad = [names[lab_idx[j]] for j in np.flatnonzero(~np.isin(Y, (0.0, 1.0)).all(0))]
        raise ValueError(f"{path}: label attributes {bad[:5]} are not 0/1 (missing or other values)")
    X = A[:, feat_idx]
    if not allow_nonfinite:
        bad_at = np.argwhere(~np.isfinite(X))
        if len(bad_at):
            r, c = bad_at[0]
            raise ValueError(f"{path}: {len(bad_at)} feature values are missing or not finite "
                             f"('?', nan, inf), first in data row {r}, attribute "
                             f"{names[feat_idx[c]]!r}; pass allow_nonfinite=True to keep them")
    return ArffData(relation, X.astype(np.float32), Y.astype(np.uint8),
                    [names[i] for i in feat_idx], [names[i] for i in lab_idx], sparse_seen)


def _nominal_map(values: list[str] | None) -> dict[str, float] | None:
    if values is None:
        return None
    try:
        return {v: float(v) for v in values}
    except ValueError:
        return {v: float(i) for i, v in enumerate(values)}


def _convert(v: str, m: dict[str, float] | None) -> float:
    if v == "?":
        return float("nan")
    if m is None:
        return float(v)
    v = _unquote(v)
    if v in m:
        return m[v]
    raise ValueError(f"value {v!r} not in nominal set {sorted(m)[:10]}")


def _label_indices(path: Path, relation: str, names: list[str], n_labels: int | None,
                   label_names: list[str] | None) -> list[int]:
    if label_names is not None:
        pos = {n: i for i, n in enumerate(names)}
        missing = [n for n in label_names if n not in pos]
        if missing:
            raise ValueError(f"{path}: label attributes not found: {missing[:5]}")
        return [pos[n] for n in label_names]
    if n_labels is None:
        m = _MEKA_C.search(relation)
        if m is None:
            raise ValueError(f"{path}: give n_labels= or label_names= (no MEKA '-C n' in relation "
                             f"{relation!r})")
        c = int(m.group(1))
        return list(range(c)) if c > 0 else list(range(len(names) + c, len(names)))
    return list(range(len(names) - n_labels, len(names)))
