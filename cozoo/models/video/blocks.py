"""Building blocks of the continual video models (CoX3D, CoSlow, CoI3D).

Everything here is assembled from ``cozoo.co`` layers, so every block has the three call modes
(``forward`` on a clip ``(B, C, T, H, W)``, ``forward_step`` on a frame ``(B, C, H, W)``,
``forward_steps`` on a chunk) and computes its ``receptive_field`` and ``delay`` itself. Residual
shortcuts are aligned in time by ``co.BroadcastReduce`` (a shorter branch gets a ``co.Delay``
appended automatically); no delay is counted by hand here.

Naming: every module has a non-numeric name (``stem``, ``res2``, ``block0``, ``conv_a``...), so
a parameter's key with the numeric components that ``co`` containers insert removed
(``co.state_dicts.flatten_key``) is unique. That short, *logical* key is what the checkpoint
converters target (``ContinualVideoNet.convert_state_dict``, :mod:`.checkpoints`); it maps to
the model's own key::

    res4.block0.residual.shortcut.0.conv.weight   (own key; "0": the auto-inserted delay wrapper)
    res4.block0.residual.shortcut.conv.weight     (logical key)

One residual block (X3D and ResNet bottlenecks alike)::

    x -+- shortcut: identity | conv 1x1x1 (stride 1,s,s) + BN -[co.Delay(branch delay)]-+
       |                                                                               sum -> ReLU
       +- branch: conv_a -> norm_a -> ... -> conv_c -> norm_c --------------------------+
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from cozoo import co

__all__ = [
    "TEMPORAL_FILLS",
    "conv3d",
    "norm3d",
    "residual_block",
    "resnet_bottleneck",
    "resnet_head",
    "resnet_stem",
    "shortcut",
    "squeeze_excitation",
    "stage",
    "x3d_bottleneck",
    "x3d_head",
    "x3d_stem",
]

#: Values of ``temporal_fill``: what pre-fills the state of the temporal convolutions and pools
#: after a reset. ``"zeros"`` emulates the zero padding of the regular network, ``"replicate"``
#: repeats the first frame ("boring video").
TEMPORAL_FILLS = ("zeros", "replicate")

Triple = Tuple[int, int, int]


def _triple(value: Union[int, Sequence[int]]) -> Triple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3  # type: ignore[return-value]


def _check_fill(temporal_fill: str) -> str:
    if temporal_fill not in TEMPORAL_FILLS:
        raise ValueError(f"temporal_fill must be one of {TEMPORAL_FILLS}, got {temporal_fill!r}")
    return temporal_fill


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------
def conv3d(
    in_channels: int,
    out_channels: int,
    kernel_size: Union[int, Triple],
    stride: Union[int, Triple] = 1,
    groups: int = 1,
    bias: bool = False,
    temporal_fill: str = "zeros",
) -> co.Conv3d:
    """A continual 3-D convolution with "same" padding ``k // 2`` in every dim.

    Clip ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H / s, W / s)`` (time is never strided here);
    a temporal kernel ``k_t`` adds ``k_t // 2`` steps of delay.
    """
    kernel = _triple(kernel_size)
    return co.Conv3d(
        in_channels,
        out_channels,
        kernel,
        stride=_triple(stride),
        padding=tuple(k // 2 for k in kernel),
        groups=groups,
        bias=bias,
        temporal_fill=_check_fill(temporal_fill),
    )


def norm3d(channels: int) -> nn.BatchNorm3d:
    """BatchNorm over ``(B, C, T, H, W)`` (eps 1e-5, momentum 0.1, as pytorchvideo and
    PySlowFast); containers make it continual. Steps equal clips only in eval mode."""
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


def _drop_space(x: Tensor) -> Tensor:
    """``(B, C, T, h, w)`` -> ``(B, C, T)``: spatial mean (``h = w = 1`` after the head pool)."""
    return x.mean((3, 4))


def squeeze_excitation(channels: int, reduced: int) -> co.BroadcastReduce:
    """Frame-wise squeeze-excitation: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``.

    ``(B, C, T, H, W)`` -> same shape. The squeeze is the spatial mean of *each frame*, in every
    call mode: the regular X3D averages over the whole clip (T, H, W), which a stream cannot do
    causally, so ``forward`` here differs from pytorchvideo's X3D on real video.
    No delay. Keys: ``gate.fc1.{weight,bias}``, ``gate.fc2.{weight,bias}``.
    """
    gate = co.Sequential(
        OrderedDict(
            pool=co.SpatialMean(),
            fc1=co.Conv3d(channels, reduced, 1, bias=True),
            relu=nn.ReLU(),
            fc2=co.Conv3d(reduced, channels, 1, bias=True),
            sigmoid=nn.Sigmoid(),
        )
    )
    return co.BroadcastReduce(OrderedDict(identity=co.Identity(), gate=gate), reduce="mul")


def shortcut(in_channels: int, out_channels: int, spatial_stride: int) -> co.Sequential:
    """Projection shortcut of a stage's first block: 1x1x1 conv (stride ``(1, s, s)``) + BN.

    ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H / s, W / s)``; keys ``conv.weight``, ``norm.*``.
    """
    return co.Sequential(
        OrderedDict(
            conv=conv3d(in_channels, out_channels, 1, stride=(1, spatial_stride, spatial_stride)),
            norm=norm3d(out_channels),
        )
    )


def residual_block(branch: nn.Module, projection: Optional[nn.Module] = None) -> co.Sequential:
    """``relu(shortcut(x) + branch(x))``; the shortcut is ``projection`` or the identity.

    ``co.BroadcastReduce`` delays the shortcut by the branch's delay (a ``co.Delay`` appended to
    it), so the two sums meet at the same input frame in every call mode. Keys:
    ``residual.shortcut.*``, ``residual.branch.*``.
    """
    projection = co.Identity() if projection is None else projection
    residual = co.BroadcastReduce(OrderedDict(shortcut=projection, branch=branch), reduce="sum")
    return co.Sequential(OrderedDict(residual=residual, relu=nn.ReLU()))


def stage(blocks: Iterable[nn.Module]) -> co.Sequential:
    """A stage: blocks named ``block0``, ``block1``, ... run in turn."""
    return co.Sequential(OrderedDict((f"block{j}", block) for j, block in enumerate(blocks)))


# --------------------------------------------------------------------------------------------
# X3D
# --------------------------------------------------------------------------------------------
def x3d_stem(out_channels: int = 24, temporal_fill: str = "zeros") -> co.Sequential:
    """X3D stem: 1x3x3 conv (stride 1,2,2) -> 5x1x1 depthwise temporal conv -> BN -> ReLU.

    ``(B, 3, T, H, W)`` -> ``(B, 24, T, H/2, W/2)``; receptive field 5, delay 2.
    Keys ``conv_s`` (spatial), ``conv_t`` (temporal), ``norm``.
    """
    return co.Sequential(
        OrderedDict(
            conv_s=conv3d(3, out_channels, (1, 3, 3), stride=(1, 2, 2)),
            conv_t=conv3d(
                out_channels,
                out_channels,
                (5, 1, 1),
                groups=out_channels,
                temporal_fill=temporal_fill,
            ),
            norm=norm3d(out_channels),
            relu=nn.ReLU(),
        )
    )


def x3d_bottleneck(
    in_channels: int,
    inner_channels: int,
    out_channels: int,
    spatial_stride: int = 1,
    se_channels: Optional[int] = None,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """X3D residual branch: 1x1x1 -> BN -> ReLU -> 3x3x3 depthwise (stride 1,s,s; temporal
    padding 1) -> BN -> [frame-wise SE] -> Swish (SiLU) -> 1x1x1 -> BN.

    ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H/s, W/s)``; receptive field 3, delay 1.
    """
    layers: Dict[str, nn.Module] = OrderedDict(
        conv_a=conv3d(in_channels, inner_channels, 1),
        norm_a=norm3d(inner_channels),
        relu_a=nn.ReLU(),
        conv_b=conv3d(
            inner_channels,
            inner_channels,
            3,
            stride=(1, spatial_stride, spatial_stride),
            groups=inner_channels,
            temporal_fill=temporal_fill,
        ),
        norm_b=norm3d(inner_channels),
    )
    if se_channels:
        layers["se"] = squeeze_excitation(inner_channels, se_channels)
    layers.update(
        act_b=nn.SiLU(),
        conv_c=conv3d(inner_channels, out_channels, 1),
        norm_c=norm3d(out_channels),
    )
    return co.Sequential(layers)


def x3d_head(
    in_channels: int,
    inner_channels: int,
    hidden_channels: int,
    num_classes: int,
    pool_size: int,
    dropout: float = 0.5,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """X3D head, in pytorchvideo's order: conv_5 (1x1x1) -> BN -> ReLU -> average pool ->
    lin_5 (1x1x1, no bias) -> ReLU -> dropout -> projection. Outputs logits (no softmax).

    Clip ``(B, C, T, h, w)`` -> ``(B, num_classes, 1)`` (mean over the whole clip); step
    ``(B, C, h, w)`` -> ``(B, num_classes)`` (mean over the last ``pool_size`` frames).
    """
    return co.Sequential(
        OrderedDict(
            conv_5=conv3d(in_channels, inner_channels, 1),
            norm_5=norm3d(inner_channels),
            relu_5=nn.ReLU(),
            pool=_pool(pool_size, temporal_fill),
            lin_5=conv3d(inner_channels, hidden_channels, 1),
            relu=nn.ReLU(),
            dropout=nn.Dropout(dropout),
            flatten=co.Lambda(_drop_space, takes_time=True),
            projection=co.Linear(hidden_channels, num_classes, channel_dim=1),
        )
    )


# --------------------------------------------------------------------------------------------
# ResNet-3D
# --------------------------------------------------------------------------------------------
def resnet_stem(
    out_channels: int = 64, temporal_kernel: int = 1, temporal_fill: str = "zeros"
) -> co.Sequential:
    """ResNet stem: conv ``k_t``x7x7 (stride 1,2,2) -> BN -> ReLU -> max pool 1x3x3 (stride 1,2,2).

    ``(B, 3, T, H, W)`` -> ``(B, 64, T, H/4, W/4)``; delay ``k_t // 2``. Keys ``conv``, ``norm``.
    """
    return co.Sequential(
        OrderedDict(
            conv=conv3d(
                3,
                out_channels,
                (temporal_kernel, 7, 7),
                stride=(1, 2, 2),
                temporal_fill=temporal_fill,
            ),
            norm=norm3d(out_channels),
            relu=nn.ReLU(),
            pool=co.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
    )


def resnet_bottleneck(
    in_channels: int,
    inner_channels: int,
    out_channels: int,
    spatial_stride: int = 1,
    temporal_kernel: int = 1,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """ResNet-3D bottleneck branch: conv_a ``k_t``x1x1 (``k_t`` in {1, 3}, temporal padding
    ``k_t // 2``) -> BN -> ReLU -> conv_b 1x3x3 (stride 1,s,s) -> BN -> ReLU -> conv_c 1x1x1 -> BN.

    ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H/s, W/s)``; delay ``k_t // 2``.
    """
    return co.Sequential(
        OrderedDict(
            conv_a=conv3d(
                in_channels, inner_channels, (temporal_kernel, 1, 1), temporal_fill=temporal_fill
            ),
            norm_a=norm3d(inner_channels),
            relu_a=nn.ReLU(),
            conv_b=conv3d(
                inner_channels,
                inner_channels,
                (1, 3, 3),
                stride=(1, spatial_stride, spatial_stride),
            ),
            norm_b=norm3d(inner_channels),
            relu_b=nn.ReLU(),
            conv_c=conv3d(inner_channels, out_channels, 1),
            norm_c=norm3d(out_channels),
        )
    )


def resnet_head(
    in_channels: int,
    num_classes: int,
    pool_size: int,
    dropout: float = 0.5,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """ResNet head: average pool -> dropout -> projection (logits, no softmax).

    Clip ``(B, C, T, h, w)`` -> ``(B, num_classes, 1)``; step ``(B, C, h, w)`` ->
    ``(B, num_classes)`` (mean over the last ``pool_size`` positions of its input stream).
    """
    return co.Sequential(
        OrderedDict(
            pool=_pool(pool_size, temporal_fill),
            dropout=nn.Dropout(dropout),
            flatten=co.Lambda(_drop_space, takes_time=True),
            projection=co.Linear(in_channels, num_classes, channel_dim=1),
        )
    )


def _pool(pool_size: int, temporal_fill: str) -> co.AdaptiveAvgPool3d:
    """The continual head pool: ``forward`` = global average over the clip (the regular
    network, whatever ``T``); steps = average of the last ``pool_size`` frames (delay P - 1)."""
    if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
        raise ValueError(f"pool_size must be a positive int, got {pool_size!r}")
    return co.AdaptiveAvgPool3d(
        (1, 1, 1), kernel_size=pool_size, temporal_fill=_check_fill(temporal_fill)
    )
