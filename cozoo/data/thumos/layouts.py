"""The two THUMOS14 feature layouts in use, read to the same videos, and the pre-flight scan.

``oadtr_pickle`` (OadTR, Wang et al., ICCV 2021; CoOadTR, Hedegaard et al., 2022), in
``<root>``, ``<root>/data`` or ``<root>/THUMOS``::

    thumos_{anet,kin}_{val,test}.pickle             video -> {"rgb": (L, 2048), "flow": (L, Cf)}
    thumos_{anet,kin}_plus_audio_{val,test}.pickle  ... + "audio": (L, 4096)
        (or upstream OadTR's thumos_all_feature_{val,test}_tsn_v2.pickle (ANet), ..._V3.pickle
        (Kinetics)); Cf = 1024 (ANet) / 2048 (Kinetics)
    thumos_{val,test}_anno.pickle                   video -> {"anno": (L, 22), "feature_length": L}
    data_info_new.json                              optional: {"THUMOS": {"class_index",
                                                    "train_session_set", "test_session_set"}}

Pickles are read with the numpy-only unpickler (:mod:`cozoo.safe_pickle`). Without
``data_info_new.json`` the built-in split lists are used (:mod:`cozoo.data.thumos.protocol`).

``lstr_npy`` (LSTR, Xu et al., NeurIPS 2021; TeSTra; MiniROAD), in ``<root>`` or
``<root>/THUMOS``: one ``.npy`` per video in ``rgb_kinetics_resnet50/`` (L, 2048) and
``flow_kinetics_bninception/`` (L, 1024) -- or ``rgb_anet_resnet50/`` and ``flow_anet_resnet50/``
(L, 2048 each) -- and ``target_perframe/`` (L, 22). The split lists are the file names of
``target_perframe/``: ``video_validation_*`` train, ``video_test_*`` test (in the order of the
built-in lists). The arrays are
memory-mapped. Audio features exist only in the pickle layout.

The feature channels are rgb, then flow, then audio, concatenated; their widths are taken from
the files (all videos of a split must agree). A video whose features have fewer steps than its
targets is unreadable; extra feature steps are cut. A missing video (or file) and an unreadable
one are reported by path (``<pickle>::<video>`` inside a pickle) and skipped.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from cozoo import safe_pickle

from .._scan import FileScanReport
from .protocol import CLASS_NAMES, NUM_CLASSES, file_split, split_videos

__all__ = [
    "FEATURE_KINDS",
    "LAYOUTS",
    "LSTR_FOLDERS",
    "LstrNpySplit",
    "OadtrPickleSplit",
    "ThumosFormatError",
    "ThumosScanReport",
    "find_source",
    "scan",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
LAYOUTS = ("oadtr_pickle", "lstr_npy")
#: Feature kinds and their tag in the OadTR file names.
FEATURE_KINDS = {"kinetics": "kin", "anet": "anet"}
#: Widths of the OadTR features: rgb, flow; the audio part adds :data:`AUDIO_DIM`.
OADTR_DIMS = {"kinetics": (2048, 2048), "anet": (2048, 1024)}
AUDIO_DIM = 4096
#: The LSTR feature folders (rgb, flow) of each kind.
LSTR_FOLDERS = {
    "kinetics": ("rgb_kinetics_resnet50", "flow_kinetics_bninception"),
    "anet": ("rgb_anet_resnet50", "flow_anet_resnet50"),
}
TARGET_FOLDER = "target_perframe"
_LSTR_PREFIX = {"val": "video_validation_", "test": "video_test_"}


class ThumosFormatError(ValueError):
    """A THUMOS file that is not what its layout promises (the message names the file, what was
    expected and what was found)."""


def check_features(features: str) -> str:
    if features not in FEATURE_KINDS:
        raise ValueError(f"features must be one of {sorted(FEATURE_KINDS)}, got {features!r}")
    return features


def part_names(audio: bool) -> Tuple[str, ...]:
    """The feature parts in channel order: rgb, flow[, audio]."""
    return ("rgb", "flow", "audio") if audio else ("rgb", "flow")


def feature_dims(features: str, audio: bool = False) -> Tuple[int, ...]:
    """Widths of the parts of the OadTR features (3072 = 2048 + 1024 for ANet, 4096 for
    Kinetics, + 4096 with audio)."""
    return OADTR_DIMS[check_features(features)] + ((AUDIO_DIM,) if audio else ())


def feature_pickle_names(features: str, audio: bool, fsplit: str) -> List[str]:
    """File names of a feature pickle, preferred first (CoOadTR's, then upstream OadTR's)."""
    tag = FEATURE_KINDS[check_features(features)]
    names = [f"thumos_{tag}{'_plus_audio' if audio else ''}_{fsplit}.pickle"]
    if not audio:
        suffix = "tsn_v2" if features == "anet" else "V3"
        names.append(f"thumos_all_feature_{fsplit}_{suffix}.pickle")
    return names


def annotation_name(fsplit: str) -> str:
    return f"thumos_{fsplit}_anno.pickle"


def _check_targets(anno: Any) -> Optional[str]:
    if not isinstance(anno, np.ndarray) or anno.ndim != 2 or anno.shape[1] != NUM_CLASSES:
        return f"targets: expected an (L, {NUM_CLASSES}) array, got {getattr(anno, 'shape', anno)}"
    if not np.issubdtype(anno.dtype, np.number) or not np.isfinite(anno).all():
        return "targets: not finite numbers"
    return None


def _check_part(name: str, array: Any, length: int, dim: Optional[int]) -> Optional[str]:
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        return f"{name}: expected an (L, C) array, got {getattr(array, 'shape', type(array))}"
    if not np.issubdtype(array.dtype, np.floating):
        return f"{name}: expected float features, got {array.dtype}"
    if array.shape[0] < length:
        return f"{name}: {array.shape[0]} steps, the targets have {length}"
    if dim is not None and array.shape[1] != dim:
        return f"{name}: width {array.shape[1]}, the split's other videos have {dim}"
    return None


class _Split:
    """What both layouts give: the readable videos of one THUMOS14 set (``val`` or ``test``)
    with their targets, and feature windows.

    ``names`` (readable, in list order), ``listed`` (the split list), ``missing`` and
    ``unreadable`` ``(path, reason)``, ``part_dims`` (widths of rgb, flow[, audio])."""

    layout: ClassVar[str] = ""

    def __init__(self) -> None:
        self.names: List[str] = []
        self.listed: List[str] = []
        self.missing: List[Tuple[str, str]] = []
        self.unreadable: List[Tuple[str, str]] = []
        self.part_dims: Tuple[int, ...] = ()
        self._targets: List[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.names)

    @property
    def feature_dim(self) -> int:
        """Channels of a feature step (the sum of the part widths)."""
        return int(sum(self.part_dims))

    def length(self, i: int) -> int:
        return int(self._targets[i].shape[0])

    def targets(self, i: int) -> np.ndarray:
        """``(L, 22)`` float32 targets of video ``i``."""
        return self._targets[i]

    def channels_first(self, i: int, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        """``(C, stop - start)`` float32: steps ``start .. stop - 1`` of video ``i``, the parts
        concatenated (rgb, flow[, audio]), time last; possibly a strided view (read-only)."""
        raise NotImplementedError

    def features(self, i: int, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        """``(stop - start, C)`` float32: steps ``start .. stop - 1`` of video ``i`` (a view of
        :meth:`channels_first`)."""
        return self.channels_first(i, start, stop).T

    def _accept(self, where: str, name: str, anno: Any, parts: Sequence[Any]) -> bool:
        """Check a video; keep it (True) or report it unreadable at ``where``."""
        why = _check_targets(anno)
        dims: Sequence[Optional[int]] = self.part_dims or (None,) * len(parts)
        for part_name, array, dim in zip(("rgb", "flow", "audio"), parts, dims):
            why = why or _check_part(part_name, array, len(anno), dim)
        if why is not None:
            self.unreadable.append((where, why))
            return False
        self.part_dims = self.part_dims or tuple(int(p.shape[1]) for p in parts)
        self.names.append(name)
        self._targets.append(np.asarray(anno, dtype=np.float32))
        return True


# ------------------------------------------------------------------------------------------------
# oadtr_pickle
# ------------------------------------------------------------------------------------------------
def read_data_info(folder: Path) -> Optional[Dict[str, Any]]:
    """The ``THUMOS`` entry of ``<folder>/data_info_new.json``, or None when there is none."""
    path = folder / "data_info_new.json"
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())["THUMOS"]
        names = list(info["class_index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ThumosFormatError(
            f"{path}: expected {{'THUMOS': {{'class_index', ...}}}} ({e})"
        ) from None
    if len(names) != NUM_CLASSES:
        raise ThumosFormatError(f"{path}: expected {NUM_CLASSES} classes, got {len(names)}")
    return info


def _load_pickle(path: Path) -> Dict[str, Any]:
    data = safe_pickle.load(path)
    if not isinstance(data, dict):
        raise ThumosFormatError(f"expected a dict video -> entry, got {type(data).__name__}")
    return data


class OadtrPickleSplit(_Split):
    """One THUMOS14 set (``fsplit`` ``val`` or ``test``) of the ``oadtr_pickle`` layout in
    ``folder``: both pickles loaded (arrays kept in memory, float32 as stored)."""

    layout: ClassVar[str] = "oadtr_pickle"

    def __init__(self, folder: PathLike, fsplit: str, features: str, audio: bool) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.fsplit = fsplit
        keys = part_names(audio)
        info = read_data_info(self.folder)
        key = "train_session_set" if fsplit == "val" else "test_session_set"
        self.listed = (
            list(info[key]) if info else split_videos("train" if fsplit == "val" else "test")
        )
        self._features: List[np.ndarray] = []
        anno_path = self.folder / annotation_name(fsplit)
        candidates = [self.folder / n for n in feature_pickle_names(features, audio, fsplit)]
        feat_path = next((p for p in candidates if p.is_file()), candidates[0])
        self.feature_path, self.annotation_path = feat_path, anno_path
        loaded: List[Dict[str, Any]] = []
        for path in (anno_path, feat_path):
            if not path.is_file():
                self.missing.append((str(path), "no such file"))
                continue
            try:
                loaded.append(_load_pickle(path))
            except Exception as e:  # a damaged pickle: reported, its split has no video
                self.unreadable.append((str(path), f"{type(e).__name__}: {e}"))
        if len(loaded) < 2:
            return
        annos, feats = loaded
        for name in self.listed:
            where = f"{feat_path}::{name}"
            if name not in annos:
                self.missing.append((f"{anno_path}::{name}", "no annotation"))
                continue
            if name not in feats:
                self.missing.append((where, "no features"))
                continue
            entry, fentry = annos[name], feats[name]
            if not isinstance(entry, dict) or not isinstance(fentry, dict):
                self.unreadable.append((where, "expected dict entries"))
                continue
            absent = [k for k in keys if k not in fentry]
            if absent or "anno" not in entry:
                self.unreadable.append((where, f"missing keys {absent or ['anno']}"))
                continue
            parts = [fentry[k] for k in keys]
            if self._accept(where, name, entry["anno"], parts):
                # one (C, L) array per video, time last: a window is a view of it; the pickle's
                # own arrays are released video by video (peak memory: the pickle + one video)
                length = len(entry["anno"])
                out = np.empty((self.feature_dim, length), dtype=np.float32)
                np.concatenate([np.asarray(p)[:length] for p in parts], axis=1, out=out.T)
                self._features.append(out)
            del feats[name], parts, fentry

    def channels_first(self, i: int, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        return self._features[i][:, start:stop]


# ------------------------------------------------------------------------------------------------
# lstr_npy
# ------------------------------------------------------------------------------------------------
def lstr_videos(folder: Path, fsplit: str) -> List[str]:
    """The videos of a THUMOS14 set in ``<folder>/target_perframe/``: those of the built-in list
    in its (OadTR's) order, so that both layouts draw the same train offsets, then any others
    sorted by name."""
    prefix = _LSTR_PREFIX[fsplit]
    target_dir = folder / TARGET_FOLDER
    if not target_dir.is_dir():
        return []
    order = {name: i for i, name in enumerate(split_videos("train" if fsplit == "val" else "test"))}
    names = (p.stem for p in target_dir.glob(f"{prefix}*.npy"))
    return sorted(names, key=lambda name: (order.get(name, len(order)), name))


class LstrNpySplit(_Split):
    """One THUMOS14 set of the ``lstr_npy`` layout in ``folder``: targets read, features
    memory-mapped (per process, on first use)."""

    layout: ClassVar[str] = "lstr_npy"

    def __init__(self, folder: PathLike, fsplit: str, features: str, audio: bool) -> None:
        super().__init__()
        if audio:
            raise ValueError(
                "lstr_npy: the LSTR layout has no audio features (audio=True needs "
                "the oadtr_pickle layout)"
            )
        self.folder = Path(folder)
        self.fsplit = fsplit
        self.part_folders = LSTR_FOLDERS[check_features(features)]
        self.listed = lstr_videos(self.folder, fsplit)
        self._files: List[Tuple[Path, ...]] = []
        self._maps: Dict[int, Tuple[np.ndarray, ...]] = {}
        for name in self.listed:
            target_path = self.folder / TARGET_FOLDER / f"{name}.npy"
            paths = tuple(self.folder / sub / f"{name}.npy" for sub in self.part_folders)
            absent = [p for p in paths if not p.is_file()]
            if absent:
                self.missing += [(str(p), "no such file") for p in absent]
                continue
            loaded: List[np.ndarray] = []
            for path in (target_path, *paths):
                try:
                    loaded.append(np.load(path, mmap_mode=None if path == target_path else "r"))
                except (OSError, ValueError, EOFError) as e:
                    self.unreadable.append((str(path), f"{type(e).__name__}: {e}"))
                    break
            if len(loaded) < 1 + len(paths):
                continue
            anno, parts = loaded[0], loaded[1:]
            if self._accept(str(paths[0]), name, anno, parts):
                self._files.append(paths)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}  # never pickle a memory map
        return state

    def parts(self, i: int) -> Sequence[np.ndarray]:
        """The memory-mapped ``(L, width)`` parts of video ``i``."""
        if i not in self._maps:
            length = self.length(i)
            self._maps[i] = tuple(np.load(p, mmap_mode="r")[:length] for p in self._files[i])
        return self._maps[i]

    def channels_first(self, i: int, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        rows = [p[start:stop] for p in self.parts(i)]  # contiguous rows of each file
        return np.concatenate(rows, axis=1).astype(np.float32, copy=False).T


Source = Union[OadtrPickleSplit, LstrNpySplit]


# ------------------------------------------------------------------------------------------------
# Finding the data, the scan
# ------------------------------------------------------------------------------------------------
def _holds(folder: Path, layout: str) -> bool:
    if layout == "lstr_npy":
        return (folder / TARGET_FOLDER).is_dir()
    return any((folder / annotation_name(s)).is_file() for s in ("val", "test"))


def find_source(root: PathLike, layout: str = "auto") -> Tuple[str, Path]:
    """``(layout, folder)`` of the THUMOS14 data under ``root`` (``root``, ``root/data`` or
    ``root/THUMOS``; ``auto``: the LSTR layout when a ``target_perframe/`` folder is there, else
    the pickles). Raises ``FileNotFoundError`` naming the paths looked at."""
    if layout not in ("auto",) + LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    root = Path(root).expanduser()
    looked: List[str] = []
    for folder in (root, root / "THUMOS", root / "data"):
        for candidate in LAYOUTS[::-1] if layout == "auto" else (layout,):
            looked.append(
                str(
                    folder
                    / (
                        f"{TARGET_FOLDER}/"
                        if candidate == "lstr_npy"
                        else "thumos_{val,test}_anno.pickle"
                    )
                )
            )
            if _holds(folder, candidate):
                return candidate, folder
    raise FileNotFoundError(f"no THUMOS14 data ({layout} layout): looked for {looked}")


def has_fsplit(layout: str, folder: Path, fsplit: str) -> bool:
    """Whether the data at ``folder`` holds THUMOS14's ``fsplit`` (``val`` or ``test``)."""
    if layout == "lstr_npy":
        return bool(lstr_videos(folder, fsplit))
    return (folder / annotation_name(fsplit)).is_file()


def open_split(layout: str, folder: Path, fsplit: str, features: str, audio: bool) -> Source:
    """The reader of THUMOS14's ``fsplit`` (``val``: our train; ``test``: our val and test)."""
    if fsplit not in ("val", "test"):
        raise ValueError(f"fsplit must be 'val' or 'test', got {fsplit!r}")
    cls = LstrNpySplit if layout == "lstr_npy" else OadtrPickleSplit
    return cls(folder, fsplit, features, audio)


def class_names_at(layout: str, folder: Path) -> List[str]:
    """The 22 class names: ``class_index`` of ``data_info_new.json`` when there is one (pickle
    layout), else the THUMOS14 names."""
    info = read_data_info(folder) if layout == "oadtr_pickle" else None
    return list(info["class_index"]) if info else list(CLASS_NAMES)


@dataclass
class ThumosScanReport(FileScanReport):
    """The scan of one split: ``ok`` holds the indices of the readable videos of ``source``."""

    source: Any = None
    item_noun: ClassVar[str] = "videos"


def scan(
    root: PathLike,
    split: str = "test",
    *,
    layout: str = "auto",
    features: str = "kinetics",
    audio: bool = False,
    source: Optional[Source] = None,
) -> ThumosScanReport:
    """The pre-flight scan of our ``split`` (train / val / test) under ``root``: every listed
    video's files opened, shapes and widths checked; the missing and unreadable ones are
    reported by path (logged) and skipped. ``source``: an already opened reader to report on."""
    found, folder = find_source(root, layout)
    if source is None:
        source = open_split(found, folder, file_split(split), features, audio)
    report = ThumosScanReport(
        str(folder),
        split,
        found,
        class_names_at(found, folder),
        list(range(len(source))),
        list(source.missing),
        list(source.unreadable),
        source=source,
    )
    report.log_summary(log)
    return report
