"""Render every page of a built book in headless Chromium and report what a reader should not see.

``python -m mlcl.pagecheck _build/html`` opens each HTML page at 1280 px (desktop) and 390 px
(phone) widths, waits for MathJax and the images, keeps a full-page PNG of every page and width
(``_build/pagecheck/``), prints one line per violation and exits 1 when there is any. What counts:

* ``overflow``: an element (or a line of text) reaches past the text column, outside any scroll
  container (``overflow-x: auto|scroll``) that lets it scroll, or content cut off by
  ``overflow-x: hidden|clip``;
* ``long-code-line``: source code (not an output) that scrolls sideways: long code lines must wrap;
* ``stderr``: a cell output written to stderr (a warning, a progress bar, a log line);
* ``warning``: ``…Warning`` in a cell output; ``traceback``: ``Traceback`` or an error output;
* ``machine-path``: ``/tmp/``, ``/root/``, ``/home/``, ``/work/``, ``.venv``, ``site-packages`` or
  ``../shared/`` anywhere in the page text (a path of the machine that built it);
* ``posixpath``: ``PosixPath(`` / ``WindowsPath(`` in a cell output (a ``Path`` object's repr);
* ``broken-link``: ``href``/``src`` to a file missing from the site, or to a missing ``#anchor``;
* ``math``: math MathJax left as text (``$$``, ``\\(``, ``\\[``), a ``mjx-merror``, or a ``.math``
  element with no rendered ``mjx-container``;
* ``nan``: ``NaN``/``nan``/``<NA>``/``NaT`` shown in a cell output;
* ``progress-bar``: a tqdm bar (``42%|███``) in a cell output;
* ``injected-parameters``: papermill's injected ``# Parameters`` cell shown on the page;
* ``small-figure`` (desktop width only): a figure drawn smaller than its size. ``mlcl.notebook.setup``
  sets text ≥ 9 pt at 100 dpi (12.5 px) and CSS 9 pt is 12 px, so a figure shown at under
  :data:`MIN_FIGURE_SCALE` of its size has text below ~9 pt.

Chromium is the Debian ``chromium`` + ``chromium-driver`` packages (``$MLCL_CHROMIUM`` /
``$MLCL_CHROMEDRIVER`` override them), driven by ``selenium`` (the ``dev`` extra); a missing one
is an error naming the command that installs it.

Example:
    >>> from mlcl.pagecheck import Violation
    >>> str(Violation("notebooks/02.html", 390, "posixpath", "code cell 7 (ctx.save(...))"))
    'notebooks/02.html @390px: posixpath: code cell 7 (ctx.save(...))'
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlcl.project import MlclError

WIDTHS = (1280, 390)
#: Below this ratio of shown to drawn width, 9-pt figure text is drawn under ~8 pt: stack or split panels.
MIN_FIGURE_SCALE = 0.9
#: Widths at which figures are checked for shrinking (on a phone every figure shrinks; readers zoom).
FIGURE_CHECK_MIN_WIDTH = 1000
APT_HINT = "apt-get update && apt-get install -y chromium chromium-driver"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--force-device-scale-factor=1", "--disable-dev-shm-usage")
SKIP_DIRS = {"_static", "_sources", "_downloads", "_images", "_extra", "_results", "jupyter_execute"}

MACHINE_PATH = re.compile(r"/tmp/|/root/|/home/|/work/|\.venv\b|site-packages|\.\./shared/")
WARNING = re.compile(r"\b[A-Z]?\w*Warning\b")
NAN = re.compile(r"(?<![\w.])(NaN|nan|<NA>|NaT)(?![\w.])")
PROGRESS = re.compile(r"\d+%\|")
PATH_REPR = re.compile(r"\b(?:Posix|Windows)Path\(")
RAW_MATH = re.compile(r"\$\$|\\\(|\\\[|\\begin\{")


class PagecheckError(MlclError):
    """Chromium, its driver or selenium is missing, or the site is not a built book."""


@dataclass(frozen=True)
class Violation:
    page: str
    width: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page} @{self.width}px: {self.kind}: {self.detail}"


# What the page reports about itself, gathered in one pass (see the kinds in the module docstring).
_PAGE_JS = r"""
const done = arguments[arguments.length - 1];
const MIN_W = arguments[0];
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await document.fonts.ready;
  await Promise.all([...document.images].map(i => i.complete ? null :
        new Promise(r => { i.onload = i.onerror = r; })));
  const art = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const cells = [...art.querySelectorAll('div.cell')];
  const where = (el) => {   // "code cell k (first line)" or "section #id"
    const cell = el.closest('div.cell');
    if (cell) {
      const pre = cell.querySelector('.cell_input pre');
      const first = pre ? pre.innerText.split('\n').find(l => l.trim()) || '' : '';
      return `code cell ${cells.indexOf(cell) + 1} (${first.trim().slice(0, 60)})`;
    }
    const sec = el.closest('section[id]');
    return sec ? `section #${sec.id}` : 'page';
  };
  const describe = (el) => {
    const cls = (typeof el.className === 'string' && el.className) ? '.' + el.className.trim().split(/\s+/).slice(0, 3).join('.') : '';
    return `<${el.tagName.toLowerCase()}${cls}> "${(el.innerText || el.textContent || '').trim().slice(0, 40).replace(/\s+/g, ' ')}"`;
  };
  const cs = getComputedStyle(art), ar = art.getBoundingClientRect();
  const left = ar.left + parseFloat(cs.paddingLeft), right = ar.right - parseFloat(cs.paddingRight);
  const scrolls = (st) => ['auto', 'scroll'].includes(st.overflowX);
  const clips = (st) => ['hidden', 'clip'].includes(st.overflowX);
  const overflow = [];
  // how far the visible content of a clipping box reaches past it (scrollWidth also counts
  // hidden, absolutely positioned helpers such as MathJax's assistive MathML)
  const cutOff = (box, r) => {
    let most = 0;
    const visit = (el) => {
      for (const c of el.children) {
        const cs = getComputedStyle(c);
        if (cs.position === 'absolute' || cs.position === 'fixed' || cs.display === 'none') continue;
        const cr = c.getBoundingClientRect();
        if (cr.width > 0) most = Math.max(most, cr.right - r.right, r.left - cr.left);
        visit(c);
      }
    };
    visit(box);
    return most;
  };
  const out = (r) => r.width > 0 && (r.right > right + 1 || r.left < left - 1);
  const walk = (el) => {
    for (const ch of el.children) {
      const st = getComputedStyle(ch);
      if (st.display === 'none' || st.visibility === 'hidden' || st.position === 'fixed') continue;
      const r = ch.getBoundingClientRect();
      if (out(r)) {
        overflow.push(`${where(ch)}: ${describe(ch)} spans ${Math.round(r.left)}–${Math.round(r.right)} px, column ${Math.round(left)}–${Math.round(right)} px`);
        continue;
      }
      const cut = clips(st) && ch.scrollWidth > ch.clientWidth + 1 ? cutOff(ch, r) : 0;
      if (cut > 1) {   // content hidden by overflow-x: hidden|clip, which the reader cannot scroll to
        overflow.push(`${where(ch)}: ${describe(ch)} cuts off ${Math.round(cut)} px of its content (overflow-x: ${st.overflowX})`);
        continue;
      }
      if (scrolls(st) || clips(st)) continue;
      for (const t of ch.childNodes) {   // a long unbreakable word or line
        if (t.nodeType !== 3 || !t.textContent.trim()) continue;
        const range = document.createRange(); range.selectNodeContents(t);
        const tr = range.getBoundingClientRect();
        if (out(tr)) {
          overflow.push(`${where(ch)}: text "${t.textContent.trim().slice(0, 40)}" in ${describe(ch)} reaches ${Math.round(tr.right)} px, column ends ${Math.round(right)} px`);
          break;
        }
      }
      walk(ch);
    }
  };
  walk(art);
  // code the reader must scroll sideways to read (outputs may scroll: printed tables keep their layout)
  const longcode = [...art.querySelectorAll('pre')].filter(p => !p.closest('.cell_output') &&
      p.scrollWidth > p.clientWidth + 1).map(p => `${where(p)}: ${p.scrollWidth} px of code in a ${p.clientWidth} px box`);
  const outputs = [...art.querySelectorAll('.cell_output')].map(o => ({
    where: where(o), text: o.innerText,
    stderr: !!o.querySelector('.stderr'), error: !!o.querySelector('.traceback, .output.error'),
    cells: [...o.querySelectorAll('td, th')].map(c => c.innerText.trim()),
  }));
  // math left as text: text nodes outside code, scripts and rendered math
  const texts = [];   // [where, text, is code] of every visible text node
  const tw = document.createTreeWalker(art, NodeFilter.SHOW_TEXT, { acceptNode: (n) =>
      n.parentElement.closest('script, style, mjx-container') || !n.textContent.trim() ?
      NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT });
  for (let n = tw.nextNode(); n; n = tw.nextNode())
    texts.push([where(n.parentElement), n.textContent, !!n.parentElement.closest('pre, code, textarea, .highlight')]);
  const injected = [...art.querySelectorAll('div.cell.tag_injected-parameters')].map(c => where(c));
  const merror = [...art.querySelectorAll('mjx-merror')].map(e => `${where(e)}: ${(e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)}`);
  const unrendered = [...art.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container'))
      .map(e => `${where(e)}: ${e.textContent.trim().slice(0, 60)}`);
  const figures = window.innerWidth < MIN_W ? [] : [...art.querySelectorAll('img')].map(i => {
    const want = parseFloat(i.getAttribute('width')) || i.naturalWidth;
    return { where: where(i), src: i.getAttribute('src'), want, shown: i.getBoundingClientRect().width };
  });
  const links = [...document.querySelectorAll('a[href], img[src]')].map(e =>
      [e.tagName === 'A' ? e.getAttribute('href') : e.getAttribute('src'), e.tagName === 'A' ? e.href : e.src, where(e)]);
  const ids = [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name'));
  done(JSON.stringify({ overflow, longcode, outputs, texts, injected, merror, unrendered, figures, links, ids,
         page: [document.documentElement.scrollWidth, window.innerWidth, document.documentElement.scrollHeight] }));
})().catch(e => done(JSON.stringify({ error: String(e) })));
"""


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) executables; :class:`PagecheckError` naming the install command."""
    for var in ("MLCL_CHROMIUM", "MLCL_CHROMEDRIVER"):
        if os.environ.get(var) and not shutil.which(os.environ[var]):
            raise PagecheckError(f"${var}={os.environ[var]} is not an executable: unset it or fix the path")
    chrome = shutil.which(os.environ.get("MLCL_CHROMIUM", "")) or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)
    driver = shutil.which(os.environ.get("MLCL_CHROMEDRIVER", "")) or shutil.which("chromedriver")
    if not chrome or not driver:
        missing = " and ".join(n for n, p in (("chromium", chrome), ("chromedriver", driver)) if not p)
        raise PagecheckError(f"{missing} not found: install them with `{APT_HINT}` "
                             "(or point $MLCL_CHROMIUM / $MLCL_CHROMEDRIVER at them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise PagecheckError("selenium is missing: pip install -e '.[dev]' (or pip install selenium)") from None
    return chrome, driver


def site_pages(html_dir: Path) -> list[Path]:
    """Every HTML page of the site (theme assets, sources and downloads left out), sorted."""
    pages = [p for p in html_dir.rglob("*.html")
             if not SKIP_DIRS & set(p.relative_to(html_dir).parts[:-1])]
    return sorted(pages, key=lambda p: p.relative_to(html_dir).as_posix())


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k == "id" or (tag == "a" and k == "name"):
                self.ids.add(v or "")


def _file_ids(path: Path) -> set[str]:
    p = _Ids()
    p.feed(path.read_text(errors="replace"))
    return p.ids


def _text_violations(page: str, width: int, info: dict) -> list[Violation]:
    found: list[Violation] = []

    def add(kind: str, detail: str) -> None:
        # a slice in the page may have split a surrogate pair: keep the line printable
        v = Violation(page, width, kind, detail.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
        if v not in found:
            found.append(v)

    for o in info["outputs"]:
        text, w = o["text"], o["where"]
        if o["stderr"]:
            add("stderr", f"{w}: {text.strip().splitlines()[0][:100] if text.strip() else '(empty)'}")
        if o["error"] or "Traceback" in text:
            add("traceback", w)
        if m := WARNING.search(text):
            add("warning", f"{w}: {_around(text, m)}")
        if m := PATH_REPR.search(text):
            add("posixpath", f"{w}: {_around(text, m)}")
        if m := PROGRESS.search(text):
            add("progress-bar", f"{w}: {_around(text, m)}")
        nan_cells = sum(c in ("NaN", "nan", "<NA>", "NaT") for c in o["cells"])
        nan_text = len(NAN.findall(text)) if not o["cells"] else 0
        if nan_cells or nan_text:
            add("nan", f"{w}: {nan_cells or nan_text} NaN shown")
    for w, t, is_code in info["texts"]:
        if m := MACHINE_PATH.search(t):
            add("machine-path", f"{w}: {_around(t, m)}")
        if not is_code and (m := RAW_MATH.search(t)):
            add("math", f"{w}: math left as text: {_around(t, m)}")
    for d in info["injected"]:
        add("injected-parameters", f"{d}: papermill's injected parameters cell is shown (tag it remove-cell)")
    for d in info["merror"]:
        add("math", f"MathJax error: {d}")
    for d in info["unrendered"]:
        add("math", f"not rendered: {d}")
    for d in info["overflow"]:
        add("overflow", d)
    for d in info["longcode"]:
        add("long-code-line", d)
    for f in info["figures"]:
        if f["want"] and f["shown"] / f["want"] < MIN_FIGURE_SCALE:
            add("small-figure", f"{f['where']}: {Path(f['src'] or '').name} drawn {f['want']:.0f} px wide, shown at "
                f"{f['shown']:.0f} px ({f['shown'] / f['want']:.0%}): its text shrinks below 9 pt; "
                "use the default width, or stack/split the panels")
    sw, iw, _ = info["page"]
    if sw > iw + 1:
        add("overflow", f"the page scrolls sideways: {sw} px wide in a {iw} px window")
    return found


def _around(text: str, m: re.Match, n: int = 50) -> str:
    s = text[max(0, m.start() - n): m.end() + n].replace("\n", " ⏎ ").strip()
    return s[:160]


def _link_violations(site: Path, page_path: Path, links: Iterable[Sequence[str]],
                     ids: dict[Path, set[str]]) -> list[tuple[str, str]]:
    """(where, detail) for each internal link whose file or anchor is missing."""
    bad = []
    for raw, resolved, where in links:
        if not raw or raw == "#" or raw.startswith(("http:", "https:", "mailto:", "javascript:", "data:", "tel:")):
            continue
        u = urlsplit(resolved)
        if u.scheme != "file":
            continue
        target = Path(unquote(u.path))
        try:
            target.relative_to(site)
        except ValueError:
            bad.append((where, f"{raw!r} points outside the site"))
            continue
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            bad.append((where, f"{raw!r}: no such file"))
            continue
        frag = unquote(u.fragment)
        if frag and target.suffix == ".html":
            if target not in ids:
                ids[target] = _file_ids(target)
            if frag not in ids[target]:
                bad.append((where, f"{raw!r}: no anchor #{frag} in {target.relative_to(site).as_posix()}"))
    return bad


_REFRESH = re.compile(r"""<meta[^>]+http-equiv=["']refresh["'][^>]*content=["'][^"']*url=([^"']+)["']""", re.I)


def _redirect_target(path: Path) -> str | None:
    """The URL a redirect page (``<meta http-equiv="refresh">``, e.g. Jupyter Book's index.html)
    sends the reader to; such a page is not rendered (the browser would leave it at once)."""
    m = _REFRESH.search(path.read_text(errors="replace")[:4000])
    return m.group(1).strip() if m else None


def _resolve(page: Path, href: str) -> str:
    u = urlsplit(href)
    if u.scheme:
        return href
    return (page.parent / unquote(u.path)).resolve().as_uri() + (f"#{u.fragment}" if u.fragment else "")


def _driver(chrome: str, driver_path: str, profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    d.set_script_timeout(60)
    d.set_page_load_timeout(60)
    return d


def _screenshot(d, path: Path, width: int, height: int) -> None:
    """The whole page as one PNG: the viewport is made as tall as the page for the capture."""
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": max(1, height), "deviceScaleFactor": 1, "mobile": False})
    try:
        d.execute_script("return new Promise(r => requestAnimationFrame(() => setTimeout(r, 300)))")
        shot = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))


def check_site(html_dir: str | Path, widths: Sequence[int] = WIDTHS, shots: str | Path | None = None,
               pages: Sequence[str | Path] | None = None, progress: bool = False) -> list[Violation]:
    """Render ``pages`` (default: every page of the site in ``html_dir``) at each width; return the
    violations. With ``shots``, a full-page PNG ``<page path with / as __>.<width>.png`` is kept
    for every page and width."""
    site = Path(html_dir).resolve()
    if not (site.is_dir() and any(site.glob("*.html"))):
        raise PagecheckError(f"{html_dir}: no HTML site there (build the book first: `mlcl book`)")
    chrome, driver_path = find_browser()
    todo = [Path(p).resolve() if Path(p).is_absolute() else (site / p).resolve() for p in pages] if pages \
        else site_pages(site)
    shot_dir = Path(shots) if shots is not None else None
    if shot_dir is not None:
        shot_dir.mkdir(parents=True, exist_ok=True)
        for old in shot_dir.glob("*.png"):
            old.unlink()
    found: list[Violation] = []
    ids: dict[Path, set[str]] = {}
    with tempfile.TemporaryDirectory(prefix="mlcl-chromium-") as profile:
        d = _driver(chrome, driver_path, profile)
        try:
            for width in widths:
                d.set_window_size(width, 900)
                for path in todo:
                    rel = path.relative_to(site).as_posix()
                    t0 = time.perf_counter()
                    if (to := _redirect_target(path)) is not None:
                        if width == widths[0]:
                            found += [Violation(rel, width, "broken-link", f"redirect: {b}") for _, b in
                                      _link_violations(site, path, [(to, _resolve(path, to), "")], ids)]
                        continue
                    d.get(path.as_uri())
                    info = json.loads(d.execute_async_script(_PAGE_JS, FIGURE_CHECK_MIN_WIDTH))
                    if "error" in info:
                        found.append(Violation(rel, width, "script", info["error"]))
                        continue
                    ids[path] = set(info["ids"])
                    found += _text_violations(rel, width, info)
                    if width == widths[0]:  # links do not depend on the width
                        found += [Violation(rel, width, "broken-link", f"{w}: {b}")
                                  for w, b in _link_violations(site, path, info["links"], ids)]
                    if shot_dir is not None:
                        _screenshot(d, shot_dir / f"{rel.replace('/', '__')}.{width}.png", width, info["page"][2])
                    if progress:
                        print(f"  {rel} @{width}px: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        finally:
            d.quit()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlcl.pagecheck", description=__doc__.split("\n\n")[0])
    p.add_argument("html", nargs="?", default="_build/html", help="the built site (default: _build/html)")
    p.add_argument("--shots", default="_build/pagecheck", help="folder for the PNG screenshots ('' for none)")
    p.add_argument("--width", type=int, action="append", help=f"window width in px (repeatable; default {WIDTHS})")
    p.add_argument("--page", action="append", help="check only this page (path relative to the site; repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the time spent on each page")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        found = check_site(a.html, widths=a.width or WIDTHS, shots=a.shots or None, pages=a.page,
                           progress=a.verbose)
    except MlclError as e:
        print(f"pagecheck: error: {e}", file=sys.stderr)
        return 2
    for v in found:
        print(v)
    n_pages = len(a.page) if a.page else len(site_pages(Path(a.html).resolve()))
    print(f"pagecheck: {len(found)} violation(s) on {n_pages} page(s) x {len(a.width or WIDTHS)} width(s) "
          f"in {time.perf_counter() - t0:.0f} s" + (f"; screenshots in {a.shots}" if a.shots else ""),
          file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
