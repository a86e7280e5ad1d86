"""Video clip transforms of the published input protocols (the weights' meta)."""

from __future__ import annotations

import numpy as np
import torch

from cozoo.data.transforms import clip_transform, uniform_indices
from cozoo.models import get_model_info

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def spatial(name: str) -> dict:
    """The spatial part of a model's published input protocol (its weights' meta)."""
    p = get_model_info(name).input
    return dict(frames=p.frames, short_side=p.short_side, crop=p.crop, mean=p.mean, std=p.std)


def test_eval_transform_shapes_and_values():
    tf = clip_transform(**spatial("cox3d_m"))
    clip = np.zeros((80, 256, 340, 3), np.uint8)
    clip[..., 170:, :] = 255  # left half black, right half white
    clip[:, 0, 0, 0] = np.arange(80)  # frame index in a corner pixel
    out = tf(clip)
    assert out.shape == (3, 16, 224, 224) and out.dtype == torch.float32
    lo, hi = (0 - 0.45) / 0.225, (1 - 0.45) / 0.225
    # 340 x 256 -> 297 x 224 (short side 224, long side floored), centre crop from column 36:
    # the edge at 170 * 224 / 256 = 148.75 lands at column 112.75 of the crop
    assert torch.allclose(out[:, :, :, :112], torch.tensor(lo))
    assert torch.allclose(out[:, :, :, 114:], torch.tensor(hi))
    # uniform temporal subsample == linspace(0, T - 1, frames)
    assert uniform_indices(80, 16).tolist() == torch.linspace(0, 79, 16).long().tolist()
    # (T, 3, H, W) uint8 input is accepted too, and T == frames keeps every frame
    same = tf(torch.from_numpy(clip[uniform_indices(80, 16).numpy()]).permute(0, 3, 1, 2))
    assert torch.equal(same, out)

    imagenet = {**spatial("coi3d"), "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    i3d = clip_transform(**imagenet)(np.zeros((8, 224, 224, 3), np.uint8))
    expect = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(i3d.mean(dim=(1, 2, 3)), expect)


def test_train_transform_random_crop():
    tf = clip_transform(frames=13, short_side=160, crop=160, train=True)
    a = tf(np.random.default_rng(0).integers(0, 255, (78, 180, 320, 3), dtype=np.uint8))
    assert a.shape == (3, 13, 160, 160)
