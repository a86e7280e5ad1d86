"""``forward_step`` as one compiled function: ``torch.compile`` of the pure step.

An eager step runs hundreds of small ops, each with its own Python and dispatch cost; on a CPU
at batch 1 that overhead is a large part of the step. ``compile_step`` compiles the module's
pure step with Inductor, which fuses the elementwise work into the convolutions and matmuls
around it and runs the graph without Python in between::

    fast = co.compile_step(model.eval(), example_frame)   # compiles at the first steady step
    for frame in stream:                                   # frames (B, C, H, W)
        y = fast(frame)                                    # None while warming up

By default the weights are frozen into the compiled graph (Inductor's ``freezing``: BatchNorm
folded into the convolutions, weights pre-packed): later changes to the module's parameters
are not seen; compile again after loading other weights. ``freeze=False`` keeps them live.

Two forms, chosen at construction (``mode="auto"``) or forced (``mode="steady"``/``"tensor"``):

- **steady** (networks whose state's bookkeeping settles into a cycle): the warm-up steps run
  eagerly; once the state's bookkeeping (counters, shapes) and its tensors' layouts repeat,
  each step of the cycle is compiled with that bookkeeping as constants, so a graph holds
  nothing but the tensor work of its step. With every temporal stride 1 the cycle is one
  step long; a temporal stride ``s`` makes it ``s`` steps long (one graph per phase, the
  phases without an output run only the layers before the stride).
- **tensor mode** (otherwise): ``StepFunction`` compiled whole, counters as tensors, on a
  state brought to its steady layout first (``torch.compile`` specialises on the layout of
  its inputs).
"""

from __future__ import annotations

import types
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .export import StepFunction, flatten_state, initial_state, unflatten_state
from .modes import static_bookkeeping
from .module import CoModule, State, finalize_step_output
from .validity import collapse

__all__ = ["CompiledStep", "compile_step", "inductor_options"]


class _SteadyStep(nn.Module):
    """A steady step of ``module`` on flat state tensors: ``(x, *tensors) -> (y, *tensors)``,
    ``y`` None at a phase without an output.

    The state's structure (counters, step shapes: Python values) is a constant of the traced
    graph, which is valid while every stream is valid, past its warm-up and at this phase.
    """

    def __init__(self, module: CoModule, structure: Any):
        super().__init__()
        self.module = module
        self.structure = structure

    def forward(self, x: Tensor, *tensors: Tensor):
        y, _, state = self.module._step(x, unflatten_state(self.structure, tensors), True)
        return (y, *flatten_state(state)[0])


def _steady_step(module: CoModule, structure: Any) -> _SteadyStep:
    """A ``_SteadyStep`` whose ``forward`` has a code object of its own.

    Dynamo keeps the graphs it compiles per code object, at most ``recompile_limit`` of them
    (8): with one shared ``forward``, every phase of every ``CompiledStep`` in a process would
    be a recompilation of the others, and the ninth would run eagerly."""
    shared = _SteadyStep.forward
    forward = types.FunctionType(
        shared.__code__.replace(), shared.__globals__, shared.__name__, shared.__defaults__
    )
    namespace = {"forward": forward, "__module__": __name__, "__qualname__": "_SteadyStep"}
    return type("_SteadyStep", (_SteadyStep,), namespace)(module, structure)


class CompiledStep:
    """A compiled ``forward_step`` that keeps its own state (see the module docstring).

    ``fast(frame)`` returns what ``module.forward_step(frame)`` would (float tolerance): the
    output ``(B, C', *S')``, or None while the module warms up or between strided outputs.
    The module's own stored state is neither read nor changed. ``mode`` is ``"steady"`` or
    ``"tensor"``; ``period`` is the number of steps in the steady cycle (one graph each,
    compiled at its phase's first steady step), 1 in tensor mode. ``frame_format`` is the
    memory layout the frames are copied into first (channels-last for ``(B, C, H, W)`` frames
    unless the module's ``step_memory_format`` says otherwise): the output may come in it too.
    """

    def __init__(
        self,
        module: CoModule,
        example_step: Tensor,
        freeze: bool = True,
        cpp_wrapper: bool = True,
        mode: str = "auto",
        **compile_kwargs: Any,
    ):
        if not isinstance(module, CoModule):
            raise TypeError(
                f"compile_step: expected a continual module, got {type(module).__name__}"
            )
        if module.training:
            raise ValueError(
                f"compile_step: {type(module).__name__} is in train mode; call .eval() first "
                "(the compiled step is for inference)"
            )
        if mode not in ("auto", "steady", "tensor"):
            raise ValueError(
                f"compile_step: mode must be 'auto', 'steady' or 'tensor', got {mode!r}"
            )
        self.module = module
        self.freeze = freeze
        self.cpp_wrapper = cpp_wrapper
        self.example_shape = tuple(example_step.shape)
        self.frame_format = _frame_layout(module, example_step)
        zeros = torch.zeros_like(example_step, memory_format=self.frame_format)
        cycle = None
        if mode != "tensor":
            with torch.no_grad(), static_bookkeeping():
                cycle = _steady_cycle(module, zeros)
            if cycle is None and mode == "steady":
                raise ValueError(
                    f"compile_step({type(module).__name__}): its state's bookkeeping does not "
                    f"settle into a cycle of at most {MAX_PERIOD} distinct steps within its "
                    "receptive field; use mode='tensor'"
                )
        if cycle is not None:
            self.mode = "steady"
            self._cycle = cycle
            self._phases = [
                torch.compile(_steady_step(module, structure), dynamic=False, **compile_kwargs)
                for structure in cycle
            ]
        else:
            self.mode = "tensor"
            self._cycle = [None]
            function = StepFunction(module, example_step).eval()
            with torch.no_grad():
                self._fresh = _steady_layout_state(function, module, zeros)
            self._compiled = torch.compile(function, dynamic=False, **compile_kwargs)
        self.period = len(self._cycle)
        self.reset()

    def __call__(self, frame: Tensor) -> Optional[Tensor]:
        if tuple(frame.shape) != self.example_shape:
            raise ValueError(
                f"CompiledStep({type(self.module).__name__}): compiled for steps of shape "
                f"{self.example_shape} (B, C, *S), got {tuple(frame.shape)}"
            )
        # One layout for every call: compiled code is specialised on it.
        frame = frame.contiguous(memory_format=self.frame_format)
        with torch.no_grad(), inductor_options(self.freeze, self.cpp_wrapper):
            if self.mode == "tensor":
                y, valid, *self._tensors = self._compiled(frame, *self._tensors)
                return finalize_step_output(y, collapse(tuple(valid.tolist())))
            with static_bookkeeping():
                if self._tensors is not None:
                    y, *self._tensors = self._phases[self._phase](frame, *self._tensors)
                    self._phase = (self._phase + 1) % self.period
                    return y
                # Warming up, eagerly, until the state is steady (structure and layouts).
                y, valid, self._state = self.module._step(frame, self._state, True)
            tensors, structure = flatten_state(self._state)
            phase = next((i for i, s in enumerate(self._cycle) if s == structure), None)
            if phase is not None:
                layouts = [t.stride() for t in tensors]
                if self._layouts.get(phase) == layouts:  # as one cycle earlier
                    self._tensors, self._phase = tensors, phase
                self._layouts[phase] = layouts
            return finalize_step_output(y, valid)

    @property
    def warming_up(self) -> bool:
        """True while the steps run eagerly (steady form, before the state is steady)."""
        return self.mode == "steady" and self._tensors is None

    def reset(self) -> None:
        """Start a new stream (no recompilation)."""
        if self.mode == "tensor":
            self._tensors = [t.clone() for t in self._fresh]
        else:
            self._state: State = None
            self._tensors = None
            self._phase = 0
            self._layouts: Dict[int, List[Tuple[int, ...]]] = {}


