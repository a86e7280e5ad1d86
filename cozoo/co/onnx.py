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
``export_program``, which returns the ``torch.onnx.ONNXProgram``.

continual-inference's workflow is a second front door to the same path::

    state = None
    for frame in warm_up:                                   # the state: a flat tuple of tensors
        _, state = net._forward_step(frame, state)
    wrapper = OnnxWrapper(net)                              # the layout of that state
    torch.onnx.export(wrapper, (frame, *state), "net.onnx",
                      input_names=["input", *wrapper.state_input_names],
                      output_names=["output", *wrapper.state_output_names],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"},
                                    **wrapper.state_dynamic_axes})
    # or: co.onnx.export(net, (frame, *state), "net.onnx", input_names=["input"],
    #                    output_names=["output"])
    feed = dict(zip(wrapper.state_input_names, (s.numpy() for s in state)))
    output, *state = session.run(None, {"input": frame.numpy(), **feed})   # state fed back

Graph inputs ``input``, ``s0`` ... ``s{N-1}``; outputs ``output`` (computed on every step,
also while warming up), ``ns0`` ... ``ns{N-1}``; no ``valid`` (that is the difference). The
flat state is the one ``initial_state`` gives for fresh streams. An ``opset_version`` below the
exporter's lowest (18) is converted if ONNX can, else 18 stays.

What is dynamic: the batch size ``B`` (with ``dynamic_batch=True``, the default), the same for
the input, every state tensor and the outputs, so one file serves any number of streams (``B``
stays fixed within a stream: the state holds it). What is not: the channels and spatial size
of a step (those of ``example_step``), the layout of the state, and the module's weights.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .explicit_state import batch_axes, last_state_layout, state_layout
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


class OnnxWrapper(StepFunction):
    """continual-inference's ``OnnxWrapper``: one step of ``model`` as
    ``forward(input, *state) -> (output, *next_state)``, the state flat as
    ``model._forward_step`` returns it.

    The state layout is that of ``example_step`` ``(B, C, *S)`` when given, else that of the
    last ``model._forward_step`` call (the warm-up of the reference's workflow). Its
    ``forward`` has one named parameter per graph input (``input``, ``s0`` ...), so that
    ``torch.onnx.export``'s ``dynamic_axes`` map onto it.

    ``torch.onnx.export`` traces with ``torch.export``, which fixes a dimension of size 1: from
    one-stream steps, a network whose step runs torch's recurrent layers or torch's attention
    over a window (encoders of two or more layers) comes out for one stream only.
    ``co.onnx.export(model, (step, *state), path, ...)`` traces two streams and keeps the batch
    dynamic for every network, as does ``torch.onnx.export`` of steps and a state of two
    streams.
    """

    def __init__(self, model: CoModule, example_step: Optional[Tensor] = None):
        nn.Module.__init__(self)
        if not isinstance(model, CoModule):
            raise TypeError(f"OnnxWrapper: expected a continual module, got {type(model).__name__}")
        if example_step is not None:
            layout = state_layout(model, example_step)
        else:
            layout = last_state_layout(model)
            if layout is None:
                raise ValueError(
                    f"OnnxWrapper({type(model).__name__}): the state layout is not known yet; "
                    "step the module once with model._forward_step(step, None) or pass "
                    "example_step"
                )
        self._bind(model, layout.structure, layout.num_states)
        self._layout = layout
        self._batch_axes: Optional[Tuple[int, ...]] = None
        # One named parameter per graph input, on an instance attribute that torch.export
        # reads (a partial: copies of the wrapper bind their own copy).
        forward = functools.partial(OnnxWrapper.step, self)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        names = ["input", *self.state_input_names]
        forward.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in names])
        self.__dict__["forward"] = forward

    @property
    def model(self) -> CoModule:
        return self.module

    def step(self, input: Tensor, *state: Tensor):
        """``(output, *next_state)``: the output of every step (also while warming up)."""
        y, _, next_tensors = self._run(input, state)
        return (y, *next_tensors)

    @staticmethod
    def _i2o_name(i_name: str) -> str:
        return f"n{i_name}"

    @property
    def state_input_names(self) -> List[str]:
        return [f"s{i}" for i in range(self.num_states)]

    @property
    def state_output_names(self) -> List[str]:
        return [self._i2o_name(s) for s in self.state_input_names]

    @property
    def state_batch_axes(self) -> Tuple[int, ...]:
        """The axis of each state tensor that holds the batch."""
        if self._batch_axes is None:
            self._batch_axes = batch_axes(self.module, self._layout)
        return self._batch_axes

    @property
    def state_dynamic_axes(self) -> Dict[str, Dict[int, str]]:
        """``dynamic_axes`` entries of the state inputs and outputs: the batch axis of each."""
        ins = {n: {a: "batch"} for n, a in zip(self.state_input_names, self.state_batch_axes)}
        outs = {self._i2o_name(k): v for k, v in ins.items()}
        return {**ins, **outs}


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


