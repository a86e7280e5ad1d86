"""The input modalities of the skeleton networks, from joint coordinates (2s-AGCN, Shi et al.,
CVPR 2019):

    joint        x                                  (3, T, V, M)
    bone         b[:, :, j] = x[:, :, j] - x[:, :, origin(j)]    for (j, origin) in skeleton.bones
                 (the root's bone is zero)          (3, T, V, M)
    joint_motion m[:, t] = x[:, t + 1] - x[:, t],  m[:, T - 1] = 0
    bone_motion  the motion of the bones
    joint_bone   joint then bone channels            (6, T, V, M)

Motion is taken over the whole stored clip (300 frames), as the published files are; the
repeat-padding of NTU sequences makes it jump where the sequence wraps around.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from cozoo.models.skeleton.graph import Skeleton

__all__ = ["MODALITIES", "bone", "check_modality", "modality_channels", "motion", "to_modality"]

#: modality -> number of channels (for 3-D joints).
MODALITIES: Dict[str, int] = {
    "joint": 3,
    "bone": 3,
    "joint_motion": 3,
    "bone_motion": 3,
    "joint_bone": 6,
}


def check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {tuple(MODALITIES)}, got {modality!r}")


def modality_channels(modality: str, joint_channels: int = 3) -> int:
    """Channels of ``modality`` for joints of ``joint_channels`` channels."""
    check_modality(modality)
    return 2 * joint_channels if modality == "joint_bone" else joint_channels


def bone(joint: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Bones of ``joint`` ``(..., C, T, V, M)``: ``out[..., j, :] = joint[..., j, :] -
    joint[..., origin, :]`` for each ``(j, origin)`` of ``skeleton.bones``; same shape."""
    joints, origins = np.array(skeleton.bones).T
    out = np.zeros_like(joint)
    out[..., joints, :] = joint[..., joints, :] - joint[..., origins, :]
    return out


def motion(x: np.ndarray) -> np.ndarray:
    """Temporal difference of ``x`` ``(..., C, T, V, M)`` along ``T``: ``m[t] = x[t + 1] - x[t]``,
    ``m[T - 1] = 0``; same shape."""
    out = np.zeros_like(x)
    out[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    return out


def to_modality(joint: np.ndarray, modality: str, skeleton: Skeleton) -> np.ndarray:
    """``modality`` of the joint coordinates ``joint`` ``(..., C, T, V, M)``: ``(..., C', T, V,
    M)`` with ``C' = 2C`` for ``joint_bone``, else ``C``."""
    check_modality(modality)
    if modality == "joint":
        return joint
    if modality == "joint_motion":
        return motion(joint)
    bones = bone(joint, skeleton)
    if modality == "bone":
        return bones
    if modality == "bone_motion":
        return motion(bones)
    return np.concatenate((joint, bones), axis=-4)
