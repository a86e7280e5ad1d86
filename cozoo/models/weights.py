"""Published checkpoints of the model zoo and the code that downloads, verifies and loads them.

One ``Weights`` entry per released checkpoint file, grouped per model in a ``WeightsEnum``
(the torchvision multi-weight API)::

    model = cox3d_m(weights=CoX3D_M_Weights.DEFAULT)          # or weights="DEFAULT"
    model = cox3d_m(weights="KINETICS400_PYTORCHVIDEO")        # a member's name
    model = cox3d_m(weights="/data/x3d_m.pyth")                # a local file, or file:// URL
    model = cox3d_m(weights="https://example.org/my_run.pth")  # any http(s) URL

``load_weights`` does the work behind the ``weights=`` argument of every builder:

    resolve ──> fetch ──────────────> read ─────────────────> detect ──> convert ──> strict load
    member,     cached download       torch.load(             caffe2 /   model.convert_state_dict
    name, path, (torch hub dir),      weights_only=True),     pyslowfast/  (state, format)
    URL         sha256 verified       or a numpy-only         pytorchvideo/
                                      unpickler (Caffe2 .pkl) cozoo

Nothing read from a checkpoint can run code: ``torch.load`` is always called with
``weights_only=True`` and the Caffe2 pickles are read by an unpickler that only reconstructs
numpy arrays. Downloads are written to a temporary file and renamed into the cache once their
sha256 is checked; a file whose hash differs from the pinned one is deleted and refused. Where
no hash is pinned, the computed one is reported (``UnpinnedChecksumWarning``) so that a
maintainer can pin it.

The numbers in ``meta`` are the published ones (spec ``video-models.md`` §3.4, §5, §6); the test
suite recomputes what it can from the architectures instead of trusting them.
"""

from __future__ import annotations

import enum
import hashlib
import http.client
import importlib
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type, Union

import torch
from torch import nn

from cozoo import __version__
from cozoo.co.logging import getLogger

__all__ = [
    "SOURCE_FORMATS",
    "ChecksumError",
    "CoI3D_Weights",
    "CoSlow_Weights",
    "CoX3D_L_Weights",
    "CoX3D_M_Weights",
    "CoX3D_S_Weights",
    "InputProtocol",
    "REQUIRED_META",
    "StateDictMismatchError",
    "UnpinnedChecksumWarning",
    "UnsafeCheckpointError",
    "Weights",
    "WeightsEnum",
    "WeightsError",
    "cache_dir",
    "cache_path",
    "detect_format",
    "download",
    "extract_state_dict",
    "fetch",
    "load_caffe2_pickle",
    "load_checkpoint",
    "load_state_dict_strict",
    "load_weights",
    "read_checkpoint",
    "sha256sum",
    "state_dict_diff",
]

logger = getLogger(__name__)

SOURCE_FORMATS: Tuple[str, ...] = ("pytorchvideo", "pyslowfast", "caffe2", "cozoo")
"""Key layouts a checkpoint may come in; ``model.convert_state_dict(state, fmt)`` maps them."""

DOWNLOAD_TIMEOUT_S = 60.0
"""Socket timeout of a download (seconds without data before it is abandoned)."""

MAX_LISTED_KEYS = 12
"""How many keys of each kind a state-dict mismatch message lists before summarising."""

_CHUNK = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_PICKLE_SUFFIXES = (".pkl", ".pickle")
# torch's legacy (pre-zip) format starts with the pickled magic number 0x1950a86a20f9469cfc6c
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class WeightsError(RuntimeError):
    """A checkpoint could not be fetched, read or loaded."""


class ChecksumError(WeightsError):
    """A file's sha256 differs from the pinned one."""


class UnsafeCheckpointError(WeightsError):
    """A checkpoint holds objects other than tensors, arrays and plain containers."""


class StateDictMismatchError(WeightsError):
    """The (converted) checkpoint's keys or shapes differ from the model's state dict."""


class UnpinnedChecksumWarning(UserWarning):
    """A download was accepted without a pinned sha256; the message carries the computed one."""


# --------------------------------------------------------------------------------------------
# Weights entries
# --------------------------------------------------------------------------------------------
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class InputProtocol:
    """How a clip is prepared for the model (spec §5): decode, resample to ``fps``, take
    ``frames`` frames every ``sampling_rate``-th frame, scale to [0, 1], resize the short side to
    ``short_side`` (bilinear), centre-crop ``crop``², normalise with ``mean``/``std`` per RGB
    channel. A continual model sees the same frames one step at a time."""

    frames: int
    sampling_rate: int
    short_side: int
    crop: int
    mean: Tuple[float, float, float] = KINETICS_MEAN
    std: Tuple[float, float, float] = KINETICS_STD
    fps: int = 30

    @property
    def clip_shape(self) -> Tuple[int, int, int, int]:
        """``(C, T, H, W)`` of one clip."""
        return (3, self.frames, self.crop, self.crop)

    @property
    def step_shape(self) -> Tuple[int, int, int]:
        """``(C, H, W)`` of one step (frame)."""
        return (3, self.crop, self.crop)


