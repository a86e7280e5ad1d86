"""``Residual``: ``reduce(x, module(x))`` as a ``BroadcastReduce`` of ``module`` and a time shift
of ``x`` that aligns each input frame with the output it belongs to (``residual_shrink``)."""

from __future__ import annotations

from typing import Callable, Optional, Union

from torch import nn

from .container.base import _as_continual, _Container, _probe_length, _t_padding, _t_stride
from .container.reduce import BroadcastReduce
from .delay import Delay, Skip, TimeShift
from .module import CoModule

__all__ = ["Residual"]

_RESIDUAL_SHRINKS = (False, True, "centered", "lagging", "leading")


def _global_in_time_part(module: CoModule, probe: int) -> str:
    """The name of the innermost part of ``module`` whose ``forward`` returns one frame for a
    ``probe``-frame clip (e.g. an adaptive pool), for error messages."""
    for part in reversed(list(module.modules())):
        if isinstance(part, CoModule) and not isinstance(part, _Container):
            if part._forward_length(probe) == 1:
                return type(part).__name__
    return type(module).__name__


def _check_stride(module: CoModule) -> None:
    if _t_stride(module) != 1:
        raise ValueError(
            f"Residual: the wrapped {type(module).__name__} has temporal stride "
            f"{_t_stride(module)}; a residual needs temporal stride 1 (a pool's stride defaults to "
            "its kernel size: pass stride=1 for a sliding temporal window)"
        )


def _check_global_in_time(
    module: CoModule, probe: int, reduce: Union[str, Callable], residual_shrink: Union[bool, str]
) -> None:
    """Refuse what a module that returns one frame for the whole clip in ``forward`` cannot
    pair with ``x``: a crop of ``x`` (``residual_shrink``) or ``reduce="concat"``."""
    name, delay = type(module).__name__, module.delay
    part = _global_in_time_part(module, probe)
    if residual_shrink is not False:
        raise ValueError(
            f"Residual: the wrapped {name} returns one frame for the whole clip in forward "
            f"({part} pools over all frames) but slides a window of "
            f"{module.receptive_field} frames in its steps (delay {delay}), so no "
            f"residual_shrink={residual_shrink!r} crop of x can make forward equal the "
            "steps. Use residual_shrink=False (x is broadcast against the one frame; steps "
            f"equal forward on clips of {module.receptive_field} frames), or a temporal "
            "pool that slides in forward too, e.g. co.AvgPool3d((k, 1, 1), stride=1), with "
            f"residual_shrink={residual_shrink!r}"
        )
    if reduce == "concat":
        raise ValueError(
            f"Residual: the wrapped {name} returns one frame for the whole clip in forward "
            f"({part} pools over all frames), which reduce='concat' cannot join to the "
            "clip's frames; use reduce='sum', 'mul' or 'max'"
        )


def _residual_offset(name: str, delay: int, pad: int, residual_shrink: Union[bool, str]) -> int:
    """Which input frame of an output's window is the residual: its offset from the window's
    oldest frame, for a module with ``delay`` and temporal padding ``pad``."""
    spare = delay - pad  # input frames a forward output window has beyond the output length
    if spare < 0:
        raise ValueError(
            f"Residual: the wrapped {name} lengthens the clip by {-spare} frames (temporal "
            f"padding {pad} exceeds its delay {delay}), so its first outputs have no input "
            f"frame to pair with (residual_shrink={residual_shrink!r}); give it at most "
            f"{delay} frames of temporal padding ({delay} keeps the length)"
        )
    if residual_shrink is False:
        if spare != 0:
            raise ValueError(
                f"Residual: the wrapped {name} shortens the clip by {spare} frames (delay "
                f"{delay}, temporal padding {pad}), so x + module(x) is undefined; "
                "pass residual_shrink=True, 'lagging' or 'leading'"
            )
        return 0
    if residual_shrink in (True, "centered"):
        return spare // 2
    if residual_shrink == "lagging":
        return 0
    return spare


def Residual(  # noqa: N802 - a factory named like the module it builds, as in continual-inference
    module: nn.Module,
    temporal_fill: Optional[str] = None,
    reduce: Union[str, Callable] = "sum",
    residual_shrink: Union[bool, str] = False,
) -> BroadcastReduce:
    """``reduce(x, module(x))`` with the residual ``x`` aligned in time to ``module``'s output.

    ``residual_shrink`` picks which input frame of each output's window is the residual when
    ``module`` shortens the clip (no padding): ``False`` needs a length-preserving module;
    ``True``/``"centered"``: the centre frame (the earlier of the two for an even window);
    ``"lagging"``: the oldest; ``"leading"``: the newest. ``forward`` crops ``x`` accordingly,
    and every mode is exact for odd and even windows and every ``reduce``.

    A ``module`` whose ``forward`` returns one frame for the whole clip (global pooling in time,
    e.g. a squeeze-excitation gate with an adaptive pool) is broadcast over the clip's frames;
    it needs ``residual_shrink=False`` (its steps slide a window that no crop of ``x`` in
    ``forward`` can follow) and a reduce other than ``"concat"``. A module that lengthens the
    clip (more temporal padding than its delay) is refused.
    """
    if residual_shrink not in _RESIDUAL_SHRINKS:
        raise ValueError(
            f"Residual: residual_shrink must be one of {_RESIDUAL_SHRINKS}, got {residual_shrink!r}"
        )
    module = _as_continual(module)
    _check_stride(module)
    delay, pad = module.delay, _t_padding(module)
    probe = _probe_length([module])
    if module._forward_length(probe) == 1:
        _check_global_in_time(module, probe, reduce, residual_shrink)
        # module(x) is one frame broadcast over time: x waits for the window's last frame.
        return BroadcastReduce(Delay(delay), module, reduce=reduce, auto_delay=False)
    offset = _residual_offset(type(module).__name__, delay, pad, residual_shrink)
    branch = _shift(lag=delay - offset, lead=offset, end_pad=pad)
    return BroadcastReduce(branch, module, reduce=reduce, auto_delay=False)


def _shift(lag: int, lead: int, end_pad: int) -> TimeShift:
    """The residual's time shift, as the named module it equals where there is one (so that
    the network prints ``Delay(2)`` or ``Skip(2)``, as continual-inference's does)."""
    if lag == 0 and lead > 0:
        return Skip(lead)  # the residual is the newest frame of the window
    if lead == 0 and end_pad == lag:
        return Delay(lag)
    if lead == 0 and end_pad == 0:
        return Delay(lag, auto_shrink="lagging")
    if lead == lag and end_pad == 0:
        return Delay(lag, auto_shrink=True)
    return TimeShift(lag=lag, lead=lead, end_pad=end_pad)
