"""Executed notebooks: completeness, the code-cell stamp, and outputs carried onto the current source.

An execution is *complete* when every non-empty code cell ran (``execution_count`` set), none
holds an error output, and papermill recorded an end time without an exception: a run killed by
Ctrl-C leaves cells with ``execution_count = None`` (or, interrupted inside a cell, that cell
"completed" with a ``KeyboardInterrupt`` error while papermill records no exception), and such a
notebook must never become a page.

An execution is *fresh* when the code cells it ran equal the code cells of the current MyST
source: only code counts (jupyter-cache's idea), so editing prose after a long ``full`` run keeps
the run valid, while editing code makes it stale. The stamp, written by ``mlcl reproduce`` into
``metadata.mlcl``, holds

.. math:: h = \\operatorname{sha256}\\big(\\text{json}([s_1, \\dots, s_n])\\big),

with :math:`s_i` the stripped source of the i-th code cell (papermill's injected parameters cell
left out), next to the profile, commit, seeds, device, wall time and package versions.

Example:
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    >>> len(code_hash(nb))
    64
    >>> incomplete_cells(nb)   # never executed
    [0]
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlcl.project import MlclError

INJECTED = "injected-parameters"


def _is_injected(cell: Mapping[str, Any]) -> bool:
    return INJECTED in cell.get("metadata", {}).get("tags", [])


def code_cells(nb: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The notebook's own code cells (papermill's injected parameters cell excluded)."""
    return [c for c in nb["cells"] if c["cell_type"] == "code" and not _is_injected(c)]


def _source(cell: Mapping[str, Any]) -> str:
    s = cell["source"]
    return ("".join(s) if isinstance(s, list) else s).strip()


def code_hash(nb: Mapping[str, Any]) -> str:
    """sha256 of the code cells' stripped sources: prose edits do not change it."""
    return hashlib.sha256(json.dumps([_source(c) for c in code_cells(nb)]).encode()).hexdigest()


def incomplete_cells(nb: Mapping[str, Any]) -> list[int]:
    """Indices (in ``nb.cells``) of non-empty code cells that did not run."""
    return [i for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and _source(c) and c.get("execution_count") is None]


def check_complete(nb: Mapping[str, Any], name: str) -> None:
    """Raise :class:`MlclError` naming ``name`` unless every code cell ran and papermill finished."""
    pm = nb.get("metadata", {}).get("papermill", {})
    if pm.get("exception"):
        raise MlclError(f"{name}: its execution failed (papermill recorded an exception)")
    for i, c in enumerate(nb["cells"]):  # an interrupted cell may be "completed" with an error output
        err = next((o for o in c.get("outputs", []) if o.get("output_type") == "error"), None)
        if err is not None and "raises-exception" not in c.get("metadata", {}).get("tags", []):
            raise MlclError(f"{name}: cell {i} raised {err.get('ename', 'an error')} (an interrupted or "
                            "failed execution)")
    missing = incomplete_cells(nb)
    if missing or not pm.get("end_time"):
        total = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and _source(c))
        raise MlclError(f"{name}: incomplete execution ({total - len(missing)} of {total} code cells ran"
                        f"{'' if pm.get('end_time') else ', no papermill end time'}): it was interrupted")


def stamp(nb: Any, *, source: Mapping[str, Any], provenance: Mapping[str, Any],
          results_files: Sequence[str], notebook: str) -> None:
    """Write ``metadata.mlcl``: the source's code hash and the run's provenance."""
    nb["metadata"]["mlcl"] = {"notebook": notebook, "code_sha256": code_hash(source),
                              "results": sorted(results_files), **dict(provenance)}


def stamp_of(nb: Mapping[str, Any]) -> dict[str, Any]:
    return dict(nb.get("metadata", {}).get("mlcl", {}))


def profile_note_of(stamp: Mapping[str, Any]) -> str:
    """The note at the top of a chapter rendered from a committed ``full`` execution."""
    files = ", ".join(f"`{f}`" for f in stamp.get("results", [])) or "none"
    commit = (stamp.get("git_commit") or "unknown")[:10]
    return (f"**This page shows the committed `full` execution** (seeds {stamp.get('seeds')}, device "
            f"`{stamp.get('device', '?')}`, commit `{commit}`"
            f"{' with uncommitted changes' if stamp.get('git_dirty') else ''}, {stamp.get('date', '?')}, "
            f"{float(stamp.get('wall_seconds') or 0) / 60:.1f} min). Every number on it, in tables, figures and "
            f"text, comes from this execution; the results it saved: {files} (see the execution-status page).")


