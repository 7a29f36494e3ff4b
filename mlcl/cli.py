"""The ``mlcl`` command line: ``reproduce``, ``book``, ``data list``."""

from __future__ import annotations

import argparse
import sys
import time


def _cmd_reproduce(a: argparse.Namespace) -> int:
    from mlcl.reproduce import reproduce

    res = reproduce(profile=a.profile, only=a.only, seeds=a.seeds, device=a.device)
    failed = [r for r in res if not r.ok]
    for r in failed:
        print(f"FAILED {r.name}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_book(a: argparse.Namespace) -> int:
    from mlcl.book import build

    code, log, secs = build(strict=not a.no_strict)
    tail = "\n".join(log.strip().splitlines()[-25:])
    print(tail)
    if code == 0:
        from mlcl.reproduce import root_dir

        print(f"\nbook built in {secs:.1f} s: open {root_dir() / '_build' / 'html' / 'index.html'}")
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
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reproduce", help="execute the notebooks with papermill")
    r.add_argument("--profile", choices=["smoke", "full", "paper-scale"], default="smoke")
    r.add_argument("--only", nargs="+", metavar="NAME", help="notebooks to run (e.g. 00 01_cgmvae mulsupcon)")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the notebook's)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    r.set_defaults(func=_cmd_reproduce)
    b = sub.add_parser("book", help="build the book from the executed notebooks (no re-execution)")
    b.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    b.set_defaults(func=_cmd_book)
    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="every dataset, its source, and whether it is available offline")
    dl.add_argument("--root", default=None, help="data root (default: $MLCL_DATA or the user cache)")
    dl.set_defaults(func=_cmd_data_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    code = args.func(args)
    print(f"[mlcl {args.command}: {time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
