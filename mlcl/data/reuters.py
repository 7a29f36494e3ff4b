"""Reuters-21578 (text): SGML parser, ModApte split, the 90-category version.

The 22 ``reut2-0NN.sgm`` files ship with mlcl; they are looked up as :mod:`mlcl.data.store`
says (``root`` → ``$MLCL_DATA`` → user cache → packaged copy → the UCI KDD archive, downloaded
and extracted only when none of those has them), and each is checked against its pinned sha256
and its document count wherever it is found. ModApte: ``LEWISSPLIT="TRAIN"`` /
``"TEST"`` with ``TOPICS="YES"``. The 90 categories are the topics with at least one training
and one test document; the dataset keeps the documents carrying at least one of them:
**7,770 train / 3,019 test = 10,789** (the size C-GMVAE's Table 6 gives; NLTK's copy has 7,769
training documents). Text = title + ``"\\n"`` + body (for the few ``TYPE="UNPROC"`` documents,
the raw text). Labels are sorted alphabetically. No validation split by default
(``validation_fraction`` carves one). There are no zero-label documents in this version;
``categories="all"`` keeps every ModApte document (zero-label ones included) with all 135
topic names listed in ``all-topics-strings.lc.txt`` that occur in it.

Parsing takes ~1.2 s; with ``cache=True`` the parsed split is also written to
``user_cache_dir("mlcl")/parsed/`` (keyed by the files' sha256) and reloaded in ~0.2 s. Nothing
is ever written into the data root except by a download (the last resort).

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("reuters21578")
>>> len(ds.train), len(ds.test), ds.n_labels
(7770, 3019, 90)
"""

from __future__ import annotations

import gzip
import html
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .base import MultiLabelDataset, Provenance, Split, sha256_files
from .registry import DatasetInfo, register
from .store import available, locate, pinned, shown

N_FILES = 22
URL = "https://kdd.ics.uci.edu/databases/reuters21578/reuters21578.tar.gz"
LICENCE = ("Reuters-21578, Distribution 1.0: free for research use; copyright Reuters Ltd. and "
           "Carnegie Group, Inc. (see README.txt); cite Lewis (1997)")
CACHE_VERSION = 1

_DOC = re.compile(r"<REUTERS([^>]*)>(.*?)</REUTERS>", re.S)
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_TOPICS = re.compile(r"<TOPICS>(.*?)</TOPICS>", re.S)
_D = re.compile(r"<D>(.*?)</D>", re.S)
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)
_TEXT = re.compile(r"<TEXT([^>]*)>(.*?)</TEXT>", re.S)
_TAG = re.compile(r"<[^>]+>")


SGM_NAMES = [f"reut2-{i:03d}.sgm" for i in range(N_FILES)]


def sgm_files(directory: str | Path) -> list[Path]:
    """The 22 ``reut2-*.sgm`` files in ``directory`` (raises when some are missing).

    Example
    -------
    >>> len(sgm_files("../shared/data/reuters21578"))  # doctest: +SKIP
    22
    """
    d = Path(directory)
    files = [d / n for n in SGM_NAMES]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(
            f"Reuters-21578 needs {N_FILES} files reut2-000.sgm..reut2-021.sgm in {d} "
            f"(missing {missing[:3]}...): put the files in MLCL_DATA/reuters21578, or load "
            f"without root= to use the copy shipped with mlcl (or download {URL})")
    return files


def read_sgm(path: str | Path) -> list[dict[str, Any]]:
    """The documents of one ``.sgm`` file, checked: every ``<REUTERS`` opened is closed, and
    the known files hold their known number of documents.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.sgm")
    >>> _ = open(p, "w").write('<REUTERS NEWID="1"><TEXT>a</TEXT></REUTERS><REUTERS NEWID="2">')
    >>> read_sgm(p)
    Traceback (most recent call last):
    ...
    ValueError: ...x.sgm: 2 <REUTERS> documents opened, 1 complete (file cut short?)
    """
    from .arff import sniff_text_file

    p = Path(path)
    sniff_text_file(p, "SGML")
    text = p.read_bytes().decode("latin-1")
    docs = parse_sgm(text)
    opened = text.count("<REUTERS ")
    if opened != len(docs):
        raise ValueError(f"{p}: {opened} <REUTERS> documents opened, {len(docs)} complete (file "
                         "cut short?)")
    pin = pinned("reuters21578", p.name)
    if pin is not None and len(docs) != pin["documents"]:
        raise ValueError(f"{p}: {len(docs)} documents, expected {pin['documents']}")
    if not docs:
        raise ValueError(f"{p}: no <REUTERS> documents: not a Reuters-21578 SGML file")
    return docs


