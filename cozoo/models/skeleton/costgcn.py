"""CoST-GCN and CoST-GCN*: continual ST-GCN (Hedegaard et al., Pattern Recognition 2023), and
the regular ST-GCN / ST-GCN* registered beside them as baselines.

``costgcn``: the original network (temporal padding 4, strides 2 in layer5 and layer8, pool
75 / 19): a prediction every 4th frame from frame 296, the first equal to the model's own clip
output on frames 0-299. ``costgcn_mod`` (CoST-GCN*): stride one, no padding, pool 220: a
prediction every frame from frame 299, each equal to the regular ST-GCN* on the last 300 frames.
``stgcn``: the same network with an unpadded pool (75 / 0), whose ``forward`` on a 300-frame
clip is the regular ST-GCN's output; ``stgcn_mod`` is ST-GCN* (the clip form of CoST-GCN*).
The units are 2s-AGCN's graph convolutions (``units.GraphUnit``), not the ST-GCN of Yan et al.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .._meta import SkeletonInput
from .._registry import register_model
from .._weights import WeightsEnum, build_model
from ._published import weights_members
from .net import CoSkeletonNet
from .streams import with_bone_stream

__all__ = [
    "CoSTGCN_Mod_Weights",
    "CoSTGCN_Weights",
    "costgcn",
    "costgcn_mod",
    "stgcn",
    "stgcn_mod",
]

CoSTGCN_Weights = WeightsEnum("CoSTGCN_Weights", weights_members("costgcn"))
CoSTGCN_Weights.__doc__ = "CoST-GCN checkpoints (the published ST-GCN files)."
CoSTGCN_Mod_Weights = WeightsEnum("CoSTGCN_Mod_Weights", weights_members("costgcn_mod"))
CoSTGCN_Mod_Weights.__doc__ = "CoST-GCN* checkpoints (the published ST-GCN* files)."


def _builder(enum: Any, mod: bool) -> Callable[..., CoSkeletonNet]:
    """``(weights, **kwargs) -> CoSkeletonNet`` with the weights of ``enum`` (None: files)."""
    return lambda weights, **kwargs: build_model(_net, enum, weights, mod=mod, **kwargs)


def _net(*, mod: bool, **kwargs: Any) -> CoSkeletonNet:
    return CoSkeletonNet("stgcn", mod=mod, **kwargs)


@register_model(weights=CoSTGCN_Weights)
def costgcn(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """CoST-GCN; ``kwargs``: ``CoSkeletonNet``'s (``num_classes``, ``graph``, ``in_channels``,
    ``pool_size``, ``pool_padding``, ``base_channels``); ``bone_weights``: a bone-stream
    checkpoint, for the two-stream model (``streams.TwoStream``, 6-channel joint_bone input)."""
    return with_bone_stream(_builder(CoSTGCN_Weights, mod=False), weights, bone_weights, kwargs)


@register_model(weights=CoSTGCN_Mod_Weights)
def costgcn_mod(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """CoST-GCN* (stride one, no padding, receptive field 300); ``kwargs`` as ``costgcn``."""
    return with_bone_stream(_builder(CoSTGCN_Mod_Weights, mod=True), weights, bone_weights, kwargs)


@register_model(input=SkeletonInput())
def stgcn(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """ST-GCN as a continual network with an unpadded pool: ``forward`` on a 300-frame clip
    is the regular ST-GCN (delay 372); ``weights``: a local file of the published layout."""
    kwargs.setdefault("pool_padding", 0)
    return with_bone_stream(_builder(None, mod=False), weights, bone_weights, kwargs)


@register_model(input=SkeletonInput())
def stgcn_mod(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """ST-GCN* (stride one, no padding): ``forward`` on a 300-frame clip is the regular
    ST-GCN*; the same network as ``costgcn_mod``."""
    return with_bone_stream(_builder(None, mod=True), weights, bone_weights, kwargs)
