"""Continual convolutions: ``Conv1d``, ``Conv2d``, ``Conv3d`` (time is dim 2).

``forward`` is exactly ``torch.nn``'s. A step stacks the ``k`` frames its kernel taps and runs
one convolution of one lower dimension whose input channels are ``(channel, tap)`` pairs::

    taps (B, C, k, H, W) --view--> (B, C*k, H, W)
         --conv2d(weight.view(C', C/g*k, kh, kw))--> (B, C', H', W')

so a step executes exactly the multiply-accumulates of one output frame, on the fast 2-D path.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .window import SlidingWindow

__all__ = ["Conv1d", "Conv2d", "Conv3d"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_SUPPORTED_PADDING_MODES = ("zeros", "replicate", "reflect", "circular")


def _same_padding(kernel: Sequence[int], dilation: Sequence[int]) -> Tuple[Tuple[int, int], ...]:
    """(left, right) padding per dim that ``padding="same"`` applies (extra on the right)."""
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


#: Frames of at least this many pixels run a depthwise k-tap step per tap (measured faster
#: from about 40x40 on a 2-core AVX-512 CPU; slower on small frames, where calls dominate).
_PER_TAP_MIN_PIXELS = 1600


def _stack_taps(frames: Sequence[Tensor], channels_last: bool) -> Tensor:
    """Frames ``(B, C, *S)`` -> taps ``(B, C, k, *S)``; for channels-last frames ``(B, C, H, W)``
    the taps are ``channels_last_3d`` (a plain concatenation of the frames' memory), the layout
    in which oneDNN's depthwise 3-D convolution is about twice as fast."""
    if channels_last:
        return torch.stack([f.permute(0, 2, 3, 1) for f in frames], 1).permute(0, 4, 1, 2, 3)
    return torch.stack(frames, 2)


def _weighted_sum(
    frames: Sequence[Tensor], weight: Tensor, bias: Optional[Tensor], channels_last: bool
) -> Tensor:
    """A depthwise conv with a ``(k, 1, 1)`` kernel on its ``k`` taps ``(B, C, H, W)``:
    ``sum_j weight[:, j] * frames[j] (+ bias)`` with ``weight (C, k)`` (oneDNN has no fast
    kernel for this shape), in the frames' own layout."""
    if channels_last:  # (B, H, W, C) views: the weights broadcast over the innermost dim
        frames = [f.permute(0, 2, 3, 1) for f in frames]
        taps = weight.t()  # (k, C)
    else:
        taps = weight.t().reshape(weight.shape[1], -1, *(1,) * (frames[0].dim() - 2))
    y = frames[0] * taps[0]
    for frame, w in zip(frames[1:], taps[1:]):
        y.addcmul_(frame, w)
    if bias is not None:
        y += bias if channels_last else bias.reshape(-1, *(1,) * (frames[0].dim() - 2))
    return y.permute(0, 3, 1, 2) if channels_last else y


def _tap_major(weight: Tensor, taps: int) -> Tensor:
    """``(C', C, k, kh, kw)`` -> channels-last ``(C', k*C, kh, kw)``, input channel ``j*C + c``.

    oneDNN reorders a weight in another layout on every call, slower than this copy (which is
    free for 1x1 kernels with one tap). Not cached: a cache could not see in-place updates of
    ``weight.data``."""
    merged = weight.transpose(1, 2).flatten(1, 2) if taps > 1 else weight.flatten(1, 2)
    return merged.contiguous(memory_format=torch.channels_last)


def _is_channels_last(x: Tensor) -> bool:
    """A 4-D tensor laid out ``(B, H, W, C)`` in memory (and not also plain contiguous)."""
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not (x.is_contiguous())
    )


