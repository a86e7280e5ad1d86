"""CoS-TR and CoS-TR*: continual S-TR (the spatial-attention network of ST-TR, Plizzari et al.
2021, made continual by Hedegaard et al., Pattern Recognition 2023), and the regular S-TR /
S-TR* registered beside them as baselines.

Layers 1-3 are graph convolutions (``units.GraphUnit``), layers 4-10 spatial self-attention
over the joints of each frame (``units.SpatialAttentionUnit``), so both forms are exact
continual networks. ``costr``: padding 4, strides 2 in layer5/layer8, pool 75 / 19: a
prediction every 4th frame from frame 296. ``costr_mod`` (CoS-TR*): stride one, no padding,
pool 220: a prediction every frame from frame 299, each equal to S-TR* on the last 300 frames.
``str`` (builder ``s_tr``): the original network with an unpadded pool, whose ``forward`` on a
300-frame clip is the regular S-TR; ``str_mod`` is S-TR*.
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
    "CoSTR_Mod_Weights",
    "CoSTR_Weights",
    "costr",
    "costr_mod",
    "s_tr",
    "str_mod",
]

CoSTR_Weights = WeightsEnum("CoSTR_Weights", weights_members("costr"))
CoSTR_Weights.__doc__ = "CoS-TR checkpoints (the published S-TR files)."
CoSTR_Mod_Weights = WeightsEnum("CoSTR_Mod_Weights", weights_members("costr_mod"))
CoSTR_Mod_Weights.__doc__ = "CoS-TR* checkpoints (the published S-TR* files)."


def _builder(enum: Any, mod: bool) -> Callable[..., CoSkeletonNet]:
    """``(weights, **kwargs) -> CoSkeletonNet`` with the weights of ``enum`` (None: files)."""
    return lambda weights, **kwargs: build_model(_net, enum, weights, mod=mod, **kwargs)


def _net(*, mod: bool, **kwargs: Any) -> CoSkeletonNet:
    return CoSkeletonNet("str", mod=mod, **kwargs)


@register_model(weights=CoSTR_Weights)
def costr(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """CoS-TR; ``kwargs``: ``CoSkeletonNet``'s (``num_classes``, ``graph``, ``in_channels``,
    ``pool_size``, ``pool_padding``, ``base_channels``); ``bone_weights``: a bone-stream
    checkpoint, for the two-stream model (``streams.TwoStream``, 6-channel joint_bone input)."""
    return with_bone_stream(_builder(CoSTR_Weights, mod=False), weights, bone_weights, kwargs)


@register_model(weights=CoSTR_Mod_Weights)
def costr_mod(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """CoS-TR* (stride one, no padding, receptive field 300); ``kwargs`` as ``costr``."""
    return with_bone_stream(_builder(CoSTR_Mod_Weights, mod=True), weights, bone_weights, kwargs)


@register_model(input=SkeletonInput(), name="str")
def s_tr(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """S-TR as a continual network with an unpadded pool: ``forward`` on a 300-frame clip
    is the regular S-TR (delay 372); ``weights``: a local file of the published layout."""
    kwargs.setdefault("pool_padding", 0)
    return with_bone_stream(_builder(None, mod=False), weights, bone_weights, kwargs)


@register_model(input=SkeletonInput())
def str_mod(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """S-TR* (stride one, no padding): ``forward`` on a 300-frame clip is the regular
    S-TR*; the same network as ``costr_mod``."""
    return with_bone_stream(_builder(None, mod=True), weights, bone_weights, kwargs)
