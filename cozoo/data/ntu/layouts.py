"""The two preprocessed NTU layouts, read to the same items, and the pre-flight scan of a split.

``agcn_npy`` (2s-AGCN, Shi et al., CVPR 2019: the layout the published weights were evaluated
on), in ``<root>/<benchmark>/<split>/``, ``<root>/<split>/`` or ``<root>/`` itself::

    {train,val}_data_joint.npy    (N, 3, 300, 25, 2) float32, pre-normalised (memory-mapped)
    {train,val}_label.pkl         (names, labels): sample names (NTU-120: paths), 0-based ints
    {train,val}_data_{bone,joint_motion,bone_motion}.npy   (N, 3, 300, 25, 2)   optional
    {train,val}_data_joint_bone.npy                        (N, 6, 300, 25, 2)   optional

Only ``train`` and ``val`` files exist: the published protocol evaluates on ``val``, so our
``val`` and ``test`` splits both read the ``val`` files. A modality file that is absent (or
unreadable, reported) is computed from the joints (:mod:`cozoo.data.ntu.features`).

``pyskl`` (the annotation pickle of pyskl / mmaction2: ``<root>`` is the ``.pkl`` file, or a
folder holding ``<benchmark>_3danno.pkl``): ``{"split": {"xsub_train": [frame_dir, ...],
"xsub_val": [...], ...}, "annotations": [{"frame_dir", "label", "keypoint" (M, T, V, 3),
"total_frames", ...}, ...]}``. Its NTU 3-D keypoints are camera-space coordinates, *not*
pre-normalised (pyskl normalises them in its data pipeline), so each sequence is converted on
the fly as 2s-AGCN does (:func:`cozoo.data.ntu.normalize.normalize_agcn` without the body
selection: the first 2 persons are kept, a missing second person is zero; the sequence is
repeat-padded or cropped to 300 frames, then centred and rotated unless ``normalize=False``).
Our ``train`` / ``val`` / ``test`` read ``<split>_train`` / ``<split>_val`` / ``<split>_test``
(``<split>_val`` when there is no test list). Annotations with malformed keypoints are reported
(``<pickle>::<frame_dir>``) and skipped; names of a split list without annotation are missing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from cozoo import safe_pickle
from cozoo.models.skeleton.graph import NTU, Skeleton

from .._scan import FileScanReport
from .features import MODALITIES, check_modality, modality_channels, to_modality
from .normalize import NUM_FRAMES, normalize_agcn
from .protocol import check_benchmark

__all__ = [
    "LAYOUTS",
    "AgcnNpySplit",
    "NTUFormatError",
    "NTUScanReport",
    "PysklSplit",
    "find_source",
    "item_name",
    "open_split",
    "scan",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
LAYOUTS = ("agcn_npy", "pyskl")
SPLITS = ("train", "val", "test")
_AGCN_FILE_SPLIT = {"train": "train", "val": "val", "test": "val"}


class NTUFormatError(ValueError):
    """A preprocessed file that is not what its layout promises (the message names the file,
    what was expected and what was found)."""


def item_name(stored: str) -> str:
    """The name of an item: the stored name without folder and ``.skeleton`` suffix
    (``S001C001P001R001A001``)."""
    name = Path(str(stored)).name
    return name[: -len(".skeleton")] if name.endswith(".skeleton") else name


# ------------------------------------------------------------------------------------------------
# agcn_npy
# ------------------------------------------------------------------------------------------------
def _read_labels(path: Path) -> Tuple[List[str], List[int]]:
    if not path.is_file():
        raise FileNotFoundError(f"no label file {path}")
    data = safe_pickle.load(path)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise NTUFormatError(f"{path}: expected a 2-tuple (names, labels), got {type(data)}")
    names, labels = (list(x) for x in data)
    if len(names) != len(labels):
        raise NTUFormatError(f"{path}: {len(names)} names but {len(labels)} labels")
    try:
        return [item_name(str(n)) for n in names], [int(label) for label in labels]
    except (TypeError, ValueError) as e:
        raise NTUFormatError(f"{path}: labels must be integers ({e})") from None


def _check_array(path: Path, n: int, channels: int, joints: int) -> np.ndarray:
    """The memory-mapped array at ``path``, checked to be ``(n, channels, T, joints, 2)``
    float32 (``NTUFormatError`` naming expected and found otherwise)."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise NTUFormatError(f"{path}: not a readable .npy file ({e})") from None
    expected = f"({n}, {channels}, T, {joints}, 2) float32"
    shape = tuple(array.shape)
    if (
        array.ndim != 5
        or shape[0] != n
        or shape[1] != channels
        or shape[3] != joints
        or shape[4] != 2
        or array.dtype != np.float32
    ):
        raise NTUFormatError(f"{path}: expected shape {expected}, got {shape} {array.dtype}")
    return array


