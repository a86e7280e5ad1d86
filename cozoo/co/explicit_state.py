"""The explicit state of continual-inference's ``_forward_step``: a flat tuple of tensors.

continual-inference users step a network with the state in their own hands::

    state = None
    for frame in frames:                       # frame: one step (B, C, *S)
        output, state = net._forward_step(frame, state)

and hand that state to ONNX (``co.onnx.OnnxWrapper``). Here ``state`` is a flat tuple of
tensors: the tensors of the module's step state in the step's **tensor mode** (the form that
``co.export.StepFunction`` exports), step counters included as ``(B,)`` int64 tensors, so that
every entry can be cloned, fed to ONNX Runtime and fed back. ``output`` is what
``forward_step`` would return: None while every stream warms up (or between strided outputs).

The order and shapes of the tuple are the module's **state layout** for a step shape
(``state_layout``): found once per step shape, dtype and device by running a short zero clip
(the discovery of ``co.export``, so the layout is that of ``StepFunction`` and
``co.onnx.initial_state``), and kept on the module. The module's own state (``get_state()``)
is never read or changed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .export import _fresh_state, flatten_state, state_batch_axes, unflatten_state
from .modes import tensor_mode
from .module import CoModule, State, finalize_step_output, register_explicit_step

__all__ = [
    "StateLayout",
    "batch_axes",
    "forward_step_explicit",
    "last_state_layout",
    "state_layout",
]

_CACHE = "_co_state_layouts"
_LAST = "_co_last_state_layout"


class StateLayout(NamedTuple):
    """Where each tensor of a flat state belongs, for steps of one shape."""

    structure: Any  # the nested step state with its tensors replaced by placeholders
    fresh: Tuple[Tensor, ...]  # the flat state of fresh streams
    step_shape: Tuple[int, ...]  # (B, C, *S) of the steps it was found for
    dtype: torch.dtype  # ... and their dtype
    device: torch.device  # ... and device

    @property
    def num_states(self) -> int:
        return len(self.fresh)


def state_layout(module: CoModule, step: Tensor) -> StateLayout:
    """The flat state layout of ``module`` for steps shaped, typed and placed like ``step``."""
    key = (tuple(step.shape), step.dtype, step.device)
    cache = module.__dict__.get(_CACHE)
    if cache is None:
        cache = {}
        object.__setattr__(module, _CACHE, cache)
    layout = cache.get(key)
    if layout is None:
        tensors, structure = _fresh_state(module, step)
        layout = StateLayout(structure, tuple(tensors), tuple(step.shape), step.dtype, step.device)
        cache[key] = layout
    object.__setattr__(module, _LAST, layout)
    return layout


def last_state_layout(module: CoModule) -> Optional[StateLayout]:
    """The layout of the last ``_forward_step`` (or ``state_layout``) call, if any."""
    return module.__dict__.get(_LAST)


def _is_flat_state(state: Any, layout: StateLayout) -> bool:
    """Whether ``state`` is a flat tensor state of ``layout`` (same number of tensors, same
    shapes); a state of ``get_state()``'s form is not."""
    if not isinstance(state, (tuple, list)) or hasattr(state, "_fields"):
        return False
    if len(state) != layout.num_states or not all(isinstance(s, Tensor) for s in state):
        return False
    return all(s.shape == f.shape for s, f in zip(state, layout.fresh))


def _public_output(y: Any, valid: Any) -> Any:
    """``forward_step``'s output from a tensor-mode step: None if no stream has an output."""
    if isinstance(valid, Tensor):
        if bool(valid.all()):
            return y
        if not bool(valid.any()):
            return None
        return finalize_step_output(y, tuple(bool(v) for v in valid.tolist()))
    if isinstance(valid, list):  # parallel streams: an output if any stream has one
        flags = [_public_output(y_i, v) for y_i, v in zip(y, valid)]
        return None if all(f is None for f in flags) else y
    return finalize_step_output(y, valid)


def forward_step_explicit(
    module: CoModule, input: Any, prev_state: Optional[State]
) -> Tuple[Any, State]:
    """``module._forward_step(input, prev_state)``: see the module docstring.

    ``prev_state`` None or a flat tuple of tensors gives a flat tuple; any other state (of
    ``get_state()``'s form, e.g. an RNN's hidden state) steps as it is and comes back in its
    own form.
    """
    if isinstance(input, Tensor):
        layout = state_layout(module, input)
        if prev_state is None:
            tensors: Sequence[Tensor] = tuple(t.clone() for t in layout.fresh)
        elif _is_flat_state(prev_state, layout):
            tensors = tuple(prev_state)
        else:
            tensors = None
        if tensors is not None:
            nested = unflatten_state(layout.structure, tensors)
            with tensor_mode():
                y, valid, next_state = module._step(input, nested, True)
            flat, _ = flatten_state(next_state)
            return _public_output(y, valid), tuple(flat)
    y, valid, next_state = module._step(input, prev_state, True)
    return finalize_step_output(y, valid), next_state


def batch_axes(module: CoModule, layout: StateLayout) -> Tuple[int, ...]:
    """For each tensor of ``layout``, the axis that holds the batch (streams)."""
    if not layout.fresh:
        return ()
    example = torch.zeros(layout.step_shape, dtype=layout.dtype, device=layout.device)
    return tuple(state_batch_axes(module, example))


register_explicit_step(forward_step_explicit)
