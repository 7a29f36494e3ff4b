"""Where dataset files come from, and the proof that they are the right ones.

Lookup order for the files of one dataset directory (``mulan/``, ``mulsupcon_yeast/``,
``reuters21578/``, the layout of ``../shared/data``):

1. ``root=`` given to the loader,
2. ``$MLCL_DATA``,
3. the user cache (``$MLCL_CACHE``, else ``platformdirs.user_cache_dir("mlcl")``),
4. the copy packaged in the wheel (``mlcl/data/_files/*.xz``), decompressed into the user cache,
5. a download (when the loader has a URL), extracted and verified before it is put in place.

A directory is used only when it holds *all* the files asked for. Every file with a pinned sha256
(``_files/manifest.json``) is verified wherever it is found: a mismatch in ``root`` or
``MLCL_DATA`` is an error naming the file (those are the user's files: never deleted); a mismatch
in the cache deletes the cached file and rebuilds it from the packaged copy or the download.
Verified files are remembered per process by (size, mtime), so a second load costs no hashing.

Example
-------
>>> from mlcl.data.store import locate, pinned
>>> d = locate("mulan", ["emotions-train.arff", "emotions-test.arff"])
>>> (d / "emotions-train.arff").exists(), pinned("mulan", "emotions-train.arff")["rows"]
(True, 391)
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import tempfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any


class DataIntegrityError(ValueError):
    """A data file differs from its pinned sha256 (truncated, modified, another version)."""


def user_cache_dir() -> Path:
    """The user cache: ``$MLCL_CACHE``, else ``platformdirs.user_cache_dir("mlcl")``.

    Example
    -------
    >>> "mlcl" in str(user_cache_dir()) or "MLCL_CACHE" in __import__("os").environ
    True
    """
    env = os.environ.get("MLCL_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlcl"))


@lru_cache(maxsize=1)
def shown(path: str | os.PathLike) -> str:
    """``path`` as provenance shows it: under ``$MLCL_DATA``, the user cache or the home directory
    it is written ``$MLCL_DATA/…``, ``<mlcl cache>/…`` or ``~/…``, so that no machine's absolute
    path reaches a published page."""
    p = Path(path)
    for prefix, base in (("$MLCL_DATA", os.environ.get("MLCL_DATA")), ("<mlcl cache>", str(user_cache_dir())),
                         ("~", str(Path.home()))):
        if base:
            try:
                return str(Path(prefix) / p.resolve().relative_to(Path(base).expanduser().resolve()))
            except ValueError:
                continue
    return p.name if p.is_absolute() else str(p)


def manifest() -> dict[str, Any]:
    """The manifest of the packaged data (``_files/manifest.json``): sha256, sizes, provenance.

    Example
    -------
    >>> sorted(manifest()["datasets"])
    ['mulan', 'mulsupcon_yeast', 'reuters21578']
    """
    return json.loads(_files().joinpath("manifest.json").read_text())


def _files() -> Any:
    return resources.files("mlcl.data").joinpath("_files")


def pinned(dataset_dir: str, filename: str) -> dict[str, Any] | None:
    """Manifest entry of one file (``sha256``, ``bytes``, ``rows``, ...), or ``None``.

    Example
    -------
    >>> pinned("reuters21578", "reut2-021.sgm")["documents"]
    578
    """
    return manifest()["datasets"].get(dataset_dir, {}).get("files", {}).get(filename)


def dataset_info(dataset_dir: str) -> dict[str, Any]:
    """Provenance of a packaged dataset directory (``title``, ``source``, ``url``, ``licence``).

    Example
    -------
    >>> "research" in dataset_info("reuters21578")["licence"]
    True
    """
    d = manifest()["datasets"].get(dataset_dir)
    if d is None:
        raise KeyError(f"no packaged dataset directory {dataset_dir!r}")
    return {k: v for k, v in d.items() if k != "files"}


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file (streamed).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f"); _ = open(p, "wb").write(b"abc")
    >>> sha256_of(p)[:8]
    'ba7816bf'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, int, int], str] = {}


def verify(path: str | Path, sha256: str, what: str = "", url: str = "") -> None:
    """Raise :class:`DataIntegrityError` naming ``path`` unless its sha256 is ``sha256``.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f"); _ = open(p, "wb").write(b"abc")
    >>> verify(p, "0" * 64)
    Traceback (most recent call last):
    ...
    mlcl.data.store.DataIntegrityError: ...f has sha256 ba7816bf..., expected 00000000...
    """
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    got = _VERIFIED.get(key) or sha256_of(p)
    if got != sha256:
        _VERIFIED.pop(key, None)
        src = f" (from {url})" if url else ""
        raise DataIntegrityError(
            f"{p} has sha256 {got[:8]}..., expected {sha256[:8]}... ({what or p.name}{src}): the "
            "file is truncated, modified or another version. Delete it (or fix the directory it "
            "is in) and load again.")
    _VERIFIED[key] = got


def candidate_dirs(dataset_dir: str, root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places searched, in order: ``root``, ``$MLCL_DATA``, the user cache.

    Example
    -------
    >>> [t for t, _ in candidate_dirs("mulan", "/tmp/x")][0]
    'root'
    """
    cache = user_cache_dir()
    out: list[tuple[str, Path]] = []
    bases = [("root", root), ("MLCL_DATA", os.environ.get("MLCL_DATA") or None), ("cache", cache)]
    for tier, base in bases:
        if base is None:
            continue
        b = Path(base).expanduser()
        tier = "cache" if b == cache else tier  # the loaders pass data_root(): maybe the cache
        if any(b / dataset_dir == d for _, d in out):
            continue
        out.append((tier, b / dataset_dir))
    return out


