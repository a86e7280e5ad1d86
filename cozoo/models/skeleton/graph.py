"""Skeleton topologies and the 3-subset adjacency of 2s-AGCN (Shi et al., CVPR 2019), which the
continual skeleton networks of Hedegaard et al. (Pattern Recognition 140, 2023) use.

Two skeletons: ``"ntu"`` (Kinect v2, 25 joints, root 20 = spine shoulder) and ``"kinetics"``
(OpenPose-18, root 1 = neck). Joint indices are 0-based here.

The adjacency ``A`` has shape ``(3, V, V)``: subset 0 the identity, subset 1 the inward links,
subset 2 the outward links. A link child -> parent sets ``A[1][parent, child] = 1``; subsets 1
and 2 are then divided by their column sums (all-zero columns stay zero). With the units'
right-multiplication ``y[..., w] = sum_v x[..., v] * A[i][v, w]``:

    subset 0: y[w] = x[w]
    subset 1: y[w] = x[parent(w)]            (0 for the root)
    subset 2: y[w] = mean of x[children(w)]  (0 for a leaf)

This is not the ST-GCN "spatial" partition of Yan et al. (2018); checkpoints of the continual
skeleton models store this ``A`` and are only compatible with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Dict, Tuple

import numpy as np

__all__ = [
    "GRAPHS",
    "KINETICS",
    "NTU",
    "Skeleton",
    "adjacency",
    "get_skeleton",
]

Link = Tuple[int, int]


@dataclass(frozen=True)
class Skeleton:
    """A body's joints and its tree.

    ``inward``: (child, parent) links of the graph, 0-based; ``root``: the joint without a
    parent; ``bones``: (joint, origin) pairs of the bone modality, ``bone[j] = x[j] -
    x[origin]`` (one per joint, the root's bone is zero)."""

    name: str
    joint_names: Tuple[str, ...]
    inward: Tuple[Link, ...]
    root: int
    bones: Tuple[Link, ...]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def outward(self) -> Tuple[Link, ...]:
        """(parent, child) links: ``inward`` reversed."""
        return tuple((parent, child) for child, parent in self.inward)

    def parent(self, joint: int) -> int:
        """The parent of ``joint`` (-1 for the root)."""
        return next((p for c, p in self.inward if c == joint), -1)

    def children(self, joint: int) -> Tuple[int, ...]:
        return tuple(c for c, p in self.inward if p == joint)


def _zero_based(pairs: Tuple[Link, ...]) -> Tuple[Link, ...]:
    return tuple((a - 1, b - 1) for a, b in pairs)


_NTU_INWARD_1_BASED: Tuple[Link, ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)  # fmt: skip

NTU = Skeleton(
    name="ntu",
    joint_names=(
        "spine base",
        "spine mid",
        "neck",
        "head",
        "left shoulder",
        "left elbow",
        "left wrist",
        "left hand",
        "right shoulder",
        "right elbow",
        "right wrist",
        "right hand",
        "left hip",
        "left knee",
        "left ankle",
        "left foot",
        "right hip",
        "right knee",
        "right ankle",
        "right foot",
        "spine shoulder",
        "left hand tip",
        "left thumb",
        "right hand tip",
        "right thumb",
    ),  # fmt: skip
    inward=_zero_based(_NTU_INWARD_1_BASED),
    root=20,
    # The 24 links plus (21, 21): the bone of the root is zero.
    bones=_zero_based(_NTU_INWARD_1_BASED + ((21, 21),)),
)

KINETICS = Skeleton(
    name="kinetics",
    joint_names=(
        "nose",
        "neck",
        "right shoulder",
        "right elbow",
        "right wrist",
        "left shoulder",
        "left elbow",
        "left wrist",
        "right hip",
        "right knee",
        "right ankle",
        "left hip",
        "left knee",
        "left ankle",
        "right eye",
        "left eye",
        "right ear",
        "left ear",
    ),  # fmt: skip
    inward=(
        (4, 3),
        (3, 2),
        (7, 6),
        (6, 5),
        (13, 12),
        (12, 11),
        (10, 9),
        (9, 8),
        (11, 5),
        (8, 2),
        (5, 1),
        (2, 1),
        (0, 1),
        (15, 0),
        (14, 0),
        (17, 15),
        (16, 14),
    ),  # fmt: skip
    root=1,
    # Kinetics-skeleton bones are rooted at the nose (0), unlike the graph (neck).
    bones=(
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 3),
        (5, 1),
        (6, 5),
        (7, 6),
        (8, 2),
        (9, 8),
        (10, 9),
        (11, 5),
        (12, 11),
        (13, 12),
        (14, 0),
        (15, 0),
        (16, 14),
        (17, 15),
    ),  # fmt: skip
)

GRAPHS: Dict[str, Skeleton] = {"ntu": NTU, "kinetics": KINETICS}


def get_skeleton(graph: str) -> Skeleton:
    """The skeleton named ``graph`` (``"ntu"`` or ``"kinetics"``)."""
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {tuple(GRAPHS)}, got {graph!r}")
    return GRAPHS[graph]


def _links_matrix(links: Tuple[Link, ...], joints: int) -> np.ndarray:
    matrix = np.zeros((joints, joints))
    for child, parent in links:
        matrix[parent, child] = 1.0
    return matrix


def _normalise_columns(matrix: np.ndarray) -> np.ndarray:
    sums = matrix.sum(axis=0)
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return matrix * scale[None, :]


@cache
def _adjacency(graph: str) -> np.ndarray:
    skeleton = get_skeleton(graph)
    v = skeleton.num_joints
    identity = np.eye(v)
    inward = _normalise_columns(_links_matrix(skeleton.inward, v))
    outward = _normalise_columns(_links_matrix(skeleton.outward, v))
    matrix = np.stack((identity, inward, outward))
    matrix.setflags(write=False)
    return matrix


def adjacency(graph: str) -> np.ndarray:
    """The 3-subset adjacency ``(3, V, V)`` of ``graph`` (float64, read-only; see the module
    docstring)."""
    return _adjacency(graph)
