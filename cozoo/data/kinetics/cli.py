"""The command line of :mod:`cozoo.data.kinetics` (``python -m cozoo.data.kinetics``): the
pre-flight scan of a root and the generated sample."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import sample
from .listing import SPLITS, split_key
from .preflight import scan

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cozoo.data.kinetics",
        description=importlib.import_module(__package__).__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_scan = sub.add_parser("scan", help="report missing and unreadable videos of a split")
    p_scan.add_argument("root")
    p_scan.add_argument("--split", default="all", help="train, val, test or all (default)")
    p_scan.add_argument("--open-only", action="store_true", help="do not decode a frame")
    p_scan.add_argument("--all-paths", action="store_true", help="list every bad path")
    p_scan.add_argument("--workers", type=int, default=None)
    p_scan.add_argument("--no-cache", action="store_true", help="probe every file again")
    p_sample = sub.add_parser("sample", help="write the generated Kinetics-layout sample")
    p_sample.add_argument("--cache-dir", default=None)
    p_sample.add_argument("--size", default="small", choices=sorted(sample.SAMPLE_SIZES))
    p_sample.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m cozoo.data.kinetics scan ROOT [--split val|all] [--open-only] [--all-paths]``
    prints the pre-flight scan (exit status 1 when a video is missing or unreadable); ``...
    sample [--cache-dir D] [--size small] [--seed 0]`` writes the generated sample and prints
    its root."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "sample":
        print(sample.ensure_sample(args.cache_dir, args.size, args.seed))
        return 0
    root = Path(args.root)
    splits = SPLITS if args.split == "all" else (split_key(args.split),)
    status = 0
    for split in splits:
        try:
            report = scan(
                root,
                split,
                decode=not args.open_only,
                workers=args.workers,
                use_cache=not args.no_cache,
            )
        except FileNotFoundError as e:
            if args.split != "all":
                print(f"error: {e}", file=sys.stderr)
                return 2
            continue
        print(report.summary(max_paths=None if args.all_paths else 50))
        status = status or int(bool(report.missing or report.unreadable))
    return status
