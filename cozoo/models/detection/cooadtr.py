"""CoOadTR-b1 and CoOadTR-b2: continual transformers for online action detection
(Hedegaard, Bakhtiarnia & Iosifidis, "Continual Transformers: Redundancy-Free Attention for
Online Inference", ICLR 2023), on per-step video features (THUMOS14: two-stream TSN features,
one step = 6 frames ~ 0.2 s).

Clip ``(N, D, T=64)`` -> ``(N, K, 1)``; a step ``(N, D)`` -> ``(N, K)``, or None during the
first 63 steps of a stream. The step at stream time ``t`` equals the clip forward on the window
``[t-63, t]`` with the positional offset ``(t-63) mod pe_rows``::

    features (N, D) -> Linear D->1024 -> + recycling PE row (t mod K) -> Dropout
      b1: single-output layer (the newest token attends over the last 64 keys/values)
      b2: retroactive layer (all 64 window outputs updated) -> single-output layer on them
    -> LayerNorm -> Linear 1024->K -> logits (N, K)

Layers are post-norm with a GELU feed-forward of width 1024 and 8 heads, attention without
biases. The b2 step computes layer 2's query for the newest token only (the original
projects all 64 queries and keeps one).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Union

from torch import Tensor, nn

from cozoo import co

from .._registry import register_model
from .._weights import WeightsEnum, build_model
from ._published import weights_members
from .checkpoints import CONTINUAL_TRANSFORMERS, TORCH, detect_format, to_cozoo_keys
from .counting import published_step_macs
from .layers import ChannelLayerNorm, StreamPositionalEncoding, encoder_layer

__all__ = ["CoOadTR", "CoOadTR_B1_Weights", "CoOadTR_B2_Weights", "cooadtr_b1", "cooadtr_b2"]

#: The encoder layers of each depth (see ``layers.encoder_layer``).
_LAYER_PLAN = {1: ("single",), 2: ("retroactive", "single_window")}
PE_KINDS = ("fixed", "learned")


class CoOadTR(co.Sequential):
    """A continual online-detection transformer (see the module docstring).

    Args:
        feature_dim: ``D`` of a step: 4096 (Kinetics TSN rgb+flow), 3072 (ActivityNet TSN),
            +4096 with audio.
        num_classes: ``K`` (THUMOS14: 22, background and ambiguous included).
        layers: 1 (CoOadTR-b1) or 2 (CoOadTR-b2).
        window: tokens a prediction attends over (64).
        embed_dim, heads, ff_dim: 1024, 8, 1024.
        dropout: after the positional encoding, on the attention weights and in the
            feed-forward (0.1).
        pe: ``"fixed"`` (the cyclic table, no parameters) or ``"learned"``.
        pe_rows: ``K`` of the recycling positional encoding (127 = 2 x 64 - 1: a window never
            reuses a row; 64: rows wrap inside the window).

    ``forward(x (N, D, T), offset=None)``: ``offset`` sets the positional offset of this call
    (an int, or ``(N,)`` per clip); see ``layers.StreamPositionalEncoding``.
    """

    source_formats = ("cozoo", CONTINUAL_TRANSFORMERS, TORCH)

    def __init__(
        self,
        feature_dim: int = 4096,
        num_classes: int = 22,
        layers: int = 1,
        window: int = 64,
        embed_dim: int = 1024,
        heads: int = 8,
        ff_dim: int = 1024,
        dropout: float = 0.1,
        pe: str = "fixed",
        pe_rows: int = 127,
    ):
        if layers not in _LAYER_PLAN:
            raise ValueError(f"CoOadTR: layers must be 1 or 2, got {layers!r}")
        if pe not in PE_KINDS:
            raise ValueError(f"CoOadTR: pe must be one of {PE_KINDS}, got {pe!r}")
        if pe_rows < window:
            raise ValueError(
                f"CoOadTR: pe_rows={pe_rows} < window={window}: a clip forward needs a "
                "positional row per token"
            )
        layer_args = (embed_dim, heads, ff_dim, dropout, window)
        plan = _LAYER_PLAN[layers]
        super().__init__(
            OrderedDict(
                embedding=co.Linear(feature_dim, embed_dim, channel_dim=1),
                position=StreamPositionalEncoding(embed_dim, pe_rows, learned=pe == "learned"),
                dropout=nn.Dropout(dropout),
                encoder=co.Sequential(*(encoder_layer(k, *layer_args) for k in plan)),
                norm=ChannelLayerNorm(embed_dim),
                head=co.Linear(embed_dim, num_classes, channel_dim=1),
            )
        )
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.num_layers = layers
        self.window = window

    def _check_features(self, x: Any, dims: int) -> None:
        if not isinstance(x, Tensor) or x.dim() != dims or x.shape[1] != self.feature_dim:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            layout = "(N, D, T)" if dims == 3 else "(N, D)"
            raise ValueError(
                f"{type(self).__name__}: expected {'a clip' if dims == 3 else 'a step'} {layout} "
                f"with D={self.feature_dim} features, got {got}"
            )

    def forward(self, input: Tensor, offset: Union[None, int, Tensor] = None) -> Tensor:
        """Clip ``(N, D, T)`` (``T <= pe_rows``; 64 in the published protocol) ->
        ``(N, K, 1)``, the prediction for the clip's last step."""
        self._check_features(input, 3)
        if offset is not None:
            self.position.state_index = offset
        return super().forward(input)

    def forward_step(self, input: Tensor, update_state: bool = True) -> Optional[Tensor]:
        """Step ``(N, D)`` -> ``(N, K)``, or None during the first ``window - 1`` steps."""
        self._check_features(input, 2)
        return super().forward_step(input, update_state)

    def published_step_macs(self) -> int:
        """MACs of one step under the convention of the published figures
        (``counting.published_step_macs``); ``cozoo.co.flops.complexity`` counts what the step
        really multiplies."""
        attention = self.encoder[-1]
        return published_step_macs(
            self.num_layers,
            self.feature_dim,
            self.num_classes,
            self.window,
            attention.d_model,
            attention.self_attn.num_heads,
            attention.linear1.out_features,
        )

    # ---- checkpoints ------------------------------------------------------------------------
    def detect_source_format(self, state: Mapping[str, Any]) -> str:
        return detect_format(state)

    def convert_state_dict(self, state: Dict[str, Any], fmt: str) -> Dict[str, Any]:
        return state if fmt == "cozoo" else to_cozoo_keys(state, fmt, self.num_layers)


