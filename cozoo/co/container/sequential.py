"""``Sequential``: a drop-in ``nn.Sequential`` whose children are stepped in turn; registered
as the conversion of ``nn.Sequential`` (``co.continual``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import List, Optional

from torch import nn

from ..child_steps import StoredStates
from ..convert import register_built_in
from ..module import CoModule, cat_outputs, step_chain
from .base import _as_continual, _Container, _run_forward, _t_padding, _t_stride

__all__ = ["Sequential"]


class Sequential(_Container, nn.Sequential):
    """Drop-in ``nn.Sequential`` whose children are stepped in turn.

    A step stops at the first child without an output (later children are not stepped).
    ``stride`` = product of the children's strides, ``delay`` = sum of their delays, each
    scaled by the strides before it.
    """

    def __init__(self, *args):
        nn.Sequential.__init__(self, *args)
        modules = list(self._modules.values())
        # A child may adapt to the one after it: a Broadcast takes its num_streams from a
        # Parallel (a hook, so that this module needs neither class).
        for first, second in zip(modules, modules[1:]):
            fit_to_next = getattr(first, "_co_fit_to_next", None)
            if fit_to_next is not None:
                fit_to_next(second)

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
