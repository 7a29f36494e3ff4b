from __future__ import annotations

import pytest

from mlcl import results
from mlcl.notebook import pick_device, setup


def test_setup_seeds_profile_and_pick():
    ctx = setup(profile="smoke", seeds=2, device="cpu")
    assert ctx.seeds == [0, 1] and ctx.is_smoke and ctx.pick(smoke=1, full=2) == 1
    assert setup(profile="full", seeds=[5], device="cpu").pick(smoke=1, full=2) == 2
    with pytest.raises(ValueError, match="profile"):
        setup(profile="fast")
    with pytest.raises(ValueError, match="device"):
        pick_device("tpu")


def test_profile_note_names_committed_full_results(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCL_RESULTS", str(tmp_path))
    rec = [{"dataset": "d", "method": "m", "protocol": "-", "metric": "x", "seed": 0, "value": 1.0}]
    results.save("demo", rec, profile="full", seeds=[0, 1, 2], wall_seconds=120, device="cpu")
    note = setup(profile="smoke", seeds=1, device="cpu").profile_note("demo", "absent").data
    assert "profile `smoke`" in note and "results/full/demo.json`: 1 records" in note
    assert "seeds [0, 1, 2], 2.0 min" in note
    assert "absent.json`: not computed yet" in note


def _records():
    import pandas as pd

    rows = [{"dataset": "d", "method": m, "protocol": p, "metric": k, "seed": s, "value": v}
            for m, base in (("a", 0.5), ("b", 0.25)) for p in ("paper", "honest") for k in ("f1", "map")
            for s, v in enumerate([base, base + 0.125, base + 0.5])]
    return pd.DataFrame(rows)


def test_paper_comparison_mean_std_and_delta():
    import pandas as pd

    from mlcl.analysis.compare import paper_comparison

    paper = pd.DataFrame([{"dataset": "d", "method": "a", "metric": "f1", "value": 0.5}])
    m = paper_comparison(_records(), paper, "paper").set_index(["method", "metric"])
    vals = [0.5, 0.625, 1.0]
    assert m.loc[("a", "f1"), "mean"] == sum(vals) / 3 and m.loc[("a", "f1"), "n"] == 3
    assert abs(m.loc[("a", "f1"), "std"] - pd.Series(vals).std(ddof=1)) < 1e-12
    assert m.loc[("a", "f1"), "Δ"] == sum(vals) / 3 - 0.5
    assert pd.isna(m.loc[("b", "map"), "paper"]) and pd.isna(m.loc[("b", "map"), "Δ"])
    with pytest.raises(ValueError, match="protocol 'test'"):
        paper_comparison(_records(), paper, "test")


def test_paired_differences_by_seed():
    from mlcl.analysis.compare import paired_differences

    df = _records()
    df = df[~((df.method == "b") & (df.seed == 2))]  # a seed run for one method only is left out
    d = paired_differences(df, "a", "b", protocol="honest").loc[("d", "f1")]
    assert d["per seed"] == (0.25, 0.25) and d["mean diff"] == 0.25 and d["wins"] == "2/2"
    with pytest.raises(ValueError, match="method 'c'"):
        paired_differences(df, "a", "c")


def test_load_with_validation(data_root):
    from mlcl.analysis.compare import load_with_validation
    from mlcl.data import load_dataset

    ds = load_with_validation("scene")  # Mulan's scene has no validation split: 20 % of train
    full = load_dataset("scene")
    assert full.validation is None and len(ds.validation) + len(ds.train) == len(full.train)
    assert abs(len(ds.validation) - 0.2 * len(full.train)) <= 1
    assert load_with_validation("yeast-mulsupcon").validation is not None


@pytest.mark.parametrize("module", [
    "mlcl.analysis.attention", "mlcl.analysis.attraction", "mlcl.analysis.clustering", "mlcl.analysis.collapse",
    "mlcl.analysis.compare", "mlcl.analysis.evaluation", "mlcl.analysis.positives", "mlcl.analysis.probe",
    "mlcl.analysis.retrieval", "mlcl.models.abalone", "mlcl.models.heads", "mlcl.models.inference",
    "mlcl.models.logistic", "mlcl.training.abalone", "mlcl.training.mulcon",
])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
