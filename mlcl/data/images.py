"""Paper-scale image sets (for users with GPUs and the images): MS-COCO 2014, PASCAL VOC 2007,
NUS-WIDE, MIRFLICKR-25k.

Splits hold image **paths** (``X`` is a list of ``str``; ``split.meta["is_path"]`` is true) and
the multi-hot ``Y``; ``ds.torch(split, transform)`` opens the images with PIL and applies
``transform`` (e.g. :func:`default_transform`, which imports ``torchvision`` lazily). Only
annotation files are parsed here (JSON / XML / text), so neither ``pycocotools`` nor
``torchvision`` is needed to build the label matrices.

Layout under the data root (what the official archives unpack to):

* ``coco/annotations/instances_{train,val}2014.json`` + ``coco/{train,val}2014/*.jpg``:
  80 categories (sorted by category id), train = train2014 (82,783), test = val2014 (40,504).
  Images without any instance annotation are zero-label samples (kept; ``drop_empty=True``).
* ``voc2007/VOCdevkit/VOC2007/{Annotations,ImageSets/Main,JPEGImages}``: 20 classes,
  train = ``trainval`` (5,011), test = ``test`` (4,952); ``difficult="positive"`` (default,
  like ML-GCN) / ``"ignore"`` (objects marked difficult do not create a label).
* ``nus-wide/``: ``Concepts81.txt``, ``ImageList/{Train,Test}Imagelist.txt``,
  ``Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt``, images under
  ``nus-wide/images/``. 81 concepts; many images have no label (reported in the card).
* ``mirflickr25k/``: ``mirflickr/im<i>.jpg`` and ``annotations/<label>.txt`` (1-based image ids);
  24 labels (``relevant=True``: the 14 ``*_r1`` "relevant" labels). No official split: a seeded
  random ``test_fraction``.

Example
-------
>>> from mlcl.data import load_dataset
>>> ds = load_dataset("coco2014")  # with MLCL_DATA/coco  # doctest: +SKIP
>>> ds.n_labels, len(ds.train), len(ds.test)  # doctest: +SKIP
(80, 82783, 40504)
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .base import MultiLabelDataset, Provenance, Split, sha256_files
from .registry import DatasetInfo, register

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
               "sofa", "train", "tvmonitor"]
IMAGE_SETS = {
    "coco2014": ("MS-COCO 2014 (instances annotations)", "https://cocodataset.org/#download",
                 "annotations CC BY 4.0; images under Flickr terms of use"),
    "voc2007": ("PASCAL VOC 2007", "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
                "images under Flickr terms; research use"),
    "nus-wide": ("NUS-WIDE (81 concepts)", "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html",
                 "research use only (NUS licence agreement)"),
    "mirflickr25k": ("MIRFLICKR-25000", "https://press.liacs.nl/mirflickr/",
                     "Creative Commons images; research use"),
}


def default_transform(size: int = 448, train: bool = False) -> Callable:
    """A ``torchvision`` transform (resize, optional flip, tensor, ImageNet normalisation).

    Imports ``torchvision`` lazily (only paper-scale code paths need it).

    Example
    -------
    >>> t = default_transform(224)  # doctest: +SKIP
    """
    from torchvision import transforms as T  # lazy: paper-scale only

    ops: list[Any] = [T.Resize((size, size))]
    if train:
        ops.append(T.RandomHorizontalFlip())
    ops += [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    return T.Compose(ops)


def _paths_split(name: str, paths: list[str], Y: np.ndarray, **meta: Any) -> Split:
    return Split(name, paths, Y, {"is_path": True, **meta})


# ---------------------------------------------------------------- COCO
def coco_labels(annotation_file: str | Path) -> tuple[list[str], list[str], np.ndarray, list[int]]:
    """``(file_names, category_names, Y, image_ids)`` from a COCO ``instances_*.json``.

    Categories sorted by id (80 for 2014); images in the file's order.

    Example
    -------
    >>> coco_labels("coco/annotations/instances_val2014.json")  # doctest: +SKIP
    """
    with open(annotation_file, encoding="utf-8") as f:
        js = json.load(f)
    cats = sorted(js["categories"], key=lambda c: c["id"])
    cpos = {c["id"]: i for i, c in enumerate(cats)}
    imgs = js["images"]
    ipos = {im["id"]: i for i, im in enumerate(imgs)}
    Y = np.zeros((len(imgs), len(cats)), np.uint8)
    for a in js.get("annotations", []):
        Y[ipos[a["image_id"]], cpos[a["category_id"]]] = 1
    return [im["file_name"] for im in imgs], [c["name"] for c in cats], Y, [im["id"] for im in imgs]


def load_coco2014(root: Path, validation_fraction: float = 0.0, seed: int = 0) -> MultiLabelDataset:
    """MS-COCO 2014 multi-label: train2014 → train, val2014 → test (80 categories).

    Example
    -------
    >>> ds = load_coco2014(Path("/data"))  # doctest: +SKIP
    """
    d = Path(root) / "coco"
    files = [d / "annotations" / f"instances_{s}2014.json" for s in ("train", "val")]
    for p in files:
        if not p.exists():
            raise FileNotFoundError(f"dataset coco2014 needs {p}: download annotations_trainval2014.zip "
                                    f"and train2014/val2014 from {IMAGE_SETS['coco2014'][1]} into "
                                    f"MLCL_DATA/coco")
    parts = {}
    names: list[str] = []
    for key, s, p in (("train", "train2014", files[0]), ("test", "val2014", files[1])):
        fn, names, Y, ids = coco_labels(p)
        parts[key] = _paths_split(key, [str(d / s / f) for f in fn], Y, image_id=np.asarray(ids))
    prov = Provenance(source=f"COCO 2014 instances annotations in {d}", version="2014",
                      checksum=f"sha256:{sha256_files(files)}", licence=IMAGE_SETS["coco2014"][2],
                      url=IMAGE_SETS["coco2014"][1], notes="train2014 -> train, val2014 -> test")
    ds = MultiLabelDataset("coco2014", parts["train"], parts["test"], None, names, None, prov, "image")
    return ds.with_validation(validation_fraction, seed) if validation_fraction > 0 else ds


# ---------------------------------------------------------------- VOC 2007
def _voc_dir(root: Path) -> Path:
    for c in (root / "voc2007" / "VOCdevkit" / "VOC2007", root / "voc2007" / "VOC2007",
              root / "voc2007"):
        if (c / "Annotations").is_dir():
            return c
    raise FileNotFoundError(f"dataset voc2007 needs {root / 'voc2007' / 'VOCdevkit' / 'VOC2007'} "
                            f"(Annotations, ImageSets/Main, JPEGImages) from {IMAGE_SETS['voc2007'][1]}")


def voc_labels(voc_dir: str | Path, image_set: str, difficult: str = "positive") -> tuple[list[str], np.ndarray]:
    """``(image_ids, Y)`` of a VOC ``image_set`` (``trainval`` / ``test``) from the XML files.

    Example
    -------
    >>> voc_labels("VOCdevkit/VOC2007", "test")  # doctest: +SKIP
    """
    d = Path(voc_dir)
    ids = [ln.strip() for ln in (d / "ImageSets" / "Main" / f"{image_set}.txt").read_text().split()
           if ln.strip()]
    pos = {c: i for i, c in enumerate(VOC_CLASSES)}
    Y = np.zeros((len(ids), len(VOC_CLASSES)), np.uint8)
    for i, iid in enumerate(ids):
        tree = ET.parse(d / "Annotations" / f"{iid}.xml")
        for obj in tree.getroot().iter("object"):
            cls = (obj.findtext("name") or "").strip()
            diff = (obj.findtext("difficult") or "0").strip() == "1"
            if diff and difficult == "ignore":
                continue
            if cls in pos:
                Y[i, pos[cls]] = 1
    return ids, Y


def load_voc2007(root: Path, difficult: str = "positive", validation_fraction: float = 0.0,
                 seed: int = 0) -> MultiLabelDataset:
    """PASCAL VOC 2007: trainval → train, test → test (20 classes).

    Example
    -------
    >>> ds = load_voc2007(Path("/data"))  # doctest: +SKIP
    """
    if difficult not in ("positive", "ignore"):
        raise ValueError("difficult must be 'positive' or 'ignore'")
    d = _voc_dir(Path(root))
    parts = {}
    for key, s in (("train", "trainval"), ("test", "test")):
        ids, Y = voc_labels(d, s, difficult)
        parts[key] = _paths_split(key, [str(d / "JPEGImages" / f"{i}.jpg") for i in ids], Y,
                                  image_id=ids)
    sets = [d / "ImageSets" / "Main" / f"{s}.txt" for s in ("trainval", "test")]
    prov = Provenance(source=f"PASCAL VOC 2007 in {d}", version="VOC2007",
                      checksum=f"sha256(image sets):{sha256_files(sets)}",
                      licence=IMAGE_SETS["voc2007"][2], url=IMAGE_SETS["voc2007"][1],
                      notes=f"difficult objects: {difficult}")
    ds = MultiLabelDataset("voc2007", parts["train"], parts["test"], None, VOC_CLASSES, None, prov, "image")
    return ds.with_validation(validation_fraction, seed) if validation_fraction > 0 else ds


# ---------------------------------------------------------------- NUS-WIDE
def load_nus_wide(root: Path, validation_fraction: float = 0.0, seed: int = 0) -> MultiLabelDataset:
    """NUS-WIDE, 81 concepts, the official train/test image lists.

    Example
    -------
    >>> ds = load_nus_wide(Path("/data"))  # doctest: +SKIP
    """
    d = Path(root) / "nus-wide"
    cfile = d / "Concepts81.txt"
    if not cfile.exists():
        raise FileNotFoundError(f"dataset nus-wide needs {cfile}, ImageList/ and Groundtruth/ from "
                                f"{IMAGE_SETS['nus-wide'][1]} (research-only licence) in MLCL_DATA/nus-wide")
    concepts = [c.strip() for c in cfile.read_text().split() if c.strip()]
    parts = {}
    for key, s in (("train", "Train"), ("test", "Test")):
        lst = [ln.strip().replace("\\", "/") for ln in
               (d / "ImageList" / f"{s}Imagelist.txt").read_text().splitlines() if ln.strip()]
        cols = []
        for c in concepts:
            v = np.loadtxt(d / "Groundtruth" / "TrainTestLabels" / f"Labels_{c}_{s}.txt",
                           dtype=np.int64, ndmin=1)
            if len(v) != len(lst):
                raise ValueError(f"nus-wide: Labels_{c}_{s}.txt has {len(v)} rows, image list {len(lst)}")
            cols.append(v)
        Y = np.stack(cols, 1).astype(np.uint8)
        parts[key] = _paths_split(key, [str(d / "images" / p) for p in lst], Y)
    prov = Provenance(source=f"NUS-WIDE in {d}", version="NUS-WIDE 81 concepts",
                      checksum=f"sha256:{sha256_files([cfile])}", licence=IMAGE_SETS["nus-wide"][2],
                      url=IMAGE_SETS["nus-wide"][1])
    ds = MultiLabelDataset("nus-wide", parts["train"], parts["test"], None, concepts, None, prov, "image")
    return ds.with_validation(validation_fraction, seed) if validation_fraction > 0 else ds


# ---------------------------------------------------------------- MIRFLICKR-25k
def load_mirflickr25k(root: Path, relevant: bool = False, test_fraction: float = 0.2,
                      validation_fraction: float = 0.0, seed: int = 0,
                      n_images: int = 25000) -> MultiLabelDataset:
    """MIRFLICKR-25k: 24 labels (``relevant=True``: the 14 ``*_r1`` labels), seeded random split.

    Example
    -------
    >>> ds = load_mirflickr25k(Path("/data"))  # doctest: +SKIP
    """
    d = Path(root) / "mirflickr25k"
    ann = d / "annotations"
    if not ann.is_dir():
        raise FileNotFoundError(f"dataset mirflickr25k needs {ann}/ and {d / 'mirflickr'}/ from "
                                f"{IMAGE_SETS['mirflickr25k'][1]}")
    files = sorted(p for p in ann.glob("*.txt") if p.name.lower() != "readme.txt")
    files = [p for p in files if p.stem.endswith("_r1") == relevant]
    names = [re.sub(r"_r1$", "", p.stem) for p in files]
    Y = np.zeros((n_images, len(files)), np.uint8)
    for j, p in enumerate(files):
        ids = np.loadtxt(p, dtype=np.int64, ndmin=1)
        Y[ids - 1, j] = 1
    paths = [str(d / "mirflickr" / f"im{i}.jpg") for i in range(1, n_images + 1)]
    perm = np.random.default_rng(seed).permutation(n_images)
    n_te = int(round(test_fraction * n_images))
    te, tr = np.sort(perm[:n_te]), np.sort(perm[n_te:])
    full = _paths_split("all", paths, Y, image_id=np.arange(1, n_images + 1))
    prov = Provenance(source=f"MIRFLICKR-25k in {d}", version="25k v080",
                      checksum=f"sha256:{sha256_files(files)}", licence=IMAGE_SETS["mirflickr25k"][2],
                      url=IMAGE_SETS["mirflickr25k"][1],
                      notes=f"random split test_fraction={test_fraction} seed={seed}; relevant={relevant}")
    ds = MultiLabelDataset("mirflickr25k", full.subset(tr, "train"), full.subset(te, "test"), None,
                           names, None, prov, "image")
    return ds.with_validation(validation_fraction, seed) if validation_fraction > 0 else ds


_LOADERS = {"coco2014": load_coco2014, "voc2007": load_voc2007, "nus-wide": load_nus_wide,
            "mirflickr25k": load_mirflickr25k}
_CHECK = {
    "coco2014": lambda r: (r / "coco" / "annotations" / "instances_val2014.json").exists(),
    "voc2007": lambda r: any((c / "Annotations").is_dir() for c in (
        r / "voc2007" / "VOCdevkit" / "VOC2007", r / "voc2007" / "VOC2007", r / "voc2007")),
    "nus-wide": lambda r: (r / "nus-wide" / "Concepts81.txt").exists(),
    "mirflickr25k": lambda r: (r / "mirflickr25k" / "annotations").is_dir(),
}
_DIRS = {"coco2014": "coco"}
_PAPERS = {"coco2014": "MulCon, MulSupCon", "voc2007": "MulSupCon, MulCon", "nus-wide": "MulSupCon",
           "mirflickr25k": "C-GMVAE, MulSupCon"}
for _n, (_desc, _url, _lic) in IMAGE_SETS.items():
    register(DatasetInfo(_n, _LOADERS[_n], _desc, "image", _CHECK[_n],
                         f"download from {_url} into MLCL_DATA/{_DIRS.get(_n, _n)}", _lic, True,
                         _PAPERS[_n]))