@dataclass(frozen=True)
class Weights:
    """One published checkpoint file.

    ``url``: where it is released (http(s) or ``file://``); ``sha256``: the full hex digest of the
    file, or None while unknown (the loader then reports the hash it computed);
    ``source_format``: the key layout of the file (one of ``SOURCE_FORMATS``); ``transforms``:
    the input protocol the published numbers were measured with; ``meta``: the published facts
    (see ``REQUIRED_META``).
    """

    url: str
    sha256: Optional[str]
    source_format: str
    transforms: InputProtocol
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlparse(self.url).scheme
        if scheme not in ("http", "https", "file"):
            raise ValueError(f"Weights.url must be an http(s) or file:// URL, got {self.url!r}")
        if self.sha256 is not None and not _SHA256_RE.match(self.sha256):
            raise ValueError(
                f"Weights.sha256 must be 64 lowercase hex digits or None, got {self.sha256!r}"
            )
        if self.source_format not in SOURCE_FORMATS:
            raise ValueError(
                f"Weights.source_format must be one of {SOURCE_FORMATS}, got {self.source_format!r}"
            )

    def __hash__(self) -> int:  # meta is a dict: hash the identifying fields only
        return hash((self.url, self.sha256, self.source_format))

    @property
    def file_name(self) -> str:
        """The file name at the end of ``url``."""
        return _url_basename(self.url)


REQUIRED_META: Tuple[str, ...] = (
    "num_params",
    "macs_per_clip",
    "macs_per_step",
    "receptive_field",
    "delay",
    "published",
    "recipe",
    "license",
    "source",
    "categories",
)
"""Keys every ``Weights.meta`` has (values may be None where nothing is published)."""


class WeightsEnum(enum.Enum):
    """Base of the per-model enums of ``Weights``; ``DEFAULT`` is an alias of the recommended
    member. Members expose the fields of their ``Weights`` (``member.url``, ``member.meta``...)."""

    @classmethod
    def verify(cls, obj: Union[None, str, WeightsEnum]) -> Optional[WeightsEnum]:
        """The member ``obj`` names: a member, its name (``"KINETICS400_PYSLOWFAST"``, also
        ``"CoX3D_M_Weights.KINETICS400_PYSLOWFAST"``), ``"DEFAULT"``, or None (returned as is)."""
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            name = obj[len(cls.__name__) + 1 :] if obj.startswith(cls.__name__ + ".") else obj
            if name in cls.__members__:
                return cls.__members__[name]
            raise ValueError(
                f"{obj!r} is not a weights entry of {cls.__name__}; "
                f"choose one of {', '.join(cls.__members__)}"
            )
        raise TypeError(
            f"{cls.__name__}.verify expects a {cls.__name__} member, its name or None, "
            f"got {obj!r} ({type(obj).__name__})"
        )

    @classmethod
    def is_member_name(cls, name: str) -> bool:
        """Whether ``name`` names a member (as ``verify`` accepts it)."""
        name = name[len(cls.__name__) + 1 :] if name.startswith(cls.__name__ + ".") else name
        return name in cls.__members__

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self._name_}"

    @property
    def url(self) -> str:
        return self.value.url

    @property
    def sha256(self) -> Optional[str]:
        return self.value.sha256

    @property
    def source_format(self) -> str:
        return self.value.source_format

    @property
    def transforms(self) -> InputProtocol:
        return self.value.transforms

    @property
    def meta(self) -> Dict[str, Any]:
        return self.value.meta

    def get_state_dict(self, progress: bool = True) -> Dict[str, Any]:
        """The file's state dict in its ``source_format`` (downloaded, verified, unconverted)."""
        state, _ = load_checkpoint(self.value, progress=progress)
        return state


# --------------------------------------------------------------------------------------------
# Published facts (spec video-models.md). MACs are ptflops multiply-accumulates (module hooks),
# which the papers and READMEs call "FLOPs".
# --------------------------------------------------------------------------------------------
_PYSLOWFAST = "PySlowFast (facebookresearch/SlowFast) model zoo"
_PYTORCHVIDEO = "PyTorchVideo (facebookresearch/pytorchvideo) Kinetics-400 model zoo"
_CAFFE2 = "PySlowFast (facebookresearch/SlowFast) model zoo, Caffe2 checkpoint"
_LICENSE = "Apache-2.0 (license of the releasing repository)"
_CO3D_FIGURE = "co3d README figures/results.png (spec video-models.md §6.1)"
_PYTORCHVIDEO_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
_PYSLOWFAST_X3D_ROOT = "https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/"
_I3D_CAFFE2_URL = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/I3D_8x8_R50.pkl"