def _clean(s: str) -> str:
    return html.unescape(s).replace("\x03", "").strip()


def parse_sgm(text: str) -> list[dict[str, Any]]:
    """Parse the documents of one ``.sgm`` file's text.

    Each document: ``newid`` (int), ``lewissplit``, ``topics_attr`` (YES/NO/BYPASS),
    ``topics`` (list), ``title``, ``body``, ``text`` (title + body).

    Example
    -------
    >>> doc = ('<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="1"><TOPICS><D>cocoa</D></TOPICS>'
    ...        '<TEXT><TITLE>COCOA &amp; SUGAR</TITLE><BODY>Showers.</BODY></TEXT></REUTERS>')
    >>> d = parse_sgm(doc)[0]
    >>> d["newid"], d["topics"], d["text"]
    (1, ['cocoa'], 'COCOA & SUGAR\\nShowers.')
    """
    out = []
    for m in _DOC.finditer(text):
        attrs = dict(_ATTR.findall(m.group(1)))
        inner = m.group(2)
        tm = _TOPICS.search(inner)
        topics = [t.strip() for t in _D.findall(tm.group(1))] if tm else []
        title = body = ""
        xm = _TEXT.search(inner)
        if xm:
            ttype = dict(_ATTR.findall(xm.group(1))).get("TYPE", "NORM")
            t = _TITLE.search(xm.group(2))
            b = _BODY.search(xm.group(2))
            title = _clean(t.group(1)) if t else ""
            body = _clean(b.group(1)) if b else ""
            if ttype == "UNPROC" and not body:
                body = _clean(_TAG.sub(" ", xm.group(2)))
        out.append({
            "newid": int(attrs.get("NEWID", -1)),
            "lewissplit": attrs.get("LEWISSPLIT", ""),
            "topics_attr": attrs.get("TOPICS", ""),
            "topics": topics,
            "title": title,
            "body": body,
            "text": (title + "\n" + body).strip(),
        })
    return out


def parse_reuters(directory: str | Path) -> list[dict[str, Any]]:
    """All 21,578 documents of the collection (see :func:`parse_sgm`).

    Example
    -------
    >>> len(parse_reuters("../shared/data/reuters21578"))  # doctest: +SKIP
    21578
    """
    docs: list[dict[str, Any]] = []
    for f in sgm_files(directory):
        docs.extend(read_sgm(f))
    return docs


def modapte(docs: list[dict[str, Any]], categories: str = "90") -> dict[str, Any]:
    """ModApte split of parsed documents: ``{"train": [...], "test": [...], "labels": [...]}``.

    ``categories="90"``: topics with ≥ 1 train and ≥ 1 test document, documents carrying one;
    ``"all"``: every ModApte document and every topic occurring in the split.

    Example
    -------
    >>> d = [{"lewissplit": s, "topics_attr": "YES", "topics": t, "newid": i, "text": ""}
    ...      for i, (s, t) in enumerate([("TRAIN", ["a"]), ("TEST", ["a", "b"]), ("TRAIN", ["b"])])]
    >>> modapte(d)["labels"], len(modapte(d)["train"])
    (['a', 'b'], 2)
    """
    tr = [d for d in docs if d["lewissplit"] == "TRAIN" and d["topics_attr"] == "YES"]
    te = [d for d in docs if d["lewissplit"] == "TEST" and d["topics_attr"] == "YES"]
    if categories == "all":
        labels = sorted({t for d in tr + te for t in d["topics"]})
        return {"train": tr, "test": te, "labels": labels}
    if categories != "90":
        raise ValueError("categories must be '90' or 'all'")
    ctr = {t for d in tr for t in d["topics"]}
    cte = {t for d in te for t in d["topics"]}
    labels = sorted(ctr & cte)
    keep = set(labels)
    return {
        "train": [d for d in tr if keep & set(d["topics"])],
        "test": [d for d in te if keep & set(d["topics"])],
        "labels": labels,
    }


