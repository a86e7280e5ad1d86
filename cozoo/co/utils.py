"""Small helpers shared by the continual layers (``continual.utils`` compatible).

``temporary_parameter``  set an attribute (dotted path) for the duration of a ``with`` block
``rgetattr``/``rsetattr`` ``getattr``/``setattr`` along a dotted path (``"block.conv.stride"``)
``flatten``              nested lists/tuples -> flat list (None entries dropped by default)
``num_from``             the ``dim``-th entry of a tuple, or the number itself
``function_repr``        a short text for a callable: its name, or a lambda's source text
``neginf_like``          a tensor like ``t`` filled with ``-inf`` (the lowest value for ints)
``flat_state_dict``      ``with co.utils.flat_state_dict:`` (``co.flat_state_dict``): the
                         containers save and load flat state dicts (``cozoo.co.state_dicts``)
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Sequence, TypeVar, Union

import torch
from torch import Tensor

from .state_dicts import flat_state_dict

__all__ = [
    "flat_state_dict",
    "flatten",
    "function_repr",
    "neginf_like",
    "num_from",
    "rgetattr",
    "rsetattr",
    "temporary_parameter",
]

T = TypeVar("T")

_MISSING = object()


# --------------------------------------------------------------------------------------------
# Attributes along dotted paths
# --------------------------------------------------------------------------------------------
def rgetattr(obj: Any, attr: str, *default: Any) -> Any:
    """``getattr`` along a dotted path: ``rgetattr(m, "a.b.c")`` is ``m.a.b.c``.

    With a ``default`` (one extra positional argument) it is returned where any attribute on
    the path is missing, like ``getattr(obj, name, default)``.
    """
    if len(default) > 1:
        raise TypeError(f"rgetattr expected at most 3 arguments, got {2 + len(default)}")
    try:
        return functools.reduce(getattr, attr.split("."), obj)
    except AttributeError:
        if default:
            return default[0]
        raise


def rsetattr(obj: Any, attr: str, val: Any) -> None:
    """``setattr`` along a dotted path: ``rsetattr(m, "a.b.c", v)`` sets ``m.a.b.c = v``.

    Every attribute before the last must exist (AttributeError otherwise).
    """
    parent, _, name = attr.rpartition(".")
    setattr(rgetattr(obj, parent) if parent else obj, name, val)


def _rdelattr(obj: Any, attr: str) -> None:
    parent, _, name = attr.rpartition(".")
    delattr(rgetattr(obj, parent) if parent else obj, name)


@contextmanager
def temporary_parameter(obj: T, attr: str, val: Any) -> Iterator[T]:
    """Set ``obj.<attr> = val`` inside a ``with`` block and undo it on exit (also on errors).

    ``attr`` may be a dotted path (``"conv.padding"``). An attribute that existed is restored
    to its previous value; one that did not exist is deleted again. A new attribute may sit at
    any depth as long as its parent exists. Yields ``obj``::

        with temporary_parameter(module, "conv.stride", (1,)):
            ...  # module.conv.stride == (1,)
        # previous stride again
    """
    previous = rgetattr(obj, attr, _MISSING)
    rsetattr(obj, attr, val)
    try:
        yield obj
    finally:
        if previous is _MISSING:
            _rdelattr(obj, attr)
        else:
            rsetattr(obj, attr, previous)


# --------------------------------------------------------------------------------------------
# Sequences and numbers
# --------------------------------------------------------------------------------------------
def _flat_items(nested: Any) -> Iterator[Any]:
    if isinstance(nested, (list, tuple)):
        for item in nested:
            yield from _flat_items(item)
    else:
        yield nested


def flatten(nested: Sequence[Any], remove_none: bool = True) -> List[Any]:
    """The leaves of arbitrarily nested lists/tuples, in order, as one flat list.

    ``flatten([1, [None, (2, [3])], 4])`` -> ``[1, 2, 3, 4]``; with ``remove_none=False`` the
    None leaves are kept. Tensors, strings and other objects are leaves.
    """
    items = list(_flat_items(nested))
    if remove_none:
        items = [item for item in items if item is not None]
    return items


def num_from(tuple_or_num: Union[int, float, Sequence[Any]], dim: int = 0) -> Any:
    """``tuple_or_num[dim]`` for a tuple/list/``torch.Size``, otherwise the value itself.

    Reads the temporal entry of properties that are an int or a per-dimension tuple
    (``num_from(conv.stride)`` -> temporal stride).
    """
    if isinstance(tuple_or_num, (tuple, list)):
        return tuple_or_num[dim]
    return tuple_or_num


def function_repr(fn: Callable | None) -> str:
    """A short text for a callable, as used in ``repr``s: a function's name, a lambda's
    source text (``"lambda x: x + 1"``), a ``functools.partial``'s function name, a functor's
    class name; ``""`` for None."""
    if fn is None:
        return ""
    from .closure import function_repr as _function_repr  # lazy: closure imports module

    return _function_repr(fn)


def neginf_like(t: Tensor) -> Tensor:
    """A tensor with ``t``'s shape, dtype and device filled with ``-inf``.

    Integer dtypes cannot hold ``-inf`` and get their lowest value instead; bool gets False.
    """
    if t.dtype == torch.bool:
        return torch.zeros_like(t)
    if t.dtype.is_floating_point or t.dtype.is_complex:
        return torch.full_like(t, float("-inf"))
    return torch.full_like(t, torch.iinfo(t.dtype).min)
