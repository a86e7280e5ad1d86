"""Continual pooling: ``AvgPool1d/2d/3d``, ``MaxPool1d/2d/3d`` and the adaptive pools.

Time is dim 2. Pooling over a box is separable: the mean (max) over a ``k x kh x kw`` window is
the mean (max) over the ``k`` frames of each frame's spatial mean (max). So a step pools the
arriving frame spatially once (``_prepare_frame``), caches the small result, and reduces over the
temporal window::

    x_t (B, C, H, W) --spatial pool--> f_t (B, C, H', W')
    max:  y = max(f[t-N+1], f[t-N+1+d], ..., f_t)          N = d(k-1)+1
    avg:  y = (S + f_t) / k,  S = running sum of the cached frames  (O(1) per step)

``forward`` is ``torch.nn``'s forward (for the average pools with temporal dilation > 1, which
torch lacks, the same separable op over the zero-padded clip). Start padding is the state's
initial content (``temporal_fill``); max pools pad time with -inf like torch, average pools with
zeros. ``forward_steps(x, pad_end=True)`` on a fresh module equals ``forward(x)`` (with another
``temporal_fill`` and temporal padding > 0 the step modes pad differently from ``forward``).
Non-finite input frames poison an average pool's running sum until its next exact re-sum
(at most ``N-1`` steps later).

Arguments whose effect in time depends on where the clip ends (``ceil_mode`` with temporal stride
> 1, ``count_include_pad=False`` with temporal padding) cannot be reproduced by a stream and are
refused at construction with a ValueError instead of being ignored.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv import _is_channels_last
from .module import Stateless, Valid, in_static_bookkeeping, in_tensor_mode, select_rows
from .window import SlidingWindow, WindowState

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "SpatialMean",
]

_IntOrTuple = Union[int, Tuple[int, ...]]

_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_ADAPTIVE_AVG = {2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_ADAPTIVE_MAX = {2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def _tuple(value: Any, n: int, name: str, owner: str) -> Tuple[Any, ...]:
    """``value`` as an ``n``-tuple (an int is repeated), with a clear error on a wrong length."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{owner}: {name} needs {n} entries (time first), got {tuple(value)}")
        return tuple(value)
    return (value,) * n


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
        return functools.reduce(torch.add, used) / self._divisor

    def _clip_output(self, frames: Tensor) -> Tensor:
        """Temporal pooling (no padding, temporal stride) of prepared frames ``(B, C, T', *S')``."""
        b, c, t = frames.shape[:3]
        rest = frames.shape[3:]
        flat = frames.reshape(b, c, t, -1)  # spatial dims merged: one 2-D pool for every rank
        k, s, d = self._t_kernel, self._t_stride, self._t_dilation
        if self._is_max:
            out = F.max_pool2d(flat, (k, 1), (s, 1), 0, (d, 1))
        elif d == 1:
            override = None if self._divisor == k else int(self._divisor)
            out = F.avg_pool2d(flat, (k, 1), (s, 1), divisor_override=override)
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
        return functools.reduce(torch.add, frames)

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


