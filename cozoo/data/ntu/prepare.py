"""Raw NTU ``.skeleton`` files -> the 2s-AGCN layout (``agcn_npy``) of one benchmark split.

``python -m cozoo.data.ntu prepare --raw <dir> --out <root> --benchmark ntu60 --split xsub``
writes ``<root>/<benchmark>/<split>/{train,val}_data_joint.npy`` (N, 3, 300, 25, 2) float32 and
``{train,val}_label.pkl`` (names ``<name>.skeleton``, 0-based labels), exactly as 2s-AGCN (Shi
et al., CVPR 2019) prepares them (:mod:`cozoo.data.ntu.normalize`), with these choices:

- samples are found anywhere under ``--raw`` (``*.skeleton``), split by the rules of
  :mod:`cozoo.data.ntu.protocol` and written in sorted name order (deterministic);
- the samples the dataset authors list as having missing skeletons are skipped (the lists ship
  with this package; ``--missing <file>`` replaces it);
- a file that does not parse (or has no body) is reported with its path and skipped, never
  fatal; a file longer than 300 frames is cropped to its first 300 (and counted);
- the folder of the split is written into a temporary folder and renamed into place when done.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple, Union

import numpy as np

from .._cache import build_atomically, marker_matches, write_marker
from .normalize import NUM_FRAMES, normalize_agcn
from .protocol import (
    check_benchmark,
    missing_skeletons,
    parse_name,
    read_name_list,
    sample_name,
    split_names,
)
from .skeleton_file import SkeletonFileError, read_skeleton

__all__ = ["PrepareReport", "prepare"]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
_FORMAT = "NTU RGB+D 2s-AGCN layout (prepared from .skeleton files)"


@dataclass
class PrepareReport:
    """What :func:`prepare` did: written samples per split, skipped ones and why."""

    out: Path
    counts: Dict[str, int] = field(default_factory=dict)
    #: listed as having missing skeletons, skipped.
    missing_listed: int = 0
    #: ``(path, reason)`` of the files that could not be read, skipped.
    unreadable: List[Tuple[str, str]] = field(default_factory=list)
    #: files that are not of the benchmark (e.g. NTU-120 actions when preparing ntu60).
    other_benchmark: int = 0
    #: names of the files longer than 300 frames (cropped).
    cropped: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"prepared {self.out}: "
            + ", ".join(f"{split} {n}" for split, n in self.counts.items())
            + f"; skipped {self.missing_listed} listed as missing skeletons, "
            f"{len(self.unreadable)} unreadable, {self.other_benchmark} of another benchmark; "
            f"{len(self.cropped)} cropped to {NUM_FRAMES} frames ({self.seconds:.1f} s)"
        ]
        lines += [f"  unreadable: {path} ({why})" for path, why in self.unreadable]
        return "\n".join(lines)


def _read(path: Path) -> Tuple[Optional[np.ndarray], Optional[str], bool]:
    """``(the (3, 300, 25, 2) array, None, cropped)`` or ``(None, reason, False)``."""
    try:
        bodies = read_skeleton(path)
    except (SkeletonFileError, OSError) as e:
        return (
            None,
            str(e) if isinstance(e, SkeletonFileError) else f"{type(e).__name__}: {e}",
            False,
        )
    if bodies.shape[1] == 0 or not np.any(bodies):
        return None, "no body in any frame", False
    return normalize_agcn(bodies, NUM_FRAMES), None, bodies.shape[1] > NUM_FRAMES


def prepare(
    raw: PathLike,
    out: PathLike,
    benchmark: str = "ntu60",
    split: str = "xsub",
    *,
    missing: Optional[PathLike] = None,
    workers: Optional[int] = None,
) -> PrepareReport:
    """Convert the ``.skeleton`` files under ``raw`` into ``<out>/<benchmark>/<split>/`` (see
    the module docstring). Returns the report (also logged); an existing complete result is
    kept (delete the folder to redo it)."""
    check_benchmark(benchmark, split)
    t0 = time.perf_counter()
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"no folder of .skeleton files {raw}")
    target = Path(out) / benchmark / split
    report = PrepareReport(target)
    skip: FrozenSet[str] = (
        read_name_list(Path(missing)) if missing else missing_skeletons(benchmark)
    )
    paths: Dict[str, Path] = {}
    for path in sorted(raw.rglob("*.skeleton")):
        try:
            paths[sample_name(path.name)] = path
        except ValueError:
            report.unreadable.append((str(path), "not an NTU sample name"))
    listed = split_names(paths, benchmark, split, skip_missing=False)
    names = {s: [n for n in listed[s] if n not in skip] for s in listed}
    report.missing_listed = sum(len(listed[s]) - len(names[s]) for s in listed)
    report.other_benchmark = len(paths) - sum(len(v) for v in listed.values())

    def write(tmp: Path) -> None:
        files: Dict[str, int] = {}
        n_workers = workers or min(8, os.cpu_count() or 1)
        for subset, subset_names in names.items():
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                results = list(pool.map(lambda n: _read(paths[n]), subset_names))
            kept, arrays = [], []
            for name, (array, why, cropped) in zip(subset_names, results):
                if array is None:
                    report.unreadable.append((str(paths[name]), str(why)))
                    continue
                kept.append(name)
                arrays.append(array)
                if cropped:
                    report.cropped.append(name)
            data = np.lib.format.open_memmap(
                tmp / f"{subset}_data_joint.npy",
                mode="w+",
                dtype=np.float32,
                shape=(len(kept), 3, NUM_FRAMES, 25, 2),
            )
            for i, array in enumerate(arrays):
                data[i] = array
            data.flush()
            del data
            with open(tmp / f"{subset}_label.pkl", "wb") as f:
                labels = [parse_name(n).label for n in kept]
                pickle.dump(([f"{n}.skeleton" for n in kept], labels), f, protocol=2)
            report.counts[subset] = len(kept)
            for rel in (f"{subset}_data_joint.npy", f"{subset}_label.pkl"):
                files[rel] = (tmp / rel).stat().st_size
        write_marker(
            tmp, {"format": _FORMAT, "benchmark": benchmark, "split": split, "files": files}
        )

    done = build_atomically(
        target, write, lambda folder: marker_matches(folder, {"format": _FORMAT}), logger=log
    )
    if done is None and not report.counts:
        log.warning("%s is already prepared: kept (delete it to prepare again)", target)
    report.seconds = time.perf_counter() - t0
    if report.unreadable:
        log.warning("%s", report.summary())
    else:
        log.info("%s", report.summary())
    return report
