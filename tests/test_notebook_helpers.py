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
