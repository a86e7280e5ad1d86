"""Sliding-window modules: the shared step machinery of continual convolutions and pools.

Such a module's output at a step depends on the last ``N = d(k-1)+1`` frames (kernel ``k``,
dilation ``d``) of its temporally padded input. The state keeps the last ``N-1`` *prepared*
frames (after whatever per-frame work can be done once, e.g. spatial pooling) as an immutable
tuple, so a step copies nothing but the frames the window op reads::

    state.frames = (f[t-N+1], ..., f[t-1])        x_t -> f_t = prepare(x_t)
    y = window_op(state.frames + (f_t,))          only on steps that yield an output
    next.frames  = state.frames[1:] + (f_t,)

A chunk of ``T`` frames runs the regular (unpadded) op once over ``[cached frames | chunk]``.
Start padding is the initial content of ``frames`` (``temporal_fill``); end padding is fed
by ``_tail`` on a copy of the state.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .checks import check_step_input, check_step_shape
from .modes import in_tensor_mode
from .module import CoModule
from .validity import Valid, advance_counter, first_output_offset, reset_counter, select_rows, tick

TEMPORAL_FILLS = ("zeros", "replicate", "neg_inf")


class WindowState(NamedTuple):
    """State of a sliding-window module (immutable)."""

    counter: Any  # valid frames consumed (saturated): an int, or a per-stream tuple of ints
    shape: Tuple[int, ...]  # the step shape (B, C, *S) this state was built for
    frames: Tuple[Tensor, ...]  # the last N-1 prepared frames, oldest first
    extra: Any = None  # subclass data, e.g. the running sum of an average pool


class SlidingWindow(CoModule):
    """Base of modules that compute each output from a temporal window of frames.

    Subclasses call ``_init_window`` and implement ``_prepare_frame``, ``_prepare_clip``,
    ``_window_output`` and ``_clip_output``; those with ``_dims`` set (time and space dims of a
    clip) have the rank, and ``_input_channels``, of a stream's first step or chunk checked.
    """

    _dims: Optional[int] = None

    def _init_window(
        self, kernel: int, stride: int, padding: int, dilation: int, temporal_fill: str
    ) -> None:
        name = type(self).__name__
        if kernel < 1 or stride < 1 or dilation < 1 or padding < 0:
            raise ValueError(
                f"{name}: temporal kernel, stride and dilation must be >= 1 and padding >= 0, "
                f"got kernel={kernel}, stride={stride}, dilation={dilation}, padding={padding}"
            )
        window = dilation * (kernel - 1) + 1
        if padding > window - 1:
            raise ValueError(
                f"{name}: temporal padding {padding} exceeds what a temporal window of {window} "
                f"frames (kernel {kernel}, dilation {dilation}) allows (at most {window - 1})"
            )
        if temporal_fill not in TEMPORAL_FILLS:
            raise ValueError(
                f"{name}: temporal_fill must be one of {TEMPORAL_FILLS}, got {temporal_fill!r}"
            )
        self._t_kernel = kernel
        self._t_stride = stride
        self._t_padding = padding
        self._t_dilation = dilation
        self._t_window = window
        self.temporal_fill = temporal_fill
        # The counter of a stride-1 stream after its warm-up, which every step keeps (each
        # step outputs); -1, never matched, for strided windows.
        self._steady_counter = max(self.delay, 1) if stride == 1 else -1

    # ---- temporal properties ------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        return self._t_window

    @property
    def delay(self) -> int:
        return self._t_window - 1 - self._t_padding

    def _forward_length(self, t: int) -> int:
        return max((t + 2 * self._t_padding - self._t_window) // self._t_stride + 1, 0)

    # ---- subclass hooks -------------------------------------------------------------------------
    def _input_channels(self) -> Optional[int]:
        """The channel count (dim 1) every step must have; None: any."""
        return None

    def _check_first_input(self, x: Tensor, clip: bool) -> None:
        """Rank and channels of a stream's first step ``(B, C, *S)`` (or chunk ``(B, C, T,
        *S)``), checked once, when its state is created: later steps must have the shape the
        state was built for, which the step compares anyway."""
        if self._dims is not None:
            check_step_input(self, x, self._dims + (2 if clip else 1), self._input_channels(), clip)

    def _prepare_frame(self, x: Tensor) -> Tensor:
        """Per-frame work done once when the frame arrives: ``(B, C, *S)`` -> ``(B, C, *S')``."""
        return x

    def _prepare_clip(self, x: Tensor) -> Tensor:
        """``_prepare_frame`` on every frame of a clip ``(B, C, T, *S)``."""
        return x

    def _window_output(self, window: Sequence[Tensor]) -> Tensor:
        """One output step from the ``N`` prepared frames of a window, oldest first."""
        raise NotImplementedError

    def _clip_output(self, frames: Tensor) -> Tensor:
        """The regular op (no temporal padding, temporal stride) over prepared frames
        ``(B, C, T', *S)``: one output per window starting at 0, s, 2s, ..."""
        raise NotImplementedError

    # ---- fill values --------------------------------------------------------------------------
    def _fill_frame(self, like: Tensor) -> Tensor:
        if self.temporal_fill == "zeros":
            return torch.zeros_like(like)
        if self.temporal_fill == "neg_inf":
            return torch.full_like(like, float("-inf"))
        return like

    def _initial_frames(self, first: Tensor) -> Tuple[Tensor, ...]:
        """The start padding: ``N-1`` fill frames built from a stream's first prepared frame."""
        cached = self._t_window - 1
        if cached == 0:
            return ()
        return (self._fill_frame(first),) * cached

    def _used(self, window: Sequence[Tensor]) -> Sequence[Tensor]:
        """The frames of a window that the kernel taps (every ``dilation``-th)."""
        d = self._t_dilation
        return window if d == 1 else window[::d]

    # ---- pure step ----------------------------------------------------------------------------
    def _new_state(self, step_shape) -> WindowState:
        return WindowState(0, tuple(step_shape), (), None)

    def _step(self, x: Tensor, state: Optional[WindowState], valid: Valid = True):
        if (
            valid is True
            and state is not None
            and state.counter.__class__ is int
            and state.counter == self._steady_counter
            and x.shape == state.shape
        ):
            return self._steady_step(x, state)
        if state is None:
            self._check_first_input(x, clip=False)
            state = self._new_state(x.shape)
        elif not in_tensor_mode() and x.shape != state.shape:
            check_step_shape(self, x, state.shape)
        if valid is False:
            return None, False, state
        out_valid, counter, fresh = tick(
            state.counter, valid, self.delay, self._t_stride, x.shape[0]
        )
        f = self._prepare_frame(x)  # kept in the state: forward_step copied the caller's frame
        frames, extra = state.frames, state.extra
        if fresh is not False:
            initial = self._initial_frames(f)
            if fresh is True or not frames:
                frames, extra = initial, self._initial_extra(initial)
            else:
                frames = select_rows(fresh, initial, frames)
                extra = self._select_extra(fresh, self._initial_extra(initial), extra)
        window = frames + (f,)
        y = self._window_step_output(window, extra) if out_valid is not False else None
        next_frames = window[1:]
        if valid is not True:
            next_frames = select_rows(valid, next_frames, state.frames or next_frames)
        next_extra = self._next_extra(window, extra, next_frames, valid, state.extra)
        return y, out_valid, WindowState(counter, state.shape, next_frames, next_extra)

    def _steady_step(self, x: Tensor, state: WindowState):
        """``_step`` for all streams valid, past the warm-up, stride 1: what ``tick`` would
        decide is known (an output, the same counter), so the bookkeeping is skipped."""
        f = self._prepare_frame(x)
        window = state.frames + (f,)
        y = self._window_step_output(window, state.extra)
        next_frames = window[1:]
        extra = self._next_extra(window, state.extra, next_frames, True, state.extra)
        if not next_frames and extra is None:
            return y, True, state  # nothing cached (a temporal kernel of 1): the same state
        return y, True, WindowState(state.counter, state.shape, next_frames, extra)

    # ---- hooks for modules that carry more than frames (e.g. a running sum) ------------------
    def _initial_extra(self, frames: Tuple[Tensor, ...]) -> Any:
        """``extra`` of a state whose cached frames are ``frames`` (a fresh start, or a chunk)."""
        return None

    def _select_extra(self, fresh: Valid, initial: Any, extra: Any) -> Any:
        """``initial`` for the fresh streams, ``extra`` for the others."""
        return None

    def _window_step_output(self, window: Tuple[Tensor, ...], extra: Any) -> Tensor:
        """One step's output from its window and the state's ``extra``."""
        return self._window_output(window)

    def _next_extra(
        self,
        window: Tuple[Tensor, ...],
        extra: Any,
        next_frames: Tuple[Tensor, ...],
        valid: Valid,
        previous: Any,
    ) -> Any:
        """``extra`` after a step; ``previous`` is kept for streams without a frame."""
        return None

    def _steps(self, x: Optional[Tensor], state: Optional[WindowState], pad_end: bool = False):
        y = None
        if x is not None and x.shape[2] > 0:
            step_shape = x.shape[:2] + x.shape[3:]
            if state is None:
                self._check_first_input(x, clip=True)
                state = self._new_state(step_shape)
            elif step_shape != state.shape:
                check_step_shape(self, x[:, :, 0], state.shape)
            if isinstance(state.counter, tuple):
                # Streams at different phases go frame by frame; the state keeps the frames,
                # which must not be views of a chunk the caller may reuse.
                return self._steps_by_stepping(x, state, pad_end, copy_frames=True)
            y, state = self._run_chunk(self._prepare_clip(x), state)
        tail = self._tail(state) if pad_end else None
        return y, state, tail

    def _run_chunk(self, clip: Tensor, state: WindowState):
        """Outputs of a chunk of prepared frames for streams at one common phase."""
        counter = state.counter
        frames = state.frames if counter != 0 else self._initial_frames(clip[:, :, 0])
        n = clip.shape[2]
        cached = self._t_window - 1
        full = torch.cat([torch.stack(frames, 2), clip], 2) if frames else clip
        start = first_output_offset(counter, self.delay, self._t_stride)
        y = self._clip_output(full[:, :, start:]) if start < n else None
        next_frames = tuple(full[:, :, -cached:].clone().unbind(2)) if cached else ()
        counter = advance_counter(counter, n, self.delay, self._t_stride)
        return y, WindowState(counter, state.shape, next_frames, self._initial_extra(next_frames))

    def _tail(self, state: Optional[WindowState]) -> Optional[Tensor]:
        p = self._t_padding
        if p == 0 or state is None or not state.frames:
            return None
        if isinstance(state.counter, tuple):
            raise RuntimeError(
                f"{type(self).__name__}: pad_end needs all streams of the batch at one phase; "
                "after a per-stream clean_state, step with forward_step instead."
            )
        last = state.frames[-1]
        fill = last if self.temporal_fill == "replicate" else self._fill_frame(last)
        pad = torch.stack((fill,) * p, 2)
        y, _ = self._run_chunk(pad, state)
        return y

    def _reset_streams(self, state: WindowState, streams: Sequence[int]) -> WindowState:
        return state._replace(counter=reset_counter(state.counter, streams, state.shape[0]))
