"""CoI3D: continual I3D-R50 8×8 (pytorchvideo ``i3d_r50``), built from ``cozoo.co`` layers.

A ResNet-50 with a 5x7x7 stem, 3x1x1 conv_a in about half the blocks and one temporal
down-sampling: the 2x1x1 max pool (stride 2) after res2 ("pool1"). In step mode everything
after pool1 runs on every 2nd step, so outputs come every 2nd step and the per-step cost
alternates; the head pool holds ``P / 2`` positions (P input frames). Streaming: delay
``16 + P`` steps, receptive field ``34 + P`` frames; outputs are logits (no softmax)::

    frame ──stem(5)──res2 (3x 3x1x1)──pool1 (2, stride 2)──res3..res5 (half rate)──pool──> logits
    steps (P = 8):  . . . . (24 ×) . O . O . O ...    first O at step 24, then every 2nd
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .._meta import VideoInput, WeightsMeta
from .._registry import register_model
from .._weights import Weights, WeightsEnum, build_model
from ._published import (
    CAFFE2,
    LICENSE,
    PYTORCHVIDEO,
    clip_baseline,
    gmacs,
    kinetics_results,
    pool_variants,
)
from .resnet import CoResNet

__all__ = ["I3D_CONV_A_KERNELS", "CoI3D", "CoI3D_Weights", "coi3d"]

#: Temporal kernel of conv_a of every block of res2..res5.
I3D_CONV_A_KERNELS = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))


class CoI3D(CoResNet):
    """Continual I3D-R50 (see ``CoResNet``): stem 5x7x7, pool1 after res2.

    Clip ``(B, 3, T, H, W)`` (T even) -> logits ``(B, num_classes, 1)``; frame ``(B, 3, H, W)``
    -> logits ``(B, num_classes)`` on steps ``16 + P, 18 + P, ...``, None otherwise.
    ``pool_size`` P counts input frames and must be even. pytorchvideo ``i3d_r50`` keys: stem
    ``blocks.0``, stages ``blocks.1, 3, 4, 5`` (``blocks.2`` is pool1), head ``blocks.6``.
    """

    pytorchvideo_stage_blocks = (1, 3, 4, 5)
    pytorchvideo_head_block = 6

    stem_temporal_kernel = 5
    conv_a_kernels = I3D_CONV_A_KERNELS
    has_pool1 = True


# co3d's CoI3D script keeps the default 0.45/0.225 normalisation (its I3D clip baseline used
# ImageNet's).
_PROTOCOL = VideoInput(frames=8, sampling_rate=8, short_side=224, crop=224)
_META = WeightsMeta(
    display_name="CoI3D",
    input=_PROTOCOL,
    num_classes=400,
    num_params=28_043_472,
    macs_per_clip=gmacs(28.61, _PROTOCOL.clip_shape, "I3D-R50 clip"),
    macs_per_step=gmacs(
        5.68,
        _PROTOCOL.step_shape,
        "peak step (the steps where pool1 emits); the other steps cost 1.52, mean 3.60 "
        "(measured with cozoo.co.flops.complexity)",
    ),
    variants=pool_variants((8, 64), 34, 16),
    published=kinetics_results({8: 59.58, 64: 56.86}, {8: 235.87, 64: 236.08}, {8: 3.00, 64: 3.15}),
    baseline=clip_baseline("I3D-R50", 63.98, 191.59, 0.93),
    recipe="coi3d",
    license=LICENSE,
    source=CAFFE2,
    temporal_note=(
        "receptive field 34 + P frames, delay 16 + P steps; then an output every 2nd step"
    ),
)


class CoI3D_Weights(WeightsEnum):  # noqa: N801 - torchvision naming
    """CoI3D checkpoints (I3D-R50 8×8 weights; 8 × 8 frames, 224² crop)."""

    KINETICS400_CAFFE2 = Weights(
        "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/I3D_8x8_R50.pkl",
        None,
        "caffe2",
        _META,
    )
    KINETICS400_PYTORCHVIDEO = Weights(
        "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/I3D_8x8_R50.pyth",
        None,
        "pytorchvideo",
        replace(
            _META,
            published=(),
            published_note=(
                "No continual accuracy was published for this file (co3d loaded the Caffe2 "
                ".pkl); the continual-inference README's 64.0 beside it is I3D's clip accuracy."
            ),
            recipe=None,
            source=PYTORCHVIDEO,
        ),
    )
    DEFAULT = KINETICS400_CAFFE2


@register_model(weights=CoI3D_Weights)
def coi3d(*, weights: Any = None, **kwargs: Any) -> CoI3D:
    """CoI3D (input 224², 8 × 8 sampling); ``CoI3D₈``: ``pool_size=8``. ``kwargs``:
    ``CoI3D``'s (``pool_size``, ``temporal_fill``, ``num_classes``, ``dropout``)."""
    return build_model(CoI3D, CoI3D_Weights, weights, **kwargs)
