"""CoX3D: continual X3D-S/M/L (Hedegaard & Iosifidis, co3d), built from ``cozoo.co`` layers.

The network is X3D (pytorchvideo ``create_x3d`` / PySlowFast) with three continual changes:

- temporal convolutions keep their padding: after a reset their state holds zeros
  (``temporal_fill="zeros"``, the clip's zero padding, so ``forward_steps(clip, pad_end=True)``
  reproduces ``forward(clip)``) or copies of the first frame (``"replicate"``);
- squeeze-excitation squeezes each frame spatially (scope "frame"); X3D's clip-wide mean is not
  causal, so ``forward`` differs from pytorchvideo's X3D on real video;
- the head's temporal average is a continual pool over the last ``pool_size`` (P) frames;
  ``forward`` on a clip still averages the whole clip (the regular network, whatever T).

Streaming (one output per frame after a delay of ``27 + P`` (S/M) / ``56 + P`` (L) steps)::

    frame ──stem(5x1x1)──res2..res5 (26 / 55 blocks, 3x3x3 dw, delay 1 each)──pool(P)──> logits
    steps:  . . . . . . . . . . . . . . . . . O O O O ...      first O at step ``delay``

Outputs are logits (no softmax; pytorchvideo's hub X3D applies one, co3d only in eval).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from torch import Tensor, nn

from .._keys import KeyRules, prefixed_rename
from .._meta import VideoInput, WeightsMeta
from .._registry import register_model
from .._weights import Weights, WeightsEnum, build_model
from ._published import (
    LICENSE,
    PYSLOWFAST,
    PYTORCHVIDEO,
    clip_baseline,
    gmacs,
    kinetics_results,
    pool_variants,
)
from .blocks import residual_block, shortcut, stage, x3d_bottleneck, x3d_head, x3d_stem
from .checkpoints import PYSLOWFAST_STAGE_RULE, PYTORCHVIDEO_BLOCK_RULES, identity_batch_norm
from .net import ContinualVideoNet

__all__ = [
    "X3D_DEPTHS",
    "X3D_STAGES",
    "CoX3D",
    "CoX3D_L_Weights",
    "CoX3D_M_Weights",
    "CoX3D_S_Weights",
    "cox3d_l",
    "cox3d_m",
    "cox3d_s",
]

#: Stages res2..res5: (output channels C, inner channels I, SE channels R); spatial stride 2 on
#: each stage's first block. Same for S, M and L.
X3D_STAGES: Tuple[Tuple[int, int, int], ...] = (
    (24, 54, 8),
    (48, 108, 8),
    (96, 216, 16),
    (192, 432, 32),
)
#: Blocks per stage.
X3D_DEPTHS = {"S": (3, 5, 11, 7), "M": (3, 5, 11, 7), "L": (5, 10, 25, 15)}


class CoX3D(ContinualVideoNet):
    """Continual X3D: stem -> res2 -> res3 -> res4 -> res5 -> head.

    Args:
        depths: blocks per stage (res2..res5); S/M ``(3, 5, 11, 7)``, L ``(5, 10, 25, 15)``.
        pool_size: P, the continual average pool in frames (the results' subscript).
        temporal_fill: ``"zeros"`` or ``"replicate"``: state fill after a reset.
        num_classes, dropout: head (``lin_5`` 432 -> 2048, projection 2048 -> num_classes).

    Clip ``(B, 3, T, H, W)`` -> logits ``(B, num_classes, 1)``; frame ``(B, 3, H, W)`` ->
    logits ``(B, num_classes)`` or None during the first ``delay`` steps. Receptive field
    ``57 + P - 1`` (S/M) / ``115 + P - 1`` (L) frames.

    Unlike pytorchvideo's X3D, res2's first block has a BN on its shortcut, as PySlowFast's
    (the checkpoints behind the published CoX3D numbers): +48 parameters. Loading a
    pytorchvideo checkpoint sets it to the identity.
    """

    source_formats = ("cozoo", "pytorchvideo", "pyslowfast")

    def __init__(
        self,
        *,
        depths: Sequence[int],
        pool_size: int = 64,
        temporal_fill: str = "zeros",
        num_classes: int = 400,
        dropout: float = 0.5,
    ):
        layers: Dict[str, nn.Module] = OrderedDict(stem=x3d_stem(24, temporal_fill))
        in_channels = 24
        for index, ((out_channels, inner, se), depth) in enumerate(zip(X3D_STAGES, depths)):
            blocks = []
            for j in range(depth):
                cin, stride = (in_channels, 2) if j == 0 else (out_channels, 1)
                branch = x3d_bottleneck(
                    cin, inner, out_channels, stride, se if j % 2 == 0 else None, temporal_fill
                )
                blocks.append(
                    residual_block(branch, shortcut(cin, out_channels, stride) if j == 0 else None)
                )
            layers[f"res{index + 2}"] = stage(blocks)
            in_channels = out_channels
        layers["head"] = x3d_head(
            in_channels, 432, 2048, num_classes, pool_size, dropout, temporal_fill
        )
        super().__init__(layers, pool_size, num_classes)

    def _rename(self, key: str, source_format: str) -> Optional[str]:
        rules = _PYSLOWFAST if source_format == "pyslowfast" else _PYTORCHVIDEO
        return rules(key)

    def _added_keys(
        self, source_format: str, converted: Mapping[str, Any], by_logical: Mapping[str, str]
    ) -> Dict[str, Tensor]:
        """pytorchvideo's X3D has no BN on res2's first shortcut: an identity BN."""
        prefix = "res2.block0.residual.shortcut.norm."
        if source_format != "pytorchvideo" or by_logical[prefix + "weight"] in converted:
            return {}
        return {prefix + name: t for name, t in identity_batch_norm(X3D_STAGES[0][0]).items()}


_PYTORCHVIDEO = KeyRules(
    [
        (r"blocks\.0\.conv\.conv_t\.(.+)", r"stem.conv_s.\1"),  # sic: conv_t is the spatial conv
        (r"blocks\.0\.conv\.conv_xy\.(.+)", r"stem.conv_t.\1"),  # and conv_xy the temporal one
        (r"blocks\.0\.norm\.(.+)", r"stem.norm.\1"),
        (
            r"blocks\.([1-4])\.res_blocks\.(\d+)\.(.+)",
            lambda m: prefixed_rename(
                f"res{int(m[1]) + 1}.block{m[2]}.residual.", PYTORCHVIDEO_BLOCK_RULES, m[3]
            ),
        ),
        (r"blocks\.5\.pool\.pre_conv\.(.+)", r"head.conv_5.\1"),
        (r"blocks\.5\.pool\.pre_norm\.(.+)", r"head.norm_5.\1"),
        (r"blocks\.5\.pool\.post_conv\.(.+)", r"head.lin_5.\1"),
        (r"blocks\.5\.proj\.(.+)", r"head.projection.\1"),
    ]
)

_PYSLOWFAST = KeyRules(
    [
        (r"s1\.pathway0_stem\.conv_xy\.(.+)", r"stem.conv_s.\1"),  # PySlowFast: conv_xy spatial
        (r"s1\.pathway0_stem\.conv\.(.+)", r"stem.conv_t.\1"),
        (r"s1\.pathway0_stem\.bn\.(.+)", r"stem.norm.\1"),
        PYSLOWFAST_STAGE_RULE,
        (r"head\.conv_5\.(.+)", r"head.conv_5.\1"),
        (r"head\.conv_5_bn\.(.+)", r"head.norm_5.\1"),
        (r"head\.lin_5\.(.+)", r"head.lin_5.\1"),
        (r"head\.projection\.(.+)", r"head.projection.\1"),
    ]
)


# --------------------------------------------------------------------------------------------
# Published checkpoints: the X3D weights of PySlowFast (behind the published CoX3D numbers) and
# of pytorchvideo's model zoo.
# --------------------------------------------------------------------------------------------
_PYSLOWFAST_ROOT = "https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/"
_PYTORCHVIDEO_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
_NOT_PUBLISHED = (
    "No continual accuracy was published for this file: the CoX3D numbers come from the "
    "PySlowFast x3d_*.pyth files (a different training run; pytorchvideo's X3D has no BN on "
    "the res2 block-0 shortcut). The continual-inference README lists this file next to "
    "CoX3D, with rounded co3d numbers."
)


def _x3d_meta(
    size: str, protocol: VideoInput, params: int, clip: float, step: float, offsets: Tuple,
    results: Tuple, baseline: Tuple,
) -> WeightsMeta:  # fmt: skip
    """The facts of CoX3D-``size`` with the PySlowFast weights (the published numbers)."""
    rf, delay = offsets
    return WeightsMeta(
        display_name=f"CoX3D-{size}",
        input=protocol,
        num_classes=400,
        num_params=params,
        macs_per_clip=gmacs(clip, protocol.clip_shape, f"X3D-{size} clip"),
        macs_per_step=gmacs(step, protocol.step_shape),
        variants=pool_variants(tuple(results[0]), rf, delay),
        published=kinetics_results(*results),
        baseline=clip_baseline(f"X3D-{size}", *baseline),
        recipe=f"cox3d_{size.lower()}",
        license=LICENSE,
        source=PYSLOWFAST,
        temporal_note=f"receptive field {rf} + P frames, delay {delay} + P steps",
    )


def _pytorchvideo(meta: WeightsMeta) -> WeightsMeta:
    return replace(meta, published=(), published_note=_NOT_PUBLISHED, recipe=None,
                   source=PYTORCHVIDEO)  # fmt: skip


_S = _x3d_meta(
    "S", VideoInput(frames=13, sampling_rate=6, short_side=160, crop=160), 3_794_322, 2.06, 0.17,
    (56, 27), ({13: 60.18, 64: 67.33}, {13: 41.91, 64: 41.99}, {13: 13.16, 64: 13.19}),
    (64.71, 61.29, 2.23),
)  # fmt: skip
_M = _x3d_meta(
    "M", VideoInput(frames=16, sampling_rate=5, short_side=224, crop=224), 3_794_322, 4.97, 0.33,
    (56, 27), ({16: 62.80, 64: 71.03}, {16: 68.88, 64: 68.96}, {16: 7.57, 64: 7.51}),
    (67.24, 126.29, 0.83),
)  # fmt: skip
_L = _x3d_meta(
    "L", VideoInput(frames=16, sampling_rate=5, short_side=312, crop=312), 6_153_432, 19.17,
    1.25, (114, 56), ({16: 63.03, 64: 71.61}, {16: 184.29, 64: 184.37}, {16: 2.30, 64: 2.30}),
    (69.29, 240.66, 0.25),
)  # fmt: skip


class CoX3D_S_Weights(WeightsEnum):  # noqa: N801 - torchvision naming
    """CoX3D-S checkpoints (X3D-S weights; 13 × 6 frames, 160² crop)."""

    KINETICS400_PYSLOWFAST = Weights(_PYSLOWFAST_ROOT + "x3d_s.pyth", None, "pyslowfast", _S)
    KINETICS400_PYTORCHVIDEO = Weights(
        _PYTORCHVIDEO_ROOT + "X3D_S.pyth", None, "pytorchvideo", _pytorchvideo(_S)
    )
    DEFAULT = KINETICS400_PYSLOWFAST


class CoX3D_M_Weights(WeightsEnum):  # noqa: N801
    """CoX3D-M checkpoints (X3D-M weights; 16 × 5 frames, 224² crop)."""

    KINETICS400_PYSLOWFAST = Weights(_PYSLOWFAST_ROOT + "x3d_m.pyth", None, "pyslowfast", _M)
    KINETICS400_PYTORCHVIDEO = Weights(
        _PYTORCHVIDEO_ROOT + "X3D_M.pyth", None, "pytorchvideo", _pytorchvideo(_M)
    )
    DEFAULT = KINETICS400_PYSLOWFAST


class CoX3D_L_Weights(WeightsEnum):  # noqa: N801
    """CoX3D-L checkpoints (X3D-L weights; 16 × 5 frames, 312² crop)."""

    KINETICS400_PYSLOWFAST = Weights(_PYSLOWFAST_ROOT + "x3d_l.pyth", None, "pyslowfast", _L)
    KINETICS400_PYTORCHVIDEO = Weights(
        _PYTORCHVIDEO_ROOT + "X3D_L.pyth", None, "pytorchvideo", _pytorchvideo(_L)
    )
    DEFAULT = KINETICS400_PYSLOWFAST


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------
@register_model(weights=CoX3D_S_Weights)
def cox3d_s(*, weights: Any = None, **kwargs: Any) -> CoX3D:
    """CoX3D-S (input 160², trained on 13 × 6 clips); ``CoX3D-S₁₃``: ``pool_size=13``.
    ``kwargs``: ``CoX3D``'s (``pool_size``, ``temporal_fill``, ``num_classes``, ``dropout``)."""
    return build_model(CoX3D, CoX3D_S_Weights, weights, depths=X3D_DEPTHS["S"], **kwargs)


@register_model(weights=CoX3D_M_Weights)
def cox3d_m(*, weights: Any = None, **kwargs: Any) -> CoX3D:
    """CoX3D-M (input 224², trained on 16 × 5 clips); ``CoX3D-M₁₆``: ``pool_size=16``.
    ``kwargs``: ``CoX3D``'s (``pool_size``, ``temporal_fill``, ``num_classes``, ``dropout``)."""
    return build_model(CoX3D, CoX3D_M_Weights, weights, depths=X3D_DEPTHS["M"], **kwargs)


@register_model(weights=CoX3D_L_Weights)
def cox3d_l(*, weights: Any = None, **kwargs: Any) -> CoX3D:
    """CoX3D-L (input 312², trained on 16 × 5 clips); ``CoX3D-L₁₆``: ``pool_size=16``.
    ``kwargs``: ``CoX3D``'s (``pool_size``, ``temporal_fill``, ``num_classes``, ``dropout``)."""
    return build_model(CoX3D, CoX3D_L_Weights, weights, depths=X3D_DEPTHS["L"], **kwargs)
