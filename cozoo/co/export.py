"""The pure step as a function of tensors only: for ONNX, ``torch.export`` and ``torch.compile``.

``StepFunction(module, example_step)`` is an ``nn.Module`` whose ``forward`` is one step::

    output, valid, *next_state = step_fn(input, *state)

- ``input``: one step ``(B, C, *S)``; ``state``: the flat list of state tensors
  (``initial_state(module, example_step)`` for fresh streams);
- ``output``: the step output, computed on every step; ``valid``: a ``(B,)`` bool tensor, True
  for the streams whose output is real (past the warm-up, on a stride phase);
- ``next_state``: the state tensors to feed to the next step.

It runs the module's own ``_step`` in tensor mode (counters are ``(B,)`` int64 tensors, nothing
branches on a value), so the traced graph is correct on every step, for any batch size.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from .modes import in_tensor_mode, tensor_mode
from .module import CoModule, State

__all__ = ["StepFunction", "flatten_state", "initial_state", "state_batch_axes", "unflatten_state"]


class _Leaf:
    """Placeholder for a tensor in a flattened state's structure."""

    def __repr__(self) -> str:
        return "<tensor>"

    # One placeholder (``unflatten_state`` compares by identity), also in copies and pickles.
    def __copy__(self) -> _Leaf:
        return self

    def __deepcopy__(self, memo: dict) -> _Leaf:
        return self

    def __reduce__(self) -> str:
        return "_LEAF"


_LEAF = _Leaf()


def flatten_state(state: State) -> Tuple[List[Tensor], Any]:
    """The tensors of a (nested) state, in order, and the structure to rebuild it."""
    tensors: List[Tensor] = []

    def walk(obj: Any) -> Any:
        if isinstance(obj, Tensor):
            tensors.append(obj)
            return _LEAF
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(walk(o) for o in obj))
        if isinstance(obj, (tuple, list)):
            return type(obj)(walk(o) for o in obj)
        return obj

    return tensors, walk(state)


def unflatten_state(structure: Any, tensors: Sequence[Tensor]) -> State:
    """Inverse of ``flatten_state``."""
    remaining = iter(tensors)

    def walk(obj: Any) -> Any:
        if obj is _LEAF:
            return next(remaining)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(walk(o) for o in obj))
        if isinstance(obj, (tuple, list)):
            return type(obj)(walk(o) for o in obj)
        return obj

    return walk(structure)


def _fresh(obj: Any, batch: int) -> Any:
    """A discovered state turned into the state of fresh streams, counters as tensors."""
    if isinstance(obj, Tensor):
        return torch.zeros_like(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        fields = {}
        for name, value in zip(obj._fields, obj):
            if name == "counter":
                device = _first_device(obj)
                fields[name] = torch.zeros(batch, dtype=torch.int64, device=device)
            elif name == "shape":
                fields[name] = value
            else:
                fields[name] = _fresh(value, batch)
        return type(obj)(**fields)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_fresh(o, batch) for o in obj)
    return obj


def _first_device(obj: Any) -> torch.device:
    tensors, _ = flatten_state(obj)
    return tensors[0].device if tensors else torch.device("cpu")


def _discover_state(module: CoModule, example_step: Tensor) -> State:
    """Run a short zero clip through ``module`` so that every stateful child holds a state.

    The clip goes through ``_steps`` at once; a network that only steps (``forward_steps``
    does not fit it, e.g. a ``Lambda`` that reduces time in ``forward``) takes it step by step.
    """
    rf = module.receptive_field
    stride = module.stride[0] if isinstance(module.stride, tuple) else 1
    frames = (int(rf) if rf != float("inf") else 1) + 2 * int(stride)
    step = torch.zeros_like(example_step.detach())
    clip = step.unsqueeze(2).repeat_interleave(frames, dim=2)
    with torch.no_grad(), tensor_mode():
        try:
            _, state, _ = module._steps(clip, None, False)
        except Exception:  # noqa: BLE001 - stepping raises again if the step cannot fit
            state = None
            for _ in range(frames):
                _, _, state = module._step(step, state, True)
    return state


def _fresh_state(module: CoModule, example_step: Tensor) -> Tuple[List[Tensor], Any]:
    state = _fresh(_discover_state(module, example_step), example_step.shape[0])
    return flatten_state(state)


def initial_state(module: CoModule, example_step: Tensor) -> List[Tensor]:
    """The flat list of state tensors of fresh streams shaped like ``example_step`` (B, C, *S)."""
    tensors, _ = _fresh_state(module, example_step)
    return tensors


def state_batch_axes(module: CoModule, example_step: Tensor) -> List[int]:
    """For each state tensor, the axis that holds the batch (compared across two batch sizes)."""
    small, _ = _fresh_state(module, example_step)
    bigger = torch.cat([example_step, example_step[:1]], 0)
    large, _ = _fresh_state(module, bigger)
    axes = []
    for a, b in zip(small, large):
        differing = [i for i, (m, n) in enumerate(zip(a.shape, b.shape)) if m != n]
        if len(differing) != 1:
            raise RuntimeError(
                f"{type(module).__name__}: cannot tell the batch axis of a state tensor of shape "
                f"{tuple(a.shape)}"
            )
        axes.append(differing[0])
    return axes


class StepFunction(nn.Module):
    """One step of ``module`` as ``forward(input, *state) -> (output, valid, *next_state)``."""

    def __init__(self, module: CoModule, example_step: Tensor):
        super().__init__()
        if not isinstance(module, CoModule):
            raise TypeError(
                f"{type(self).__name__}: expected a continual module, got {type(module).__name__}"
            )
        tensors, structure = _fresh_state(module, example_step)
        self._bind(module, structure, len(tensors))

    def _bind(self, module: CoModule, structure: Any, num_states: int) -> None:
        self.module = module
        self._structure = structure
        self.num_states = num_states

    def _run(self, input: Tensor, state: Sequence[Tensor]) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """``(output, valid, next_state)`` of one step in tensor mode."""
        if len(state) != self.num_states:
            raise ValueError(
                f"{type(self).__name__}({type(self.module).__name__}): expected "
                f"{self.num_states} state tensors, got {len(state)}"
            )
        nested = unflatten_state(self._structure, state)
        if in_tensor_mode():
            y, valid, next_state = self.module._step(input, nested, True)
        else:
            with tensor_mode():
                y, valid, next_state = self.module._step(input, nested, True)
        if not isinstance(y, Tensor):
            raise TypeError(
                f"{type(self).__name__}({type(self.module).__name__}): the step output must be "
                f"one tensor, got {type(y).__name__}"
            )
        if not isinstance(valid, Tensor):
            # Stateless networks: every stream has an output on every step.
            valid = torch.ones_like(y.reshape(y.shape[0], -1)[:, 0], dtype=torch.bool)
        next_tensors, _ = flatten_state(next_state)
        return y, valid, next_tensors

    def forward(self, input: Tensor, *state: Tensor):
        y, valid, next_tensors = self._run(input, state)
        return (y, valid, *next_tensors)
