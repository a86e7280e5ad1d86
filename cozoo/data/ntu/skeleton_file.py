"""Reading (and writing) NTU RGB+D ``.skeleton`` files, the dataset's original text format
(Shahroudy et al., CVPR 2016)::

    <frame count>
    per frame:
        <body count>
        per body:
            bodyID clippedEdges handLeftConfidence handLeftState handRightConfidence
                handRightState isRestricted leanX leanY trackingState        (10 numbers)
            <joint count>                                                      (25)
            per joint:
                x y z depthX depthY colorX colorY orientationW orientationX orientationY
                    orientationZ trackingState                                 (12 numbers)

Only the camera-space ``x y z`` (metres) are kept. Bodies fill slots in their order of appearance
in each frame (``bodyID`` is not tracked), as 2s-AGCN (Shi et al., CVPR 2019) reads them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np

__all__ = ["MAX_BODIES", "SkeletonFileError", "read_skeleton", "write_skeleton"]

#: Body slots read per frame (Kinect v2 tracks at most 6; NTU files hold at most 4).
MAX_BODIES = 4
NUM_JOINTS = 25
_BODY_FIELDS = 10
_JOINT_FIELDS = 12

PathLike = Union[str, os.PathLike]


class SkeletonFileError(ValueError):
    """A ``.skeleton`` file that does not follow the grammar (the message names the file and
    the line)."""


def read_skeleton(
    path: PathLike, max_bodies: int = MAX_BODIES, num_joints: int = NUM_JOINTS
) -> np.ndarray:
    """The joints of a ``.skeleton`` file as ``(max_bodies, T, num_joints, 3)`` float32 (x, y,
    z; zeros where a slot has no body in a frame; ``T`` = the frame count of the file; bodies
    beyond ``max_bodies`` in a frame are ignored).

    Raises:
        SkeletonFileError: the file is truncated, holds a non-number, a body with a joint count
            other than ``num_joints``, a line of the wrong length, or trailing data.
        OSError: the file cannot be read.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii", errors="strict").split("\n")
    except UnicodeDecodeError as e:
        raise SkeletonFileError(f"{path}: not a text file ({e})") from None
    lines = [line.strip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    pos = 0

    def take(expected_fields: int, what: str) -> List[str]:
        nonlocal pos
        if pos >= len(lines):
            raise SkeletonFileError(f"{path}: truncated, expected {what} at line {pos + 1}")
        fields = lines[pos].split()
        if len(fields) != expected_fields:
            raise SkeletonFileError(
                f"{path}:{pos + 1}: expected {what} ({expected_fields} numbers), "
                f"got {len(fields)} fields"
            )
        pos += 1
        return fields

    def count(what: str) -> int:
        line = pos + 1
        text = take(1, what)[0]
        try:
            value = int(text)
        except ValueError:
            raise SkeletonFileError(f"{path}:{line}: {what} is not an integer: {text!r}") from None
        if value < 0:
            raise SkeletonFileError(f"{path}:{line}: negative {what}: {value}")
        return value

    frames = count("the frame count")
    out = np.zeros((max_bodies, frames, num_joints, 3), dtype=np.float32)
    for t in range(frames):
        for b in range(count(f"the body count of frame {t}")):
            take(_BODY_FIELDS, f"the body info of frame {t}, body {b}")
            joints = count(f"the joint count of frame {t}, body {b}")
            if joints != num_joints:
                raise SkeletonFileError(f"{path}:{pos}: expected {num_joints} joints, got {joints}")
            start = pos
            rows = [take(_JOINT_FIELDS, f"joint {j} of frame {t}, body {b}") for j in range(joints)]
            try:
                xyz = np.array([row[:3] for row in rows], dtype=np.float32)
            except ValueError:
                raise SkeletonFileError(
                    f"{path}:{start + 1}-{pos}: a joint coordinate is not a number"
                ) from None
            if b < max_bodies:
                out[b, t] = xyz
    if pos != len(lines):
        raise SkeletonFileError(f"{path}:{pos + 1}: unexpected data after the last frame")
    return out


def write_skeleton(path: PathLike, frames: Sequence[Sequence[np.ndarray]]) -> None:
    """Write a ``.skeleton`` file: ``frames[t]`` is the list of the bodies of frame ``t``, each
    ``(25, 3)`` camera-space joints (the other fields are written as plausible constants:
    body id, tracking states 2, depth/colour pixel coordinates from a pinhole projection)."""
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for b, joints in enumerate(bodies):
            joints = np.asarray(joints, dtype=np.float64)
            out.append(f"{72057594037930000 + b} 0 1 1 1 1 0 0.01 -0.02 2")
            out.append(str(len(joints)))
            for x, y, z in joints:
                zz = z if abs(z) > 1e-3 else 1.0
                dx, dy = 256 + 365 * x / zz, 212 - 365 * y / zz
                cx, cy = 960 + 1050 * x / zz, 540 - 1050 * y / zz
                out.append(
                    f"{x:.9g} {y:.9g} {z:.9g} {dx:.5g} {dy:.5g} {cx:.5g} {cy:.5g} 0.1 0.2 0.3 0.9 2"
                )
    Path(path).write_text("\n".join(out) + "\n")