class AgcnNpySplit:
    """One file split (``train`` or ``val``) of the ``agcn_npy`` layout in ``folder``.

    ``joint(i)`` is ``(3, T, V, 2)`` (T = 300), ``get(i, modality)`` ``(C, T, V, 2)`` read from
    the modality's file when it is there and readable, else computed from the joints. Arrays are
    memory-mapped on first use in each process (workers open their own maps).
    """

    layout: ClassVar[str] = "agcn_npy"

    def __init__(self, folder: PathLike, file_split: str, skeleton: Skeleton = NTU) -> None:
        self.folder = Path(folder)
        self.file_split = file_split
        self.skeleton = skeleton
        self.label_path = self.folder / f"{file_split}_label.pkl"
        self.names, self.labels = _read_labels(self.label_path)
        joint_path = self.data_path("joint")
        if not joint_path.is_file():
            raise FileNotFoundError(f"no joint data {joint_path}")
        n, v = len(self.names), skeleton.num_joints
        self.frames = int(_check_array(joint_path, n, 3, v).shape[2])
        #: modality -> its file, for the present and readable modality files.
        self.files: Dict[str, Path] = {"joint": joint_path}
        #: ``(path, reason)`` of the modality files that are present but unreadable.
        self.unreadable: List[Tuple[str, str]] = []
        for modality in MODALITIES:
            path = self.data_path(modality)
            if modality == "joint" or not path.is_file():
                continue
            try:
                array = _check_array(path, n, modality_channels(modality), v)
                if array.shape[2] != self.frames:
                    raise NTUFormatError(
                        f"{path}: {array.shape[2]} frames, the joint file has {self.frames}"
                    )
                self.files[modality] = path
            except NTUFormatError as e:
                self.unreadable.append((str(path), str(e)))
        self._arrays: Dict[str, np.ndarray] = {}

    def data_path(self, modality: str) -> Path:
        return self.folder / f"{self.file_split}_data_{modality}.npy"

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = {}  # never pickle a memory map (it would be copied whole)
        return state

    def _array(self, modality: str) -> np.ndarray:
        if modality not in self._arrays:
            self._arrays[modality] = np.load(self.files[modality], mmap_mode="r")
        return self._arrays[modality]

    def joint(self, i: int) -> np.ndarray:
        return np.array(self._array("joint")[i])

    def get(self, i: int, modality: str = "joint") -> np.ndarray:
        if modality in self.files:
            return np.array(self._array(modality)[i])
        return to_modality(self.joint(i), modality, self.skeleton)


# ------------------------------------------------------------------------------------------------
# pyskl
# ------------------------------------------------------------------------------------------------
_PICKLES: Dict[Tuple[str, int, int], Dict[str, Any]] = {}


