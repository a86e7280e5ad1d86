"""What every continual transformer encoder layer shares: torch's layer math on channel-last
tensors (``_EncoderLayer``), the step modes of layers that take whole windows
(``_WindowStepping``), the state of a token-streaming layer and the argument helpers."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import StepShapeError
from ..modes import CallMode, call_mode, in_tensor_mode
from ..module import CoModule, State
from ..validity import Valid

Activation = Union[str, nn.Module, Callable[[Tensor], Tensor]]


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