def _frame_layout(module: CoModule, example_step: Tensor) -> torch.memory_format:
    """The layout a compiled step takes its frames in: the module's own ``step_memory_format``
    (the video zoo's), else channels-last for ``(B, C, H, W)`` frames, the layout Inductor runs
    its convolutions in (with plain frames every step would transpose the stored taps and
    interleave them into the convolutions' input: ``python -m cozoo.benchmark core
    core.compile=true`` measured the compiled stack slower than its eager step, 2.36 vs
    2.06 ms, and 1.57-1.65 vs 2.02-2.12 ms with channels-last frames), plain otherwise."""
    if example_step.dim() != 4:
        return torch.contiguous_format
    return getattr(module, "step_memory_format", torch.channels_last)


#: The longest steady cycle ``compile_step`` looks for (at least the product of the temporal
#: strides for a cycle to be found).
MAX_PERIOD = 8


def _steady_cycle(module: CoModule, zeros: Tensor) -> Optional[List[Any]]:
    """The structures of ``module``'s state over one cycle of steady steps, in order: a step
    from a state of structure ``cycle[i]`` leaves one of ``cycle[(i + 1) % len(cycle)]``.

    Found by stepping on zeros until the structures of the last two cycles are the same and
    the cycle has an output; None if that does not happen within the receptive field (plus
    two cycles), or if a structure recurs within the cycle (its phase would be ambiguous)."""
    rf = module.receptive_field
    limit = (2 if rf == float("inf") else int(rf) + 2) + 2 * MAX_PERIOD
    state = None
    structures: List[Any] = []
    outputs: List[bool] = []
    for _ in range(limit):
        _, valid, state = module._step(zeros, state, True)
        structures.append(flatten_state(state)[1])
        outputs.append(valid is True)
        n = len(structures)
        for period in range(1, min(MAX_PERIOD, n // 2) + 1):
            cycle = structures[n - period :]
            if cycle == structures[n - 2 * period : n - period] and any(outputs[n - period :]):
                distinct = all(s != t for i, s in enumerate(cycle) for t in cycle[i + 1 :])
                return cycle if distinct else None
    return None


def inductor_options(freeze: bool, cpp_wrapper: bool):
    """A context in which Inductor freezes weights into the graph (``freeze``) and wraps the
    compiled kernels in C++ rather than Python (``cpp_wrapper``)."""
    from torch._inductor import config

    return config.patch(freezing=freeze, cpp_wrapper=cpp_wrapper)


def _steady_layout_state(function: StepFunction, module: CoModule, zeros: Tensor) -> List[Tensor]:
    """Fresh-stream state tensors laid out as they are once the stream is past its warm-up."""
    state = initial_state(module, zeros)
    steps = module.receptive_field
    steps = 2 if steps == float("inf") else int(steps) + 2
    for _ in range(steps):
        _, _, *state = function(zeros, *state)
    # All zeros is a fresh state (counters 0) whatever the layout: zeros_like keeps it.
    return [torch.zeros_like(t) for t in state]


def compile_step(
    module: CoModule,
    example_step: Tensor,
    freeze: bool = True,
    cpp_wrapper: bool = True,
    mode: str = "auto",
    **compile_kwargs: Any,
) -> CompiledStep:
    """``module``'s step compiled with ``torch.compile`` for steps shaped like ``example_step``
    ``(B, C, *S)``; see ``CompiledStep``. ``compile_kwargs`` go to ``torch.compile``."""
    return CompiledStep(module, example_step, freeze, cpp_wrapper, mode, **compile_kwargs)