def _dynamic_shapes(step: StepFunction, axes: Sequence[int]) -> Tuple[Any, ...]:
    """``dynamic_shapes`` of ``step``'s forward: the batch axis of the input and of each state
    tensor; ``StepFunction.forward(input, *state)`` takes them nested (a module without state
    has no ``state`` entry), ``OnnxWrapper``'s one parameter per tensor flat."""
    batch = torch.export.Dim("batch")
    states = tuple({axis: batch} for axis in axes)
    if isinstance(step, OnnxWrapper):
        return ({0: batch}, *states)
    if not axes:
        return ({0: batch},)
    return {0: batch}, states


def _check_module(module: Any) -> None:
    if not isinstance(module, CoModule):
        raise TypeError(f"co.onnx.export: expected a continual module, got {type(module).__name__}")


def _export_step(
    step: StepFunction,
    example: Tensor,
    state: Sequence[Tensor],
    axes: Optional[Sequence[int]],
    names: Tuple[List[str], List[str]],
    **kwargs: Any,
) -> torch.onnx.ONNXProgram:
    """The one export path of both front doors: ``step`` (a ``StepFunction`` or an
    ``OnnxWrapper``) traced on ``(example, *state)`` by the ``torch.export``-based exporter,
    the batch dynamic on the input and on each state tensor's axis in ``axes`` (None: fixed).
    The exporter's graph optimiser always runs: without it, this exporter's graphs are not
    runnable (a convolution without bias gets a bias ONNX Runtime refuses; a state tensor that
    is the step's input renames the input)."""
    if axes is not None:
        kwargs["dynamic_shapes"] = _dynamic_shapes(step, axes)
    with torch.no_grad(), warnings.catch_warnings():
        # Every batch axis is the same Dim: the exporter notes each repeat of its name.
        warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used")
        kwargs.setdefault("verbose", False)
        return torch.onnx.export(
            step.eval(),
            (example, *state),
            input_names=names[0],
            output_names=names[1],
            dynamo=True,
            optimize=True,
            **kwargs,
        )


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
    The module and its stored state are left untouched.
    """
    _check_module(module)
    if not isinstance(example_step, Tensor):
        raise TypeError(
            f"co.onnx.export: expected an example step tensor (B, C, *S), got "
            f"{type(example_step).__name__}"
        )
    example = _traced_example(example_step, dynamic_batch)
    step = StepFunction(module, example)
    state = initial_state(module, example)
    axes = state_batch_axes(module, example) if dynamic_batch else None
    names = (input_names(len(state)), output_names(len(state)))
    kwargs = {} if opset_version is None else {"opset_version": opset_version}
    return _export_step(step, example, state, axes, names, **kwargs)


# continual-inference's ``co.onnx.export`` arguments after ``f``, in order.
_REFERENCE_ARGS = (
    "export_params",
    "verbose",
    "training",
    "input_names",
    "output_names",
    "operator_export_type",
    "opset_version",
    "do_constant_folding",
    "keep_initializers_as_inputs",
    "custom_opsets",
)


def export(module: CoModule, example_step: Any, path: Union[str, os.PathLike], *args, **kwargs):
    """Write the step of ``module`` to ``path``; two forms, one export path:

    - ``export(module, example_step, path, *, dynamic_batch=True, opset_version=None)``:
      ``example_step`` a tensor ``(B, C, *S)``; ``export_program`` saved (weights beyond
      ONNX's 2 GB file limit go to ``path``'s side file, as ``torch.onnx`` decides).
    - continual-inference's ``export(module, (step, *state), path, export_params=True,
      verbose=False, training=..., input_names=None, output_names=None, ...,
      opset_version=None, ...)``: ``state`` the flat state of ``module._forward_step`` for
      ``step``; graph inputs ``input_names + ["s0", ...]`` (default ``["input"]``), outputs
      ``output_names + ["ns0", ...]`` (default ``["output"]``), without ``valid``; the batch
      is dynamic (``dynamic_batch=False`` fixes it). The remaining arguments go to
      ``torch.onnx.export``, which ignores those its ``torch.export``-based exporter has no
      use for (``do_constant_folding``, ``training``...).
    """
    _check_module(module)
    if isinstance(example_step, (tuple, list)):
        return _export_reference(module, tuple(example_step), path, *args, **kwargs)
    if args:
        raise TypeError(
            f"co.onnx.export: with an example step tensor, the options are keywords "
            f"(dynamic_batch, opset_version); got {len(args)} more positional arguments"
        )
    unknown = set(kwargs) - {"dynamic_batch", "opset_version"}
    if unknown:
        raise TypeError(
            f"co.onnx.export: unexpected options {sorted(unknown)} with an example step tensor; "
            "pass (step, *state) for continual-inference's form"
        )
    program = export_program(module, example_step, **kwargs)
    program.save(os.fspath(path))


def _export_reference(
    module: CoModule,
    args: Tuple[Any, ...],
    path: Union[str, os.PathLike],
    *positional: Any,
    dynamic_batch: bool = True,
    **kwargs: Any,
) -> None:
    """continual-inference's ``co.onnx.export`` (see ``export``)."""
    if len(positional) > len(_REFERENCE_ARGS):
        raise TypeError(
            f"co.onnx.export: at most {3 + len(_REFERENCE_ARGS)} positional arguments, got "
            f"{3 + len(positional)}"
        )
    for name, value in zip(_REFERENCE_ARGS, positional):
        if name in kwargs:
            raise TypeError(f"co.onnx.export: got multiple values for argument {name!r}")
        kwargs[name] = value
    unknown = set(kwargs) - set(_REFERENCE_ARGS)
    if unknown:
        raise TypeError(f"co.onnx.export: unexpected arguments {sorted(unknown)}")
    if not args or not isinstance(args[0], Tensor):
        raise TypeError(
            "co.onnx.export: expected args (step, *state) with a step tensor (B, C, *S) first, "
            f"got {type(args[0]).__name__ if args else 'an empty tuple'}"
        )
    step, state = args[0], tuple(args[1:])
    expected = state_layout(module, step).num_states
    if len(state) != expected or not all(isinstance(s, Tensor) for s in state):
        raise ValueError(
            f"co.onnx.export({type(module).__name__}): expected the {expected} state tensors "
            f"of {type(module).__name__}._forward_step after the step, got {len(state)} values"
        )
    # Traced on fresh streams (the values do not shape the graph), two of them for a dynamic
    # batch, as export_program does.
    example = _traced_example(step, dynamic_batch)
    wrapper = OnnxWrapper(module, example)
    state = wrapper._layout.fresh
    names = (
        list(kwargs.pop("input_names", None) or ["input"]) + wrapper.state_input_names,
        list(kwargs.pop("output_names", None) or ["output"]) + wrapper.state_output_names,
    )
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    axes = wrapper.state_batch_axes if dynamic_batch else None
    program = _export_step(wrapper, example, state, axes, names, **kwargs)
    program.save(os.fspath(path))


def state_feed(state: Sequence) -> Dict[str, object]:
    """``{"state_i": array}`` for an ONNX Runtime ``run`` call."""
    return {f"state_{i}": _numpy(s) for i, s in enumerate(state)}


def _numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else value
