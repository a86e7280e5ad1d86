"""continual-inference's ONNX workflow on cozoo: ``_forward_step`` with an explicit flat state,
``co.onnx.OnnxWrapper`` and ``co.onnx.export(net, (step, *state), path, ...)``.

The workflow as the reference library documents it: warm the network up with
``state = None; _, state = net._forward_step(x, state)``, export ``OnnxWrapper(net)`` on
``(x, *state)`` with the wrapper's state names and dynamic axes, then step in ONNX Runtime with
the state fed back. Every case is exported from one-stream steps and run with two streams (the
batch is dynamic), from fresh streams over ``receptive_field + 3`` steps, and compared with the
eager ``_forward_step`` on every step: the outputs where it has one, the state always.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import OrderedDict

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cozoo import co
from cozoo.co import onnx as co_onnx
from cozoo.co.onnx import OnnxWrapper

torch.manual_seed(0)


def encoder(layers: int, e: int = 4, t: int = 4):
    factory = co.TransformerEncoderLayerFactory(
        d_model=e, nhead=2, dim_feedforward=2 * e, dropout=0.0, sequence_len=t
    )
    return co.TransformerEncoder(factory, num_layers=layers)


def routing():
    """Conditionals, a positional encoding, broadcast, dispatch, parallel branches, reduce."""
    return co.Sequential(
        co.Conditional(lambda module, x: True, co.Add(1), co.Add(-1)),
        co.RecyclingPositionalEncoding(2, 3),
        co.Broadcast(2),
        co.ParallelDispatch([1, 0]),
        co.Parallel(co.AvgPool1d(3, stride=1), co.Sequential(co.Add(1), co.Conv1d(2, 2, 3))),
        co.Reduce("sum"),
        co.Linear(2, 2, channel_dim=1),
    )


def encoder_head():
    """Positional encoding, a 2-layer encoder, the newest token, a linear head."""
    return co.Sequential(
        OrderedDict(
            pos=co.RecyclingPositionalEncoding(4, 7, learned=False),
            enc=encoder(2),
            select=co.Lambda(
                fn=lambda x: x[:, :, -1], forward_step_only_fn=lambda x: x, takes_time=True
            ),
            lin=co.Linear(4, 4, channel_dim=-1),
        )
    )


# name: (network, step channels, front door: torch.onnx.export of the wrapper or co.onnx.export)
CASES = {
    "conv": (lambda: co.Conv1d(2, 3, 3), 2, "torch"),
    "sequential": (lambda: co.Sequential(co.Conv1d(2, 4, 3), co.Conv1d(4, 3, 1)), 2, "co"),
    "sequential with torch.nn modules": (
        lambda: co.Sequential(
            co.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), co.Conv1d(4, 3, 3, stride=2)
        ),
        2,
        "torch",
    ),
    "residual": (lambda: co.Residual(co.Conv1d(2, 2, 3), residual_shrink="lagging"), 2, "co"),
    "routing": (routing, 2, "torch"),
    "encoder, 1 layer": (lambda: encoder(1), 4, "torch"),
    # Their steps run torch's own attention over a window (or torch's recurrent layers), which
    # torch.export traces from one stream for that batch only: co.onnx.export traces two.
    "encoder, 2 layers": (lambda: encoder(2), 4, "co"),
    "encoder, 3 layers": (lambda: encoder(3), 4, "co"),
    "encoder with a head": (encoder_head, 4, "co"),
    "rnns and a conv": (
        lambda: co.Sequential(co.Conv1d(2, 3, 2), co.RNN(3, 3), co.GRU(3, 3), co.LSTM(3, 3)),
        2,
        "co",
    ),
}


def steps_of(net) -> int:
    rf = net.receptive_field
    return (int(rf) if math.isfinite(rf) else 4) + 3


def warm_up(net, channels: int, steps: int = 2, streams: int = 1):
    """The reference's warm-up: ``_forward_step`` from ``None`` (on one stream)."""
    x = torch.randn(streams, channels, steps)
    state = None
    with torch.no_grad():
        for t in range(steps):
            _, state = net._forward_step(x[:, :, t], state)
    return x[:, :, -1], state


