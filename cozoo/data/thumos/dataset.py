"""The windows of THUMOS14 feature videos (:class:`ThumosWindows`) and a whole video for
streaming evaluation (:class:`ThumosVideo`)."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .layouts import Source
from .protocol import FUTURE, WINDOW, window_starts

__all__ = ["ThumosVideo", "ThumosWindows", "video"]


class ThumosVideo(NamedTuple):
    """One whole video, for streaming evaluation step by step."""

    name: str
    #: ``(C, L)`` float32: the feature steps, time last.
    features: Tensor
    #: ``(L, 22)`` float32 targets.
    targets: Tensor


def video(source: Source, i: int) -> ThumosVideo:
    """Video ``i`` of a split reader as a :class:`ThumosVideo`."""
    features = torch.from_numpy(np.array(source.channels_first(i), order="C"))
    return ThumosVideo(source.names[i], features, torch.from_numpy(source.targets(i).copy()))


class ThumosWindows(Dataset):
    """Windows of ``window`` consecutive steps, stride 1, labelled by their last step (the rule
    of :func:`cozoo.data.thumos.evaluated_steps`; Ambiguous targets dropped).

    Items: ``{"features": (C, window) float32 (time last), "target": (22,) float32 (the last
    step's target row), "label": int (its argmax), "future": (future, 22) float32 (the targets
    of the ``future`` steps after the window), "video": str, "step": int (the last step)}``.

    Args:
        source: the split reader.
        indices: its readable videos to use (default: all).
        offsets: per video name, the first start kept (train: a random offset in ``0 ..
            window - 1``; default 0).
        window, future: window length and decoder horizon.
    """

    def __init__(
        self,
        source: Source,
        indices: Optional[Sequence[int]] = None,
        offsets: Optional[Dict[str, int]] = None,
        window: int = WINDOW,
        future: int = FUTURE,
    ) -> None:
        self.source = source
        self.window = int(window)
        self.future = int(future)
        self.indices = list(range(len(source))) if indices is None else list(indices)
        offsets = offsets or {}
        videos: List[np.ndarray] = []
        starts: List[np.ndarray] = []
        for i in self.indices:
            s = window_starts(
                source.targets(i), offsets.get(source.names[i], 0), self.window, self.future
            )
            videos.append(np.full(len(s), i, dtype=np.int64))
            starts.append(s)
        self._video = np.concatenate(videos) if videos else np.zeros(0, dtype=np.int64)
        self._start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        #: windows that failed while loading: ``{where: reason}`` (none expected after the scan).
        self.failed: Dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._start)

    @property
    def steps(self) -> np.ndarray:
        """``(N, 2)`` int64: ``(video index, last step)`` of every window."""
        return np.stack([self._video, self._start + self.window - 1], axis=1)

    def __getitem__(self, k: int) -> Dict[str, Any]:
        i, s = int(self._video[k]), int(self._start[k])
        last = s + self.window - 1
        targets = self.source.targets(i)
        target = torch.from_numpy(targets[last].copy())
        # (C, window): a view of the video (pickles) or a transposed fresh array (npy); the
        # batch collation makes the one copy
        return {
            "features": torch.from_numpy(self.source.channels_first(i, s, s + self.window)),
            "target": target,
            "label": int(target.argmax()),
            "future": torch.from_numpy(targets[last + 1 : last + 1 + self.future].copy()),
            "video": self.source.names[i],
            "step": last,
        }
