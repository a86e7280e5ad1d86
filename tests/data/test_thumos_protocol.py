"""THUMOS14 protocol: the split lists, the window / evaluated-step rule (hand-counted, and
against OadTR's own window loop written out), and the train offsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cozoo.data.thumos import evaluated_steps, window_starts
from cozoo.data.thumos import protocol as P
from cozoo.data.thumos.protocol import CLASS_NAMES, file_split, train_offsets, train_videos


def _annotation(length: int, ambiguous=(), action=()):
    labels = np.zeros(length, dtype=np.int64)
    labels[list(action)] = 3
    labels[list(ambiguous)] = 21
    return np.eye(22)[labels]


# THUMOS14's validation videos used for training, as ranges of their numbers
TRAIN_RANGES = (
    (51, 60), (151, 190), (201, 210), (261, 270), (281, 290), (311, 320), (361, 370),
    (411, 420), (481, 490), (661, 670), (681, 690), (781, 790), (851, 860), (901, 910),
    (931, 950), (981, 990),
)  # fmt: skip


def test_split_lists_and_class_names():
    train, test = train_videos(), P.test_videos()
    assert len(train) == 200 == len(set(train)) and len(test) == 213 == len(set(test))
    expected = [f"video_validation_{n:07d}" for lo, hi in TRAIN_RANGES for n in range(lo, hi + 1)]
    assert sorted(train) == expected
    # OadTR's order (that of its data_info_new.json), in which the train offsets are drawn
    assert train[:3] == [f"video_validation_{n:07d}" for n in (690, 288, 289)]
    assert test[:3] == [f"video_test_{n:07d}" for n in (292, 1078, 896)]
    assert min(test) == "video_test_0000004" and max(test) == "video_test_0001558"
    for kept in ("video_test_0000270", "video_test_0001292", "video_test_0001496"):
        assert kept in test
    assert len(CLASS_NAMES) == 22 and CLASS_NAMES[0] == "Background"
    assert CLASS_NAMES[21] == "Ambiguous" and CLASS_NAMES[8] == "Diving"
    assert [file_split(s) for s in ("train", "val", "test")] == ["val", "test", "test"]


def test_evaluated_steps_hand_counted():
    # L = 100: steps 63..90 (28), step 70 Ambiguous (10 and 95 are outside anyway) -> 27
    # L = 72: no step (63 > 62); L = 73: step 63 only -> 1
    # L = 200: steps 63..190 (128), 63 and 190 Ambiguous (191 outside) -> 126
    videos = [
        _annotation(100, ambiguous=(10, 70, 95), action=range(60, 80)),
        _annotation(72),
        _annotation(73),
        _annotation(200, ambiguous=(63, 190, 191)),
    ]
    counts = [int(evaluated_steps(torch.from_numpy(a)).sum()) for a in videos]
    assert counts == [27, 0, 1, 126] and sum(counts) == 154
    mask = evaluated_steps(torch.from_numpy(videos[0]))
    assert mask.dtype == torch.bool and mask.shape == (100,)
    assert mask[63] and mask[90] and not mask[62] and not mask[91] and not mask[70]
    # other window / future: L = 10, window 4, future 1 -> steps 3..7
    small = evaluated_steps(_annotation(10), window=4, future=1)
    assert torch.nonzero(small).flatten().tolist() == [3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match=r"\(L, 22\)"):
        evaluated_steps(torch.zeros(10, 21))


def _oadtr_windows(target: np.ndarray, seed: int, enc: int = 64, dec: int = 8):
    """OadTR's window loop, written out: starts and ends of the kept windows."""
    kept = []
    for start, end in zip(range(seed, target.shape[0]), range(seed + enc, target.shape[0] - dec)):
        if target[end - 1].argmax() != 21:
            kept.append(start)
    return kept


def test_window_starts_follow_oadtrs_loop():
    rng = np.random.default_rng(0)
    for length in (50, 72, 73, 74, 137, 400):
        labels = rng.choice([0, 0, 3, 21], size=length)
        target = np.eye(22)[labels]
        for offset in (0, 1, 17, 63):
            starts = window_starts(target, offset).tolist()
            assert starts == _oadtr_windows(target, offset), (length, offset)
    mask = evaluated_steps(torch.from_numpy(target))
    assert (window_starts(target) + 63).tolist() == torch.nonzero(mask).flatten().tolist()


def test_train_offsets_are_drawn_once_per_video_from_the_seed():
    videos = train_videos()
    a, b, c = train_offsets(videos, 0), train_offsets(videos, 0), train_offsets(videos, 1)
    assert a == b and a != c and len(a) == 200
    assert min(a) >= 0 and max(a) <= 63 and len(set(a)) > 30
    state = np.random.get_state()
    try:  # OadTR seeds numpy and draws randint(64) per video, in list order
        np.random.seed(0)
        assert a == [int(np.random.randint(64)) for _ in videos]
    finally:
        np.random.set_state(state)
    assert train_offsets(videos[:5], 3, window=4) == train_offsets(videos, 3, window=4)[:5]


def test_public_names_resolve():
    import cozoo.data as D
    import cozoo.data.thumos as T

    for name in T.__all__ + ["main"]:
        assert getattr(T, name) is not None, name
    assert D.ThumosDataModule is T.ThumosDataModule and T.evaluated_steps is evaluated_steps
