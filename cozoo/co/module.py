"""The continual-module contract: ``CoModule``, its call modes and its pure step.

Every continual module computes its step as a **pure function**::

    y, valid, next_state = module._step(x_step, state, valid)          # one frame
    y, next_state, tail = module._steps(x_clip, state, pad_end)         # a chunk of frames

and the familiar stateful methods (``forward_step``, ``forward_steps``, ``get_state``...) are
thin wrappers that read the stored state, call the pure function and store the result.

State values are immutable: a step never writes into a tensor of a previous state, so
``get_state()`` is a real snapshot without copying and ``update_state=False`` costs nothing.

Validity (``valid``) says which streams of a batch carry a real frame at this step:
``True`` (all), ``False`` (none) or a tuple of ``B`` bools (mixed, after a per-stream reset).
It is host-side bookkeeping, so deciding whether a step produced an output never reads a
device tensor.

The parts live beside this module: ``modes`` (``call_mode``, ``tensor_mode``...),
``validity`` (validity and step counters), ``child_steps`` (hooks, ``StoredStates``) and
``checks`` (``StepShapeError``); their public names are importable from here too.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

# ``name as name``: a public name of a part, importable from ``cozoo.co.module`` as before.
from .checks import StepShapeError
from .child_steps import StoredStates, _has_any_hooks, _has_hooks, _hooked, _owner
from .child_steps import routes_child_states as routes_child_states
from .modes import CallMode, _mode_stack, to_call_mode
from .modes import active_call_mode as active_call_mode
from .modes import call_mode as call_mode
from .modes import in_static_bookkeeping as in_static_bookkeeping
from .modes import in_tensor_mode as in_tensor_mode
from .modes import static_bookkeeping as static_bookkeeping
from .modes import tensor_mode as tensor_mode
from .validity import Valid, valid_mask
from .validity import advance_counter as advance_counter
from .validity import all_valid as all_valid
from .validity import collapse as collapse
from .validity import expand_valid as expand_valid
from .validity import first_output_offset as first_output_offset
from .validity import reset_counter as reset_counter
from .validity import select_rows as select_rows
from .validity import tick as tick

__all__ = [
    "CallMode",
    "CoModule",
    "Stateless",
    "StepShapeError",
    "call_mode",
    "to_call_mode",
]

State = Any


# --------------------------------------------------------------------------------------------
# Public outputs
# --------------------------------------------------------------------------------------------
def cat_time(parts: Sequence[Optional[Tensor]], dim: int = 2) -> Optional[Tensor]:
    """Concatenate the non-empty parts along time; None if nothing is left."""
    parts = [p for p in parts if p is not None and p.shape[dim] > 0]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts, dim)


def cat_outputs(parts: Sequence[Any]) -> Any:
    """``cat_time`` for tensors, branch by branch for lists of tensors (parallel streams)."""
    present = [p for p in parts if p is not None]
    if not present:
        return None
    if isinstance(present[0], list):
        return [cat_outputs([p[i] for p in present]) for i in range(len(present[0]))]
    if not isinstance(present[0], Tensor):
        return present[0]  # a non-tensor stream (e.g. a broadcast Python value) is constant
    return cat_time(present)


def finalize_step_output(y: Optional[Tensor], valid: Valid) -> Optional[Tensor]:
    """Public step output: None if no stream produced one; NaN rows for the streams that did not."""
    if valid is True:
        return y
    if valid is False or y is None or not any(valid):
        return None
    if isinstance(y, Tensor) and y.is_floating_point():
        return y.masked_fill(~valid_mask(valid, y), float("nan"))
    return y


# --------------------------------------------------------------------------------------------
# Steps on the stored states
# --------------------------------------------------------------------------------------------
def step_chain(children: Iterable[CoModule], x: Any, stored: StoredStates, valid: Valid):
    """``Sequential``'s step on the stored states: each child steps on the previous one's
    output, until one has none (no per-child state slots to build: each child keeps its own)."""
    for child in children:
        x, valid, _ = child._call_step(x, stored, valid)
        if valid is False:
            return None, False, stored
    return x, valid, stored


_ROUTES, _PLAIN_STATE, _OWN_STATE_API, _FRAME_ONLY = 0, 1, 2, 3
_stored_kind_by_class: dict = {}


def _stored_kind(cls: type) -> int:
    """How a step on ``StoredStates`` treats a module of ``cls`` (cached per class)."""
    kind = _stored_kind_by_class.get(cls)
    if kind is None:
        if routes_child_states(cls):
            kind = _ROUTES
        elif _owner(cls, "get_state") is CoModule and _owner(cls, "set_state") is CoModule:
            # The state is the `_co_state` attribute, nothing more; with CoModule's own
            # `_step`, a step is `_frame` on the frame and leaves that state as it is.
            kind = _FRAME_ONLY if _owner(cls, "_step") is CoModule else _PLAIN_STATE
        else:
            kind = _OWN_STATE_API
        _stored_kind_by_class[cls] = kind
    return kind


# --------------------------------------------------------------------------------------------
# CoModule
# --------------------------------------------------------------------------------------------
class CoModule(nn.Module):
    """Base class of every continual module.

    Subclasses implement the pure step ``_step`` (and, for speed, the chunked ``_steps``);
    stateless modules implement ``_frame`` (one step ``(B, C, *S)`` -> ``(B, C', *S')``).

    Temporal properties: ``receptive_field`` (frames one output depends on), ``delay`` (steps
    between a frame entering and the output that it completes), ``stride`` and ``padding``
    (tuples, temporal entry first).
    """

    _co_call_mode: CallMode = CallMode.FORWARD
    _co_state: State = None
    _co_last_valid: Valid = True

    # ---- temporal properties (stateless defaults) -------------------------------------------
    @property
    def receptive_field(self) -> int:
        return 1

    @property
    def delay(self) -> int:
        return 0

    @property
    def stride(self) -> Tuple[int, ...]:
        return (1,)

    @property
    def padding(self) -> Tuple[int, ...]:
        return (0,)

    def _forward_length(self, t: int) -> int:
        """Number of frames ``forward`` returns for a clip of ``t`` frames."""
        return t

    # ---- call mode ---------------------------------------------------------------------------
    @property
    def call_mode(self) -> CallMode:
        return self._co_call_mode

    @call_mode.setter
    def call_mode(self, mode: Union[str, int, Tensor, CallMode]) -> None:
        parsed = to_call_mode(mode)
        for module in self.modules():
            if isinstance(module, CoModule):
                object.__setattr__(module, "_co_call_mode", parsed)

    def __call__(self, *args, **kwargs):
        mode = _mode_stack[-1] if _mode_stack else self._co_call_mode
        if mode is CallMode.FORWARD:
            return nn.Module.__call__(self, *args, **kwargs)
        method = self.forward_step if mode is CallMode.FORWARD_STEP else self.forward_steps
        if _has_any_hooks(self):
            return self._call_through_torch(method, args, kwargs)
        return method(*args, **kwargs)

    def _call_through_torch(self, method: Callable, args: tuple, kwargs: dict):
        """Run ``method`` through torch's call machinery, so that every kind of hook fires.

        torch calls ``self.forward``: a one-shot instance attribute routes that one call to
        ``method`` and removes itself at once, so calls of ``self.forward`` from inside the
        step (e.g. a wrapped torch layer computing its frame) reach the real ``forward``.
        """

        def route(*inner_args, **inner_kwargs):
            self.__dict__.pop("forward", None)
            return method(*inner_args, **inner_kwargs)

        self.__dict__["forward"] = route
        try:
            return nn.Module.__call__(self, *args, **kwargs)
        finally:
            self.__dict__.pop("forward", None)

    # ---- pure functional step (override in subclasses) --------------------------------------
    def _frame(self, x: Tensor) -> Tensor:
        """Stateless per-frame computation: ``(B, C, *S)`` -> ``(B, C', *S')``."""
        raise NotImplementedError(f"{type(self).__name__} does not define a step")

    def _step(self, x: Tensor, state: State, valid: Valid = True):
        """One frame ``(B, C, *S)``: returns ``(output | None, valid_out, next_state)``."""
        if valid is False:
            return None, False, state
        return self._frame(x), valid, state

    def _steps(self, x: Optional[Tensor], state: State, pad_end: bool = False):
        """A chunk ``(B, C, T, *S)``: returns ``(outputs | None, next_state, tail | None)``.

        ``outputs`` are the outputs the real frames produce, stacked on dim 2; ``tail`` are the
        outputs that end padding adds (``pad_end``), computed on a copy of the state.
        The default steps frame by frame; stateless and windowed modules override it.
        """
        return self._steps_by_stepping(x, state, pad_end)

    def _tail(self, state: State) -> Optional[Tensor]:
        """Outputs that end padding produces from ``state``; never stored."""
        return None

    def _reset_streams(self, state: State, streams: Sequence[int]) -> State:
        """``state`` with the given streams fresh again (their next frame starts a new stream)."""
        return state

    def _call_step(self, x: Tensor, state: State, valid: Valid):
        """``_step`` as containers call it: the forward hooks of the child fire, if any."""
        if state.__class__ is StoredStates:
            return self._step_stored(x, state, valid, _has_hooks(self))
        if _has_hooks(self):
            return _hooked(self, self._step, x, state, valid)
        return self._step(x, state, valid)

    def _step_stored(self, x: Tensor, stored: StoredStates, valid: Valid, hooks: bool):
        """``_step`` on the stored state, which it replaces (see ``StoredStates``)."""
        kind = _stored_kind_by_class.get(self.__class__)
        if kind is None:
            kind = _stored_kind(self.__class__)
        if kind == _FRAME_ONLY and not hooks:  # no state to read, replace or journal
            return (None if valid is False else self._frame(x)), valid, stored
        if kind == _ROUTES:
            old = stored
        elif kind == _PLAIN_STATE or kind == _FRAME_ONLY:
            old = self._co_state
        else:
            old = self.get_state()
        if hooks:
            y, valid, new = _hooked(self, self._step, x, old, valid)
        else:
            y, valid, new = self._step(x, old, valid)
        if new is not old and kind != _ROUTES:
            stored.replaced.append((self, old))
            if kind == _PLAIN_STATE or kind == _FRAME_ONLY:
                object.__setattr__(self, "_co_state", new)
            else:
                self.set_state(new)
        return y, valid, stored

    def _call_steps(self, x: Optional[Tensor], state: State, pad_end: bool):
        """``_steps`` as containers call it: the forward hooks of the child fire, if any."""
        if x is not None and _has_hooks(self):
            return _hooked(self, self._steps, x, state, pad_end)
        return self._steps(x, state, pad_end)

    def _steps_by_stepping(
        self, x: Optional[Tensor], state: State, pad_end: bool, copy_frames: bool = False
    ):
        """Reference implementation of ``_steps``: a Python loop over the frames (each one
        copied with ``copy_frames``, for modules that keep their input frames)."""
        outputs, patterns = [], []
        if x is not None:
            for t in range(x.shape[2]):
                frame = x[:, :, t].clone() if copy_frames else x[:, :, t]
                y, valid, state = self._step(frame, state, True)
                if valid is False:
                    continue
                if valid is not True:
                    if not any(valid):
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
        y = torch.stack(outputs, 2) if outputs else None
        tail = self._tail(state) if pad_end else None
        return y, state, tail

    # ---- stateful wrappers --------------------------------------------------------------------
    def forward_step(self, input: Tensor, update_state: bool = True) -> Optional[Tensor]:
        """Process one step ``(B, C, *S)``.

        Returns the output step ``(B, C', *S')``, or None while the module is warming up or
        between strided outputs. In a batch whose streams were reset at different times, the
        rows of streams without an output are NaN (see ``last_valid``).
        """
        x = self._own_input(input)
        if update_state:
            stored = StoredStates()
            try:
                y, valid, _ = self._step_stored(x, stored, True, hooks=False)
            except BaseException:
                stored.restore()
                raise
        else:
            y, valid, _ = self._step(x, self.get_state(), True)
        object.__setattr__(self, "_co_last_valid", valid)
        return finalize_step_output(y, valid)

    def _own_input(self, input: Any) -> Any:
        """A private copy of the caller's step (tensors in nested lists/tuples included).

        Modules keep step inputs in their state (a window's frames, a delay line), and a
        caller may reuse its buffer for the next frame (a camera loop): one copy here, at the
        call the user makes, keeps every state inside the network free of the caller's
        memory. Stateless modules keep nothing and skip it.
        """
        if isinstance(self, Stateless):
            return input
        return _map_tensors(input, torch.clone)

    def forward_steps(
        self,
        input: Tensor,
        pad_end: bool = False,
        update_state: bool = True,
    ) -> Optional[Tensor]:
        """Process a chunk of steps ``(B, C, T, *S)``; outputs stacked on dim 2 or None.

        Start padding is implied by the state; end padding only with ``pad_end=True``, which
        never touches the stored state. On a fresh module ``forward_steps(x, pad_end=True)``
        equals ``forward(x)``.
        """
        y, state, tail = self._steps(input, self.get_state(), pad_end)
        if update_state:
            self.set_state(state)
        return cat_outputs([y, tail])

    @property
    def last_valid(self) -> Valid:
        """Which streams produced an output at the last ``forward_step`` (True/False/tuple)."""
        return self._co_last_valid

    # ---- state API ---------------------------------------------------------------------------
    def get_state(self) -> State:
        """A snapshot of the module's state (None while fresh); ``set_state`` restores it."""
        return self._co_state

    def set_state(self, state: State) -> None:
        object.__setattr__(self, "_co_state", state)

    def clean_state(self, streams: Optional[Sequence[int]] = None) -> None:
        """Forget the state: of all streams, or only of the given stream indices of the batch.

        A cleaned stream starts over at its next step exactly like a fresh single-stream module.
        """
        if streams is None:
            self.set_state(None)
            return
        state = self.get_state()
        if state is not None:
            self.set_state(self._reset_streams(state, tuple(int(i) for i in streams)))

    def warm_up(self, step_shape: Sequence[int]) -> None:
        """Feed ``delay`` zero steps of ``step_shape`` ``(B, C, *S)`` so the next step outputs."""
        param = next(iter(self.parameters()), None)
        kwargs = {} if param is None else {"device": param.device, "dtype": param.dtype}
        for _ in range(self.delay):
            self.forward_step(torch.zeros(tuple(step_shape), **kwargs))

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        if self._co_state is not None:
            object.__setattr__(self, "_co_state", _map_tensors(self._co_state, fn))
        return result

    # ---- compatibility with continual-inference ----------------------------------------------
    def _forward_step(self, input: Tensor, prev_state: State = None):
        """``(output | None, next_state)`` from an explicit state, as in continual-inference.

        With ``prev_state`` None (fresh streams) or the flat tuple of tensors a previous call
        returned, ``next_state`` is a flat tuple of tensors (counters included), ready for
        ``co.onnx.OnnxWrapper``; with a state of ``get_state()``'s form, it is of that form.
        The module's own state is not touched. See ``cozoo.co.explicit_state``.
        """
        return _explicit_step(self, input, prev_state)

    def __prepare_scriptable__(self):
        """``torch.jit.script`` calls this first: a continual module is not scriptable."""
        raise RuntimeError(
            f"torch.jit.script({type(self).__name__}): continual modules do not support "
            "TorchScript (deprecated by PyTorch); export the step with "
            "co.export.StepFunction and torch.export.export, co.onnx.export (ONNX), or "
            "compile it with co.compile_step"
        )

    def _check_clip(self, x: Tensor, dims: int) -> None:
        if not isinstance(x, Tensor) or x.dim() != dims:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__}: expected a clip with {dims} dims "
                f"(B, C, T{', ...' if dims > 3 else ''}), got {got}"
            )


