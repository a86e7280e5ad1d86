"""CoSlow: continual Slow-8×8-R50 (pytorchvideo ``slow_r50``), built from ``cozoo.co`` layers.

A ResNet-50 whose only temporal kernels are conv_a (3x1x1, padding 1) in res4 and res5; the
stem and res2/res3 work per frame. The "8×8" temporal subsampling is done by the frame sampler,
so a step is one *sampled* frame. Streaming: delay ``8 + P`` steps, receptive field ``18 + P``
frames; outputs are logits (no softmax)::

    frame t ──stem──res2──res3──res4 (6 × 3x1x1)──res5 (3 × 3x1x1)──pool(P)──projection──> logits
"""

from __future__ import annotations

from typing import Any

from ._registry import register_model
from .blocks import CoResNet
from .weights import CoSlow_Weights, load_weights

__all__ = ["SLOW_CONV_A_KERNELS", "CoSlow", "coslow"]

#: Temporal kernel of conv_a of every block of res2..res5.
SLOW_CONV_A_KERNELS = ((1, 1, 1), (1, 1, 1, 1), (3, 3, 3, 3, 3, 3), (3, 3, 3))


class CoSlow(CoResNet):
    """Continual Slow-R50 (see ``CoResNet``): stem 1x7x7, conv_a 3x1x1 in res4/res5.

    Clip ``(B, 3, T, H, W)`` -> logits ``(B, num_classes, 1)``; frame ``(B, 3, H, W)`` -> logits
    ``(B, num_classes)`` or None during the first ``8 + P`` steps. pytorchvideo ``slow_r50``
    keys: stem ``blocks.0``, stages ``blocks.1..4``, head ``blocks.5``.
    """

    def __init__(
        self,
        *,
        pool_size: int = 64,
        temporal_fill: str = "zeros",
        num_classes: int = 400,
        dropout: float = 0.5,
    ):
        super().__init__(
            stem_temporal_kernel=1,
            conv_a_kernels=SLOW_CONV_A_KERNELS,
            pool1=False,
            pool_size=pool_size,
            temporal_fill=temporal_fill,
            num_classes=num_classes,
            dropout=dropout,
        )


@register_model(weights=CoSlow_Weights)
def coslow(
    *, weights: Any = None, pool_size: int = 64, temporal_fill: str = "zeros",
    num_classes: int = 400, **kwargs: Any,
) -> CoSlow:  # fmt: skip
    """CoSlow (input 256², 8 × 8 sampling); ``CoSlow₈``: ``pool_size=8``."""
    model = CoSlow(
        pool_size=pool_size, temporal_fill=temporal_fill, num_classes=num_classes, **kwargs
    )
    return load_weights(model, weights, CoSlow_Weights)
