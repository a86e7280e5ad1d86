"""Continual adaptive pools ``AdaptiveAvgPool2d/3d`` and ``AdaptiveMaxPool2d/3d``: global in
time in ``forward``, a sliding temporal window of ``kernel_size`` frames in the step modes."""

from __future__ import annotations

from typing import Any, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from ..validity import Valid
from ..window import WindowState
from .base import _ContinualPool

__all__ = ["AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"]

_ADAPTIVE_AVG = {2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_ADAPTIVE_MAX = {2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


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
