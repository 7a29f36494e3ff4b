"""Downloads into the data root: progress bar, sha256 check, atomic rename, clear errors.

Files go to ``<root>/<dataset>/`` where root is ``root=`` / ``$MLCL_DATA`` / the user cache.
A partial download is written to ``<file>.part`` and renamed only once complete and verified, so
an interrupted download never leaves a file that looks finished. Nothing unverified is trusted
twice: an existing file is reused only when it matches its pinned sha256 (a mismatch deletes it
and fetches again); without a pin it is fetched again. Archives are checked end to end (the
whole compressed stream, so gzip's CRC is read), extracted into a temporary folder, every
extracted file with a pin is verified, and only then are the files renamed into place. A
corrupt archive is deleted so that the next try downloads it again. Errors name file and URL.

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


class ArchiveError(ValueError):
    """A downloaded archive is corrupt, truncated, not an archive, or lacks expected files."""


class LicenceWarning(UserWarning):
    """Reminder that a dataset is for research / non-commercial use only."""


#: the function that opens URLs (tests monkeypatch it; ``file://`` URLs work too)
URLOPEN: Callable[..., Any] = urllib.request.urlopen


def download(url: str, directory: str | Path, filename: str | None = None, sha256: str | None = None,
             name: str = "dataset", licence: str | None = None, progress: bool = True,
             chunk_size: int = 1 << 16) -> Path:
    """Download ``url`` to ``directory/filename``.

    An existing file is reused only when ``sha256`` is given and matches; one that does not match
    is deleted and fetched again; without ``sha256`` the file is always fetched again (an
    unverified file is never trusted). Raises :class:`DownloadError` ("dataset X needs URL; or put
    the files in MLCL_DATA/X") when the URL cannot be opened, :class:`ChecksumError` when the
    sha256 of the new download differs (it is deleted). ``licence`` emits a
    :class:`LicenceWarning` before downloading.

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
    if dest.exists():
        if sha256 is not None and _sha256(dest) == sha256:
            return dest
        dest.unlink()  # unverifiable or failing: never trusted, fetched again
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


_HTML = (b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")


def check_archive(archive: str | Path, url: str = "") -> None:
    """Read the whole archive once, raising :class:`ArchiveError` naming it (and ``url``) when it
    is an HTML page, not an archive, truncated, or fails its CRC.

    ``tarfile`` stops at the end-of-archive marker and never reads gzip's trailing CRC, so a
    flipped bit near the end would go unnoticed: the compressed stream is decompressed to its end
    first.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.tar.gz"); _ = open(p, "w").write("<html>404</html>")
    >>> check_archive(p, "https://example.org/a.tar.gz")
    Traceback (most recent call last):
    ...
    mlcl.data.download.ArchiveError: ...a.tar.gz (from https://example.org/a.tar.gz) is an HTML page, not an archive...
    """
    import bz2
    import gzip
    import lzma
    import zlib

    a = Path(archive)
    src = f" (from {url})" if url else ""
    with open(a, "rb") as f:
        head = f.read(512)
    if not head:
        raise ArchiveError(f"{a}{src} is empty")
    if head.lstrip().lower().startswith(_HTML):
        raise ArchiveError(f"{a}{src} is an HTML page, not an archive (an error page or a login "
                           "page?): check the URL, or put the files in place by hand")
    openers = {b"\x1f\x8b": gzip.open, b"\xfd7zXZ": lzma.open, b"BZh": bz2.open}
    opener = next((o for m, o in openers.items() if head.startswith(m)), None)
    try:
        if opener is not None:
            with opener(a, "rb") as g:
                while g.read(1 << 20):
                    pass
        if zipfile.is_zipfile(a):
            with zipfile.ZipFile(a) as z:
                bad = z.testzip()
            if bad is not None:
                raise ArchiveError(f"{a}{src}: member {bad!r} fails its CRC")
        elif tarfile.is_tarfile(a):
            with tarfile.open(a) as t:
                for _m in t:  # reads every member header to the end marker
                    pass
        else:
            raise ArchiveError(f"{a}{src} is neither a zip nor a tar archive")
    except ArchiveError:
        raise
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, zlib.error,
            ValueError) as e:
        raise ArchiveError(f"{a}{src} is corrupt or truncated ({type(e).__name__}: {e})") from e


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
                         progress: bool = True, keep_archive: bool = False,
                         files: dict[str, str] | None = None) -> Path:
    """:func:`download` an archive, check it, extract it into a temporary folder, verify, and
    only then move the extracted files into ``directory``.

    ``sha256`` pins the archive; ``files`` (name → sha256, paths relative to the archive root)
    pins extracted files, for archives that cannot be pinned: each must be present and match.
    Any failure deletes the archive and the temporary folder and raises
    :class:`ArchiveError` / :class:`ChecksumError` naming the file and ``url``; ``directory`` is
    left as it was.

    Example
    -------
    >>> download_and_extract("https://kdd.ics.uci.edu/databases/reuters21578/reuters21578.tar.gz",
    ...                      "/tmp/data/reuters21578", name="reuters21578")  # doctest: +SKIP
    """
    import tempfile

    d = Path(directory)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.download-", dir=d.parent))
    try:
        arc = download(url, tmp / "archive", filename=url.rstrip("/").rsplit("/", 1)[-1] or None,
                       sha256=sha256, name=name, licence=licence, progress=progress)
        check_archive(arc, url)
        out = tmp / "extracted"
        try:
            extract(arc, out)
        except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
            raise ArchiveError(f"{arc} (from {url}) cannot be extracted: {e}") from e
        for rel, want in (files or {}).items():
            p = out / rel
            if not p.is_file():
                raise ArchiveError(f"{arc} (from {url}) lacks {rel}: not the expected archive")
            got = _sha256(p)
            if got != want:
                raise ChecksumError(f"dataset {name}: {rel} extracted from {url} has sha256 "
                                    f"{got[:12]}..., expected {want[:12]}...: the archive is "
                                    "corrupt or another version; it was deleted, retry")
        d.mkdir(parents=True, exist_ok=True)
        for p in sorted(out.rglob("*")):  # verified: move into place (one rename per file)
            target = d / p.relative_to(out)
            if p.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, target)
        if keep_archive:
            os.replace(arc, d / arc.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return d
