"""Video clip transforms of an input protocol (``cozoo.models.VideoInput``), from
``torchvision.transforms.v2``. The protocols themselves are facts of the weights
(``get_model_weights(name).DEFAULT.transforms``).

Input: a decoded clip, uint8 ``(T, H, W, 3)`` (as PyAV/numpy give it) or ``(T, 3, H, W)``.
Output: float32 ``(C, T, H, W)`` ready for a video model (batched by the loader to
``(B, C, T, H, W)``).

Evaluation pipeline (one clip, one centre crop)::

    uniform temporal subsample to `frames`  ->  /255  ->  short side = `short_side` (bilinear)
    ->  centre crop `crop`²  ->  normalise (mean, std)  ->  (C, T, H, W)

Training replaces the resize by a random short side in ``[short_side·s0, short_side·s1]``
(``train_scale``) and the centre crop by a random crop (the same crop for every frame of a clip),
optionally followed by a horizontal flip. Keep ``hflip=0`` for the generated sample: its classes
are directions of motion, which a flip swaps.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from cozoo.models import KINETICS_MEAN, KINETICS_STD

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "ToCTHW",
    "ToVideo",
    "clip_transform",
    "uniform_indices",
]


def uniform_indices(length: int, num: int) -> Tensor:
    """The ``num`` indices that ``v2.UniformTemporalSubsample(num)`` keeps from ``length`` frames:
    ``linspace(0, length - 1, num)`` truncated (repeats when ``num > length``). Shape ``(num,)``."""
    return torch.linspace(0, length - 1, num).long()


class ToVideo(nn.Module):
    """uint8 ``(T, H, W, 3)`` (numpy or tensor) or ``(T, 3, H, W)`` -> ``tv_tensors.Video``
    ``(T, 3, H, W)``, the layout ``torchvision.transforms.v2`` expects for videos."""

    def forward(self, clip: Union[np.ndarray, Tensor]) -> tv_tensors.Video:
        x = torch.from_numpy(np.ascontiguousarray(clip)) if isinstance(clip, np.ndarray) else clip
        if x.ndim != 4:
            raise ValueError(f"expected a clip (T, H, W, 3) or (T, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)
        return tv_tensors.Video(x)


class ToCTHW(nn.Module):
    """``(T, C, H, W)`` -> plain contiguous tensor ``(C, T, H, W)``."""

    def forward(self, video: Tensor) -> Tensor:
        return video.as_subclass(Tensor).permute(1, 0, 2, 3).contiguous()


def clip_transform(
    *,
    frames: int,
    short_side: int,
    crop: int,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    train: bool = False,
    train_scale: Tuple[float, float] = (1.0, 1.25),
    hflip: float = 0.0,
    antialias: bool = False,
) -> v2.Compose:
    """The clip transform of one model's input protocol.

    Args:
        frames: frames kept by the uniform temporal subsample (``T`` of the output).
        short_side: the short side after resizing (evaluation); the lower end of the random
            short side in training (times ``train_scale``).
        crop: side of the square crop: centre crop for evaluation, random crop for training.
        mean, std: per-channel normalisation applied after scaling to [0, 1].
        train: random short side + random crop (+ ``hflip``) instead of resize + centre crop.
        train_scale: range of the random short side relative to ``short_side`` (training only).
        hflip: probability of a horizontal flip (training only).
        antialias: antialiased resizing; ``False`` matches the bilinear interpolation
            (``align_corners=False``) of the published evaluation.

    Returns:
        A callable: uint8 clip ``(T', H, W, 3)`` or ``(T', 3, H, W)`` -> float32
        ``(3, frames, crop, crop)``.
    """
    if train:
        lo = max(1, round(short_side * train_scale[0]))
        hi = max(lo, round(short_side * train_scale[1]))
        spatial = [
            v2.RandomShortestSize(min_size=list(range(lo, hi + 1)), antialias=antialias),
            v2.RandomCrop(crop, pad_if_needed=True),
        ]
        if hflip > 0:
            spatial.append(v2.RandomHorizontalFlip(hflip))
    else:
        spatial = [
            v2.Resize(short_side, interpolation=v2.InterpolationMode.BILINEAR, antialias=antialias),
            v2.CenterCrop(crop),
        ]
    return v2.Compose(
        [
            ToVideo(),
            v2.UniformTemporalSubsample(frames),
            v2.ToDtype(torch.float32, scale=True),
            *spatial,
            v2.Normalize(mean=list(mean), std=list(std)),
            ToCTHW(),
        ]
    )
