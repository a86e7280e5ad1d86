"""Parallel streams: ``Broadcast`` (one stream -> a list), ``Parallel`` (the i-th module on the
i-th stream, delays aligned) and ``ParallelDispatch`` (reorder, copy or group streams)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

from torch import Tensor, nn

from ..delay import Delay
from ..module import CoModule, finalize_step_output
from ..validity import Valid
from .base import _as_continual, _Container, _probe_length, _run_forward, _t_padding, _t_stride
from .sequential import Sequential

__all__ = ["Broadcast", "Parallel", "ParallelDispatch"]


def _branch_valid(valid: Any, i: int) -> Valid:
    return valid[i] if isinstance(valid, list) else valid


class Broadcast(CoModule):
    """One stream -> a list of ``num_streams`` references to it."""

    def __init__(self, num_streams: Optional[int] = None):
        super().__init__()
        self.num_streams = num_streams

    def _co_fit_to_next(self, module: nn.Module) -> None:
        """Inside a ``Sequential``: an unknown ``num_streams`` is the number of branches of the
        ``Parallel`` right after this module."""
        if self.num_streams is None and isinstance(module, Parallel):
            self.num_streams = len(module)

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
