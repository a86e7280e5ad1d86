"""THUMOS14 for online action detection: class names, the split lists and the window rule.

The protocol is the one of OadTR (Wang et al., ICCV 2021) and CoOadTR (Hedegaard et al., 2022):
the 200 untrimmed THUMOS14 *validation* videos train, the 213 *test* videos evaluate. A video is
a sequence of ``L`` feature steps (one step = 6 frames, about 0.2 s) with one-hot targets
``(L, 22)``: background, the 20 actions, and Ambiguous.

A window of ``window`` (64) consecutive steps ``[s, s + window)`` is labelled by its **last**
step; windows exist while ``s + window < L - future`` (``future`` = 8, OadTR's decoder horizon,
reserved for every model), so the labelled steps run from ``window - 1`` to ``L - future - 2``;
windows whose last step is Ambiguous are dropped. :func:`evaluated_steps` is this rule, and the
window datasets use it too.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "AMBIGUOUS",
    "BACKGROUND",
    "CLASS_NAMES",
    "FUTURE",
    "NUM_CLASSES",
    "WINDOW",
    "evaluated_steps",
    "file_split",
    "split_videos",
    "test_videos",
    "train_offsets",
    "train_videos",
    "window_starts",
]

#: The 22 target columns in index order (OadTR's ``class_index``).
CLASS_NAMES: Tuple[str, ...] = (
    "Background",
    "BaseballPitch",
    "BasketballDunk",
    "Billiards",
    "CleanAndJerk",
    "CliffDiving",
    "CricketBowling",
    "CricketShot",
    "Diving",
    "FrisbeeCatch",
    "GolfSwing",
    "HammerThrow",
    "HighJump",
    "JavelinThrow",
    "LongJump",
    "PoleVault",
    "Shotput",
    "SoccerPenalty",
    "TennisSwing",
    "ThrowDiscus",
    "VolleyballSpiking",
    "Ambiguous",
)
NUM_CLASSES = len(CLASS_NAMES)
BACKGROUND = 0
AMBIGUOUS = NUM_CLASSES - 1
#: Steps per window (the models' receptive field).
WINDOW = 64
#: Steps after a window that OadTR's anticipation decoder predicts (never a target themselves).
FUTURE = 8

# The split lists as ranges (first, last) of video numbers, both ends included.
_TRAIN_RANGES = (
    (51, 60), (151, 190), (201, 210), (261, 270), (281, 290), (311, 320), (361, 370),
    (411, 420), (481, 490), (661, 670), (681, 690), (781, 790), (851, 860), (901, 910),
    (931, 950), (981, 990),
)  # fmt: skip
_TEST_NUMBERS = """
4 6-7 11 26 28 39 45-46 51 58 62 73 85 113 129 131 173 179 188 211 220 238 242 250 254 270 273
278 285 292-293 308 319 324 353 355 357 367 372 374 379 392 405 412-413 423 426 429 437 442-444
448 450 461 464 504-505 538 541 549 556 558 560 569 577 591 593 601-602 611 615 617 622 624 626
635 664-665 671-673 689 691 698 701 714 716 718 723-724 730 737 740 756 762 765 767 771 785-786
793 796 798 807 814 839 844 846-847 854 864 873 882 887 896-897 903 940 946 950 964 981 987 989
991 1008 1038-1040 1058 1064 1066 1072 1075-1076 1078-1081 1098 1114 1118 1123 1127 1129
1134-1135 1146 1153 1159 1162-1164 1168 1174 1182 1194-1195 1201-1202 1207 1209 1219 1223 1229
1235 1247 1255 1257 1267-1268 1270 1276 1281 1292 1307 1309 1313-1314 1319 1324-1325 1339 1343
1358 1369 1389 1391 1409 1431 1433 1446-1447 1452 1459-1460 1463 1468 1483-1484 1495-1496 1508
1512 1522 1527 1531-1532 1549 1556 1558
"""


def train_videos() -> List[str]:
    """The 200 training videos (THUMOS14 validation set), ``video_validation_0000051`` ..."""
    return [f"video_validation_{n:07d}" for lo, hi in _TRAIN_RANGES for n in range(lo, hi + 1)]


def test_videos() -> List[str]:
    """The 213 test videos (THUMOS14 test set with annotations), ``video_test_0000004`` ..."""
    names = []
    for token in _TEST_NUMBERS.split():
        lo, _, hi = token.partition("-")
        names += [f"video_test_{n:07d}" for n in range(int(lo), int(hi or lo) + 1)]
    return names


def file_split(split: str) -> str:
    """The THUMOS14 set a split of ours reads: ``train`` -> ``val`` (the THUMOS14 validation
    videos), ``val`` and ``test`` -> ``test``."""
    try:
        return {"train": "val", "val": "test", "test": "test"}[split]
    except KeyError:
        raise ValueError(f"split must be train, val or test, got {split!r}") from None


def split_videos(split: str) -> List[str]:
    """The built-in video list of our ``split`` (train: 200, val/test: 213)."""
    return train_videos() if file_split(split) == "val" else test_videos()


def _check_window(window: int, future: int) -> None:
    if window < 1 or future < 0:
        raise ValueError(f"window must be >= 1 and future >= 0, got {window} and {future}")


def evaluated_steps(targets: Tensor, window: int = WINDOW, future: int = FUTURE) -> Tensor:
    """The steps of a video that the OadTR protocol scores (and that label a window).

    Args:
        targets: ``(L, 22)`` per-step targets (one-hot or soft), a tensor or numpy array.
        window, future: the window length and the decoder horizon.

    Returns:
        ``(L,)`` bool: True for steps ``window - 1`` .. ``L - future - 2`` whose target is not
        Ambiguous (argmax of the row != 21, as OadTR tests it).
    """
    _check_window(window, future)
    targets = torch.as_tensor(targets)
    if targets.ndim != 2 or targets.shape[1] != NUM_CLASSES:
        raise ValueError(
            f"evaluated_steps: expected targets (L, {NUM_CLASSES}), got {tuple(targets.shape)}"
        )
    length = targets.shape[0]
    step = torch.arange(length)
    inside = (step >= window - 1) & (step <= length - future - 2)
    if length == 0:
        return inside
    return inside & (targets.argmax(dim=1) != AMBIGUOUS)


def window_starts(
    targets: np.ndarray, offset: int = 0, window: int = WINDOW, future: int = FUTURE
) -> np.ndarray:
    """First steps ``s`` of the windows of a video: its :func:`evaluated_steps` ``t`` as ``s = t
    - window + 1``, those with ``s >= offset`` (the train offset). ``(n,)`` int64, ascending."""
    steps = torch.nonzero(evaluated_steps(targets, window, future)).flatten().numpy()
    starts = steps.astype(np.int64) - (window - 1)
    return starts[starts >= offset]


def train_offsets(videos: Sequence[str], seed: int, window: int = WINDOW) -> List[int]:
    """The train offset of each video, in list order: uniform in ``0 .. window - 1``, drawn
    once per video (OadTR draws one per video when the dataset is built) from
    ``numpy.random.RandomState(seed)``. Drawn for every listed video, skipped ones included, so
    a missing video does not move the others' offsets."""
    rng = np.random.RandomState(seed)
    return [int(rng.randint(window)) for _ in videos]
