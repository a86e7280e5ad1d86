"""Continual max pools ``MaxPool1d/2d/3d``: time padded with -inf, as torch does."""

from __future__ import annotations

from typing import Optional

from torch import nn

from .kernel_pool import _IntOrTuple, _Pool

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d"]


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
