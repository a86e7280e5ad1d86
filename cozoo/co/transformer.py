"""Continual transformer encoders (Hedegaard et al., "Continual Transformers", arXiv 2201.06268).

Layers use the continual layout: clips ``(N, E, T)``, steps ``(N, E)``. Their parameters and
``state_dict`` keys are exactly those of ``torch.nn.TransformerEncoderLayer`` (``self_attn.*``,
``linear1``, ``linear2``, ``norm1``, ``norm2``; ``activation.*`` for an activation module), and a
``TransformerEncoder``'s are those of ``torch.nn.TransformerEncoder`` (``layers.<i>.*``,
``norm.*``), so weights load either way. ``forward`` is torch's computation on the whole clip;
post-norm (default) and pre-norm (``norm_first=True``), any activation (``"relu"``, ``"gelu"``,
a function or a module), biases or none.

Layers
------
``SingleOutputTransformerEncoderLayer``  step: the layer's output for one token (the newest, or
    window position ``query_index``) over the last L tokens -> ``(N, E)``.
``RetroactiveTransformerEncoderLayer``   step: the layer's outputs for all L tokens of the
    window, each updated retroactively -> ``(N, E, L)``.
``RegularTransformerEncoderLayer``       stateless; in the step modes it maps a *window*
    ``(N, E, L)`` to the torch layer's output on it (a layer after a retroactive one).

Deep encoders: exact for any depth
----------------------------------
After a retroactive layer every token of the window changes at every step, so later layers
cannot reuse earlier work: they recompute on the window the retroactive layer returns::

    token x_t (N, E)
      -> layer 1    RetroactiveTransformerEncoderLayer        window (N, E, L): layer 1 on the
                                                              last L tokens, all L outputs
      -> layer 2..n-1  RegularTransformerEncoderLayer         window -> window (full attention)
      -> layer n    SingleOutputTransformerEncoderLayer       window -> (N, E): the last token
                    (window_input=True)                       only (one query, L keys)

so each step equals ``torch.nn.TransformerEncoder`` applied to the last L tokens, read at the
newest token, for every depth. One layer is a single-output layer on the token stream.
(``continual-inference`` could not build 3+ layers and its 2-layer encoder drifted from step
2L-2 on, section 7.6 of the spec.)
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from enum import Enum
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import RetroactiveMultiheadAttention, SingleOutputMultiheadAttention
from .checks import StepShapeError
from .container import Sequential
from .module import CallMode, CoModule, State, Valid, call_mode, in_tensor_mode, select_rows

__all__ = [
    "MhaType",
    "RegularTransformerEncoderLayer",
    "RetroactiveTransformerEncoderLayer",
    "SingleOutputTransformerEncoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayerFactory",
]

Activation = Union[str, nn.Module, Callable[[Tensor], Tensor]]


class MhaType(Enum):
    """Which layer ``TransformerEncoderLayerFactory`` builds."""

    RETROACTIVE = "retroactive"  # RetroactiveTransformerEncoderLayer
    SINGLE_OUTPUT = "single_output"  # SingleOutputTransformerEncoderLayer
    SINGLE_OUTPUT_FORWARD = "single_output_forward"  # ... with single_output_forward=True
    REGULAR = "regular"  # RegularTransformerEncoderLayer


class LayerState(NamedTuple):
    """State of a token-streaming encoder layer (immutable)."""

    attn: Any  # the self-attention's state
    inputs: Tuple[Tensor, ...]  # raw input tokens (N, E) kept for the residual, oldest first


def _resolve_activation(activation: Activation) -> Union[nn.Module, Callable[[Tensor], Tensor]]:
    """``"relu"``/``"gelu"`` -> ``F.relu``/``F.gelu``; a module is copied; functions kept."""
    if isinstance(activation, str):
        functions = {"relu": F.relu, "gelu": F.gelu}
        if activation.lower() not in functions:
            raise ValueError(
                f"activation must be 'relu' or 'gelu' (or a callable), got {activation!r}"
            )
        return functions[activation.lower()]
    if isinstance(activation, nn.Module):
        return copy.deepcopy(activation)
    if callable(activation):
        return activation
    raise TypeError(
        f"activation must be a string, a module or a callable, got {type(activation).__name__}"
    )


@contextmanager
def _exportable_attention() -> Iterator[None]:
    """While a step is traced for export, keep torch's attention off its fused fast path
    (``_native_multi_head_attention`` has no ONNX form); elsewhere a no-op."""
    if not (in_tensor_mode() or torch.jit.is_tracing()):
        yield
        return
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def _check_sequence_len(name: str, sequence_len: Any) -> None:
    if not isinstance(sequence_len, int) or isinstance(sequence_len, bool) or sequence_len < 1:
        raise ValueError(
            f"{name}: sequence_len (the number of tokens L a step attends over) must be a "
            f"positive int, got {sequence_len!r}"
        )


# --------------------------------------------------------------------------------------------
# Shared layer machinery
# --------------------------------------------------------------------------------------------
class _EncoderLayer(CoModule):
    """The parts of ``torch.nn.TransformerEncoderLayer``, with the same names, and its math on
    channel-last tensors ``(..., E)``."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int,
        dropout: float,
        activation: Activation,
        layer_norm_eps: float,
        device,
        dtype,
        norm_first: bool,
        bias: bool,
        self_attn: nn.Module,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.self_attn = self_attn
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = _resolve_activation(activation)
        self.d_model = d_model

    # ---- torch's math (channel-last) ------------------------------------------------------
    def _ff(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _finish(self, x: Tensor, attended: Tensor) -> Tensor:
        """Everything after self-attention: ``x`` the residual tokens, ``attended`` the
        attention outputs for them (both ``(..., E)``)."""
        attended = self.dropout1(attended)
        if self.norm_first:
            y = x + attended
            return y + self._ff(self.norm2(y))
        y = self.norm1(x + attended)
        return self.norm2(y + self._ff(y))

    def _attention_input(self, x: Tensor) -> Tensor:
        return self.norm1(x) if self.norm_first else x

    def _self_attention(
        self, x: Tensor, mask: Optional[Tensor], key_padding_mask: Optional[Tensor]
    ) -> Tensor:
        """Self-attention over ``x`` (N, T, E) through the attention module's forward (its hooks
        fire, and its ``flops()`` counts a forward, also inside a step): ``(N, T, E)``, or
        ``(N, 1, E)`` for a single-output forward."""
        with _exportable_attention(), call_mode(CallMode.FORWARD):
            out = nn.Module.__call__(
                self.self_attn, x.transpose(1, 2), attn_mask=mask,
                key_padding_mask=key_padding_mask, need_weights=False,
            )  # fmt: skip
        return out.transpose(1, 2)

    def _full(self, x: Tensor, mask=None, key_padding_mask=None) -> Tensor:
        """torch's layer on every token: (N, T, E) -> (N, T, E)."""
        return self._finish(
            x, self._self_attention(self._attention_input(x), mask, key_padding_mask)
        )

    def _check_token(self, x: Any) -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.d_model:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            hint = ""
            if isinstance(x, Tensor) and x.dim() == 3:
                hint = (
                    " A window (N, E, L), as a RetroactiveTransformerEncoderLayer emits, goes to a "
                    "RegularTransformerEncoderLayer or to a SingleOutputTransformerEncoderLayer "
                    "built with window_input=True (TransformerEncoder does this)."
                )
            raise StepShapeError(
                f"{type(self).__name__}: a step is one token per stream (N, E={self.d_model}), "
                f"got {got}.{hint}"
            )

    def _check_window(self, x: Any, dims: int) -> None:
        if not isinstance(x, Tensor) or x.dim() != dims or x.shape[1] != self.d_model:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            layout = "(N, E, L)" if dims == 3 else "(N, E, T, L)"
            raise StepShapeError(
                f"{type(self).__name__}: in the step modes this layer takes whole windows "
                f"{layout} with E={self.d_model} (the output of a retroactive layer), got {got}"
            )

    def _reset_streams(self, state: LayerState, streams: Sequence[int]) -> LayerState:
        return state._replace(attn=self.self_attn._reset_streams(state.attn, streams))

    def extra_repr(self) -> str:
        text = f"norm_first={self.norm_first}" if self.norm_first else ""
        activation = getattr(self.activation, "__name__", None)
        if activation is not None:
            text += (", " if text else "") + f"activation={activation}"
        return text


class _WindowStepping:
    """Step modes of a layer that processes whole windows (stateless): a step ``(N, E, L)``,
    a chunk of windows ``(N, E, T, L)``."""

    def _window(self, x: Tensor) -> Tensor:
        """(B, L, E) windows -> (B, L, E) or (B, 1, E)."""
        raise NotImplementedError

    def _step(self, x: Tensor, state: State, valid: Valid = True):
        self._check_window(x, 3)
        if valid is False:
            return None, False, state
        y = self._window(x.transpose(1, 2)).transpose(1, 2)
        return (y[:, :, 0] if self._single else y), valid, state

    def _steps(self, x: Optional[Tensor], state: State, pad_end: bool = False):
        if x is None:
            return None, state, None
        self._check_window(x, 4)
        n, e, steps, length = x.shape
        if steps == 0:
            return None, state, None
        y = self._window(x.permute(0, 2, 3, 1).reshape(n * steps, length, e))
        if self._single:
            return y.reshape(n, steps, e).transpose(1, 2), state, None
        return y.reshape(n, steps, length, e).permute(0, 3, 1, 2), state, None


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
    token, for any ``num_layers`` (see the module docstring for the layer plan).

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
