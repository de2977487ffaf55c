"""Image folders and list files -> Caffe LMDB databases of encoded ``Datum`` records.

CLI::

    python -m tools.lmdb_tools build SRC OUT [--root DIR] [--resize HxW] [--format png|jpg]
    python -m tools.lmdb_tools verify DB [--num-classes N] [--json]

``SRC`` is an image folder with one sub-folder per class (labels are the sorted folder
names' indices, written to ``OUT.classes.txt``) or a list file of ``relative/path label``
lines, Caffe's ``convert_imageset`` format (paths relative to ``--root``).  The database is
written beside ``OUT`` and renamed into place when complete (tools.data.lmdb_store).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import run_cli
from dfseg.base.sizes import parse_hxw
from tools.data.lmdb_store import DataError, build_lmdb, read_list_file, scan_image_folder, verify_lmdb


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="image folder or list file -> LMDB of encoded Datums")
    b.add_argument("src", help="image folder with class sub-folders, or a 'path label' list file")
    b.add_argument("out", help="LMDB directory to create")
    b.add_argument("--root", help="folder the list file's paths are relative to (default: its own folder)")
    b.add_argument("--resize", help="resize every image to HxW")
    b.add_argument("--format", choices=["png", "jpg"], default="png")
    b.add_argument("--gray", action="store_true", help="store single-channel images")
    v = sub.add_parser("verify", help="decode every record; counts, shapes, labels")
    v.add_argument("db")
    v.add_argument("--num-classes", type=int, help="labels must lie in [0, N)")
    v.add_argument("--json", action="store_true")
    return ap


def _build(args: argparse.Namespace) -> None:
    src = Path(args.src)
    if src.is_dir():
        records, classes = scan_image_folder(src)
        atomic_write_text(f"{args.out}.classes.txt", "\n".join(classes) + "\n")
    elif src.is_file():
        records = read_list_file(src, args.root)
    else:
        raise DataError(f"{src}: no such folder or list file")
    n = build_lmdb(records, args.out, resize=parse_hxw(args.resize) if args.resize else None,
                   fmt="." + args.format, gray=args.gray)
    print(f"{args.out}: {n} records")


def _verify(args: argparse.Namespace) -> None:
    report = verify_lmdb(args.db, args.num_classes)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{report['path']}: {report['count']} records, all decodable; "
              f"shapes {report['shapes']}; labels {report['labels']}")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.lmdb_tools"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _build(args) if args.cmd == "build" else _verify(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
