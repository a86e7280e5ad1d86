"""``CoSkeletonNet``: the continual skeleton classifiers (CoST-GCN, CoA-GCN, CoS-TR and the
stride-one CoST-GCN*, CoA-GCN*, CoS-TR*), built from ``cozoo.co`` layers.

Streaming one frame of skeletons ``(N, C, V, M)`` at a time::

    frame -> data_bn -> layer1 .. layer10 -> mean over joints and persons -> pool(P, Q) -> fc
             (per      (unit per frame, temporal conv over    (N, 256)    (last P    logits
             joint)     the last 9 block steps, shortcut)                  steps)     (N, K)

In a block, the shortcut is delayed to the centre of the temporal conv's window (4 block steps)
by ``co.BroadcastReduce``; the strided blocks (layer5, layer8 of the original form) emit every
other step. The original form (padding 4, strides 2) predicts every 4th frame and its pool is
zero-padded (P = 75, Q = 19) so that the first prediction comes at frame 296; the mod form
predicts every frame from frame 299 on, each prediction equal to the regular mod network on the
last 300 frames.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from torch import nn

from cozoo import co

from . import checkpoints
from .layout import (
    TEMPORAL_KERNEL,
    BlockPlan,
    block_plan,
    check_graph,
    default_pool,
    kaiming_init,
    shortcut_conv,
    spatial_unit,
    temporal_conv,
)
from .persons import PersonJointMean, SkeletonDataNorm
from .regular import RegularSkeletonNet
from .units import ADAPTIVE_UNITS

__all__ = ["CoSkeletonNet"]


def _shortcut(plan: BlockPlan) -> nn.Module:
    """The block shortcut, aligned with the centre of the temporal conv's window: a mod block
    (no padding) drops the first and last 4 frames of a clip and delays steps by 4; the padded
    original is aligned by ``co.BroadcastReduce``'s automatic delay (4 input steps: 2 output
    steps after a stride of 2)."""
    crop = TEMPORAL_KERNEL // 2 - plan.padding
    layers: Dict[str, nn.Module] = OrderedDict()
    if crop:  # before the 1x1 conv, which then skips the frames the crop drops
        layers["align"] = co.Delay(crop, auto_shrink=True)
    if plan.shortcut == "conv":
        layers.update(shortcut_conv(plan).named_children())
    if not layers:
        return co.Identity()
    return co.Sequential(layers)


def continual_block(plan: BlockPlan, graph: str, adaptive_unit: str) -> co.Sequential:
    """One continual block: ``(N', C_in, T, V)`` -> ``(N', C_out, T', V)``; keys ``gcn.*``,
    ``tcn.*`` (layer1) or ``block.main.gcn.*``, ``block.main.tcn.*``, ``block.residual.*``."""
    unit = spatial_unit(plan, graph, adaptive_unit)
    main = OrderedDict(gcn=unit, tcn=co.continual(temporal_conv(plan)))
    if plan.shortcut == "none":
        return co.Sequential(OrderedDict(**main, relu=nn.ReLU()))
    summed = co.BroadcastReduce(
        OrderedDict(main=co.Sequential(main), residual=_shortcut(plan)), reduce="sum"
    )
    return co.Sequential(OrderedDict(block=summed, relu=nn.ReLU()))


class CoSkeletonNet(co.Sequential):
    """A continual skeleton classifier (see the module docstring).

    ``forward(clip (N, C, T, V, M))`` -> logits ``(N, num_classes, T_out)`` (the regular
    network's clip computation, padded pool included; a mod model on 300 frames: ``T_out = 1``);
    ``forward_step(frame (N, C, V, M))`` -> ``(N, num_classes)`` or None during the first
    ``delay`` steps (296 original, 299 mod); ``forward_steps(clip)`` -> ``(N, num_classes,
    T_out)``.

    ``architecture``: ``"stgcn"``, ``"agcn"``, ``"str"``; ``mod``: stride one, no padding;
    ``pool_size``/``pool_padding``: the temporal pool (None: the published ``layout.
    default_pool`` for 300 frames; with ``pool_padding=0`` the original form's clip output
    equals the regular network's); ``graph``: ``"ntu"`` (25 joints) or ``"kinetics"`` (18);
    ``in_channels``: 3, or 6 for joint + bone; ``base_channels``: the width of layer1 (64
    published; smaller for tests); ``adaptive_unit`` (AGCN only): ``"clip"``, ``"corrected"``,
    ``"published"`` (``units.AdaptiveGraphUnit``).
    """

    source_formats: Tuple[str, ...] = checkpoints.SOURCE_FORMATS

    def __init__(
        self,
        architecture: str,
        *,
        mod: bool = False,
        num_classes: int = 60,
        graph: str = "ntu",
        in_channels: int = 3,
        num_persons: int = 2,
        pool_size: Optional[int] = None,
        pool_padding: Optional[int] = None,
        base_channels: int = 64,
        adaptive_unit: str = "corrected",
    ):
        if adaptive_unit not in ADAPTIVE_UNITS:
            raise ValueError(
                f"adaptive_unit must be one of {ADAPTIVE_UNITS}, got {adaptive_unit!r}"
            )
        joints = check_graph(graph)
        plans = block_plan(architecture, in_channels, mod, base_channels)
        layers = co.Sequential(
            OrderedDict((p.name, continual_block(p, graph, adaptive_unit)) for p in plans)
        )
        (stride,) = layers.stride
        size, padding = default_pool(layers.receptive_field, layers.padding[0], stride)
        if pool_size is not None:
            padding = max(0, padding - (size - pool_size)) if pool_padding is None else padding
            size = pool_size
        if pool_padding is not None:
            padding = pool_padding
        super().__init__(
            OrderedDict(
                data_bn=SkeletonDataNorm(in_channels, joints, num_persons),
                layers=layers,
                pool_joints=PersonJointMean(num_persons),
                pool=co.AvgPool1d(size, stride=1, padding=padding),
                fc=co.Linear(plans[-1].out_channels, num_classes, channel_dim=1),
            )
        )
        self.architecture, self.mod, self.graph = architecture, mod, graph
        self.num_classes, self.in_channels, self.num_persons = num_classes, in_channels, num_persons
        self.num_joints, self.base_channels = joints, base_channels
        self.pool_size, self.pool_padding, self.adaptive_unit = size, padding, adaptive_unit
        kaiming_init(self, num_classes)

    def clean_state(self, streams: Optional[Sequence[int]] = None) -> None:
        """Forget the state of all streams, or of the given stream indices of the batch."""
        if streams is None:
            super().clean_state()
            return
        m = self.num_persons
        # Between data_bn and pool_joints every person is a batch row: stream s is rows
        # s·M .. s·M + M - 1 there (negative s counts from the end, and so do its rows).
        rows = [int(s) * m + p for s in streams for p in range(m)]
        for name, child in self.named_children():
            child.clean_state(rows if name == "layers" else streams)

    # ---- the regular network with the same weights -----------------------------------------
    def to_regular(self) -> RegularSkeletonNet:
        """The regular network (``regular.RegularSkeletonNet``) with this model's weights; its
        ``forward`` on a clip equals this model's with ``pool_padding=0``."""
        regular = RegularSkeletonNet(
            self.architecture, mod=self.mod, num_classes=self.num_classes, graph=self.graph,
            in_channels=self.in_channels, num_persons=self.num_persons,
            base_channels=self.base_channels,
            adaptive_unit=self.adaptive_unit,
        )  # fmt: skip
        regular.load_state_dict(checkpoints.to_published_keys(self.state_dict()))
        return regular.to(next(self.parameters()).dtype).train(self.training)

    # ---- checkpoint conversion -------------------------------------------------------------
    @staticmethod
    def detect_source_format(state: Mapping[str, Any]) -> str:
        """The key layout of a state dict (``checkpoints.detect_source_format``)."""
        return checkpoints.detect_source_format(state)

    def convert_state_dict(self, state: Mapping[str, Any], source_format: str) -> Dict[str, Any]:
        """A checkpoint's state dict mapped onto this model's keys (``checkpoints.convert``):
        ``"continual_skeletons"`` (the published regular-network files), ``"continual_skeletons
        _co"`` (the original continual modules' nested keys) or ``"cozoo"``. The stored graphs
        ``A`` must equal this model's."""
        return checkpoints.convert(self, state, source_format)
