"""The command line of :mod:`cozoo.data.thumos` (``python -m cozoo.data.thumos``): the
pre-flight scan of a root, and the generated sample."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from . import sample
from .layouts import FEATURE_KINDS, LAYOUTS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cozoo.data.thumos",
        description=importlib.import_module(__package__).__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_scan = sub.add_parser("scan", help="check the files of a THUMOS14 root")
    p_scan.add_argument("root")
    p_scan.add_argument("--layout", default="auto", choices=("auto",) + LAYOUTS)
    p_scan.add_argument("--features", default="kinetics", choices=sorted(FEATURE_KINDS))
    p_scan.add_argument("--audio", action="store_true")
    p_sample = sub.add_parser("sample", help="write the generated sample")
    p_sample.add_argument("--cache-dir", default=None)
    p_sample.add_argument("--size", default="small", choices=sorted(sample.SAMPLE_SIZES))
    p_sample.add_argument("--seed", type=int, default=0)
    p_sample.add_argument("--features", default="kinetics", choices=sorted(FEATURE_KINDS))
    p_sample.add_argument("--audio", action="store_true")
    p_sample.add_argument(
        "--lstr-out", default=None, help="write it in the lstr_npy layout to this folder instead"
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``scan ROOT [--layout auto] [--features kinetics] [--audio]`` (prints the train and test
    reports and the windows; exit status 1 when a file is missing or unreadable, 2 when the
    data is not there), ``sample [--cache-dir D] [--size small] [--seed 0] [--features
    kinetics] [--audio] [--lstr-out DIR]`` (prints the sample's root)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "sample":
        if args.lstr_out:
            print(sample.write_lstr_sample(args.lstr_out, args.size, args.seed, args.features))
        else:
            print(
                sample.ensure_sample(
                    args.cache_dir, args.size, args.seed, args.features, args.audio
                )
            )
        return 0
    from .dataset import ThumosWindows
    from .layouts import ThumosFormatError, scan

    status = 0
    for split in ("train", "test"):
        try:
            report = scan(
                args.root, split, layout=args.layout, features=args.features, audio=args.audio
            )
        except (FileNotFoundError, ThumosFormatError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(report.summary(max_paths=None))
        source = report.source
        if len(source):
            windows = len(ThumosWindows(source, report.ok))
            print(
                f"  {len(source)} videos, {sum(map(source.length, report.ok))} steps, feature "
                f"dim {source.feature_dim}, {windows} windows from offset 0 (evaluated steps)"
            )
        status = status or int(bool(report.missing or report.unreadable))
    return status
