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
    monkeypatch.delenv("MLCL_DATA")
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


def test_licence_warning_and_extract_reuters_layout(monkeypatch, tmp_path):
    # A fake UCI archive with one .sgm file: download=True fetches and unpacks it into the root.
    sgm = ('<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="1"><TOPICS><D>gold</D></TOPICS>'
           '<TEXT><TITLE>T</TITLE><BODY>B</BODY></TEXT></REUTERS>')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for i in range(22):
            data = (sgm if i in (0, 21) else sgm.replace("TRAIN", "TEST")).encode()
            ti = tarfile.TarInfo(f"reut2-{i:03d}.sgm")
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    arc = tmp_path / "reuters21578.tar.gz"
    arc.write_bytes(buf.getvalue())
    import mlcl.data.reuters as reuters

    monkeypatch.setattr(reuters, "URL", arc.as_uri())
    root = tmp_path / "root"
    with pytest.warns(LicenceWarning, match="research"):
        ds = load_dataset("reuters21578", root=root, download=True)
    assert (root / "reuters21578" / "reut2-021.sgm").exists()
    assert len(ds.train) == 2 and len(ds.test) == 20 and ds.label_names == ["gold"]
    assert not (root / "reuters21578.download").exists()


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
