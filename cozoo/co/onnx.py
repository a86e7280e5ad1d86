"""ONNX export of a continual module's step, with the state as explicit graph inputs/outputs.

    co.onnx.export(net, example_step, "net.onnx")
    state = co.onnx.initial_state(net, example_step)          # fresh streams
    session = onnxruntime.InferenceSession("net.onnx")
    for frame in stream:
        output, valid, *state = session.run(None, {"input": frame, **state_feed(state)})

Graph inputs: ``input`` (one step ``(B, C, *S)``), ``state_0`` ... ``state_{N-1}``; outputs:
``output``, ``valid`` (bool ``(B,)``: whether this step produced a real output for the stream),
``next_state_0`` ... ``next_state_{N-1}``.

The step is exported by ``torch.onnx.export``'s ``torch.export``-based exporter (``dynamo=True``,
the default since PyTorch 2.9; the TorchScript one is deprecated), through one function,
``export_program``, which returns the ``torch.onnx.ONNXProgram``. What is dynamic: the batch size
``B`` (with ``dynamic_batch=True``, the default), the same for the input, every state tensor and
the outputs, so one file serves any number of streams (``B`` stays fixed within a stream: the
state holds it). What is not: the channels and spatial size of a step (those of
``example_step``), the layout of the state, and the module's weights.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .export import StepFunction, initial_state, state_batch_axes
from .module import CoModule

__all__ = [
    "OnnxWrapper",
    "export",
    "export_program",
    "initial_state",
    "input_names",
    "output_names",
    "state_feed",
]

OnnxWrapper = StepFunction  # name used by continual-inference


def input_names(num_states: int) -> List[str]:
    return ["input"] + [f"state_{i}" for i in range(num_states)]


def output_names(num_states: int) -> List[str]:
    return ["output", "valid"] + [f"next_state_{i}" for i in range(num_states)]


def _traced_example(example_step: Tensor, dynamic_batch: bool) -> Tensor:
    """The step to trace with: ``torch.export`` specialises a dimension of size 1 to a constant,
    so a dynamic batch is traced with two streams (a copy of the example's first one)."""
    if not dynamic_batch or example_step.shape[0] > 1:
        return example_step
    return torch.cat([example_step, example_step])


def _dynamic_shapes(module: CoModule, example_step: Tensor) -> Tuple[Any, ...]:
    """``dynamic_shapes`` of ``StepFunction.forward(input, *state)``: the batch axis of each
    (a module without state has no ``state`` entry)."""
    batch = torch.export.Dim("batch")
    axes = state_batch_axes(module, example_step)
    if not axes:
        return ({0: batch},)
    return {0: batch}, tuple({axis: batch} for axis in axes)


def export_program(
    module: CoModule,
    example_step: Tensor,
    *,
    dynamic_batch: bool = True,
    opset_version: Optional[int] = None,
) -> torch.onnx.ONNXProgram:
    """The ONNX program of one step of ``module`` on steps shaped like ``example_step``
    ``(B, C, *S)``: ``(input, *state) -> (output, valid, *next_state)`` with the names of
    ``input_names``/``output_names`` (see the module docstring for what is dynamic).

    A dynamic batch is traced with at least two streams (``torch.export`` would fix a batch
    of 1); ``dynamic_batch=False`` keeps the example's batch and exports faster (tracing the
    symbolic batch is the slowest part). ``opset_version`` None is the exporter's default.
    The exporter's graph optimiser always runs: without it, this exporter's graphs are not
    runnable (a convolution without bias gets a bias ONNX Runtime refuses; a state tensor that
    is the step's input renames the input). The module and its stored state are left untouched.
    """
    if not isinstance(module, CoModule):
        raise TypeError(f"co.onnx.export: expected a continual module, got {type(module).__name__}")
    if not isinstance(example_step, Tensor):
        raise TypeError(
            f"co.onnx.export: expected an example step tensor (B, C, *S), got "
            f"{type(example_step).__name__}"
        )
    example = _traced_example(example_step, dynamic_batch)
    step = StepFunction(module, example).eval()
    state = initial_state(module, example)
    kwargs: Dict[str, Any] = {}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = _dynamic_shapes(module, example)
    if opset_version is not None:
        kwargs["opset_version"] = opset_version
    with torch.no_grad(), warnings.catch_warnings():
        # Every batch axis is the same Dim: the exporter notes each repeat of its name.
        warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used")
        program = torch.onnx.export(
            step,
            (example, *state),
            input_names=input_names(len(state)),
            output_names=output_names(len(state)),
            dynamo=True,
            optimize=True,
            verbose=False,
            **kwargs,
        )
    return program


def export(
    module: CoModule,
    example_step: Tensor,
    path: Union[str, os.PathLike],
    *,
    dynamic_batch: bool = True,
    opset_version: Optional[int] = None,
) -> None:
    """Write the step of ``module`` for inputs shaped like ``example_step`` to ``path``
    (``export_program`` saved; weights beyond ONNX's 2 GB file limit go to ``path``'s side
    file, as ``torch.onnx`` decides)."""
    program = export_program(
        module, example_step, dynamic_batch=dynamic_batch, opset_version=opset_version
    )
    program.save(os.fspath(path))


def state_feed(state: Sequence) -> Dict[str, object]:
    """``{"state_i": array}`` for an ONNX Runtime ``run`` call."""
    return {f"state_{i}": _numpy(s) for i, s in enumerate(state)}


def _numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else value
