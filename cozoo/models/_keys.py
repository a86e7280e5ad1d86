"""Checkpoint keys: unwrapping the state dict, renaming rules, strict loading with a readable diff.

A checkpoint file holds its weights in one of a few wrappers; :func:`unwrap` finds them::

    Lightning .ckpt      {"state_dict": {"model.stem...": t}, "hyper_parameters": ..., ...}
    PySlowFast / pyvideo {"model_state": {...}, "optimizer_state": ..., "epoch": ...}
    other trainers       {"model": {...}}            (also "module." / "_orig_mod." prefixes)
    Caffe2 / Detectron   {"blobs": {"conv1_w": ndarray, ...}}
    bare                 {"stem.conv.weight": t, ...}

:class:`KeyRules` renames the keys of another code base to a model's (logical) keys, and
:func:`load_state_dict_strict` loads them, listing missing, unexpected and misshaped keys when
they do not fit.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._errors import StateDictMismatchError, WeightsError

__all__ = [
    "MAX_LISTED_KEYS",
    "WRAPPER_KEYS",
    "WRAPPER_PREFIXES",
    "KeyRules",
    "load_state_dict_strict",
    "prefixed_rename",
    "state_dict_diff",
    "strip_wrapper_prefix",
    "unwrap",
]

MAX_LISTED_KEYS = 12
"""How many keys of each kind a state-dict mismatch message lists before summarising."""

WRAPPER_KEYS: Tuple[str, ...] = ("state_dict", "model_state", "model", "blobs")
"""Keys under which a checkpoint dict may hold its weights, in the order they are tried."""

WRAPPER_PREFIXES: Tuple[str, ...] = ("model.", "module.", "_orig_mod.")
"""Prefixes trainers put before every key: a LightningModule's ``model`` attribute,
``DistributedDataParallel``'s ``module``, ``torch.compile``'s ``_orig_mod``."""


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(k, str) for k in obj)


def _to_tensor(value: Any) -> Any:
    """numpy arrays/scalars of numbers -> tensors owning their memory (native byte order)."""
    import numpy as np

    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biufc":
        array = np.array(value, dtype=value.dtype.newbyteorder("="), copy=True)
        return torch.from_numpy(array) if array.ndim else torch.tensor(array.item())
    return value


def _is_weight(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (Tensor, np.ndarray, np.generic))


def unwrap(checkpoint: Any) -> Dict[str, Any]:
    """The state dict inside a checkpoint (see the module docstring), numpy values as tensors.

    Raises ``WeightsError`` naming the top-level keys when no state dict is found."""
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(f"A checkpoint must be a dict, got {type(checkpoint).__name__}")
    for key in WRAPPER_KEYS:
        inner = checkpoint.get(key)
        if _is_state_dict(inner) and any(_is_weight(v) for v in inner.values()):
            return {k: _to_tensor(v) for k, v in inner.items()}
    if _is_state_dict(checkpoint) and all(_is_weight(v) for v in checkpoint.values()):
        return {k: _to_tensor(v) for k, v in checkpoint.items()}
    keys = [str(k) for k in checkpoint]
    raise WeightsError(
        f"No state dict found in the checkpoint (looked for {', '.join(map(repr, WRAPPER_KEYS))} "
        f"and a bare dict of tensors); top-level keys: {_listing(keys)}"
    )


def strip_wrapper_prefix(state: Mapping[str, Any], own_keys: Sequence[str]) -> Dict[str, Any]:
    """``state`` without a trainer's prefix (``WRAPPER_PREFIXES``) that every key carries and
    the model's own keys do not (repeated: ``module.model.`` goes too)."""
    out = dict(state)
    own = list(own_keys)
    stripped = True
    while stripped and out:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in out) and not all(
                k.startswith(prefix) for k in own
            ):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                stripped = True
    return out


Replacement = Union[str, Callable[["re.Match[str]"], Optional[str]]]


class KeyRules:
    """Ordered renaming rules ``(regex, replacement)``: a key is renamed by the first regex that
    matches it *entirely* (``re.fullmatch``). ``replacement`` is a ``re`` template
    (``r"res\\1.block\\2."``) or a function of the match; it may return None (no rename).

    >>> KeyRules([(r"blocks\\.0\\.norm\\.(.+)", r"stem.norm.\\1")])("blocks.0.norm.weight")
    'stem.norm.weight'
    """

    def __init__(self, rules: Sequence[Tuple[str, Replacement]]):
        self._rules = [(re.compile(pattern), replacement) for pattern, replacement in rules]

    def __call__(self, key: str) -> Optional[str]:
        for pattern, replacement in self._rules:
            match = pattern.fullmatch(key)
            if match is not None:
                return replacement(match) if callable(replacement) else match.expand(replacement)
        return None


def prefixed_rename(prefix: str, rules: KeyRules, rest: str) -> Optional[str]:
    """``prefix + rules(rest)``, or None when ``rules`` do not know ``rest``."""
    renamed = rules(rest)
    return None if renamed is None else prefix + renamed


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------
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


def _fmt_shape(shape: Optional[Tuple[int, ...]]) -> str:
    return "no shape" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


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


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, Any], label: str = "state dict", fmt: str = "cozoo"
) -> None:
    """``model.load_state_dict(state, strict=True)``, raising ``StateDictMismatchError`` with a
    readable diff (missing, unexpected and misshaped keys, each list truncated) on a mismatch."""
    diff = state_dict_diff(model.state_dict(), state)
    if any(diff):
        raise StateDictMismatchError(_mismatch_message(model, label, fmt, diff))
    model.load_state_dict(state, strict=True)