def _macs(value: float, shape: Tuple[int, ...], note: Optional[str] = None) -> Dict[str, Any]:
    """A published compute figure: ``value`` GMACs for one input of ``shape`` (batch 1)."""
    entry: Dict[str, Any] = {"value": value, "unit": "GMACs", "input": shape}
    entry["source"] = _CO3D_FIGURE + "; ptflops module hooks, published as GFLOPs"
    if note:
        entry["note"] = note
    return entry


def _frames(per_pool_size: Dict[int, int], unit: str, formula: str) -> Dict[str, Any]:
    """A temporal extent per pool size P (spec §3.4, continual-inference 1.2.4 semantics)."""
    return {"unit": unit, "per_pool_size": per_pool_size, "formula": formula}


def _top1(per_pool_size: Dict[int, float], source: str, note: Optional[str] = None) -> Dict:
    """Published Kinetics-400 top-1 of the continual model per pool size P."""
    entry: Dict[str, Any] = {
        "dataset": "Kinetics-400",
        "metric": "top-1 accuracy",
        "unit": "%",
        "views": "1 clip / 1 frame",
        "per_pool_size": per_pool_size,
        "source": source,
    }
    if note:
        entry["note"] = note
    return entry


def _meta(arch: Dict[str, Any], published: Dict[str, Any], recipe: Optional[str], source: str):
    """The meta of one checkpoint: the architecture's facts plus the file's own."""
    return {
        **arch,
        "published": published,
        "recipe": recipe,
        "license": _LICENSE,
        "source": source,
        "categories": 400,
    }


_NOT_PUBLISHED_X3D = (
    "No continual accuracy was published for this file: the CoX3D numbers come from the "
    "PySlowFast x3d_*.pyth files (a different training run; pytorchvideo's X3D has no BN on "
    "the res2 block-0 shortcut). The continual-inference README lists this file next to "
    "CoX3D, with rounded co3d numbers (spec §6.2)."
)

_X3D_S_ARCH = {
    "num_params": 3_794_322,
    "macs_per_clip": _macs(2.06, (3, 13, 160, 160), "X3D-S clip"),
    "macs_per_step": _macs(0.17, (3, 160, 160)),
    "receptive_field": _frames({13: 69, 64: 120}, "frames", "56 + P"),
    "delay": _frames({13: 40, 64: 91}, "steps", "27 + P"),
}
_X3D_M_ARCH = {
    "num_params": 3_794_322,
    "macs_per_clip": _macs(4.97, (3, 16, 224, 224), "X3D-M clip"),
    "macs_per_step": _macs(0.33, (3, 224, 224)),
    "receptive_field": _frames({16: 72, 64: 120}, "frames", "56 + P"),
    "delay": _frames({16: 43, 64: 91}, "steps", "27 + P"),
}
_X3D_L_ARCH = {
    "num_params": 6_153_432,
    "macs_per_clip": _macs(19.17, (3, 16, 312, 312), "X3D-L clip"),
    "macs_per_step": _macs(1.25, (3, 312, 312)),
    "receptive_field": _frames({16: 130, 64: 178}, "frames", "114 + P"),
    "delay": _frames({16: 72, 64: 120}, "steps", "56 + P"),
}
_SLOW_ARCH = {
    "num_params": 32_454_096,
    "macs_per_clip": _macs(54.87, (3, 8, 256, 256), "Slow-8x8-R50 clip"),
    "macs_per_step": _macs(6.90, (3, 256, 256)),
    "receptive_field": _frames({8: 26, 64: 82}, "frames", "18 + P"),
    "delay": _frames({8: 16, 64: 72}, "steps", "8 + P"),
}
_I3D_ARCH = {
    "num_params": 28_043_472,
    "macs_per_clip": _macs(28.61, (3, 8, 224, 224), "I3D-R50 clip"),
    "macs_per_step": _macs(
        5.68,
        (3, 224, 224),
        "peak step (the steps where pool1 emits); the other steps cost 1.52, mean 3.60 "
        "(measured, spec §7.2)",
    ),
    "receptive_field": _frames({8: 42, 64: 98}, "frames", "34 + P"),
    "delay": _frames({8: 24, 64: 80}, "steps", "16 + P; then an output every 2nd step"),
}

