"""Listing the videos of a Kinetics split in any of the three layouts of :mod:`cozoo.data.kinetics`
(annotation CSVs, path lists, plain class folders). Listing opens no video: it finds the files
that are *missing*; whether the present ones are readable is the pre-flight scan's job
(:mod:`cozoo.data.kinetics.preflight`)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

__all__ = ["SPLITS", "VIDEO_EXTENSIONS", "VideoRecord", "has_split", "list_split", "split_key"]

PathLike = Union[str, os.PathLike]
SPLITS: Tuple[str, ...] = ("train", "val", "test")
_SPLIT_ALIASES: Dict[str, Tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "validate", "validation"),
    "test": ("test", "testing"),
}
VIDEO_EXTENSIONS: Tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


@dataclass(frozen=True)
class VideoRecord:
    """One listed video: absolute ``path``, class index ``label`` (-1 when unknown) and its
    class name ``label_name``."""

    path: str
    label: int
    label_name: str


@dataclass
class _Listing:
    """One split as listed: the layout name, the class names shared by all splits, the present
    videos and the missing ones as ``(path, reason)``."""

    layout: str
    class_names: List[str]
    records: List[VideoRecord]
    missing: List[Tuple[str, str]]


def split_key(split: str) -> str:
    """The canonical name (``"train"``, ``"val"``, ``"test"``) of a split or one of its aliases
    (``"validate"``, ``"training"``, ...)."""
    for key, aliases in _SPLIT_ALIASES.items():
        if split in aliases:
            return key
    raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")


def _split_dir(root: Path, split: str) -> Optional[Path]:
    for alias in _SPLIT_ALIASES[split]:
        if (root / alias).is_dir():
            return root / alias
    return None


def _csv_candidates(root: Path, split: str) -> List[Path]:
    names: List[str] = []
    for alias in _SPLIT_ALIASES[split]:
        names += [f"{alias}.csv", f"kinetics_400_{alias}.csv", f"kinetics400_{alias}.csv"]
    return [d / n for d in (root / "annotations", root) for n in names if (d / n).is_file()]


def _is_kinetics_csv(path: Path) -> bool:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return "youtube_id" in f.readline()


def _kinetics_csv(root: Path, split: str) -> Optional[Path]:
    return next((p for p in _csv_candidates(root, split) if _is_kinetics_csv(p)), None)


def _path_list(root: Path, split: str) -> Optional[Path]:
    direct = [root / f"{a}.csv" for a in _SPLIT_ALIASES[split]]
    return next((p for p in direct if p.is_file() and not _is_kinetics_csv(p)), None)


def has_split(root: Path, split: str) -> bool:
    """Whether ``root`` holds ``split`` in one of the layouts."""
    return (
        _kinetics_csv(root, split) is not None
        or _path_list(root, split) is not None
        or _split_dir(root, split) is not None
    )


def _read_kinetics_rows(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)
        ]


def _read_path_list(path: Path) -> List[Tuple[str, int]]:
    """``(path, label)`` per non-empty line ``<path> <label>`` or ``<path>,<label>`` (label -1
    when the line has none)."""
    items: List[Tuple[str, int]] = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f.read().splitlines():
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(",", 1) if "," in line else line.rsplit(None, 1)
            if len(parts) == 2 and parts[1].strip().lstrip("-").isdigit():
                items.append((parts[0].strip(), int(parts[1])))
            else:
                items.append((line, -1))
    return items


def _index_videos(folder: Optional[Path]) -> Dict[str, List[Path]]:
    """Every video file under ``folder`` (recursively), by file stem."""
    index: Dict[str, List[Path]] = {}
    if folder is None:
        return index
    for dirpath, _, files in os.walk(folder):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                index.setdefault(stem, []).append(Path(dirpath) / name)
    return index


def _class_dirs(folder: Optional[Path]) -> List[str]:
    if folder is None:
        return []
    return [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _segment_stem(row: Dict[str, str]) -> str:
    """``<youtube_id>_<start:06d>_<end:06d>``: the file stem of an annotation row's segment."""

    def sec(v: str) -> int:
        return int(float(v))

    return f"{row['youtube_id']}_{sec(row['time_start']):06d}_{sec(row['time_end']):06d}"


