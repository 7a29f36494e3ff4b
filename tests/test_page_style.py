"""What ``setup()`` and ``ctx.save`` do for clean book pages (issue 17.4): no machine path or
``PosixPath`` in a saved-results cell, counts printed as integers and floats at 3 decimals, figures
as wide as the text column with no text under 9 pt."""

from __future__ import annotations

import re

import pytest

from mlcl import notebook
from mlcl.notebook import SavedPath, setup


@pytest.fixture
def styled(monkeypatch, tmp_path):
    """``setup()`` in a clean pandas/matplotlib state, restored afterwards (options are global)."""
    import matplotlib
    import pandas as pd

    monkeypatch.setenv("MLCL_RESULTS", str(tmp_path / "results"))
    rc = matplotlib.rcParams.copy()
    ctx = setup(profile="smoke", seeds=1, device="cpu")
    yield ctx
    pd.reset_option("display.float_format")
    pd.reset_option("display.precision")
    matplotlib.rcParams.update(rc)


def test_save_names_the_file_by_its_book_name_and_displays_nothing_more(styled, tmp_path, capsys):
    from IPython.core.formatters import DisplayFormatter

    rec = [{"dataset": "d", "method": "m", "protocol": "-", "metric": "x", "seed": 0, "value": 1.0}]
    path = styled.save("demo", rec)
    out = capsys.readouterr().out
    assert out == "saved 1 records -> results/smoke/demo.json\n"
    assert str(tmp_path) not in out
    assert isinstance(path, SavedPath) and path.is_absolute() and path.is_file() and path == tmp_path / "results" / "smoke" / "demo.json"
    assert repr(path) == "results/smoke/demo.json" and "PosixPath" not in repr(path)
    assert DisplayFormatter().format(path) == ({}, {}), "a cell ending in ctx.save(...) must show nothing more"
    assert "PosixPath" in repr(path.parent) or "WindowsPath" in repr(path.parent)  # derived paths stay paths


def test_tables_print_counts_as_integers_and_floats_at_three_decimals(styled):
    import pandas as pd

    df = pd.DataFrame({"value": [1200.0, 300.0, 4.24, 0.303, 0.0], "error": [1e-12, 0.5, float("nan"), 2.0, -0.25]})
    text = repr(df)
    for want in (" 1200 ", " 300 ", "4.240", "0.303", "1.00e-12", "0.500", "NaN", "-0.250"):
        assert want in text + " ", f"{want!r} not in\n{text}"
    assert not re.search(r"1200\.0|\b300\.0|0\.000\b", text), text
    html = df._repr_html_()
    assert ">1200<" in html and ">4.240<" in html


def test_figures_fit_the_text_column_with_text_of_at_least_9_pt(styled):
    import matplotlib
    from matplotlib.font_manager import FontProperties

    rc = matplotlib.rcParams
    width_px = rc["figure.figsize"][0] * rc["figure.dpi"]
    assert rc["figure.dpi"] == rc["savefig.dpi"] == 100
    assert width_px <= 688, "the text column is 688 px wide at a 1280 px window: wider figures shrink"
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize", "legend.title_fontsize", "figure.titlesize"):
        size = FontProperties(size=rc[key] if rc[key] is not None else rc["font.size"]).get_size_in_points()
        assert size >= notebook.MIN_FONT_PT, f"{key} = {size} pt"
