"""The continual-module contract: call modes, the pure step, state handling.

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
"""

from __future__ import annotations

import enum
import functools
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.modules import module as _torch_module

from .checks import StepShapeError

__all__ = [
    "CallMode",
    "CoModule",
    "Stateless",
    "StepShapeError",
    "call_mode",
    "to_call_mode",
]

Valid = Union[bool, Tuple[bool, ...]]
State = Any


# --------------------------------------------------------------------------------------------
# Call modes
# --------------------------------------------------------------------------------------------
class CallMode(str, enum.Enum):
    """Which method ``module(x)`` runs. Compares equal to its string value."""

    FORWARD = "forward"
    FORWARD_STEPS = "forward_steps"
    FORWARD_STEP = "forward_step"

    def __str__(self) -> str:
        return self.value


_MODES_BY_INT = {0: CallMode.FORWARD, 1: CallMode.FORWARD_STEPS, 2: CallMode.FORWARD_STEP}


def to_call_mode(mode: Union[str, int, Tensor, CallMode]) -> CallMode:
    """Parse a call mode given as a string (any case), an int 0/1/2, a 0-d tensor or a CallMode."""
    if isinstance(mode, CallMode):
        return mode
    if isinstance(mode, str):
        try:
            return CallMode(mode.lower())
        except ValueError:
            raise KeyError(
                f"Unknown call_mode {mode!r}; expected one of "
                f"{[m.value for m in CallMode]} or 0/1/2"
            ) from None
    if isinstance(mode, Tensor) and mode.numel() == 1:
        mode = int(mode.item())
    if isinstance(mode, int) and not isinstance(mode, bool) and mode in _MODES_BY_INT:
        return _MODES_BY_INT[mode]
    raise KeyError(
        f"Unknown call_mode {mode!r}; expected one of {[m.value for m in CallMode]} or 0/1/2"
    )


_mode_stack: list = []


class _Switch:
    """A nestable on/off context manager: on while any of its blocks is active."""

    _active: list

    def __enter__(self) -> None:
        self._active.append(True)

    def __exit__(self, *exc_info) -> None:
        self._active.pop()


_tensor_mode: list = []
_static_bookkeeping: list = []


class tensor_mode(_Switch):  # noqa: N801 - a context manager, like call_mode
    """Within this block, steps are traced for export: counters and validity are tensors,
    every module computes its output on every step, and no branch depends on a value."""

    _active = _tensor_mode


def in_tensor_mode() -> bool:
    return bool(_tensor_mode)


class static_bookkeeping(_Switch):  # noqa: N801 - a context manager, like tensor_mode
    """Within this block, no state holds Python values that change on every step once a
    stream is steady (an average pool re-sums its window instead of keeping a running sum
    whose age counts steps), so the steady step can be compiled with the bookkeeping as
    constants (``co.compile_step``)."""

    _active = _static_bookkeeping


def in_static_bookkeeping() -> bool:
    return bool(_static_bookkeeping)


class call_mode:  # noqa: N801 - lower case to match `continual.call_mode`
    """Context manager that makes every continual module called inside it use ``mode``.

    Overrides each module's own ``call_mode`` property while active. Nesting works: the
    innermost block wins and leaving a block restores exactly what was active before, also
    when the block raises.

    >>> with call_mode("forward_step"):
    ...     y = net(x_t)   # net.forward_step(x_t)
    """

    def __init__(self, mode: Union[str, int, Tensor, CallMode]):
        self.mode = to_call_mode(mode)

    def __enter__(self) -> None:
        _mode_stack.append(self.mode)

    def __exit__(self, *exc_info) -> None:
        _mode_stack.pop()


def active_call_mode() -> Optional[CallMode]:
    """The mode forced by the innermost ``call_mode`` block, or None outside any block."""
    return _mode_stack[-1] if _mode_stack else None


# --------------------------------------------------------------------------------------------
# Validity bookkeeping (host side)
# --------------------------------------------------------------------------------------------
def expand_valid(valid: Valid, batch: int) -> Tuple[bool, ...]:
    return valid if isinstance(valid, tuple) else (valid,) * batch


def collapse(values: Sequence) -> Any:
    """A per-stream tuple whose entries are all equal collapses to that one value."""
    first = values[0]
    for v in values:
        if v != first:
            return tuple(values)
    return first


