"""The small continual parts of the online-detection transformers: a channel-first LayerNorm,
the recycling positional encoding with an explicit offset, and the encoder layers without
attention biases that CoOadTR uses (Hedegaard et al., "Continual Transformers", ICLR 2023)."""

from __future__ import annotations

from typing import Optional, Union

import torch.nn.functional as F
from torch import Tensor, nn

from cozoo.co.module import Stateless
from cozoo.co.positional_encoding import RecyclingPositionalEncoding
from cozoo.co.transformer.base import _EncoderLayer
from cozoo.co.transformer.layers import (
    RetroactiveTransformerEncoderLayer,
    SingleOutputTransformerEncoderLayer,
)

__all__ = ["ChannelLayerNorm", "StreamPositionalEncoding", "encoder_layer"]


class ChannelLayerNorm(Stateless, nn.LayerNorm):
    """``nn.LayerNorm`` over the channels of a clip ``(N, E, T)`` or a step ``(N, E)``
    (``state_dict`` keys ``weight``, ``bias``)."""

    def forward(self, input: Tensor) -> Tensor:
        return self._frame(input.transpose(1, -1)).transpose(1, -1)

    def _frame(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class StreamPositionalEncoding(RecyclingPositionalEncoding):
    """``RecyclingPositionalEncoding`` whose offset is explicit state.

    A step at stream time ``t`` (counted from ``clean_state``) adds row ``t mod K``. A clip
    forward adds rows ``(o + i) mod K`` to its ``T`` steps, ``o`` the stored offset, which
    advances by one per call **in training only** (the recycling that makes the model
    offset-invariant); in evaluation the offset stays put, or is set per call with
    ``offset``: an int, or ``(N,)`` offsets, one per clip. The clip ``[t-T+1, t]`` of a stream
    read with ``offset=(t-T+1) mod K`` gets exactly the rows its steps get.
    """

    def forward(
        self,
        input: Tensor,
        update_index_steps: Optional[int] = None,
        offset: Union[None, int, Tensor] = None,
    ) -> Tensor:
        if offset is not None:
            self.state_index = offset
        if update_index_steps is None and not self.training:
            update_index_steps = 0
        return super().forward(input, update_index_steps)


def _drop_attention_biases(layer: _EncoderLayer) -> _EncoderLayer:
    """The layer with its attention's in- and out-projection biases removed (as
    ``nn.MultiheadAttention(bias=False)`` builds them); norms and feed-forward keep theirs."""
    attention = layer.self_attn
    attention.in_proj_bias = None
    attention.out_proj.bias = None
    return layer


def encoder_layer(
    kind: str,
    embed_dim: int,
    heads: int,
    ff_dim: int,
    dropout: float,
    window: int,
) -> _EncoderLayer:
    """A post-norm encoder layer with GELU feed-forward and bias-free attention.

    ``kind``: ``"single"`` (single-output: one token per step, the last token in ``forward``),
    ``"retroactive"`` (the whole updated window per step) or ``"single_window"`` (single-output
    after a retroactive layer: takes its windows in the step modes)."""
    args = dict(dropout=dropout, activation=nn.GELU(), sequence_len=window)
    if kind == "retroactive":
        layer = RetroactiveTransformerEncoderLayer(embed_dim, heads, ff_dim, **args)
    elif kind in ("single", "single_window"):
        layer = SingleOutputTransformerEncoderLayer(
            embed_dim, heads, ff_dim, single_output_forward=True, **args
        )
        layer.window_input = kind == "single_window"
    else:
        raise ValueError(
            f"encoder_layer: kind must be single|retroactive|single_window, got {kind!r}"
        )
    return _drop_attention_biases(layer)