# --------------------------------------------------------------------------------------------
# Regular pools
# --------------------------------------------------------------------------------------------
class _Pool(_ContinualPool):
    """Shared construction, ``forward`` and ``build_from`` of ``AvgPool*`` / ``MaxPool*``."""

    def _init_continual(self, dilation: _IntOrTuple, temporal_fill: Optional[str]) -> None:
        name = type(self).__name__
        n = self._dims
        self.kernel_size = _tuple(self.kernel_size, n, "kernel_size", name)
        self.stride = _tuple(
            self.kernel_size if self.stride is None else self.stride, n, "stride", name
        )
        self.padding = _tuple(self.padding, n, "padding", name)
        self.dilation = _tuple(dilation, n, "dilation", name)
        if self._is_max:
            if self.return_indices:
                raise ValueError(
                    f"{name}: return_indices=True is not supported by continual pools "
                    "(indices into a stream have no clip to point into)"
                )
        else:
            if any(d != 1 for d in self.dilation[1:]):
                raise ValueError(
                    f"{name}: spatial dilation is not supported by average pools (torch's "
                    f"average pools have none); got dilation={self.dilation}. Temporal dilation "
                    f"is: pass dilation=({self.dilation[0]}{', 1' * (n - 1)})"
                )
        k, s, p, d = self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0]
        if temporal_fill is None:
            temporal_fill = self._default_fill()
        self._check_fill(temporal_fill)
        self._init_window(k, s, p, d, temporal_fill)
        # torch's own limit (checked by its forward); for the dilated average pool, which torch
        # lacks, the limit of its average pools: half the effective kernel.
        limits = [kk // 2 for kk in self.kernel_size]
        if not self._is_max:
            limits[0] = self._t_window // 2
        for i, (pad, limit) in enumerate(zip(self.padding, limits)):
            if pad > limit:
                raise ValueError(
                    f"{name}: padding={self.padding} exceeds half the kernel in dim {i} "
                    f"(kernel_size={self.kernel_size}, at most {limit}), as torch requires"
                )
        if self.ceil_mode and s > 1:
            raise ValueError(
                f"{name}: ceil_mode=True with temporal stride {s} > 1 is not supported in step "
                "mode (the extra partial window depends on where the clip ends); use "
                "ceil_mode=False or temporal stride 1"
            )
        if not self._is_max:
            if not self.count_include_pad and p > 0:
                raise ValueError(
                    f"{name}: count_include_pad=False with temporal padding {p} > 0 is not "
                    "supported in step mode; use count_include_pad=True or temporal padding 0"
                )
            override = getattr(self, "divisor_override", None)
            self._divisor = float(override) if override else float(k)

    # ---- torch.nn forward -------------------------------------------------------------------
    def forward(self, input: Tensor) -> Tensor:
        """Clip ``(B, C, T, *S)`` -> ``(B, C, T', *S')``, as ``torch.nn`` (see the module doc)."""
        self._check_clip(input, self._dims + 2)
        if self._is_max:
            return _MAX[self._dims](
                input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
            )
        if self._t_dilation == 1:
            args = (input, self.kernel_size, self.stride, self.padding, self.ceil_mode)
            if self._dims == 1:
                return F.avg_pool1d(*args, self.count_include_pad)
            return _AVG[self._dims](*args, self.count_include_pad, self.divisor_override)
        return self._dilated_avg_forward(input)

    def _dilated_avg_forward(self, x: Tensor) -> Tensor:
        """Average pool with temporal dilation: spatial pool, zero time padding, dilated mean."""
        p = self._t_padding
        if x.shape[2] + 2 * p < self._t_window:
            raise ValueError(
                f"{type(self).__name__}: a clip of {x.shape[2]} frames (padding {p}) is shorter "
                f"than the temporal window of {self._t_window} frames"
            )
        frames = self._spatial_clip(x)
        if p:
            frames = F.pad(frames, [0, 0] * (self._dims - 1) + [p, p])
        return self._clip_output(frames)

    def _spatial_clip(self, x: Tensor, frames: Optional[int] = None) -> Tensor:
        if self._dims == 1:
            return x
        ks, ss, ps = self.kernel_size[1:], self.stride[1:], self.padding[1:]
        if all(v == 1 for v in ks + ss) and not any(ps):
            return x
        if self._is_max:
            return _MAX[self._dims](
                x, (1,) + ks, (1,) + ss, (0,) + ps, (1,) + self.dilation[1:], self.ceil_mode
            )
        # A divisor_override divides the whole box sum: the frames keep spatial sums.
        divisor = 1 if self.divisor_override else None
        return _AVG[self._dims](
            x, (1,) + ks, (1,) + ss, (0,) + ps, self.ceil_mode, self.count_include_pad, divisor
        )

    @classmethod
    def build_from(cls, module: nn.Module, **overrides):
        """A continual copy of a ``torch.nn`` pool of the same kind and rank.

        ``overrides`` replace constructor arguments, e.g. ``temporal_fill`` or (average pools)
        ``dilation``.
        """
        names = ["kernel_size", "stride", "padding", "ceil_mode"]
        if cls._is_max:
            names += ["dilation", "return_indices"]
        else:
            names.append("count_include_pad")
            if cls._dims > 1:
                names.append("divisor_override")
        kwargs = {name: getattr(module, name) for name in names}
        if isinstance(module, _ContinualPool):  # a continual pool: keep its temporal extras
            kwargs["temporal_fill"] = module.temporal_fill
            if not cls._is_max:
                kwargs["dilation"] = module.dilation
        kwargs.update(overrides)
        return cls(**kwargs)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if not self._is_max and self.dilation[0] != 1:
            text += f", dilation={self.dilation}"
        if self.temporal_fill != self._default_fill():
            text += f", temporal_fill={self.temporal_fill!r}"
        return text


class AvgPool1d(_Pool, nn.AvgPool1d):
    """Continual ``nn.AvgPool1d``: clip ``(B, C, T)``, step ``(B, C)``.

    Adds temporal ``dilation`` (window ``N = dilation*(k-1)+1``) and ``temporal_fill``
    ("zeros" like torch's padding, or "replicate"). A step costs O(1) in ``k``.
    """

    _dims = 1
    _is_max = False

    def __init__(
        self,
        kernel_size: _IntOrTuple,
        stride: Optional[_IntOrTuple] = None,
        padding: _IntOrTuple = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        dilation: _IntOrTuple = 1,
        temporal_fill: Optional[str] = None,
    ):
        nn.AvgPool1d.__init__(self, kernel_size, stride, padding, ceil_mode, count_include_pad)
        self._init_continual(dilation, temporal_fill)


class AvgPool2d(_Pool, nn.AvgPool2d):
    """Continual ``nn.AvgPool2d`` over ``(B, C, T, S)``: step ``(B, C, S)``.

    Adds temporal ``dilation`` (spatial dilation must be 1) and ``temporal_fill``.
    """

    _dims = 2
    _is_max = False

    def __init__(
        self,
        kernel_size: _IntOrTuple,
        stride: Optional[_IntOrTuple] = None,
        padding: _IntOrTuple = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Optional[int] = None,
        dilation: _IntOrTuple = 1,
        temporal_fill: Optional[str] = None,
    ):
        nn.AvgPool2d.__init__(
            self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        )
        self._init_continual(dilation, temporal_fill)


class AvgPool3d(_Pool, nn.AvgPool3d):
    """Continual ``nn.AvgPool3d`` over ``(B, C, T, H, W)``: step ``(B, C, H, W)``.

    Adds temporal ``dilation`` (spatial dilation must be 1) and ``temporal_fill``.
    """

    _dims = 3
    _is_max = False

    def __init__(
        self,
        kernel_size: _IntOrTuple,
        stride: Optional[_IntOrTuple] = None,
        padding: _IntOrTuple = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Optional[int] = None,
        dilation: _IntOrTuple = 1,
        temporal_fill: Optional[str] = None,
    ):
        nn.AvgPool3d.__init__(
            self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        )
        self._init_continual(dilation, temporal_fill)


class MaxPool1d(_Pool, nn.MaxPool1d):
    """Continual ``nn.MaxPool1d``: clip ``(B, C, T)``, step ``(B, C)``.

    Time is padded with -inf (``temporal_fill="neg_inf"``) as torch does.
    """

    _dims = 1
    _is_max = True

    def __init__(
        self,
        kernel_size: _IntOrTuple,
        stride: Optional[_IntOrTuple] = None,
        padding: _IntOrTuple = 0,
        dilation: _IntOrTuple = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        temporal_fill: Optional[str] = None,
    ):
        nn.MaxPool1d.__init__(
            self, kernel_size, stride, padding, dilation, return_indices, ceil_mode
        )
        self._init_continual(self.dilation, temporal_fill)


class MaxPool2d(_Pool, nn.MaxPool2d):
    """Continual ``nn.MaxPool2d`` over ``(B, C, T, S)``: step ``(B, C, S)``; time padded with
    -inf."""

    _dims = 2
    _is_max = True

    def __init__(
        self,
        kernel_size: _IntOrTuple,
        stride: Optional[_IntOrTuple] = None,
        padding: _IntOrTuple = 0,
        dilation: _IntOrTuple = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        temporal_fill: Optional[str] = None,
    ):
        nn.MaxPool2d.__init__(
            self, kernel_size, stride, padding, dilation, return_indices, ceil_mode
        )
        self._init_continual(self.dilation, temporal_fill)


class MaxPool3d(_Pool, nn.MaxPool3d):
    """Continual ``nn.MaxPool3d`` over ``(B, C, T, H, W)``: step ``(B, C, H, W)``; time padded
    with -inf."""

    _dims = 3
    _is_max = True

    def __init__(
        self,
        kernel_size: _IntOrTuple,
        stride: Optional[_IntOrTuple] = None,
        padding: _IntOrTuple = 0,
        dilation: _IntOrTuple = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        temporal_fill: Optional[str] = None,
    ):
        nn.MaxPool3d.__init__(
            self, kernel_size, stride, padding, dilation, return_indices, ceil_mode
        )
        self._init_continual(self.dilation, temporal_fill)


# --------------------------------------------------------------------------------------------
# Adaptive pools
# --------------------------------------------------------------------------------------------
class _AdaptivePool(_ContinualPool):
    """Adaptive pools: global in time in ``forward``, a sliding temporal window in step modes.

    ``forward`` is torch's adaptive pool over the whole clip (``output_size[0]`` must be 1, so
    one output frame). The step modes pool each frame spatially to ``output_size[1:]`` and then
    over the last ``kernel_size`` frames (stride, padding, dilation in time), so
    ``forward(x) == forward_steps(x, pad_end=True)`` exactly when ``T == kernel_size`` (with the
    default stride 1, padding 0, dilation 1); for longer clips the steps give the sliding-window
    result, one output per window.
    """

    def _init_continual(
        self,
        kernel_size: Optional[int],
        stride: int,
        padding: int,
        dilation: int,
        temporal_fill: Optional[str],
    ) -> None:
        name = type(self).__name__
        size = self.output_size
        t_size = size[0] if isinstance(size, (tuple, list)) else size
        if isinstance(size, (tuple, list)) and len(size) != self._dims:
            raise ValueError(f"{name}: output_size needs {self._dims} entries, got {size}")
        if t_size != 1:
            raise ValueError(
                f"{name}: the temporal output size (output_size[0]) must be 1 (global pooling "
                f"in time), got output_size={size}"
            )
        self._spatial_size = (
            tuple(size[1:]) if isinstance(size, (tuple, list)) else (size,) * (self._dims - 1)
        )
        for arg, value in (("stride", stride), ("padding", padding), ("dilation", dilation)):
            if not isinstance(value, int):
                raise ValueError(f"{name}: {arg} is temporal only and must be an int, got {value}")
        if kernel_size is not None and not isinstance(kernel_size, int):
            raise ValueError(
                f"{name}: kernel_size is the temporal window of the step modes and must be an "
                f"int, got {kernel_size}"
            )
        spatial_none = (None,) * (self._dims - 1)
        self.kernel_size = (kernel_size,) + spatial_none
        self.stride = (stride,) + spatial_none
        self.padding = (padding,) + spatial_none
        self.dilation = (dilation,) + spatial_none
        if temporal_fill is None:
            temporal_fill = self._default_fill()
        self._check_fill(temporal_fill)
        if kernel_size is None:
            self._t_kernel = None
            self.temporal_fill = temporal_fill
        else:
            self._init_window(kernel_size, stride, padding, dilation, temporal_fill)
            self._divisor = float(kernel_size)

    def _require_kernel(self) -> None:
        if self._t_kernel is None:
            raise ValueError(
                f"{type(self).__name__}: the step modes need the temporal window; construct "
                "with kernel_size=<frames> (or build_from(module, kernel_size=...))"
            )

    @property
    def receptive_field(self) -> int:
        self._require_kernel()
        return self._t_window

    @property
    def delay(self) -> int:
        self._require_kernel()
        return self._t_window - 1 - self._t_padding

    def _forward_length(self, t: int) -> int:
        return 1

    def forward(self, input: Tensor) -> Tensor:
        """Clip ``(B, C, T, *S)`` -> ``(B, C, 1, *S')``: torch's adaptive pool over the clip."""
        self._check_clip(input, self._dims + 2)
        pool = _ADAPTIVE_MAX if self._is_max else _ADAPTIVE_AVG
        return pool[self._dims](input, self.output_size)

    def _spatial_clip(self, x: Tensor, frames: Optional[int] = None) -> Tensor:
        pool = _ADAPTIVE_MAX if self._is_max else _ADAPTIVE_AVG
        t = x.shape[2] if frames is None else frames
        return pool[self._dims](x, (t,) + self._spatial_size)

    def _steps(self, x: Optional[Tensor], state: Optional[WindowState], pad_end: bool = False):
        self._require_kernel()
        return super()._steps(x, state, pad_end)

    def _step(self, x: Tensor, state: Optional[WindowState], valid: Valid = True):
        self._require_kernel()
        return super()._step(x, state, valid)

    @classmethod
    def build_from(
        cls,
        module: nn.Module,
        kernel_size: Optional[int] = None,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        temporal_fill: Optional[str] = None,
        output_size: Optional[Any] = None,
    ):
        """A continual copy of a ``torch.nn`` adaptive pool with temporal window ``kernel_size``."""
        if cls._is_max and module.return_indices:
            raise ValueError(f"{cls.__name__}: return_indices=True is not supported")
        return cls(
            module.output_size if output_size is None else output_size,
            kernel_size,
            stride,
            padding,
            dilation,
            temporal_fill,
        )

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", kernel_size={self.kernel_size[0]}"
        for arg, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, arg)[0]
            if value != default:
                text += f", {arg}={value}"
        if self.temporal_fill != self._default_fill():
            text += f", temporal_fill={self.temporal_fill!r}"
        return text