def valid_mask(valid: Valid, like: Tensor) -> Tensor:
    """A (B, 1, ..., 1) bool tensor on ``like``'s device that broadcasts against ``like``."""
    if isinstance(valid, Tensor):
        mask = valid
    else:
        flags = expand_valid(valid, like.shape[0])
        mask = torch.tensor(flags, dtype=torch.bool, device=like.device)
    return mask.view((-1,) + (1,) * (like.dim() - 1))


def select_rows(valid: Valid, new: Any, old: Any) -> Any:
    """Rows of ``new`` where ``valid`` (per stream), rows of ``old`` elsewhere.

    Works on tensors and on (nested) tuples of tensors; ``valid`` True/False short-cuts.
    """
    if valid is True:
        return new
    if valid is False:
        return old
    if isinstance(new, Tensor):
        return torch.where(valid_mask(valid, new), new, old)
    if isinstance(new, tuple):
        return tuple(select_rows(valid, n, o) for n, o in zip(new, old))
    return new


def tick(counter, valid: Valid, warmup: int, stride: int, batch: int):
    """Advance per-stream step counters by one step.

    A stream whose counter is ``c`` (valid frames consumed so far) produces an output for this
    frame iff ``c >= warmup`` and ``(c - warmup) % stride == 0``. Counters saturate after the
    warm-up (only the stride phase is kept), so they take finitely many values; 0 means fresh.

    Returns ``(valid_out, next_counter, fresh)``; ``fresh`` marks streams whose first frame
    this is (their state rows must be (re)initialised).
    """
    if isinstance(counter, Tensor) or isinstance(valid, Tensor):
        return _tick_tensors(counter, valid, warmup, stride)
    if valid is True and counter.__class__ is int:
        out = counter >= warmup and (counter - warmup) % stride == 0
        nxt = counter + 1
        if nxt >= max(warmup, 1) + stride:  # saturate; 0 stays reserved for "fresh"
            nxt -= stride
        return out, nxt, counter == 0
    if valid is False:
        return False, counter, False
    counters = counter if isinstance(counter, tuple) else (counter,) * batch
    flags = expand_valid(valid, batch)
    outs, nexts, fresh = [], [], []
    for c, v in zip(counters, flags):
        if v:
            o, n, f = tick(c, True, warmup, stride, 1)
        else:
            o, n, f = False, c, False
        outs.append(o)
        nexts.append(n)
        fresh.append(f)
    return collapse(outs), collapse(nexts), collapse(fresh)


def _tick_tensors(counter: Tensor, valid: Union[bool, Tensor], warmup: int, stride: int):
    """``tick`` as tensor ops, without branches on values: the form that export traces.

    ``counter`` is a (B,) int64 tensor; ``valid`` a (B,) bool tensor or a Python bool.
    """
    # Every op here is repeated per windowed module of an exported graph: none that is known
    # to do nothing (the phase of stride 1, a tensor already on the device) is traced.
    out = counter >= warmup
    if stride != 1:
        out = out & ((counter - warmup) % stride == 0)
    nxt = counter + 1
    nxt = torch.where(nxt >= max(warmup, 1) + stride, nxt - stride, nxt)
    fresh = counter == 0
    if valid is True:
        return out, nxt, fresh
    if not isinstance(valid, Tensor):
        valid = torch.as_tensor(valid, device=counter.device)
    return out & valid, torch.where(valid, nxt, counter), fresh & valid


def all_valid(valids: Sequence[Valid]) -> Valid:
    """Streams that are valid in every one of several branches."""
    if all(v is True for v in valids):
        return True
    if any(v is False for v in valids):
        return False
    tensors = [v for v in valids if isinstance(v, Tensor)]
    if tensors:
        return functools.reduce(torch.logical_and, tensors)
    per_stream = [v for v in valids if isinstance(v, tuple)]
    batch = len(per_stream[0])
    flags = [all(v if isinstance(v, bool) else v[i] for v in valids) for i in range(batch)]
    return collapse(flags)


def advance_counter(counter: int, steps: int, warmup: int, stride: int) -> int:
    """The saturated counter after ``steps`` valid frames (uniform streams)."""
    nxt = counter + steps
    base = max(warmup, 1)  # 0 stays reserved for "fresh"
    if nxt >= base + stride:
        nxt = base + (nxt - base) % stride
    return nxt


def first_output_offset(counter: int, warmup: int, stride: int) -> int:
    """Index, within the next chunk, of the first frame that yields an output."""
    if counter < warmup:
        return warmup - counter
    return (-(counter - warmup)) % stride


