"""The pure step exported: ONNX (run in onnxruntime), torch.export and torch.compile.

Every test runs the exported step over 3 x receptive_field steps (a zoo model: 4 steps past its
warm-up) and compares each step with ``forward_step``: outputs where the module produced one,
and the ``valid`` flags everywhere.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cozoo import co
from cozoo.co import onnx as co_onnx
from cozoo.co.export import StepFunction, flatten_state, initial_state, state_batch_axes

torch.manual_seed(0)


def conv_stack():
    return co.Sequential(
        co.Conv1d(3, 4, 3, padding=1),
        nn.ReLU(),
        co.Conv1d(4, 4, 3, stride=2, padding=1),
        co.Conv1d(4, 5, 3),
    )


def pools():
    return co.Sequential(
        co.Conv2d(3, 4, 3, padding=(0, 1)),
        co.AvgPool2d((4, 2), stride=(1, 2)),
        co.MaxPool2d((3, 1), stride=1, padding=(1, 0)),
    )


def residuals():
    return co.Sequential(
        co.Residual(co.Conv1d(3, 3, 3, padding=1)),
        co.Residual(co.Conv1d(3, 3, 5), residual_shrink=True),
        co.BroadcastReduce(co.Conv1d(3, 2, 3, padding=1), co.Delay(1), reduce="concat"),
    )


def recurrent():
    return co.Sequential(co.Conv1d(3, 4, 3), co.GRU(4, 6, num_layers=2), co.LSTM(6, 5))


def video():
    return co.Sequential(
        co.Conv3d(3, 4, 3, padding=(1, 1, 1)),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        co.Residual(co.Conv3d(4, 4, 3, padding=1)),
        co.MaxPool3d((2, 1, 1), stride=(2, 1, 1)),
        co.AvgPool3d((3, 2, 2), stride=(1, 2, 2)),
    )


def stateless():
    return co.Sequential(co.Linear(3, 4, channel_dim=1), nn.ReLU())


NETWORKS = {
    "stateless": (stateless, (3,)),
    "stride-2 conv stack": (conv_stack, (3,)),
    "pools": (pools, (3, 6)),
    "residuals": (residuals, (3,)),
    "rnn": (recurrent, (3,)),
    "video": (video, (3, 6, 6)),
}


def stream_length(net) -> int:
    rf = net.receptive_field
    return 3 * (int(rf) if math.isfinite(rf) else 4) + 2


def reference_run(net, frames):
    """forward_step outputs of a fresh ``net`` over ``frames`` (B, C, T, *S)."""
    net.clean_state()
    with torch.no_grad():
        return [net.forward_step(frames[:, :, t]) for t in range(frames.shape[2])]


def check_against_reference(refs, outputs):
    produced = 0
    for t, (ref, (y, valid)) in enumerate(zip(refs, outputs)):
        valid = np.asarray(valid)
        if ref is None:
            assert not valid.any(), f"step {t}: exported step claims an output"
        else:
            produced += 1
            assert valid.all(), f"step {t}: exported step misses an output"
            np.testing.assert_allclose(np.asarray(y), ref.numpy(), atol=2e-6, rtol=1e-5)
    assert produced > 0


@pytest.mark.parametrize("name", list(NETWORKS))
def test_onnx_export_matches_forward_step_for_any_batch(name, tmp_path):
    build, step_shape = NETWORKS[name]
    net = build().eval()
    example = torch.randn(2, *step_shape)
    path = tmp_path / "step.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        co_onnx.export(net, example, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names[0] == "input" and names[1:] == [f"state_{i}" for i in range(len(names) - 1)]
    assert [o.name for o in session.get_outputs()][:2] == ["output", "valid"]
    for batch in (2, 3):  # the batch size chosen at run time
        frames = torch.randn(batch, step_shape[0], stream_length(net), *step_shape[1:])
        refs = reference_run(net, frames)
        state = [s.numpy() for s in co_onnx.initial_state(net, frames[:, :, 0])]
        outputs = []
        for t in range(frames.shape[2]):
            y, valid, *state = session.run(
                None, {"input": frames[:, :, t].numpy(), **co_onnx.state_feed(state)}
            )
            outputs.append((y, valid))
        check_against_reference(refs, outputs)


def pooled_head():
    """A video net ending in the zoo's head: an adaptive pool (its step pools each frame to a
    constant size), a 1x1 conv and a linear layer over the channels."""
    return co.Sequential(
        co.Conv3d(3, 4, 3, padding=(0, 1, 1)),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        co.AdaptiveAvgPool3d((1, 1, 1), kernel_size=3),
        co.Conv3d(4, 6, 1),
        co.Lambda(lambda x: x.flatten(1), takes_time=False),
        co.Linear(6, 5, channel_dim=1),
    )


def run_session(session, net, frames):
    """The ONNX step over ``frames`` from fresh streams: [(output, valid)] per step."""
    state = co_onnx.initial_state(net, frames[:, :, 0])
    outputs = []
    for t in range(frames.shape[2]):
        y, valid, *state = session.run(
            None, {"input": frames[:, :, t].numpy(), **co_onnx.state_feed(state)}
        )
        outputs.append((y, valid))
    return outputs


def test_onnx_export_from_a_one_stream_example_serves_any_batch(tmp_path):
    """torch.export fixes a size-1 dim: a batch-1 example is traced with two streams."""
    net = pooled_head().eval()
    program = co_onnx.export_program(net, torch.randn(1, 3, 6, 6))
    assert isinstance(program, torch.onnx.ONNXProgram)
    program.save(str(tmp_path / "step.onnx"))
    session = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        frames = torch.randn(batch, 3, stream_length(net), 6, 6)
        check_against_reference(reference_run(net, frames), run_session(session, net, frames))


def test_the_legacy_exporter_takes_the_step_too(tmp_path):
    """The adaptive pool's step has constant sizes, so the TorchScript exporter, which refused
    it ("output_size is not constant"), works as well (for callers of torch.onnx.export)."""
    net = pooled_head().eval()
    example = torch.randn(2, 3, 6, 6)
    state = initial_state(net, example)
    path = tmp_path / "legacy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter is deprecated
        torch.onnx.export(
            StepFunction(net, example).eval(),
            (example, *state),
            str(path),
            input_names=co_onnx.input_names(len(state)),
            output_names=co_onnx.output_names(len(state)),
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frames = torch.randn(2, 3, stream_length(net), 6, 6)
    check_against_reference(reference_run(net, frames), run_session(session, net, frames))


def test_state_batch_axes_follow_each_state_layout():
    net = recurrent()
    axes = state_batch_axes(net, torch.randn(2, 3))
    shapes = [tuple(s.shape) for s in initial_state(net, torch.randn(2, 3))]
    for axis, shape in zip(axes, shapes):
        assert shape[axis] == 2
    assert 1 in axes  # hidden states (num_layers, B, H) keep the batch at dim 1


@pytest.mark.parametrize("name", ["stride-2 conv stack", "video"])
def test_torch_export_with_dynamic_batch(name):
    build, step_shape = NETWORKS[name]
    net = build().eval()
    example = torch.randn(2, *step_shape)
    step = StepFunction(net, example).eval()
    state = initial_state(net, example)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(
        step, (example, *state), dynamic_shapes=({0: batch}, tuple({0: batch} for _ in state))
    )
    run = program.module()
    frames = torch.randn(3, step_shape[0], stream_length(net), *step_shape[1:])
    refs = reference_run(net, frames)
    state = initial_state(net, frames[:, :, 0])
    outputs = []
    with torch.no_grad():
        for t in range(frames.shape[2]):
            y, valid, *state = run(frames[:, :, t], *state)
            outputs.append((y.numpy(), valid.numpy()))
    check_against_reference(refs, outputs)


def test_torch_compile_of_the_step():
    net = video().eval()
    example = torch.randn(2, 3, 6, 6)
    step = torch.compile(StepFunction(net, example).eval())
    frames = torch.randn(2, 3, stream_length(net), 6, 6)
    refs = reference_run(net, frames)
    state = initial_state(net, example)
    outputs = []
    with torch.no_grad():
        for t in range(frames.shape[2]):
            y, valid, *state = step(frames[:, :, t], *state)
            outputs.append((y.numpy(), valid.numpy()))
    check_against_reference(refs, outputs)


def test_step_function_refuses_a_wrong_number_of_states():
    net = conv_stack()
    step = StepFunction(net, torch.randn(1, 3))
    with pytest.raises(ValueError, match="state tensors"):
        step(torch.randn(1, 3))


def test_export_leaves_the_module_untouched(tmp_path):
    net = conv_stack().eval()
    x = torch.randn(1, 3, 9)
    with torch.no_grad():
        net.forward_steps(x)
        before = net.get_state()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            co_onnx.export(net, torch.randn(1, 3), tmp_path / "m.onnx")
    after = net.get_state()
    before_tensors, before_structure = flatten_state(before)
    after_tensors, after_structure = flatten_state(after)
    assert after_structure == before_structure
    assert all(a is b for a, b in zip(after_tensors, before_tensors))