def is_packaged(dataset_dir: str, filenames: Sequence[str]) -> bool:
    """Whether the wheel carries every file of ``filenames``.

    Example
    -------
    >>> is_packaged("mulan", ["scene-train.arff"]), is_packaged("coco", ["x"])
    (True, False)
    """
    for fn in filenames:
        e = pinned(dataset_dir, fn)
        if e is None or not e.get("packaged") or not _files().joinpath(e["packaged"]).is_file():
            return False
    return True


def available(dataset_dir: str, filenames: Sequence[str], root: str | os.PathLike | None = None) -> bool:
    """Whether :func:`locate` would find the files without downloading (no hashing).

    Example
    -------
    >>> available("reuters21578", ["reut2-000.sgm"])
    True
    """
    if any(all((d / f).is_file() for f in filenames) for _, d in candidate_dirs(dataset_dir, root)):
        return True
    return is_packaged(dataset_dir, filenames)


def locate(dataset_dir: str, filenames: Sequence[str], root: str | os.PathLike | None = None,
           fetch: Callable[[Path], Any] | None = None, how_to_get: str = "") -> Path:
    """The directory holding all ``filenames`` of ``dataset_dir``, each verified.

    ``fetch(directory)`` (optional) downloads the files into ``directory`` (it must put them in
    place only once they are verified; see :func:`mlcl.data.download.download_and_extract`).

    Example
    -------
    >>> locate("mulan", ["scene-test.arff"]).name
    'mulan'
    """
    looked = [f"{t}: {d}" for t, d in candidate_dirs(dataset_dir, root)]
    d = find_local(dataset_dir, filenames, root)
    if d is not None:
        return d
    if is_packaged(dataset_dir, filenames):
        return _materialise(dataset_dir, filenames)
    if fetch is not None:
        target = candidate_dirs(dataset_dir, root)[0][1]
        fetch(target)
        for f in filenames:
            if not (target / f).is_file():
                raise FileNotFoundError(f"download into {target} did not produce {f}")
            e = pinned(dataset_dir, f)
            if e is not None:
                verify(target / f, e["sha256"], f"{dataset_dir}/{f}")
        return target
    raise FileNotFoundError(
        f"{dataset_dir}: files {list(filenames)[:3]}{'...' if len(filenames) > 3 else ''} not "
        f"found (looked in {'; '.join(looked)}; not packaged in this mlcl install). "
        + (how_to_get or f"Put them in MLCL_DATA/{dataset_dir}."))


def find_local(dataset_dir: str, filenames: Sequence[str],
               root: str | os.PathLike | None = None) -> Path | None:
    """Steps 1–3 of :func:`locate` (``root``, ``$MLCL_DATA``, cache): the first directory holding
    all ``filenames``, verified, or ``None``. A bad file in our cache is deleted (``None`` then
    lets the caller rebuild it); a bad file elsewhere raises :class:`DataIntegrityError`.

    Example
    -------
    >>> find_local("coco", ["instances_train2014.json"], "/nonexistent") is None
    True
    """
    for tier, d in candidate_dirs(dataset_dir, root):
        if not all((d / f).is_file() for f in filenames):
            continue
        try:
            for f in filenames:
                e = pinned(dataset_dir, f)
                if e is not None:
                    verify(d / f, e["sha256"], f"{dataset_dir}/{f}")
            return d
        except DataIntegrityError:
            if tier != "cache":
                raise
            for f in filenames:  # our own cache: drop what fails, rebuild from the next source
                e = pinned(dataset_dir, f)
                if e is not None and sha256_of(d / f) != e["sha256"]:
                    (d / f).unlink(missing_ok=True)
    return None


def _materialise(dataset_dir: str, filenames: Sequence[str]) -> Path:
    """Decompress packaged files into the user cache (or a temporary folder when it is read-only),
    checking each against its pinned sha256 before it is renamed into place."""
    user = getattr(os, "getuid", lambda: os.environ.get("USERNAME", "user"))()
    errors = []
    for base in (user_cache_dir(), Path(tempfile.gettempdir()) / f"mlcl-data-{user}"):
        d = base / dataset_dir
        try:
            d.mkdir(parents=True, exist_ok=True)
            for f in filenames:
                _unpack_one(dataset_dir, f, d)
            return d
        except OSError as e:  # read-only or full cache: fall back to a temporary folder
            errors.append(f"{d}: {e}")
    raise OSError(f"cannot decompress the packaged {dataset_dir} files ({'; '.join(errors)}): set "
                  "MLCL_CACHE to a writable folder")


def _unpack_one(dataset_dir: str, filename: str, d: Path) -> None:
    e = pinned(dataset_dir, filename)
    assert e is not None
    dest = d / filename
    if dest.is_file():
        try:
            verify(dest, e["sha256"])
            return
        except DataIntegrityError:
            dest.unlink()
    src = _files().joinpath(e["packaged"])
    raw = lzma.decompress(src.read_bytes())
    got = hashlib.sha256(raw).hexdigest()
    if got != e["sha256"] or len(raw) != e["bytes"]:
        raise DataIntegrityError(
            f"the packaged copy {src} decompresses to sha256 {got[:8]}..., expected "
            f"{e['sha256'][:8]}...: this mlcl installation is damaged; reinstall mlcl")
    fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", dir=d)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    st = dest.stat()
    _VERIFIED[(str(dest.resolve()), st.st_size, st.st_mtime_ns)] = got
