"""Kinetics-400 (and any Kinetics-layout root): listing, pre-flight scan, PyAV clip decoding, the
clip dataset and the ``KineticsDataModule``.

Layouts read (per split; the first that exists wins)::

    1. Kinetics annotation CSVs (the official release, cvdfoundation/ActivityNet downloads)
       root/annotations/{train,validate,test}.csv    (also val.csv, kinetics_400_<split>.csv,
                                                      or the CSVs directly in root)
           label,youtube_id,time_start,time_end,split[,is_cc]
       root/{train,val,test}/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4
           (class sub-folders optional: files are found by name anywhere under the split
            folder, also when named <youtube_id>.mp4 or .avi/.mkv/.webm)
    2. pytorchvideo / PySlowFast path lists: root/{train,val,test}.csv with lines
           <path> <integer label>        (or "<path>,<label>"; paths relative to root)
    3. Plain folders (pytorchvideo ``LabeledVideoPaths.from_directory``):
           root/{train,val,test}/<class_name>/*.mp4

Class index = position in the sorted class names (the union over the splits; 400 for
Kinetics-400). A row whose file is absent is *missing*; a file that PyAV cannot open or decode is
*unreadable*. Both are reported with their paths, counted and skipped; the pre-flight
:func:`scan` finds them up front (``python -m cozoo.data.kinetics scan ROOT --split val``), and a
video that still fails later, while loading, is reported once and replaced by the next readable
video instead of stopping the run.

Clips follow the Kinetics protocol of spec/video-models.md §5: decode, resample to 30 fps
(nearest frame in time), a window of ``frames × sampling_rate`` frames (random for training,
centred on the video middle for evaluation; starting at 0 and repeating the last frame when
the window is longer than the video), ``frames`` indices uniformly in the window, then the
transforms of :mod:`cozoo.data.transforms`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from . import samples
from .transforms import KINETICS_MEAN, KINETICS_STD, clip_transform, uniform_indices

__all__ = [
    "SPLITS",
    "DecodeError",
    "KineticsClips",
    "KineticsDataModule",
    "ScanReport",
    "VideoRecord",
    "clip_indices",
    "end_aligned_indices",
    "list_split",
    "probe_video",
    "read_frames",
    "scan",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
SPLITS: Tuple[str, ...] = ("train", "val", "test")
_SPLIT_ALIASES: Dict[str, Tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "validate", "validation"),
    "test": ("test", "testing"),
}
VIDEO_EXTENSIONS: Tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
#: Where a bad video is reported at most this many paths per list in a log message.
_LOG_PATHS = 20


class DecodeError(RuntimeError):
    """A video could not be opened or decoded."""


# --------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoRecord:
    """One listed video: absolute ``path``, class index ``label`` (-1 when unknown) and its
    class name ``label_name``."""

    path: str
    label: int
    label_name: str


@dataclass
class _Listing:
    layout: str
    class_names: List[str]
    records: List[VideoRecord]
    missing: List[Tuple[str, str]]


def _split_key(split: str) -> str:
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


def _read_kinetics_rows(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)
        ]


def _read_path_list(path: Path) -> List[Tuple[str, int]]:
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
    def sec(v: str) -> int:
        return int(float(v))

    return f"{row['youtube_id']}_{sec(row['time_start']):06d}_{sec(row['time_end']):06d}"


def list_split(root: PathLike, split: str) -> _Listing:
    """List the videos of ``split`` under ``root`` (no decoding; missing files are found here).

    Returns the layout name (``"kinetics-csv"``, ``"path-list"`` or ``"folders"``), the sorted
    class names shared by all splits, the present records and the missing ``(path, reason)``.
    """
    root = Path(root).expanduser().resolve()
    split = _split_key(split)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")

    ann = _kinetics_csv(root, split)
    if ann is not None:
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
        for row in _read_kinetics_rows(ann):
            try:
                stem = _segment_stem(row)
            except (KeyError, ValueError):
                missing.append((f"{ann}: {row}", "malformed annotation row"))
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

    plist = _path_list(root, split)
    if plist is not None:
        items = _read_path_list(plist)
        top = max(
            [lbl for s in SPLITS if (p := _path_list(root, s)) for _, lbl in _read_path_list(p)]
            + [-1]
        )
        class_names = [str(i) for i in range(top + 1)]
        folder = _split_dir(root, split)
        records, missing = [], []
        for rel, lbl in items:
            cands = [Path(rel)] if os.path.isabs(rel) else [root / rel]
            if folder is not None and not os.path.isabs(rel):
                cands.append(folder / rel)
            path = next((c for c in cands if c.is_file()), None)
            if path is None:
                missing.append((str(cands[0]), "missing file"))
                continue
            records.append(VideoRecord(str(path), lbl, str(lbl) if lbl >= 0 else ""))
        return _Listing("path-list", class_names, records, missing)

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


# --------------------------------------------------------------------------------------------
# Probing and the pre-flight scan
# --------------------------------------------------------------------------------------------
def probe_video(path: PathLike, decode: bool = True) -> Optional[str]:
    """``None`` if PyAV opens ``path`` and finds a video stream (and, with ``decode``, decodes its
    first frame); otherwise the reason, e.g. ``"InvalidDataError: ..."``."""
    import av

    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream"
            if decode:
                for _ in container.decode(video=0):
                    return None
                return "no decodable frame"
        return None
    except Exception as e:  # PyAV raises many FFmpeg error types; all mean "unreadable"
        return f"{type(e).__name__}: {e}"


@dataclass
class ScanReport:
    """Result of :func:`scan`: the readable ``videos`` and the bad files with their reasons."""

    root: str
    split: str
    layout: str
    class_names: List[str]
    videos: List[VideoRecord]
    missing: List[Tuple[str, str]] = field(default_factory=list)
    unreadable: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def num_listed(self) -> int:
        return len(self.videos) + len(self.missing) + len(self.unreadable)

    @property
    def counts(self) -> Dict[str, int]:
        return {
            "listed": self.num_listed,
            "ok": len(self.videos),
            "missing": len(self.missing),
            "unreadable": len(self.unreadable),
        }

    def summary(self, max_paths: Optional[int] = _LOG_PATHS) -> str:
        """Human-readable report; at most ``max_paths`` paths per list (``None``: all)."""
        c = self.counts
        lines = [
            f"scan {self.root} [{self.split}] ({self.layout}, {len(self.class_names)} classes): "
            f"{c['listed']} listed, {c['ok']} ok, {c['missing']} missing, "
            f"{c['unreadable']} unreadable"
        ]
        for title, items in (("missing", self.missing), ("unreadable", self.unreadable)):
            shown = items if max_paths is None else items[:max_paths]
            for path, why in shown:
                lines.append(f"  {title}: {path} ({why})")
            if len(items) > len(shown):
                lines.append(f"  ... and {len(items) - len(shown)} more {title}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _cozoo_cache() -> Path:
    base = os.environ.get("COZOO_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "cozoo"


def _scan_cache_file(cache_dir: Optional[PathLike], root: Path, split: str, decode: bool) -> Path:
    base = (
        Path(cache_dir).expanduser() / "scans" if cache_dir else _cozoo_cache() / "kinetics_scans"
    )
    key = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    return base / f"{key}-{split}-{'decode' if decode else 'open'}.json"


def scan(
    root: PathLike,
    split: str = "val",
    *,
    decode: bool = True,
    workers: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
) -> ScanReport:
    """Pre-flight scan of one split: list it, probe every present file with PyAV.

    Args:
        root: dataset root (any layout of the module docstring).
        split: ``"train"``, ``"val"`` (``"validate"``) or ``"test"``.
        decode: also decode each video's first frame (catches more than opening alone).
        workers: probing threads (default: ``min(8, 2 × CPUs)``).
        cache_dir: probe results are remembered between runs in ``<cache_dir>/scans``, keyed by
            file size and mtime (default ``$COZOO_CACHE`` or ``~/.cache/cozoo``, then
            ``kinetics_scans/``).
        use_cache: read and update that cache.

    Returns:
        A :class:`ScanReport`; bad files are also logged (WARNING) with their paths.
    """
    root = Path(root).expanduser().resolve()
    split = _split_key(split)
    listing = list_split(root, split)

    cache_file = _scan_cache_file(cache_dir, root, split, decode)
    cached: Dict[str, Any] = {}
    if use_cache and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cached = {}

    def signature(path: str) -> List[int]:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    def check(rec: VideoRecord) -> Tuple[List[int], Optional[str]]:
        sig = signature(rec.path)
        hit = cached.get(rec.path)
        if hit is not None and hit[0] == sig:
            return sig, hit[1]
        return sig, probe_video(rec.path, decode=decode)

    n_workers = workers or min(8, 2 * (os.cpu_count() or 1))
    total = len(listing.records)
    every = max(1000, total // 10)
    results: List[Tuple[List[int], Optional[str]]] = []
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for i, res in enumerate(pool.map(check, listing.records), 1):
            results.append(res)
            if i % every == 0:
                log.info("scanning %s [%s]: %d / %d videos probed", root, split, i, total)

    videos, unreadable = [], []
    for rec, (_, why) in zip(listing.records, results):
        if why is None:
            videos.append(rec)
        else:
            unreadable.append((rec.path, why))
    report = ScanReport(
        str(root), split, listing.layout, listing.class_names, videos, listing.missing, unreadable
    )
    if use_cache:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            data = {r.path: [sig, why] for r, (sig, why) in zip(listing.records, results)}
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, cache_file)
        except OSError as e:
            log.info("could not write the scan cache %s: %s", cache_file, e)
    if report.missing or report.unreadable:
        log.warning("%s\n  (these videos are skipped)", report.summary())
    else:
        log.info("%s", report.summary())
    return report


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
def clip_indices(
    num_video_frames: int,
    frames: int,
    sampling_rate: int,
    start: Optional[int] = None,
) -> Tensor:
    """Indices (at 30 fps) of one clip: ``frames`` indices uniformly in a window of
    ``frames × sampling_rate`` frames beginning at ``start`` (``None``: centred on the video
    middle; 0 when the window is longer than the video); indices past the end repeat the last
    frame. Shape ``(frames,)``, int64."""
    window = frames * sampling_rate
    if start is None:
        start = max(0, (num_video_frames - window) // 2)
    idx = start + uniform_indices(window, frames)
    return idx.clamp_(0, max(0, num_video_frames - 1))


def end_aligned_indices(
    num_video_frames: int, frames: int, end_frames: int, sampling_rate: int
) -> Tensor:
    """Indices (at 30 fps) of a ``frames``-frame evaluation clip whose last ``end_frames``
    frames are the protocol's centred clip (:func:`clip_indices`), preceded by ``frames -
    end_frames`` frames every ``sampling_rate`` frames. Shape ``(frames,)``, int64.

    When the video has too little before its centred clip, the whole window is shifted later so
    that it starts at the first frame: the clip never begins with copies of the first frame (a
    frozen picture, which a continual model would have to warm up on; its prediction at the
    last frame depends mostly on those early frames). Only past the end does a frame repeat (the
    last one), when the window is longer than the video.
    """
    tail = clip_indices(num_video_frames, end_frames, sampling_rate)
    head = tail[0] - sampling_rate * torch.arange(frames - end_frames, 0, -1)
    idx = torch.cat([head, tail])
    idx += max(0, -int(idx[0]))  # starts before the video: shift it to start at frame 0
    return idx.clamp_(0, max(0, num_video_frames - 1))


def _duration(container: Any, stream: Any) -> float:
    """Seconds of video according to the headers (0.0 when unknown)."""
    import av

    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return stream.frames / float(stream.average_rate)
    return 0.0


def read_frames(
    path: PathLike,
    select: Callable[[int], Tensor],
    fps: int = 30,
) -> np.ndarray:
    """Decode the frames ``select(n)`` of the video resampled to ``fps``, ``n`` being its number
    of frames at ``fps`` (nearest decoded frame in time, the earlier one on a tie; indices past
    the end give the last frame). Seeks to the key frame before the first wanted frame (when it
    is more than 1 s in), decodes only up to the last, and converts to RGB only the frames used,
    holding at most two decoded frames at a time.

    Returns uint8 RGB ``(len(select(n)), H, W, 3)``. Raises :class:`DecodeError`.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else float(fps)
            duration = _duration(container, stream)
            if duration <= 0:  # no duration in the headers: count the frames
                duration = sum(1 for _ in container.decode(stream)) / rate
                container.seek(0)
            n = max(1, math.floor(duration * fps + 1e-6))
            idx = select(n).clamp(0, n - 1).tolist()
            tb = float(stream.time_base) if stream.time_base else 1.0 / fps
            origin = (stream.start_time or 0) * tb
            targets = [origin + i / fps for i in idx]
            wanted = sorted(set(targets))

            def decode_from(seek_to: Optional[float]) -> Optional[Dict[float, np.ndarray]]:
                """Stream frames from ``seek_to`` (None: the start) and give every wanted time
                its nearest frame, holding two frames at most; None on a seek overshoot."""
                if seek_to is not None:
                    container.seek(int(seek_to / tb), stream=stream, backward=True)
                else:
                    container.seek(0)
                got: Dict[float, np.ndarray] = {}
                prev: Optional[List[Any]] = None  # [time, frame, rgb or None]

                def rgb(entry: List[Any]) -> np.ndarray:
                    if entry[2] is None:
                        entry[2] = entry[1].to_ndarray(format="rgb24")
                    return entry[2]

                for k, frame in enumerate(container.decode(stream)):
                    t = frame.time if frame.time is not None else origin + k / rate
                    cur = [t, frame, None]
                    if prev is None and seek_to is not None and t > wanted[0] + 1.0 / fps:
                        return None
                    while len(got) < len(wanted):
                        w = wanted[len(got)]
                        if w > t:
                            break
                        take_prev = prev is not None and w - prev[0] <= t - w  # ties: earlier
                        got[w] = rgb(prev) if take_prev and prev is not None else rgb(cur)
                    if len(got) == len(wanted):
                        break
                    prev = cur
                while prev is not None and len(got) < len(wanted):  # past the last frame
                    got[wanted[len(got)]] = rgb(prev)
                return got

            got = None
            if wanted[0] - origin > 1.0:
                try:
                    got = decode_from(wanted[0])
                except av.error.FFmpegError:  # e.g. a file without a seek index
                    got = None
            if got is None:  # short offset, or the seek landed after the first wanted frame
                got = decode_from(None)
            if not got:
                raise DecodeError(f"{path}: no decodable frame")
            return np.stack([got[t] for t in targets])
    except DecodeError:
        raise
    except Exception as e:  # any FFmpeg/PyAV failure makes the video unreadable
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from e


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------
class KineticsClips(Dataset):
    """Clips of listed videos; item ``i`` -> ``{"video": (C, T, H, W) float, "label": int,
    "video_index": int, "path": str}`` (batched by the loader to ``(B, C, T, H, W)``, ``(B,)``).

    Args:
        records: the (scanned) videos.
        frames: ``T``, frames per clip.
        sampling_rate: spacing of the frames at ``fps`` (the window is ``frames × rate``).
        transform: uint8 ``(T, H, W, 3)`` -> float ``(C, T, H, W)``.
        train: random window start (else centred), ``clips_per_video`` items per video.
        clips_per_video: items per video in training.
        align: for evaluation, ``"center"`` centres the window on the video middle (spec §5);
            ``"end"`` makes the last ``end_frames`` frames exactly the centred ``end_frames``-frame
            clip and puts the other frames before it at ``sampling_rate`` — used for continual
            clips whose clip-mode view is their end. A video too short for that gets the window
            shifted to start at its first frame (:func:`end_aligned_indices`).
        end_frames: the protocol's clip length for ``align="end"``.
        fps: the frame rate videos are resampled to.
        max_retries: readable videos tried in place of one that fails to decode.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        frames: int,
        sampling_rate: int,
        transform: Callable[[np.ndarray], Tensor],
        train: bool = False,
        clips_per_video: int = 1,
        align: str = "center",
        end_frames: Optional[int] = None,
        fps: int = 30,
        max_retries: int = 10,
    ) -> None:
        if align not in ("center", "end"):
            raise ValueError(f"align must be 'center' or 'end', got {align!r}")
        self.records = list(records)
        self.frames, self.sampling_rate, self.fps = int(frames), int(sampling_rate), int(fps)
        self.transform = transform
        self.train = bool(train)
        self.clips_per_video = int(clips_per_video) if train else 1
        self.align, self.end_frames = align, end_frames
        self.max_retries = int(max_retries)
        #: path -> reason, for videos that failed while loading (in this process)
        self.failed: Dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.records) * self.clips_per_video

    def indices(self, n: int) -> Tensor:
        """The 30-fps frame indices of one clip from an ``n``-frame video, ``(frames,)``."""
        window = self.frames * self.sampling_rate
        if self.train:
            start = int(torch.randint(0, max(0, n - window) + 1, (1,)))
            return clip_indices(n, self.frames, self.sampling_rate, start)
        if self.align == "end" and self.end_frames and self.end_frames < self.frames:
            return end_aligned_indices(n, self.frames, self.end_frames, self.sampling_rate)
        return clip_indices(n, self.frames, self.sampling_rate)

    def load(self, video_index: int) -> Dict[str, Any]:
        """One clip of video ``video_index``; raises :class:`DecodeError`."""
        rec = self.records[video_index]
        frames = read_frames(rec.path, self.indices, self.fps)
        return {
            "video": self.transform(frames),
            "label": rec.label,
            "video_index": video_index,
            "path": rec.path,
        }

    def __getitem__(self, i: int) -> Dict[str, Any]:
        n = len(self.records)
        first = i // self.clips_per_video
        for k in range(min(n, self.max_retries + 1)):
            j = (first + k) % n
            path = self.records[j].path
            if path in self.failed:
                continue
            try:
                return self.load(j)
            except DecodeError as e:
                self.failed[path] = str(e)
                log.warning(
                    "unreadable video skipped (%d so far in this process): %s; "
                    "using the next video instead",
                    len(self.failed),
                    e,
                )
        raise DecodeError(
            f"{self.max_retries + 1} videos in a row from index {first} could not be decoded "
            f"(last: {self.records[(first + k) % n].path})"
        )


# --------------------------------------------------------------------------------------------
# LightningDataModule
# --------------------------------------------------------------------------------------------
def _primitive_floats(xs: Iterable[float]) -> Tuple[float, ...]:
    return tuple(float(x) for x in xs)


class KineticsDataModule(LightningDataModule):
    """Kinetics-400 clips for training and evaluation (or a generated sample without a root).

    Batches are dicts ``{"video": (B, C, T, H, W) float32, "label": (B,) int64,
    "video_index": (B,) int64, "path": list[str]}``: ``T = frames`` for training, ``T =
    continual_frames`` (if set, else ``frames``) for validation/test, ``H = W = crop``.

    With ``root=None`` a small generated sample in the Kinetics layout (motion classes; see
    :mod:`cozoo.data.samples`) is written to ``cache_dir`` (default
    ``$COZOO_CACHE/kinetics_sample/v1`` or ``~/.cache/cozoo/kinetics_sample/v1``) and read
    through the same code, with a loud warning.

    Args:
        root: dataset root (layouts in the module docstring), or None for the generated sample.
        frames, sampling_rate: clip of ``frames`` frames every ``sampling_rate``-th frame at 30 fps.
        short_side, crop: short side after resizing; square crop (random in training, centre in
            evaluation).
        mean, std: per-channel normalisation after scaling to [0, 1].
        batch_size, num_workers: loader settings (the same for every split).
        clips_per_video_train: random clips drawn per training video and epoch.
        continual_frames: evaluation clips get this many frames (same sampling rate) so that a
            continual model can warm up on the clip's own leading frames; the last frame repeats
            when the video is shorter.
        continual_align: ``"center"`` (spec §5: the longer window is centred) or ``"end"`` (its
            last ``frames`` frames are exactly the protocol's centred clip, when the video has
            room for the frames before it; else the window starts at the video's first frame).
        cache_dir: folder of the generated sample (and of scan results).
        sample_size: ``"tiny"``, ``"small"`` or ``"medium"`` (videos per class, see
            ``samples.SAMPLE_SIZES``).
        seed: seed of the generated sample.
        train_scale: random short side range in training, relative to ``short_side``.
        hflip: horizontal-flip probability in training (keep 0 for the sample: direction is
            its class).
        scan: pre-flight scan in ``setup``: ``"decode"`` (open + decode a frame), ``"open"``, or
            ``"off"`` (missing files are still skipped).
        fps: frame rate videos are resampled to.
    """

    def __init__(
        self,
        root: Optional[str] = None,
        frames: int = 16,
        sampling_rate: int = 5,
        short_side: int = 224,
        crop: int = 224,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        batch_size: int = 8,
        num_workers: int = 0,
        clips_per_video_train: int = 1,
        continual_frames: Optional[int] = None,
        continual_align: str = "center",
        cache_dir: Optional[str] = None,
        sample_size: str = "small",
        seed: int = 0,
        train_scale: Sequence[float] = (1.0, 1.25),
        hflip: float = 0.0,
        scan: str = "decode",
        fps: int = 30,
    ) -> None:
        super().__init__()
        if scan not in ("decode", "open", "off"):
            raise ValueError(f"scan must be 'decode', 'open' or 'off', got {scan!r}")
        if continual_align not in ("center", "end"):
            raise ValueError(f"continual_align must be 'center' or 'end', got {continual_align!r}")
        if root is None and sample_size not in samples.SAMPLE_SIZES:
            raise ValueError(f"sample_size must be one of {sorted(samples.SAMPLE_SIZES)}")
        # primitives only (Hydra hands over ListConfig / DictConfig): checkpoints stay
        # loadable with torch.load(weights_only=True)
        self.save_hyperparameters(
            {
                "root": None if root is None else str(root),
                "frames": int(frames),
                "sampling_rate": int(sampling_rate),
                "short_side": int(short_side),
                "crop": int(crop),
                "mean": _primitive_floats(mean),
                "std": _primitive_floats(std),
                "batch_size": int(batch_size),
                "num_workers": int(num_workers),
                "clips_per_video_train": int(clips_per_video_train),
                "continual_frames": None if continual_frames is None else int(continual_frames),
                "continual_align": str(continual_align),
                "cache_dir": None if cache_dir is None else str(cache_dir),
                "sample_size": str(sample_size),
                "seed": int(seed),
                "train_scale": _primitive_floats(train_scale),
                "hflip": float(hflip),
                "scan": str(scan),
                "fps": int(fps),
            }
        )
        self._root: Optional[Path] = None
        self._class_names: Optional[List[str]] = None
        self.datasets: Dict[str, KineticsClips] = {}
        self.scan_reports: Dict[str, ScanReport] = {}

    @classmethod
    def from_protocol(cls, protocol: Any, **kwargs: Any) -> KineticsDataModule:
        """A data module with the input protocol of a model: ``protocol`` is a mapping or an
        object with ``frames``, ``sampling_rate``, ``short_side``, ``crop``, ``mean``, ``std``
        (e.g. ``cozoo.data.transforms.PROTOCOLS["cox3d_m"]`` or a ``Weights`` entry's
        ``transforms``); ``kwargs`` override or add arguments."""
        keys = ("frames", "sampling_rate", "short_side", "crop", "mean", "std")
        get = protocol.get if isinstance(protocol, dict) else lambda k: getattr(protocol, k, None)
        args = {k: get(k) for k in keys if get(k) is not None}
        return cls(**{**args, **kwargs})

    # ---- where the data is ---------------------------------------------------------------------
    @property
    def is_generated_sample(self) -> bool:
        """True when no ``root`` was given and the generated sample is used."""
        return self.hparams.root is None

    @property
    def data_root(self) -> Path:
        """The dataset root in use (writes the generated sample first when needed)."""
        if self._root is None:
            if self.hparams.root is None:
                root = samples.ensure_sample(
                    self.hparams.cache_dir, self.hparams.sample_size, self.hparams.seed
                )
                n = sum(samples.SAMPLE_SIZES[self.hparams.sample_size]) * len(
                    samples.SAMPLE_CLASSES
                )
                bar = "=" * 78
                log.warning(
                    "\n%s\n  NO data.root GIVEN: USING A GENERATED SAMPLE, NOT KINETICS-400\n"
                    "  %d synthetic videos, %d motion classes (%s), written in the Kinetics\n"
                    "  layout (mp4 + annotations/*.csv) at\n    %s\n"
                    "  Pass data.root=/path/to/kinetics400 to use the real dataset.\n%s",
                    bar,
                    n,
                    len(samples.SAMPLE_CLASSES),
                    ", ".join(samples.SAMPLE_CLASSES),
                    root,
                    bar,
                )
                self._root = root
            else:
                self._root = Path(self.hparams.root).expanduser().resolve()
        return self._root

    @property
    def class_names(self) -> List[str]:
        """Sorted class names; the class index is the position in this list."""
        if self._class_names is None:
            if self.hparams.root is None:
                self._class_names = list(samples.SAMPLE_CLASSES)
            else:
                split = next(
                    (s for s in SPLITS if self._has_split(s)), "train"
                )  # any split gives the shared class list
                self._class_names = list_split(self.data_root, split).class_names
        return self._class_names

    @property
    def num_classes(self) -> int:
        """Number of classes (400 for Kinetics-400, 6 for the generated sample)."""
        return len(self.class_names)

    def _has_split(self, split: str) -> bool:
        root = self.data_root
        return (
            _kinetics_csv(root, split) is not None
            or _path_list(root, split) is not None
            or _split_dir(root, split) is not None
        )

    @property
    def skipped(self) -> Dict[str, Dict[str, int]]:
        """Per split: videos skipped as ``missing``/``unreadable`` by the scan and ``failed``
        while loading (in this process)."""
        out: Dict[str, Dict[str, int]] = {}
        for split in sorted(set(self.scan_reports) | set(self.datasets)):
            rep = self.scan_reports.get(split)
            ds = self.datasets.get(split)
            out[split] = {
                "missing": len(rep.missing) if rep else 0,
                "unreadable": len(rep.unreadable) if rep else 0,
                "failed": len(ds.failed) if ds else 0,
            }
        return out

    # ---- Lightning hooks -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Write the generated sample (rank 0) when no ``root`` is given."""
        _ = self.data_root

    def _report(self, split: str) -> ScanReport:
        if split not in self.scan_reports:
            mode = self.hparams.scan
            if mode == "off":
                lst = list_split(self.data_root, split)
                rep = ScanReport(
                    str(self.data_root),
                    split,
                    lst.layout,
                    lst.class_names,
                    lst.records,
                    lst.missing,
                )
                if rep.missing:
                    log.warning("%s\n  (these videos are skipped)", rep.summary())
            else:
                cache = None
                if self.hparams.cache_dir is not None:
                    cache = Path(self.hparams.cache_dir).expanduser()
                rep = scan(self.data_root, split, decode=mode == "decode", cache_dir=cache)
            if not rep.videos:
                raise FileNotFoundError(f"no readable video in {self.data_root} [{split}]")
            self.scan_reports[split] = rep
            self._class_names = rep.class_names
        return self.scan_reports[split]

    def _dataset(self, split: str) -> KineticsClips:
        h = self.hparams
        train = split == "train"
        frames = h.frames if train or h.continual_frames is None else h.continual_frames
        transform = clip_transform(
            frames=frames,
            short_side=h.short_side,
            crop=h.crop,
            mean=h.mean,
            std=h.std,
            train=train,
            train_scale=tuple(h.train_scale),
            hflip=h.hflip,
        )
        return KineticsClips(
            self._report(split).videos,
            frames=frames,
            sampling_rate=h.sampling_rate,
            transform=transform,
            train=train,
            clips_per_video=h.clips_per_video_train,
            align=h.continual_align,
            end_frames=h.frames,
            fps=h.fps,
        )

    def setup(self, stage: Optional[str] = None) -> None:
        """Scan and build the datasets of ``stage`` (``fit``: train + val; ``validate``: val;
        ``test``/``predict``: test; ``None``: every split present)."""
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
        }.get(stage or "", tuple(s for s in SPLITS if self._has_split(s)))
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        workers = self.hparams.num_workers
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m cozoo.data.kinetics scan ROOT [--split val|all] [--open-only] [--all-paths]``
    prints the pre-flight scan; ``... sample [--cache-dir D] [--size small] [--seed 0]`` writes
    the generated sample and prints its root."""
    parser = argparse.ArgumentParser(
        prog="python -m cozoo.data.kinetics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_scan = sub.add_parser("scan", help="report missing and unreadable videos of a split")
    p_scan.add_argument("root")
    p_scan.add_argument("--split", default="all", help="train, val, test or all (default)")
    p_scan.add_argument("--open-only", action="store_true", help="do not decode a frame")
    p_scan.add_argument("--all-paths", action="store_true", help="list every bad path")
    p_scan.add_argument("--workers", type=int, default=None)
    p_scan.add_argument("--no-cache", action="store_true", help="probe every file again")
    p_sample = sub.add_parser("sample", help="write the generated Kinetics-layout sample")
    p_sample.add_argument("--cache-dir", default=None)
    p_sample.add_argument("--size", default="small", choices=sorted(samples.SAMPLE_SIZES))
    p_sample.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "sample":
        print(samples.ensure_sample(args.cache_dir, args.size, args.seed))
        return 0
    root = Path(args.root)
    splits = SPLITS if args.split == "all" else (_split_key(args.split),)
    status = 0
    for split in splits:
        try:
            rep = scan(
                root,
                split,
                decode=not args.open_only,
                workers=args.workers,
                use_cache=not args.no_cache,
            )
        except FileNotFoundError as e:
            if args.split != "all":
                print(f"error: {e}", file=sys.stderr)
                return 2
            continue
        print(rep.summary(max_paths=None if args.all_paths else 50))
        status = status or int(bool(rep.missing or rep.unreadable))
    return status


if __name__ == "__main__":
    sys.exit(main())
