"""Fetching and reading checkpoint files: the torch hub cache, sha256, restricted loading.

::

    fetch(location, sha256) ──> local path ──> read_checkpoint(path) ──> the stored object
    path, file:// or http(s)    (downloads cached       torch.load(weights_only=True), or the
                                 under torch.hub's dir)  numpy-only unpickler for .pkl files

Downloads go through ``torch.hub.download_url_to_file`` (a temporary file, a progress bar) into
a temporary name beside the cache entry; the full sha256 of the file is checked before it is
renamed into the cache, so a cached file is always a complete, verified one. Nothing read from a
checkpoint can run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch
import torch._weights_only_unpickler

from cozoo import safe_pickle
from cozoo.co.logging import getLogger

from ._errors import ChecksumError, UnpinnedChecksumWarning, UnsafeCheckpointError, WeightsError

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "UnloadedObject",
    "cache_dir",
    "cache_path",
    "download",
    "fetch",
    "read_checkpoint",
    "sha256sum",
    "url_basename",
]

logger = getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0
"""Socket timeout of a download (seconds without data before it is abandoned)."""

_CHUNK = 1 << 20
_PICKLE_SUFFIXES = (".pkl", ".pickle")
# torch's legacy (pre-zip) format starts with the pickled magic number 0x1950a86a20f9469cfc6c
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def sha256sum(path: Union[str, os.PathLike]) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def url_basename(url: str) -> str:
    """The file name at the end of ``url`` (``"checkpoint"`` if it has none)."""
    return os.path.basename(urllib.parse.urlparse(url).path) or "checkpoint"


def cache_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (follows ``TORCH_HOME`` / ``torch.hub.set_dir``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(url: str) -> Path:
    """Where a download of ``url`` is cached: the URL's file name with 8 hex digits of the
    URL's sha256 before the suffix (``x3d_m-1a2b3c4d.pyth``), so that equal file names at
    different URLs (e.g. pytorchvideo's ``X3D_M.pyth`` vs PySlowFast's ``x3d_m.pyth`` on a
    case-insensitive disk) never collide. Place a file there to skip the download."""
    stem, dot, suffix = url_basename(url).partition(".")
    tag = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    return cache_dir() / f"{stem}-{tag}{dot}{suffix}"


def _checksum_error(what: str, expected: str, actual: str, consequence: str) -> ChecksumError:
    return ChecksumError(
        f"sha256 mismatch for {what}:\n  expected {expected}\n  actual   {actual}\n{consequence}"
    )


def _report_unpinned(path: Path, url: str, digest: str) -> None:
    message = (
        f"No sha256 is pinned for {url}; accepted {path.name} with sha256 {digest}. "
        f"Pin it (Weights.sha256) once the file is known to be the published one."
    )
    logger.info(message)
    warnings.warn(message, UnpinnedChecksumWarning, stacklevel=3)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """``torch.hub.download_url_to_file`` opens its connection without a timeout: a stalled
    server would hang the caller forever."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def download(url: str, sha256: Optional[str] = None, *, progress: bool = True) -> Path:
    """Download ``url`` into the torch hub cache (``cache_path(url)``) and return the path.

    A cached file is reused when it matches ``sha256`` (or when no hash is pinned); a cached file
    that does not match is downloaded again. A download is renamed into place only after its
    full sha256 is checked: on a mismatch it is deleted and ``ChecksumError`` names the file and
    both hashes. With ``sha256=None`` the computed hash is reported (``UnpinnedChecksumWarning``).
    """
    dest = cache_path(url)
    if dest.is_file():
        digest = sha256sum(dest)
        if sha256 is None:
            _report_unpinned(dest, url, digest)
            return dest
        if digest == sha256:
            return dest
        logger.warning(f"Cached {dest} has sha256 {digest}, expected {sha256}: downloading again")
        dest.unlink()
    logger.info(f"Downloading {url} to {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.download")
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            torch.hub.download_url_to_file(url, str(partial), progress=progress)
        digest = sha256sum(partial)
        if sha256 is not None and digest != sha256:
            raise _checksum_error(
                f"{dest.name} downloaded from {url}", sha256, digest, "The download was deleted."
            )
        os.replace(partial, dest)
    except (OSError, ValueError, urllib.error.URLError) as error:
        raise WeightsError(f"Download of {url} failed: {type(error).__name__}: {error}") from error
    finally:
        partial.unlink(missing_ok=True)
    if sha256 is None:
        _report_unpinned(dest, url, digest)
    return dest