def _list_kinetics_csv(root: Path, split: str, annotations: Path) -> _Listing:
    """Layout 1: rows of the annotation CSV, found by file stem anywhere under the split
    folder (or the root); classes are the labels of every split's CSV."""
    labels: set = set()
    for s in SPLITS:
        p = _kinetics_csv(root, s)
        if p is not None:
            labels.update(r["label"] for r in _read_kinetics_rows(p) if r.get("label"))
    class_names = sorted(labels)
    to_idx = {c: i for i, c in enumerate(class_names)}
    folder = _split_dir(root, split)
    index = _index_videos(folder if folder is not None else root)
    records, missing, seen = [], [], set()
    for row in _read_kinetics_rows(annotations):
        try:
            stem = _segment_stem(row)
        except (KeyError, ValueError):
            missing.append((f"{annotations}: {row}", "malformed annotation row"))
            continue
        if stem in seen:
            continue
        seen.add(stem)
        label_name = row.get("label", "")
        hits = index.get(stem) or index.get(row["youtube_id"]) or []
        if not hits:
            base = folder if folder is not None else root / split
            where = base / label_name / f"{stem}.mp4" if label_name else base / f"{stem}.mp4"
            missing.append((str(where), "missing file"))
            continue
        path = next((h for h in hits if h.parent.name == label_name), hits[0])
        if not label_name and path.parent.name in to_idx:  # test CSV without labels
            label_name = path.parent.name
        records.append(VideoRecord(str(path), to_idx.get(label_name, -1), label_name))
    return _Listing("kinetics-csv", class_names, records, missing)


def _list_path_list(root: Path, split: str, path_list: Path) -> _Listing:
    """Layout 2: ``<path> <label>`` lines; the classes are ``"0"`` to the largest label of all
    splits."""
    items = _read_path_list(path_list)
    top = max(
        [lbl for s in SPLITS if (p := _path_list(root, s)) for _, lbl in _read_path_list(p)] + [-1]
    )
    class_names = [str(i) for i in range(top + 1)]
    folder = _split_dir(root, split)
    records, missing = [], []
    for rel, lbl in items:
        candidates = [Path(rel)] if os.path.isabs(rel) else [root / rel]
        if folder is not None and not os.path.isabs(rel):
            candidates.append(folder / rel)
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append((str(candidates[0]), "missing file"))
            continue
        records.append(VideoRecord(str(path), lbl, str(lbl) if lbl >= 0 else ""))
    return _Listing("path-list", class_names, records, missing)


def _list_folders(root: Path, split: str) -> _Listing:
    """Layout 3: ``<split>/<class>/*.mp4``; classes are the class folders of all splits."""
    folder = _split_dir(root, split)
    if folder is None:
        raise FileNotFoundError(
            f"no {split!r} split under {root}: expected annotations/"
            f"{'validate' if split == 'val' else split}.csv, {split}.csv or a {split}/ folder"
        )
    class_names = sorted({c for s in SPLITS for c in _class_dirs(_split_dir(root, s))})
    to_idx = {c: i for i, c in enumerate(class_names)}
    records = [
        VideoRecord(str(p), to_idx[c], c)
        for c in sorted(_class_dirs(folder))
        for p in sorted(q for qs in _index_videos(folder / c).values() for q in qs)
    ]
    return _Listing("folders", class_names, records, [])


def list_split(root: PathLike, split: str) -> _Listing:
    """List the videos of ``split`` under ``root`` (no decoding; missing files are found here).

    The first layout that has the split wins: annotation CSVs, then path lists, then folders.

    Returns:
        The layout name (``"kinetics-csv"``, ``"path-list"`` or ``"folders"``), the sorted class
        names shared by all splits, the present records and the missing ``(path, reason)``.
    """
    root = Path(root).expanduser().resolve()
    split = split_key(split)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    annotations = _kinetics_csv(root, split)
    if annotations is not None:
        return _list_kinetics_csv(root, split, annotations)
    path_list = _path_list(root, split)
    if path_list is not None:
        return _list_path_list(root, split, path_list)
    return _list_folders(root, split)
