"""Per-model clip transforms and the table of published input protocols."""

from __future__ import annotations

import numpy as np
import torch

from cozoo.data.transforms import PROTOCOLS, clip_transform, uniform_indices


def test_protocol_table_matches_spec():
    expect = {  # the published Kinetics-400 test protocol of each model
        "cox3d_s": (13, 6, 160),
        "cox3d_m": (16, 5, 224),
        "cox3d_l": (16, 5, 312),
        "coslow_8x8": (8, 8, 256),
        "coi3d": (8, 8, 224),
        "i3d": (8, 8, 224),
    }
    for name, (frames, rate, side) in expect.items():
        p = PROTOCOLS[name]
        assert (p["frames"], p["sampling_rate"], p["short_side"], p["crop"]) == (
            frames,
            rate,
            side,
            side,
        )
    assert (
        PROTOCOLS["cox3d_m"]["mean"] == (0.45,) * 3 and PROTOCOLS["cox3d_m"]["std"] == (0.225,) * 3
    )
    assert PROTOCOLS["i3d"]["mean"] == (0.485, 0.456, 0.406)


def test_eval_transform_shapes_and_values():
    def spatial(name: str) -> dict:
        return {k: v for k, v in PROTOCOLS[name].items() if k != "sampling_rate"}

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

    i3d = clip_transform(**spatial("i3d"))(np.zeros((8, 224, 224, 3), np.uint8))
    expect = -torch.tensor([0.485, 0.456, 0.406]) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(i3d.mean(dim=(1, 2, 3)), expect)


def test_train_transform_random_crop():
    tf = clip_transform(frames=13, short_side=160, crop=160, train=True)
    a = tf(np.random.default_rng(0).integers(0, 255, (78, 180, 320, 3), dtype=np.uint8))
    assert a.shape == (3, 13, 160, 160)