def check_fresh(executed: Mapping[str, Any], source: Mapping[str, Any], name: str, hint: str) -> None:
    """Raise :class:`MlclError` naming ``name`` and ``hint`` (the command to re-run) when stale."""
    ours, theirs = [_source(c) for c in code_cells(source)], [_source(c) for c in code_cells(executed)]
    if ours == theirs:
        return
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    raise MlclError(f"{name}: stale execution, code cell {first + 1} changed since it was executed "
                    f"({len(theirs)} code cells executed, {len(ours)} in the source): run `{hint}`")


def render(source: Any, executed: Mapping[str, Any]) -> Any:
    """The current source with the executed outputs copied onto its code cells (call
    :func:`check_fresh` first). Papermill's injected parameters cell is kept, tagged
    ``remove-cell`` (the page's profile note and the execution-status page say what ran)."""
    out = copy.deepcopy(source)
    runs = code_cells(executed)
    mine = [c for c in out["cells"] if c["cell_type"] == "code"]
    if len(runs) != len(mine):
        raise MlclError("render: code cells differ; call check_fresh first")
    for dst, src in zip(mine, runs):
        dst["outputs"] = copy.deepcopy(src.get("outputs", []))
        dst["execution_count"] = src.get("execution_count")
        if "ctx.profile_note(" in _source(dst) and stamp_of(executed).get("profile") == "full":
            # the note was written while the run was going on, from the results committed BEFORE it:
            # on the published page it describes the execution shown, from that execution's stamp
            import nbformat

            dst["outputs"] = [nbformat.v4.new_output(
                "display_data", data={"text/markdown": profile_note_of(stamp_of(executed))})]
    injected = [c for c in executed["cells"] if _is_injected(c)]
    if injected:
        cell = copy.deepcopy(injected[0])
        tags = cell["metadata"].setdefault("tags", [])
        if "remove-cell" not in tags:
            tags.append("remove-cell")
        params = next((i for i, c in enumerate(out["cells"])
                       if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
        out["cells"].insert(params + 1, cell)
    meta = dict(executed.get("metadata", {}))
    for key in ("mlcl", "papermill", "language_info"):
        if key in meta:
            out["metadata"][key] = copy.deepcopy(meta[key])
    return out


def read(path: Path) -> Any:
    import nbformat

    return nbformat.read(str(path), as_version=4)


def write_atomic(nb: Any, path: Path) -> None:
    """Write then rename: a reader never sees half a notebook."""
    import nbformat

    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, str(tmp))
    tmp.replace(path)


def status_markdown(rows: Sequence[Mapping[str, Any]], results_link: str = "../results") -> str:
    """The execution-status table (one row per chapter) as MyST markdown.

    ``rows`` are stamps (``metadata.mlcl``); each results file becomes a ``{download}`` link, so
    Sphinx copies the JSON into the built site.
    """
    head = ("| chapter | profile | commit | date | device | wall time | seeds | versions | results |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        commit = (r.get("git_commit") or "unknown")[:10] + (" (dirty)" if r.get("git_dirty") else "")
        v = r.get("versions", {})
        vers = ", ".join(f"{k} {v[k]}" for k in ("mlcl", "torch", "python", "numpy", "sklearn", "pandas") if k in v)
        links = "<br>".join(f"{{download}}`{Path(f).name} <{results_link}/{Path(f).parent.name}/{Path(f).name}>`"
                            for f in r.get("results", []))
        links = "<br>".join([links] * bool(links) + [f"{Path(f).name} (missing)" for f in r.get("missing_results", [])]) or "—"
        dev = r.get("device", "?") + (f" ({r['device_name']})" if r.get("device_name") else "")
        secs = float(r.get("wall_seconds") or 0)
        wall = f"{secs:.0f} s" if secs < 90 else f"{secs / 60:.1f} min"
        lines.append(f"| {r.get('notebook', '?')} | `{r.get('profile', '?')}` | `{commit}` | {r.get('date', '?')} | "
                     f"{dev} | {wall} | {r.get('seeds', '?')} | {vers} | {links} |")
    return head + "\n".join(lines) + "\n"
