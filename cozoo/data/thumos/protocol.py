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

# The split lists: video numbers in the order of OadTR's data_info_new.json (the order its
# dataset iterates the videos in, and so draws their train offsets in).
_TRAIN_NUMBERS = """
690 288 289 416 282 283 281 286 287 284 285 202 203 201 206 207 204 205 790 208 209 420 364 853
950 937 367 290 210 59 58 57 56 55 54 53 52 51 933 949 948 945 944 947 946 941 940 190 942 261
262 263 264 265 266 267 268 269 989 60 370 938 935 668 669 664 665 932 667 934 661 662 663 181
180 183 182 185 184 187 186 189 188 936 270 854 178 179 174 175 176 177 170 171 172 173 670 419
943 485 369 368 318 319 415 414 413 412 411 311 312 313 314 315 316 317 418 365 482 169 168 167
166 165 164 163 162 161 160 857 856 855 366 488 489 851 484 361 486 487 481 910 483 363 990 939
362 987 859 787 786 785 784 783 782 781 981 983 982 985 984 417 788 152 153 151 156 157 154 155
158 159 901 903 902 905 904 907 906 909 908 490 860 858 988 320 688 689 686 687 684 685 682 683
681 789 986 931 852 666
"""
_TEST_NUMBERS = """
292 1078 896 897 950 1159 1079 807 179 173 1072 1075 767 1076 7 6 556 1307 1153 718 716 1309 714
558 1267 367 1324 85 887 1281 882 671 964 1164 1114 771 1163 1118 1201 1040 1207 723 569 672 673
278 1162 405 73 560 1276 270 273 374 372 1168 379 1446 1447 1098 873 39 442 1219 762 611 617 615
1270 740 293 504 505 665 664 577 814 1369 1194 1195 1512 1235 1459 691 765 1452 188 591 1268 593
864 601 1135 4 903 285 1174 46 45 1223 1358 1134 698 461 1182 450 602 1229 989 357 1039 355 353
1508 981 242 854 1484 635 1129 1339 1483 1123 1127 689 756 1431 129 1433 1343 324 1064 1531 1532
413 991 1255 464 1202 1080 1081 847 28 844 622 26 1325 1496 1495 624 724 1409 131 448 444 443
1038 238 1527 1522 51 1058 1391 429 426 785 786 1314 392 423 1146 1313 1008 1247 737 1319 308
730 58 538 1556 113 626 839 220 1389 437 940 211 946 1558 796 62 793 987 1066 412 798 1549 11
1257 541 701 250 254 549 1209 1463 1460 319 1468 846 1292
"""


def train_videos() -> List[str]:
    """The 200 training videos (THUMOS14 validation set: ``video_validation_0000690``,
    ``video_validation_0000288``, ... in OadTR's order)."""
    return [f"video_validation_{int(n):07d}" for n in _TRAIN_NUMBERS.split()]


def test_videos() -> List[str]:
    """The 213 test videos (THUMOS14 test set with annotations: ``video_test_0000292``,
    ``video_test_0001078``, ... in OadTR's order)."""
    return [f"video_test_{int(n):07d}" for n in _TEST_NUMBERS.split()]


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
