"""Readers check what they read (issue 14.4): bad ARFF / HDF5 / npy / CSV files fail, naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from mlcl.data import load_dataset
from mlcl.data.arff import read_arff
from mlcl.data.formats import load_mpvae_npy, read_mulsupcon_hdf5
from mlcl.data.mulan import load_mulan_arff
from mlcl.data.store import DataIntegrityError, pinned
from mlcl.data.textcsv import read_label_csv

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def scene_lines(data_root):
    return (data_root / "mulan" / "scene-train.arff").read_text().splitlines(keepends=True)


def _mulan_dir(tmp_path, data_root, train_text=None, test_text=None):
    d = tmp_path / "mulan"
    d.mkdir(exist_ok=True)
    for s, txt in (("train", train_text), ("test", test_text)):
        if txt is None:
            shutil.copy(data_root / "mulan" / f"scene-{s}.arff", d / f"scene-{s}.arff")
        else:
            (d / f"scene-{s}.arff").write_text(txt)
    return d


@pytest.mark.parametrize("keep_rows", [404, 454, 1000, 1210])
def test_scene_train_cut_at_a_line_boundary(data_root, scene_lines, tmp_path, keep_rows):
    header_end = next(i for i, l in enumerate(scene_lines) if l.lower().startswith("@data")) + 1
    d = _mulan_dir(tmp_path, data_root, "".join(scene_lines[: header_end + keep_rows]))
    n = pinned("mulan", "scene-train.arff")["rows"]
    with pytest.raises(ValueError, match=rf"scene-train\.arff has {keep_rows} data rows, expected {n}"):
        load_mulan_arff(d, "scene")  # the reader's row count
    with pytest.raises(DataIntegrityError, match=r"mulan/scene-train\.arff has sha256 .*truncated"):
        load_dataset("scene", root=tmp_path)  # the lookup's sha256, before any parsing


def test_doubled_data_section_and_doubled_file(data_root, scene_lines, tmp_path):
    header_end = next(i for i, l in enumerate(scene_lines) if l.lower().startswith("@data")) + 1
    rows = scene_lines[header_end:]
    d = _mulan_dir(tmp_path, data_root, "".join(scene_lines + rows))
    with pytest.raises(ValueError, match=r"scene-train\.arff has 2422 data rows, expected 1211"):
        load_mulan_arff(d, "scene")
    (d / "scene-train.arff").write_text("".join(scene_lines + scene_lines))
    with pytest.raises(ValueError, match=r"scene-train\.arff, line \d+: '@relation' inside the @data"):
        load_mulan_arff(d, "scene")


def test_header_only_and_header_cut_blame_the_train_file(data_root, scene_lines, tmp_path):
    header_end = next(i for i, l in enumerate(scene_lines) if l.lower().startswith("@data")) + 1
    d = _mulan_dir(tmp_path, data_root, "".join(scene_lines[:header_end]))
    with pytest.raises(ValueError, match=r"scene-train\.arff: the @data section has no rows"):
        load_mulan_arff(d, "scene")
    (d / "scene-train.arff").write_text("".join(scene_lines[:150]))  # cut inside the header
    with pytest.raises(ValueError, match=r"scene-train\.arff: no @data line") as e:
        load_mulan_arff(d, "scene")
    assert "scene-test" not in str(e.value)


@pytest.mark.parametrize("content,msg", [
    (b"", "is empty"),
    (b"\x00\x01\x02binary\xff" * 50, "binary file"),
    (b"\xfd7zXZ\x00\x00compressed", "compressed"),
    (b"<!DOCTYPE html>\n<html><body>503 Service Unavailable</body></html>", "HTML page"),
    (b"just some text\n", "unexpected text in the header"),
])
def test_wrong_kind_of_file_names_it(tmp_path, content, msg):
    p = tmp_path / "scene-train.arff"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{p.name}.*{msg}|{msg}.*{p.name}"):
        read_arff(p)


@pytest.mark.parametrize("value", ["?", "nan", "inf", "-inf", "NaN"])
def test_nonfinite_features_refused_unless_asked(tmp_path, value):
    p = tmp_path / "t.arff"
    p.write_text("@relation 't: -C -1'\n@attribute a numeric\n@attribute b numeric\n"
                 f"@attribute y {{0,1}}\n@data\n1,2,1\n3,{value},0\n")
    with pytest.raises(ValueError, match=r"t\.arff: 1 feature values are missing or not finite.*row 1.*'b'"):
        read_arff(p)
    a = read_arff(p, allow_nonfinite=True)
    assert not np.isfinite(a.X[1, 1]) and np.isfinite(a.X[0]).all()


def test_label_and_sparse_errors_name_file_and_line(tmp_path):
    p = tmp_path / "s.arff"
    p.write_text("@relation 's: -C 1'\n@attribute y {0,1}\n@attribute w numeric\n@data\n{0 1,5 2}\n")
    with pytest.raises(ValueError, match=r"s\.arff, line 5 .*index 5 out of range"):
        read_arff(p)
    p.write_text("@relation 's: -C 1'\n@attribute y {0,1}\n@attribute w numeric\n@data\n1,2\n1\n")
    with pytest.raises(ValueError, match=r"s\.arff, line 6 .*1 values, expected 2"):
        read_arff(p)


def test_packaged_scene_matches_mulan_counts():
    ds = load_dataset("scene")  # MLCL_DATA (CI) or the packaged copy: same pinned bytes
    for s, f in (("train", "scene-train.arff"), ("test", "scene-test.arff")):
        pin = pinned("mulan", f)
        assert ds[s].X.shape == (pin["rows"], pin["features"]) and ds[s].Y.shape[1] == pin["labels"]


def test_hdf5_reader_checks(shared_data, tmp_path):
    good = shared_data / "mulsupcon_yeast" / "yeast_official_val.hdf5"
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.hdf5"):
        read_mulsupcon_hdf5(cut)
    with pytest.raises(ValueError, match=r"yeast_official_val\.hdf5 has 300 rows, expected 301"):
        read_mulsupcon_hdf5(good, expected_rows=301)
    bad = tmp_path / "nan.hdf5"
    with h5py.File(bad, "w") as f:
        f["feature"] = np.array([[1.0, np.nan], [0.0, 1.0]])
        f["target"] = np.array([[1], [0]])
    with pytest.raises(ValueError, match=r"nan\.hdf5: 1 feature values are not finite"):
        read_mulsupcon_hdf5(bad)
    assert read_mulsupcon_hdf5(bad, allow_nonfinite=True)[0].shape == (2, 2)
    with h5py.File(bad, "w") as f:
        f["feature"] = np.zeros((3, 2))
        f["target"] = np.zeros((2, 1))
    with pytest.raises(ValueError, match="same number of rows"):
        read_mulsupcon_hdf5(bad)


def test_npy_reader_checks(tmp_path):
    arr = np.concatenate([np.eye(4)[:, :2], np.arange(12.0).reshape(4, 3)], 1)
    np.save(tmp_path / "d.npy", arr)
    for n, idx in (("tr", [0, 1]), ("te", [2, 3]), ("big", [0, 9]), ("leak", [1, 2])):
        np.save(tmp_path / f"{n}.npy", np.array(idx))
    ds = load_mpvae_npy(tmp_path / "d.npy", tmp_path / "tr.npy", None, tmp_path / "te.npy", 2)
    assert len(ds.train) == 2 and ds.n_features == 3
    with pytest.raises(ValueError, match=r"big\.npy: row indices must lie in 0\.\.3"):
        load_mpvae_npy(tmp_path / "d.npy", tmp_path / "big.npy", None, tmp_path / "te.npy", 2)
    with pytest.raises(ValueError, match="share rows"):
        load_mpvae_npy(tmp_path / "d.npy", tmp_path / "leak.npy", None, tmp_path / "te.npy", 2)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "d.npy").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut\.npy is not a readable \.npy"):
        load_mpvae_npy(tmp_path / "cut.npy", tmp_path / "tr.npy", None, tmp_path / "te.npy", 2)
    arr[1, 3] = np.inf
    np.save(tmp_path / "d.npy", arr)
    with pytest.raises(ValueError, match="non-finite"):
        load_mpvae_npy(tmp_path / "d.npy", tmp_path / "tr.npy", None, tmp_path / "te.npy", 2)


def test_csv_reader_checks(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text('text,a,b\n"hello",1,0\n"cut here",1\n')
    with pytest.raises(ValueError, match=r"train\.csv, row 3: 2 fields, the header has 3"):
        read_label_csv(p)
    p.write_text("text,a,b\n")
    with pytest.raises(ValueError, match=r"train\.csv has a header but no rows"):
        read_label_csv(p)
    p.write_text("<html><body>Rate limited</body></html>")
    with pytest.raises(ValueError, match=r"train\.csv is an HTML page"):
        read_label_csv(p)
