"""``_ContinualPool``: the temporal machinery every continual pool shares.

A pool is separable: a step pools the arriving frame spatially once (``_prepare_frame``),
caches the result in a ``SlidingWindow`` and reduces over the temporal window: a max, or for an
average pool a running sum that is re-summed exactly from the cached frames every ``N-1`` steps.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..conv import _is_channels_last
from ..modes import in_static_bookkeeping, in_tensor_mode
from ..validity import Valid, select_rows
from ..window import SlidingWindow

# Bound once: ptflops' ``count_functional`` swaps F's functions while it counts, and a pool's
# own hook counts it already.
_avg_pool2d, _max_pool2d = F.avg_pool2d, F.max_pool2d


class _ContinualPool(SlidingWindow):
    """Temporal machinery shared by every continual pool.

    Subclasses set ``_dims`` (1, 2, 3), ``_is_max`` and ``_divisor`` (average pools: what the
    temporal sum is divided by) and implement ``_spatial_clip``.
    """

    _dims: int
    _is_max: bool
    _divisor: float = 1.0
    # torch stores these as instance attributes; plain class attributes shadow the CoModule
    # properties so that torch's __init__ can assign them.
    stride = None
    padding = None

    # ---- spatial (per-frame) pooling ------------------------------------------------------------
    def _spatial_clip(self, x: Tensor, frames: Optional[int] = None) -> Tensor:
        """Spatial pooling of every frame of a clip: ``(B, C, T, *S)`` -> ``(B, C, T, *S')``.

        ``frames`` is ``T`` where the caller knows it as a constant (1 for a step), so that a
        traced step sees no size read from a tensor (the ONNX exporter needs constant sizes).
        """
        return x

    def _prepare_clip(self, x: Tensor) -> Tensor:
        self._check_clip(x, self._dims + 2)
        return self._spatial_clip(x)

    def _prepare_frame(self, x: Tensor) -> Tensor:
        # The rank of a step is checked when the stream's state is created (SlidingWindow).
        if self._dims == 1:
            return x
        # The same kernel as the clip path, on a one-frame clip: steps and chunks agree exactly.
        y = self._spatial_clip(x.unsqueeze(2), frames=1).squeeze(2)
        if y is not x and _is_channels_last(x):
            y = y.contiguous(memory_format=torch.channels_last)  # keep the caller's layout
        return y

    # ---- temporal reduction -----------------------------------------------------------------
    def _window_output(self, window: Sequence[Tensor]) -> Tensor:
        used = self._used(window)
        # Elementwise folds (no stacked copy) keep the frames' memory layout (channels-last).
        if self._is_max:
            return functools.reduce(torch.maximum, used)
        return functools.reduce(operator.add, used) / self._divisor

    def _clip_output(self, frames: Tensor) -> Tensor:
        """Temporal pooling (no padding, temporal stride) of prepared frames ``(B, C, T', *S')``."""
        b, c, t = frames.shape[:3]
        rest = frames.shape[3:]
        flat = frames.reshape(b, c, t, -1)  # spatial dims merged: one 2-D pool for every rank
        k, s, d = self._t_kernel, self._t_stride, self._t_dilation
        if self._is_max:
            out = _max_pool2d(flat, (k, 1), (s, 1), 0, (d, 1))
        elif d == 1:
            override = None if self._divisor == k else int(self._divisor)
            out = _avg_pool2d(flat, (k, 1), (s, 1), divisor_override=override)
        else:
            n_out = (t - self._t_window) // s + 1
            span = (n_out - 1) * s + 1
            out = flat[:, :, 0:span:s]
            for j in range(1, k):
                out = out + flat[:, :, j * d : j * d + span : s]
            out = out / self._divisor
        return out.reshape((b, c, out.shape[2]) + rest)

    # ---- average pools: O(1) running sum ------------------------------------------------------
    def _uses_running_sum(self) -> bool:
        # Traced and compiled steps sum the window directly: the periodic re-sum is a branch
        # on a counter that changes every step.
        return (
            not self._is_max
            and self._t_dilation == 1
            and self._t_window > 1
            and not in_tensor_mode()
            and not in_static_bookkeeping()
        )

    @staticmethod
    def _exact_sum(frames: Sequence[Tensor]) -> Tensor:
        return functools.reduce(operator.add, frames)

    # Average pools keep ``extra = (S, age)``: ``S`` the sum of the cached frames, re-summed
    # exactly from them every ``N-1`` steps (``age`` counts to that) so that rounding error
    # cannot accumulate over a long stream.
    def _initial_extra(self, frames: Tuple[Tensor, ...]) -> Any:
        return (self._exact_sum(frames), 0) if self._uses_running_sum() and frames else None

    def _select_extra(self, fresh: Valid, initial: Any, extra: Any) -> Any:
        if initial is None or extra is None:
            return initial
        return (select_rows(fresh, initial[0], extra[0]), extra[1])

    def _window_step_output(self, window: Tuple[Tensor, ...], extra: Any) -> Tensor:
        if not self._uses_running_sum():
            return self._window_output(window)
        total = extra[0] if extra is not None else self._exact_sum(window[:-1])
        return (total + window[-1]) / self._divisor

    def _next_extra(self, window, extra, next_frames, valid, previous) -> Any:
        if not self._uses_running_sum():
            return None
        total, age = extra if extra is not None else (self._exact_sum(window[:-1]), 0)
        age += 1
        if age >= self._t_window - 1:
            # Re-sum every stream, also those without a frame this step, from its own frames.
            return self._exact_sum(next_frames), 0
        next_total = total + window[-1] - window[0]
        if valid is not True and previous is not None:
            next_total = select_rows(valid, next_total, previous[0])
        return next_total, age

    def _default_fill(self) -> str:
        return "neg_inf" if self._is_max else "zeros"

    def _check_fill(self, temporal_fill: str) -> None:
        if not self._is_max and temporal_fill == "neg_inf":
            raise ValueError(
                f"{type(self).__name__}: temporal_fill='neg_inf' is meaningless for an average "
                "(the running sum would become -inf/NaN); use 'zeros' or 'replicate'"
            )
