"""Continual multi-head attention (Hedegaard et al., "Continual Transformers: Redundancy-Free
Attention for Online Inference", arXiv 2201.06268).

Two drop-in subclasses of ``torch.nn.MultiheadAttention``: same parameters, same ``state_dict``
keys, and ``forward`` *is* torch's. They add the step modes, which attend over a sliding window
of the last ``L = sequence_len`` tokens of a stream::

    step t        0   1  ...  L-2   L-1   L    L+1  ...
    window                         [0..L-1] [1..L] [2..L+1]
    output        .   .  ...   .    O     O     O          (. = None while the window fills)

    SingleOutputMultiheadAttention  one query (the newest token, or the token at window position
                                    ``query_index``) against the L keys: (N, E) per step
    RetroactiveMultiheadAttention   all L queries of the window, each row updated for the key
                                    that left and the key that entered: (L, N, E) per step

Every step output equals ``torch.nn.MultiheadAttention`` (same weights) applied to the window.

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
extends and drops from, like the frames of ``window.py``; nothing is rolled or written in place.
The private functions ``_scaled_dot_product_attention_default_state`` and
``_scaled_dot_product_attention_step`` (``multihead_attention.retroactive_mha``) keep the
reference library's state layout and plain paper update, for compatibility.
"""

from __future__ import annotations

import math
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import StepShapeError, check_step_shape
from .module import (
    CallMode,
    CoModule,
    State,
    Valid,
    active_call_mode,
    advance_counter,
    finalize_step_output,
    first_output_offset,
    in_tensor_mode,
    reset_counter,
    select_rows,
    tick,
)

__all__ = [
    "RetroactiveAttentionState",
    "RetroactiveMultiheadAttention",
    "SingleOutputAttentionState",
    "SingleOutputMultiheadAttention",
]

StepInput = Union[Tensor, Tuple[Tensor, Optional[Tensor], Optional[Tensor]]]

_MASK_KWARGS = ("attn_mask", "key_padding_mask", "is_causal")
_IGNORED_KWARGS = ("need_weights", "average_attn_weights")


class SingleOutputAttentionState(NamedTuple):
    """State of a ``SingleOutputMultiheadAttention`` (immutable; ``h`` heads of ``d = E/h``)."""

    counter: Any  # valid steps consumed (saturated): int, per-stream tuple, or (N,) tensor
    shape: Tuple[int, ...]  # the query step shape (N, E) the state was built for
    keys: Tuple[Tensor, ...]  # the last L-1 keys, each (N, h, d), oldest first
    values: Tuple[Tensor, ...]  # the last L-1 values, each (N, h, d)
    queries: Tuple[Tensor, ...]  # scaled queries still waiting for their output (query_index)


class RetroactiveAttentionState(NamedTuple):
    """State of a ``RetroactiveMultiheadAttention`` (immutable; ``h`` heads of ``d = E/h``).

    The "rows" are the L-1 newest tokens, whose queries stay in the next window.
    """

    counter: Any
    shape: Tuple[int, ...]
    queries: Tuple[Tensor, ...]  # scaled queries of the rows, each (N, h, d), oldest first
    keys: Tuple[Tensor, ...]  # keys of the L-1 newest tokens, each (N, h, d)
    values: Tuple[Tensor, ...]  # values of the L-1 newest tokens, each (N, h, d)
    past: Tuple[Tensor, ...]  # per row: suffix table (N, h, L, d + 1) = [mean | lse] of suffixes
    future_mean: Tensor  # (N, h, L-1, d): softmax mean of the values after each row's token
    future_lse: Tensor  # (N, h, L-1): log-sum-exp of the scores after each row's token


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
# Analytic FLOPs (per head; n = sequence length, d = head dim), as in continual-inference
# --------------------------------------------------------------------------------------------
def _regular_attention_flops(n: int, d: int) -> Tuple[int, int, int]:
    """(muls, adds, exps) of softmax(Q K^T / sqrt(d)) V for n queries and n keys."""
    return 2 * n * n * d + 2 * n * d, 2 * n * n - n * d - n, n * n


def _single_output_attention_flops(n: int, d: int) -> Tuple[int, int, int]:
    """(muls, adds, exps) of one query against n keys."""
    return 2 * n * d + 2 * d, 2 * n * d - d - 1, n


