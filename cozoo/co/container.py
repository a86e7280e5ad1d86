"""Composition: ``Sequential``, ``Broadcast``, ``Parallel``, ``ParallelDispatch``, ``Reduce``,
``BroadcastReduce``, ``Conditional`` (``Residual``, built of them, is in ``residual``).

Containers step their children through the children's pure functions, so a container's state
is the tuple of its children's states: ``get_state()`` snapshots the whole network and
``set_state()`` restores it. Parallel branches are aligned automatically: a branch whose delay
is shorter than the others' gets a ``Delay`` appended, so all branches emit the outputs of the
same input step together. Raw ``torch.nn`` modules are converted with ``co.continual``.

Streams of several tensors (after ``Broadcast``) carry one validity per branch::

    x --Broadcast(2)--> [x, x] --Parallel(a, b)--> [a(x), b(x)] --Reduce("sum")--> a(x) + b(x)
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .convert import continual, register_built_in
from .delay import Delay
from .module import (
    CoModule,
    State,
    StoredStates,
    Valid,
    all_valid,
    cat_outputs,
    finalize_step_output,
    step_chain,
)
from .state_dicts import FlattenableStateDict
from .utils import function_repr

__all__ = [
    "Broadcast",
    "BroadcastReduce",
    "Conditional",
    "Parallel",
    "ParallelDispatch",
    "Reduce",
    "Sequential",
    "reduce_concat",
    "reduce_max",
    "reduce_mul",
    "reduce_sum",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _as_continual(module: Any) -> CoModule:
    return continual(module)


def _temporal(value: Any) -> int:
    """Temporal entry of a stride/padding property (int or tuple)."""
    if isinstance(value, (tuple, list)):
        value = value[0]
    return value if isinstance(value, int) else 0


def _t_stride(module: CoModule) -> int:
    return getattr(module, "_t_stride", None) or _temporal(module.stride)


def _t_padding(module: CoModule) -> int:
    pad = getattr(module, "_t_padding", None)
    return pad if pad is not None else _temporal(module.padding)


def _probe_length(modules: Sequence[CoModule]) -> int:
    """A clip length long enough for every module to produce output (recurrent modules have an
    unbounded receptive field; their output length does not depend on it)."""
    finite = [m.receptive_field for m in modules if math.isfinite(m.receptive_field)]
    return 4 * max(finite, default=1) + 7


def _branch_valid(valid: Any, i: int) -> Valid:
    return valid[i] if isinstance(valid, list) else valid


def _align_end(tensors: Sequence[Tensor], keep: Sequence[bool] = ()) -> List[Tensor]:
    """The last n steps of each stream, n the shortest length (outputs of one step align).

    Streams flagged in ``keep`` (one frame broadcast over time) are left as they are.
    """
    keep = list(keep) or [False] * len(tensors)
    n = min(t.shape[2] for t, k in zip(tensors, keep) if not k)
    return [t if k or t.shape[2] == n else t[:, :, t.shape[2] - n :] for t, k in zip(tensors, keep)]


def _run_forward(module: nn.Module, x: Any) -> Any:
    """``module.forward`` through torch's call machinery (hooks fire), ignoring call modes."""
    out = nn.Module.__call__(module, x)
    if isinstance(out, tuple) and isinstance(module, nn.RNNBase):
        return out[0]  # recurrent modules also return their hidden state
    return out


class _Container(FlattenableStateDict, CoModule):
    """State handling shared by containers: the state is the tuple of the children's states."""

    _co_routes_child_states = True  # get_state, set_state and _child_states (see StoredStates)

    def _co_children(self) -> List[CoModule]:
        return list(self._modules.values())

    def get_state(self) -> State:
        states = tuple(child.get_state() for child in self._co_children())
        return None if all(s is None for s in states) else states

    def set_state(self, state: State) -> None:
        children = self._co_children()
        if state is None:
            state = (None,) * len(children)
        if len(state) != len(children):
            raise ValueError(
                f"{type(self).__name__}.set_state: expected a state for each of its "
                f"{len(children)} children, got {len(state)} entries"
            )
        for child, child_state in zip(children, state):
            child.set_state(child_state)

    def clean_state(self, streams: Optional[Sequence[int]] = None) -> None:
        for child in self._co_children():
            child.clean_state(streams)

    def _reset_streams(self, state: State, streams: Sequence[int]) -> State:
        return tuple(
            None if s is None else child._reset_streams(s, streams)
            for child, s in zip(self._co_children(), state)
        )

    def _child_states(self, state: State) -> list:
        if state.__class__ is StoredStates:
            return [state] * len(self._modules)  # each child works on its own stored state
        return list(state) if state is not None else [None] * len(self._modules)


