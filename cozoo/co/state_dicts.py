"""Flat state dicts for containers with unnamed children, and ``PaddingMode``.

Containers name their children ``0``, ``1``, ... so nested containers give keys such as
``"0.1.conv.weight"``. Flattening drops every purely numeric key component::

    "0.0.weight"      -> "weight"
    "1.c1.weight"     -> "c1.weight"
    "0.1.conv.weight" -> "conv.weight"

which lets one checkpoint load into differently nested (but otherwise identical) networks.
Flattening is applied only when the short keys are unique; otherwise a ``UserWarning`` is
issued and the normal state dict is used. Loading maps the short keys back to the module's
own long keys (keys that are not short names of the module, e.g. already long ones, pass
unchanged); when the module's own keys are not collision-free, a warning is issued and the
state dict is loaded as it is.

Three ways to ask for it::

    co.state_dict(net, flatten=True)              co.load_state_dict(net, sd, flatten=True)
    net.state_dict(flatten=True)                  net.load_state_dict(sd, flatten=True)
    with co.flat_state_dict:                      # every container flattens while active
        sd = net.state_dict()
        net.load_state_dict(sd)

Containers get the ``flatten`` argument from the ``FlattenableStateDict`` mixin. Under the
context manager only the root call flattens (the call without a ``destination``): a container
inside a plain ``torch.nn.Module`` contributes normal keys, so that saving and loading through
that module stay symmetric (``nn.Module.load_state_dict`` never calls its children's
``load_state_dict``). An explicit ``flatten=True`` with a ``destination`` flattens this
module's keys (the part after ``prefix``) into ``destination``.
"""

from __future__ import annotations

import enum
import inspect
import sys
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

from torch import nn

__all__ = [
    "FlattenableStateDict",
    "PaddingMode",
    "flat_state_dict",
    "flatten_key",
    "load_state_dict",
    "state_dict",
]


class PaddingMode(str, enum.Enum):
    """Temporal fill of continual layers (``temporal_fill=``). Members equal their values
    (``PaddingMode.ZEROS == "zeros"``)."""

    ZEROS = "zeros"
    REPLICATE = "replicate"
    NEG_INF = "neg_inf"


# --------------------------------------------------------------------------------------------
# The context manager
# --------------------------------------------------------------------------------------------
class _FlatStateDict:
    """``with co.flat_state_dict:`` -- containers' ``state_dict()``/``load_state_dict()``
    flatten while the block is active. Blocks may nest; ``flatten`` tells whether one is
    active (assigning to it switches flattening on/off outside of any block)."""

    def __init__(self) -> None:
        self._depth = 0

    @property
    def flatten(self) -> bool:
        return self._depth > 0

    @flatten.setter
    def flatten(self, value: bool) -> None:
        self._depth = 1 if value else 0

    def __enter__(self) -> _FlatStateDict:
        self._depth += 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._depth = max(self._depth - 1, 0)

    def __bool__(self) -> bool:
        return self.flatten

    def __repr__(self) -> str:
        return f"flat_state_dict(active={self.flatten})"


flat_state_dict = _FlatStateDict()


# --------------------------------------------------------------------------------------------
# Key mapping
# --------------------------------------------------------------------------------------------
def _numeric(part: str) -> bool:
    return part.isascii() and part.isdigit()


def flatten_key(key: str) -> str:
    """``key`` without its purely numeric module components: ``"0.1.conv.weight"`` ->
    ``"conv.weight"``. The last component (the tensor's own name) is always kept, so a
    ``ParameterList`` entry ``"0.3"`` becomes ``"3"``."""
    parts = key.split(".")
    kept = [part for part in parts[:-1] if not _numeric(part)]
    kept.append(parts[-1])
    return ".".join(kept)


def _flat_names(keys: List[str]) -> Optional[List[str]]:
    """The flattened keys, or None when two of them collide."""
    short = [flatten_key(key) for key in keys]
    return short if len(set(short)) == len(short) else None