CoOadTR_B1_Weights = WeightsEnum("CoOadTR_B1_Weights", weights_members("cooadtr_b1"))
CoOadTR_B1_Weights.__doc__ = "CoOadTR-b1 on THUMOS14 (meta only: no checkpoint was released)."
CoOadTR_B2_Weights = WeightsEnum("CoOadTR_B2_Weights", weights_members("cooadtr_b2"))
CoOadTR_B2_Weights.__doc__ = "CoOadTR-b2 on THUMOS14 (meta only: no checkpoint was released)."


def _b1(**kwargs: Any) -> CoOadTR:
    return CoOadTR(layers=1, **kwargs)


def _b2(**kwargs: Any) -> CoOadTR:
    return CoOadTR(layers=2, **kwargs)


@register_model(weights=CoOadTR_B1_Weights, task="detection")
def cooadtr_b1(*, weights: Any = None, **kwargs: Any) -> CoOadTR:
    """CoOadTR-b1: one continual single-output layer; ``kwargs``: ``CoOadTR``'s."""
    return build_model(_b1, CoOadTR_B1_Weights, weights, **kwargs)


@register_model(weights=CoOadTR_B2_Weights, task="detection")
def cooadtr_b2(*, weights: Any = None, **kwargs: Any) -> CoOadTR:
    """CoOadTR-b2: a retroactive layer, then a single-output layer; ``kwargs``: ``CoOadTR``'s."""
    return build_model(_b2, CoOadTR_B2_Weights, weights, **kwargs)