_X3D_S_PROTOCOL = InputProtocol(frames=13, sampling_rate=6, short_side=160, crop=160)
_X3D_M_PROTOCOL = InputProtocol(frames=16, sampling_rate=5, short_side=224, crop=224)
_X3D_L_PROTOCOL = InputProtocol(frames=16, sampling_rate=5, short_side=312, crop=312)
_SLOW_PROTOCOL = InputProtocol(frames=8, sampling_rate=8, short_side=256, crop=256)
# co3d's CoI3D script keeps the default 0.45/0.225 (its I3D clip baseline used ImageNet's)
_I3D_PROTOCOL = InputProtocol(frames=8, sampling_rate=8, short_side=224, crop=224)


class CoX3D_S_Weights(WeightsEnum):  # noqa: N801 - torchvision naming
    """CoX3D-S checkpoints (X3D-S weights; 13 × 6 frames, 160² crop)."""

    KINETICS400_PYSLOWFAST = Weights(
        url=_PYSLOWFAST_X3D_ROOT + "x3d_s.pyth",
        sha256=None,
        source_format="pyslowfast",
        transforms=_X3D_S_PROTOCOL,
        meta=_meta(
            _X3D_S_ARCH, _top1({13: 60.18, 64: 67.33}, _CO3D_FIGURE), "cox3d_s", _PYSLOWFAST
        ),
    )
    KINETICS400_PYTORCHVIDEO = Weights(
        url=_PYTORCHVIDEO_ROOT + "X3D_S.pyth",
        sha256=None,
        source_format="pytorchvideo",
        transforms=_X3D_S_PROTOCOL,
        meta=_meta(_X3D_S_ARCH, _top1({}, _CO3D_FIGURE, _NOT_PUBLISHED_X3D), None, _PYTORCHVIDEO),
    )
    DEFAULT = KINETICS400_PYSLOWFAST


class CoX3D_M_Weights(WeightsEnum):  # noqa: N801
    """CoX3D-M checkpoints (X3D-M weights; 16 × 5 frames, 224² crop)."""

    KINETICS400_PYSLOWFAST = Weights(
        url=_PYSLOWFAST_X3D_ROOT + "x3d_m.pyth",
        sha256=None,
        source_format="pyslowfast",
        transforms=_X3D_M_PROTOCOL,
        meta=_meta(
            _X3D_M_ARCH, _top1({16: 62.80, 64: 71.03}, _CO3D_FIGURE), "cox3d_m", _PYSLOWFAST
        ),
    )
    KINETICS400_PYTORCHVIDEO = Weights(
        url=_PYTORCHVIDEO_ROOT + "X3D_M.pyth",
        sha256=None,
        source_format="pytorchvideo",
        transforms=_X3D_M_PROTOCOL,
        meta=_meta(_X3D_M_ARCH, _top1({}, _CO3D_FIGURE, _NOT_PUBLISHED_X3D), None, _PYTORCHVIDEO),
    )
    DEFAULT = KINETICS400_PYSLOWFAST


class CoX3D_L_Weights(WeightsEnum):  # noqa: N801
    """CoX3D-L checkpoints (X3D-L weights; 16 × 5 frames, 312² crop)."""

    KINETICS400_PYSLOWFAST = Weights(
        url=_PYSLOWFAST_X3D_ROOT + "x3d_l.pyth",
        sha256=None,
        source_format="pyslowfast",
        transforms=_X3D_L_PROTOCOL,
        meta=_meta(
            _X3D_L_ARCH, _top1({16: 63.03, 64: 71.61}, _CO3D_FIGURE), "cox3d_l", _PYSLOWFAST
        ),
    )
    KINETICS400_PYTORCHVIDEO = Weights(
        url=_PYTORCHVIDEO_ROOT + "X3D_L.pyth",
        sha256=None,
        source_format="pytorchvideo",
        transforms=_X3D_L_PROTOCOL,
        meta=_meta(_X3D_L_ARCH, _top1({}, _CO3D_FIGURE, _NOT_PUBLISHED_X3D), None, _PYTORCHVIDEO),
    )
    DEFAULT = KINETICS400_PYSLOWFAST


class CoSlow_Weights(WeightsEnum):  # noqa: N801
    """CoSlow checkpoints (Slow-8×8-R50 weights; 8 × 8 frames, 256² crop)."""

    KINETICS400_PYTORCHVIDEO = Weights(
        url=_PYTORCHVIDEO_ROOT + "SLOW_8x8_R50.pyth",
        sha256=None,
        source_format="pytorchvideo",
        transforms=_SLOW_PROTOCOL,
        meta=_meta(_SLOW_ARCH, _top1({8: 65.90, 64: 73.05}, _CO3D_FIGURE), "coslow", _PYTORCHVIDEO),
    )
    DEFAULT = KINETICS400_PYTORCHVIDEO


