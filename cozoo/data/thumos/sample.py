"""A small generated sample of THUMOS14-like feature videos, in the OadTR pickle layout.

With no ``data.root`` the THUMOS data module writes this sample into the cache and reads it
through exactly the code that reads the real feature pickles::

    <cache_dir>/thumos/<size>-<kin|anet>[-audio]-seed<seed>/
      thumos_<kin|anet>[_plus_audio]_{val,test}.pickle   video -> {"rgb", "flow"[, "audio"]}
      thumos_{val,test}_anno.pickle      video -> {"anno": (L, 22) float64, "feature_length": L}
      data_info_new.json                 the sample's split lists and the 22 class names
      SAMPLE.json                        written last: marks a complete sample

Features have the real widths (rgb 2048, flow 1024 for ANet / 2048 for Kinetics, audio 4096)
and are float32, as in the real pickles. Each video is background with action segments of 5
of the 20 THUMOS actions (:data:`SAMPLE_ACTIONS`; the targets keep all 22 columns), segments
that start and stop inside background, some with an Ambiguous step at a border. A step's
feature is noise plus a per-video offset plus, inside a segment, the fixed random pattern of
its class (ramping up over the first 3 steps of the segment; half of it on Ambiguous steps).
So the class of a step is learnable from its features, and a window shows where a segment
began. :func:`write_lstr_sample` writes the same videos in the LSTR ``.npy`` layout. Everything
is deterministic in ``seed`` (same seed, same bytes).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple, Union

import numpy as np

from .._cache import build_atomically, cache_root, marker_matches, write_marker
from .layouts import (
    FEATURE_KINDS,
    LSTR_FOLDERS,
    TARGET_FOLDER,
    annotation_name,
    check_features,
    feature_dims,
    feature_pickle_names,
    part_names,
)
from .protocol import AMBIGUOUS, CLASS_NAMES, NUM_CLASSES, test_videos, train_videos

__all__ = [
    "GENERATOR",
    "SAMPLE_ACTIONS",
    "SAMPLE_SIZES",
    "SampleSize",
    "SampleVideo",
    "ensure_sample",
    "is_complete",
    "sample_root",
    "sample_videos",
    "write_lstr_sample",
    "write_sample",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: The action classes (column indices) that occur in the sample.
SAMPLE_ACTIONS: Tuple[int, ...] = (1, 5, 9, 13, 17)


@dataclass(frozen=True)
class SampleSize:
    """Videos of the train (THUMOS14 validation) and test sets, and their length range in
    steps (both ends included)."""

    train: int
    test: int
    min_length: int
    max_length: int


SAMPLE_SIZES: Dict[str, SampleSize] = {
    "tiny": SampleSize(3, 2, 120, 200),
    "small": SampleSize(10, 5, 240, 400),
    "medium": SampleSize(24, 12, 300, 500),
}
#: Bumped whenever the generated content changes: a cached sample of another one is rebuilt.
GENERATOR = 1
#: Scale of a class pattern and of the per-video offset; the noise has unit variance.
PATTERN_SCALE = 0.25
OFFSET_SCALE = 0.5
#: Steps over which a pattern ramps up at the start of a segment.
RAMP = 3


class SampleVideo(NamedTuple):
    """One generated video: ``parts`` maps ``rgb``/``flow``[/``audio``] to ``(L, dim)`` float32,
    ``anno`` is ``(L, 22)`` float64 one-hot."""

    name: str
    parts: Dict[str, np.ndarray]
    anno: np.ndarray


def _timeline(rng: np.random.Generator, length: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step: the class (background, an action of :data:`SAMPLE_ACTIONS` or Ambiguous), the
    pattern weight (0 on background) and the class whose pattern is added."""
    labels = np.zeros(length, dtype=np.int64)
    weight = np.zeros(length, dtype=np.float32)
    pattern_of = np.zeros(length, dtype=np.int64)
    pos = int(rng.integers(10, 40))
    while pos + 10 + 12 <= length:
        cls = int(rng.choice(SAMPLE_ACTIONS))
        end = min(pos + int(rng.integers(10, 41)), length - 12)  # stops inside background
        k = np.arange(end - pos)
        labels[pos:end] = cls
        pattern_of[pos:end] = cls
        weight[pos:end] = np.minimum(1.0, (k + 1) / RAMP)
        for border in (pos, end - 1):
            if rng.random() < 0.3:
                labels[border] = AMBIGUOUS
                weight[border] = 0.5
        pos = end + int(rng.integers(8, 40))
    return labels, weight * (pattern_of > 0), pattern_of


