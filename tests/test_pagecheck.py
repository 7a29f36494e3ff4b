"""The page checker (``python -m mlcl.pagecheck``) in a real headless Chromium: on a tiny site with
one violation of each kind, every kind is found and a clean page reports nothing; then the built
book itself (marker ``pages``, deselected in pyproject's addopts until its pages are clean).

Chromium missing is a FAILURE naming the apt command (``.ci/run`` installs it), never a skip.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from mlcl import pagecheck
from mlcl.pagecheck import APT_HINT, PagecheckError, Violation, check_site, find_browser, main


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    try:
        return find_browser()
    except PagecheckError as e:
        pytest.fail(f"{e}", pytrace=False)


def _png(width: int, height: int) -> bytes:
    """A grey PNG of the given size (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
  body {{ margin: 0; font: 16px sans-serif; }}
  article.bd-article {{ max-width: 600px; padding: 0 20px; margin: 0 auto; }}
  img {{ max-width: 100%; }}
  pre {{ overflow-x: auto; white-space: pre; }}
</style></head><body><article class="bd-article">
<section id="top"><h1>{title}</h1>
{body}
</section></article></body></html>"""

CELL = ('<div class="cell"><div class="cell_input"><pre>{code}</pre></div>'
        '<div class="cell_output">{output}</div></div>')

CLEAN = "\n".join([
    '<p>Prose with a <a href="#top">link to the top</a>, one <a href="bad.html#wide">to an anchor of another '
    'page</a>, an <a href="https://example.org/x">external one</a> and a Warning in prose.</p>',
    '<div style="overflow-x: auto"><table style="width: 1500px"><tr><td>a wide table that scrolls</td>'
    '<td>0.500</td></tr></table></div>',
    CELL.format(code="print(df)", output='<div class="output stream"><pre>   method  value\n0  BR-LR  0.833</pre></div>'
                '<table><tr><td>1200</td><td>0.303</td></tr></table>'),
    CELL.format(code="plt.show()", output='<img src="fig_ok.png" alt="a figure drawn at the column width">'),
])

BAD = "\n".join([
    '<div id="wide" style="width: 1500px">a block wider than the column</div>',
    '<div style="overflow-x: hidden"><table style="width: 1500px"><tr><td>cut off</td></tr></table></div>',
    CELL.format(code="x = 1  # " + "a very long line " * 20, output=""),
    CELL.format(code="import tqdm", output='<div class="output stderr"><pre>/work/main/.venv/lib/python3.11/'
                "site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found</pre></div>"),
    CELL.format(code="1 / 0", output='<div class="output traceback"><pre>Traceback (most recent call last):\n'
                "ZeroDivisionError: division by zero</pre></div>"),
    CELL.format(code='ctx.save("x", recs)', output='<div class="output text_plain"><pre>'
                "PosixPath('results/smoke/x.json')</pre></div>"),
    CELL.format(code="df", output="<table><tr><th>std</th><td>NaN</td></tr></table>"),
    CELL.format(code="train()", output='<div class="output stream"><pre>train:  50%|#####     | 5/10</pre></div>'),
    CELL.format(code="plt.show()", output='<img src="fig_wide.png" alt="a figure drawn too wide">'),
    r'<p>Unrendered display math $$x^2$$ and an inline one <span class="math">\(y_i\)</span>.</p>',
    '<p><mjx-merror data-mjx-error="Undefined control sequence \\foo">\\foo</mjx-merror></p>',
    '<p><a href="missing.html">a missing page</a> and <a href="index.html#nowhere">a missing anchor</a>.</p>',
    '<div class="cell tag_injected-parameters"><div class="cell_input"><pre># Parameters\nprofile = "full"</pre>'
    '</div></div>',
])

KINDS = {"overflow", "long-code-line", "stderr", "warning", "machine-path", "traceback", "posixpath", "nan",
         "progress-bar", "small-figure", "math", "broken-link", "injected-parameters"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text(PAGE.format(title="clean", body=CLEAN))
    (root / "bad.html").write_text(PAGE.format(title="bad", body=BAD))
    (root / "redirect.html").write_text('<meta http-equiv="Refresh" content="0; url=index.html" />')
    (root / "fig_ok.png").write_bytes(_png(560, 40))
    (root / "fig_wide.png").write_bytes(_png(1500, 40))
    return root


@pytest.fixture(scope="module")
def found(site, browser, tmp_path_factory) -> tuple[list[Violation], Path]:
    shots = tmp_path_factory.mktemp("shots")
    return check_site(site, widths=(1280, 390), shots=shots), shots


def test_each_kind_of_violation_is_found(found):
    violations, _ = found
    bad = [v for v in violations if v.page == "bad.html" and v.width == 1280]
    assert {v.kind for v in bad} == KINDS, "\n".join(map(str, bad))
    detail = "\n".join(map(str, bad))
    for want in ("spans", "cuts off", "TqdmWarning", "/work/main/.venv", "PosixPath(", "1 NaN shown", "50%|",
                 "1500 px wide, shown at 600 px", "$$x^2$$", "Undefined control sequence", r"not rendered",
                 "'missing.html': no such file", "no anchor #nowhere in index.html", "a very long line"):
        assert want in detail, f"{want!r} not reported:\n{detail}"
    # a line names the page, the width, the kind and the cell it comes from
    assert any(str(v).startswith("bad.html @1280px: posixpath: code cell 4 (ctx.save(") for v in bad), detail


def test_a_clean_page_reports_nothing_at_either_width(found):
    violations, _ = found
    clean = [v for v in violations if v.page in ("index.html", "redirect.html")]
    assert not clean, "\n".join(map(str, clean))


def test_every_page_and_width_has_a_screenshot(found):
    _, shots = found
    names = sorted(p.name for p in shots.glob("*.png"))
    assert names == sorted(f"{p}.{w}.png" for p in ("bad.html", "index.html") for w in (1280, 390))
    assert all((shots / n).read_bytes().startswith(b"\x89PNG") for n in names)


def test_cli_prints_one_line_per_violation_and_exits_nonzero(site, browser, tmp_path, capsys):
    assert main([str(site), "--page", "index.html", "--width", "1280", "--shots", ""]) == 0
    assert capsys.readouterr().out == ""
    assert main([str(site), "--page", "bad.html", "--width", "1280", "--shots", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= len(KINDS) and all(ln.startswith("bad.html @1280px: ") for ln in lines)


def test_missing_chromium_names_the_apt_command(site, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(site))  # nothing executable there
    monkeypatch.delenv("MLCL_CHROMIUM", raising=False)
    monkeypatch.delenv("MLCL_CHROMEDRIVER", raising=False)
    with pytest.raises(PagecheckError, match="chromium and chromedriver not found: install them with"):
        find_browser()
    assert main([str(site)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and APT_HINT in err[0]
    monkeypatch.setenv("MLCL_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(PagecheckError, match=r"\$MLCL_CHROMIUM=/nonexistent/chromium is not an executable"):
        find_browser()


def test_not_a_site_is_refused(tmp_path, browser):
    with pytest.raises(PagecheckError, match="no HTML site there"):
        check_site(tmp_path)


def test_docstring_example_runs():
    import doctest

    res = doctest.testmod(pagecheck)
    assert res.attempted > 0 and res.failed == 0


@pytest.mark.book
@pytest.mark.pages
def test_every_page_of_the_built_book_is_clean(repo, browser, timed):
    """The published book (``MLCL_PAGES_FROM=build``: the last ``mlcl reproduce`` instead) at 1280
    and 390 px: no overflow, stderr, warnings, machine paths, broken links, unrendered math or NaN.
    Screenshots of every page and width stay in ``_build/pagecheck/`` (CI artefacts)."""
    from mlcl.book import build

    source = os.environ.get("MLCL_PAGES_FROM", "committed")
    code, log, _ = build(repo, strict=True, source=source)
    assert code == 0, "the book did not build:\n" + "\n".join(log.splitlines()[-30:])
    violations = check_site(repo / "_build" / "html", shots=repo / "_build" / "pagecheck")
    shown = "\n".join(map(str, violations[:80]))
    more = f"\n... and {len(violations) - 80} more" if len(violations) > 80 else ""
    assert not violations, (f"{len(violations)} page violation(s) (screenshots in _build/pagecheck/; "
                            f"`python -m mlcl.pagecheck` lists them):\n{shown}{more}")