def _cache_file(categories: str) -> Path:
    from .store import user_cache_dir

    name = f"reuters21578_modapte_{categories}.v{CACHE_VERSION}.json.gz"
    return user_cache_dir() / "parsed" / name


def load_reuters(root: Path, categories: str = "90", validation_fraction: float = 0.0,
                 seed: int = 0, download: bool = True, cache: bool = False) -> MultiLabelDataset:
    """Reuters-21578 ModApte (see the module docstring).

    ``categories``: ``"90"`` or ``"all"``; ``cache``: see the module docstring;
    ``download``: as a last resort (no local and no packaged copy), fetch the UCI archive into
    ``<root>/reuters21578``, verifying every extracted file; ``False`` raises instead.
    ``X`` is a list of strings; ``meta["newid"]`` the NEWID of every document.

    Example
    -------
    >>> ds = load_reuters(Path("../shared/data"))  # doctest: +SKIP
    >>> ds.card()["n_labels"], ds.label_names[:3]  # doctest: +SKIP
    (90, ['acq', 'alum', 'barley'])
    """
    def fetch(target: Path) -> None:
        from .download import download_and_extract

        pins = {n: pinned("reuters21578", n)["sha256"] for n in SGM_NAMES}  # type: ignore[index]
        download_and_extract(URL, target, name="reuters21578", licence=LICENCE, files=pins)

    d = locate("reuters21578", SGM_NAMES, root, fetch=fetch if download else None)
    files = sgm_files(d)
    checksum = sha256_files(files)
    cfile = _cache_file(categories)
    data = None
    if cache and cfile.exists():
        try:
            with gzip.open(cfile, "rt", encoding="utf-8") as f:
                data = json.load(f)
            if data.get("checksum") != checksum:
                data = None
        except (OSError, ValueError):
            data = None
    if data is None:
        sp = modapte(parse_reuters(d), categories)
        data = {"checksum": checksum, "labels": sp["labels"]}
        for k in ("train", "test"):
            data[k] = {"text": [x["text"] for x in sp[k]], "newid": [x["newid"] for x in sp[k]],
                       "topics": [x["topics"] for x in sp[k]]}
        if cache:
            _atomic_write_json_gz(cfile, data)
    labels = data["labels"]
    pos = {t: i for i, t in enumerate(labels)}

    def mk(k: str) -> Split:
        part = data[k]
        Y = np.zeros((len(part["text"]), len(labels)), np.uint8)
        for i, ts in enumerate(part["topics"]):
            for t in ts:
                if t in pos:
                    Y[i, pos[t]] = 1
        return Split(k, list(part["text"]), Y, {"newid": np.asarray(part["newid"], np.int64)})

    prov = Provenance(source=f"Reuters-21578 Distribution 1.0 SGML files in {shown(d)}",
                      version="Distribution 1.0, ModApte", checksum=f"sha256:{checksum}",
                      licence=LICENCE, url=URL,
                      notes=f"categories={categories}: topics with >=1 train and >=1 test doc")
    ds = MultiLabelDataset("reuters21578", mk("train"), mk("test"), None, labels, None, prov,
                           "text", {"categories": categories})
    return ds.with_validation(validation_fraction, seed) if validation_fraction > 0 else ds


def _atomic_write_json_gz(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3) as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:  # read-only data root: caching is optional
        pass


register(DatasetInfo(
    "reuters21578", lambda root, **kw: load_reuters(root, **kw),
    "Reuters-21578 SGML, ModApte (shipped with mlcl)", "text",
    lambda root: available("reuters21578", SGM_NAMES, root),
    f"shipped with mlcl; or MLCL_DATA/reuters21578/reut2-*.sgm; last resort: {URL}", LICENCE,
    False, "C-GMVAE"))
