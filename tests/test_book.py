"""Recorded executions: completeness, the code-cell stamp, rendering onto the current source, the
execution-status page, and an interrupted (Ctrl-C) ``mlcl reproduce`` that must not replace the last
good execution (issue 14.1's reproducer)."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

import mlcl.book as book
from mlcl import executions as ex
from mlcl.project import MlclError

TINY = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# Tiny

Some prose.

```{{code-cell}} ipython3
:tags: [parameters]

profile = "smoke"
seeds = 2
device = "auto"
```

```{{code-cell}} ipython3
import time
x = 40 + 2
```

```{{code-cell}} ipython3
{body}
print("answer", x)
```
"""


def _md(tmp_path: Path, body: str = "", name: str = "00_tiny") -> Path:
    md = tmp_path / "notebooks" / f"{name}.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(TINY.format(body=body))
    return md


def _executed(md: Path, *, ran: bool = True, end: bool = True):
    """A notebook as papermill leaves it (injected parameters cell, counts, outputs), without a kernel."""
    nb = jupytext.read(md)
    inj = nbformat.v4.new_code_cell('profile = "full"\n', metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(next(i for i, c in enumerate(nb.cells) if c.cell_type == "code") + 1, inj)
    for n, c in enumerate(c for c in nb.cells if c.cell_type == "code"):
        c.execution_count = n + 1 if ran else None
        c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"out {n}\n")] if ran else []
    nb.metadata["papermill"] = {"exception": None, "end_time": "2026-01-01T00:00:00" if end else None}
    ex.stamp(nb, source=jupytext.read(md), provenance={"profile": "full", "git_commit": "abc123def456",
             "git_dirty": False, "date": "2026-01-01", "seeds": [0, 1], "device": "cpu",
             "wall_seconds": 90.0, "versions": {"mlcl": "0.1.0", "torch": "2.x"}},
             results_files=["results/full/tiny.json"], notebook=md.stem)
    return nb


def test_code_hash_ignores_prose_and_the_injected_cell(tmp_path):
    md = _md(tmp_path)
    src = jupytext.read(md)
    h = ex.code_hash(src)
    assert ex.code_hash(_executed(md)) == h, "papermill's injected cell must not change the hash"
    md.write_text(md.read_text().replace("Some prose.", "Better prose, edited after the run."))
    assert ex.code_hash(jupytext.read(md)) == h
    md.write_text(md.read_text().replace("40 + 2", "40 + 3"))
    assert ex.code_hash(jupytext.read(md)) != h


def test_incomplete_execution_is_refused_naming_it(tmp_path):
    md = _md(tmp_path)
    ex.check_complete(_executed(md), "00_tiny")  # complete: no error
    with pytest.raises(MlclError, match=r"00_tiny: incomplete execution \(0 of 4 code cells ran"):
        ex.check_complete(_executed(md, ran=False), "00_tiny")
    half = _executed(md)
    half.cells[-1].execution_count = None
    with pytest.raises(MlclError, match="00_tiny: incomplete execution .3 of 4"):
        ex.check_complete(half, "00_tiny")
    with pytest.raises(MlclError, match="no papermill end time"):
        ex.check_complete(_executed(md, end=False), "00_tiny")
    stopped = _executed(md)  # Ctrl-C inside a cell: "completed", papermill exception None
    stopped.cells[-1].outputs = [nbformat.v4.new_output("error", ename="KeyboardInterrupt", evalue="", traceback=[])]
    with pytest.raises(MlclError, match="00_tiny: cell 4 raised KeyboardInterrupt"):
        ex.check_complete(stopped, "00_tiny")
    failed = _executed(md)
    failed.metadata["papermill"]["exception"] = True
    with pytest.raises(MlclError, match="execution failed"):
        ex.check_complete(failed, "00_tiny")