def _native_explicit_step(module: CoModule, input: Any, prev_state: State):
    y, valid, state = module._step(input, prev_state, True)
    return finalize_step_output(y, valid), state


# ``_forward_step``'s implementation; ``cozoo.co.explicit_state`` (imported with ``cozoo.co``)
# installs the flat-state one, which builds on ``export`` (that imports this module).
_explicit_step: Callable = _native_explicit_step


def register_explicit_step(step: Callable) -> None:
    """Install ``step(module, input, prev_state) -> (output, next_state)`` as
    ``CoModule._forward_step``'s implementation."""
    global _explicit_step
    _explicit_step = step


def _map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        mapped = [_map_tensors(o, fn) for o in obj]
        return type(obj)(*mapped) if hasattr(obj, "_fields") else tuple(mapped)
    if isinstance(obj, list):
        return [_map_tensors(o, fn) for o in obj]
    return obj


class Stateless(CoModule):
    """A temporally local module: output frame ``t`` depends on input frame ``t`` only.

    Subclasses implement ``_frame`` (one step) and may override ``_clip`` (all frames of a
    clip ``(B, C, T, *S)`` at once; default: ``forward``). No state, no delay, ``pad_end`` is
    irrelevant.
    """

    def _clip(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def _steps(self, x: Optional[Tensor], state: State, pad_end: bool = False):
        if x is None or x.shape[2] == 0:
            return None, state, None
        return self._clip(x), state, None
