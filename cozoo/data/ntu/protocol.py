"""The NTU RGB+D benchmarks: sample names, the train/test rules of each split, the class names
and the samples whose skeletons are missing.

A sample is named ``SsssCcccPpppRrrrAaaa`` (setup, camera, performer, replication, action;
e.g. ``S001C002P003R002A013``), as a ``.skeleton`` file name, a bare name or a path. Rules, from
the dataset papers (NTU RGB+D, Shahroudy et al., CVPR 2016; NTU RGB+D 120, Liu et al., TPAMI
2019) as used by 2s-AGCN (Shi et al., CVPR 2019):

    ntu60  xsub   train: performers 1 2 4 5 8 9 13 14 15 16 17 18 19 25 27 28 31 34 35 38
           xview  train: cameras 2 and 3                              test: camera 1
    ntu120 xsub   train: the 20 performers above and 45 46 47 49 50 52 53 54 55 56 57 58 59 70
                         74 78 80 81 82 83 84 85 86 89 91 92 93 94 95 97 98 100 103 (53)
           xset   train: even setups (2, 4, ..., 32)                  test: odd setups

Everything else is the test split. NTU-60 holds actions 1-60 (setups 1-17), NTU-120 actions
1-120; the label is ``action - 1``. The 302 (NTU-60) and 535 (NTU-120) samples with missing or
incomplete skeletons, as listed by the dataset authors, are skipped
(``ntu60_samples_with_missing_skeletons.txt``, ``ntu120_...``, shipped with this package).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Tuple

__all__ = [
    "BENCHMARKS",
    "NTU60_TRAIN_SUBJECTS",
    "NTU120_TRAIN_SUBJECTS",
    "SampleId",
    "check_benchmark",
    "class_names",
    "in_benchmark",
    "is_train",
    "missing_skeletons",
    "parse_name",
    "sample_name",
]

_HERE = Path(__file__).resolve().parent

#: benchmark -> (its splits, number of classes, last setup).
BENCHMARKS: Dict[str, Tuple[Tuple[str, ...], int, int]] = {
    "ntu60": (("xsub", "xview"), 60, 17),
    "ntu120": (("xsub", "xset"), 120, 32),
}

NTU60_TRAIN_SUBJECTS: FrozenSet[int] = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
)
NTU120_TRAIN_SUBJECTS: FrozenSet[int] = NTU60_TRAIN_SUBJECTS | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85)
    + (86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
)
_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class SampleId:
    """The ids in a sample name (all 1-based, as in the name)."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        """The 0-based class index: ``action - 1``."""
        return self.action - 1


def sample_name(path_or_name: str) -> str:
    """``S001C002P003R002A013`` from a path, a file name (``.skeleton``, ``.npy``...) or a name."""
    match = _NAME.search(Path(str(path_or_name)).name)
    if match is None:
        raise ValueError(f"not an NTU sample name (SsssCcccPpppRrrrAaaa): {path_or_name!r}")
    return match.group(0)


def parse_name(path_or_name: str) -> SampleId:
    """The setup, camera, performer, replication and action ids of a sample name (the three
    digits after the first ``S``, ``C``, ``P``, ``R``, ``A`` of ``SsssCcccPpppRrrrAaaa``)."""
    match = _NAME.search(sample_name(path_or_name))
    assert match is not None
    return SampleId(*(int(g) for g in match.groups()))


def check_benchmark(benchmark: str, split: str) -> None:
    """Raise ``ValueError`` unless ``split`` is a split of ``benchmark``."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {sorted(BENCHMARKS)}, got {benchmark!r}")
    splits = BENCHMARKS[benchmark][0]
    if split not in splits:
        raise ValueError(f"{benchmark} has the splits {splits}, got split={split!r}")


def in_benchmark(sample: SampleId, benchmark: str) -> bool:
    """Whether the sample belongs to ``benchmark`` (NTU-60: actions 1-60 of setups 1-17)."""
    _, num_classes, last_setup = BENCHMARKS[benchmark]
    return sample.action <= num_classes and sample.setup <= last_setup


def is_train(sample: SampleId, benchmark: str, split: str) -> bool:
    """Whether the sample is in the training set of ``benchmark``/``split`` (else the test
    set; see the module docstring for the rules)."""
    check_benchmark(benchmark, split)
    if split == "xview":
        return sample.camera in _XVIEW_TRAIN_CAMERAS
    if split == "xset":
        return sample.setup % 2 == 0
    subjects = NTU60_TRAIN_SUBJECTS if benchmark == "ntu60" else NTU120_TRAIN_SUBJECTS
    return sample.performer in subjects


@cache
def missing_skeletons(benchmark: str) -> FrozenSet[str]:
    """The names of the samples of ``benchmark`` whose skeletons are missing or incomplete, as
    listed by the dataset authors (302 for ntu60, 535 for ntu120, a superset)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {sorted(BENCHMARKS)}, got {benchmark!r}")
    return read_name_list(_HERE / f"{benchmark}_samples_with_missing_skeletons.txt")


def read_name_list(path: Path) -> FrozenSet[str]:
    """The sample names in a text file, one per line (blank lines and lines that are no sample
    name, such as a header, are ignored)."""
    names = []
    for line in Path(path).read_text().splitlines():
        match = _NAME.search(line.strip())
        if match is not None:
            names.append(match.group(0))
    return frozenset(names)


@cache
def _all_class_names() -> Tuple[str, ...]:
    return tuple(
        line.strip() for line in (_HERE / "ntu120_classes.txt").read_text().splitlines() if line
    )


def class_names(benchmark: str) -> List[str]:
    """The action names of ``benchmark`` in label order (60 or 120), as the dataset authors list
    them (A1 "drink water" ... A120 "finger-guessing game (playing rock-paper-scissors)")."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {sorted(BENCHMARKS)}, got {benchmark!r}")
    return list(_all_class_names()[: BENCHMARKS[benchmark][1]])


def split_names(
    names: Iterable[str], benchmark: str, split: str, *, skip_missing: bool = True
) -> Dict[str, List[str]]:
    """Sort sample names of ``benchmark`` into ``{"train": [...], "val": [...]}`` by the rules
    of ``split`` (sorted; samples of other benchmarks and, with ``skip_missing``, those listed as
    missing skeletons are left out)."""
    check_benchmark(benchmark, split)
    missing = missing_skeletons(benchmark) if skip_missing else frozenset()
    out: Dict[str, List[str]] = {"train": [], "val": []}
    for name in sorted(set(names)):
        sample = parse_name(name)
        if name in missing or not in_benchmark(sample, benchmark):
            continue
        out["train" if is_train(sample, benchmark, split) else "val"].append(name)
    return out
