"""Two-stream skeleton networks: a joint and a bone network whose logits are summed (2s-AGCN's
ensemble, Shi et al. CVPR 2019; the "2s" results of Hedegaard et al. 2023).

``TwoStream`` takes the 6-channel ``joint_bone`` input (joint channels, then bone channels) and
is itself continual: a step feeds each network its 3 channels and sums the two step outputs, so
streaming a two-stream model costs the two steps and nothing more::

    model = create_model("costgcn_mod", weights="stgcnmod_ntu60_xsub_joint.ckpt",
                         bone_weights="stgcnmod_ntu60_xsub_bone.ckpt")
    logits = model(joint_bone_clip)          # (N, 6, 300, 25, 2) -> (N, 60, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict

from torch import Tensor, nn

from cozoo import co
from cozoo.co.module import Stateless

__all__ = ["ChannelSlice", "TwoStream", "with_bone_stream"]


class ChannelSlice(Stateless):
    """Channels ``start:stop`` of dim 1: a clip ``(N, C, T, ...)`` or a step ``(N, C, ...)``."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] < self.stop:
            raise ValueError(
                f"ChannelSlice: expected at least {self.stop} channels (the joint_bone input: "
                f"joint then bone), got {tuple(x.shape)}"
            )
        return x[:, self.start : self.stop]

    def _frame(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def extra_repr(self) -> str:
        return f"{self.start}:{self.stop}"


class TwoStream(co.BroadcastReduce):
    """``joint(x[:, :C]) + bone(x[:, C:])`` for a ``(N, 2C, T, V, M)`` clip or a ``(N, 2C, V,
    M)`` step; the two networks must have the same temporal structure (the same model). The
    networks are ``model.joint.net`` and ``model.bone.net``."""

    def __init__(self, joint: nn.Module, bone: nn.Module):
        channels = int(getattr(joint, "in_channels", 3))
        branches = OrderedDict(
            joint=co.Sequential(OrderedDict(channels=ChannelSlice(0, channels), net=joint)),
            bone=co.Sequential(
                OrderedDict(channels=ChannelSlice(channels, 2 * channels), net=bone)
            ),
        )
        super().__init__(branches, reduce="sum", auto_delay=False)
        if joint.delay != bone.delay or joint.stride != bone.stride:
            raise ValueError("TwoStream: the joint and bone networks differ in delay or stride")
        self.in_channels = 2 * channels
        self.num_classes = getattr(joint, "num_classes", None)
        self.streams = 2


def with_bone_stream(
    build: Callable[..., nn.Module], weights: Any, bone_weights: Any, kwargs: Dict[str, Any]
) -> nn.Module:
    """``build(weights, **kwargs)``; with ``bone_weights``, the ``TwoStream`` of that and
    ``build(bone_weights, **kwargs)`` (each network takes 3 channels)."""
    if bone_weights is None:
        return build(weights, **kwargs)
    if kwargs.get("in_channels", 3) != 3:
        raise ValueError(
            f"bone_weights: each stream of a two-stream model takes 3 channels, got "
            f"in_channels={kwargs['in_channels']} (the two-stream model takes the 6-channel "
            "joint_bone input)"
        )
    kwargs = {k: v for k, v in kwargs.items() if k != "in_channels"}
    return TwoStream(build(weights, **kwargs), build(bone_weights, **kwargs))