def reset_counter(counter, streams: Optional[Sequence[int]], batch: int):
    """Counters set back to 0 (fresh) for ``streams`` (all if None)."""
    if streams is None:
        return 0
    counters = list(counter if isinstance(counter, tuple) else (counter,) * batch)
    for i in streams:
        if not -batch <= i < batch:
            raise IndexError(f"stream index {i} is out of range for a batch of {batch} streams")
        counters[i] = 0
    return collapse(counters)


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


def _has_hooks(module: nn.Module) -> bool:
    """Whether forward (pre-)hooks would fire for ``module``."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or _torch_module._global_forward_hooks
        or _torch_module._global_forward_pre_hooks
    )


def _has_any_hooks(module: nn.Module) -> bool:
    return bool(
        _has_hooks(module)
        or module._backward_hooks
        or module._backward_pre_hooks
        or _torch_module._global_backward_hooks
        or _torch_module._global_backward_pre_hooks
    )


def _hooked(module: nn.Module, compute: Callable, x: Any, state: State, extra: Any):
    """``compute(x, state, extra)`` of a child inside a container, between the child's forward
    pre-hooks and forward hooks, which see the step input ``(x,)`` and the output tensor."""
    for hook in (
        *_torch_module._global_forward_pre_hooks.values(),
        *module._forward_pre_hooks.values(),
    ):
        result = hook(module, (x,))
        if result is not None:
            x = result[0] if isinstance(result, tuple) else result
    out = compute(x, state, extra)
    y = out[0]  # None on steps without output, as in a top-level call through torch's machinery
    for hook in (*_torch_module._global_forward_hooks.values(), *module._forward_hooks.values()):
        result = hook(module, (x,), y)
        if result is not None:
            y = result
    return (y,) + tuple(out[1:])


class StoredStates:
    """The state argument of a step that works on the modules' stored states in place.

    ``forward_step`` (with ``update_state=True``) passes it instead of a snapshot of the whole
    network's state: containers hand it on to their children, and every other module reads
    its own stored state, steps, and stores the next one, noting the state it replaced. A step
    that raises puts every replaced state back, so the network's state is as it was. This
    spares a top-level step two walks over every module (a snapshot and a store).
    """

    __slots__ = ("replaced",)

    def __init__(self) -> None:
        self.replaced: list = []

    def restore(self) -> None:
        for module, state in reversed(self.replaced):
            module.set_state(state)
        self.replaced.clear()


def step_chain(children: Iterable[CoModule], x: Any, stored: StoredStates, valid: Valid):
    """``Sequential``'s step on the stored states: each child steps on the previous one's
    output, until one has none (no per-child state slots to build: each child keeps its own)."""
    for child in children:
        x, valid, _ = child._call_step(x, stored, valid)
        if valid is False:
            return None, False, stored
    return x, valid, stored


_ROUTING_METHODS = ("_step", "get_state", "set_state", "_child_states")
_ROUTES, _PLAIN_STATE, _OWN_STATE_API, _FRAME_ONLY = 0, 1, 2, 3
_stored_kind_by_class: dict = {}


def _owner(cls: type, name: str) -> Optional[type]:
    return next((k for k in cls.__mro__ if name in k.__dict__), None)


def routes_child_states(cls: type) -> bool:
    """Whether modules of ``cls`` hand a ``StoredStates`` on to their children.

    True when each of ``_step``, ``get_state``, ``set_state`` and ``_child_states`` comes
    from a class that declares ``_co_routes_child_states = True`` itself: a subclass that
    overrides one of them without declaring it is stepped like any other module (through its
    own ``get_state``/``set_state``), which is always correct.
    """
    owners = [_owner(cls, name) for name in _ROUTING_METHODS]
    return all(
        owner is not None and owner.__dict__.get("_co_routes_child_states", False)
        for owner in owners
    )


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
        """``(output | None, next_state)`` from an explicit state, as in continual-inference."""
        y, valid, state = self._step(input, prev_state, True)
        return finalize_step_output(y, valid), state

    def _check_clip(self, x: Tensor, dims: int) -> None:
        if not isinstance(x, Tensor) or x.dim() != dims:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__}: expected a clip with {dims} dims "
                f"(B, C, T{', ...' if dims > 3 else ''}), got {got}"
            )


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
