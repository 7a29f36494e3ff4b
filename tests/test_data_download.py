"""Downloads, tested offline: file:// URLs and a monkeypatched opener."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error

import pytest

import mlcl.data.download as dl
from mlcl.data import data_root, load_dataset
from mlcl.data.download import (
    ArchiveError,
    ChecksumError,
    DownloadError,
    LicenceWarning,
    download,
    download_and_extract,
)


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCL_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MLCL_DATA", raising=False)
    assert "mlcl" in str(data_root())


def test_file_url_sha256_and_skip(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 100_000)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    p = download(src.as_uri(), tmp_path / "cache", sha256=sha, name="toy", progress=True)
    assert p.read_bytes() == src.read_bytes() and not list((tmp_path / "cache").glob("*.part"))
    src.write_bytes(b"changed")  # a verified existing file is not downloaded again
    assert download(src.as_uri(), tmp_path / "cache", "src.bin", sha256=sha).read_bytes() == b"x" * 100_000


def test_checksum_mismatch_deletes_partial(tmp_path):
    src = tmp_path / "f.txt"
    src.write_text("data")
    with pytest.raises(ChecksumError, match=r"f\.txt.*delete .* and retry"):
        download(src.as_uri(), tmp_path / "c", sha256="0" * 64, name="toy", progress=False)
    assert not any((tmp_path / "c").iterdir())


def test_no_network_message(monkeypatch, tmp_path):
    def refuse(url):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(dl, "URLOPEN", refuse)
    with pytest.raises(DownloadError, match=r"dataset toy needs https://example\.org/t\.zip.*MLCL_DATA/toy"):
        download("https://example.org/t.zip", tmp_path, name="toy", progress=False)


def test_interrupted_download_leaves_no_file(monkeypatch, tmp_path):
    class Broken(io.BytesIO):
        headers = {"Content-Length": "10"}

        def read(self, n=-1):
            raise OSError("connection reset")

    monkeypatch.setattr(dl, "URLOPEN", lambda url: Broken())
    with pytest.raises(DownloadError, match="retry"):
        download("https://example.org/a.bin", tmp_path, name="toy", progress=False)
    assert not any(tmp_path.iterdir())


def test_existing_file_is_never_trusted_unverified(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"good")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "src.bin").write_bytes(b"<html>502 Bad Gateway</html>")  # a bad earlier download
    assert download(src.as_uri(), cache, progress=False).read_bytes() == b"good"  # no pin: refetched
    sha = hashlib.sha256(b"good").hexdigest()
    (cache / "src.bin").write_bytes(b"goo")  # truncated, pinned: deleted and fetched again
    assert download(src.as_uri(), cache, sha256=sha, progress=False).read_bytes() == b"good"


# ------------------------------------------------------------------ Reuters: the reproducers
@pytest.fixture(scope="module")
def reuters_tgz(data_root, tmp_path_factory):
    """The UCI archive's layout: the 22 SGML files (pinned in the manifest) at the top level."""
    d = tmp_path_factory.mktemp("uci")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as t:
        for f in sorted((data_root / "reuters21578").glob("*")):
            t.add(f, arcname=f.name)
    (d / "reuters21578.tar.gz").write_bytes(buf.getvalue())
    return d / "reuters21578.tar.gz"


