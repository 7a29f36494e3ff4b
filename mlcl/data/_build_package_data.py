"""Build the data shipped inside the wheel (``mlcl/data/_files/``) from a data root.

Run from a checkout that has ``../shared/data`` (the project's reference copy)::

    python -m mlcl.data._build_package_data ../shared/data

It writes one ``.xz`` file per source file under ``_files/<dataset dir>/`` and
``_files/manifest.json``: for every file its sha256 and size (raw and packaged), the row/column
counts that the readers check, and the provenance and licence of each dataset. The sha256 of the
*raw* files is what every loader checks, wherever a file is found (``root``, ``MLCL_DATA``, the
user cache, the packaged copy, a download). Rerunning on the same sources gives the same raw
checksums; the ``.xz`` bytes depend only on the liblzma version.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "_files"
XZ_PRESET = 9 | lzma.PRESET_EXTREME

#: dataset directory -> (provenance, {file: reader check}); the layout of ``../shared/data``.
DATASETS: dict[str, dict] = {
    "mulan": {
        "title": "Mulan multi-label benchmarks: scene, emotions, yeast (Mulan's train/test split)",
        "url": "https://mulan.sourceforge.net/datasets-mlc.html",
        "source": "Mulan library datasets page (ARFF + XML); Tsoumakas et al., JMLR 12 (2011)",
        "licence": ("Free for research use, as distributed by the Mulan project. scene: Boutell et "
                    "al., Pattern Recognition 37 (2004); emotions: Trohidis et al., ISMIR 2008; "
                    "yeast: Elisseeff & Weston, NIPS 2001. Cite the original papers."),
        "files": {f"{n}-{s}.arff": {"n_labels": L} for n, L in (("scene", 6), ("emotions", 6),
                                                                  ("yeast", 14))
                  for s in ("train", "test")},
    },
    "mulsupcon_yeast": {
        "title": "MulSupCon's yeast split (row order and label permutation of their HDF5 files)",
        "url": "https://github.com/williamzhangsjtu/MulSupCon",
        "source": ("williamzhangsjtu/MulSupCon@42b23028785203123b673b8a28f5391b9d9726be "
                   "data/yeast_official_*.hdf5, indexed into Mulan yeast-train.arff"),
        "licence": ("Index file derived from the MulSupCon repository; the data are Mulan's "
                    "yeast (see mulan). The HDF5 files are rebuilt exactly from Mulan yeast + "
                    "this index (tested), so they are not shipped."),
        "files": {"split_indices.json": {}},
        # pinned (sha256, rows) but not shipped: read when a user has them in MLCL_DATA
        "pinned_only": {f"yeast_official_{s}.hdf5": {"hdf5": True}
                        for s in ("train", "val", "test", "trainval")},
    },
    "reuters21578": {
        "title": "Reuters-21578, Distribution 1.0 (SGML files and README)",
        "url": "https://kdd.ics.uci.edu/databases/reuters21578/reuters21578.html",
        "source": "UCI KDD archive reuters21578.tar.gz (Lewis 1997)",
        "licence": ("Copyright Reuters Ltd. and Carnegie Group, Inc.; distributed free of charge "
                    "for research purposes only (README.txt, section II). Cite Lewis (1997) and "
                    "name the collection 'Reuters-21578, Distribution 1.0'."),
        "files": {"README.txt": {}, **{f"reut2-{i:03d}.sgm": {"sgml": True} for i in range(22)}},
    },
}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _checks(path: Path, spec: dict) -> dict:
    """Row/column counts the readers verify (computed with the readers themselves)."""
    if "n_labels" in spec:
        from .arff import read_arff

        a = read_arff(path, n_labels=spec["n_labels"])
        return {"rows": int(a.X.shape[0]), "features": int(a.X.shape[1]),
                "labels": int(a.Y.shape[1])}
    if spec.get("hdf5"):
        from .formats import read_mulsupcon_hdf5

        X, Y = read_mulsupcon_hdf5(path)
        return {"rows": int(X.shape[0]), "features": int(X.shape[1]), "labels": int(Y.shape[1])}
    if spec.get("sgml"):
        from .reuters import parse_sgm

        return {"documents": len(parse_sgm(path.read_bytes().decode("latin-1")))}
    return {}


def build(src_root: str | Path, out: Path = HERE) -> dict:
    """Compress the files of :data:`DATASETS` from ``src_root`` into ``out``; return the manifest."""
    src_root = Path(src_root)
    manifest: dict = {
        "format": 1,
        "built_by": "python -m mlcl.data._build_package_data <data root>",
        "note": ("sha256/bytes describe the raw file (what loaders verify); packaged_* the .xz "
                 "shipped in the wheel."),
        "datasets": {},
    }
    for dname, info in DATASETS.items():
        entry = {k: v for k, v in info.items() if k not in ("files", "pinned_only")}
        entry["files"] = {}
        (out / dname).mkdir(parents=True, exist_ok=True)
        for fn, spec in info["files"].items():
            raw = (src_root / dname / fn).read_bytes()
            packed = lzma.compress(raw, preset=XZ_PRESET)
            rel = f"{dname}/{fn}.xz"
            (out / rel).write_bytes(packed)
            entry["files"][fn] = {"sha256": _sha(raw), "bytes": len(raw), "packaged": rel,
                                  "packaged_sha256": _sha(packed), "packaged_bytes": len(packed),
                                  **_checks(src_root / dname / fn, spec)}
        for fn, spec in info.get("pinned_only", {}).items():
            raw = (src_root / dname / fn).read_bytes()
            entry["files"][fn] = {"sha256": _sha(raw), "bytes": len(raw), "packaged": None,
                                  **_checks(src_root / dname / fn, spec)}
        manifest["datasets"][dname] = entry
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (out / "NOTICE.txt").write_text(notice(manifest))
    return manifest


def notice(manifest: dict) -> str:
    """The provenance and licence text shipped beside the data (``_files/NOTICE.txt``)."""
    lines = ["Data shipped with mlcl (mlcl/data/_files/)", "=" * 43, "",
             "Each file is an xz-compressed, byte-identical copy of the source file; its sha256",
             "(of the decompressed bytes) is in manifest.json and is checked on every load.",
             "These data are NOT covered by mlcl's MIT licence: their own terms follow.", ""]
    for dname, d in manifest["datasets"].items():
        shipped = [f for f, e in d["files"].items() if e.get("packaged")]
        lines += [f"{dname}/: {d['title']}", f"  source:  {d['source']}", f"  url:     {d['url']}",
                  f"  terms:   {d['licence']}", f"  files:   {', '.join(shipped)}", ""]
    lines += ["Reuters-21578: its README.txt (shipped, reuters21578/README.txt.xz) is the",
              "authoritative statement of its terms: free distribution for research purposes only.",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    m = build(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    total = sum(f.get("packaged_bytes", 0) for d in m["datasets"].values() for f in d["files"].values())
    print(f"wrote {HERE}: {total / 1e6:.2f} MB packaged")
