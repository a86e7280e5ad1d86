"""``SlidingWindowNetwork``: a regular clip network as a continual module that recomputes its
whole window for every prediction — the way a non-continual model serves a live stream, and
the baseline that continual models are timed against.

Steps ``(N, C)`` (or ``(N, C, *S)``) are kept in a window of the last ``window`` steps; once the
window is full, every step runs the wrapped network on it::

    step        0   1  ...  W-2 | W-1        W          ...
    window      x0  x0..x1      | x0..x[W-1] x1..x[W]
    output      .   .  ...  .   | net(...)   net(...)   ...     (delay W-1, receptive field W)

``forward(clip (N, C, T, *S))`` with ``T >= W`` runs the network on every complete window and
stacks the outputs on dim 2, so it equals ``forward_steps(clip, pad_end=True)``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from cozoo.co.checks import check_step_shape
from cozoo.co.module import CoModule
from cozoo.co.validity import (
    Valid,
    advance_counter,
    first_output_offset,
    reset_counter,
    select_rows,
    tick,
)

__all__ = ["SlidingWindowNetwork", "WindowBuffer"]


class WindowBuffer(NamedTuple):
    """State of a ``SlidingWindowNetwork`` (immutable)."""

    counter: object  # valid steps seen (saturating; per stream after a per-stream reset)
    shape: Tuple[int, ...]  # the step shape (N, C, *S) the window was started with
    frames: Tuple[Tensor, ...]  # the last window-1 steps, oldest first


class SlidingWindowNetwork(CoModule):
    """Runs ``network`` (clip ``(N, C, W, *S)`` -> ``(N, K)``) on the last ``window`` steps of a
    stream at every step (see the module docstring).

    Args:
        network: a regular network taking a clip of exactly ``window`` steps and returning one
            prediction per clip ``(N, K)``.
        window: ``W``, the clip length of ``network``.
    """

    def __init__(self, network: nn.Module, window: int):
        super().__init__()
        if window < 1:
            raise ValueError(f"SlidingWindowNetwork: window must be >= 1, got {window}")
        self.network = network
        self.window = window

    @property
    def receptive_field(self) -> int:
        return self.window

    @property
    def delay(self) -> int:
        return self.window - 1

    def _forward_length(self, t: int) -> int:
        return max(t - self.window + 1, 0)

    def _windows(self, frames: Tensor) -> Tensor:
        """Every complete window of ``frames`` (N, C, T, *S) through the network: (N, K, T-W+1)."""
        n, c, t = frames.shape[:3]
        windows = frames.unfold(2, self.window, 1)  # (N, C, T', *S, W)
        windows = windows.movedim(-1, 3).movedim(2, 0)  # (T', N, C, W, *S)
        flat = windows.reshape(-1, c, self.window, *frames.shape[3:])
        y = self.network(flat)  # (T' N, K)
        return y.reshape(t - self.window + 1, n, -1).permute(1, 2, 0)

    def forward(self, input: Tensor) -> Tensor:
        """Clip ``(N, C, T, *S)`` with ``T >= window`` -> ``(N, K, T - window + 1)``."""
        if not isinstance(input, Tensor) or input.dim() < 3 or input.shape[2] < self.window:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(
                f"{type(self).__name__}: expected a clip (N, C, T, ...) of at least "
                f"window={self.window} steps, got {got}"
            )
        return self._windows(input)

    def _step(self, x: Tensor, state: Optional[WindowBuffer], valid: Valid = True):
        if state is None:
            state = WindowBuffer(0, tuple(x.shape), ())
        elif tuple(x.shape) != state.shape:
            check_step_shape(self, x, state.shape)
        if valid is False:
            return None, False, state
        out_valid, counter, fresh = tick(state.counter, valid, self.delay, 1, x.shape[0])
        frames = state.frames
        if fresh is not False:  # a fresh stream's window starts empty (zeros are never used)
            initial = (torch.zeros_like(x),) * self.delay
            frames = (
                initial if (fresh is True or not frames) else select_rows(fresh, initial, frames)
            )
        window = frames + (x,)
        y = None
        if out_valid is not False:
            y = self.network(torch.stack(window, 2))
        next_frames = window[1:]
        if valid is not True:
            next_frames = select_rows(valid, next_frames, state.frames or next_frames)
        return y, out_valid, WindowBuffer(counter, state.shape, next_frames)

    def _steps(self, x: Optional[Tensor], state: Optional[WindowBuffer], pad_end: bool = False):
        if x is None or x.shape[2] == 0:
            return None, state, None
        step_shape = tuple(x.shape[:2] + x.shape[3:])
        if state is None:
            state = WindowBuffer(0, step_shape, ())
        elif step_shape != state.shape:
            check_step_shape(self, x[:, :, 0], state.shape)
        if isinstance(state.counter, tuple):
            return self._steps_by_stepping(x, state, pad_end, copy_frames=True)
        held = state.frames
        if state.counter == 0 or not held:  # fresh: placeholders, never part of an output
            held = (torch.zeros_like(x[:, :, 0]),) * self.delay
        full = torch.cat([torch.stack(held, 2), x], 2) if held else x
        # the window ending at step t of x is full[:, :, t : t + W]
        start = first_output_offset(state.counter, self.delay, 1)
        n = x.shape[2]
        y = self._windows(full[:, :, start:]) if start < n else None
        frames = tuple(full[:, :, n:].clone().unbind(2))
        counter = advance_counter(state.counter, n, self.delay, 1)
        return y, WindowBuffer(counter, state.shape, frames), None

    def _reset_streams(self, state: WindowBuffer, streams: Sequence[int]) -> WindowBuffer:
        return state._replace(counter=reset_counter(state.counter, streams, state.shape[0]))

    def extra_repr(self) -> str:
        return f"window={self.window}"
