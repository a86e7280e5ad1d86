"""Stacking continual encoder layers: ``MhaType``, ``TransformerEncoderLayerFactory`` and
``TransformerEncoder`` (exact for any depth; the layer plan is in the package docstring)."""

from __future__ import annotations

import copy
from enum import Enum
from typing import Callable, Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor, nn

from ..container.sequential import Sequential
from ..module import CoModule, State
from ..validity import Valid
from .base import Activation, _check_sequence_len, _EncoderLayer, _resolve_activation
from .layers import (
    RegularTransformerEncoderLayer,
    RetroactiveTransformerEncoderLayer,
    SingleOutputTransformerEncoderLayer,
)

__all__ = ["MhaType", "TransformerEncoder", "TransformerEncoderLayerFactory"]


class MhaType(Enum):
    """Which layer ``TransformerEncoderLayerFactory`` builds."""

    RETROACTIVE = "retroactive"  # RetroactiveTransformerEncoderLayer
    SINGLE_OUTPUT = "single_output"  # SingleOutputTransformerEncoderLayer
    SINGLE_OUTPUT_FORWARD = "single_output_forward"  # ... with single_output_forward=True
    REGULAR = "regular"  # RegularTransformerEncoderLayer


# --------------------------------------------------------------------------------------------
# Factory and encoder
# --------------------------------------------------------------------------------------------
def TransformerEncoderLayerFactory(  # noqa: N802 - named like the layers it makes, as in the reference
    d_model: int,
    nhead: int,
    dim_feedforward: int = 2048,
    dropout: float = 0.1,
    activation: Activation = F.relu,
    layer_norm_eps: float = 1e-5,
    device=None,
    dtype=None,
    sequence_len: Optional[int] = None,
    *,
    norm_first: bool = False,
    bias: bool = True,
) -> Callable[[Union[MhaType, str]], _EncoderLayer]:
    """The hyper-parameters of continual encoder layers; returns ``make(mha_type)``.

    ``mha_type`` (an ``MhaType`` or its value): ``"retroactive"``, ``"single_output"``,
    ``"single_output_forward"`` (single output with ``single_output_forward=True``) or
    ``"regular"``. ``activation``: ``"relu"``, ``"gelu"``, a function or a module.
    """
    _check_sequence_len("TransformerEncoderLayerFactory", sequence_len)
    _resolve_activation(activation)  # fail early on a bad activation
    args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, device, dtype)
    options = {"sequence_len": sequence_len, "norm_first": norm_first, "bias": bias}

    def TransformerEncoderLayer(mha_type: Union[MhaType, str]) -> _EncoderLayer:  # noqa: N802
        kind = MhaType(mha_type)
        if kind is MhaType.RETROACTIVE:
            return RetroactiveTransformerEncoderLayer(*args, **options)
        if kind is MhaType.REGULAR:
            return RegularTransformerEncoderLayer(*args, **options)
        single = kind is MhaType.SINGLE_OUTPUT_FORWARD
        return SingleOutputTransformerEncoderLayer(*args, single_output_forward=single, **options)

    return TransformerEncoderLayer


