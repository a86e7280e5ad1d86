"""Global modes of the continual modules: which method a call runs, and how steps are traced.

``call_mode`` (a context manager, like ``continual.call_mode``) makes every continual module
called inside it run ``forward``, ``forward_steps`` or ``forward_step``; ``tensor_mode`` and
``static_bookkeeping`` switch the step path to its traceable (export) and compilable forms.
Every mode is a stack, so blocks nest and a block that raises restores what was active.
"""

from __future__ import annotations

import enum
from typing import Optional, Union

from torch import Tensor

__all__ = [
    "CallMode",
    "active_call_mode",
    "call_mode",
    "in_static_bookkeeping",
    "in_tensor_mode",
    "static_bookkeeping",
    "tensor_mode",
    "to_call_mode",
]


class CallMode(str, enum.Enum):
    """Which method ``module(x)`` runs. Compares equal to its string value."""

    FORWARD = "forward"
    FORWARD_STEPS = "forward_steps"
    FORWARD_STEP = "forward_step"

    def __str__(self) -> str:
        return self.value


_MODES_BY_INT = {0: CallMode.FORWARD, 1: CallMode.FORWARD_STEPS, 2: CallMode.FORWARD_STEP}


def to_call_mode(mode: Union[str, int, Tensor, CallMode]) -> CallMode:
    """Parse a call mode given as a string (any case), an int 0/1/2, a 0-d tensor or a CallMode."""
    if isinstance(mode, CallMode):
        return mode
    if isinstance(mode, str):
        try:
            return CallMode(mode.lower())
        except ValueError:
            raise KeyError(
                f"Unknown call_mode {mode!r}; expected one of "
                f"{[m.value for m in CallMode]} or 0/1/2"
            ) from None
    if isinstance(mode, Tensor) and mode.numel() == 1:
        mode = int(mode.item())
    if isinstance(mode, int) and not isinstance(mode, bool) and mode in _MODES_BY_INT:
        return _MODES_BY_INT[mode]
    raise KeyError(
        f"Unknown call_mode {mode!r}; expected one of {[m.value for m in CallMode]} or 0/1/2"
    )


_mode_stack: list = []


class _Switch:
    """A nestable on/off context manager: on while any of its blocks is active."""

    _active: list

    def __enter__(self) -> None:
        self._active.append(True)

    def __exit__(self, *exc_info) -> None:
        self._active.pop()


_tensor_mode: list = []
_static_bookkeeping: list = []


class tensor_mode(_Switch):  # noqa: N801 - a context manager, like call_mode
    """Within this block, steps are traced for export: counters and validity are tensors,
    every module computes its output on every step, and no branch depends on a value."""

    _active = _tensor_mode


def in_tensor_mode() -> bool:
    return bool(_tensor_mode)


class static_bookkeeping(_Switch):  # noqa: N801 - a context manager, like tensor_mode
    """Within this block, no state holds Python values that change on every step once a
    stream is steady (an average pool re-sums its window instead of keeping a running sum
    whose age counts steps), so the steady step can be compiled with the bookkeeping as
    constants (``co.compile_step``)."""

    _active = _static_bookkeeping


def in_static_bookkeeping() -> bool:
    return bool(_static_bookkeeping)


class call_mode:  # noqa: N801 - lower case to match `continual.call_mode`
    """Context manager that makes every continual module called inside it use ``mode``.

    Overrides each module's own ``call_mode`` property while active. Nesting works: the
    innermost block wins and leaving a block restores exactly what was active before, also
    when the block raises.

    >>> with call_mode("forward_step"):
    ...     y = net(x_t)   # net.forward_step(x_t)
    """

    def __init__(self, mode: Union[str, int, Tensor, CallMode]):
        self.mode = to_call_mode(mode)

    def __enter__(self) -> None:
        _mode_stack.append(self.mode)

    def __exit__(self, *exc_info) -> None:
        _mode_stack.pop()


def active_call_mode() -> Optional[CallMode]:
    """The mode forced by the innermost ``call_mode`` block, or None outside any block."""
    return _mode_stack[-1] if _mode_stack else None
