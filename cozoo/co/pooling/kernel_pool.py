"""``_Pool``: what the pools with a kernel (``AvgPool*``, ``MaxPool*``) share: construction and
its checks, ``torch.nn``'s ``forward`` (and the dilated average pool torch lacks), the spatial
per-frame pooling and ``build_from``."""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import torch.nn.functional as F
from torch import Tensor, nn

from .base import _ContinualPool

_IntOrTuple = Union[int, Tuple[int, ...]]

_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _tuple(value: Any, n: int, name: str, owner: str) -> Tuple[Any, ...]:
    """``value`` as an ``n``-tuple (an int is repeated), with a clear error on a wrong length."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{owner}: {name} needs {n} entries (time first), got {tuple(value)}")
        return tuple(value)
    return (value,) * n


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
                return _AVG[1](*args, self.count_include_pad)
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