def _patterns(seed: int, part: int, dim: int) -> np.ndarray:
    """``(NUM_CLASSES, dim)`` float32: the fixed pattern of each sample action in one feature
    part (zero rows for the other classes)."""
    out = np.zeros((NUM_CLASSES, dim), dtype=np.float32)
    for cls in SAMPLE_ACTIONS:
        rng = np.random.default_rng((seed, 1000 + part, cls))
        out[cls] = PATTERN_SCALE * rng.standard_normal(dim, dtype=np.float32)
    return out


def sample_videos(
    size: str = "small", seed: int = 0, features: str = "kinetics", audio: bool = False
) -> Dict[str, List[SampleVideo]]:
    """The generated videos: ``{"val": [...], "test": [...]}`` (THUMOS14's sets: ``val``
    trains). Names are the first videos of the real split lists. A part (rgb, flow, audio) of a
    video draws from its own random stream, so the audio variant shares rgb and flow."""
    check_features(features)
    if size not in SAMPLE_SIZES:
        raise ValueError(f"size must be one of {sorted(SAMPLE_SIZES)}, got {size!r}")
    spec = SAMPLE_SIZES[size]
    dims = dict(zip(part_names(audio), feature_dims(features, audio)))
    parts_all = ("rgb", "flow", "audio")
    patterns = {p: _patterns(seed, parts_all.index(p), d) for p, d in dims.items()}
    out: Dict[str, List[SampleVideo]] = {}
    for s, (fsplit, count, names) in enumerate(
        (("val", spec.train, train_videos()), ("test", spec.test, test_videos()))
    ):
        videos = []
        for v, name in enumerate(names[:count]):
            rng = np.random.default_rng((seed, s, v))
            length = int(rng.integers(spec.min_length, spec.max_length + 1))
            labels, weight, pattern_of = _timeline(rng, length)
            parts = {}
            for part, dim in dims.items():
                prng = np.random.default_rng((seed, s, v, 10 + parts_all.index(part)))
                x = prng.standard_normal((length, dim), dtype=np.float32)
                x += OFFSET_SCALE * prng.standard_normal(dim, dtype=np.float32)
                x += weight[:, None] * patterns[part][pattern_of]
                parts[part] = x
            anno = np.eye(NUM_CLASSES, dtype=np.float64)[labels]
            videos.append(SampleVideo(name, parts, anno))
        out[fsplit] = videos
    return out


def sample_root(
    cache_dir: Union[PathLike, None],
    size: str = "small",
    seed: int = 0,
    features: str = "kinetics",
    audio: bool = False,
) -> Path:
    """``<cache_dir>/thumos/<size>-<kin|anet>[-audio]-seed<seed>`` (default cache: ``$COZOO_CACHE``
    or ``~/.cache/cozoo``)."""
    base = Path(cache_dir).expanduser() if cache_dir else cache_root()
    tag = FEATURE_KINDS[check_features(features)] + ("-audio" if audio else "")
    return base / "thumos" / f"{size}-{tag}-seed{int(seed)}"


def _identity(size: str, seed: int, features: str, audio: bool) -> Dict[str, object]:
    return {
        "generator": GENERATOR,
        "size": size,
        "seed": int(seed),
        "features": features,
        "audio": bool(audio),
        "spec": asdict(SAMPLE_SIZES[size]),
    }


