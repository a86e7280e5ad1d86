"""Continual average pools ``AvgPool1d/2d/3d`` (O(1) per step in the kernel size) and
``SpatialMean`` (the mean over each frame's spatial dims)."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..module import Stateless
from .kernel_pool import _IntOrTuple, _Pool

__all__ = ["AvgPool1d", "AvgPool2d", "AvgPool3d", "SpatialMean"]


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
