"""Weights entries (``Weights`` / ``WeightsEnum``) and the code behind every ``weights=``.

One ``Weights`` entry per published checkpoint file, grouped per model in a ``WeightsEnum``
that lives beside the model's builders (the torchvision multi-weight API)::

    model = cox3d_m(weights=CoX3D_M_Weights.DEFAULT)          # or weights="DEFAULT"
    model = cox3d_m(weights="KINETICS400_PYTORCHVIDEO")        # a member's name
    model = cox3d_m(weights="/data/x3d_m.pyth")                # a local file, or file:// URL
    model = cox3d_m(weights="https://example.org/my_run.pth")  # any http(s) URL
    model = cox3d_m(weights="runs/cox3d_m/<run>/checkpoints/last.ckpt")   # a cozoo.train run

What happens behind ``weights=`` (``build_model``, ``load_weights``)::

    resolve ───> fetch ──────────> read ──────────────> unwrap ──> detect ──> convert ──> strict
    member,      cached download   torch.load(          state_dict, model's    model.convert_  load
    name, path,  (torch hub dir),  weights_only=True)   model_state, detect_   state_dict(
    URL          sha256 verified   or numpy-only        blobs, bare source_    state, fmt)
                                   unpickler (.pkl)     dict        format

A member brings its pinned sha256, its ``source_format`` and its meta: the builder takes
``num_classes`` and ``meta.model_kwargs`` from it. A checkpoint written by ``cozoo.train`` brings
the model's configuration in its hyper-parameters: the builder takes the architecture kwargs
(``num_classes``, ``pool_size``, ...) from there, so ``weights=<run>/checkpoints/last.ckpt``
builds the model the run trained. Keyword arguments given to the builder win (and a
contradiction with a member's meta is an error).
"""

from __future__ import annotations

import enum
import inspect
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Type, TypeVar, Union

from torch import nn

from cozoo.co.logging import getLogger

from ._errors import UnsafeCheckpointError, WeightsError
from ._hub import cache_dir, fetch, read_checkpoint, url_basename
from ._keys import load_state_dict_strict, strip_wrapper_prefix, unwrap
from ._meta import InputSpec, WeightsMeta

__all__ = [
    "Weights",
    "WeightsEnum",
    "build_model",
    "load_checkpoint",
    "load_weights",
    "read_weights_file",
    "run_model_kwargs",
]

logger = getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FORMAT_RE = re.compile(r"^[a-z][a-z0-9_]*$")

ModelT = TypeVar("ModelT", bound=nn.Module)


@dataclass(frozen=True)
class Weights:
    """One published checkpoint file.

    ``url``: where it is released (http(s) or ``file://``), or None when the file has no direct
    URL (load a downloaded copy with ``weights=<path>``); ``sha256``: the full hex digest of the
    file, or None while unknown (the loader then reports the hash it computed);
    ``source_format``: the key layout of the file (one of the model's ``source_formats``, e.g.
    ``"pyslowfast"``); ``meta``: the published facts (``WeightsMeta``).
    """

    url: Optional[str]
    sha256: Optional[str]
    source_format: str
    meta: WeightsMeta

    def __post_init__(self) -> None:
        if self.url is not None:
            scheme = urllib.parse.urlparse(self.url).scheme
            if scheme not in ("http", "https", "file"):
                raise ValueError(f"Weights.url must be an http(s) or file:// URL, got {self.url!r}")
        if self.sha256 is not None and not _SHA256_RE.match(self.sha256):
            raise ValueError(
                f"Weights.sha256 must be 64 lowercase hex digits or None, got {self.sha256!r}"
            )
        if not isinstance(self.source_format, str) or not _FORMAT_RE.match(self.source_format):
            raise ValueError(
                "Weights.source_format must be a lowercase name such as 'pyslowfast', "
                f"got {self.source_format!r}"
            )
        if not isinstance(self.meta, WeightsMeta):
            raise TypeError(f"Weights.meta must be a WeightsMeta, got {type(self.meta).__name__}")

    def __hash__(self) -> int:  # meta holds dicts: hash the identifying fields only
        return hash((self.url, self.sha256, self.source_format))

    @property
    def transforms(self) -> InputSpec:
        """The input protocol the published numbers were measured with (``meta.input``)."""
        return self.meta.input

    @property
    def file_name(self) -> Optional[str]:
        """The file name at the end of ``url``."""
        return None if self.url is None else url_basename(self.url)


