"""``CoResNet``: the continual ResNet-50-3D behind CoSlow and CoI3D.

::

    frame ──stem (k_t x7x7)──res2──[pool1 2x1x1, stride 2]──res3──res4──res5──pool(P)──> logits

Each stage is a stack of bottleneck blocks (:func:`.blocks.resnet_bottleneck`) whose conv_a has
a temporal kernel of 1 or 3; the models differ in the stem's temporal kernel, which conv_a's are
temporal and whether pool1 halves the frame rate.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

from torch import nn

from cozoo import co

from .._keys import KeyRules, prefixed_rename
from .blocks import residual_block, resnet_bottleneck, resnet_head, resnet_stem, shortcut, stage
from .checkpoints import PYSLOWFAST_STAGE_RULE, PYTORCHVIDEO_BLOCK_RULES
from .net import ContinualVideoNet

__all__ = ["RESNET50_STAGES", "CoResNet"]

#: ResNet-50 stages res2..res5: (output channels, inner channels, blocks, spatial stride).
RESNET50_STAGES = ((256, 64, 3, 1), (512, 128, 4, 2), (1024, 256, 6, 2), (2048, 512, 3, 2))


class CoResNet(ContinualVideoNet):
    """Continual ResNet-50-3D: stem -> res2 -> [pool1] -> res3 -> res4 -> res5 -> head.

    A model is a subclass that sets the class attributes ``stem_temporal_kernel`` (Slow 1,
    I3D 5), ``conv_a_kernels`` (the temporal kernel of conv_a of every block, per stage
    res2..res5) and ``has_pool1`` (I3D's temporal max pool ``pool1``, 2x1x1 stride 2, after
    res2: everything after it runs on every 2nd step, and the head pool holds ``pool_size // 2``
    positions).

    Args:
        pool_size: P, the head's average pool in input frames.
        temporal_fill: ``"zeros"`` or ``"replicate"`` (state fill after a reset).
        num_classes, dropout: head.

    Clip ``(B, 3, T, H, W)`` -> logits ``(B, num_classes, 1)``; frame ``(B, 3, H, W)`` -> logits
    ``(B, num_classes)`` or None. Checkpoint formats: ``pytorchvideo`` (hub ``slow_r50`` /
    ``i3d_r50``), ``pyslowfast``, ``caffe2`` (PySlowFast ``.pkl`` blobs), ``cozoo``.
    """

    source_formats = ("cozoo", "pytorchvideo", "pyslowfast", "caffe2")
    #: pytorchvideo ``blocks.{i}`` indices of res2..res5 (I3D: ``blocks.2`` is pool1).
    pytorchvideo_stage_blocks: Tuple[int, ...] = (1, 2, 3, 4)
    #: pytorchvideo ``blocks.{i}`` index of the head.
    pytorchvideo_head_block: int = 5

    stem_temporal_kernel: int
    conv_a_kernels: Sequence[Sequence[int]]
    has_pool1: bool

    def __init__(
        self,
        *,
        pool_size: int = 64,
        temporal_fill: str = "zeros",
        num_classes: int = 400,
        dropout: float = 0.5,
    ):
        stem_temporal_kernel, conv_a_kernels, pool1 = (
            self.stem_temporal_kernel,
            self.conv_a_kernels,
            self.has_pool1,
        )
        if pool1 and (pool_size < 2 or pool_size % 2):
            raise ValueError(
                f"{type(self).__name__}: pool_size counts input frames and the head runs at "
                f"half rate, so it must be even and >= 2, got {pool_size}"
            )
        layers: Dict[str, nn.Module] = OrderedDict(
            stem=resnet_stem(64, stem_temporal_kernel, temporal_fill)
        )
        in_channels = 64
        for index, ((out_channels, inner, depth, stride), kernels) in enumerate(
            zip(RESNET50_STAGES, conv_a_kernels)
        ):
            if len(kernels) != depth:
                raise ValueError(f"res{index + 2}: {depth} conv_a kernels needed, got {kernels}")
            blocks = []
            for j, kernel in enumerate(kernels):
                cin, s = (in_channels, stride) if j == 0 else (out_channels, 1)
                branch = resnet_bottleneck(cin, inner, out_channels, s, kernel, temporal_fill)
                projection = shortcut(cin, out_channels, s) if j == 0 else None
                blocks.append(residual_block(branch, projection))
            layers[f"res{index + 2}"] = stage(blocks)
            if pool1 and index == 0:
                layers["pool1"] = co.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
            in_channels = out_channels
        positions = pool_size // 2 if pool1 else pool_size
        layers["head"] = resnet_head(in_channels, num_classes, positions, dropout, temporal_fill)
        super().__init__(layers, pool_size, num_classes)

    def _rename(self, key: str, source_format: str) -> Optional[str]:
        if source_format == "pyslowfast":
            return _RESNET_PYSLOWFAST(key)
        return self._pytorchvideo_rules()(key)

    def _pytorchvideo_rules(self) -> KeyRules:
        stages = {str(b): n for n, b in enumerate(self.pytorchvideo_stage_blocks, start=2)}
        return KeyRules(
            [
                (r"blocks\.0\.conv\.(.+)", r"stem.conv.\1"),
                (r"blocks\.0\.norm\.(.+)", r"stem.norm.\1"),
                (
                    r"blocks\.(\d+)\.res_blocks\.(\d+)\.(.+)",
                    lambda m: (
                        None
                        if m[1] not in stages
                        else prefixed_rename(
                            f"res{stages[m[1]]}.block{m[2]}.residual.",
                            PYTORCHVIDEO_BLOCK_RULES,
                            m[3],
                        )
                    ),
                ),
                (rf"blocks\.{self.pytorchvideo_head_block}\.proj\.(.+)", r"head.projection.\1"),
            ]
        )


_RESNET_PYSLOWFAST = KeyRules(
    [
        (r"s1\.pathway0_stem\.conv\.(.+)", r"stem.conv.\1"),
        (r"s1\.pathway0_stem\.bn\.(.+)", r"stem.norm.\1"),
        PYSLOWFAST_STAGE_RULE,
        (r"head\.projection\.(.+)", r"head.projection.\1"),
    ]
)