class CoI3D_Weights(WeightsEnum):  # noqa: N801
    """CoI3D checkpoints (I3D-R50 8×8 weights; 8 × 8 frames, 224² crop)."""

    KINETICS400_CAFFE2 = Weights(
        url=_I3D_CAFFE2_URL,
        sha256=None,
        source_format="caffe2",
        transforms=_I3D_PROTOCOL,
        meta=_meta(_I3D_ARCH, _top1({8: 59.58, 64: 56.86}, _CO3D_FIGURE), "coi3d", _CAFFE2),
    )
    KINETICS400_PYTORCHVIDEO = Weights(
        url=_PYTORCHVIDEO_ROOT + "I3D_8x8_R50.pyth",
        sha256=None,
        source_format="pytorchvideo",
        transforms=_I3D_PROTOCOL,
        meta=_meta(
            _I3D_ARCH,
            _top1(
                {},
                _CO3D_FIGURE,
                "No continual accuracy was published for this file (co3d loaded the Caffe2 .pkl); "
                "the continual-inference README's 64.0 beside it is I3D's clip accuracy (§6.2).",
            ),
            None,
            _PYTORCHVIDEO,
        ),
    )
    DEFAULT = KINETICS400_CAFFE2


# --------------------------------------------------------------------------------------------
# Fetching: cache, download, checksum
# --------------------------------------------------------------------------------------------
def sha256sum(path: Union[str, os.PathLike]) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _url_basename(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    return name or "checkpoint"


def cache_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (follows ``TORCH_HOME`` / ``torch.hub.set_dir``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(url: str) -> Path:
    """Where a download of ``url`` is cached: the URL's file name with 8 hex digits of the
    URL's sha256 before the suffix (``x3d_m-1a2b3c4d.pyth``), so that equal file names at
    different URLs (e.g. pytorchvideo's ``X3D_M.pyth`` vs PySlowFast's ``x3d_m.pyth`` on a
    case-insensitive disk) never collide. Place a file there to skip the download."""
    name = _url_basename(url)
    stem, dot, suffix = name.partition(".")
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


def _progress_bar(total: Optional[int], name: str, enabled: bool):
    """A tqdm bar when tqdm is installed and ``enabled``, else a no-op stand-in."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _stream_to_temp(url: str, dest: Path, progress: bool) -> Tuple[Path, str]:
    """Download ``url`` into a temporary file beside ``dest``; return it and its sha256.

    Raises ``WeightsError`` (and leaves no temporary file) when the transfer fails or ends
    before the announced ``Content-Length``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    digest, received = hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": f"cozoo/{__version__}"})
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                with _progress_bar(expected, dest.name, progress) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        if expected is not None and received != expected:
            raise WeightsError(
                f"Download of {url} is truncated: received {received} of {expected} bytes"
            )
    except WeightsError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, ValueError, urllib.error.URLError, http.client.HTTPException) as error:
        tmp.unlink(missing_ok=True)
        raise WeightsError(
            f"Download of {url} failed after {received} bytes: {type(error).__name__}: {error}"
        ) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def download(url: str, sha256: Optional[str] = None, *, progress: bool = True) -> Path:
    """Download ``url`` into the torch hub cache (``cache_path(url)``) and return the path.

    A cached file is reused when it matches ``sha256`` (or when no hash is pinned); a cached
    file that does not match is downloaded again. A download is renamed into place only after
    its hash is checked: on a mismatch it is deleted and ``ChecksumError`` names the file and
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
    tmp, digest = _stream_to_temp(url, dest, progress)
    if sha256 is not None and digest != sha256:
        tmp.unlink(missing_ok=True)
        raise _checksum_error(
            f"{dest.name} downloaded from {url}", sha256, digest, "The download was deleted."
        )
    os.replace(tmp, dest)
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


# --------------------------------------------------------------------------------------------
# Reading: torch.load(weights_only=True) or a numpy-only unpickler
# --------------------------------------------------------------------------------------------
def _numpy_attr(module: str, name: str) -> Callable[[], Any]:
    """A lazy lookup of ``numpy.<module>.<name>``, preferring numpy 2's ``numpy._core`` over
    the deprecated ``numpy.core`` alias that Python-2 era pickles name."""

    def resolve() -> Any:
        for candidate in (f"numpy._core.{module}", f"numpy.core.{module}"):
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"numpy provides no {module}.{name}")

    return resolve


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it for bytes, limited to latin-1."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _numpy_module_attr(name: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module("numpy"), name)


_ALLOWED_GLOBALS: Dict[Tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_attr("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_attr("multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): _numpy_attr("multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): _numpy_attr("multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): _numpy_attr("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): _numpy_attr("numeric", "_frombuffer"),
    ("numpy", "ndarray"): _numpy_module_attr("ndarray"),
    ("numpy", "dtype"): _numpy_module_attr("dtype"),
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Reconstructs plain containers, strings, numbers and numpy arrays/scalars; refuses any
    other global (so no function can be called and no class instantiated)."""

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise UnsafeCheckpointError(
                f"refused to unpickle global {module}.{name}: only numpy arrays, numpy scalars "
                f"and plain containers are allowed in a Caffe2 checkpoint"
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(f"refused persistent id {pid!r} in a Caffe2 checkpoint")


def load_caffe2_pickle(path: Union[str, os.PathLike]) -> Any:
    """Unpickle a Caffe2/Detectron ``.pkl`` (Python-2 pickles: strings read as latin-1) with
    the numpy-only unpickler. Raises ``UnsafeCheckpointError`` on any other global."""
    with open(path, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except UnsafeCheckpointError as error:
            raise UnsafeCheckpointError(f"Refused to load {path}: {error}") from None


def _looks_like_torch_file(path: Path) -> bool:
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(len(_TORCH_LEGACY_MAGIC)) == _TORCH_LEGACY_MAGIC


def _torch_load(path: Path) -> Any:
    if not _looks_like_torch_file(path):
        raise WeightsError("neither a zip archive nor torch's legacy format")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _refused_global(str(error))
        if reason is None:
            raise
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it holds objects other than tensors and plain containers, "
            f"and cozoo reads checkpoints only with torch.load(weights_only=True). "
            f"torch says: {reason}"
        ) from None


def _refused_global(message: str) -> Optional[str]:
    """The line of a ``weights_only`` failure that names a refused global, if that is why
    (other failures, e.g. an unsupported opcode in a damaged file, are corruption)."""
    for line in message.splitlines():
        if "Unsupported global" in line or "not an allowed global" in line:
            return line.strip().replace("WeightsUnpickler error: ", "")[:300]
    return None


def read_checkpoint(path: Union[str, os.PathLike]) -> Any:
    """The object stored in a checkpoint file, read without running code from it.

    torch files (zip or legacy format, whatever the suffix; ``.pyth``, ``.pt``, ``.pth``, ...)
    go through ``torch.load(weights_only=True, map_location="cpu")``; other ``.pkl``/``.pickle``
    files through the numpy-only unpickler. A file that cannot be parsed raises
    ``WeightsError`` ("corrupt or truncated"); one holding other objects raises
    ``UnsafeCheckpointError``."""
    path = Path(path)
    try:
        if path.suffix.lower() in _PICKLE_SUFFIXES and not _looks_like_torch_file(path):
            return load_caffe2_pickle(path)
        return _torch_load(path)
    except UnsafeCheckpointError:
        raise
    except Exception as error:  # any parse failure of an untrusted file
        raise WeightsError(
            f"Could not read checkpoint {path} (corrupt or truncated?): "
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from error


# --------------------------------------------------------------------------------------------
# Interpreting: state dict extraction and format detection
# --------------------------------------------------------------------------------------------
def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(k, str) for k in obj)


def _to_tensor(value: Any) -> Any:
    """numpy arrays/scalars of numbers → tensors (native byte order); anything else unchanged."""
    import numpy as np

    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biufc":
        array = np.array(value, dtype=value.dtype.newbyteorder("="), copy=True)
        return torch.from_numpy(array) if array.ndim else torch.tensor(array.item())
    return value


def _caffe2_blobs(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    blobs = checkpoint["blobs"]
    if not isinstance(blobs, Mapping):
        raise WeightsError(f"Caffe2 checkpoint: 'blobs' is a {type(blobs).__name__}, not a dict")
    return {str(k): _to_tensor(v) for k, v in blobs.items()}


def detect_format(checkpoint: Any) -> str:
    """The key layout of a checkpoint (the object read from the file): ``"caffe2"`` for a
    dict with ``"blobs"``, ``"pyslowfast"`` for ``s1.``... keys, ``"pytorchvideo"`` for
    ``blocks.``... keys, else ``"cozoo"``."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("blobs"), Mapping):
        return "caffe2"
    keys = list(extract_state_dict(checkpoint, "cozoo"))
    if any(k.startswith("s1.") for k in keys):
        return "pyslowfast"
    if any(k.startswith("blocks.") for k in keys):
        return "pytorchvideo"
    return "cozoo"


def extract_state_dict(checkpoint: Any, source_format: str) -> Dict[str, Any]:
    """The state dict inside a checkpoint: the Caffe2 ``blobs`` (as tensors) for ``"caffe2"``,
    else ``checkpoint["model_state"]``, ``checkpoint["state_dict"]`` or the checkpoint itself
    when it is a bare state dict."""
    if source_format == "caffe2":
        if not isinstance(checkpoint, Mapping) or "blobs" not in checkpoint:
            raise WeightsError("A Caffe2 checkpoint must be a dict with a 'blobs' dict")
        return _caffe2_blobs(checkpoint)
    if isinstance(checkpoint, Mapping):
        for key in ("model_state", "state_dict"):
            if _is_state_dict(checkpoint.get(key)):
                return dict(checkpoint[key])
        if _is_state_dict(checkpoint) and all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()
        ):
            return dict(checkpoint)
        raise WeightsError(
            "No state dict found in the checkpoint (looked for 'model_state', 'state_dict' and "
            f"a bare dict of tensors); top-level keys: {_listing(list(checkpoint))}"
        )
    raise WeightsError(f"A checkpoint must be a dict, got {type(checkpoint).__name__}")


def load_checkpoint(
    source: Union[str, os.PathLike, Weights, WeightsEnum],
    *,
    sha256: Optional[str] = None,
    source_format: Optional[str] = None,
    progress: bool = True,
) -> Tuple[Dict[str, Any], str]:
    """Fetch, verify and read a checkpoint; return ``(state_dict, source_format)``.

    ``source``: a ``Weights`` entry or member (its url, sha256 and format are used), a local
    path, a ``file://`` or an http(s) URL. ``source_format`` overrides the detection. A download
    that cannot be read is removed from the cache, so the next call fetches it again."""
    if isinstance(source, WeightsEnum):
        source = source.value
    if isinstance(source, Weights):
        location, sha256 = source.url, source.sha256
        source_format = source_format or source.source_format
    else:
        location = os.fspath(source)
    if source_format is not None and source_format not in SOURCE_FORMATS:
        raise ValueError(f"source_format must be one of {SOURCE_FORMATS}, got {source_format!r}")
    path = fetch(location, sha256, progress=progress)
    try:
        checkpoint = read_checkpoint(path)
    except UnsafeCheckpointError:
        raise
    except WeightsError as error:
        if path.parent == cache_dir() and path.is_file():
            path.unlink()
            raise WeightsError(f"{error}\nThe cached download was deleted.") from error.__cause__
        raise
    fmt = source_format or detect_format(checkpoint)
    return extract_state_dict(checkpoint, fmt), fmt


# --------------------------------------------------------------------------------------------
# Loading into a model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """A resolved ``weights=`` argument."""

    location: str
    sha256: Optional[str]
    source_format: Optional[str]
    label: str


def _resolve(weights: Any, enum_cls: Optional[Type[WeightsEnum]]) -> _Source:
    """Turn a ``weights=`` argument into a location (+ pinned hash and format, if known)."""
    if isinstance(weights, WeightsEnum):
        if enum_cls is not None and not isinstance(weights, enum_cls):
            raise TypeError(
                f"{weights!r} are not weights of this model; use a member of {enum_cls.__name__} "
                f"({', '.join(enum_cls.__members__)})"
            )
        return _resolve_entry(weights.value, repr(weights))
    if isinstance(weights, Weights):
        return _resolve_entry(weights, weights.url)
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise TypeError(
            f"weights must be a WeightsEnum member, its name, a path or a URL, got {weights!r}"
        )
    if enum_cls is not None and enum_cls.is_member_name(weights):
        member = enum_cls.verify(weights)
        return _resolve_entry(member.value, repr(member))
    scheme = urllib.parse.urlparse(weights).scheme
    if scheme in ("http", "https", "file"):
        return _Source(weights, None, None, weights)
    if Path(weights).expanduser().is_file():
        return _Source(weights, None, None, weights)
    raise ValueError(_unknown_weights_message(weights, enum_cls))


def _resolve_entry(entry: Weights, label: str) -> _Source:
    return _Source(entry.url, entry.sha256, entry.source_format, f"{label} ({entry.url})")


def _unknown_weights_message(weights: str, enum_cls: Optional[Type[WeightsEnum]]) -> str:
    if enum_cls is None:
        names = "weights names need the model's WeightsEnum (create_model(name, weights=...))"
    else:
        names = f"the weights of this model are {', '.join(enum_cls.__members__)}"
    return f"weights={weights!r} is neither an existing file nor a URL; {names}"


def _shape(value: Any) -> Optional[Tuple[int, ...]]:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else None


def _listing(keys: List[str], limit: int = MAX_LISTED_KEYS) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... and {len(keys) - limit} more" if len(keys) > limit else "")


def _section(title: str, lines: List[str], limit: int = MAX_LISTED_KEYS) -> List[str]:
    if not lines:
        return []
    more = [f"    ... and {len(lines) - limit} more"] if len(lines) > limit else []
    return [f"  {title} ({len(lines)}):"] + [f"    {line}" for line in lines[:limit]] + more


def state_dict_diff(
    expected: Mapping[str, Any], actual: Mapping[str, Any]
) -> Tuple[List[str], List[str], List[Tuple[str, Any, Any]]]:
    """``(missing, unexpected, misshaped)`` of ``actual`` against ``expected``; misshaped
    entries are ``(key, actual_shape, expected_shape)``."""
    missing = [k for k in expected if k not in actual]
    unexpected = [k for k in actual if k not in expected]
    misshaped = [
        (k, _shape(actual[k]), _shape(expected[k]))
        for k in expected
        if k in actual and _shape(actual[k]) != _shape(expected[k])
    ]
    return missing, unexpected, misshaped


def _mismatch_message(model: nn.Module, label: str, fmt: str, diff: Tuple) -> str:
    missing, unexpected, misshaped = diff
    head = (
        f"Checkpoint {label} (format {fmt!r}) does not fit {type(model).__name__}: "
        f"{len(missing)} missing, {len(unexpected)} unexpected, {len(misshaped)} misshaped key(s)"
    )
    shaped = [
        f"{key}: {_fmt_shape(got)} in the checkpoint, {_fmt_shape(want)} in the model"
        for key, got, want in misshaped
    ]
    lines = [head]
    lines += _section("missing from the checkpoint", missing)
    lines += _section("unexpected in the checkpoint", unexpected)
    lines += _section("misshaped", shaped)
    return "\n".join(lines)


def _fmt_shape(shape: Optional[Tuple[int, ...]]) -> str:
    return "no shape" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def _convert(model: nn.Module, state: Dict[str, Any], fmt: str, label: str) -> Dict[str, Any]:
    convert = getattr(model, "convert_state_dict", None)
    if convert is None:
        if fmt != "cozoo":
            raise WeightsError(
                f"{type(model).__name__} has no convert_state_dict, so it cannot load "
                f"the {fmt!r} checkpoint {label}"
            )
        return state
    try:
        return convert(state, fmt)
    except Exception as error:
        raise WeightsError(
            f"{type(model).__name__}.convert_state_dict(state, {fmt!r}) failed on {label}: "
            f"{type(error).__name__}: {error}"
        ) from error


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, Any], label: str = "state dict", fmt: str = "cozoo"
) -> None:
    """``model.load_state_dict(state, strict=True)``, raising ``StateDictMismatchError`` with a
    readable diff (missing, unexpected and misshaped keys, each list truncated) on a mismatch."""
    diff = state_dict_diff(model.state_dict(), state)
    if any(diff):
        raise StateDictMismatchError(_mismatch_message(model, label, fmt, diff))
    model.load_state_dict(state, strict=True)


def load_weights(
    model: nn.Module,
    weights: Union[None, str, os.PathLike, Weights, WeightsEnum],
    enum: Optional[Type[WeightsEnum]] = None,
    *,
    progress: bool = True,
) -> nn.Module:
    """Load ``weights`` into ``model`` (strictly) and return the model.

    ``weights``: None (nothing is loaded), a member of ``enum``, its name or ``"DEFAULT"``, a
    local path, a ``file://`` URL or an http(s) URL. Members bring their pinned sha256 and
    ``source_format``; for paths and URLs the format is ``"cozoo"`` when the keys are exactly
    the model's own, else detected from the content (``detect_format``). The state dict is
    passed through ``model.convert_state_dict(state, fmt)`` (models without one accept
    ``"cozoo"`` checkpoints as they are), then loaded with ``strict=True``;
    ``StateDictMismatchError`` lists what does not fit.
    """
    if weights is None:
        return model
    source = _resolve(weights, enum)
    state, fmt = load_checkpoint(
        source.location,
        sha256=source.sha256,
        source_format=source.source_format,
        progress=progress,
    )
    if (
        source.source_format is None
        and fmt != "cozoo"
        and state.keys() == model.state_dict().keys()
    ):
        fmt = "cozoo"  # already the model's own keys (whatever their prefixes look like)
    converted = _convert(model, state, fmt, source.label)
    load_state_dict_strict(model, converted, source.label, fmt)
    logger.info(f"Loaded {source.label} ({fmt}) into {type(model).__name__}")
    return model