class _ContinualConv(SlidingWindow):
    """Shared implementation of the continual convolutions."""

    _dims: int
    # torch stores these as instance attributes; plain class attributes shadow the CoModule
    # properties so that torch's __init__ can assign them.
    stride = None
    padding = None

    def _init_continual(self, temporal_fill: Optional[str]) -> None:
        name = type(self).__name__
        if self.padding_mode not in _SUPPORTED_PADDING_MODES:
            raise ValueError(f"{name}: unknown padding_mode {self.padding_mode!r}")
        kernel, dilation = self.kernel_size, self.dilation
        if isinstance(self.padding, str):
            pads = (
                _same_padding(kernel, dilation)
                if self.padding == "same"
                else ((0, 0),) * len(kernel)
            )
            t_left, t_right = pads[0]
            if t_left != t_right:
                raise ValueError(
                    f"{name}: padding='same' needs an odd temporal window to pad time "
                    f"symmetrically (kernel {kernel[0]}, dilation {dilation[0]}); "
                    "pass explicit padding instead"
                )
            if all(left == right for left, right in pads):
                self.padding = tuple(left for left, _ in pads)
                self._reversed_padding_repeated_twice = [
                    p for p in self.padding[::-1] for _ in (0, 1)
                ]
        else:
            pads = tuple((p, p) for p in self.padding)
        t_pad = pads[0][0]
        if self.padding_mode in ("reflect", "circular") and t_pad > 0:
            raise ValueError(
                f"{name}: padding_mode={self.padding_mode!r} would pad time with future frames, "
                "which a stream does not have; use 'zeros' or 'replicate', or temporal padding 0"
            )
        if temporal_fill is None:
            temporal_fill = "replicate" if self.padding_mode == "replicate" else "zeros"
        self._init_window(kernel[0], self.stride[0], t_pad, dilation[0], temporal_fill)
        self._depthwise = self.groups > 1 and self.groups == self.in_channels and self._dims > 1
        # 1x1 in space (stride 1, no spatial padding): a per-pixel matmul over channels.
        self._spatially_pointwise = (
            self._dims == 3
            and all(k == 1 for k in kernel[1:])
            and all(st == 1 for st in self.stride[1:])
            and all(p == (0, 0) for p in pads[1:])
        )

        spatial = pads[1:]
        needs_pre_pad = self.padding_mode != "zeros" or any(lt != rt for lt, rt in spatial)
        if needs_pre_pad and any(lt or rt for lt, rt in spatial):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            flat = [p for left, right in reversed(spatial) for p in (left, right)]
            self._frame_pad = (flat, mode)
            self._spatial_padding: Tuple[int, ...] = (0,) * len(spatial)
        else:
            self._frame_pad = None
            self._spatial_padding = tuple(left for left, _ in spatial)

    # ---- torch.nn forward -------------------------------------------------------------------
    def forward(self, input: Tensor) -> Tensor:
        """Clip ``(B, C, T, *S)`` -> ``(B, C', T', *S')``, exactly as ``torch.nn``."""
        self._check_clip(input, self._dims + 2)
        return self._conv_forward(input, self.weight, self.bias)

    # ---- step machinery -----------------------------------------------------------------------
    def _input_channels(self) -> int:
        return self.in_channels

    def _steps(self, x: Optional[Tensor], state, pad_end: bool = False):
        if x is not None:
            self._check_clip(x, self._dims + 2)  # before SlidingWindow indexes time (dim 2)
        return super()._steps(x, state, pad_end)

    def _prepare_frame(self, x: Tensor) -> Tensor:
        if self._frame_pad is None:
            return x
        flat, mode = self._frame_pad
        return F.pad(x, flat, mode=mode)

    def _prepare_clip(self, x: Tensor) -> Tensor:
        self._check_clip(x, self._dims + 2)
        if self._frame_pad is None:
            return x
        flat, mode = self._frame_pad
        return F.pad(x, flat + [0, 0], mode=mode)

    def _window_output(self, window: Sequence[Tensor]) -> Tensor:
        used = self._used(window)
        pixels = used[-1].shape[-2:].numel() if self._dims == 3 else 0
        # A (B, C, 1, 1) frame (a squeeze-excitation's pooled one) is laid out both ways: the
        # channels-last paths make its 1x1 convs matmuls (conv2d would take a slow path).
        channels_last = self._dims == 3 and (pixels == 1 or _is_channels_last(used[-1]))
        if self._depthwise and len(used) > 1:
            if self._spatially_pointwise:
                return _weighted_sum(used, self.weight.flatten(1), self.bias, channels_last)
            if channels_last and pixels >= _PER_TAP_MIN_PIXELS:
                return self._depthwise_per_tap(used)
            # Depthwise kernels have a direct implementation that beats the merged form (which
            # becomes a grouped conv with k input channels per group): run it on the k taps.
            taps = _stack_taps(used, channels_last)  # (B, C, k, *S)
            return _CONV[self._dims](
                taps,
                self.weight,
                self.bias,
                (1,) + tuple(self.stride[1:]),
                (0,) + self._spatial_padding,
                (1,) + tuple(self.dilation[1:]),
                self.groups,
            ).squeeze(2)
        if channels_last and self.groups == 1:
            # (B, H, W, C) memory: the k taps are concatenated on the innermost dim (block
            # copies), i.e. channel index j*C + c, against the weight in that order.
            merged = used[0]
            if len(used) > 1:
                merged = torch.cat([f.permute(0, 2, 3, 1) for f in used], -1).permute(0, 3, 1, 2)
            if self._spatially_pointwise:
                # A 1x1 conv is one matmul over the innermost dim that keeps the layout
                # (conv2d would hand the frame to a path that copies it back). One tap: the
                # weight as it is, viewed (C', C).
                weight = (
                    self.weight.reshape(self.out_channels, -1)
                    if len(used) == 1
                    else _tap_major(self.weight, len(used)).flatten(1)
                )
                y = F.linear(merged.permute(0, 2, 3, 1), weight, self.bias)
                return y.permute(0, 3, 1, 2)
            weight = _tap_major(self.weight, len(used))  # (C', k*C, *kS), channels-last
        else:
            # One tap needs no copy; k taps are stacked as channels: (B, C*k, *S), c*k + j.
            merged = used[0] if len(used) == 1 else torch.stack(used, 2).flatten(1, 2)
            weight = self.weight.flatten(1, 2)  # (C', C/g*k, *kS)
            if self._dims == 1:
                if self.groups == 1:
                    return F.linear(merged, weight, self.bias)
                return F.conv1d(
                    merged.unsqueeze(-1), weight.unsqueeze(-1), self.bias, groups=self.groups
                ).squeeze(-1)
        return _CONV[self._dims - 1](
            merged,
            weight,
            self.bias,
            self.stride[1:],
            self._spatial_padding,
            self.dilation[1:],
            self.groups,
        )

    def _depthwise_per_tap(self, frames: Sequence[Tensor]) -> Tensor:
        """A depthwise step as one 2-D depthwise conv per tap, summed: on large frames this
        beats stacking the taps into a 3-D input (a copy of k frames)."""
        args = (self.stride[1:], self._spatial_padding, self.dilation[1:], self.groups)
        y = F.conv2d(frames[0], self.weight[:, :, 0], self.bias, *args)
        for j in range(1, len(frames)):
            y += F.conv2d(frames[j], self.weight[:, :, j], None, *args)
        return y

    def _clip_output(self, frames: Tensor) -> Tensor:
        return _CONV[self._dims](
            frames,
            self.weight,
            self.bias,
            self.stride,
            (0,) + self._spatial_padding,
            self.dilation,
            self.groups,
        )

    @classmethod
    def build_from(cls, module: nn.Module, temporal_fill: Optional[str] = None, **overrides):
        """A continual copy of a ``torch.nn`` convolution with the same weights."""
        kwargs = dict(
            in_channels=module.in_channels,
            out_channels=module.out_channels,
            kernel_size=module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            device=module.weight.device,
            dtype=module.weight.dtype,
            temporal_fill=temporal_fill,
        )
        kwargs.update(overrides)
        conv = cls(**kwargs)
        with torch.no_grad():
            conv.weight.copy_(module.weight)
            if module.bias is not None:
                conv.bias.copy_(module.bias)
        return conv

    def extra_repr(self) -> str:
        text = super().extra_repr()
        default_fill = "replicate" if self.padding_mode == "replicate" else "zeros"
        if self.temporal_fill != default_fill:
            text += f", temporal_fill={self.temporal_fill!r}"
        return text


