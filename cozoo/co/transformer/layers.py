"""The continual transformer encoder layers: single-output (one token per step), retroactive
(the whole window per step) and regular (stateless, windows in the step modes)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention.retroactive import RetroactiveMultiheadAttention
from ..attention.single_output import SingleOutputMultiheadAttention
from ..module import State
from ..validity import Valid, select_rows
from .base import (
    Activation,
    LayerState,
    _check_sequence_len,
    _EncoderLayer,
    _exportable_attention,
    _WindowStepping,
)

__all__ = [
    "RegularTransformerEncoderLayer",
    "RetroactiveTransformerEncoderLayer",
    "SingleOutputTransformerEncoderLayer",
]


# --------------------------------------------------------------------------------------------
# Single-output layer
# --------------------------------------------------------------------------------------------
class SingleOutputTransformerEncoderLayer(_WindowStepping, _EncoderLayer):
    """Transformer encoder layer whose step computes the output of one token.

    Token streaming (default): step ``t`` returns ``(N, E)``, the output of
    ``torch.nn.TransformerEncoderLayer`` (same weights) on the last L tokens, read at the newest
    token (``query_index=-1``) or at window position ``query_index``. It keeps the keys and
    values of the last L-1 tokens: O(L E + E^2) per step. The first L-1 steps return None.

    ``forward(src (N, E, T))`` is torch's layer on all T tokens ``(N, E, T)``, or only the token
    at ``query_index`` ``(N, E, 1)`` with ``single_output_forward=True``.

    With ``window_input=True`` the layer is stateless in the step modes and takes the windows a
    retroactive layer emits: step ``(N, E, L) -> (N, E)``, chunk ``(N, E, T, L) -> (N, E, T)``
    (the last layer of a deep ``TransformerEncoder``).

    Args are ``torch.nn.TransformerEncoderLayer``'s (layout fixed to ``(N, E, T)``) plus
    ``sequence_len`` (L, required), ``single_output_forward``, ``query_index`` and the
    keyword-only ``norm_first``, ``bias``, ``window_input``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Activation = F.relu,
        layer_norm_eps: float = 1e-5,
        device=None,
        dtype=None,
        sequence_len: Optional[int] = None,
        single_output_forward: bool = False,
        query_index: int = -1,
        *,
        norm_first: bool = False,
        bias: bool = True,
        window_input: bool = False,
    ):
        _check_sequence_len(type(self).__name__, sequence_len)
        attn = SingleOutputMultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=True, device=device,
            dtype=dtype, sequence_len=sequence_len, query_index=query_index,
            forward_returns_attn_mask=False, embed_dim_second=True,
            single_output_forward=single_output_forward,
        )  # fmt: skip
        super().__init__(
            d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, device, dtype,
            norm_first, bias, attn,
        )  # fmt: skip
        self.window_input = window_input

    @property
    def sequence_len(self) -> int:
        return self.self_attn.sequence_len

    @property
    def single_output_forward(self) -> bool:
        return self.self_attn.single_output_forward

    @property
    def query_index(self) -> int:
        return self.self_attn.query_index

    _single = True

    # ---- properties -------------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        return 1 if self.window_input else self.sequence_len

    @property
    def delay(self) -> int:
        return 0 if self.window_input else self.sequence_len - 1

    def _forward_length(self, t: int) -> int:
        return 1 if self.single_output_forward else t

    # ---- forward ----------------------------------------------------------------------------
    def _single_token(self, x: Tensor, mask=None, key_padding_mask=None) -> Tensor:
        """The layer's output for the token at ``query_index`` only: (N, T, E) -> (N, 1, E)."""
        length = x.shape[1]
        index = self.query_index if self.query_index >= 0 else length + self.query_index
        if not 0 <= index < length:
            raise IndexError(
                f"{type(self).__name__}: query_index {self.query_index} is out of range for "
                f"{length} tokens"
            )
        if not self.single_output_forward:  # the attention computes every query: select after
            return self._full(x, mask, key_padding_mask)[:, index : index + 1]
        attended = self._self_attention(self._attention_input(x), mask, key_padding_mask)
        return self._finish(x[:, index : index + 1], attended)

    def forward(
        self,
        src: Tensor,
        src_mask: Optional[Tensor] = None,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """``(N, E, T)`` -> ``(N, E, T)``, or ``(N, E, 1)`` with ``single_output_forward``."""
        self._check_clip(src, 3)
        x = src.transpose(1, 2)
        if self.single_output_forward:
            y = self._single_token(x, src_mask, src_key_padding_mask)
        else:
            y = self._full(x, src_mask, src_key_padding_mask)
        return y.transpose(1, 2)

    def _window(self, x: Tensor) -> Tensor:
        return self._single_token(x)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + (", " if text else "") + "window_input=True" if self.window_input else text

    # ---- token streaming --------------------------------------------------------------------
    def _fresh_inputs(self, x: Tensor) -> Tuple[Tensor, ...]:
        return (x.new_zeros(x.shape[0], self.d_model),) * self.self_attn._lag

    def _step(self, x: Tensor, state: Optional[LayerState], valid: Valid = True):
        if self.window_input:
            return _WindowStepping._step(self, x, state, valid)
        self._check_token(x)
        if valid is False:
            return None, False, state
        inputs = self._fresh_inputs(x) if state is None else state.inputs
        attended, out_valid, attn_state = self.self_attn._call_step(
            self._attention_input(x), None if state is None else state.attn, valid
        )
        lag = self.self_attn._lag
        residual = inputs[0] if lag else x
        next_inputs = (inputs + (x,))[1:] if lag else ()
        if valid is not True:
            next_inputs = select_rows(valid, next_inputs, inputs)
        new_state = LayerState(attn_state, next_inputs)
        if attended is None:
            return None, out_valid, new_state
        return self._finish(residual, attended), out_valid, new_state

    def _steps(self, x: Optional[Tensor], state: Optional[LayerState], pad_end: bool = False):
        if self.window_input:
            return _WindowStepping._steps(self, x, state, pad_end)
        if x is None or x.shape[2] == 0:
            return None, state, None
        self._check_clip(x, 3)
        if state is not None and not isinstance(state.attn.counter, int):
            return self._steps_by_stepping(x, state, pad_end, copy_frames=True)
        tokens = x.transpose(1, 2)  # (N, T, E)
        inputs = self._fresh_inputs(tokens[:, 0]) if state is None else state.inputs
        attended, attn_state, _ = self.self_attn._call_steps(
            self._attention_input(tokens).transpose(1, 2), None if state is None else state.attn,
            False,
        )  # fmt: skip
        lag, length = self.self_attn._lag, tokens.shape[1]
        full = torch.cat([torch.stack(inputs, 1), tokens], 1) if lag else tokens
        next_inputs = tuple(full[:, full.shape[1] - lag :].clone().unbind(1)) if lag else ()
        y = None
        if attended is not None:  # outputs of the last T' steps; residual of step t: full[:, t]
            steps = attended.shape[2]
            residual = full[:, length - steps : length]
            y = self._finish(residual, attended.transpose(1, 2)).transpose(1, 2)
        return y, LayerState(attn_state, next_inputs), None


# --------------------------------------------------------------------------------------------
# Retroactive layer
# --------------------------------------------------------------------------------------------
class RetroactiveTransformerEncoderLayer(_EncoderLayer):
    """Transformer encoder layer whose step returns the updated outputs of the whole window.

    Step ``t`` returns ``(N, E, L)``: ``torch.nn.TransformerEncoderLayer`` (same weights) on the
    last L tokens, all L outputs (oldest first). Attention is retroactive (O(L E) per step,
    ``RetroactiveMultiheadAttention``); the output projection, norms and feed-forward then run
    on the L updated tokens. ``forward(src (N, E, T))`` is torch's layer ``(N, E, T)``;
    ``forward_steps`` returns ``(N, E, T', L)``. The first L-1 steps return None.
    """

    def __init__(
        self,
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
    ):
        _check_sequence_len(type(self).__name__, sequence_len)
        attn = RetroactiveMultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=True, device=device,
            dtype=dtype, sequence_len=sequence_len, forward_returns_attn_mask=False,
            embed_dim_second=True,
        )  # fmt: skip
        super().__init__(
            d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, device, dtype,
            norm_first, bias, attn,
        )  # fmt: skip

    @property
    def sequence_len(self) -> int:
        return self.self_attn.sequence_len

    @property
    def receptive_field(self) -> int:
        return self.sequence_len

    @property
    def delay(self) -> int:
        return self.sequence_len - 1

    def forward(
        self,
        src: Tensor,
        src_mask: Optional[Tensor] = None,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """``(N, E, T)`` -> ``(N, E, T)``: torch's layer on the whole clip."""
        self._check_clip(src, 3)
        return self._full(src.transpose(1, 2), src_mask, src_key_padding_mask).transpose(1, 2)

    def _fresh_inputs(self, x: Tensor) -> Tuple[Tensor, ...]:
        return (x.new_zeros(x.shape[0], self.d_model),) * (self.sequence_len - 1)

    def _step(self, x: Tensor, state: Optional[LayerState], valid: Valid = True):
        self._check_token(x)
        if valid is False:
            return None, False, state
        inputs = self._fresh_inputs(x) if state is None else state.inputs
        attended, out_valid, attn_state = self.self_attn._call_step(
            self._attention_input(x), None if state is None else state.attn, valid
        )  # attended: (N, E, L)
        window = inputs + (x,)
        next_inputs = window[1:] if valid is True else select_rows(valid, window[1:], inputs)
        new_state = LayerState(attn_state, next_inputs)
        if attended is None:
            return None, out_valid, new_state
        y = self._finish(torch.stack(window, 1), attended.transpose(1, 2))
        return y.transpose(1, 2), out_valid, new_state

    def _steps(self, x: Optional[Tensor], state: Optional[LayerState], pad_end: bool = False):
        if x is None or x.shape[2] == 0:
            return None, state, None
        self._check_clip(x, 3)
        if state is not None and not isinstance(state.attn.counter, int):
            return self._steps_by_stepping(x, state, pad_end, copy_frames=True)
        tokens = x.transpose(1, 2)  # (N, T, E)
        inputs = self._fresh_inputs(tokens[:, 0]) if state is None else state.inputs
        attended, attn_state, _ = self.self_attn._call_steps(
            self._attention_input(tokens).transpose(1, 2), None if state is None else state.attn,
            False,
        )  # fmt: skip  # attended: (N, E, T', L)
        cached = self.sequence_len - 1
        full = torch.cat([torch.stack(inputs, 1), tokens], 1) if cached else tokens
        next_inputs = tuple(full[:, full.shape[1] - cached :].clone().unbind(1)) if cached else ()
        y = None
        if attended is not None:
            steps = attended.shape[2]
            # Input window of step t: full[:, t : t+L] -> (N, T', E, L) views.
            windows = full.unfold(1, self.sequence_len, 1)[:, full.shape[1] - cached - steps :]
            y = self._finish(windows.transpose(2, 3), attended.permute(0, 2, 3, 1))
            y = y.permute(0, 3, 1, 2)  # (N, E, T', L)
        return y, LayerState(attn_state, next_inputs), None


# --------------------------------------------------------------------------------------------
# Regular layer (windows in the step modes)
# --------------------------------------------------------------------------------------------
class RegularTransformerEncoderLayer(_WindowStepping, _EncoderLayer):
    """``torch.nn.TransformerEncoderLayer`` in the continual layout, for the middle of a deep
    ``TransformerEncoder``.

    ``forward(src (N, E, T))`` is torch's layer. The step modes are stateless and take whole
    windows, as a ``RetroactiveTransformerEncoderLayer`` emits them: step ``(N, E, L) ->
    (N, E, L)``, chunk ``(N, E, T, L) -> (N, E, T, L)``; each window costs a full layer,
    O(L^2 E + L E^2). ``sequence_len`` is accepted for a uniform factory signature.
    """

    _single = False

    def __init__(
        self,
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
    ):
        attn = nn.MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=True, device=device,
            dtype=dtype,
        )  # fmt: skip
        super().__init__(
            d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, device, dtype,
            norm_first, bias, attn,
        )  # fmt: skip
        self.sequence_len = sequence_len

    def _self_attention(self, x: Tensor, mask, key_padding_mask) -> Tensor:
        with _exportable_attention():
            return self.self_attn(
                x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, need_weights=False
            )[0]

    def forward(
        self,
        src: Tensor,
        src_mask: Optional[Tensor] = None,
        src_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """``(N, E, T)`` -> ``(N, E, T)``: torch's layer on the whole clip."""
        self._check_clip(src, 3)
        return self._full(src.transpose(1, 2), src_mask, src_key_padding_mask).transpose(1, 2)

    def _window(self, x: Tensor) -> Tensor:
        return self._full(x)

    def _reset_streams(self, state: State, streams: Sequence[int]) -> State:
        return state