class AdaptiveAvgPool2d(_AdaptivePool, nn.AdaptiveAvgPool2d):
    """Continual ``nn.AdaptiveAvgPool2d`` over ``(B, C, T, S)`` with ``output_size=(1, s)``.

    ``forward``: the mean over the whole clip -> ``(B, C, 1, s)``; steps ``(B, C, S)``: the mean
    over the last ``kernel_size`` frames -> ``(B, C, s)`` (see ``_AdaptivePool``).
    """

    _dims = 2
    _is_max = False

    def __init__(
        self,
        output_size: Any,
        kernel_size: Optional[int] = None,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        temporal_fill: Optional[str] = None,
    ):
        nn.AdaptiveAvgPool2d.__init__(self, output_size)
        self._init_continual(kernel_size, stride, padding, dilation, temporal_fill)


class AdaptiveAvgPool3d(_AdaptivePool, nn.AdaptiveAvgPool3d):
    """Continual ``nn.AdaptiveAvgPool3d`` over ``(B, C, T, H, W)``, ``output_size=(1, h, w)``.

    ``forward``: the mean over the whole clip -> ``(B, C, 1, h, w)``; steps ``(B, C, H, W)``:
    the mean over the last ``kernel_size`` frames -> ``(B, C, h, w)`` (see ``_AdaptivePool``).
    """

    _dims = 3
    _is_max = False

    def __init__(
        self,
        output_size: Any,
        kernel_size: Optional[int] = None,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        temporal_fill: Optional[str] = None,
    ):
        nn.AdaptiveAvgPool3d.__init__(self, output_size)
        self._init_continual(kernel_size, stride, padding, dilation, temporal_fill)