_IntOrTuple = Union[int, Tuple[int, ...]]


class Conv1d(_ContinualConv, nn.Conv1d):
    """Continual ``nn.Conv1d``: clip ``(B, C, T)``, step ``(B, C)``."""

    _dims = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntOrTuple,
        stride: _IntOrTuple = 1,
        padding: Union[str, _IntOrTuple] = 0,
        dilation: _IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        temporal_fill: Optional[str] = None,
    ):
        nn.Conv1d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device, dtype,
        )  # fmt: skip
        self._init_continual(temporal_fill)


class Conv2d(_ContinualConv, nn.Conv2d):
    """Continual ``nn.Conv2d`` over ``(B, C, T, S)``: step ``(B, C, S)``."""

    _dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntOrTuple,
        stride: _IntOrTuple = 1,
        padding: Union[str, _IntOrTuple] = 0,
        dilation: _IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        temporal_fill: Optional[str] = None,
    ):
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device, dtype,
        )  # fmt: skip
        self._init_continual(temporal_fill)


class Conv3d(_ContinualConv, nn.Conv3d):
    """Continual ``nn.Conv3d`` over ``(B, C, T, H, W)``: step ``(B, C, H, W)``."""

    _dims = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntOrTuple,
        stride: _IntOrTuple = 1,
        padding: Union[str, _IntOrTuple] = 0,
        dilation: _IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        temporal_fill: Optional[str] = None,
    ):
        nn.Conv3d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device, dtype,
        )  # fmt: skip
        self._init_continual(temporal_fill)