# --------------------------------------------------------------------------------------------
# Sequential
# --------------------------------------------------------------------------------------------
class Sequential(_Container, nn.Sequential):
    """Drop-in ``nn.Sequential`` whose children are stepped in turn.

    A step stops at the first child without an output (later children are not stepped).
    ``stride`` = product of the children's strides, ``delay`` = sum of their delays, each
    scaled by the strides before it.
    """

    def __init__(self, *args):
        nn.Sequential.__init__(self, *args)
        modules = list(self._modules.values())
        for first, second in zip(modules, modules[1:]):
            if (
                isinstance(first, Broadcast)
                and first.num_streams is None
                and isinstance(second, Parallel)
            ):
                first.num_streams = len(second)

    def add_module(self, name: str, module: Optional[nn.Module]) -> None:
        super().add_module(name, None if module is None else _as_continual(module))

    def append(self, module: nn.Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    @classmethod
    def build_from(cls, module: nn.Sequential) -> Sequential:
        return cls(OrderedDict((name, _as_continual(m)) for name, m in module.named_children()))

    # ---- temporal properties ----------------------------------------------------------------
    def _require_children(self, what: str) -> List[CoModule]:
        children = self._co_children()
        if not children:
            raise ValueError(f"Sequential: an empty Sequential has no {what}")
        return children

    @property
    def stride(self):
        total = 1
        for child in self._require_children("stride"):
            total *= _t_stride(child)
        return (total,)

    @property
    def padding(self):
        total, scale = 0, 1
        for child in self._require_children("padding"):
            total += _t_padding(child) * scale
            scale *= _t_stride(child)
        return (total,)

    @property
    def receptive_field(self) -> int:
        rf = 1
        for child in reversed(self._require_children("receptive_field")):
            s = _t_stride(child)
            rf = s * rf + child.receptive_field - s
        return rf

    @property
    def delay(self) -> int:
        total, scale = 0, 1
        for child in self._require_children("delay"):
            total += child.delay * scale
            scale *= _t_stride(child)
        return total

    def _forward_length(self, t: int) -> int:
        for child in self._co_children():
            t = child._forward_length(t)
        return t

    # ---- modes ----------------------------------------------------------------------------------
    def forward(self, input):
        for child in self._co_children():
            input = _run_forward(child, input)
        return input

    _co_routes_child_states = True  # _step: each child steps on its own slot

    def _step(self, x, state, valid=True):
        if state.__class__ is StoredStates:
            return step_chain(self._co_children(), x, state, valid)
        states = self._child_states(state)
        for i, child in enumerate(self._co_children()):
            x, valid, states[i] = child._call_step(x, states[i], valid)
            if valid is False:
                return None, False, tuple(states)
        return x, valid, tuple(states)

    def _steps(self, x, state, pad_end=False):
        states = self._child_states(state)
        tail = None
        for i, child in enumerate(self._co_children()):
            before = states[i]
            x, states[i], _ = child._call_steps(x, before, False)
            if pad_end:
                # The upstream tail continues this child's stream (on a copy of its state),
                # followed by the child's own end padding.
                cont, _, cont_tail = child._call_steps(tail, states[i], True)
                tail = cat_outputs([cont, cont_tail])
            if x is None and tail is None and not pad_end:
                break
        return x, tuple(states), tail


register_built_in(nn.Sequential, Sequential.build_from)


# --------------------------------------------------------------------------------------------
# Broadcast / Parallel / ParallelDispatch / Reduce
# --------------------------------------------------------------------------------------------
class Broadcast(CoModule):
    """One stream -> a list of ``num_streams`` references to it."""

    def __init__(self, num_streams: Optional[int] = None):
        super().__init__()
        self.num_streams = num_streams

    def _fan_out(self, x: Any) -> list:
        if self.num_streams is None:
            raise ValueError(
                "Broadcast: num_streams is unknown; pass it, or place the Broadcast directly "
                "before a Parallel inside a Sequential"
            )
        return [x] * self.num_streams

    def forward(self, input):
        return self._fan_out(input)

    def _step(self, x, state, valid=True):
        if valid is False:
            return None, False, state
        return self._fan_out(x), valid, state

    def _steps(self, x, state, pad_end=False):
        return (None if x is None else self._fan_out(x)), state, None

    def extra_repr(self) -> str:
        return "" if self.num_streams is None else f"num_streams={self.num_streams}"


class Parallel(_Container, nn.Sequential):
    """Apply the i-th module to the i-th stream of a list.

    With ``auto_delay`` (default) every branch whose delay is shorter than the longest gets a
    ``Delay`` appended, so all branches emit together. Branches must share a temporal stride.
    """

    def __init__(self, *args, auto_delay: bool = True):
        nn.Sequential.__init__(self, *args)
        if auto_delay:
            self._align_delays()
        strides = [_t_stride(m) for m in self._co_children()]
        if len(set(strides)) > 1:
            raise ValueError(
                f"{type(self).__name__}: all branches must have the same temporal stride, "
                f"got strides {strides}"
            )

    def add_module(self, name: str, module: Optional[nn.Module]) -> None:
        super().add_module(name, None if module is None else _as_continual(module))

    def _align_delays(self) -> None:
        delays = [m.delay for m in self._co_children()]
        if not delays:
            return
        longest = max(delays)
        for (name, module), delay in zip(list(self._modules.items()), delays):
            missing = longest - delay
            if missing == 0:
                continue
            stride = _t_stride(module)
            if missing % stride == 0:
                # After the branch, one step is `stride` input steps.
                self._modules[name] = Sequential(module, Delay(missing // stride))
            else:
                self._modules[name] = Sequential(Delay(missing), module)

    def _check_lengths(self, allow_broadcast: bool) -> None:
        """Branches must return clips of one length in ``forward`` (checked on two lengths)."""
        children = self._co_children()
        longest = _probe_length(children)
        for t in (longest, longest + 1):
            lengths = [m._forward_length(t) for m in children]
            distinct = {n for n in lengths if not (allow_broadcast and n == 1)}
            if len(distinct) > 1:
                described = ", ".join(
                    f"{i}: {type(m).__name__} -> {n}"
                    for i, (m, n) in enumerate(zip(children, lengths))
                )
                raise ValueError(
                    f"{type(self).__name__}: its branches return clips of different lengths "
                    f"for a {t}-frame input ({described}); give them matching temporal "
                    "padding (receptive_field - 2 * padding must agree)"
                )

    @property
    def delay(self) -> int:
        return max((m.delay for m in self._co_children()), default=0)

    @property
    def receptive_field(self) -> int:
        return max((m.receptive_field for m in self._co_children()), default=1)

    @property
    def padding(self):
        return (max((_t_padding(m) for m in self._co_children()), default=0),)

    @property
    def stride(self):
        children = self._co_children()
        return (_t_stride(children[0]) if children else 1,)

    def _forward_length(self, t: int) -> int:
        return max(m._forward_length(t) for m in self._co_children())

    def _inputs(self, x: Any) -> list:
        children = self._co_children()
        if not isinstance(x, (list, tuple)) or len(x) != len(children):
            got = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__}: expected a list of {len(children)} inputs (one per "
                f"branch), got {got}"
            )
        return list(x)

    def forward(self, input):
        return [_run_forward(m, xi) for m, xi in zip(self._co_children(), self._inputs(input))]

    _co_routes_child_states = True  # _step: each child steps on its own slot

    def _step(self, x, state, valid=True):
        states = self._child_states(state)
        outs, valids = [], []
        for i, (m, xi) in enumerate(zip(self._co_children(), self._inputs(x))):
            vi = _branch_valid(valid, i)
            y, v, states[i] = m._call_step(xi, states[i], vi)
            outs.append(y)
            valids.append(v)
        return outs, _merge_branch_valids(valids), tuple(states)

    def _steps(self, x, state, pad_end=False):
        states = self._child_states(state)
        xs = [None] * len(states) if x is None else self._inputs(x)
        outs, tails = [], []
        for i, (m, xi) in enumerate(zip(self._co_children(), xs)):
            y, states[i], tail = m._call_steps(xi, states[i], pad_end)
            outs.append(y)
            tails.append(tail)
        out = None if all(o is None for o in outs) else outs
        tail = None if all(t is None for t in tails) else tails
        return out, tuple(states), tail

    def forward_step(self, input, update_state: bool = True):
        y, valid, state = self._step(self._own_input(input), self.get_state(), True)
        if update_state:
            self.set_state(state)
        object.__setattr__(self, "_co_last_valid", valid)
        return [finalize_step_output(yi, _branch_valid(valid, i)) for i, yi in enumerate(y)]


def _merge_branch_valids(valids: List[Valid]) -> Any:
    first = valids[0]
    if any(isinstance(v, Tensor) for v in valids):
        return valids
    return first if all(v == first for v in valids) else valids


class ParallelDispatch(CoModule):
    """Reorder, copy or group streams: ``output[i] = input[mapping[i]]`` (nested lists allowed).

    >>> ParallelDispatch([2, 0, [0, 2], 2])([10, 11, 12])
    [12, 10, [10, 12], 12]
    """

    def __init__(self, dispatch_mapping: Sequence[Union[int, Sequence[int]]]):
        super().__init__()

        def check(mapping):
            for entry in mapping:
                if isinstance(entry, (list, tuple)):
                    check(entry)
                elif not isinstance(entry, int) or isinstance(entry, bool) or entry < 0:
                    raise ValueError(
                        f"ParallelDispatch: mapping entries must be non-negative ints or "
                        f"sequences of them, got {entry!r}"
                    )

        check(dispatch_mapping)
        self.dispatch_mapping = dispatch_mapping

    def _dispatch(self, x: Sequence[Any], mapping=None) -> list:
        mapping = self.dispatch_mapping if mapping is None else mapping
        return [self._dispatch(x, m) if isinstance(m, (list, tuple)) else x[m] for m in mapping]

    def forward(self, input):
        return self._dispatch(input)

    def _step(self, x, state, valid=True):
        if valid is False:
            return None, False, state
        if isinstance(valid, list):
            valid = self._dispatch(valid)
        return self._dispatch(x), valid, state

    def _steps(self, x, state, pad_end=False):
        return (None if x is None else self._dispatch(x)), state, None

    def extra_repr(self) -> str:
        return f"dispatch_mapping={self.dispatch_mapping}"


def reduce_sum(inputs: Sequence[Tensor]) -> Tensor:
    return functools.reduce(torch.add, inputs)


def reduce_mul(inputs: Sequence[Tensor]) -> Tensor:
    return functools.reduce(torch.mul, inputs)


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


# --------------------------------------------------------------------------------------------
# Conditional
# --------------------------------------------------------------------------------------------
class Conditional(_Container):
    """``on_true(x) if predicate(self, x) else on_false(x)``; evaluated per call (per step in
    step modes). Without ``on_false`` the input passes through, delayed to stay aligned."""

    def __init__(
        self,
        predicate: Callable[[nn.Module, Any], bool],
        on_true: nn.Module,
        on_false: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.predicate = predicate
        on_true = _as_continual(on_true)
        on_false = Delay(on_true.delay) if on_false is None else _as_continual(on_false)
        if on_true.delay < on_false.delay:
            on_true = Sequential(Delay(on_false.delay - on_true.delay), on_true)
        elif on_false.delay < on_true.delay:
            on_false = Sequential(Delay(on_true.delay - on_false.delay), on_false)
        self.add_module("0", on_true)
        self.add_module("1", on_false)

    @property
    def delay(self) -> int:
        return max(m.delay for m in self._co_children())

    @property
    def receptive_field(self) -> int:
        return max(m.receptive_field for m in self._co_children())

    def _branch(self, x: Any) -> int:
        return 0 if self.predicate(self, x) else 1

    def forward(self, input):
        return _run_forward(self._co_children()[self._branch(input)], input)

    _co_routes_child_states = True  # _step: each child steps on its own slot

    def _step(self, x, state, valid=True):
        states = self._child_states(state)
        i = self._branch(x)
        y, valid, states[i] = self._co_children()[i]._call_step(x, states[i], valid)
        return y, valid, tuple(states)

    def _steps(self, x, state, pad_end=False):
        states = self._child_states(state)
        i = self._branch(x)
        y, states[i], tail = self._co_children()[i]._call_steps(x, states[i], pad_end)
        return y, tuple(states), tail

    def __repr__(self) -> str:
        lines = [f"Conditional(\n  predicate={function_repr(self.predicate)}"]
        for name, module in self._modules.items():
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"
