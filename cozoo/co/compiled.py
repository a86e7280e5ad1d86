"""``forward_step`` as one compiled function: ``torch.compile`` of the pure step.

An eager step runs hundreds of small ops, each with its own Python and dispatch cost; on a CPU
at batch 1 that overhead is a large part of the step. ``compile_step`` compiles the module's
pure step (``StepFunction``, tensor mode) with Inductor, which fuses the elementwise work into
the convolutions and matmuls around it and runs the graph without Python in between::

    fast = co.compile_step(model.eval(), example_frame)   # compiles on the first call (minutes)
    for frame in stream:                                   # frames (B, C, H, W)
        y = fast(frame)                                    # None while warming up

By default the weights are frozen into the compiled graph (Inductor's ``freezing``: BatchNorm
folded into the convolutions, weights pre-packed): later changes to the module's parameters
are not seen; compile again after loading other weights. ``freeze=False`` keeps them live.

The step's state tensors change layout over the first steps (channels-last frames replace the
initial ones), and ``torch.compile`` specialises on the layout of its inputs: the state is
therefore brought to its steady layout before compiling (an eager run on zeros whose state is
then reset), so that one compilation serves the whole stream.
"""

from __future__ import annotations

import contextlib
from typing import Any, List, Optional

import torch
from torch import Tensor

from .export import StepFunction, initial_state
from .module import CoModule

__all__ = ["CompiledStep", "compile_step", "inductor_options"]


class CompiledStep:
    """A compiled ``forward_step`` that keeps its own state (see the module docstring).

    ``step(frame)`` returns what ``module.forward_step(frame)`` would (float tolerance): the
    output ``(B, C', *S')``, or None while the module warms up or between strided outputs.
    The module's own stored state is neither read nor changed.
    """

    def __init__(
        self,
        module: CoModule,
        example_step: Tensor,
        freeze: bool = True,
        cpp_wrapper: bool = True,
        **compile_kwargs: Any,
    ):
        if not isinstance(module, CoModule):
            raise TypeError(f"compile_step: expected a continual module, got {type(module)}")
        if module.training:
            raise ValueError(
                f"compile_step: {type(module).__name__} is in train mode; call .eval() first "
                "(the compiled step is for inference)"
            )
        self.module = module
        self.freeze = freeze
        self.cpp_wrapper = cpp_wrapper
        self.function = StepFunction(module, example_step).eval()
        self.example_shape = tuple(example_step.shape)
        with torch.no_grad():
            self._fresh = _steady_layout_state(self.function, module, example_step)
        self.state: List[Tensor] = [t.clone() for t in self._fresh]
        self._compiled = torch.compile(self.function, dynamic=False, **compile_kwargs)

    def __call__(self, frame: Tensor) -> Optional[Tensor]:
        if tuple(frame.shape) != self.example_shape:
            raise ValueError(
                f"CompiledStep({type(self.module).__name__}): compiled for steps of shape "
                f"{self.example_shape} (B, C, *S), got {tuple(frame.shape)}"
            )
        frame = frame.contiguous()  # one layout for every call: compiled code is specialised
        with torch.no_grad(), self._inductor_options():
            y, valid, *self.state = self._compiled(frame, *self.state)
        if bool(valid.all()):
            return y
        if not bool(valid.any()):
            return None
        return y.masked_fill(~valid.view((-1,) + (1,) * (y.dim() - 1)), float("nan"))

    def reset(self) -> None:
        """Start a new stream: the state of fresh streams (no recompilation)."""
        self.state = [t.clone() for t in self._fresh]

    def _inductor_options(self):
        return inductor_options(self.freeze, self.cpp_wrapper)


def inductor_options(freeze: bool, cpp_wrapper: bool):
    """A context in which Inductor freezes weights into the graph (``freeze``) and wraps the
    compiled kernels in C++ rather than Python (``cpp_wrapper``)."""
    try:
        from torch._inductor import config
    except ImportError:  # pragma: no cover - inductor ships with torch
        return contextlib.nullcontext()
    return config.patch(freezing=freeze, cpp_wrapper=cpp_wrapper)


def _steady_layout_state(function: StepFunction, module: CoModule, example: Tensor) -> List[Tensor]:
    """Fresh-stream state tensors laid out as they are once the stream is past its warm-up."""
    state = initial_state(module, example)
    zeros = torch.zeros_like(example, memory_format=torch.contiguous_format)
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
    **compile_kwargs: Any,
) -> CompiledStep:
    """``module``'s step compiled with ``torch.compile`` for steps shaped like ``example_step``
    ``(B, C, *S)``; see ``CompiledStep``. ``compile_kwargs`` go to ``torch.compile``."""
    return CompiledStep(module, example_step, freeze, cpp_wrapper, **compile_kwargs)
