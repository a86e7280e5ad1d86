"""The command line of :mod:`cozoo.data.ntu` (``python -m cozoo.data.ntu``): prepare raw
``.skeleton`` files, the pre-flight scan of a root, and the generated sample."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from . import sample
from .features import MODALITIES
from .protocol import BENCHMARKS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cozoo.data.ntu",
        description=importlib.import_module(__package__).__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_prep = sub.add_parser("prepare", help=".skeleton files -> the 2s-AGCN layout of a split")
    p_prep.add_argument("--raw", required=True, help="folder of the .skeleton files")
    p_prep.add_argument("--out", required=True, help="dataset root (writes <benchmark>/<split>)")
    p_prep.add_argument("--benchmark", default="ntu60", choices=sorted(BENCHMARKS))
    p_prep.add_argument("--split", default="xsub", choices=("xsub", "xview", "xset"))
    p_prep.add_argument("--missing", default=None, help="list of sample names to skip")
    p_prep.add_argument("--workers", type=int, default=None)
    p_scan = sub.add_parser("scan", help="check the files of a preprocessed root")
    p_scan.add_argument("root")
    p_scan.add_argument("--benchmark", default="ntu60", choices=sorted(BENCHMARKS))
    p_scan.add_argument("--split", default="xsub", choices=("xsub", "xview", "xset"))
    p_scan.add_argument("--layout", default="auto", choices=("auto", "agcn_npy", "pyskl"))
    p_scan.add_argument("--modality", default="joint", choices=tuple(MODALITIES))
    p_sample = sub.add_parser("sample", help="write the generated sample")
    p_sample.add_argument("--cache-dir", default=None)
    p_sample.add_argument("--size", default="small", choices=sorted(sample.SAMPLE_SIZES))
    p_sample.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``prepare --raw D --out R [--benchmark ntu60] [--split xsub] [--missing F]`` (exit status
    1 when a file was unreadable), ``scan ROOT [--benchmark] [--split] [--layout]`` (1 when a
    file or annotation is bad, 2 when the data is not there), ``sample [--cache-dir D] [--size
    small] [--seed 0]`` (prints the sample's root)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "sample":
        print(sample.ensure_sample(args.cache_dir, args.size, args.seed))
        return 0
    if args.command == "prepare":
        from .prepare import prepare

        report = prepare(
            args.raw,
            args.out,
            args.benchmark,
            args.split,
            missing=args.missing,
            workers=args.workers,
        )
        print(report.summary())
        return int(bool(report.unreadable))
    from .layouts import NTUFormatError, scan
    from .protocol import check_benchmark, class_names

    check_benchmark(args.benchmark, args.split)
    status = 0
    for subset in ("train", "val"):
        try:
            report = scan(
                args.root,
                args.benchmark,
                args.split,
                subset,
                layout=args.layout,
                modality=args.modality,
                class_names=class_names(args.benchmark),
            )
        except (FileNotFoundError, NTUFormatError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(report.summary(max_paths=None))
        status = status or int(bool(report.missing or report.unreadable))
    return status
