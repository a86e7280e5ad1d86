"""A small generated sample of skeleton motions in the 2s-AGCN NTU layout (``agcn_npy``).

With no ``data.root`` the NTU data module writes this sample into the cache and reads it through
exactly the code that reads the real preprocessed dataset::

    <cache_dir>/ntu/<size>-seed<seed>/          (<size>-T<frames>-seed<seed> for other lengths)
      train_data_joint.npy   (N, 3, 300, 25, 2) float32     val_data_joint.npy
      train_label.pkl        (names, labels)                val_label.pkl
      SAMPLE.json            written last: marks a complete sample

Each sequence is one or two bodies of the NTU skeleton (Kinect v2, 25 joints, placed by
``cozoo.models.skeleton.graph.NTU``'s tree) in camera space, 100 to 300 frames long, then
pre-normalised exactly like the real data (2s-AGCN: body selection, repeat-padding to 300 frames,
centring, rotations; :mod:`cozoo.data.ntu.normalize`). The 6 classes are 3 pairs of motions that
differ only in their direction in time: arm circles forward / backward (both arms), a squat with
a slow descent and a fast rise / a fast descent and a slow rise, turning left / right on the
spot. Within a pair every pose is equally likely at every instant (random phase), so a single
frame does not tell the class; a motion cycle takes 30 to 80 frames, so a window of 64 frames
shows it. Body size and proportions, position, camera tilt, facing, speed, phase, idle sway and
joint noise are random; half of the sequences have a second person doing the same class of
motion beside the first (the other half: a zero second person).

Sample names follow NTU's ``SsssCcccPpppRrrrAaaa`` (action = class + 1) and the X-Sub rule of
NTU-60 (train performers in train, the others in val), so :func:`write_skeleton_files` plus
``python -m cozoo.data.ntu prepare`` rebuild the same arrays from ``.skeleton`` files, and
:func:`write_pyskl_pickle` writes the same sequences as a pyskl annotation pickle. Everything is
deterministic in ``seed`` (each sequence draws from its own ``default_rng((seed, split, class,
index))`` stream).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from cozoo.models.skeleton.graph import NTU

from .._cache import build_atomically, cache_root, marker_matches, write_marker
from .normalize import normalize_agcn, select_bodies
from .protocol import NTU60_TRAIN_SUBJECTS, missing_skeletons
from .skeleton_file import write_skeleton

__all__ = [
    "GENERATOR",
    "SAMPLE_CLASSES",
    "SAMPLE_SIZES",
    "SampleSpec",
    "ensure_sample",
    "is_complete",
    "raw_sequence",
    "sample_items",
    "sample_root",
    "write_pyskl_pickle",
    "write_sample",
    "write_skeleton_files",
]

log = logging.getLogger(__name__)

SAMPLE_CLASSES: Tuple[str, ...] = (
    "arm circles backward",
    "arm circles forward",
    "squat with slow descent",
    "squat with slow rise",
    "turning left",
    "turning right",
)
assert list(SAMPLE_CLASSES) == sorted(SAMPLE_CLASSES)

#: Sequences per class and split: ``name -> (train, val)`` (``test`` reads ``val``).
SAMPLE_SIZES: Dict[str, Tuple[int, int]] = {
    "tiny": (3, 2),
    "small": (32, 8),
    "medium": (96, 24),
}
#: Bumped whenever the generated content changes: a cached sample of another one is rebuilt.
GENERATOR = 1
_SPLITS = ("train", "val")


@dataclass(frozen=True)
class SampleSpec:
    """Length of the stored sequences (``frames``, padded as NTU's) and of the generated
    motions before padding (``min_length`` to ``max_length`` frames; default ``frames // 3`` to
    ``frames``)."""

    frames: int = 300
    min_length: Optional[int] = None
    max_length: Optional[int] = None

    def lengths(self) -> Tuple[int, int]:
        low = self.min_length if self.min_length is not None else max(1, self.frames // 3)
        high = self.max_length if self.max_length is not None else self.frames
        return int(low), int(min(high, self.frames))


# --------------------------------------------------------------------------------------------
# A body
# --------------------------------------------------------------------------------------------
# Rest pose (metres, relative to the spine base): x = the person's left, y = up, z = backward
# (the person faces -z, the camera). Joint order and names: NTU.joint_names.
_REST_LEFT = {
    "spine base": (0.0, 0.0, 0.0),
    "spine mid": (0.0, 0.28, 0.0),
    "spine shoulder": (0.0, 0.50, 0.0),
    "neck": (0.0, 0.58, 0.0),
    "head": (0.0, 0.72, -0.01),
    "left shoulder": (0.17, 0.47, 0.0),
    "left elbow": (0.20, 0.20, 0.0),
    "left wrist": (0.21, -0.04, 0.0),
    "left hand": (0.21, -0.11, -0.01),
    "left hand tip": (0.21, -0.18, -0.01),
    "left thumb": (0.19, -0.10, -0.05),
    "left hip": (0.09, -0.02, 0.0),
    "left knee": (0.10, -0.44, 0.0),
    "left ankle": (0.10, -0.84, 0.02),
    "left foot": (0.10, -0.88, -0.10),
}


def _rest_pose() -> np.ndarray:
    """``(25, 3)`` rest pose in NTU joint order (the right side mirrors the left)."""
    pose = np.zeros((NTU.num_joints, 3))
    for j, name in enumerate(NTU.joint_names):
        mirrored = name.replace("right ", "left ")
        x, y, z = _REST_LEFT[mirrored]
        pose[j] = (-x if name.startswith("right ") else x, y, z)
    return pose


_REST = _rest_pose()
_J = {name: j for j, name in enumerate(NTU.joint_names)}


def _subtree(joint: int) -> List[int]:
    """``joint`` and its descendants in the NTU tree."""
    out, stack = [], [joint]
    while stack:
        j = stack.pop()
        out.append(j)
        stack.extend(NTU.children(j))
    return out


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations by ``angle`` ``(T,)`` radians about the x or y axis."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    else:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def _turn(pos: np.ndarray, pivot: int, members: List[int], rot: np.ndarray) -> None:
    """Rotate the joints ``members`` of ``pos`` ``(T, V, 3)`` about joint ``pivot``, in place."""
    centre = pos[:, pivot : pivot + 1]
    pos[:, members] = centre + np.einsum("tij,tvj->tvi", rot, pos[:, members] - centre)


def _wave(t: np.ndarray, period: float, phase: float, rise: float) -> np.ndarray:
    """An asymmetric triangle wave in [0, 1]: up during ``rise`` of the period, then down."""
    u = (t / period + phase) % 1.0
    return np.where(u < rise, u / rise, (1.0 - u) / (1.0 - rise))


def _body(label: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """One body doing class ``label``: ``(length, 25, 3)`` relative to its spine base."""
    name = SAMPLE_CLASSES[label]
    t = np.arange(length, dtype=np.float64)
    scale = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, size=(1, 3))
    pos = np.broadcast_to(_REST * scale, (length, NTU.num_joints, 3)).copy()
    period = rng.uniform(30.0, 80.0)
    phase = rng.uniform(0.0, 1.0)
    sign = -1.0 if name.endswith(("backward", "slow rise", "right")) else 1.0
    arms = [_J["left shoulder"], _J["right shoulder"]]
    elbows = [_J["left elbow"], _J["right elbow"]]
    bend = rng.uniform(0.05, 0.5)  # elbow bend, radians
    for elbow in elbows:
        _turn(pos, elbow, _subtree(elbow), _rot("x", np.full(length, bend)))
    if name.startswith("arm circles"):  # rotation about the shoulder axis, forward = up in front
        angle = 2 * np.pi * (phase + sign * t / period)
        for k, shoulder in enumerate(arms):
            offset = rng.uniform(-0.3, 0.3) if k else 0.0
            _turn(pos, shoulder, _subtree(shoulder), _rot("x", angle + offset))
    elif name.startswith("squat"):  # depth: slow descent / fast rise, or the reverse in time
        rise = rng.uniform(0.7, 0.8)
        depth = _wave(t if sign > 0 else -t, period, phase, rise) * rng.uniform(0.6, 1.0)
        knee = np.radians(75.0) * depth
        for side in ("left", "right"):
            _turn(pos, _J[f"{side} knee"], _subtree(_J[f"{side} knee"]), _rot("x", -2 * knee))
            _turn(pos, _J[f"{side} hip"], _subtree(_J[f"{side} hip"]), _rot("x", knee))
        for shoulder in arms:  # arms forward for balance
            _turn(pos, shoulder, _subtree(shoulder), _rot("x", 1.2 * knee))
        upper = _subtree(_J["spine mid"])
        _turn(pos, _J["spine base"], upper, _rot("x", -0.4 * knee))
    else:  # turning on the spot, arms swinging a little
        swing = 0.25 * np.sin(2 * np.pi * (t / period + phase))
        for k, shoulder in enumerate(arms):
            _turn(pos, shoulder, _subtree(shoulder), _rot("x", swing if k else -swing))
        turns = sign * 2 * np.pi * (t / period + phase)
        _turn(pos, _J["spine base"], list(range(NTU.num_joints)), _rot("y", turns))
    # idle sway of the whole body
    sway = np.radians(3.0) * np.sin(2 * np.pi * t / rng.uniform(60, 120) + rng.uniform(0, 6.3))
    _turn(pos, _J["spine base"], list(range(NTU.num_joints)), _rot("x", sway))
    return pos


def raw_sequence(
    label: int, rng: np.random.Generator, spec: SampleSpec = SampleSpec()
) -> np.ndarray:
    """One generated sequence of class ``SAMPLE_CLASSES[label]`` in camera space (Kinect-like:
    metres, y up, the camera looking along +z): ``(B, L, 25, 3)`` float32, ``B`` = 1 or 2
    bodies, ``L`` frames (drawn from ``spec.lengths()``)."""
    low, high = spec.lengths()
    length = int(rng.integers(low, high + 1))
    persons = 1 + int(rng.random() < 0.5)
    tilt = _rot("x", np.full(1, rng.uniform(-0.2, 0.2)))[0]  # the camera's pitch
    base = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3), rng.uniform(2.5, 3.8)])
    bodies = []
    for p in range(persons):
        body = _body(label, length, rng)
        facing = _rot("y", np.full(1, rng.uniform(-0.6, 0.6)))[0]  # about facing the camera
        where = base + (np.array([rng.choice((-1, 1)) * rng.uniform(0.8, 1.3), 0, 0]) if p else 0)
        drift = rng.normal(0, 0.002, size=(length, 1, 3)).cumsum(0)
        body = (body @ facing.T + where + drift) @ tilt.T
        body += rng.normal(0, 0.008, size=body.shape)
        bodies.append(body)
    return np.stack(bodies).astype(np.float32)


# --------------------------------------------------------------------------------------------
# The sample
# --------------------------------------------------------------------------------------------
def _names(split: int, label: int, count: int) -> List[str]:
    """NTU-style names of the ``count`` sequences of ``label`` in ``split`` (X-Sub of NTU-60:
    train performers for train, others for val; none listed as missing skeletons)."""
    subjects = sorted(NTU60_TRAIN_SUBJECTS)
    if split:
        subjects = [p for p in range(1, 41) if p not in NTU60_TRAIN_SUBJECTS]
    skip = missing_skeletons("ntu60")
    out: List[str] = []
    k = 0
    while len(out) < count:
        performer = subjects[k % len(subjects)]
        camera = 1 + (k // len(subjects)) % 3
        setup = 1 + (k // (3 * len(subjects))) % 17
        replication = 1 + (k // (51 * len(subjects))) % 2
        name = f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{label + 1:03d}"
        if name not in skip:
            out.append(name)
        k += 1
    return out


def sample_items(size: str, seed: int, spec: SampleSpec = SampleSpec()):
    """The sample's sequences, per split: ``{"train": [(name, label, raw), ...], "val":
    [...]}`` sorted by name, ``raw`` from :func:`raw_sequence` (``(B, L, 25, 3)``)."""
    _check_size(size)
    out: Dict[str, List[Tuple[str, int, np.ndarray]]] = {}
    for split_id, split in enumerate(_SPLITS):
        rows = []
        for label in range(len(SAMPLE_CLASSES)):
            names = _names(split_id, label, SAMPLE_SIZES[size][split_id])
            for k, name in enumerate(names):
                rng = np.random.default_rng((int(seed), split_id, label, k))
                rows.append((name, label, raw_sequence(label, rng, spec)))
        out[split] = sorted(rows, key=lambda row: row[0])
    return out


def _check_size(size: str) -> None:
    if size not in SAMPLE_SIZES:
        raise ValueError(f"unknown sample size {size!r}; choose one of {sorted(SAMPLE_SIZES)}")


def sample_root(
    cache_dir: Union[str, os.PathLike, None] = None,
    size: str = "small",
    seed: int = 0,
    spec: SampleSpec = SampleSpec(),
) -> Path:
    """``<cache_dir>/ntu/<size>-seed<seed>`` (``<size>-T<frames>-seed<seed>`` when
    ``spec.frames`` is not 300; ``cache_dir`` default: ``$COZOO_CACHE`` or ``~/.cache/cozoo``)."""
    _check_size(size)
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    length = "" if spec.frames == 300 else f"-T{spec.frames}"
    return base / "ntu" / f"{size}{length}-seed{int(seed)}"


def is_complete(root: Union[str, os.PathLike], spec: SampleSpec = SampleSpec()) -> bool:
    """True iff ``root`` holds a finished sample of this generator and ``spec``."""
    return marker_matches(root, {"generator": GENERATOR, "spec": asdict(spec)})


def write_sample(
    root: Union[str, os.PathLike],
    size: str = "small",
    seed: int = 0,
    spec: SampleSpec = SampleSpec(),
) -> Dict[str, int]:
    """Write the sample in the ``agcn_npy`` layout into the folder ``root``, non-atomically
    (:func:`ensure_sample` is the atomic, cached version). Returns ``{relative path: size}``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files: Dict[str, int] = {}
    for split, rows in sample_items(size, seed, spec).items():
        data = np.stack([normalize_agcn(raw, spec.frames) for _, _, raw in rows])
        np.save(root / f"{split}_data_joint.npy", data.astype(np.float32))
        with open(root / f"{split}_label.pkl", "wb") as f:
            names = [f"{name}.skeleton" for name, _, _ in rows]
            pickle.dump((names, [label for _, label, _ in rows]), f, protocol=2)
        for rel in (f"{split}_data_joint.npy", f"{split}_label.pkl"):
            files[rel] = (root / rel).stat().st_size
    manifest = {
        "format": "NTU RGB+D 2s-AGCN layout (generated sample)",
        "generator": GENERATOR,
        "size": size,
        "seed": int(seed),
        "classes": list(SAMPLE_CLASSES),
        "spec": asdict(spec),
        "files": files,
    }
    write_marker(root, manifest)
    return files


