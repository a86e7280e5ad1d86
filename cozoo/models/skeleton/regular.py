"""The regular (clip) skeleton networks in ``torch.nn``: ST-GCN, AGCN and S-TR as
Hedegaard et al. (2023) trained them, and their stride-one "mod" forms (ST-GCN* ...).

Their parameter names are those of the published checkpoints (``data_bn``,
``layers.layer5.gcn.g_conv.0.weight``, ``layers.layer5.tcn.t_conv.weight``,
``layers.layer5.residual.t_conv.weight``, ``fc``), so those files load into them as they are.
They are the reference the continual networks (``net.CoSkeletonNet``) are tested against
(``CoSkeletonNet.to_regular`` gives one with the same weights); the spatial units and the ends
(``persons.py``) are the continual networks' own, the temporal parts plain ``torch.nn``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from .layout import (
    TEMPORAL_KERNEL,
    BlockPlan,
    block_plan,
    check_graph,
    kaiming_init,
    shortcut_conv,
    spatial_unit,
    temporal_conv,
)
from .persons import PersonJointMean, SkeletonDataNorm
from .units import ADAPTIVE_UNITS

__all__ = ["RegularBlock", "RegularSkeletonNet"]


class RegularBlock(nn.Module):
    """``ReLU(tcn(gcn(x)) + residual(x))`` with the residual cropped by ``4 - padding`` frames
    on each side (so that it lines up with the unpadded temporal conv of a mod block).
    ``(N', C_in, T, V)`` -> ``(N', C_out, T', V)``."""

    def __init__(self, plan: BlockPlan, graph: str, adaptive_unit: str):
        super().__init__()
        self.gcn = spatial_unit(plan, graph, adaptive_unit)
        self.tcn = temporal_conv(plan)
        self.shortcut = plan.shortcut
        self.crop = TEMPORAL_KERNEL // 2 - plan.padding
        if plan.shortcut == "conv":
            self.residual = shortcut_conv(plan)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.tcn(self.gcn(x))
        if self.shortcut == "none":
            return self.relu(out)
        shortcut = x[:, :, self.crop : x.shape[2] - self.crop] if self.crop else x
        if self.shortcut == "conv":
            shortcut = self.residual(shortcut)
        return self.relu(out + shortcut)


class RegularSkeletonNet(nn.Module):
    """A regular skeleton classifier: clip ``(N, C, T, V, M)`` -> logits ``(N, num_classes)``.

    ``data_bn`` normalises each (person, joint, channel); persons become batch items; the ten
    blocks of ``layout.block_plan``; the features are averaged over joints, persons and time;
    ``fc`` gives the logits (no softmax). ``architecture``: ``"stgcn"``, ``"agcn"``, ``"str"``;
    ``mod``: the stride-one, unpadded form; ``adaptive_unit``: AGCN only (``units.
    AdaptiveGraphUnit``: ``"clip"`` for AGCN, ``"published"`` for the published AGCN*).
    """

    def __init__(
        self,
        architecture: str,
        *,
        mod: bool = False,
        num_classes: int = 60,
        graph: str = "ntu",
        in_channels: int = 3,
        num_persons: int = 2,
        base_channels: int = 64,
        adaptive_unit: str = "clip",
    ):
        super().__init__()
        if adaptive_unit not in ADAPTIVE_UNITS:
            raise ValueError(
                f"adaptive_unit must be one of {ADAPTIVE_UNITS}, got {adaptive_unit!r}"
            )
        self.architecture, self.mod = architecture, mod
        self.num_classes, self.in_channels, self.num_persons = num_classes, in_channels, num_persons
        self.num_joints = check_graph(graph)
        self.data_bn = SkeletonDataNorm(in_channels, self.num_joints, num_persons)
        plans = block_plan(architecture, in_channels, mod, base_channels)
        self.layers = nn.Sequential(
            OrderedDict((p.name, RegularBlock(p, graph, adaptive_unit)) for p in plans)
        )
        self.pool_joints = PersonJointMean(num_persons)
        self.fc = nn.Linear(plans[-1].out_channels, num_classes)
        kaiming_init(self, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        features = self.pool_joints(self.layers(self.data_bn(x)))  # (N, C, T')
        return self.fc(features.mean(2))