class AdaptiveMaxPool2d(_AdaptivePool, nn.AdaptiveMaxPool2d):
    """Continual ``nn.AdaptiveMaxPool2d`` over ``(B, C, T, S)`` with ``output_size=(1, s)``.

    ``forward``: the max over the whole clip; steps: the max over the last ``kernel_size``
    frames (time padded with -inf).
    """

    _dims = 2
    _is_max = True

    def __init__(
        self,
        output_size: Any,
        kernel_size: Optional[int] = None,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        temporal_fill: Optional[str] = None,
    ):
        nn.AdaptiveMaxPool2d.__init__(self, output_size)
        self._init_continual(kernel_size, stride, padding, dilation, temporal_fill)


class AdaptiveMaxPool3d(_AdaptivePool, nn.AdaptiveMaxPool3d):
    """Continual ``nn.AdaptiveMaxPool3d`` over ``(B, C, T, H, W)``, ``output_size=(1, h, w)``.

    ``forward``: the max over the whole clip; steps: the max over the last ``kernel_size``
    frames (time padded with -inf).
    """

    _dims = 3
    _is_max = True

    def __init__(
        self,
        output_size: Any,
        kernel_size: Optional[int] = None,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        temporal_fill: Optional[str] = None,
    ):
        nn.AdaptiveMaxPool3d.__init__(self, output_size)
        self._init_continual(kernel_size, stride, padding, dilation, temporal_fill)


class SpatialMean(Stateless):
    """The mean over the spatial dims of each frame, kept as size-1 dims; never across time.

    Clip ``(B, C, T, *S)`` -> ``(B, C, T, 1, ...)``; step ``(B, C, *S)`` -> ``(B, C, 1, ...)``.
    The causal squeeze of a frame-wise squeeze-excitation block. ptflops counts it like a pool
    (one operation per input element).
    """

    def forward(self, input: Tensor) -> Tensor:
        return input.mean(tuple(range(3, input.dim())), keepdim=True)

    def _frame(self, x: Tensor) -> Tensor:
        return x.mean(tuple(range(2, x.dim())), keepdim=True)
