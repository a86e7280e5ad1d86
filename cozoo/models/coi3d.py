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

from typing import Any

from ._registry import register_model
from .blocks import CoResNet
from .weights import CoI3D_Weights, load_weights

__all__ = ["I3D_CONV_A_KERNELS", "CoI3D", "coi3d"]

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

    def __init__(
        self,
        *,
        pool_size: int = 64,
        temporal_fill: str = "zeros",
        num_classes: int = 400,
        dropout: float = 0.5,
    ):
        super().__init__(
            stem_temporal_kernel=5,
            conv_a_kernels=I3D_CONV_A_KERNELS,
            pool1=True,
            pool_size=pool_size,
            temporal_fill=temporal_fill,
            num_classes=num_classes,
            dropout=dropout,
        )


@register_model(weights=CoI3D_Weights)
def coi3d(
    *, weights: Any = None, pool_size: int = 64, temporal_fill: str = "zeros",
    num_classes: int = 400, **kwargs: Any,
) -> CoI3D:  # fmt: skip
    """CoI3D (input 224², 8 × 8 sampling); ``CoI3D₈``: ``pool_size=8``."""
    model = CoI3D(
        pool_size=pool_size, temporal_fill=temporal_fill, num_classes=num_classes, **kwargs
    )
    return load_weights(model, weights, CoI3D_Weights)
