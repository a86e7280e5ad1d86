"""CoA-GCN and CoA-GCN*: continual AGCN (2s-AGCN's adaptive graph network, Shi et al. CVPR
2019, made continual by Hedegaard et al., Pattern Recognition 2023), and the regular AGCN / AGCN*
registered beside them as baselines.

``coagcn`` is **not an exact continual network**: the original adaptive unit
(``adaptive_unit="clip"``) computes one attention map over all frames of its input, which a
stream cannot do; its steps (and ``forward_steps``) use one frame at a time, its ``forward``
the whole clip (which is what the published accuracy was measured with). What holds: ``forward``
equals the regular AGCN with shared weights (``agcn``, unpadded pool), and the steps equal a
per-frame ``forward_steps``. With ``adaptive_unit="corrected"`` (a per-frame map) it is exact.

``coagcn_mod`` (CoA-GCN*): stride one, no padding, pool 220, frame-wise units: a prediction
every frame from frame 299, each equal to AGCN* on the last 300 frames. Its default unit is
``"corrected"`` (joints exchange information through the per-frame map, as intended); the
published AGCN* checkpoints were trained with a unit that mixes no joints, which
``adaptive_unit="published"`` reproduces exactly and their weights entries select
(``units.AdaptiveGraphUnit``).
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
    "CoAGCN_Mod_Weights",
    "CoAGCN_Weights",
    "coagcn",
    "coagcn_mod",
    "agcn",
    "agcn_mod",
]

CoAGCN_Weights = WeightsEnum("CoAGCN_Weights", weights_members("coagcn"))
CoAGCN_Weights.__doc__ = "CoA-GCN checkpoints (the published AGCN files)."
CoAGCN_Mod_Weights = WeightsEnum("CoAGCN_Mod_Weights", weights_members("coagcn_mod"))
CoAGCN_Mod_Weights.__doc__ = "CoA-GCN* checkpoints (the published AGCN* files)."


def _builder(enum: Any, mod: bool) -> Callable[..., CoSkeletonNet]:
    """``(weights, **kwargs) -> CoSkeletonNet`` with the weights of ``enum`` (None: files)."""
    return lambda weights, **kwargs: build_model(_net, enum, weights, mod=mod, **kwargs)


def _net(*, mod: bool, **kwargs: Any) -> CoSkeletonNet:
    return CoSkeletonNet("agcn", mod=mod, **kwargs)


@register_model(weights=CoAGCN_Weights)
def coagcn(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """CoA-GCN; ``kwargs``: ``CoSkeletonNet``'s (``num_classes``, ``graph``, ``in_channels``,
    ``pool_size``, ``pool_padding``, ``base_channels``); ``bone_weights``: a bone-stream
    checkpoint, for the two-stream model (``streams.TwoStream``, 6-channel joint_bone input)."""
    kwargs.setdefault("adaptive_unit", "clip")
    return with_bone_stream(_builder(CoAGCN_Weights, mod=False), weights, bone_weights, kwargs)


@register_model(weights=CoAGCN_Mod_Weights)
def coagcn_mod(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """CoA-GCN* (stride one, no padding, receptive field 300); ``kwargs`` as ``coagcn``."""
    return with_bone_stream(_builder(CoAGCN_Mod_Weights, mod=True), weights, bone_weights, kwargs)


@register_model(input=SkeletonInput())
def agcn(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """AGCN as a continual network with an unpadded pool: ``forward`` on a 300-frame clip
    is the regular AGCN (delay 372); ``weights``: a local file of the published layout."""
    kwargs.setdefault("pool_padding", 0)
    kwargs.setdefault("adaptive_unit", "clip")
    return with_bone_stream(_builder(None, mod=False), weights, bone_weights, kwargs)


@register_model(input=SkeletonInput())
def agcn_mod(*, weights: Any = None, bone_weights: Any = None, **kwargs: Any) -> nn.Module:
    """AGCN* (stride one, no padding): ``forward`` on a 300-frame clip is the regular
    AGCN*; the same network as ``coagcn_mod``."""
    return with_bone_stream(_builder(None, mod=True), weights, bone_weights, kwargs)
