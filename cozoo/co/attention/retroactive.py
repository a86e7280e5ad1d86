"""``RetroactiveMultiheadAttention``: all L queries of the window per step, each row updated for
the key that left and the key that entered (Hedegaard et al., "Continual Transformers").

Numerics of the retroactive update
----------------------------------
The paper keeps, per query row, running sums ``d = sum exp(s)`` and ``AV = sum exp(s) v`` and
updates them by *subtracting* the column of the key that leaves. Without a max shift ``exp``
overflows (NaN for inputs x10); with one, subtracting a dominant term cancels catastrophically
(the remainder is lost). Here nothing is ever subtracted. Split each row of the window's
attention matrix at the row's own token::

             keys  t-4  t-3  t-2  t-1   t          (L = 5)
    row t-4         P    F    F    F    F     P: keys up to the row's own token ("past")
    row t-3         P    P    F    F    F     F: keys after it ("future")
    row t-2         P    P    P    F    F
    row t-1         P    P    P    P    F
    row t           P    P    P    P    P     <- new row, scored against the L keys this step

A row's future part only grows (one new key per step): a running aggregate absorbs it. Its past
part only shrinks from the left: when the row is created its L past keys are known, so one
suffix scan precomputes the aggregate of every suffix, and at age ``g`` the row reads suffix
``g``. A row's output merges the two. Aggregates are ``(mean, lse)`` pairs (``lse = log sum
exp(s)``, ``mean = sum softmax(s) v``) and merging two is a convex combination with weights
``exp(lse_part - lse_total) <= 1``: no overflow, no cancellation, and no drift (nothing lives
longer than L steps). Cost per step and head: O(L d) for the new scores and merges plus
O(L d log L) for the new row's suffix scan; memory O(L^2 d) per stream and head for the suffix
tables, the price of exactness without subtraction.

The state is immutable: the memories are tuples of per-token tensors (oldest first) that a step
extends and drops from, like the frames of ``cozoo.co.window``; nothing is rolled or written in
place.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..validity import Valid, advance_counter, first_output_offset, tick
from .base import (
    StepInput,
    _ContinualMultiheadAttention,
    _regular_attention_flops,
    _retroactive_step_attention_flops,
)
from .states import RetroactiveAttentionState

__all__ = ["RetroactiveMultiheadAttention"]


# --------------------------------------------------------------------------------------------
# Softmax aggregates
# --------------------------------------------------------------------------------------------
def _merge(mean_a: Tensor, lse_a: Tensor, mean_b: Tensor, lse_b: Tensor) -> Tuple[Tensor, Tensor]:
    """Softmax aggregate of the union of two disjoint key sets.

    ``lse`` (..., n) = log-sum-exp of a set's scores, ``mean`` (..., n, d) = softmax-weighted
    mean of its values. The merged mean is a convex combination: stable for any scores.
    """
    # (plain ops only, so that the step exports to ONNX: no logaddexp, no lerp)
    top = torch.maximum(lse_a, lse_b)
    weight_a, weight_b = torch.exp(lse_a - top), torch.exp(lse_b - top)  # in [0, 1], one is 1
    total = weight_a + weight_b
    share_b = (weight_b / total).unsqueeze(-1)
    return mean_a + share_b * (mean_b - mean_a), top + torch.log(total)


def _suffix_table(scores: Tensor, values: Tensor) -> Tensor:
    """``[mean | lse]`` of every suffix of a row: scores (..., n), values (..., n, d) ->
    (..., n, d+1). Entry ``a`` aggregates keys ``a .. n-1``. A log-depth (Hillis-Steele) scan.
    """
    mean, lse = values, scores
    n = scores.shape[-1]
    shift = 1
    while shift < n:
        head_mean, head_lse = _merge(
            mean[..., :-shift, :], lse[..., :-shift], mean[..., shift:, :], lse[..., shift:]
        )
        mean = torch.cat([head_mean, mean[..., n - shift :, :]], -2)
        lse = torch.cat([head_lse, lse[..., n - shift :]], -1)
        shift *= 2
    return torch.cat([mean, lse.unsqueeze(-1)], -1)


# --------------------------------------------------------------------------------------------
# Retroactive
# --------------------------------------------------------------------------------------------
class RetroactiveMultiheadAttention(_ContinualMultiheadAttention):
    """Multi-head attention whose step returns the updated outputs of all L window tokens.

    Step ``t`` (from the L-th step on) returns the attention outputs of every token of the
    window ``[t-L+1, t]`` (oldest first), i.e. ``torch.nn.MultiheadAttention`` on the window.
    Each step scores the new query against the window and the new key against the kept
    queries: O(L E) attention work instead of O(L^2 E) (see the module docstring for the exact,
    subtraction-free update). ``batch_first`` defaults to False, as in torch.

    Clips, steps and outputs::

        forward(clip)           (T, N, E)  ->  (T, N, E) [+ weights]        (torch's forward)
        forward_step(token)     (N, E)     ->  (L, N, E) or None
        forward_steps(clip)     (T, N, E)  ->  (T-L+1, L, N, E) on a fresh module, or None

    With ``batch_first``: ``(N, L, E)`` per step, ``(N, T', L, E)`` per chunk; with
    ``embed_dim_second``: ``(N, E, L)`` and ``(N, E, T', L)``.
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
        batch_first: bool = False,
        device=None,
        dtype=None,
        sequence_len: Optional[int] = None,
        forward_returns_attn_mask: bool = True,
        embed_dim_second: bool = False,
    ):
        super().__init__(
            embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, kdim, vdim,
            batch_first, device, dtype, sequence_len, forward_returns_attn_mask,
            embed_dim_second,
        )  # fmt: skip

    # ---- pure step ------------------------------------------------------------------------
    def _fresh_state(self, q: Tensor, shape: Tuple[int, ...]) -> RetroactiveAttentionState:
        n, h, d = q.shape
        seq_len = self.sequence_len
        memory = (torch.zeros_like(q),) * (seq_len - 1)
        table = q.new_zeros(n, h, seq_len, d + 1)  # placeholder rows: never read for an output
        return RetroactiveAttentionState(
            0,
            shape,
            memory,
            memory,
            memory,
            (table,) * (seq_len - 1),
            q.new_zeros(n, h, seq_len - 1, d),
            q.new_full((n, h, seq_len - 1), float("-inf")),
        )

    def _advance(
        self, state: RetroactiveAttentionState, q: Tensor, k: Tensor, v: Tensor, need_output: bool
    ):
        """One retroactive update on per-head tensors ``(N, h, d)``: ``(out (N, h, L, d) |
        None, next state with the counter unchanged)``."""
        seq_len = self.sequence_len
        keys, values = state.keys + (k,), state.values + (v,)
        window_k, window_v = torch.stack(keys, 2), torch.stack(values, 2)  # (N, h, L, d)
        # The new row: its scores against the L keys, and the aggregate of every suffix.
        table = _suffix_table((window_k @ q.unsqueeze(3)).squeeze(3), window_v)
        if seq_len == 1:
            return (table[..., :-1] if need_output else None), state
        # The kept rows absorb the new key into their "future" aggregate.
        queries = torch.stack(state.queries, 2)  # (N, h, L-1, d)
        scores = (queries @ k.unsqueeze(3)).squeeze(3)  # (N, h, L-1)
        future_mean, future_lse = _merge(
            state.future_mean, state.future_lse, v.unsqueeze(2), scores
        )
        out = None
        if need_output:
            # Row i (oldest first) has age L-1-i: its past part is suffix L-1-i of its table.
            past = torch.stack([t[:, :, seq_len - 1 - i] for i, t in enumerate(state.past)], 2)
            kept, _ = _merge(past[..., :-1], past[..., -1], future_mean, future_lse)
            out = torch.cat([kept, table[:, :, :1, :-1]], 2)  # (N, h, L, d)
        n, h, d = q.shape
        new = state._replace(
            queries=(state.queries + (q,))[1:],
            keys=keys[1:],
            values=values[1:],
            past=(state.past + (table,))[1:],
            future_mean=torch.cat([future_mean[:, :, 1:], future_mean.new_zeros(n, h, 1, d)], 2),
            future_lse=torch.cat(
                [future_lse[:, :, 1:], future_lse.new_full((n, h, 1), float("-inf"))], 2
            ),
        )
        return out, new

    def _window_output(self, out: Tensor, n: int) -> Tensor:
        """Per-head ``(N, h, L, d)`` -> out-projected canonical ``(N, L, E)``."""
        return self._out_project(out.transpose(1, 2).reshape(n, out.shape[2], self.embed_dim))

    def _public_step(self, y: Tensor) -> Tensor:
        """Canonical (N, L, E) -> (L, N, E), (N, L, E) or (N, E, L)."""
        if self.embed_dim_second:
            return y.transpose(1, 2)
        return y if self.batch_first else y.transpose(0, 1)

    def _public_steps(self, y: Tensor) -> Tensor:
        """Canonical (N, T', L, E) -> (T', L, N, E), (N, T', L, E) or (N, E, T', L)."""
        if self.embed_dim_second:
            return y.permute(0, 3, 1, 2)
        return y if self.batch_first else y.permute(1, 2, 0, 3)

    def _step(self, x: StepInput, state: Optional[RetroactiveAttentionState], valid: Valid = True):
        query, key, value = self._step_inputs(x, state)
        if valid is False:
            return None, False, state
        self._check_step_support()
        n = query.shape[0]
        q, k, v = self._project_step(query, key, value)
        if state is None:
            state = self._fresh_state(q, tuple(query.shape))
        out_valid, counter, _ = tick(state.counter, valid, self.sequence_len - 1, 1, n)
        out, new = self._advance(state, q, k, v, out_valid is not False)
        y = None if out is None else self._public_step(self._window_output(out, n))
        return y, out_valid, self._keep_rows(valid, new._replace(counter=counter), state)

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
        n = query.shape[0]
        q, k, v = self._project_clip(query, key, value)  # (N, h, T, d), projected at once
        if state is None:
            state = self._fresh_state(q[:, :, 0], (n, query.shape[2]))
        start = first_output_offset(state.counter, self.sequence_len - 1, 1)
        outputs = []
        for t in range(length):
            out, state = self._advance(state, q[:, :, t], k[:, :, t], v[:, :, t], t >= start)
            if out is not None:
                outputs.append(out)
        # Detach the kept per-token tensors from the chunk's projections (memory).
        state = state._replace(
            counter=advance_counter(state.counter, length, self.sequence_len - 1, 1),
            queries=tuple(t.clone() for t in state.queries),
            keys=tuple(t.clone() for t in state.keys),
            values=tuple(t.clone() for t in state.values),
        )
        if not outputs:
            return None, state, None
        out = torch.stack(outputs, 2)  # (N, h, T', L, d)
        steps = out.shape[2]
        out = out.permute(0, 2, 3, 1, 4).reshape(n, steps, self.sequence_len, self.embed_dim)
        return self._public_steps(self._out_project(out)), state, None

    def _stack_step_outputs(self, outputs) -> Tensor:
        canonical = [o.transpose(1, 2) if self.embed_dim_second else o for o in outputs]
        if not self.batch_first:
            canonical = [o.transpose(0, 1) for o in canonical]
        return self._public_steps(torch.stack(canonical, 1))

    def _warmup_flops_plan(self):
        # A warm-up step projects its token and updates the window (no output composed).
        n, d = self.sequence_len, self._head_dim
        return 1, 1, _retroactive_step_attention_flops(n, d), 0

    def _flops_plan(self, step: bool):
        n, d = self.sequence_len, self._head_dim
        if step:
            return 1, 1, _retroactive_step_attention_flops(n, d), n
        return n, n, _regular_attention_flops(n, d), n
