from __future__ import annotations

import json

import pandas as pd
import pytest

from mlcl import results


def _recs():
    return [
        {"dataset": "yeast", "method": m, "protocol": p, "metric": "micro_f1", "seed": s, "value": v}
        for m, base in (("BR", 0.6), ("MLP", 0.65))
        for p, off in (("paper", 0.02), ("honest", 0.0))
        for s, v in ((0, base + off), (1, base + off + 0.01))
    ]


def test_save_load_roundtrip_with_provenance(tmp_path):
    path = results.save("demo", _recs(), profile="smoke", seeds=[0, 1], wall_seconds=1.234, root=tmp_path)
    assert path == tmp_path / "smoke" / "demo.json"
    data = json.loads(path.read_text())
    prov = data["provenance"]
    for k in ("git_commit", "git_dirty", "date", "profile", "seeds", "versions", "device", "wall_seconds"):
        assert k in prov
    assert prov["seeds"] == [0, 1] and prov["profile"] == "smoke"
    assert {"python", "torch", "mlcl"} <= set(prov["versions"])
    prov2, df = results.load("demo", "smoke", root=tmp_path)
    assert prov2 == prov and len(df) == 8 and set(results.RECORD_KEYS) <= set(df.columns)


def test_summarize_pivots_mean_and_std(tmp_path):
    df = pd.DataFrame(_recs())
    tab = results.summarize(df, digits=3)
    assert tab.loc[("yeast", "BR"), ("honest", "micro_f1")] == "0.605 ± 0.007"
    raw = results.summarize(df, fmt=False)
    assert raw.loc[("yeast", "MLP"), ("mean", "paper", "micro_f1")] == pytest.approx(0.675)


@pytest.mark.parametrize("bad", [{"protocol": "test"}, {"metric": None, "protocol": "x"}])
def test_bad_records_are_refused_with_a_clear_error(tmp_path, bad):
    rec = {**_recs()[0], **bad}
    with pytest.raises(ValueError, match="protocol"):
        results.save("bad", [rec], profile="smoke", seeds=0, wall_seconds=0, root=tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        results.save("bad", [{"dataset": "x"}], profile="smoke", seeds=0, wall_seconds=0, root=tmp_path)
    with pytest.raises(ValueError, match="profile"):
        results.save("bad", _recs(), profile="quick", seeds=0, wall_seconds=0, root=tmp_path)


def test_missing_results_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="mlcl reproduce --profile full"):
        results.load("nothing", "full", root=tmp_path)


def test_paper_results_are_the_shared_table(repo, shared_data):
    ours = results.paper_results()
    theirs = pd.read_csv(shared_data.parent / "reference" / "paper_results.csv")
    pd.testing.assert_frame_equal(ours, theirs)
    ms = results.paper_results("MulSupCon", "Table 2")
    yeast = ms[(ms.dataset == "yeast") & (ms.method == "MulSupCon")].set_index("metric")["value"]
    assert yeast["example_f1"] == pytest.approx(0.659)


def test_paper_results_come_from_the_package_outside_a_checkout(tmp_path, monkeypatch, repo):
    """An installed wheel has no results/paper/ beside it: the packaged copy is read instead."""
    import shutil

    from mlcl import project

    packaged = tmp_path / "pkg"
    (packaged / "results" / "paper").mkdir(parents=True)
    shutil.copy2(repo / "results" / "paper" / "paper_results.csv", packaged / "results" / "paper")
    monkeypatch.setattr(project, "PACKAGED", packaged)
    monkeypatch.setenv("MLCL_RESULTS", str(tmp_path / "empty"))  # a working directory without results/
    df = results.paper_results()
    pd.testing.assert_frame_equal(df, pd.read_csv(repo / "results" / "paper" / "paper_results.csv"))
    (packaged / "results" / "full").mkdir()
    results.save("demo", _recs(), profile="full", seeds=[0, 1], wall_seconds=1.0, root=packaged / "results")
    assert len(results.load_records("demo", "full")) == len(_recs()), "committed full results travel too"
    monkeypatch.setattr(project, "PACKAGED", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="packaged in the wheel"):
        results.paper_results()


def test_provenance_records_the_code_state_at_the_start_of_a_run(monkeypatch):
    # `mlcl reproduce` reads git once, before the kernel starts, and hands the state to the kernel:
    # what the tree does during a long run must not change which commit the numbers are credited to.
    monkeypatch.setenv("MLCL_GIT_COMMIT", "0123456789abcdef")
    monkeypatch.setenv("MLCL_GIT_DIRTY", "")
    monkeypatch.setenv("MLCL_NOTEBOOK", "01_cgmvae")
    p = results.provenance(profile="smoke", seeds=[0], wall_seconds=1.0)
    assert (p["git_commit"], p["git_dirty"], p["notebook"]) == ("0123456789abcdef", False, "01_cgmvae")
    monkeypatch.setenv("MLCL_GIT_DIRTY", "1")
    assert results.provenance(profile="smoke", seeds=[0], wall_seconds=1.0)["git_dirty"] is True


def test_a_run_lists_only_the_results_its_own_kernel_wrote(tmp_path):
    from mlcl.reproduce import _written_by

    mine, theirs, old = (tmp_path / f"{n}.json" for n in ("mine", "theirs", "old"))
    mine.write_text(json.dumps({"provenance": {"notebook": "02_mulsupcon"}, "records": []}))
    theirs.write_text(json.dumps({"provenance": {"notebook": "04_abalone"}, "records": []}))
    old.write_text(json.dumps({"provenance": {}, "records": []}))  # saved outside `mlcl reproduce`
    assert [_written_by(p, "02_mulsupcon") for p in (mine, theirs, old)] == [True, False, True]