def _collisions(keys: List[str]) -> List[str]:
    groups: Dict[str, List[str]] = {}
    for key in keys:
        groups.setdefault(flatten_key(key), []).append(key)
    return [f"{short!r} <- {longs}" for short, longs in groups.items() if len(longs) > 1]


_SKIP_FILES = (__file__, inspect.getsourcefile(nn.Module) or "")


def _warn(message: str) -> None:
    """A ``UserWarning`` attributed to the first caller outside this module and torch's
    ``nn.Module`` (the user's ``state_dict``/``load_state_dict`` call)."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2: the caller of _warn
    while frame is not None and frame.f_code.co_filename in _SKIP_FILES:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, UserWarning, stacklevel=level)


# --------------------------------------------------------------------------------------------
# state_dict
# --------------------------------------------------------------------------------------------
def _parse_state_dict_args(args: tuple, kwargs: Dict[str, Any]) -> Tuple[Any, str, bool]:
    """``(destination, prefix, keep_vars)`` from torch's ``state_dict`` call forms (keywords,
    or the deprecated positional ``(destination, prefix, keep_vars)``)."""
    unknown = set(kwargs) - {"destination", "prefix", "keep_vars"}
    if unknown:
        raise TypeError(f"state_dict() got unexpected keyword arguments {sorted(unknown)}")
    if len(args) > 3:
        raise TypeError(f"state_dict() takes at most 3 positional arguments, got {len(args)}")
    values = dict(zip(("destination", "prefix", "keep_vars"), args))
    for name, value in kwargs.items():
        if name in values:
            raise TypeError(f"state_dict() got multiple values for argument {name!r}")
        values[name] = value
    return values.get("destination"), values.get("prefix", ""), values.get("keep_vars", False)


def _flatten_into(
    full: Mapping[str, Any], destination: Optional[Dict[str, Any]], prefix: str
) -> Dict[str, Any]:
    """Flatten the keys of ``full`` (all starting with ``prefix``) into ``destination`` (a
    new ``OrderedDict`` when None), keeping ``prefix`` and the ``_metadata``."""
    keys = list(full.keys())
    relative = [key[len(prefix) :] if key.startswith(prefix) else key for key in keys]
    short = _flat_names(relative)
    taken = set(destination.keys()) if destination is not None else set()
    if short is not None and taken.intersection(prefix + s for s in short):
        short = None
    if short is None:
        collisions = _collisions(relative) or ["keys already present in `destination`"]
        _warn(
            "Unable to flatten the state dict consistently (colliding short keys: "
            + "; ".join(collisions)
            + "). Using the normal state dict."
        )
        names = keys
    else:
        names = [prefix + s for s in short]
    metadata = getattr(full, "_metadata", None)
    if destination is None:
        out: Dict[str, Any] = OrderedDict(zip(names, full.values()))
        if metadata is not None:
            out._metadata = metadata  # type: ignore[attr-defined]
        return out
    destination.update(zip(names, full.values()))
    dest_meta = getattr(destination, "_metadata", None)
    if dest_meta is not None and metadata is not None:
        dest_meta.update(metadata)
    return destination


def _state_dict(
    module: nn.Module,
    raw: Any,
    destination: Any,
    prefix: str,
    keep_vars: bool,
    flatten: bool,
) -> Dict[str, Any]:
    """Shared implementation: ``raw(prefix=..., keep_vars=...)`` gives the normal state
    dict of ``module``; it is flattened when asked for (argument or root call under the
    context manager)."""
    if flatten or (flat_state_dict.flatten and destination is None):
        full = raw(prefix=prefix, keep_vars=keep_vars)
        return _flatten_into(full, destination, prefix)
    return raw(destination=destination, prefix=prefix, keep_vars=keep_vars)


def state_dict(
    module: nn.Module,
    destination: Any = None,
    prefix: str = "",
    keep_vars: bool = False,
    flatten: bool = False,
) -> Dict[str, Any]:
    """``module.state_dict(destination, prefix, keep_vars)``, with keys flattened when
    ``flatten=True`` or inside ``with co.flat_state_dict:`` (without a ``destination``).

    Works for any ``torch.nn.Module``; ``prefix`` is kept as it is, only the module's own key
    components are flattened.
    """
    if isinstance(module, FlattenableStateDict):
        return module.state_dict(
            destination=destination, prefix=prefix, keep_vars=keep_vars, flatten=flatten
        )
    return _state_dict(module, module.state_dict, destination, prefix, keep_vars, flatten)


# --------------------------------------------------------------------------------------------
# load_state_dict
# --------------------------------------------------------------------------------------------
def _unflatten(
    module: nn.Module, raw_state_dict: Any, state_dict: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``state_dict`` with short keys replaced by ``module``'s own long keys."""
    own = list(raw_state_dict(keep_vars=True).keys())
    if _flat_names(own) is None:
        _warn(
            f"Unable to map the flat state dict onto {type(module).__name__}: its own keys "
            "collide when flattened ("
            + "; ".join(_collisions(own))
            + "). Loading the state dict as it is."
        )
        return state_dict
    short_to_long = {flatten_key(key): key for key in own}
    out: Dict[str, Any] = OrderedDict(
        (short_to_long.get(key, key), value) for key, value in state_dict.items()
    )
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def load_state_dict(
    module: nn.Module,
    state_dict: Mapping[str, Any],
    strict: bool = True,
    flatten: bool = False,
    *,
    assign: bool = False,
) -> Any:
    """``module.load_state_dict(state_dict, strict, assign=assign)``, accepting flattened keys
    when ``flatten=True`` or inside ``with co.flat_state_dict:``.

    Returns torch's ``(missing_keys, unexpected_keys)`` named tuple (long key names).
    """
    if isinstance(module, FlattenableStateDict):
        return module.load_state_dict(state_dict, strict, flatten, assign=assign)
    if flatten or flat_state_dict.flatten:
        state_dict = _unflatten(module, module.state_dict, state_dict)
    return module.load_state_dict(state_dict, strict=strict, assign=assign)