def test_render_puts_outputs_on_the_current_source_and_refuses_stale_code(tmp_path):
    md = _md(tmp_path)
    executed = _executed(md)
    md.write_text(md.read_text().replace("Some prose.", "Prose edited after the run."))
    current = jupytext.read(md)
    ex.check_fresh(executed, current, "00_tiny", "mlcl reproduce --profile full --only 00_tiny")
    page = ex.render(current, executed)
    assert "Prose edited after the run." in page.cells[0].source
    code = [c for c in page.cells if c.cell_type == "code"]
    assert [c.outputs[0]["text"] for c in code if "injected-parameters" not in c.metadata.get("tags", [])] == \
        ["out 0\n", "out 2\n", "out 3\n"]
    injected = [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    assert page.metadata["mlcl"]["code_sha256"] == ex.code_hash(current)
    md.write_text(md.read_text().replace("40 + 2", "40 + 3"))
    with pytest.raises(MlclError, match=r"00_tiny: stale execution, code cell 2 changed.*"
                                        r"run `mlcl reproduce --profile full --only 00_tiny`"):
        ex.check_fresh(executed, jupytext.read(md), "00_tiny", "mlcl reproduce --profile full --only 00_tiny")


def _project(tmp_path, monkeypatch, executed_nb=None):
    """A one-chapter project; the book module pointed at it."""
    md = _md(tmp_path)
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro",
                                                       "chapters": [{"file": "notebooks/00_tiny"}]}))
    exe = tmp_path / "book" / "executed"
    exe.mkdir(parents=True)
    if executed_nb is not None:
        nbformat.write(executed_nb(md), str(exe / "00_tiny.ipynb"))
    monkeypatch.setattr(book, "source_root", lambda: tmp_path)
    monkeypatch.setattr(book, "executions_dirs", lambda: [exe])
    monkeypatch.setattr(book, "work_root", lambda: tmp_path)
    return md


def test_book_refuses_missing_incomplete_and_stale_chapters(tmp_path, monkeypatch):
    _project(tmp_path / "a", monkeypatch)
    with pytest.raises(MlclError, match="no committed executions .* run `mlcl reproduce --profile full`"):
        book.rendered_chapters("committed")
    _project(tmp_path / "b", monkeypatch, lambda md: _executed(md, ran=False))
    with pytest.raises(MlclError, match="00_tiny: incomplete execution"):
        book.rendered_chapters("committed")
    md = _project(tmp_path / "c", monkeypatch, _executed)
    assert list(book.rendered_chapters("committed")) == ["00_tiny"]
    md.write_text(md.read_text().replace("40 + 2", "41 + 1"))
    with pytest.raises(MlclError, match="00_tiny: stale execution.*--only 00_tiny"):
        book.rendered_chapters("committed")


def test_status_page_lists_the_stamp_and_links_the_results(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch, _executed)
    monkeypatch.setattr(book, "results_dir", lambda: tmp_path / "results")
    staging = tmp_path / "staging"
    page = book.status_page(book.rendered_chapters("committed"), staging)
    row = next(ln for ln in page.splitlines() if ln.startswith("| 00_tiny"))
    for want in ("`full`", "`abc123def4`", "2026-01-01", "cpu", "1.5 min", "[0, 1]", "mlcl 0.1.0", "torch 2.x",
                 "tiny.json (missing)"):
        assert want in row, f"{want!r} missing from {row}"
    (tmp_path / "results" / "full").mkdir(parents=True)
    (tmp_path / "results" / "full" / "tiny.json").write_text('{"records": []}')
    row = next(ln for ln in book.status_page(book.rendered_chapters("committed"), staging).splitlines()
               if ln.startswith("| 00_tiny"))
    assert "{download}`tiny.json </_results/full/tiny.json>`" in row and "missing" not in row
    assert (staging / "_results" / "full" / "tiny.json").read_text() == '{"records": []}'