def is_complete(root: PathLike, size: str, seed: int, features: str, audio: bool) -> bool:
    """True iff ``root`` holds a finished sample of this generator and these settings."""
    return marker_matches(root, _identity(size, seed, features, audio))


def _dump(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def write_sample(
    root: PathLike,
    size: str = "small",
    seed: int = 0,
    features: str = "kinetics",
    audio: bool = False,
) -> Dict[str, int]:
    """Write the sample in the OadTR pickle layout into the folder ``root``, non-atomically
    (:func:`ensure_sample` is the atomic, cached version). Returns ``{file name: size}``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    videos = sample_videos(size, seed, features, audio)
    names: List[str] = []
    for fsplit, items in videos.items():
        feats = {v.name: dict(v.parts) for v in items}
        annos = {v.name: {"anno": v.anno, "feature_length": len(v.anno)} for v in items}
        names += [feature_pickle_names(features, audio, fsplit)[0], annotation_name(fsplit)]
        _dump(feats, root / names[-2])
        _dump(annos, root / names[-1])
    info = {
        "THUMOS": {
            "class_index": list(CLASS_NAMES),
            "train_session_set": [v.name for v in videos["val"]],
            "test_session_set": [v.name for v in videos["test"]],
        }
    }
    (root / "data_info_new.json").write_text(json.dumps(info, indent=1))
    names.append("data_info_new.json")
    files = {name: (root / name).stat().st_size for name in names}
    manifest = {
        "format": "THUMOS14 OadTR feature pickles (generated sample)",
        "classes": list(CLASS_NAMES),
        "actions": list(SAMPLE_ACTIONS),
        "files": files,
        **_identity(size, seed, features, audio),
    }
    write_marker(root, manifest)
    return files


def ensure_sample(
    cache_dir: Union[PathLike, None] = None,
    size: str = "small",
    seed: int = 0,
    features: str = "kinetics",
    audio: bool = False,
) -> Path:
    """The root of a complete generated sample, written first (atomically) if needed."""
    root = sample_root(cache_dir, size, seed, features, audio)
    t0 = time.perf_counter()
    files = build_atomically(
        root,
        lambda tmp: write_sample(tmp, size, seed, features, audio),
        lambda folder: is_complete(folder, size, seed, features, audio),
        logger=log,
    )
    if files is not None:
        spec = SAMPLE_SIZES[size]
        log.warning(
            "generated the THUMOS14-layout sample (%d feature videos, %.0f MB) in %.1f s at %s",
            spec.train + spec.test,
            sum(files.values()) / 1e6,
            time.perf_counter() - t0,
            root,
        )
    return root


def write_lstr_sample(
    root: PathLike, size: str = "tiny", seed: int = 0, features: str = "kinetics"
) -> Path:
    """The same videos in the LSTR ``.npy`` layout: ``<root>/<rgb folder>/<video>.npy`` (L,
    2048), ``<root>/<flow folder>/<video>.npy`` (L, flow dim) and ``<root>/target_perframe/
    <video>.npy`` (L, 22) float32, the folders of ``features`` (:data:`LSTR_FOLDERS`). The
    widths are those of the OadTR features of the same name (Kinetics flow 2048 here; LSTR's
    own Kinetics flow features are 1024-d: the reader takes the widths from the files). No audio
    (the LSTR layout has none). Returns ``root``."""
    root = Path(root)
    folders = dict(zip(("rgb", "flow"), LSTR_FOLDERS[check_features(features)]))
    for sub in (*folders.values(), TARGET_FOLDER):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for items in sample_videos(size, seed, features, audio=False).values():
        for v in items:
            for part, sub in folders.items():
                np.save(root / sub / f"{v.name}.npy", v.parts[part])
            np.save(root / TARGET_FOLDER / f"{v.name}.npy", v.anno.astype(np.float32))
    return root
