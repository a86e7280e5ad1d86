"""Pure time shifts: ``Delay``, ``Skip`` and the residual branch of ``Residual``.

All three are one operation, a shift with three parameters:

- ``lag``: frames held back; at step ``t`` the module emits ``x[t - lag]``,
- ``lead``: extra warm-up steps; nothing is emitted before step ``lag + lead`` (= ``delay``),
- ``end_pad``: frames of end padding; ``pad_end=True`` flushes the first ``end_pad`` held frames.

so that ``forward(x) = x[:, :, lead : T - lag + end_pad]`` equals
``forward_steps(x, pad_end=True)``::

    module                            lag lead end_pad  forward     steps on x0 x1 ...
    Delay(2)                           2    0     2     x           .  .  x0 x1 ...
    Delay(2, auto_shrink=True)         2    2     0     x[2:-2]     .  .  .  .  x2 ...
    Delay(2, auto_shrink="lagging")    2    0     0     x[:-2]      .  .  x0 x1 ...
    Skip(2)                            0    2     0     x[2:]       .  .  x2 x3 ...
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .checks import check_step_shape
from .modes import in_tensor_mode
from .module import CoModule
from .validity import Valid, advance_counter, first_output_offset, reset_counter, select_rows, tick
from .window import TEMPORAL_FILLS, WindowState

__all__ = ["Delay", "Skip", "TimeShift"]


class TimeShift(CoModule):
    """A pure shift in time by ``lag`` frames, with ``lead`` extra warm-up steps and
    ``end_pad`` frames of end padding (see the module docstring). Inputs ``(B, C, T, *S)``."""

    def __init__(self, lag: int, lead: int = 0, end_pad: int = 0):
        super().__init__()
        name = type(self).__name__
        if lag < 0 or lead < 0 or not 0 <= end_pad <= lag:
            raise ValueError(
                f"{name}: need lag >= 0, lead >= 0 and 0 <= end_pad <= lag, "
                f"got lag={lag}, lead={lead}, end_pad={end_pad}"
            )
        self._lag, self._lead, self._end_pad = lag, lead, end_pad

    @property
    def receptive_field(self) -> int:
        return self.delay + 1

    @property
    def delay(self) -> int:
        return self._lag + self._lead

    def _forward_length(self, t: int) -> int:
        return max(t - self._lead - self._lag + self._end_pad, 0)

    def forward(self, input: Tensor) -> Tensor:
        """Clip ``(B, C, T, *S)`` -> ``(B, C, T - lead - lag + end_pad, *S)``."""
        t = input.shape[2]
        return input[:, :, self._lead : t - self._lag + self._end_pad]

    def _step(self, x: Tensor, state: Optional[WindowState], valid: Valid = True):
        if state is None:
            state = WindowState(0, tuple(x.shape), (), None)
        elif not in_tensor_mode() and x.shape != state.shape:
            check_step_shape(self, x, state.shape)
        if valid is False:
            return None, False, state
        out_valid, counter, fresh = tick(state.counter, valid, self.delay, 1, x.shape[0])
        if self._lag == 0:
            return x, out_valid, state._replace(counter=counter)
        frames = state.frames
        if fresh is not False:
            # Held frames of a fresh stream are never emitted; zeros only give them a shape.
            initial = (torch.zeros_like(x),) * self._lag
            frames = (
                initial if (fresh is True or not frames) else select_rows(fresh, initial, frames)
            )
        y = frames[0] if out_valid is not False else None
        next_frames = frames[1:] + (x,)
        if valid is not True:
            next_frames = select_rows(valid, next_frames, state.frames or next_frames)
        return y, out_valid, WindowState(counter, state.shape, next_frames, None)

    def _steps(self, x: Optional[Tensor], state: Optional[WindowState], pad_end: bool = False):
        y = None
        if x is not None and x.shape[2] > 0:
            step_shape = x.shape[:2] + x.shape[3:]
            if state is None:
                state = WindowState(0, tuple(step_shape), (), None)
            elif step_shape != state.shape:
                check_step_shape(self, x[:, :, 0], state.shape)
            if isinstance(state.counter, tuple):
                return self._steps_by_stepping(x, state, pad_end, copy_frames=True)
            n = x.shape[2]
            frames = state.frames
            if state.counter == 0 and self._lag:
                frames = (torch.zeros_like(x[:, :, 0]),) * self._lag
            full = torch.cat([torch.stack(frames, 2), x], 2) if frames else x
            start = first_output_offset(state.counter, self.delay, 1)
            y = full[:, :, start:n] if start < n else None
            held = tuple(full[:, :, n:].clone().unbind(2)) if self._lag else ()
            state = WindowState(advance_counter(state.counter, n, self.delay, 1), state.shape, held)
        tail = self._tail(state) if pad_end else None
        return y, state, tail

    def _tail(self, state: Optional[WindowState]) -> Optional[Tensor]:
        if not self._end_pad or state is None or not state.frames:
            return None
        if isinstance(state.counter, tuple):
            raise RuntimeError(
                f"{type(self).__name__}: pad_end needs all streams of the batch at one phase"
            )
        start = first_output_offset(state.counter, self.delay, 1)
        if start >= self._end_pad:
            return None
        return torch.stack(state.frames[start : self._end_pad], 2)

    def _reset_streams(self, state: WindowState, streams: Sequence[int]) -> WindowState:
        return state._replace(counter=reset_counter(state.counter, streams, state.shape[0]))

    def extra_repr(self) -> str:
        return f"lag={self._lag}, lead={self._lead}, end_pad={self._end_pad}"


_SHRINK_MODES = (False, True, "centered", "lagging")


class Delay(TimeShift):
    """Delay the stream by ``delay`` steps.

    Args:
        delay: steps to hold each frame back.
        temporal_fill: accepted for compatibility; held fill values are never emitted.
        auto_shrink: ``False`` (``forward`` is the identity), ``True``/``"centered"``
            (``forward`` drops ``delay`` frames at both ends; steps emit ``x[t - delay]`` from
            step ``2 * delay``) or ``"lagging"`` (``forward`` drops the last ``delay`` frames).
    """

    def __init__(
        self,
        delay: int,
        temporal_fill: str = "zeros",
        auto_shrink: Union[bool, str] = False,
    ):
        if auto_shrink not in _SHRINK_MODES:
            raise ValueError(
                f"Delay: auto_shrink must be one of {_SHRINK_MODES}, got {auto_shrink!r}"
            )
        if temporal_fill not in TEMPORAL_FILLS:
            raise ValueError(
                f"Delay: temporal_fill must be one of {TEMPORAL_FILLS}, got {temporal_fill!r}"
            )
        if delay < 0:
            raise ValueError(f"Delay: delay must be >= 0, got {delay}")
        centered = auto_shrink is True or auto_shrink == "centered"
        super().__init__(
            lag=delay,
            lead=delay if centered else 0,
            end_pad=0 if auto_shrink else delay,
        )
        self._delay_arg = delay
        self.auto_shrink = auto_shrink
        self.temporal_fill = temporal_fill

    def __repr__(self) -> str:
        shrink = "" if self.auto_shrink is False else f", auto_shrink={self.auto_shrink!r}"
        return f"Delay({self._delay_arg}{shrink})"


class Skip(TimeShift):
    """Drop the first ``steps`` steps of a stream (``forward``: ``x[:, :, steps:]``).

    Its ``delay`` is ``steps``: the number of steps before it first emits.
    """

    def __init__(self, steps: int):
        if steps < 1:
            raise ValueError(f"Skip: steps must be >= 1, got {steps}")
        super().__init__(lag=0, lead=steps, end_pad=0)
        self.steps = steps

    def __repr__(self) -> str:
        return f"Skip({self.steps})"
