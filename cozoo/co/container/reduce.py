"""Joining streams: the reducers, ``Reduce`` (a list of streams -> one) and ``BroadcastReduce``
(``Sequential(Broadcast, Parallel(*modules), Reduce(reduce))`` as one module)."""

from __future__ import annotations

import functools
import operator
from typing import Callable, List, Sequence, Union

import torch
from torch import Tensor

from ..module import CoModule
from ..validity import all_valid
from .base import _probe_length, _run_forward
from .parallel import Parallel

__all__ = ["BroadcastReduce", "Reduce", "reduce_concat", "reduce_max", "reduce_mul", "reduce_sum"]


def _align_end(tensors: Sequence[Tensor], keep: Sequence[bool] = ()) -> List[Tensor]:
    """The last n steps of each stream, n the shortest length (outputs of one step align).

    Streams flagged in ``keep`` (one frame broadcast over time) are left as they are.
    """
    keep = list(keep) or [False] * len(tensors)
    n = min(t.shape[2] for t, k in zip(tensors, keep) if not k)
    return [t if k or t.shape[2] == n else t[:, :, t.shape[2] - n :] for t, k in zip(tensors, keep)]


def reduce_sum(inputs: Sequence[Tensor]) -> Tensor:
    return functools.reduce(operator.add, inputs)


def reduce_mul(inputs: Sequence[Tensor]) -> Tensor:
    return functools.reduce(operator.mul, inputs)


def reduce_max(inputs: Sequence[Tensor]) -> Tensor:
    return functools.reduce(torch.maximum, inputs)


def reduce_concat(inputs: Sequence[Tensor]) -> Tensor:
    return torch.cat(list(inputs), dim=1)


_REDUCERS = {"sum": reduce_sum, "mul": reduce_mul, "max": reduce_max, "concat": reduce_concat}


def _reducer(reduce: Union[str, Callable]) -> Callable[[Sequence[Tensor]], Tensor]:
    if callable(reduce):
        return reduce
    if reduce not in _REDUCERS:
        raise ValueError(
            f"Reduce: reduce must be one of {list(_REDUCERS)} or a callable, got {reduce!r}"
        )
    return _REDUCERS[reduce]


class Reduce(CoModule):
    """A list of streams -> one: ``"sum"``, ``"concat"`` (channels), ``"mul"``, ``"max"`` or a
    callable ``list[Tensor] -> Tensor``. A step outputs only when every input has a frame."""

    def __init__(self, reduce: Union[str, Callable] = "sum"):
        super().__init__()
        self.reduce = _reducer(reduce)
        self._builtin = not callable(reduce)

    def _apply_reduce(self, inputs: Sequence[Tensor]) -> Tensor:
        if self._builtin and len(inputs) < 2:
            raise ValueError(f"Reduce: needs at least 2 inputs, got {len(inputs)}")
        return self.reduce(inputs)

    def forward(self, input):
        return self._apply_reduce(input)

    def _step(self, x, state, valid=True):
        valid = all_valid(valid) if isinstance(valid, list) else valid
        if valid is False or any(xi is None for xi in x):
            return None, False, state
        return self._apply_reduce(x), valid, state

    def _steps(self, x, state, pad_end=False):
        if x is None or any(xi is None for xi in x):
            return None, state, None
        return self._apply_reduce(_align_end(x)), state, None

    def extra_repr(self) -> str:
        return f"reduce={getattr(self.reduce, '__name__', repr(self.reduce))}"


# --------------------------------------------------------------------------------------------
# BroadcastReduce
# --------------------------------------------------------------------------------------------
class BroadcastReduce(Parallel):
    """``Sequential(Broadcast, Parallel(*modules), Reduce(reduce))`` as one module whose children
    keep the given keys. Branch outputs must have one length in ``forward``."""

    def __init__(self, *args, reduce: Union[str, Callable] = "sum", auto_delay: bool = True):
        super().__init__(*args, auto_delay=auto_delay)
        if len(self) < 2:
            raise ValueError(f"BroadcastReduce: needs at least 2 modules, got {len(self)}")
        self.reduce = _reducer(reduce)
        self._check_lengths(allow_broadcast=reduce != "concat")
        probe = _probe_length(self._co_children())
        # Branches whose forward returns one frame, broadcast over the others' frames.
        self._broadcasting = [
            reduce != "concat" and m._forward_length(probe) == 1 for m in self._co_children()
        ]

    def forward(self, input):
        return self.reduce([_run_forward(m, input) for m in self._co_children()])

    _co_routes_child_states = True  # _step: each child steps on its own slot

    def _step(self, x, state, valid=True):
        states = self._child_states(state)
        outs, valids = [], []
        for i, m in enumerate(self._co_children()):
            y, v, states[i] = m._call_step(x, states[i], valid)
            outs.append(y)
            valids.append(v)
        valid = all_valid(valids)
        if valid is False:
            return None, False, tuple(states)
        return self.reduce(outs), valid, tuple(states)

    def _steps(self, x, state, pad_end=False):
        states = self._child_states(state)
        outs, tails = [], []
        for i, m in enumerate(self._co_children()):
            y, states[i], tail = m._call_steps(x, states[i], pad_end)
            outs.append(y)
            tails.append(tail)
        out = None if any(o is None for o in outs) else self.reduce(_align_end(outs))
        tail = None
        if pad_end:
            # A broadcasting branch has no end padding of its own: its last frame stays valid.
            tails = [
                o[:, :, -1:] if t is None and b and o is not None else t
                for t, o, b in zip(tails, outs, self._broadcasting)
            ]
            if all(t is not None for t in tails) and not all(self._broadcasting):
                tail = self.reduce(_align_end(tails, self._broadcasting))
        return out, tuple(states), tail

    def forward_step(self, input, update_state: bool = True):
        return CoModule.forward_step(self, input, update_state)

    def _forward_length(self, t: int) -> int:
        lengths = [m._forward_length(t) for m in self._co_children()]
        return max(lengths)

    def extra_repr(self) -> str:
        return f"reduce={getattr(self.reduce, '__name__', repr(self.reduce))}"
