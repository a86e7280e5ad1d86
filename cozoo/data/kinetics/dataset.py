"""The clip protocol and the clip dataset of Kinetics.

A clip is ``frames`` indices uniformly in a window of ``frames × sampling_rate`` frames of the
video resampled to 30 fps: the window starts at random for training and is centred on the video
middle for evaluation (the single-clip, centre-crop Kinetics-400 evaluation of continual 3D CNNs,
Hedegaard & Iosifidis, ECCV 2022); it starts at frame 0 and repeats the last frame when it is
longer than the video.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..transforms import uniform_indices
from .decode import DecodeError, read_frames
from .listing import VideoRecord

__all__ = ["KineticsClips", "clip_indices", "end_aligned_indices"]

log = logging.getLogger(__name__)


def clip_indices(
    num_video_frames: int,
    frames: int,
    sampling_rate: int,
    start: Optional[int] = None,
) -> Tensor:
    """Indices (at 30 fps) of one clip: ``frames`` indices uniformly in a window of
    ``frames × sampling_rate`` frames beginning at ``start`` (``None``: centred on the video
    middle; 0 when the window is longer than the video); indices past the end repeat the last
    frame. Shape ``(frames,)``, int64."""
    window = frames * sampling_rate
    if start is None:
        start = max(0, (num_video_frames - window) // 2)
    idx = start + uniform_indices(window, frames)
    return idx.clamp_(0, max(0, num_video_frames - 1))


def end_aligned_indices(
    num_video_frames: int, frames: int, end_frames: int, sampling_rate: int
) -> Tensor:
    """Indices (at 30 fps) of a ``frames``-frame evaluation clip whose last ``end_frames``
    frames are the protocol's centred clip (:func:`clip_indices`), preceded by ``frames -
    end_frames`` frames every ``sampling_rate`` frames. Shape ``(frames,)``, int64.

    When the video has too little before its centred clip, the whole window is shifted later so
    that it starts at the first frame: the clip never begins with copies of the first frame (a
    frozen picture, which a continual model would have to warm up on; its prediction at the
    last frame depends mostly on those early frames). Only past the end does a frame repeat (the
    last one), when the window is longer than the video.
    """
    tail = clip_indices(num_video_frames, end_frames, sampling_rate)
    head = tail[0] - sampling_rate * torch.arange(frames - end_frames, 0, -1)
    idx = torch.cat([head, tail])
    idx += max(0, -int(idx[0]))  # starts before the video: shift it to start at frame 0
    return idx.clamp_(0, max(0, num_video_frames - 1))


class KineticsClips(Dataset):
    """Clips of listed videos; item ``i`` -> ``{"video": (C, T, H, W) float, "label": int,
    "video_index": int, "path": str}`` (batched by the loader to ``(B, C, T, H, W)``, ``(B,)``).

    Args:
        records: the (scanned) videos.
        frames: ``T``, frames per clip.
        sampling_rate: spacing of the frames at ``fps`` (the window is ``frames × rate``).
        transform: uint8 ``(T, H, W, 3)`` -> float ``(C, T, H, W)``.
        train: random window start (else centred), ``clips_per_video`` items per video.
        clips_per_video: items per video in training.
        align: for evaluation, ``"center"`` centres the window on the video middle (the
            published protocol); ``"end"`` makes the last ``end_frames`` frames exactly the
            centred ``end_frames``-frame clip and puts the other frames before it at
            ``sampling_rate`` — used for continual clips whose clip-mode view is their end. A
            video too short for that gets the window shifted to start at its first frame
            (:func:`end_aligned_indices`).
        end_frames: the protocol's clip length for ``align="end"``.
        fps: the frame rate videos are resampled to.
        max_retries: readable videos tried in place of one that fails to decode.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        frames: int,
        sampling_rate: int,
        transform: Callable[[np.ndarray], Tensor],
        train: bool = False,
        clips_per_video: int = 1,
        align: str = "center",
        end_frames: Optional[int] = None,
        fps: int = 30,
        max_retries: int = 10,
    ) -> None:
        if align not in ("center", "end"):
            raise ValueError(f"align must be 'center' or 'end', got {align!r}")
        self.records = list(records)
        self.frames, self.sampling_rate, self.fps = int(frames), int(sampling_rate), int(fps)
        self.transform = transform
        self.train = bool(train)
        self.clips_per_video = int(clips_per_video) if train else 1
        self.align, self.end_frames = align, end_frames
        self.max_retries = int(max_retries)
        #: path -> reason, for videos that failed while loading (in this process)
        self.failed: Dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.records) * self.clips_per_video

    def indices(self, n: int) -> Tensor:
        """The 30-fps frame indices of one clip from an ``n``-frame video, ``(frames,)``."""
        window = self.frames * self.sampling_rate
        if self.train:
            start = int(torch.randint(0, max(0, n - window) + 1, (1,)))
            return clip_indices(n, self.frames, self.sampling_rate, start)
        if self.align == "end" and self.end_frames and self.end_frames < self.frames:
            return end_aligned_indices(n, self.frames, self.end_frames, self.sampling_rate)
        return clip_indices(n, self.frames, self.sampling_rate)

    def load(self, video_index: int) -> Dict[str, Any]:
        """One clip of video ``video_index``; raises :class:`DecodeError`."""
        rec = self.records[video_index]
        frames = read_frames(rec.path, self.indices, self.fps)
        return {
            "video": self.transform(frames),
            "label": rec.label,
            "video_index": video_index,
            "path": rec.path,
        }

    def __getitem__(self, i: int) -> Dict[str, Any]:
        n = len(self.records)
        first = i // self.clips_per_video
        for k in range(min(n, self.max_retries + 1)):
            j = (first + k) % n
            path = self.records[j].path
            if path in self.failed:
                continue
            try:
                return self.load(j)
            except DecodeError as e:
                self.failed[path] = str(e)
                log.warning(
                    "unreadable video skipped (%d so far in this process): %s; "
                    "using the next video instead",
                    len(self.failed),
                    e,
                )
        raise DecodeError(
            f"{self.max_retries + 1} videos in a row from index {first} could not be decoded "
            f"(last: {self.records[(first + k) % n].path})"
        )