def _retroactive_step_attention_flops(n: int, d: int) -> Tuple[int, int, int]:
    """(muls, adds, exps) of one retroactive update of an n-token window (paper's count)."""
    return 7 * n * d + 2 * n - 3 * d, 6 * n * d + 3 * n - 6 * d - 3, 3 * n - 2


# --------------------------------------------------------------------------------------------
# Shared base
# --------------------------------------------------------------------------------------------
class _ContinualMultiheadAttention(CoModule, nn.MultiheadAttention):
    """Shared implementation: layouts, projections, step-mode checks, FLOPs.

    Clip layouts: ``(T, N, E)`` (default), ``(N, T, E)`` with ``batch_first``, ``(N, E, T)``
    with ``embed_dim_second`` (which needs ``batch_first``). A step is ``(N, E)`` in every
    layout. Internally everything is "canonical" ``(N, T, E)``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float,
        bias: bool,
        add_bias_kv: bool,
        add_zero_attn: bool,
        kdim: Optional[int],
        vdim: Optional[int],
        batch_first: bool,
        device,
        dtype,
        sequence_len: Optional[int],
        forward_returns_attn_mask: bool,
        embed_dim_second: bool,
    ):
        name = type(self).__name__
        if not isinstance(sequence_len, int) or isinstance(sequence_len, bool) or sequence_len < 1:
            raise ValueError(
                f"{name}: sequence_len (the number of tokens L that a step attends over) must be "
                f"a positive int, got {sequence_len!r}"
            )
        nn.MultiheadAttention.__init__(
            self, embed_dim, num_heads, dropout=dropout, bias=bias, add_bias_kv=add_bias_kv,
            add_zero_attn=add_zero_attn, kdim=kdim, vdim=vdim, batch_first=batch_first,
            device=device, dtype=dtype,
        )  # fmt: skip
        if embed_dim_second and not batch_first:
            raise ValueError(
                f"{name}: embed_dim_second=True means clips (N, E, T), i.e. batch first; "
                "pass batch_first=True as well"
            )
        self.sequence_len = sequence_len
        self.forward_returns_attn_mask = forward_returns_attn_mask
        self.embed_dim_second = embed_dim_second

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def build_from(cls, module: nn.MultiheadAttention, sequence_len: int, **kwargs):
        """A continual copy of ``module`` (same weights) attending over ``sequence_len`` tokens;
        ``kwargs`` override constructor arguments (e.g. ``query_index``, ``batch_first``)."""
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(
                f"{cls.__name__}.build_from expects an nn.MultiheadAttention, "
                f"got {type(module).__name__}"
            )
        args: Dict[str, Any] = dict(
            embed_dim=module.embed_dim,
            num_heads=module.num_heads,
            dropout=module.dropout,
            bias=module.in_proj_bias is not None,
            add_bias_kv=module.bias_k is not None,
            add_zero_attn=module.add_zero_attn,
            kdim=module.kdim,
            vdim=module.vdim,
            batch_first=module.batch_first,
            device=module.out_proj.weight.device,
            dtype=module.out_proj.weight.dtype,
            sequence_len=sequence_len,
        )
        args.update(kwargs)
        comodule = cls(**args)
        comodule.load_state_dict(module.state_dict())
        return comodule

    # ---- temporal properties --------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        return self.sequence_len

    @property
    def delay(self) -> int:
        """``L - 1``: the first output comes at the L-th step (the window is full)."""
        return self.sequence_len - 1

    # ---- torch forward --------------------------------------------------------------------
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
        """``torch.nn.MultiheadAttention.forward`` over whole clips (all T tokens attend to each
        other); ``key``/``value`` default to ``query``. Returns ``(output, weights)``, or only
        the output if ``forward_returns_attn_mask=False``. Never touches the step state."""
        key = query if key is None else key
        value = query if value is None else value
        if self.embed_dim_second:  # (N, E, T) -> (N, T, E), keeping "query is key" identities
            moved = {}
            query, key, value = (
                moved.setdefault(id(t), t.transpose(1, 2)) for t in (query, key, value)
            )
        out, weights = nn.MultiheadAttention.forward(
            self, query, key, value, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
        )  # fmt: skip
        if self.embed_dim_second:
            out = out.transpose(1, 2)
        return (out, weights) if self.forward_returns_attn_mask else out

    # ---- layouts and inputs ---------------------------------------------------------------
    def _unpack(self, x: StepInput) -> Tuple[Tensor, Tensor, Tensor]:
        """``x`` is the query (self-attention) or a ``(query, key, value)`` tuple."""
        if isinstance(x, Tensor):
            return x, x, x
        if isinstance(x, (tuple, list)) and len(x) == 3 and isinstance(x[0], Tensor):
            query, key, value = x
            key = query if key is None else key
            value = query if value is None else value
            return query, key, value
        raise TypeError(
            f"{type(self).__name__}: expected a query tensor or a (query, key, value) tuple, "
            f"got {type(x).__name__}"
        )

    def _canonical_clip(self, x: Tensor) -> Tensor:
        """A clip in the module's layout -> (N, T, E)."""
        if not isinstance(x, Tensor) or x.dim() != 3:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}: expected a clip {self._layout()}, got {got}")
        if self.embed_dim_second:
            return x.transpose(1, 2)
        return x if self.batch_first else x.transpose(0, 1)

    def _layout(self) -> str:
        if self.embed_dim_second:
            return "(N, E, T)"
        return "(N, T, E)" if self.batch_first else "(T, N, E)"

    def _step_inputs(self, x: StepInput, state: Any) -> Tuple[Tensor, Tensor, Tensor]:
        query, key, value = self._unpack(x)
        name = type(self).__name__
        if query.dim() != 2:
            raise StepShapeError(
                f"{name}: a step is one token per stream, a query of shape (N, "
                f"E={self.embed_dim}); got {tuple(query.shape)} (clips go to forward or "
                "forward_steps)"
            )
        if (
            key.dim() != 2
            or value.dim() != 2
            or not key.shape[0] == value.shape[0] == query.shape[0]
            or query.shape[1] != self.embed_dim
            or key.shape[1] != self.kdim
            or value.shape[1] != self.vdim
        ):
            raise StepShapeError(
                f"{name}: query, key and value steps must be (N, E={self.embed_dim}), "
                f"(N, kdim={self.kdim}), (N, vdim={self.vdim}) with one N, got "
                f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
            )
        if state is not None and not in_tensor_mode() and tuple(query.shape) != state.shape:
            check_step_shape(self, query, state.shape)
        return query, key, value

    def _clip_inputs(self, x: StepInput, state: Any) -> Tuple[Tensor, Tensor, Tensor]:
        """The (N, T, E) canonical clips of a forward_steps input; checks the step shape."""
        query, key, value = self._unpack(x)
        moved: Dict[int, Tensor] = {}
        query, key, value = (
            moved.setdefault(id(t), self._canonical_clip(t)) for t in (query, key, value)
        )
        if not key.shape[:2] == value.shape[:2] == query.shape[:2]:
            raise ValueError(
                f"{type(self).__name__}: query, key and value clips must have one batch size "
                f"and length"
            )
        step_shape = (query.shape[0], query.shape[2])
        if state is not None and not in_tensor_mode() and step_shape != state.shape:
            check_step_shape(self, query[:, 0], state.shape)
        return query, key, value

    def _check_step_support(self) -> None:
        """Refuse what the step modes cannot honour, instead of silently ignoring it."""
        name = type(self).__name__
        if self.add_zero_attn:
            raise NotImplementedError(
                f"{name}: add_zero_attn=True is not supported in the step modes (forward_step, "
                "forward_steps); only forward applies it"
            )
        if self.bias_k is not None:
            raise NotImplementedError(
                f"{name}: add_bias_kv=True is not supported in the step modes (forward_step, "
                "forward_steps); only forward applies it"
            )
        if self.training and self.dropout > 0:
            raise RuntimeError(
                f"{name}: attention dropout (p={self.dropout}) cannot be applied in the step "
                "modes; call .eval() for continual inference (or use dropout=0.0)"
            )

    def _check_step_kwargs(self, kwargs: Dict[str, Any]) -> None:
        name = type(self).__name__
        for key, value in kwargs.items():
            if key in _MASK_KWARGS:
                if value is not None and value is not False:
                    raise ValueError(
                        f"{name}: {key} is not supported in the step modes: a step attends over "
                        "exactly the last sequence_len tokens (use forward for masked attention)"
                    )
            elif key not in _IGNORED_KWARGS:
                raise TypeError(f"{name}: unexpected keyword argument {key!r}")

    # ---- projections ----------------------------------------------------------------------
    @property
    def _head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def _in_project(self, query: Tensor, key: Tensor, value: Tensor) -> Tuple[Tensor, ...]:
        """The q, k, v projections ``(..., E)`` of tokens ``(..., E|kdim|vdim)``."""
        bias = self.in_proj_bias
        if self._qkv_same_embed_dim:
            weight = self.in_proj_weight
            if query is key and key is value:
                return F.linear(query, weight, bias).chunk(3, dim=-1)
            w_q, w_k, w_v = weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q, b_k, b_v = bias.chunk(3) if bias is not None else (None, None, None)
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    def _project_step(self, query: Tensor, key: Tensor, value: Tensor) -> Tuple[Tensor, ...]:
        """Per-head ``(N, h, d)`` q (scaled by 1/sqrt(d)), k, v of one step."""
        n, h, d = query.shape[0], self.num_heads, self._head_dim
        q, k, v = self._in_project(query, key, value)
        return q.reshape(n, h, d) * (1.0 / math.sqrt(d)), k.reshape(n, h, d), v.reshape(n, h, d)

    def _project_clip(self, query: Tensor, key: Tensor, value: Tensor) -> Tuple[Tensor, ...]:
        """Per-head ``(N, h, T, d)`` q (scaled), k, v of canonical clips ``(N, T, E)``."""
        n, t = query.shape[:2]
        h, d = self.num_heads, self._head_dim

        def heads(x: Tensor) -> Tensor:
            return x.reshape(n, t, h, d).transpose(1, 2)

        q, k, v = self._in_project(query, key, value)
        return heads(q) * (1.0 / math.sqrt(d)), heads(k), heads(v)

    def _out_project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.out_proj.weight, self.out_proj.bias)

    # ---- stateful wrappers ----------------------------------------------------------------
    def forward_step(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        update_state: bool = True,
        **kwargs,
    ) -> Optional[Tensor]:
        """One token per stream: ``query`` ``(N, E)`` (``key``/``value`` default to it).

        Returns None until the window holds ``sequence_len`` tokens. Masks raise a ValueError:
        a step attends over exactly the window.
        """
        self._check_step_kwargs(kwargs)
        x = query if key is None and value is None else (query, key, value)
        return CoModule.forward_step(self, x, update_state)

    def forward_steps(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        update_state: bool = True,
        pad_end: bool = False,
        **kwargs,
    ) -> Optional[Tensor]:
        """A chunk of tokens (clips in the module's layout); the step outputs stacked on the
        time axis, or None if no step produced one. ``pad_end`` is accepted and has no effect:
        the window is never padded, so there are no end-padding outputs."""
        self._check_step_kwargs(kwargs)
        x = query if key is None and value is None else (query, key, value)
        y, state, _ = self._steps(x, self.get_state(), pad_end)
        if update_state:
            self.set_state(state)
        return y

    def _forward_step(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        prev_state: State = None,
    ):
        """``(output | None, next_state)`` from an explicit state, as in continual-inference."""
        x = query if key is None and value is None else (query, key, value)
        y, valid, state = self._step(x, prev_state, True)
        return finalize_step_output(y, valid), state

    def _reset_streams(self, state: Any, streams) -> Any:
        return state._replace(counter=reset_counter(state.counter, streams, state.shape[0]))

    def _keep_rows(self, valid: Valid, new: NamedTuple, old: NamedTuple) -> Any:
        """``new`` for streams that had a step, ``old`` for the others (mixed validity)."""
        if valid is True:
            return new
        fields = {}
        for name in new._fields:
            if name in ("counter", "shape"):
                continue
            fields[name] = select_rows(valid, getattr(new, name), getattr(old, name))
        return new._replace(**fields)

    def _stepwise(self, query: Tensor, key: Tensor, value: Tensor, state: Any):
        """``_steps`` as a loop over ``_step`` (canonical clips): streams at different phases."""
        outputs, patterns = [], []
        self_attention = query is key and key is value
        for t in range(query.shape[1]):
            x = query[:, t] if self_attention else (query[:, t], key[:, t], value[:, t])
            y, valid, state = self._step(x, state, True)
            if valid is False:
                continue
            if valid is not True:
                if isinstance(valid, tuple) and not any(valid):
                    continue
                patterns.append((t, valid))
            outputs.append(y)
        if patterns:
            raise RuntimeError(
                f"{type(self).__name__}.forward_steps: the streams of this batch are at different "
                f"phases (after a per-stream clean_state) and produce outputs at different steps "
                f"(e.g. step {patterns[0][0]}: {patterns[0][1]}), so their outputs cannot be "
                "stacked; use forward_step for such batches."
            )
        if not outputs:
            return None, state, None
        return self._stack_step_outputs(outputs), state, None

    def _stack_step_outputs(self, outputs) -> Tensor:
        raise NotImplementedError

    # ---- FLOPs ----------------------------------------------------------------------------
    def _flops_plan(self, step: bool) -> Tuple[int, int, Tuple[int, int, int], int]:
        """(query tokens projected, key/value tokens projected, attention (muls, adds, exps)
        per head, output tokens projected) for one forward call or one step."""
        raise NotImplementedError

    def flops(
        self, include_muls: bool = True, include_adds: bool = False, include_exps: bool = False
    ) -> int:
        """Analytic operation count of one call in the active mode.

        The mode is the innermost ``co.call_mode`` block if any, else the ``call_mode``
        property; ``forward`` counts a clip of ``sequence_len`` tokens, ``forward_step`` and
        ``forward_steps`` one step. Counts (per head ``n = L``, ``d = E/h``): regular attention
        ``2n^2 d + 2nd`` muls, single query ``2nd + 2d``, retroactive update
        ``7nd + 2n - 3d``; projections ``E^2`` per projected token and input (``+E`` with
        bias); output projection ``E(E+1)`` per output token.
        """
        mode = active_call_mode() or self.call_mode
        q_tokens, kv_tokens, (a_muls, a_adds, a_exps), out_tokens = self._flops_plan(
            mode is not CallMode.FORWARD
        )
        e, heads = self.embed_dim, self.num_heads
        proj_tokens = q_tokens + 2 * kv_tokens
        has_bias = self.in_proj_bias is not None
        total = 0
        if include_muls:
            total += proj_tokens * e * e + (proj_tokens * e if has_bias else 0)
            total += heads * a_muls + out_tokens * e * (e + 1)
        if include_adds:
            total += proj_tokens * e * (e - 1) + (proj_tokens * e if has_bias else 0)
            total += heads * a_adds + out_tokens * e * (e - 1)
            total += out_tokens * e if self.out_proj.bias is not None else 0
        if include_exps:
            total += heads * a_exps
        return total

    def extra_repr(self) -> str:
        text = (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"sequence_len={self.sequence_len}"
        )
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.embed_dim_second:
            text += ", embed_dim_second=True"
        return text


