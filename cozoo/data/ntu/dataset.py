"""The dataset of NTU skeleton sequences, over a split reader of :mod:`cozoo.data.ntu.layouts`."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch.utils.data import Dataset

from .features import check_modality
from .layouts import Source

__all__ = ["NTUSkeletons"]


class NTUSkeletons(Dataset):
    """Items ``{"skeleton": (C, T, V, M) float32 tensor, "label": int, "name": str, "index":
    int}`` of the readable items of a split reader.

    ``C`` is 3 (6 for ``joint_bone``), ``V`` 25, ``M`` 2; ``T = frames``: the first ``frames``
    frames of the stored 300-frame sequence (the modality is taken on the whole stored
    sequence first, so motion at the last kept frame is the true difference). ``index`` is the
    item's position in the stored split (the row of the ``.npy`` file, the position in the
    pyskl split list without the skipped entries).

    Args:
        source: the split reader (``AgcnNpySplit`` or ``PysklSplit``).
        indices: the readable items of ``source`` (default: all).
        modality: ``joint``, ``bone``, ``joint_motion``, ``bone_motion`` or ``joint_bone``.
        frames: frames per item (at most the stored 300).
    """

    def __init__(
        self,
        source: Source,
        indices: Optional[Sequence[int]] = None,
        modality: str = "joint",
        frames: Optional[int] = None,
    ) -> None:
        check_modality(modality)
        self.source = source
        self.indices = list(range(len(source))) if indices is None else list(indices)
        self.modality = modality
        self.frames = source.frames if frames is None else int(frames)
        if not 0 < self.frames <= source.frames:
            raise ValueError(f"frames must be in [1, {source.frames}], got {self.frames}")
        #: items that failed while loading: ``{name: reason}`` (none expected after the scan).
        self.failed: Dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        row = self.indices[i]
        clip = self.source.get(row, self.modality)[:, : self.frames]
        return {
            "skeleton": torch.from_numpy(clip.astype("float32", copy=True)),
            "label": int(self.source.labels[row]),
            "name": self.source.names[row],
            "index": int(row),
        }