@pytest.fixture
def no_local_copy(monkeypatch, tmp_path):
    """A user with no MLCL_DATA, an empty cache and a wheel without packaged data."""
    import mlcl.data.store as store

    monkeypatch.delenv("MLCL_DATA", raising=False)
    monkeypatch.setenv("MLCL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(store, "is_packaged", lambda *a: False)
    return tmp_path / "root"


def _served(tmp_path, data: bytes):
    p = tmp_path / "served" / "reuters21578.tar.gz"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(data)
    return p


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x10
    return bytes(b)


@pytest.mark.parametrize("where", ["near_end", "5%", "20%", "35%", "50%", "truncated", "html"])
def test_corrupt_reuters_archive_is_refused(reuters_tgz, no_local_copy, tmp_path, monkeypatch, where):
    import mlcl.data.reuters as reuters

    good = reuters_tgz.read_bytes()
    n = len(good)
    bad = {"near_end": lambda: _flip(good, n - 12), "5%": lambda: _flip(good, n // 20),
           "20%": lambda: _flip(good, n // 5), "35%": lambda: _flip(good, 35 * n // 100),
           "50%": lambda: _flip(good, n // 2), "truncated": lambda: good[: 2 * n // 3],
           "html": lambda: b"<!DOCTYPE html><html><body>404 Not Found</body></html>"}[where]()
    served = _served(tmp_path, bad)
    monkeypatch.setattr(reuters, "URL", served.as_uri())
    root = no_local_copy
    with pytest.warns(LicenceWarning), pytest.raises((ArchiveError, ChecksumError)) as e:
        load_dataset("reuters21578", root=root)
    msg = str(e.value)
    assert served.as_uri() in msg and ("reuters21578.tar.gz" in msg or ".sgm" in msg), msg
    # nothing half-extracted, no archive kept: the next try downloads again
    assert not (root / "reuters21578").exists() or not any((root / "reuters21578").iterdir())
    assert not [p for p in root.glob(".*download*")] if root.exists() else True
    served.write_bytes(good)  # the server is fixed: the same call now works
    with pytest.warns(LicenceWarning):
        ds = load_dataset("reuters21578", root=root)
    assert (len(ds.train), len(ds.test), ds.n_labels) == (7770, 3019, 90)
    assert (root / "reuters21578" / "reut2-021.sgm").exists()


def test_bad_file_in_cache_is_replaced_but_user_files_are_not_touched(tmp_path, monkeypatch):
    # our cache: a damaged file is deleted and rebuilt from the packaged copy
    monkeypatch.delenv("MLCL_DATA", raising=False)
    monkeypatch.setenv("MLCL_CACHE", str(tmp_path / "cache"))
    ds = load_dataset("emotions")
    cached = tmp_path / "cache" / "mulan" / "emotions-train.arff"
    assert ds.provenance.source.endswith("<mlcl cache>/mulan") and cached.exists()
    cached.write_bytes(cached.read_bytes()[:-2000])
    assert len(load_dataset("emotions").train) == 391
    # the user's directory (root=, MLCL_DATA): an error naming the file, the file left alone
    user = tmp_path / "user" / "mulan"
    user.mkdir(parents=True)
    good = cached.read_bytes()
    (user / "emotions-train.arff").write_bytes(good[:-2000])
    (user / "emotions-test.arff").write_bytes((cached.parent / "emotions-test.arff").read_bytes())
    with pytest.raises(ValueError, match=r"user/mulan/emotions-train\.arff has sha256 .*truncated"):
        load_dataset("emotions", root=tmp_path / "user")
    assert (user / "emotions-train.arff").read_bytes() == good[:-2000]


def test_extract_refuses_unsafe(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        ti = tarfile.TarInfo("../evil.txt")
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    arc = tmp_path / "bad.tar.gz"
    arc.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="unsafe"):
        download_and_extract(arc.as_uri(), tmp_path / "out", name="bad", progress=False)


def test_valid_archive_with_a_changed_file_is_refused_by_the_pins(data_root, no_local_copy,
                                                                  tmp_path, monkeypatch):
    # an intact gzip whose reut2-007.sgm differs by one byte (another version of the collection)
    import mlcl.data.reuters as reuters

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as t:
        for f in sorted((data_root / "reuters21578").glob("reut2-*.sgm")):
            data = f.read_bytes()
            if f.name == "reut2-007.sgm":
                data = data.replace(b"<D>earn</D>", b"<D>acq</D>", 1)
            ti = tarfile.TarInfo(f.name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    served = _served(tmp_path, buf.getvalue())
    monkeypatch.setattr(reuters, "URL", served.as_uri())
    with pytest.warns(LicenceWarning), pytest.raises(ChecksumError, match=r"reut2-007\.sgm extracted from file://"):
        load_dataset("reuters21578", root=no_local_copy)
    assert not (no_local_copy / "reuters21578").exists()
