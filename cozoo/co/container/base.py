"""What every container shares: ``_Container`` (the state is the tuple of the children's
states) and the temporal helpers that read a child's stride, padding and clip lengths."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

from torch import nn

from ..child_steps import StoredStates
from ..convert import continual
from ..module import CoModule, State
from ..state_dicts import FlattenableStateDict


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