# --------------------------------------------------------------------------------------------
# Single output
# --------------------------------------------------------------------------------------------
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
        keys, values = state.keys + (k,), state.values + (v,)
        y = None
        if out_valid is not False:
            q_sel = state.queries[0] if self._lag else q  # (N, h, d)
            scores = torch.matmul(torch.stack(keys, 2), q_sel.unsqueeze(3))  # (N, h, L, 1)
            weights = torch.softmax(scores, 2).transpose(2, 3)  # (N, h, 1, L)
            out = torch.matmul(weights, torch.stack(values, 2))  # (N, h, 1, d)
            y = self._out_project(out.reshape(n, self.embed_dim))
        queries = (state.queries + (q,))[1:] if self._lag else ()
        new = SingleOutputAttentionState(counter, state.shape, keys[1:], values[1:], queries)
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
        table = _suffix_table(torch.matmul(window_k, q.unsqueeze(3)).squeeze(3), window_v)
        if seq_len == 1:
            return (table[..., :-1] if need_output else None), state
        # The kept rows absorb the new key into their "future" aggregate.
        queries = torch.stack(state.queries, 2)  # (N, h, L-1, d)
        scores = torch.matmul(queries, k.unsqueeze(3)).squeeze(3)  # (N, h, L-1)
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

    def _flops_plan(self, step: bool):
        n, d = self.sequence_len, self._head_dim
        if step:
            return 1, 1, _retroactive_step_attention_flops(n, d), n
        return n, n, _regular_attention_flops(n, d), n
