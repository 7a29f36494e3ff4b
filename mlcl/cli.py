"""The ``mlcl`` command line: ``reproduce``, ``book``, ``data list``, ``--version``.

Errors a user can fix (a bad argument, a missing extra, a stale page) are printed as one line
naming the fix, never as a traceback (set ``MLCL_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import mlcl


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (the number of seeds), got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (the number of seeds), got {n}")
    return n


def _cmd_reproduce(a: argparse.Namespace) -> int:
    from mlcl.reproduce import reproduce

    res = reproduce(profile=a.profile, only=a.only, seeds=a.seeds, device=a.device)
    failed = [r for r in res if not r.ok]
    for r in failed:
        print(f"FAILED {r.name}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_book(a: argparse.Namespace) -> int:
    from mlcl.book import build, write_ipynb_outputs
    from mlcl.project import work_root

    if a.write_ipynb:
        for p in write_ipynb_outputs(a.source):
            print(f"wrote outputs into {p}")
        return 0
    code, log, secs = build(strict=not a.no_strict, source=a.source)
    tail = "\n".join(log.strip().splitlines()[-25:])
    print(tail)
    if code == 0:
        print(f"\nbook built in {secs:.1f} s: open {work_root() / '_build' / 'html' / 'index.html'}")
    else:
        print(f"\nbook build FAILED (exit {code}); full log in _build/book.log", file=sys.stderr)
    return code


def _cmd_data_list(a: argparse.Namespace) -> int:
    from mlcl.data import list_datasets
    from mlcl.reproduce import default_data_root
    from mlcl.results import repo_root

    if a.root is None and (top := repo_root()) is not None:
        default_data_root(top)  # in a checkout with ../shared beside it, use its data
    rows = list_datasets(root=a.root)
    rows = [r if isinstance(r, dict) else vars(r) for r in rows]
    keys = ["name", "offline", "source"]
    w = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    print("  ".join(f"{k:<{w[k]}}" for k in keys))
    for r in rows:
        print("  ".join(f"{('yes' if r.get(k) else 'no') if k == 'offline' else str(r.get(k, '')):<{w[k]}}"
                        for k in keys))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlcl", description="Contrastive learning for multi-label classification")
    p.add_argument("--version", action="version", version=f"mlcl {mlcl.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reproduce", help="execute the notebooks with papermill")
    r.add_argument("--profile", choices=["smoke", "full", "paper-scale"], default="smoke")
    r.add_argument("--only", nargs="+", metavar="NAME",
                   help="notebooks to run: a name (01_cgmvae, cgmvae) or an unambiguous prefix of >= 2 characters (01)")
    r.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds, >= 1 (default: the notebook's)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    r.set_defaults(func=_cmd_reproduce)
    b = sub.add_parser("book", help="build the book from recorded executions (no re-execution)")
    b.add_argument("--from", dest="source", choices=["committed", "build"], default="committed",
                   help="committed: book/executed/ (the full runs, default); build: _build/executed/ "
                        "(what the last `mlcl reproduce` wrote)")
    b.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    b.add_argument("--write-ipynb", action="store_true",
                   help="instead of building, write the executions' outputs into notebooks/NN.ipynb (Colab)")
    b.set_defaults(func=_cmd_book)
    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="every dataset, its source, and whether it is available offline")
    dl.add_argument("--root", default=None, help="data root (default: $MLCL_DATA or the user cache)")
    dl.set_defaults(func=_cmd_data_list)
    return p


def main(argv: list[str] | None = None) -> int:
    from mlcl.project import MlclError

    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"mlcl {args.command}: interrupted (the last good executions are kept)", file=sys.stderr)
        return 130
    except Exception as e:  # one line, naming the fix; MLCL_DEBUG=1 shows the traceback
        if os.environ.get("MLCL_DEBUG"):
            raise
        kind = "" if isinstance(e, MlclError) else f"{type(e).__name__}: "
        print(f"mlcl {args.command}: error: {kind}{e}".splitlines()[0], file=sys.stderr)
        return 2
    print(f"[mlcl {args.command}: {time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
