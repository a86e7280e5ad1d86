"""``Conditional``: ``on_true(x) if predicate(self, x) else on_false(x)``, per call or step."""

from __future__ import annotations

from typing import Any, Callable, Optional

from torch import nn

from ..delay import Delay
from ..utils import function_repr
from .base import _as_continual, _Container, _run_forward
from .sequential import Sequential

__all__ = ["Conditional"]


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
