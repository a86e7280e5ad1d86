"""The pre-normalisation of NTU skeleton sequences of 2s-AGCN (Shi et al., CVPR 2019), which the
published weights of the skeleton networks were trained and evaluated on.

From the body slots of a ``.skeleton`` file (up to 4 per frame, in order of appearance; body ids
are not tracked), :func:`select_bodies` keeps the 2 of largest *energy* (the sum over x, y, z of
the standard deviation of that coordinate over all joints of the slot's non-empty frames). The
frames are written into a zero array of ``frames`` (300) frames. Then, on ``(M, T, V, 3)``:

1. :func:`fill`: per person that is not entirely empty: if its first frame is empty, its
   non-empty frames are moved to the front (this removes interior gaps too); then the tail
   after the last non-empty frame is filled by repeating the valid prefix cyclically. Interior
   empty frames of a person whose first frame is non-empty stay empty.
2. :func:`centre`: per frame, subtract joint 1 (spine mid) of person 0 from every joint of
   every person; joints that are all zero stay zero.
3. :func:`align`: rotate every non-empty frame so that joint 0 -> joint 1 (spine base -> spine
   mid) of person 0 in frame 0 is parallel to +z,
4. then so that joint 8 -> joint 4 (right shoulder -> left shoulder) of person 0 in frame 0 is
   parallel to +x (a rotation about ``cross(v, axis)`` by the angle between them; nothing
   happens when a vector is zero or already aligned).

A frame (or joint) is *empty* when all its coordinates are zero.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = [
    "NUM_FRAMES",
    "align",
    "body_energy",
    "centre",
    "fill",
    "normalize_agcn",
    "place_frames",
    "rotation_matrix",
    "select_bodies",
]

#: Frames of a pre-normalised NTU sequence.
NUM_FRAMES = 300
_EPS = 1e-6


def body_energy(body: np.ndarray) -> float:
    """Energy of one body slot ``(T, V, 3)``: ``std(x) + std(y) + std(z)`` over all joints of
    its non-empty frames (0 for a slot without any)."""
    frames = body[np.any(body != 0, axis=(1, 2))]
    if len(frames) == 0:
        return 0.0
    return float(sum(frames[..., c].std() for c in range(frames.shape[-1])))


def select_bodies(bodies: np.ndarray, max_bodies: int = 2) -> np.ndarray:
    """The ``max_bodies`` slots of largest energy of ``bodies`` ``(B, T, V, C)``, largest first
    (ties keep the order of appearance), as ``(max_bodies, T, V, C)`` (zero slots added when
    ``B < max_bodies``)."""
    energy = np.array([body_energy(b) for b in bodies], dtype=np.float64)
    order = np.argsort(-energy, kind="stable")[:max_bodies]
    out = np.zeros((max_bodies,) + bodies.shape[1:], dtype=bodies.dtype)
    out[: len(order)] = bodies[order]
    return out


def place_frames(x: np.ndarray, frames: int = NUM_FRAMES) -> np.ndarray:
    """``x`` ``(M, T, V, C)`` in a zero array of ``frames`` frames ``(M, frames, V, C)`` (the
    frames after ``frames`` are dropped)."""
    out = np.zeros((x.shape[0], frames) + x.shape[2:], dtype=x.dtype)
    n = min(frames, x.shape[1])
    out[:, :n] = x[:, :n]
    return out


def fill(x: np.ndarray) -> np.ndarray:
    """Step 1 on ``(M, T, V, C)`` (a new array; see the module docstring): move the non-empty
    frames of a person whose first frame is empty to the front, then repeat the valid prefix
    cyclically over the empty tail."""
    out = x.copy()
    total = out.shape[1]
    for person in out:
        nonempty = np.any(person != 0, axis=(1, 2))
        if not nonempty.any():
            continue
        if not nonempty[0]:
            kept = person[nonempty].copy()
            person[:] = 0
            person[: len(kept)] = kept
            nonempty = np.zeros(total, dtype=bool)
            nonempty[: len(kept)] = True
        # the tail: the frames after the last non-empty one
        valid = int(np.flatnonzero(nonempty)[-1]) + 1
        if valid < total:
            reps = -(-(total - valid) // valid)
            person[valid:] = np.concatenate([person[:valid]] * reps, axis=0)[: total - valid]
    return out


def centre(x: np.ndarray, joint: int = 1) -> np.ndarray:
    """Step 2 on ``(M, T, V, C)``: subtract ``x[0, t, joint]`` (spine mid of person 0) from
    every joint of every person in frame ``t``; all-zero joints stay zero."""
    origin = x[0, :, joint : joint + 1, :]  # (T, 1, C)
    mask = np.any(x != 0, axis=-1, keepdims=True)
    return ((x - origin[None]) * mask).astype(x.dtype)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    if np.abs(a).sum() < _EPS or np.abs(b).sum() < _EPS:
        return 0.0
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def rotation_matrix(axis: np.ndarray, theta: float) -> np.ndarray:
    """The ``(3, 3)`` matrix of a rotation by ``theta`` radians (counter-clockwise, right hand)
    about ``axis`` (Rodrigues' formula); the identity when ``axis`` or ``theta`` is ~0."""
    axis = np.asarray(axis, dtype=np.float64)
    if np.abs(axis).sum() < _EPS or abs(theta) < _EPS:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * cross + (1.0 - np.cos(theta)) * (cross @ cross)


def align(x: np.ndarray, joints: Tuple[int, int], target: np.ndarray) -> np.ndarray:
    """Steps 3/4 on ``(M, T, V, 3)``: rotate every non-empty frame so that the vector
    ``x[0, 0, joints[1]] - x[0, 0, joints[0]]`` becomes parallel to ``target``."""
    vector = x[0, 0, joints[1]].astype(np.float64) - x[0, 0, joints[0]]
    target = np.asarray(target, dtype=np.float64)
    matrix = rotation_matrix(np.cross(vector, target), _angle(vector, target))
    rotated = np.einsum("ij,mtvj->mtvi", matrix, x.astype(np.float64))
    nonempty = np.any(x != 0, axis=(2, 3))[:, :, None, None]
    return np.where(nonempty, rotated, x).astype(x.dtype)


def normalize_agcn(
    bodies: np.ndarray,
    frames: int = NUM_FRAMES,
    *,
    max_bodies: int = 2,
    select: bool = True,
    centre_and_rotate: bool = True,
) -> np.ndarray:
    """The whole 2s-AGCN pre-normalisation of one sequence.

    Args:
        bodies: ``(B, T, V, 3)`` camera-space joint coordinates of ``B`` body slots over ``T``
            frames (zeros where a slot is empty).
        frames: frames of the output (frames beyond are dropped).
        select: keep the ``max_bodies`` slots of largest energy (else the first ones).
        centre_and_rotate: steps 2-4 (else only step 1, the fill).

    Returns:
        ``(3, frames, V, max_bodies)`` float32.
    """
    bodies = np.asarray(bodies, dtype=np.float32)
    if select:
        x = select_bodies(bodies, max_bodies)
    else:
        x = np.zeros((max_bodies,) + bodies.shape[1:], np.float32)
        x[: min(max_bodies, len(bodies))] = bodies[:max_bodies]
    x = fill(place_frames(x, frames))
    if centre_and_rotate:
        x = centre(x)
        x = align(x, (0, 1), np.array([0.0, 0.0, 1.0]))
        x = align(x, (8, 4), np.array([1.0, 0.0, 0.0]))
    return np.ascontiguousarray(x.transpose(3, 1, 2, 0), dtype=np.float32)
