"""ONNX export of a continual module's step, with the state as explicit graph inputs/outputs.

    co.onnx.export(net, example_step, "net.onnx")
    state = co.onnx.initial_state(net, example_step)          # fresh streams
    session = onnxruntime.InferenceSession("net.onnx")
    for frame in stream:
        output, valid, *state = session.run(None, {"input": frame, **state_feed(state)})

Graph inputs: ``input`` (one step ``(B, C, *S)``), ``state_0`` ... ``state_{N-1}``; outputs:
``output``, ``valid`` (bool ``(B,)``: whether this step produced a real output for the stream),
``next_state_0`` ... ``next_state_{N-1}``. The batch size may change between sessions (not
within a stream: the state holds the batch).
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Union

import torch
from torch import Tensor

from .export import StepFunction, initial_state, state_batch_axes
from .module import CoModule

__all__ = ["OnnxWrapper", "export", "initial_state", "input_names", "output_names"]

OnnxWrapper = StepFunction  # name used by continual-inference


def input_names(num_states: int) -> List[str]:
    return ["input"] + [f"state_{i}" for i in range(num_states)]


def output_names(num_states: int) -> List[str]:
    return ["output", "valid"] + [f"next_state_{i}" for i in range(num_states)]


def export(
    module: CoModule,
    example_step: Tensor,
    path: Union[str, os.PathLike],
    *,
    dynamic_batch: bool = True,
    opset_version: int = 17,
) -> None:
    """Write the step of ``module`` for inputs shaped like ``example_step`` to ``path``."""
    if not isinstance(module, CoModule):
        raise TypeError(f"co.onnx.export: expected a continual module, got {type(module).__name__}")
    step = StepFunction(module, example_step).eval()
    state = initial_state(module, example_step)
    names_in = input_names(len(state))
    names_out = output_names(len(state))
    dynamic_axes: Dict[str, Dict[int, str]] = {}
    if dynamic_batch:
        dynamic_axes = {"input": {0: "batch"}, "output": {0: "batch"}, "valid": {0: "batch"}}
        for i, axis in enumerate(state_batch_axes(module, example_step)):
            dynamic_axes[f"state_{i}"] = {axis: "batch"}
            dynamic_axes[f"next_state_{i}"] = {axis: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            step,
            (example_step, *state),
            str(path),
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic_axes or None,
            opset_version=opset_version,
            dynamo=False,
        )


def state_feed(state: Sequence) -> Dict[str, object]:
    """``{"state_i": array}`` for an ONNX Runtime ``run`` call."""
    return {f"state_{i}": _numpy(s) for i, s in enumerate(state)}


def _numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else value
