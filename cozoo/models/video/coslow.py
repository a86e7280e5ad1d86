"""CoSlow: continual Slow-8×8-R50 (pytorchvideo ``slow_r50``), built from ``cozoo.co`` layers.

A ResNet-50 whose only temporal kernels are conv_a (3x1x1, padding 1) in res4 and res5; the
stem and res2/res3 work per frame. The "8×8" temporal subsampling is done by the frame sampler,
so a step is one *sampled* frame. Streaming: delay ``8 + P`` steps, receptive field ``18 + P``
frames; outputs are logits (no softmax)::

    frame t ──stem──res2──res3──res4 (6 × 3x1x1)──res5 (3 × 3x1x1)──pool(P)──projection──> logits
"""

from __future__ import annotations

from typing import Any

from .._meta import VideoInput, WeightsMeta
from .._registry import register_model
from .._weights import Weights, WeightsEnum, build_model
from ._published import LICENSE, PYTORCHVIDEO, clip_baseline, gmacs, kinetics_results, pool_variants
from .resnet import CoResNet

__all__ = ["SLOW_CONV_A_KERNELS", "CoSlow", "CoSlow_Weights", "coslow"]

#: Temporal kernel of conv_a of every block of res2..res5.
SLOW_CONV_A_KERNELS = ((1, 1, 1), (1, 1, 1, 1), (3, 3, 3, 3, 3, 3), (3, 3, 3))


class CoSlow(CoResNet):
    """Continual Slow-R50 (see ``CoResNet``): stem 1x7x7, conv_a 3x1x1 in res4/res5.

    Clip ``(B, 3, T, H, W)`` -> logits ``(B, num_classes, 1)``; frame ``(B, 3, H, W)`` -> logits
    ``(B, num_classes)`` or None during the first ``8 + P`` steps. pytorchvideo ``slow_r50``
    keys: stem ``blocks.0``, stages ``blocks.1..4``, head ``blocks.5``.
    """

    stem_temporal_kernel = 1
    conv_a_kernels = SLOW_CONV_A_KERNELS
    has_pool1 = False


_PROTOCOL = VideoInput(frames=8, sampling_rate=8, short_side=256, crop=256)


class CoSlow_Weights(WeightsEnum):  # noqa: N801 - torchvision naming
    """CoSlow checkpoints (Slow-8×8-R50 weights; 8 × 8 frames, 256² crop)."""

    KINETICS400_PYTORCHVIDEO = Weights(
        "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOW_8x8_R50.pyth",
        None,
        "pytorchvideo",
        WeightsMeta(
            display_name="CoSlow",
            input=_PROTOCOL,
            num_classes=400,
            num_params=32_454_096,
            macs_per_clip=gmacs(54.87, _PROTOCOL.clip_shape, "Slow-8x8-R50 clip"),
            macs_per_step=gmacs(6.90, _PROTOCOL.step_shape),
            variants=pool_variants((8, 64), 18, 8),
            published=kinetics_results(
                {8: 65.90, 64: 73.05}, {8: 175.98, 64: 176.41}, {8: 2.80, 64: 2.92}
            ),  # fmt: skip
            baseline=clip_baseline("Slow-8x8-R50", 67.42, 266.04, 0.38),
            recipe="coslow",
            license=LICENSE,
            source=PYTORCHVIDEO,
            temporal_note="receptive field 18 + P frames, delay 8 + P steps",
        ),
    )
    DEFAULT = KINETICS400_PYTORCHVIDEO


@register_model(weights=CoSlow_Weights)
def coslow(*, weights: Any = None, **kwargs: Any) -> CoSlow:
    """CoSlow (input 256², 8 × 8 sampling); ``CoSlow₈``: ``pool_size=8``. ``kwargs``:
    ``CoSlow``'s (``pool_size``, ``temporal_fill``, ``num_classes``, ``dropout``)."""
    return build_model(CoSlow, CoSlow_Weights, weights, **kwargs)