def ensure_sample(
    cache_dir: Union[str, os.PathLike, None] = None,
    size: str = "small",
    seed: int = 0,
    spec: SampleSpec = SampleSpec(),
) -> Path:
    """The root of a complete generated sample, written first (atomically) if needed."""
    root = sample_root(cache_dir, size, seed, spec)
    t0 = time.perf_counter()
    files = build_atomically(
        root,
        lambda tmp: write_sample(tmp, size, seed, spec),
        lambda folder: is_complete(folder, spec),
        logger=log,
    )
    if files is not None:
        log.warning(
            "generated the NTU-layout sample (%d sequences, %d classes) in %.1f s at %s",
            sum(SAMPLE_SIZES[size]) * len(SAMPLE_CLASSES),
            len(SAMPLE_CLASSES),
            time.perf_counter() - t0,
            root,
        )
    return root


def write_pyskl_pickle(
    path: Union[str, os.PathLike],
    size: str = "small",
    seed: int = 0,
    spec: SampleSpec = SampleSpec(),
    dtype: str = "float32",
) -> Path:
    """The same sequences as a pyskl annotation pickle (``split``: ``xsub_train`` /
    ``xsub_val``; ``keypoint`` ``(M, L, 25, 3)`` camera-space, persons ordered by energy as
    2s-AGCN selects them, no zero person; ``total_frames`` = L). Returns ``path``."""
    path = Path(path)
    split_lists: Dict[str, List[str]] = {}
    annotations = []
    for split, rows in sample_items(size, seed, spec).items():
        split_lists[f"xsub_{split}"] = [name for name, _, _ in rows]
        for name, label, raw in rows:
            bodies = select_bodies(raw, len(raw))
            annotations.append(
                {
                    "frame_dir": name,
                    "label": label,
                    "keypoint": bodies.astype(dtype),
                    "total_frames": int(raw.shape[1]),
                }
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"split": split_lists, "annotations": annotations}, f)
    return path


def write_skeleton_files(
    folder: Union[str, os.PathLike],
    size: str = "tiny",
    seed: int = 0,
    spec: SampleSpec = SampleSpec(),
) -> List[Path]:
    """The same sequences as NTU ``.skeleton`` files ``<folder>/<name>.skeleton`` (both splits;
    every body is written in every frame). Returns the paths, sorted."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for rows in sample_items(size, seed, spec).values():
        for name, _, raw in rows:
            path = folder / f"{name}.skeleton"
            write_skeleton(path, [list(raw[:, t]) for t in range(raw.shape[1])])
            paths.append(path)
    return sorted(paths)
