"""The cozoo cache folder and the atomic writing of a generated sample into it.

Every dataset family writes its generated sample the same way: into a temporary folder
``<parent>/.tmp-<name>-*`` beside the final folder, renamed into place only once complete, with a
marker file (:data:`MARKER`) written last that records what was generated (format, version,
generator, geometry) and the size of every file. A folder whose marker is absent, names something
else, or lists a file that is missing or has another size is not a sample: it is rebuilt. So an
interrupted generation is never mistaken for a finished one, and concurrent writers (e.g. DDP
ranks) are safe: the first rename wins and the others use its result.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar, Union

__all__ = [
    "MARKER",
    "build_atomically",
    "cache_root",
    "marker_matches",
    "read_marker",
    "remove_stale_temps",
    "write_marker",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
T = TypeVar("T")

#: Name of the marker file that makes a folder a complete generated sample.
MARKER = "SAMPLE.json"
#: Temporary folders of interrupted generations older than this are deleted.
STALE_TEMP_AGE_S = 3600.0


def cache_root() -> Path:
    """``$COZOO_CACHE`` if set, else ``~/.cache/cozoo``: the folder every cozoo cache lives in."""
    base = os.environ.get("COZOO_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "cozoo"


def write_marker(root: PathLike, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest`` (JSON-serialisable; by convention with a ``files`` mapping ``{relative
    path: size in bytes}``) as the marker of ``root``. Call it after every other file."""
    text = json.dumps(dict(manifest), indent=1, sort_keys=True)
    (Path(root) / MARKER).write_text(text)


def read_marker(root: PathLike) -> Optional[Dict[str, Any]]:
    """The manifest of ``root``'s marker, or ``None`` when absent or not a JSON object."""
    try:
        manifest = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def marker_matches(root: PathLike, expected: Mapping[str, Any]) -> bool:
    """True iff ``root`` holds a complete sample: its marker exists, has the ``expected`` value
    for each key of ``expected``, and every file it lists is there with its recorded size."""
    root = Path(root)
    manifest = read_marker(root)
    if manifest is None:
        return False
    try:
        files: Mapping[str, int] = manifest["files"]
        if any(manifest.get(key) != value for key, value in expected.items()):
            return False
        for rel, size in files.items():
            path = root / rel
            if not path.is_file() or path.stat().st_size != size:
                return False
    except (OSError, KeyError, TypeError, AttributeError):
        return False
    return True


def remove_stale_temps(parent: Path, max_age_s: float = STALE_TEMP_AGE_S) -> None:
    """Delete the temporary folders (``.tmp-*``) of interrupted generations in ``parent`` that
    are older than ``max_age_s`` (younger ones may belong to a writer still at work)."""
    now = time.time()
    for path in parent.glob(".tmp-*"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def build_atomically(
    root: Path,
    write: Callable[[Path], T],
    is_complete: Callable[[Path], bool],
    logger: logging.Logger = log,
) -> Optional[T]:
    """Make ``root`` a complete sample: nothing to do when ``is_complete(root)``; else
    ``write(tmp)`` fills a new temporary folder beside ``root`` (marker last), which is then
    renamed to ``root``.

    A ``root`` that exists but is not complete (copied half-way, another generator) is removed
    first, with a warning to ``logger``. When another process renamed its own complete sample
    into place first, that one is kept. The temporary folder is removed whatever happens.

    Returns:
        What ``write`` returned, or ``None`` when ``root`` was already complete.
    """
    if is_complete(root):
        return None
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root.parent)
    if root.exists():
        logger.warning("incomplete or outdated generated sample at %s: rebuilding it", root)
        shutil.rmtree(root, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{root.name}-", dir=root.parent))
    try:
        result = write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any other
        try:
            os.rename(tmp, root)
        except OSError:
            if not is_complete(root):  # lost a race against a broken writer: retry once
                shutil.rmtree(root, ignore_errors=True)
                os.rename(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return result
