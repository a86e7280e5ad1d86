"""The pre-flight scan shared by the dataset families: probe every listed file once, remember the
answers between runs, and report what is missing or unreadable, by path.

A family lists a split (finding the *missing* files: rows or entries without a file), then
probes the present files with its own reader (:func:`probe_files`; a probe returns ``None`` for
a readable file, else the reason it is not). The outcome is a report with the
:class:`ScanSummary` behaviour (counts, summary text, logging): :class:`FileScanReport` for a
family of one file per sample (NTU ``.skeleton`` files, one feature file per video), or the
family's own dataclass when its readable items deserve a name of their own (Kinetics:
``ScanReport.videos``). Bad files are never fatal: they are reported, counted and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

from ._cache import cache_root

__all__ = ["FileScanReport", "ScanSummary", "probe_files", "scan_cache_file"]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
#: A probe: ``None`` when the file at the path is readable, else the reason it is not.
Probe = Callable[[str], Optional[str]]
#: At most this many bad paths per list in a logged summary.
LOG_PATHS = 20


class ScanSummary:
    """Counts, summary text and logging of a scan report; mixed into the report dataclasses.

    A report provides ``root``, ``split``, ``layout``, ``class_names``, the readable items
    ``ok`` and the bad files ``missing`` and ``unreadable`` as ``(path, reason)`` lists.
    """

    root: str
    split: str
    layout: str
    class_names: List[str]
    ok: Sequence[Any]
    missing: List[Tuple[str, str]]
    unreadable: List[Tuple[str, str]]
    #: Plural noun of the items, for the log line saying that the bad ones are skipped.
    item_noun: ClassVar[str] = "files"

    @property
    def num_listed(self) -> int:
        return len(self.ok) + len(self.missing) + len(self.unreadable)

    @property
    def counts(self) -> Dict[str, int]:
        return {
            "listed": self.num_listed,
            "ok": len(self.ok),
            "missing": len(self.missing),
            "unreadable": len(self.unreadable),
        }

    def summary(self, max_paths: Optional[int] = LOG_PATHS) -> str:
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

    def log_summary(self, logger: logging.Logger, *, clean_too: bool = True) -> None:
        """Log the summary: a WARNING naming the bad files when there are any, else (only if
        ``clean_too``) an INFO line."""
        if self.missing or self.unreadable:
            logger.warning("%s\n  (these %s are skipped)", self.summary(), self.item_noun)
        elif clean_too:
            logger.info("%s", self.summary())


@dataclass
class FileScanReport(ScanSummary):
    """Scan report of a dataset of one file per item: ``ok`` holds the readable items (records
    of the family's choice), ``missing`` and ``unreadable`` the bad files with their reasons."""

    root: str
    split: str
    layout: str
    class_names: List[str]
    ok: List[Any]
    missing: List[Tuple[str, str]] = field(default_factory=list)
    unreadable: List[Tuple[str, str]] = field(default_factory=list)


def scan_cache_file(
    cache_dir: Optional[PathLike], default_folder: str, root: Path, name: str
) -> Path:
    """Where the probe results of one scan of ``root`` are remembered:
    ``<cache_dir>/scans/<key>-<name>.json``, or without ``cache_dir``
    ``<cache root>/<default_folder>/<key>-<name>.json`` (``key``: a hash of ``root``)."""
    if cache_dir:
        base = Path(cache_dir).expanduser() / "scans"
    else:
        base = cache_root() / default_folder
    key = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    return base / f"{key}-{name}.json"


def _file_signature(path: str) -> List[int]:
    """Size and modification time: a file with the same signature needs no new probe."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _read_probe_cache(cache_file: Optional[Path]) -> Dict[str, Any]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        return json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}


def _write_probe_cache(cache_file: Path, data: Dict[str, Any], logger: logging.Logger) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cache_file)
    except OSError as e:
        logger.info("could not write the scan cache %s: %s", cache_file, e)


def probe_files(
    paths: Sequence[str],
    probe: Probe,
    *,
    cache_file: Optional[Path] = None,
    workers: Optional[int] = None,
    label: str = "",
    item_noun: str = "files",
    logger: logging.Logger = log,
) -> List[Optional[str]]:
    """Probe every file of ``paths`` with ``workers`` threads (default ``min(8, 2 × CPUs)``).

    With a ``cache_file``, a file whose size and modification time are those of the cached
    answer is not probed again, and the file is rewritten (atomically) with this scan's answers.
    Progress is logged (INFO) every tenth of the files, and at least every 1000, as
    ``scanning <label>: i / n <item_noun> probed``.

    Returns:
        Per path, in order: ``None`` (readable) or the reason it is not.
    """
    cached = _read_probe_cache(cache_file)

    def check(path: str) -> Tuple[List[int], Optional[str]]:
        signature = _file_signature(path)
        hit = cached.get(path)
        if hit is not None and hit[0] == signature:
            return signature, hit[1]
        return signature, probe(path)

    n_workers = workers or min(8, 2 * (os.cpu_count() or 1))
    total = len(paths)
    every = max(1000, total // 10)
    results: List[Tuple[List[int], Optional[str]]] = []
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for i, result in enumerate(pool.map(check, paths), 1):
            results.append(result)
            if i % every == 0:
                logger.info("scanning %s: %d / %d %s probed", label, i, total, item_noun)
    if cache_file is not None:
        data = {path: [sig, why] for path, (sig, why) in zip(paths, results)}
        _write_probe_cache(cache_file, data, logger)
    return [why for _, why in results]