class WeightsEnum(enum.Enum):
    """Base of the per-model enums of ``Weights``; ``DEFAULT`` is an alias of the recommended
    member. Members expose the fields of their ``Weights`` (``member.url``, ``member.meta``...)."""

    @classmethod
    def _member_name(cls, name: str) -> str:
        return name[len(cls.__name__) + 1 :] if name.startswith(cls.__name__ + ".") else name

    @classmethod
    def verify(cls, obj: Union[None, str, WeightsEnum]) -> Optional[WeightsEnum]:
        """The member ``obj`` names: a member, its name (``"KINETICS400_PYSLOWFAST"``, also
        ``"CoX3D_M_Weights.KINETICS400_PYSLOWFAST"``), ``"DEFAULT"``, or None (returned as is)."""
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            name = cls._member_name(obj)
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
        return cls._member_name(name) in cls.__members__

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self._name_}"

    @property
    def url(self) -> Optional[str]:
        return self.value.url

    @property
    def sha256(self) -> Optional[str]:
        return self.value.sha256

    @property
    def source_format(self) -> str:
        return self.value.source_format

    @property
    def transforms(self) -> InputSpec:
        return self.value.transforms

    @property
    def meta(self) -> WeightsMeta:
        return self.value.meta

    def get_state_dict(self, progress: bool = True) -> Dict[str, Any]:
        """The file's state dict in its ``source_format`` (downloaded, verified, unconverted)."""
        return load_checkpoint(self, progress=progress)


# --------------------------------------------------------------------------------------------
# Resolving and reading a weights= argument
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """A resolved ``weights=`` argument: a member (``entry``) or a ``location``."""

    location: str
    label: str
    entry: Optional[Weights] = None


def _resolve(weights: Any, enum_cls: Optional[Type[WeightsEnum]]) -> _Source:
    """Turn a ``weights=`` argument into a member or a location."""
    if isinstance(weights, WeightsEnum):
        if enum_cls is not None and not isinstance(weights, enum_cls):
            raise TypeError(
                f"{weights!r} are not weights of this model; use a member of {enum_cls.__name__} "
                f"({', '.join(enum_cls.__members__)})"
            )
        return _entry_source(weights.value, repr(weights))
    if isinstance(weights, Weights):
        return _entry_source(weights, str(weights.url))
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise TypeError(
            f"weights must be a WeightsEnum member, its name, a path or a URL, got {weights!r}"
        )
    if enum_cls is not None and enum_cls.is_member_name(weights):
        member = enum_cls.verify(weights)
        return _entry_source(member.value, repr(member))
    if urllib.parse.urlparse(weights).scheme in ("http", "https", "file"):
        return _Source(weights, weights)
    if Path(weights).expanduser().is_file():
        return _Source(weights, weights)
    raise ValueError(_unknown_weights_message(weights, enum_cls))


def _entry_source(entry: Weights, label: str) -> _Source:
    if entry.url is None:
        raise WeightsError(
            f"{label} has no public download URL ({entry.meta.source}); download the file and "
            "pass its path: weights=/path/to/file"
        )
    return _Source(entry.url, f"{label} ({entry.url})", entry)


def _unknown_weights_message(weights: str, enum_cls: Optional[Type[WeightsEnum]]) -> str:
    if enum_cls is None:
        names = "weights names need the model's WeightsEnum (create_model(name, weights=...))"
    else:
        names = f"the weights of this model are {', '.join(enum_cls.__members__)}"
    return f"weights={weights!r} is neither an existing file nor a URL; {names}"


def read_weights_file(location: str, sha256: Optional[str] = None, *, progress: bool = True) -> Any:
    """Fetch (verify) and read the checkpoint at ``location``: the object stored in the file.

    A download that cannot be read is removed from the cache, so the next call fetches it
    again."""
    path = fetch(location, sha256, progress=progress)
    try:
        return read_checkpoint(path)
    except UnsafeCheckpointError:
        raise
    except WeightsError as error:
        if path.parent == cache_dir() and path.is_file():
            path.unlink()
            raise WeightsError(f"{error}\nThe cached download was deleted.") from error.__cause__
        raise


