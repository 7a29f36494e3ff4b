"""Text CSV / Hugging Face loaders and paper-scale image sets, on tiny fixtures made here."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mlcl.data import list_datasets, load_dataset
from mlcl.data.textcsv import read_label_csv

FIX = Path(__file__).parent / "fixtures"


# ------------------------------------------------------------------ text
def test_text_csv_layout(tmp_path):
    d = tmp_path / "aapd"
    d.mkdir()
    for s in ("train", "dev", "test"):
        shutil.copy(FIX / "tiny_text.csv", d / f"{s}.csv")
    ds = load_dataset("aapd", root=tmp_path)
    assert ds.kind == "text" and ds.label_names == ["cs.AI", "cs.LG", "math.ST"]
    assert ds.train.X[0] == "Contrastive learning, for multi-label data"
    assert ds.train.X[1] == 'A note on "quoted" estimators'
    np.testing.assert_array_equal(ds.test.Y, [[1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]])
    assert len(ds.validation) == 4 and ds.card()["n_empty"] == 3
    x, y = ds.torch("train")[0]
    assert isinstance(x, str) and y.tolist() == [1.0, 1.0, 0.0]
    xb, yb = next(iter(ds.dataloader("train", batch_size=4, shuffle=False)))
    assert list(xb) == ds.train.X and tuple(yb.shape) == (4, 3)


def test_text_csv_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="hf_name"):
        load_dataset("uk-lex", root=tmp_path)
    with pytest.raises(ValueError, match="0/1"):
        bad = tmp_path / "bad.csv"
        bad.write_text("text,a\nhello,2\n")
        read_label_csv(bad)


class _FakeSplit:
    def __init__(self, rows, features):
        self.rows, self.features = rows, features
        self.column_names = list(rows[0])

    def __getitem__(self, col):
        return [r[col] for r in self.rows]


def test_text_hf_path_lazy(monkeypatch, tmp_path):
    names = types.SimpleNamespace(names=["a", "b", "c"])
    feats = {"labels": types.SimpleNamespace(feature=names)}
    dd = {s: _FakeSplit([{"text": f"{s} {i}", "labels": [i % 3]} for i in range(4)], feats)
          for s in ("train", "validation", "test")}
    calls = []
    fake = types.ModuleType("datasets")
    fake.__version__ = "0.fake"
    fake.load_dataset = lambda name, config=None, **kw: calls.append((name, config)) or dd
    monkeypatch.setitem(sys.modules, "datasets", fake)
    ds = load_dataset("uk-lex", root=tmp_path, source="hf", hf_name="someone/uk-lex")
    assert calls == [("someone/uk-lex", None)] and ds.label_names == ["a", "b", "c"]
    assert ds.train.X[1] == "train 1" and ds.train.Y[1].tolist() == [0, 1, 0]
    assert "Hugging Face" in ds.provenance.source
    with pytest.raises(ValueError, match="hf_name"):
        load_dataset("uk-lex", root=tmp_path, source="hf")


# ------------------------------------------------------------------ images
def _png(path: Path, colour=(255, 0, 0)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), colour).save(path)


def test_coco2014_fixture(tmp_path):
    d = tmp_path / "coco"
    (d / "annotations").mkdir(parents=True)
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 2, "name": "bicycle"}]
    for split, imgs, anns in (
        ("train", [1, 2, 3], [(1, 1), (1, 3), (1, 3), (2, 2)]),  # image 3: no annotation
        ("val", [10, 11], [(10, 3), (11, 1)]),
    ):
        js = {"images": [{"id": i, "file_name": f"COCO_{split}2014_{i:012d}.jpg"} for i in imgs],
              "annotations": [{"id": k, "image_id": a, "category_id": c} for k, (a, c) in enumerate(anns)],
              "categories": cats}
        (d / "annotations" / f"instances_{split}2014.json").write_text(json.dumps(js))
        for i in imgs:
            _png(d / f"{split}2014" / f"COCO_{split}2014_{i:012d}.jpg")
    ds = load_dataset("coco2014", root=tmp_path)
    assert ds.label_names == ["person", "bicycle", "car"]  # sorted by category id
    np.testing.assert_array_equal(ds.train.Y, [[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(ds.test.Y, [[0, 0, 1], [1, 0, 0]])
    assert ds.card()["n_empty"] == 1 and len(load_dataset("coco2014", root=tmp_path, drop_empty=True).train) == 2
    x, y = ds.torch("train")[0]
    assert x.size == (12, 10) and y.tolist() == [1.0, 0.0, 1.0]
    t = ds.torch("train", transform=lambda im: np.asarray(im).shape)
    assert t[0][0] == (10, 12, 3)
    assert {r["name"]: r["available"] for r in list_datasets(tmp_path)}["coco2014"]


def test_voc2007_fixture(tmp_path):
    d = tmp_path / "voc2007" / "VOCdevkit" / "VOC2007"
    (d / "ImageSets" / "Main").mkdir(parents=True)
    (d / "Annotations").mkdir()
    objs = {"000001": [("dog", 0), ("person", 0)], "000002": [("cat", 1)], "000003": [("car", 0), ("car", 0)]}
    for iid, ob in objs.items():
        xml = "<annotation>" + "".join(
            f"<object><name>{n}</name><difficult>{df}</difficult></object>" for n, df in ob) + "</annotation>"
        (d / "Annotations" / f"{iid}.xml").write_text(xml)
    (d / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n000002\n")
    (d / "ImageSets" / "Main" / "test.txt").write_text("000003\n")
    ds = load_dataset("voc2007", root=tmp_path)
    assert ds.n_labels == 20 and ds.train.X[0].endswith("JPEGImages/000001.jpg")
    assert ds.train.Y[0, ds.label_names.index("dog")] == 1 and ds.train.Y[1, ds.label_names.index("cat")] == 1
    ign = load_dataset("voc2007", root=tmp_path, difficult="ignore")
    assert ign.train.Y[1].sum() == 0 and ign.test.Y[0].sum() == 1


def test_nus_wide_fixture(tmp_path):
    d = tmp_path / "nus-wide"
    (d / "ImageList").mkdir(parents=True)
    (d / "Groundtruth" / "TrainTestLabels").mkdir(parents=True)
    (d / "Concepts81.txt").write_text("sky\nwater\n")
    (d / "ImageList" / "TrainImagelist.txt").write_text("actor\\0001.jpg\nactor\\0002.jpg\n")
    (d / "ImageList" / "TestImagelist.txt").write_text("beach\\0003.jpg\n")
    for c, tr, te in (("sky", "1\n0\n", "1\n"), ("water", "1\n0\n", "0\n")):
        (d / "Groundtruth" / "TrainTestLabels" / f"Labels_{c}_Train.txt").write_text(tr)
        (d / "Groundtruth" / "TrainTestLabels" / f"Labels_{c}_Test.txt").write_text(te)
    ds = load_dataset("nus-wide", root=tmp_path)
    assert ds.label_names == ["sky", "water"] and ds.train.X[0].endswith("images/actor/0001.jpg")
    np.testing.assert_array_equal(ds.train.Y, [[1, 1], [0, 0]])
    assert ds.card()["n_empty"] == 1


def test_mirflickr_fixture(tmp_path):
    d = tmp_path / "mirflickr25k" / "annotations"
    d.mkdir(parents=True)
    (d / "README.txt").write_text("readme")
    (d / "sky.txt").write_text("1\n3\n")
    (d / "sky_r1.txt").write_text("3\n")
    (d / "dog.txt").write_text("2\n")
    ds = load_dataset("mirflickr25k", root=tmp_path, n_images=5, test_fraction=0.4, seed=0)
    assert ds.label_names == ["dog", "sky"] and len(ds.train) == 3 and len(ds.test) == 2
    Y = np.zeros((5, 2), np.uint8)
    Y[[0, 2], 1] = 1
    Y[1, 0] = 1
    ids = np.concatenate([ds.train.meta["image_id"], ds.test.meta["image_id"]])
    np.testing.assert_array_equal(np.concatenate([ds.train.Y, ds.test.Y]), Y[ids - 1])
    r = load_dataset("mirflickr25k", root=tmp_path, n_images=5, relevant=True)
    assert r.label_names == ["sky"]


def test_torchvision_not_imported_at_module_level():
    import subprocess

    code = ("import sys, mlcl.data as d; d.list_datasets(); d.load_dataset('digits', n_train=10, "
            "n_validation=0, n_test=5); print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
