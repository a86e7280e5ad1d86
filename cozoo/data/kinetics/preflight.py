"""The pre-flight scan of a Kinetics split: list it, then probe every present video with PyAV.

``python -m cozoo.data.kinetics scan ROOT --split val`` prints it; the data module runs it in
``setup``. Missing and unreadable videos are reported with their paths, counted and skipped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import ClassVar, List, Optional, Union

from .._scan import FileScanReport, probe_files, scan_cache_file
from .listing import VideoRecord, list_split, split_key

__all__ = ["ScanReport", "probe_video", "scan"]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


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


class ScanReport(FileScanReport):
    """Result of :func:`scan`: the readable videos (``ok``, also named ``videos``) and the bad
    files with their reasons."""

    item_noun: ClassVar[str] = "videos"

    @property
    def videos(self) -> List[VideoRecord]:
        """The readable videos (``ok``)."""
        return self.ok


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
        root: dataset root (any layout of :mod:`cozoo.data.kinetics`).
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
    split = split_key(split)
    listing = list_split(root, split)
    cache_name = f"{split}-{'decode' if decode else 'open'}"
    reasons = probe_files(
        [record.path for record in listing.records],
        lambda path: probe_video(path, decode=decode),
        cache_file=scan_cache_file(cache_dir, "kinetics_scans", root, cache_name)
        if use_cache
        else None,
        workers=workers,
        label=f"{root} [{split}]",
        item_noun="videos",
        logger=log,
    )
    videos = [record for record, why in zip(listing.records, reasons) if why is None]
    unreadable = [
        (record.path, why) for record, why in zip(listing.records, reasons) if why is not None
    ]
    report = ScanReport(
        str(root), split, listing.layout, listing.class_names, videos, listing.missing, unreadable
    )
    report.log_summary(log)
    return report