def export_with_torch(net, step, state, path):
    """The reference's README pattern: torch.onnx.export of the wrapper."""
    wrapper = OnnxWrapper(net)
    torch.onnx.export(
        wrapper,
        (step, *[s.clone() for s in state]),
        str(path),
        input_names=["input", *wrapper.state_input_names],
        output_names=["output", *wrapper.state_output_names],
        dynamic_axes={
            "input": {0: "batch"},
            "output": {0: "batch"},
            **wrapper.state_dynamic_axes,
        },
    )
    return wrapper.state_input_names


def export_with_co(net, step, state, path):
    """The reference's ``co.onnx.export`` form."""
    co_onnx.export(
        net,
        (step, *[s.clone() for s in state]),
        path,
        input_names=["input"],
        output_names=["output"],
        do_constant_folding=True,
    )
    return OnnxWrapper(net).state_input_names


def run_and_compare(session, net, state_names, channels: int, batch: int = 2):
    """ONNX Runtime vs eager ``_forward_step`` on every step from fresh streams."""
    frames = torch.randn(batch, channels, steps_of(net))
    eager_state = None
    feed_state = [s.numpy() for s in co_onnx.initial_state(net, frames[:, :, 0])]
    produced = 0
    for t in range(frames.shape[2]):
        with torch.no_grad():
            target, eager_state = net._forward_step(frames[:, :, t], eager_state)
        output, *feed_state = session.run(
            None, {"input": frames[:, :, t].numpy(), **dict(zip(state_names, feed_state))}
        )
        assert len(feed_state) == len(eager_state)
        for got, want in zip(feed_state, eager_state):
            np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-5)
        if target is not None:
            produced += 1
            np.testing.assert_allclose(output, target.numpy(), atol=1e-5, rtol=1e-5)
    assert produced > 0


