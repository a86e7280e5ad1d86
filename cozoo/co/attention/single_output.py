"""``SingleOutputMultiheadAttention``: one query (the newest token, or the token at window
position ``query_index``) against the window's L keys per step, O(L E) attention work."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..validity import Valid, advance_counter, first_output_offset, tick
from .base import (
    StepInput,
    _ContinualMultiheadAttention,
    _regular_attention_flops,
    _single_output_attention_flops,
)
from .states import SingleOutputAttentionState
from .window_memory import append_to_window

__all__ = ["SingleOutputMultiheadAttention"]


class SingleOutputMultiheadAttention(_ContinualMultiheadAttention):
    """Multi-head attention whose step computes the output of a single query per step.

    Step ``t`` (from the L-th step on) returns the attention output ``(N, E)`` of one token of
    the window ``[t-L+1, t]``: the newest token for ``query_index=-1`` (default), else the token
    at window position ``query_index`` (negative values count from the newest). It equals
    ``torch.nn.MultiheadAttention`` on the window, read at that token. Cost per step
    O(L E) for attention + O(E^2) projections.

    Args (beyond ``torch.nn.MultiheadAttention``'s; ``batch_first`` defaults to True):
        sequence_len: window length L (required).
        query_index: window position of the query whose output a step returns.
        forward_returns_attn_mask: ``forward`` returns ``(output, weights)`` (else the output).
        embed_dim_second: clips are ``(N, E, T)``.
        single_output_forward: ``forward`` computes only the token at ``query_index`` of the
            clip: ``(N, 1, E)`` (``(N, E, 1)`` with ``embed_dim_second``); else all tokens.

    Clips, steps and outputs::

        forward(clip)           (N, T, E)  ->  (N, 1, E) or (N, T, E) [+ weights]
        forward_step(token)     (N, E)     ->  (N, E) or None
        forward_steps(clip)     (N, T, E)  ->  (N, T-L+1, E) on a fresh module, or None

    (time-first ``(T, N, E)`` / ``(T', N, E)`` without ``batch_first``; the reference library
    returned ``(T', 1, N, E)`` there). ``delay`` is ``L-1``: the number of steps that return
    None (the reference library reports ``-query_index-1``). With ``query_index`` other than
    -1 the step output belongs to an older token of the window; ``delay`` stays ``L-1``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: Optional[int] = None,
        vdim: Optional[int] = None,
        batch_first: bool = True,
        device=None,
        dtype=None,
        sequence_len: Optional[int] = None,
        query_index: int = -1,
        forward_returns_attn_mask: bool = True,
        embed_dim_second: bool = False,
        single_output_forward: bool = True,
    ):
        super().__init__(
            embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, kdim, vdim,
            batch_first, device, dtype, sequence_len, forward_returns_attn_mask,
            embed_dim_second,
        )  # fmt: skip
        if not -sequence_len <= query_index < sequence_len:
            raise ValueError(
                f"SingleOutputMultiheadAttention: query_index must be in [-{sequence_len}, "
                f"{sequence_len - 1}] for sequence_len={sequence_len}, got {query_index}"
            )
        self.query_index = query_index
        self.single_output_forward = single_output_forward

    @property
    def _lag(self) -> int:
        """Steps between the query token entering and its output: window position -> lag."""
        position = self.query_index % self.sequence_len
        return self.sequence_len - 1 - position

    def _forward_length(self, t: int) -> int:
        return 1 if self.single_output_forward else t

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        need_weights: bool = True,
        attn_mask: Optional[Tensor] = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ):
        """torch's forward; with ``single_output_forward`` only for the clip token at
        ``query_index`` (rows of ``attn_mask`` selected accordingly)."""
        if self.single_output_forward:
            key = query if key is None else key
            value = query if value is None else value
            time_dim = 2 if self.embed_dim_second else (1 if self.batch_first else 0)
            length = query.shape[time_dim]
            index = self.query_index if self.query_index >= 0 else length + self.query_index
            if not 0 <= index < length:
                raise IndexError(
                    f"SingleOutputMultiheadAttention: query_index {self.query_index} is out of "
                    f"range for a clip of {length} tokens"
                )
            query = query.narrow(time_dim, index, 1)
            if attn_mask is not None:
                attn_mask = attn_mask.narrow(attn_mask.dim() - 2, index, 1)
        return super().forward(
            query, key, value, key_padding_mask, need_weights, attn_mask,
            average_attn_weights, is_causal,
        )  # fmt: skip

    # ---- pure step ------------------------------------------------------------------------
    def _fresh_state(self, q: Tensor, shape: Tuple[int, ...]) -> SingleOutputAttentionState:
        zeros = torch.zeros_like(q)
        memory = (zeros,) * (self.sequence_len - 1)
        return SingleOutputAttentionState(0, shape, memory, memory, (zeros,) * self._lag)

    def _step(self, x: StepInput, state: Optional[SingleOutputAttentionState], valid: Valid = True):
        query, key, value = self._step_inputs(x, state)
        if valid is False:
            return None, False, state
        self._check_step_support()
        n = query.shape[0]
        q, k, v = self._project_step(query, key, value)
        if state is None:
            state = self._fresh_state(q, tuple(query.shape))
        out_valid, counter, _ = tick(state.counter, valid, self.sequence_len - 1, 1, n)
        key_window, keys = append_to_window(state.keys, k)  # (N, h, L, d), next memory
        value_window, values = append_to_window(state.values, v)
        y = None
        if out_valid is not False:
            q_sel = state.queries[0] if self._lag else q  # (N, h, d)
            scores = key_window @ q_sel.unsqueeze(3)  # (N, h, L, 1)
            weights = torch.softmax(scores, 2).transpose(2, 3)  # (N, h, 1, L)
            out = weights @ value_window  # (N, h, 1, d)
            y = self._out_project(out.reshape(n, self.embed_dim))
        queries = (state.queries + (q,))[1:] if self._lag else ()
        new = SingleOutputAttentionState(counter, state.shape, keys, values, queries)
        return y, out_valid, self._keep_rows(valid, new, state)

    def _steps(self, x: Optional[StepInput], state, pad_end: bool = False):
        if x is None:
            return None, state, None
        query, key, value = self._clip_inputs(x, state)
        length = query.shape[1]
        if length == 0:
            return None, state, None
        if state is not None and not isinstance(state.counter, int):
            return self._stepwise(query, key, value, state)
        self._check_step_support()
        n, seq_len, lag = query.shape[0], self.sequence_len, self._lag
        q, k, v = self._project_clip(query, key, value)  # (N, h, T, d)
        if state is None:
            state = self._fresh_state(q[:, :, 0], (n, query.shape[2]))
        keys = torch.cat([torch.stack(state.keys, 2), k], 2) if seq_len > 1 else k
        values = torch.cat([torch.stack(state.values, 2), v], 2) if seq_len > 1 else v
        queries = torch.cat([torch.stack(state.queries, 2), q], 2) if lag else q
        start = first_output_offset(state.counter, seq_len - 1, 1)
        y = None
        if start < length:
            # Windows of the steps start..T-1: (N, h, T', d, L), views of the memories.
            k_win = keys.unfold(2, seq_len, 1)[:, :, start:]
            v_win = values.unfold(2, seq_len, 1)[:, :, start:]
            scores = torch.einsum("nhtd,nhtdl->nhtl", queries[:, :, start:length], k_win)
            out = torch.einsum("nhtl,nhtdl->nhtd", torch.softmax(scores, -1), v_win)
            out = out.transpose(1, 2).reshape(n, length - start, self.embed_dim)
            y = self._public_steps(self._out_project(out))
        cached = seq_len - 1

        def last(memory: Tensor, count: int) -> Tuple[Tensor, ...]:
            return tuple(memory[:, :, memory.shape[2] - count :].clone().unbind(2)) if count else ()

        new = SingleOutputAttentionState(
            advance_counter(state.counter, length, seq_len - 1, 1),
            state.shape,
            last(keys, cached),
            last(values, cached),
            last(queries, lag),
        )
        return y, new, None

    def _public_steps(self, y: Tensor) -> Tensor:
        """Canonical (N, T', E) step outputs -> the module's clip layout."""
        if self.embed_dim_second:
            return y.transpose(1, 2)
        return y if self.batch_first else y.transpose(0, 1)

    def _stack_step_outputs(self, outputs) -> Tensor:
        return self._public_steps(torch.stack(outputs, 1))

    def _flops_plan(self, step: bool):
        n, d = self.sequence_len, self._head_dim
        if step:
            return 1, 1, _single_output_attention_flops(n, d), 1
        if self.single_output_forward:
            return 1, n, _single_output_attention_flops(n, d), 1
        return n, n, _regular_attention_flops(n, d), n

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.query_index != -1:
            text += f", query_index={self.query_index}"
        if not self.single_output_forward:
            text += ", single_output_forward=False"
        return text