def _local_path(location: str) -> Path:
    """The path named by a local path or a ``file://`` URL."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme != "file":
        return Path(location).expanduser()
    if parsed.netloc not in ("", "localhost"):
        raise WeightsError(f"Cannot read {location}: only local file:// URLs are supported")
    return Path(urllib.request.url2pathname(parsed.path))


def fetch(location: str, sha256: Optional[str] = None, *, progress: bool = True) -> Path:
    """A local path to the checkpoint at ``location`` (path, ``file://`` or http(s) URL),
    downloading it if needed; a pinned ``sha256`` is checked for local files too (a local file
    that does not match is refused, never deleted)."""
    if urllib.parse.urlparse(location).scheme in ("http", "https"):
        return download(location, sha256, progress=progress)
    path = _local_path(location)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path} (from {location!r})")
    if sha256 is not None:
        digest = sha256sum(path)
        if digest != sha256:
            raise _checksum_error(str(path), sha256, digest, "The file was not loaded.")
    return path


def _looks_like_torch_file(path: Path) -> bool:
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(len(_TORCH_LEGACY_MAGIC)) == _TORCH_LEGACY_MAGIC


def _refused_global(message: str) -> Optional[str]:
    """The line of a ``weights_only`` failure that names a refused global, if that is why
    (other failures, e.g. an unsupported opcode in a damaged file, are corruption)."""
    for line in message.splitlines():
        if any(text in line for text in ("Unsupported global", "not an allowed global", "blocked")):
            return line.strip().replace("WeightsUnpickler error: ", "")[:300]
    return None


class UnloadedObject:
    """Stands in for an object of a class a checkpoint names but torch's weights-only
    allow-list does not hold (e.g. a Lightning run's hyper-parameter objects): the class is
    never imported nor called; ``global_name``, the constructor ``args``, the pickled ``state``
    and any ``items``/``elements`` set on it are kept as data."""

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> UnloadedObject:
        self = object.__new__(cls)
        self.args, self.state, self.items, self.elements = args, None, {}, []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, item: Any) -> None:
        self.elements.append(item)

    def extend(self, items: Any) -> None:
        self.elements.extend(items)

    def __repr__(self) -> str:
        return f"<unloaded {self.global_name}>"


def _placeholder(name: str) -> type:
    return type("UnloadedObject", (UnloadedObject,), {"global_name": name, "__slots__": ()})


class _PlaceholderUnpickler(torch._weights_only_unpickler.Unpickler):  # type: ignore[name-defined]
    """torch's weights-only unpickler; the placeholders may also be filled like lists/dicts."""

    def _check_set_item_target(self, opcode: str) -> None:
        if not isinstance(self.stack[-1], UnloadedObject):
            super()._check_set_item_target(opcode)

    def _check_append_target(self, list_obj: Any) -> None:
        if not isinstance(list_obj, UnloadedObject):
            super()._check_append_target(list_obj)


class _PlaceholderPickleModule:
    """The ``pickle_module`` torch.load reads ``data.pkl`` with (as it does with its own
    weights-only module when ``weights_only=True``)."""

    Unpickler = _PlaceholderUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _PlaceholderUnpickler(file, **kwargs).load()


#: Standard-library globals that may stand for hyper-parameter data; any other global of the
#: standard library (``builtins.open``, ``os.system``, ``functools.partial`` ...) is no
#: hyper-parameter object but an attempt to run code: such a file is refused outright.
_STDLIB_DATA_GLOBALS = ("argparse.Namespace", "pathlib.", "datetime.", "collections.", "enum.")


def _never_replaced(name: str) -> bool:
    module = name.split(".", 1)[0]
    stdlib = module in getattr(sys, "stdlib_module_names", ()) or module == "__builtin__"
    return stdlib and not name.startswith(_STDLIB_DATA_GLOBALS)


def _load_with_placeholders(path: Path) -> Any:
    """``torch.load`` with torch's weights-only allow-list, every other global named in the file
    replaced by an inert ``UnloadedObject`` subclass. None when torch cannot list them (a legacy
    file, a torch without ``get_unsafe_globals_in_checkpoint``) or when one is a function or
    class of the standard library (``_never_replaced``); torch still refuses the globals of the
    modules it blocks."""
    unsafe_globals = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if unsafe_globals is None or not zipfile.is_zipfile(path):
        return None
    names = sorted(unsafe_globals(path))
    if any(_never_replaced(name) for name in names):
        return None
    placeholders = [(_placeholder(name), name) for name in names]
    with torch.serialization.safe_globals(placeholders):
        loaded = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_PlaceholderPickleModule
        )
    message = (
        f"{path.name}: not loaded (replaced by inert UnloadedObject placeholders, tensors "
        f"intact): {', '.join(names)}"
    )
    logger.warning(message)
    warnings.warn(message, stacklevel=4)
    return loaded


def _torch_load(path: Path) -> Any:
    if not _looks_like_torch_file(path):
        raise WeightsError("neither a zip archive nor torch's legacy format")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _refused_global(str(error))
        if reason is None:
            raise
    try:
        loaded = _load_with_placeholders(path)
    except pickle.UnpicklingError as error:
        reason = f"{reason}; with placeholders: {str(error)[:300]}"
        loaded = None
    if loaded is None:
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it holds objects other than tensors and plain containers, "
            f"and cozoo reads checkpoints only with torch.load(weights_only=True). "
            f"torch says: {reason}"
        )
    return loaded


def read_checkpoint(path: Union[str, os.PathLike]) -> Any:
    """The object stored in a checkpoint file, read without running code from it.

    torch files (zip or legacy format, whatever the suffix: ``.pyth``, ``.pt``, ``.pth``,
    Lightning's ``.ckpt``) go through ``torch.load(weights_only=True, map_location="cpu")``;
    objects of other classes in a zip file (e.g. the hyper-parameters of a Lightning ``.ckpt``)
    are replaced by inert ``UnloadedObject`` placeholders, with a warning naming them; other
    ``.pkl``/``.pickle`` files (Caffe2) through the numpy-only unpickler of
    :mod:`cozoo.safe_pickle`. A file that cannot be parsed raises ``WeightsError`` ("corrupt or
    truncated"); one whose objects cannot be replaced (globals of blocked modules, a legacy
    file) raises ``UnsafeCheckpointError``."""
    path = Path(path)
    try:
        if path.suffix.lower() in _PICKLE_SUFFIXES and not _looks_like_torch_file(path):
            try:
                return safe_pickle.load(path)
            except safe_pickle.UnsafePickleError as error:
                raise UnsafeCheckpointError(str(error)) from None
        return _torch_load(path)
    except UnsafeCheckpointError:
        raise
    except Exception as error:  # any parse failure of an untrusted file
        raise WeightsError(
            f"Could not read checkpoint {path} (corrupt or truncated?): "
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from error