@pytest.mark.parametrize("name", list(CASES))
def test_reference_onnx_workflow(name, tmp_path):
    build, channels, door = CASES[name]
    net = build().eval()
    step, state = warm_up(net, channels)
    assert isinstance(state, tuple) and all(isinstance(s, torch.Tensor) for s in state)
    door = export_with_torch if door == "torch" else export_with_co
    path = tmp_path / "step.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dynamic_axes is deprecated by the exporter
        state_names = door(net, step, state, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    assert inputs == ["input", *state_names]
    assert [o.name for o in session.get_outputs()] == ["output"] + [f"n{n}" for n in state_names]
    assert all(any(isinstance(d, str) for d in i.shape) for i in session.get_inputs())
    run_and_compare(session, net, state_names, channels)


def test_torch_onnx_export_from_two_streams_keeps_any_network_batch_dynamic(tmp_path):
    """What co.onnx.export does for the networks that torch.export fixes from one stream."""
    net = encoder(2).eval()
    step, state = warm_up(net, 4, streams=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = export_with_torch(net, step, state, tmp_path / "step.onnx")
    session = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    run_and_compare(session, net, names, 4, batch=3)


# --------------------------------------------------------------------------------------------
# _forward_step
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sequential with torch.nn modules", "routing", "rnns and a conv"])
def test_forward_step_equals_forward_step_of_the_stateful_api(name):
    build, channels, _ = CASES[name]
    net = build().eval()
    frames = torch.randn(2, channels, steps_of(net))
    reference = copy.deepcopy(net)
    state = None
    with torch.no_grad():
        for t in range(frames.shape[2]):
            y, state = net._forward_step(frames[:, :, t], state)
            want = reference.forward_step(frames[:, :, t])
            assert (y is None) == (want is None), f"step {t}"
            if want is not None:
                torch.testing.assert_close(y, want, atol=1e-6, rtol=1e-5)
    assert net.get_state() is None  # the module's own state is not touched


def test_forward_step_state_is_flat_cloneable_and_fresh_from_none():
    net = co.Conv1d(2, 3, 3)
    x = torch.randn(1, 2, 4)
    y, state = net._forward_step(x[:, :, 0], None)
    assert y is None  # warming up: as forward_step
    assert isinstance(state, tuple) and [type(s) for s in state] == [torch.Tensor] * len(state)
    after_first = tuple(s.clone() for s in state)
    for t in range(1, 4):
        y, state = net._forward_step(x[:, :, t], state)
    torch.testing.assert_close(y, net.forward(x[:, :, 1:4])[:, :, 0])
    # The first step's state, stepped on again, still holds only the first frame.
    resumed = after_first
    for t in (1, 2):
        y_resumed, resumed = net._forward_step(x[:, :, t], resumed)
    torch.testing.assert_close(y_resumed, net.forward(x[:, :, 0:3])[:, :, 0])
    assert net._forward_step(x[:, :, 0], None)[0] is None  # None is a fresh stream again


def test_wrapper_needs_a_known_state_layout():
    with pytest.raises(ValueError, match=r"OnnxWrapper\(Conv1d\).*_forward_step"):
        OnnxWrapper(co.Conv1d(2, 3, 3))
    wrapper = OnnxWrapper(co.Conv1d(2, 3, 3), torch.randn(1, 2))
    assert wrapper.state_input_names == [f"s{i}" for i in range(wrapper.num_states)]
    assert wrapper.state_output_names == [f"ns{i}" for i in range(wrapper.num_states)]
    with pytest.raises(TypeError, match="expected a continual module"):
        OnnxWrapper(nn.Conv1d(2, 3, 3))


def test_wrapper_names_the_batch_axis_of_each_state():
    net = co.Sequential(co.Conv1d(2, 3, 2), co.GRU(3, 4, num_layers=2))
    warm_up(net, 2)
    wrapper = OnnxWrapper(net)
    axes = wrapper.state_dynamic_axes
    state = co_onnx.initial_state(net, torch.randn(1, 2))
    assert len(axes) == 2 * len(state)
    for i, s in enumerate(state):
        (axis,) = axes[f"s{i}"]
        assert axes[f"ns{i}"] == {axis: "batch"} and s.shape[axis] == 1
    assert any(list(axes[f"s{i}"]) == [1] for i in range(len(state)))  # (layers, B, H) hidden


def test_wrapper_copies_bind_their_own_module():
    net = co.Conv1d(2, 3, 3)
    step, state = warm_up(net, 2)
    wrapper = OnnxWrapper(net)
    twin = copy.deepcopy(wrapper)
    with torch.no_grad():
        twin.model.weight.add_(1.0)
        got, want = twin(step, *state)[0], wrapper(step, *state)[0]
    assert not torch.allclose(got, want)


def test_co_export_refuses_a_state_of_another_layout(tmp_path):
    net = co.Conv1d(2, 3, 3)
    step, state = warm_up(net, 2)
    with pytest.raises(ValueError, match=r"expected the \d+ state tensors"):
        co_onnx.export(net, (step, *state[:-1]), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="options are keywords"):
        co_onnx.export(net, step, tmp_path / "m.onnx", True)


def test_an_old_opset_request_still_exports(tmp_path):
    """The reference asks for opset 11; the exporter's lowest is 18 and stays where ONNX
    cannot convert the graph down."""
    net = co.Conv1d(2, 3, 3).eval()
    step, state = warm_up(net, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        co_onnx.export(net, (step, *state), tmp_path / "m.onnx", opset_version=11)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    run_and_compare(session, net, OnnxWrapper(net).state_input_names, 2, batch=3)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_is_refused_with_a_pointer_to_torch_export():
    net = co.Conv1d(2, 3, 3)
    net.call_mode = "forward_step"
    with pytest.raises(RuntimeError, match=r"torch\.jit\.script\(Conv1d\).*torch\.export"):
        torch.jit.script(net)
    with pytest.raises(RuntimeError, match="compile_step"):
        torch.jit.script(nn.Sequential(nn.ReLU(), co.Linear(2, 2)))
