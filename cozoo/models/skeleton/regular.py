"""The regular (clip) skeleton networks in plain ``torch.nn``: ST-GCN, AGCN and S-TR as
Hedegaard et al. (2023) trained them, and their stride-one "mod" forms (ST-GCN* ...).

Their parameter names are those of the published checkpoints (``data_bn``,
``layers.layer5.gcn.g_conv.0.weight``, ``layers.layer5.tcn.t_conv.weight``,
``layers.layer5.residual.t_conv.weight``, ``fc``), so those files load into them as they are.
They are the reference the continual networks (``net.CoSkeletonNet``) are tested against, and
what ``to_regular`` / ``CoSkeletonNet.from_regular`` convert from and to.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

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
from .units import ADAPTIVE_UNITS

__all__ = ["RegularBlock", "RegularSkeletonNet", "skeleton_input_error"]


def skeleton_input_error(
    owner: str, x: Tensor, channels: int, joints: int, persons: int, step: bool = False
) -> Optional[str]:
    """The message for a clip ``(N, C, T, V, M)`` (or step ``(N, C, V, M)``) of the wrong
    shape; None when it fits."""
    expected = (channels, joints, persons)
    dims = x.dim() == (4 if step else 5)
    got = (x.shape[1], x.shape[-2], x.shape[-1]) if dims else None
    if dims and got == expected:
        return None
    layout = "(N, C, V, M)" if step else "(N, C, T, V, M)"
    want = (
        f"(N, {channels}, {joints}, {persons})"
        if step
        else f"(N, {channels}, T, {joints}, {persons})"
    )
    return f"{owner}: expected a {layout} input {want}, got {tuple(x.shape)}"


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
        self.data_bn = nn.BatchNorm1d(num_persons * self.num_joints * in_channels)
        plans = block_plan(architecture, in_channels, mod, base_channels)
        self.layers = nn.Sequential(
            OrderedDict((p.name, RegularBlock(p, graph, adaptive_unit)) for p in plans)
        )
        self.fc = nn.Linear(plans[-1].out_channels, num_classes)
        kaiming_init(self, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        error = skeleton_input_error(
            type(self).__name__, x, self.in_channels, self.num_joints, self.num_persons
        )
        if error:
            raise ValueError(error)
        n, c, t, v, m = x.shape
        flat = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)
        x = self.data_bn(flat).reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        x = self.layers(x)
        features = x.reshape(n, m, x.shape[1], x.shape[2], v).mean(4).mean(1)  # (N, C, T')
        return self.fc(features.mean(2))