@pytest.mark.notebook
def test_interrupted_reproduce_keeps_the_last_good_execution(tmp_path, monkeypatch, timed):
    """Ctrl-C during an execution: the last good notebook stays, the partial one is never published."""
    import mlcl.reproduce
    from mlcl.reproduce import run_notebook

    out_dir = tmp_path / "executed"
    md = _md(tmp_path)
    monkeypatch.setattr(mlcl.reproduce, "executions_dir", lambda: tmp_path / "committed")
    res = run_notebook(md, out_dir=out_dir, progress=False, store=True)  # store: what --profile full does
    assert res.ok, res.error
    good = (out_dir / "00_tiny.ipynb").read_bytes()
    assert (tmp_path / "committed" / "00_tiny.ipynb").read_bytes() == good
    assert not list(out_dir.glob(".*")), "no temporary file may remain after a good run"
    stamped = ex.stamp_of(ex.read(out_dir / "00_tiny.ipynb"))
    assert stamped["code_sha256"] == ex.code_hash(jupytext.read(md)) and stamped["profile"] == "smoke"

    _md(tmp_path, body="time.sleep(120)")  # now the third cell hangs: interrupt it there
    script = textwrap.dedent(f"""
        from pathlib import Path
        from mlcl.reproduce import run_notebook
        run_notebook(Path({str(md)!r}), out_dir=Path({str(out_dir)!r}), progress=False)
    """)
    # its own process group, so that the interrupt reaches papermill AND the kernel, as Ctrl-C in a terminal does
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)
    partial = out_dir / ".00_tiny.partial.ipynb"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the kernel is inside the sleeping cell
        if partial.is_file():
            try:
                cells = json.loads(partial.read_text())["cells"]
            except ValueError:
                cells = []
            if any(c.get("metadata", {}).get("papermill", {}).get("status") == "running"
                   and "sleep" in "".join(c["source"]) for c in cells):
                break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the sleeping cell never started")
    # Ctrl-C; then, as an impatient user (or a dying terminal) does, harder until the run is gone —
    # all well before the 120 s sleep could end by itself and let the run finish
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=20)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=20)
    assert (out_dir / "00_tiny.ipynb").read_bytes() == good, "the last good execution was replaced"
    if partial.is_file():  # what an interrupted run leaves behind can never pass the book's check
        with pytest.raises(MlclError, match="00_tiny: (incomplete execution|cell 4 raised KeyboardInterrupt)"):
            ex.check_complete(ex.read(partial), "00_tiny")


def test_docstring_examples_run():
    import doctest

    import mlcl.colab
    import mlcl.project

    for mod in (ex, mlcl.project, mlcl.colab):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


def test_write_ipynb_puts_the_committed_outputs_into_the_paired_notebook(tmp_path, monkeypatch):
    """What Colab opens (notebooks/NN.ipynb) carries the committed outputs, with the .md's cells."""
    md = _project(tmp_path, monkeypatch, _executed)
    monkeypatch.setattr(book, "repo_root", lambda: tmp_path)
    [path] = book.write_ipynb_outputs("committed")
    assert path == tmp_path / "notebooks" / "00_tiny.ipynb"
    nb = ex.read(path)
    assert [c.source for c in nb.cells] == [c.source for c in jupytext.read(md).cells]
    assert [c.outputs[0]["text"] for c in nb.cells if c.cell_type == "code"] == ["out 0\n", "out 2\n", "out 3\n"]
    assert nb.metadata["mlcl"]["profile"] == "full"


@pytest.mark.notebook
def test_failed_reproduce_keeps_the_last_good_execution_and_the_failed_one_beside_it(tmp_path, timed):
    from mlcl.reproduce import run_notebook

    out_dir = tmp_path / "executed"
    md = _md(tmp_path)
    assert run_notebook(md, out_dir=out_dir, progress=False).ok
    good = (out_dir / "00_tiny.ipynb").read_bytes()
    _md(tmp_path, body='raise ValueError("boom")')
    res = run_notebook(md, out_dir=out_dir, progress=False)
    assert not res.ok and "ValueError: boom" in res.error and res.output == out_dir / "00_tiny.failed.ipynb"
    assert (out_dir / "00_tiny.ipynb").read_bytes() == good
    assert not (out_dir / ".00_tiny.partial.ipynb").exists()


def test_a_full_page_describes_its_own_execution_not_the_results_committed_before_it():
    import nbformat

    from mlcl import executions as ex

    src = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('ctx.profile_note("demo")'),
                                          nbformat.v4.new_code_cell("1 + 1")])
    run = copy.deepcopy(src)
    run.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "seeds [0, 1, 2] (old)"})]
    run.cells[1].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=2)]
    run.metadata["mlcl"] = {"profile": "full", "seeds": [0, 1, 2, 3, 4], "device": "cpu", "git_commit": "abcdef1234567",
                            "git_dirty": False, "date": "2026-12-04", "wall_seconds": 120.0,
                            "results": ["results/full/demo.json"]}
    page = ex.render(src, run)
    note = page.cells[0].outputs[0]["data"]["text/markdown"]
    assert "seeds [0, 1, 2, 3, 4]" in note and "results/full/demo.json" in note and "old" not in note
    assert page.cells[1].outputs == run.cells[1].outputs  # every other output as executed