def load_checkpoint(
    source: Union[str, os.PathLike, Weights, WeightsEnum],
    *,
    sha256: Optional[str] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """The state dict of a checkpoint (fetched, verified, read, unwrapped; keys as stored).

    ``source``: a ``Weights`` entry or member (its url and sha256 are used), a local path, a
    ``file://`` or an http(s) URL."""
    if isinstance(source, (Weights, WeightsEnum)):
        resolved = _resolve(source, None)
        location, sha256 = resolved.location, resolved.entry.sha256
    else:
        location = os.fspath(source)
    return unwrap(read_weights_file(location, sha256, progress=progress))


# --------------------------------------------------------------------------------------------
# Loading into a model
# --------------------------------------------------------------------------------------------
def _detect(model: nn.Module, state: Mapping[str, Any]) -> str:
    """The source format of ``state`` for ``model``: ``"cozoo"`` when the keys are exactly the
    model's own, else the model's ``detect_source_format(state)`` (``"cozoo"`` without one)."""
    if state.keys() == model.state_dict().keys():
        return "cozoo"
    detect: Optional[Callable[[Mapping[str, Any]], str]] = getattr(
        model, "detect_source_format", None
    )
    return "cozoo" if detect is None else detect(state)


def _convert(model: nn.Module, state: Dict[str, Any], fmt: str, label: str) -> Dict[str, Any]:
    formats = getattr(model, "source_formats", ("cozoo",))
    if fmt not in formats:
        raise WeightsError(
            f"{type(model).__name__} cannot load the {fmt!r} checkpoint {label}; it reads "
            f"{', '.join(map(repr, formats))}"
        )
    convert = getattr(model, "convert_state_dict", None)
    if convert is None:
        return state
    try:
        return convert(state, fmt)
    except Exception as error:
        raise WeightsError(
            f"{type(model).__name__}.convert_state_dict(state, {fmt!r}) failed on {label}: "
            f"{type(error).__name__}: {error}"
        ) from error


def _load_state(model: nn.Module, checkpoint: Any, source: _Source) -> None:
    state = strip_wrapper_prefix(unwrap(checkpoint), list(model.state_dict()))
    fmt = source.entry.source_format if source.entry is not None else _detect(model, state)
    converted = _convert(model, state, fmt, source.label)
    load_state_dict_strict(model, converted, source.label, fmt)
    logger.info(f"Loaded {source.label} ({fmt}) into {type(model).__name__}")


def load_weights(
    model: ModelT,
    weights: Union[None, str, os.PathLike, Weights, WeightsEnum],
    enum: Optional[Type[WeightsEnum]] = None,
    *,
    progress: bool = True,
) -> ModelT:
    """Load ``weights`` into ``model`` (strictly) and return the model.

    ``weights``: None (nothing is loaded), a member of ``enum``, its name or ``"DEFAULT"``, a
    local path, a ``file://`` URL or an http(s) URL. Members bring their pinned sha256 and
    ``source_format``; for paths and URLs the format is ``"cozoo"`` when the keys are exactly
    the model's own, else the model's ``detect_source_format``. The state dict is passed
    through ``model.convert_state_dict(state, fmt)`` (models without one accept ``"cozoo"``
    checkpoints as they are), then loaded with ``strict=True``; ``StateDictMismatchError``
    lists what does not fit."""
    if weights is None:
        return model
    source = _resolve(weights, enum)
    sha256 = None if source.entry is None else source.entry.sha256
    _load_state(model, read_weights_file(source.location, sha256, progress=progress), source)
    return model


# --------------------------------------------------------------------------------------------
# The builder helper
# --------------------------------------------------------------------------------------------
_TASK_ONLY_KEYS = ("name", "weights", "init")
_LEGACY_MODEL_KEYS = ("num_classes", "pool_size", "temporal_fill", "dropout")


def run_model_kwargs(checkpoint: Any) -> Dict[str, Any]:
    """The model's builder kwargs saved in a ``cozoo.train`` checkpoint (``{}`` for others):
    ``hyper_parameters["model"]`` without its name and weights (older checkpoints: the flat
    ``num_classes``, ``pool_size``, ``temporal_fill``, ``dropout``)."""
    if not isinstance(checkpoint, Mapping):
        return {}
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        return {}
    model = hparams.get("model")
    if isinstance(model, Mapping):
        return {k: v for k, v in model.items() if k not in _TASK_ONLY_KEYS and v is not None}
    if "arch" in hparams:
        return {k: hparams[k] for k in _LEGACY_MODEL_KEYS if hparams.get(k) is not None}
    return {}


def _accepted(model_cls: Callable[..., nn.Module], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The items of ``kwargs`` that ``model_cls`` takes."""
    params = inspect.signature(model_cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(kwargs)
    names = {p.name for p in params}
    return {k: v for k, v in kwargs.items() if k in names}


def _meta_kwargs(meta: WeightsMeta, given: Dict[str, Any], label: str) -> Dict[str, Any]:
    """``num_classes`` and ``meta.model_kwargs`` of a member; a contradicting given value is an
    error (the checkpoint cannot be loaded into that model)."""
    needed = {"num_classes": meta.num_classes, **meta.model_kwargs}
    for key, value in needed.items():
        if key in given and given[key] != value:
            raise ValueError(
                f"weights {label} need {key}={value!r}, got {key}={given[key]!r}; leave "
                f"{key} out (it is taken from the weights) or load other weights"
            )
    return {**given, **needed}


def build_model(
    model_cls: Callable[..., ModelT],
    enum_cls: Optional[Type[WeightsEnum]],
    weights: Any = None,
    /,
    *,
    progress: bool = True,
    **kwargs: Any,
) -> ModelT:
    """Build ``model_cls(**kwargs)`` and load ``weights`` into it: the one helper behind every
    registered builder (``def cox3d_m(*, weights=None, **kw): return build_model(CoX3D,
    CoX3D_M_Weights, weights, depths=..., **kw)``).

    The kwargs a checkpoint needs are taken from it (see the module docstring); given kwargs
    win over a run checkpoint's, and must agree with a member's meta."""
    if weights is None:
        return model_cls(**kwargs)
    source = _resolve(weights, enum_cls)
    if source.entry is not None:
        kwargs = _meta_kwargs(source.entry.meta, kwargs, source.label)
        checkpoint = read_weights_file(source.location, source.entry.sha256, progress=progress)
    else:
        checkpoint = read_weights_file(source.location, progress=progress)
        saved = _accepted(model_cls, run_model_kwargs(checkpoint))
        if saved:
            logger.info(f"{source.label}: building with the run's {saved} (given: {kwargs})")
        kwargs = {**saved, **kwargs}
    model = model_cls(**kwargs)
    _load_state(model, checkpoint, source)
    return model