# --------------------------------------------------------------------------------------------
# Mixin
# --------------------------------------------------------------------------------------------
class FlattenableStateDict:
    """Mixin for ``torch.nn.Module`` subclasses (containers): ``state_dict(flatten=...)`` and
    ``load_state_dict(..., flatten=...)``, also honouring ``with co.flat_state_dict:``.

    Place it before ``torch.nn.Module`` in the bases (``class C(FlattenableStateDict,
    nn.Sequential)``); it calls the next ``state_dict``/``load_state_dict`` in the MRO for the
    normal behaviour, so every torch call form keeps working.
    """

    def state_dict(self, *args: Any, flatten: bool = False, **kwargs: Any) -> Dict[str, Any]:
        """torch's ``state_dict(destination=None, prefix="", keep_vars=False)``; keys are
        flattened with ``flatten=True`` or in a root call inside ``with co.flat_state_dict:``."""
        if not (flatten or flat_state_dict.flatten):  # fast path: plain torch behaviour
            return super().state_dict(*args, **kwargs)  # type: ignore[misc]
        destination, prefix, keep_vars = _parse_state_dict_args(args, kwargs)
        return _state_dict(
            self,  # type: ignore[arg-type]
            super().state_dict,  # type: ignore[misc]
            destination,
            prefix,
            keep_vars,
            flatten,
        )

    def load_state_dict(
        self,
        state_dict: Mapping[str, Any],
        strict: bool = True,
        flatten: bool = False,
        *,
        assign: bool = False,
    ) -> Any:
        """torch's ``load_state_dict``; flattened keys are mapped back to this module's keys
        with ``flatten=True`` or inside ``with co.flat_state_dict:``. ``flatten`` is the third
        positional argument, as in ``continual-inference``; torch's ``assign`` is keyword-only.
        Returns torch's ``(missing_keys, unexpected_keys)`` named tuple."""
        if flatten or flat_state_dict.flatten:
            state_dict = _unflatten(self, super().state_dict, state_dict)  # type: ignore[misc,arg-type]
        return super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]