class TransformerEncoder(CoModule):
    """A stack of ``num_layers`` continual encoder layers (+ an optional final ``norm``).

    Clips ``(N, E, T)``, steps ``(N, E)``. Every step (from the L-th on) returns the output of
    ``torch.nn.TransformerEncoder`` (same weights) on the last L tokens, read at the newest
    token, for any ``num_layers`` (the layer plan: see the package docstring).

    ``forward(src)`` is torch's encoder on the whole clip: all T tokens for one layer, the last
    token only ``(N, E, 1)`` for two or more (as in ``continual-inference``).
    ``forward_steps(clip)`` returns ``(N, E, T-L+1)`` on a fresh module; ``pad_end`` is accepted
    and has no effect (no temporal padding). The state is the layers' (``get_state`` of
    ``layers``); ``clean_state(streams=[i])`` restarts stream ``i`` only.

    Cost per step: the first layer O(L E) attention + O(L E^2 + L E F) to re-project and
    feed-forward the L updated tokens; each middle layer a full layer on the window
    (O(L^2 E + L E^2 + L E F)); the last one query over L re-projected keys/values. The paper
    recommends one or two layers for continual inference for this reason.

    Args:
        encoder_layer: a ``TransformerEncoderLayerFactory``.
        num_layers: number of layers (any >= 1).
        norm: applied to the channels of the output (e.g. ``nn.LayerNorm(d_model)``).
    """

    def __init__(
        self,
        encoder_layer: Callable[[Union[MhaType, str]], _EncoderLayer],
        num_layers: int,
        norm: Optional[nn.Module] = None,
    ):
        super().__init__()
        if isinstance(encoder_layer, nn.Module) or not callable(encoder_layer):
            raise TypeError(
                "TransformerEncoder: encoder_layer must be a TransformerEncoderLayerFactory "
                f"(got {type(encoder_layer).__name__}); to convert a torch.nn.TransformerEncoder "
                "use TransformerEncoder.build_from(module, sequence_len)"
            )
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"TransformerEncoder: num_layers must be >= 1, got {num_layers!r}")
        if num_layers == 1:
            layers = [encoder_layer(MhaType.SINGLE_OUTPUT)]
        else:
            layers = [encoder_layer(MhaType.RETROACTIVE)]
            layers += [encoder_layer(MhaType.REGULAR) for _ in range(num_layers - 2)]
            last = encoder_layer(MhaType.SINGLE_OUTPUT_FORWARD)
            last.window_input = True
            layers.append(last)
        self.layers = Sequential(*layers)
        self.num_layers = num_layers
        self.norm = norm

    @classmethod
    def build_from(
        cls, trans_enc: nn.TransformerEncoder, sequence_len: int, **kwargs
    ) -> TransformerEncoder:
        """A continual copy of ``trans_enc`` (same weights) attending over ``sequence_len``
        tokens. Post- and pre-norm, any activation, ``batch_first`` either way (the continual
        layout is ``(N, E, T)``); ``kwargs`` go to the layer factory."""
        if not isinstance(trans_enc, nn.TransformerEncoder):
            raise TypeError(
                f"TransformerEncoder.build_from expects an nn.TransformerEncoder, got "
                f"{type(trans_enc).__name__}"
            )
        first = trans_enc.layers[0]
        for layer in trans_enc.layers:
            if type(layer) is not nn.TransformerEncoderLayer:
                raise TypeError(
                    "TransformerEncoder.build_from: layers must be nn.TransformerEncoderLayer, got "
                    f"{type(layer).__name__}"
                )
            same_activation = (
                type(layer.activation) is type(first.activation)
                if isinstance(first.activation, nn.Module)
                else layer.activation is first.activation
            )
            if layer.norm_first != first.norm_first or not same_activation:
                raise ValueError(
                    "TransformerEncoder.build_from: all layers must share norm_first and activation"
                )
        attn = first.self_attn
        options = dict(
            dim_feedforward=first.linear1.out_features,
            dropout=first.dropout.p,
            activation=first.activation,
            layer_norm_eps=first.norm1.eps,
            device=first.linear1.weight.device,
            dtype=first.linear1.weight.dtype,
            sequence_len=sequence_len,
            norm_first=first.norm_first,
            bias=first.linear1.bias is not None,
        )
        options.update(kwargs)
        factory = TransformerEncoderLayerFactory(attn.embed_dim, attn.num_heads, **options)
        norm = None if trans_enc.norm is None else copy.deepcopy(trans_enc.norm)
        encoder = cls(factory, trans_enc.num_layers, norm=norm)
        encoder.load_state_dict(trans_enc.state_dict())
        return encoder

    # ---- properties ---------------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        return self.layers.receptive_field

    @property
    def delay(self) -> int:
        return self.layers.delay

    def _forward_length(self, t: int) -> int:
        return self.layers._forward_length(t)

    def _apply_norm(self, y: Optional[Tensor]) -> Optional[Tensor]:
        if y is None or self.norm is None:
            return y
        last = y.dim() - 1  # a positive dim: a traced transpose must not hold -1 (ONNX)
        return nn.Module.__call__(self.norm, y.movedim(1, last)).movedim(last, 1)

    # ---- modes --------------------------------------------------------------------------------
    def forward(
        self,
        src: Tensor,
        mask: Optional[Tensor] = None,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """``(N, E, T)`` -> ``(N, E, T)`` (one layer) or ``(N, E, 1)`` (more)."""
        x = src
        for layer in self.layers:
            x = nn.Module.__call__(layer, x, mask, src_key_padding_mask)
        return self._apply_norm(x)

    def _step(self, x: Tensor, state: State, valid: Valid = True):
        y, valid, state = self.layers._call_step(x, state, valid)
        return (None if valid is False else self._apply_norm(y)), valid, state

    def _steps(self, x: Optional[Tensor], state: State, pad_end: bool = False):
        y, state, tail = self.layers._call_steps(x, state, pad_end)
        return self._apply_norm(y), state, self._apply_norm(tail)

    # ---- state: the layers' ---------------------------------------------------------------------
    def get_state(self) -> State:
        return self.layers.get_state()

    def set_state(self, state: State) -> None:
        self.layers.set_state(state)

    def clean_state(self, streams: Optional[Sequence[int]] = None) -> None:
        self.layers.clean_state(streams)

    def _reset_streams(self, state: State, streams: Sequence[int]) -> State:
        return self.layers._reset_streams(state, streams)
