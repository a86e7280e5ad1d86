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

The package, one job per module: ``base`` (the temporal window machinery every pool shares),
``kernel_pool`` (construction, ``forward`` and ``build_from`` of the pools with a kernel),
``avg_pool`` (``AvgPool1d/2d/3d``, ``SpatialMean``), ``max_pool`` (``MaxPool1d/2d/3d``) and
``adaptive_pool`` (``AdaptiveAvgPool2d/3d``, ``AdaptiveMaxPool2d/3d``).
"""

from .adaptive_pool import (
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
)
from .avg_pool import AvgPool1d, AvgPool2d, AvgPool3d, SpatialMean
from .max_pool import MaxPool1d, MaxPool2d, MaxPool3d

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
