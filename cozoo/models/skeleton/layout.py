"""The layer plan shared by ST-GCN, AGCN and S-TR and their stride-one "mod" forms.

Ten blocks ``layer1..layer10``, each a spatial unit (``units``) then a temporal convolution of
kernel 9 over each joint (``t_conv`` + BN, no ReLU), summed with a block shortcut and rectified.
The original networks pad the temporal conv by 4 and stride by 2 in ``layer5`` and ``layer8``;
the "mod" forms (Hedegaard et al. 2023: "stride one and no padding") neither pad nor stride, so
a 300-frame clip yields 220 steps after the ten blocks and a prediction is possible every frame.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from torch import nn

from .graph import adjacency, get_skeleton
from .units import AdaptiveGraphUnit, GraphUnit, SpatialAttentionUnit

__all__ = [
    "ARCHITECTURES",
    "BlockPlan",
    "TEMPORAL_KERNEL",
    "block_plan",
    "default_pool",
    "kaiming_init",
    "shortcut_conv",
    "spatial_unit",
    "temporal_conv",
]

#: The spatial units of the three architectures.
ARCHITECTURES = ("stgcn", "agcn", "str")
TEMPORAL_KERNEL = 9
#: The temporal padding of the original networks ("same" for kernel 9).
ORIGINAL_PADDING = 4
#: The number of frames the published pool sizes are derived from.
CLIP_FRAMES = 300


@dataclass(frozen=True)
class BlockPlan:
    """One block: ``name``, widths, temporal ``stride``/``padding``, the block ``shortcut``
    (``"none"``, ``"identity"`` or ``"conv"``: 1x1 conv + BN with the block's stride) and the
    ``unit`` kind (``"gc"``, ``"agc"``, ``"sa"``)."""

    name: str
    in_channels: int
    out_channels: int
    stride: int
    padding: int
    shortcut: str
    unit: str


def block_plan(
    architecture: str, in_channels: int, mod: bool, base_channels: int = 64
) -> Tuple[BlockPlan, ...]:
    """The ten blocks of ``architecture`` (``"stgcn"``, ``"agcn"``, ``"str"``): widths
    ``b, b, b, b, 2b, 2b, 2b, 4b, 4b, 4b`` for ``b = base_channels`` (64 published), stride 2 in
    layer5/layer8 and padding 4 unless ``mod``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    b = base_channels
    widths = (b, b, b, b, 2 * b, 2 * b, 2 * b, 4 * b, 4 * b, 4 * b)
    plans = []
    previous = in_channels
    for index, width in enumerate(widths):
        strided = index in (4, 7)
        if architecture == "str":
            unit = "gc" if index < 3 else "sa"
        else:
            unit = "gc" if architecture == "stgcn" else "agc"
        shortcut = "none" if index == 0 else ("conv" if previous != width else "identity")
        plans.append(
            BlockPlan(
                name=f"layer{index + 1}",
                in_channels=previous,
                out_channels=width,
                stride=1 if mod or not strided else 2,
                padding=0 if mod else ORIGINAL_PADDING,
                shortcut=shortcut,
                unit=unit,
            )
        )
        previous = width
    return tuple(plans)


def temporal_conv(plan: BlockPlan) -> nn.Sequential:
    """The block's temporal conv (kernel 9 over each joint) + BN, keys ``t_conv``, ``bn``:
    ``(N', C, T, V)`` -> ``(N', C, T', V)``."""
    return nn.Sequential(
        OrderedDict(
            t_conv=nn.Conv2d(
                plan.out_channels,
                plan.out_channels,
                (TEMPORAL_KERNEL, 1),
                stride=(plan.stride, 1),
                padding=(plan.padding, 0),
            ),  # fmt: skip
            bn=nn.BatchNorm2d(plan.out_channels),
        )
    )


def shortcut_conv(plan: BlockPlan) -> nn.Sequential:
    """The block shortcut of a width change: 1x1 conv with the block's stride + BN."""
    return nn.Sequential(
        OrderedDict(
            t_conv=nn.Conv2d(plan.in_channels, plan.out_channels, 1, stride=(plan.stride, 1)),
            bn=nn.BatchNorm2d(plan.out_channels),
        )
    )


def spatial_unit(plan: BlockPlan, graph: str, adaptive_unit: str) -> nn.Module:
    """The spatial unit of a block, on the skeleton ``graph``."""
    matrix: np.ndarray = adjacency(graph)
    if plan.unit == "gc":
        return GraphUnit(plan.in_channels, plan.out_channels, matrix)
    if plan.unit == "agc":
        return AdaptiveGraphUnit(plan.in_channels, plan.out_channels, matrix, adaptive_unit)
    return SpatialAttentionUnit(plan.in_channels, plan.out_channels, matrix)


def check_graph(graph: str, num_joints: Optional[int] = None) -> int:
    """The number of joints of ``graph`` (validated)."""
    joints = get_skeleton(graph).num_joints
    if num_joints is not None and num_joints != joints:
        raise ValueError(f"graph {graph!r} has {joints} joints, got num_joints={num_joints}")
    return joints


def default_pool(
    receptive_field: int, padding: int, stride: int, frames: int = CLIP_FRAMES
) -> Tuple[int, int]:
    """The temporal pool ``(P, Q)`` of the published continual models for ``frames``-frame
    clips, from the ten blocks' ``receptive_field``, total ``padding`` and ``stride`` (input
    frames): ``P`` is the number of steps a clip leaves after the blocks, ``Q`` the pool's
    zero padding so that the first prediction comes by frame ``frames - 1``
    (non-mod: 75 / 19, mod: 220 / 0)."""
    size = math.ceil((frames - receptive_field + 2 * padding + 1) / stride)
    real = math.ceil((frames - receptive_field + padding + 1) / stride)
    return size, size - real


def kaiming_init(module: nn.Module, num_classes: int) -> None:
    """The init for training from scratch: convs Kaiming-normal (fan out) with zero bias
    (the graph-branch convs keep their own), BNs 1 / 0 (the graph units' BN keeps 1e-6), the
    classifier N(0, sqrt(2 / num_classes))."""
    branch_convs = set()
    for unit in module.modules():
        if isinstance(unit, GraphUnit):
            branch_convs.update(unit.g_conv)
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m not in branch_convs:
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / num_classes))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for unit in module.modules():
        if isinstance(unit, GraphUnit):
            unit.reset_parameters()
