"""The shared core of the continual attention modules: ``_ContinualMultiheadAttention``.

A subclass of ``torch.nn.MultiheadAttention`` (same parameters, same ``state_dict`` keys,
``forward`` is torch's) with what both step variants share: the clip layouts and their
canonical ``(N, T, E)`` form, the step inputs and their checks, the q/k/v projections per head,
the stateful wrappers (``forward_step``, ``forward_steps``) and the analytic FLOPs.
"""

from __future__ import annotations

import math
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union

import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import StepShapeError, check_step_shape
from ..modes import CallMode, active_call_mode, in_tensor_mode
from ..module import CoModule, State
from ..validity import Valid, reset_counter, select_rows

StepInput = Union[Tensor, Tuple[Tensor, Optional[Tensor], Optional[Tensor]]]

_MASK_KWARGS = ("attn_mask", "key_padding_mask", "is_causal")
_IGNORED_KWARGS = ("need_weights", "average_attn_weights")


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
        if self._qkv_same_embed_dim and query is key and key is value:
            # One projection, split as views of its contiguous output: reshaping the chunks
            # of a (N, 3E) tensor would make torch.export fix a batch of one stream.
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
            q, k, v = qkv.reshape(n, 3, h, d).unbind(1)
        else:
            q, k, v = (t.reshape(n, h, d) for t in self._in_project(query, key, value))
        return q * (1.0 / math.sqrt(d)), k, v

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
        """``(output | None, next_state)`` from an explicit state, as in continual-inference
        (``CoModule._forward_step``; with ``key``/``value`` the state keeps its own form)."""
        x = query if key is None and value is None else (query, key, value)
        return CoModule._forward_step(self, x, prev_state)

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

    def _warmup_flops_plan(self) -> Tuple[int, int, Tuple[int, int, int], int]:
        """``_flops_plan`` of a step without output (the warm-up): the step projects its
        token's query, key and value (kept in the state) and projects no output."""
        return 1, 1, (0, 0, 0), 0

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
        plan = self._flops_plan(mode is not CallMode.FORWARD)
        return self._count_plan(plan, include_muls, include_adds, include_exps)

    def warmup_step_flops(
        self, include_muls: bool = True, include_adds: bool = False, include_exps: bool = False
    ) -> int:
        """Operation count of a step that returns None (the first ``delay`` steps): the
        projections of the step's token (and, for the retroactive module, its window update),
        without the single query's attention and without the output projection."""
        plan = self._warmup_flops_plan()
        return self._count_plan(plan, include_muls, include_adds, include_exps)

    def _count_plan(
        self, plan: Tuple[int, int, Tuple[int, int, int], int], muls: bool, adds: bool, exps: bool
    ) -> int:
        q_tokens, kv_tokens, (a_muls, a_adds, a_exps), out_tokens = plan
        e, heads = self.embed_dim, self.num_heads
        proj_tokens = q_tokens + 2 * kv_tokens
        has_bias = self.in_proj_bias is not None
        total = 0
        if muls:
            total += proj_tokens * e * e + (proj_tokens * e if has_bias else 0)
            total += heads * a_muls + out_tokens * e * (e + 1)
        if adds:
            total += proj_tokens * e * (e - 1) + (proj_tokens * e if has_bias else 0)
            total += heads * a_adds + out_tokens * e * (e - 1)
            total += out_tokens * e if self.out_proj.bias is not None else 0
        if exps:
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