def load_pyskl(path: PathLike) -> Dict[str, Any]:
    """The annotation pickle at ``path`` (kept in memory: the last one read, per process)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no annotation pickle {path}")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PICKLES:
        data = safe_pickle.load(path)
        if not isinstance(data, dict) or "split" not in data or "annotations" not in data:
            raise NTUFormatError(f"{path}: expected a dict with 'split' and 'annotations'")
        _PICKLES.clear()
        _PICKLES[key] = data
    return _PICKLES[key]


def pyskl_split_key(data: Dict[str, Any], split: str, subset: str) -> str:
    """The key of ``data["split"]`` for our ``subset`` (train / val / test) of ``split``."""
    keys = data["split"]
    if subset == "test" and f"{split}_test" not in keys:
        return f"{split}_val"
    return f"{split}_{subset}"


def _check_keypoint(ann: Any, joints: int) -> Optional[str]:
    """``None`` for a usable annotation, else why not."""
    if not isinstance(ann, dict) or "keypoint" not in ann or "label" not in ann:
        return "not a dict with 'keypoint' and 'label'"
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        return f"keypoint: expected an (M, T, {joints}, 3) array, got {getattr(kp, 'shape', kp)}"
    if kp.shape[2] != joints or kp.shape[3] != 3 or kp.shape[0] == 0 or kp.shape[1] == 0:
        return f"keypoint: expected shape (M, T, {joints}, 3), got {tuple(kp.shape)}"
    if not np.isfinite(kp).all():
        return "keypoint: non-finite values"
    return None


class PysklSplit:
    """The items of one split list (``xsub_train``...) of a pyskl annotation pickle.

    ``joint(i)`` is ``(3, 300, V, 2)`` float32, converted as the module docstring says."""

    layout: ClassVar[str] = "pyskl"

    def __init__(
        self, path: PathLike, key: str, skeleton: Skeleton = NTU, normalize: bool = True
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.skeleton = skeleton
        self.normalize = normalize
        self.frames = NUM_FRAMES
        data = load_pyskl(self.path)
        if key not in data["split"]:
            raise KeyError(f"{self.path} has no split {key!r} (it has {sorted(data['split'])})")
        by_name = {str(a.get("frame_dir")): a for a in data["annotations"] if isinstance(a, dict)}
        self.names: List[str] = []
        self.labels: List[int] = []
        self._keypoints: List[np.ndarray] = []
        self.missing: List[Tuple[str, str]] = []
        self.unreadable: List[Tuple[str, str]] = []
        for name in data["split"][key]:
            ann = by_name.get(str(name))
            where = f"{self.path}::{name}"
            if ann is None:
                self.missing.append((where, "no annotation"))
                continue
            why = _check_keypoint(ann, skeleton.num_joints)
            if why is not None:
                self.unreadable.append((where, why))
                continue
            self.names.append(item_name(str(name)))
            self.labels.append(int(ann["label"]))
            self._keypoints.append(ann["keypoint"])

    def __len__(self) -> int:
        return len(self.names)

    def joint(self, i: int) -> np.ndarray:
        kp = np.asarray(self._keypoints[i], dtype=np.float32)  # (M, T, V, 3)
        return normalize_agcn(kp, self.frames, select=False, centre_and_rotate=self.normalize)

    def get(self, i: int, modality: str = "joint") -> np.ndarray:
        return to_modality(self.joint(i), modality, self.skeleton)


Source = Union[AgcnNpySplit, PysklSplit]


# ------------------------------------------------------------------------------------------------
# Finding a split, the scan
# ------------------------------------------------------------------------------------------------
def _candidates(root: Path, benchmark: str, split: str) -> Sequence[Path]:
    return (root / benchmark / split, root / split, root)


def find_source(
    root: PathLike, benchmark: str, split: str, layout: str = "auto"
) -> Tuple[str, Path]:
    """``(layout, location)`` of ``benchmark``/``split`` under ``root``: the folder of the
    ``agcn_npy`` files or the pyskl pickle (see the module docstring for where they are
    looked for). Raises ``FileNotFoundError`` naming the paths looked at."""
    check_benchmark(benchmark, split)
    if layout not in ("auto",) + LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    root = Path(root).expanduser()
    looked: List[str] = []
    if layout in ("auto", "agcn_npy") and root.is_dir():
        for folder in _candidates(root, benchmark, split):
            looked.append(str(folder / "{train,val}_data_joint.npy"))
            if any(
                (folder / f"{s}_{k}").is_file()
                for s in ("train", "val")
                for k in ("data_joint.npy", "label.pkl")
            ):
                return "agcn_npy", folder
    if layout in ("auto", "pyskl"):
        if root.is_file():
            return "pyskl", root
        for folder in (root / benchmark, root):
            for name in (f"{benchmark}_3danno.pkl", f"{benchmark}.pkl"):
                looked.append(str(folder / name))
                if (folder / name).is_file():
                    return "pyskl", folder / name
    raise FileNotFoundError(f"no {benchmark} {split} data ({layout} layout): looked for {looked}")


def has_subset(layout: str, location: Path, split: str, subset: str) -> bool:
    """Whether the source at ``location`` holds our ``subset`` (train / val / test)."""
    if layout == "agcn_npy":
        return (location / f"{_AGCN_FILE_SPLIT[subset]}_data_joint.npy").is_file()
    try:
        data = load_pyskl(location)
    except (OSError, NTUFormatError):
        return False
    return pyskl_split_key(data, split, subset) in data["split"]


def open_split(
    layout: str, location: Path, split: str, subset: str, *, normalize: bool = True
) -> Source:
    """The reader of our ``subset`` (train / val / test) of ``split`` at ``location``."""
    if subset not in SPLITS:
        raise ValueError(f"subset must be one of {SPLITS}, got {subset!r}")
    if layout == "agcn_npy":
        return AgcnNpySplit(location, _AGCN_FILE_SPLIT[subset])
    return PysklSplit(
        location, pyskl_split_key(load_pyskl(location), split, subset), normalize=normalize
    )


@dataclass
class NTUScanReport(FileScanReport):
    """The scan of one NTU split: ``ok`` holds the indices of the readable items of
    ``source`` (the split's reader)."""

    source: Any = None
    item_noun: ClassVar[str] = "skeleton sequences"


def scan(
    root: PathLike,
    benchmark: str = "ntu60",
    split: str = "xsub",
    subset: str = "val",
    *,
    layout: str = "auto",
    modality: str = "joint",
    class_names: Optional[List[str]] = None,
    normalize: bool = True,
) -> NTUScanReport:
    """The pre-flight scan of ``subset`` of ``benchmark``/``split`` under ``root``: shapes,
    dtypes and labels checked. A modality file or an annotation that is unreadable is reported
    with its path and skipped (the modality is then computed from the joints); a joint file or
    label file that is missing or malformed raises (``FileNotFoundError`` /
    :class:`NTUFormatError` naming the path, and expected vs found)."""
    check_modality(modality)
    found, location = find_source(root, benchmark, split, layout)
    source = open_split(found, location, split, subset, normalize=normalize)
    names = class_names if class_names is not None else []
    bad_labels = [
        (f"{location}::{source.names[i]}", f"label {label} outside [0, {len(names)})")
        for i, label in enumerate(source.labels)
        if names and not 0 <= label < len(names)
    ]
    bad = {where.rsplit("::", 1)[-1] for where, _ in bad_labels}
    ok = [i for i, name in enumerate(source.names) if name not in bad]
    report = NTUScanReport(
        str(location),
        subset,
        found,
        list(names),
        ok,
        list(getattr(source, "missing", [])),
        list(source.unreadable) + bad_labels,
        source=source,
    )
    report.log_summary(log)
    return report
