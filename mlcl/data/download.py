"""Downloads into the data root: progress bar, sha256 check, atomic rename, clear errors.

Files go to ``<root>/<dataset>/`` where root is ``root=`` / ``$MLCL_DATA`` / the user cache.
A partial download is written to ``<file>.part`` and renamed only once complete and verified, so
an interrupted download never leaves a file that looks finished.

Example
-------
>>> from mlcl.data.download import download
>>> path = download("https://example.org/f.zip", "/tmp/mlcl/x", name="x")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ChecksumError(RuntimeError):
    """The downloaded file's sha256 differs from the expected one."""


class DownloadError(ConnectionError):
    """The file could not be fetched (no network, HTTP error)."""


class LicenceWarning(UserWarning):
    """Reminder that a dataset is for research / non-commercial use only."""


#: the function that opens URLs (tests monkeypatch it; ``file://`` URLs work too)
URLOPEN: Callable[..., Any] = urllib.request.urlopen


def download(url: str, directory: str | Path, filename: str | None = None, sha256: str | None = None,
             name: str = "dataset", licence: str | None = None, progress: bool = True,
             chunk_size: int = 1 << 16) -> Path:
    """Download ``url`` to ``directory/filename`` (skipped when it exists and verifies).

    Raises :class:`DownloadError` ("dataset X needs URL; or put the files in MLCL_DATA/X") when
    the URL cannot be opened, :class:`ChecksumError` when the sha256 differs (the bad file is
    deleted). ``licence`` emits a :class:`LicenceWarning` before downloading.

    Example
    -------
    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = src.write_text("hi")
    >>> p = download(src.as_uri(), tempfile.mkdtemp(), progress=False)
    >>> p.read_text()
    'hi'
    """
    d = Path(directory)
    fn = filename or url.rstrip("/").rsplit("/", 1)[-1] or "download"
    dest = d / fn
    if dest.exists() and (sha256 is None or _sha256(dest) == sha256):
        return dest
    if licence:
        warnings.warn(f"{name}: {licence}. By downloading you accept its terms.", LicenceWarning,
                      stacklevel=2)
    d.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    try:
        resp = URLOPEN(url)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(
            f"dataset {name} needs {url} (could not open it: {e}); or put the files in "
            f"MLCL_DATA/{name} (currently looking in {d})") from e
    try:
        total = _content_length(resp)
        bar = _progress(total, fn) if progress else None
        with open(part, "wb") as f:
            while True:
                b = resp.read(chunk_size)
                if not b:
                    break
                f.write(b)
                h.update(b)
                if bar is not None:
                    bar.update(len(b))
        if bar is not None:
            bar.close()
    except OSError as e:
        part.unlink(missing_ok=True)
        raise DownloadError(f"dataset {name}: download of {url} failed ({e}); retry, or put the "
                            f"files in MLCL_DATA/{name}") from e
    finally:
        close = getattr(resp, "close", None)
        if close is not None:
            close()
    if sha256 is not None and h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"dataset {name}: checksum mismatch for {dest} (from {url}): expected sha256 "
            f"{sha256}, got {h.hexdigest()}. The partial file was deleted; delete {dest} if "
            "present and retry.")
    os.replace(part, dest)
    return dest


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def _content_length(resp: Any) -> int | None:
    try:
        n = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
        return int(n) if n else None
    except (TypeError, ValueError):
        return None


def _progress(total: int | None, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)


def extract(archive: str | Path, directory: str | Path) -> Path:
    """Extract a ``.tar(.gz)`` or ``.zip`` archive into ``directory`` (refusing unsafe paths).

    Example
    -------
    >>> extract("reuters21578.tar.gz", "/tmp/reuters21578")  # doctest: +SKIP
    """
    a, d = Path(archive), Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    root = d.resolve()
    if zipfile.is_zipfile(a):
        with zipfile.ZipFile(a) as z:
            for n in z.namelist():
                if not (d / n).resolve().is_relative_to(root):
                    raise ValueError(f"unsafe path {n!r} in {a}")
            z.extractall(d)
    elif tarfile.is_tarfile(a):
        with tarfile.open(a) as t:
            for m in t.getmembers():
                if not (d / m.name).resolve().is_relative_to(root) or m.issym() or m.islnk():
                    raise ValueError(f"unsafe member {m.name!r} in {a}")
            try:
                t.extractall(d, filter="data")
            except TypeError:  # Python without tar filters
                t.extractall(d)
    else:
        raise ValueError(f"{a} is neither a zip nor a tar archive")
    return d


def download_and_extract(url: str, directory: str | Path, sha256: str | None = None,
                         name: str = "dataset", licence: str | None = None,
                         progress: bool = True, keep_archive: bool = False) -> Path:
    """:func:`download` an archive into ``directory`` and extract it there.

    Example
    -------
    >>> download_and_extract("https://kdd.ics.uci.edu/databases/reuters21578/reuters21578.tar.gz",
    ...                      "/tmp/data/reuters21578", name="reuters21578")  # doctest: +SKIP
    """
    d = Path(directory)
    tmp = d.with_name(d.name + ".download")
    arc = download(url, tmp, sha256=sha256, name=name, licence=licence, progress=progress)
    extract(arc, d)
    if not keep_archive:
        shutil.rmtree(tmp, ignore_errors=True)
    return d
