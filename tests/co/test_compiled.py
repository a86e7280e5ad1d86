"""``co.compile_step``: the pure step compiled with ``torch.compile`` (Inductor, CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from cozoo import co


def _net(pool_stride: int = 2) -> co.Sequential:
    torch.manual_seed(0)
    net = co.Sequential(
        co.Conv3d(3, 8, 3, padding=(1, 1, 1)),
        nn.BatchNorm3d(8),
        nn.ReLU(),
        co.BroadcastReduce(co.Conv3d(8, 8, 3, padding=(1, 1, 1), groups=8), co.Delay(1)),
        nn.SiLU(),
        # stride 2: outputs on every other step, the bookkeeping cycles (tensor mode)
        co.AvgPool3d((2, 1, 1), stride=(pool_stride, 1, 1)),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


# (pool stride, mode asked for, mode and period expected)
_FORMS = {
    "steady": (1, "auto", "steady", 1),
    "steady-cycle": (2, "auto", "steady", 2),  # outputs on every other step: two graphs
    "tensor-mode": (2, "tensor", "tensor", 1),
}


@pytest.fixture(scope="module", params=list(_FORMS))
def compiled(request):
    pool_stride, mode, expected_mode, period = _FORMS[request.param]
    net = _net(pool_stride=pool_stride)
    frames = torch.randn(2, 3, 16, 6, 6)
    fast = co.compile_step(net, frames[:, :, 0], mode=mode)
    assert (fast.mode, fast.period) == (expected_mode, period)
    return net, fast, frames


def test_compiled_steps_equal_eager_steps_without_recompiling(compiled):
    net, fast, frames = compiled
    fast.reset()
    net.clean_state()
    got = []
    while fast.warming_up or len(got) < 2:
        got.append(fast(frames[:, :, len(got)]))
    warm_up = len(got)
    for _ in range(fast.period):  # compiles each phase's graph
        got.append(fast(frames[:, :, len(got)]))
    assert len(got) <= 10
    # Frames in either layout run the same graphs: they are copied into the compiled layout,
    # channels-last (Inductor's convolution layout) for (B, C, H, W) frames.
    assert fast.frame_format is torch.channels_last
    layouts = (torch.contiguous_format, torch.channels_last)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for t in range(len(got), frames.shape[2]):
            got.append(fast(frames[:, :, t].contiguous(memory_format=layouts[t % 2])))
    if fast.mode == "steady":
        assert not fast.warming_up  # the later steps ran the compiled steady steps
        assert warm_up < 8
    expected = [net.forward_step(frames[:, :, t]) for t in range(frames.shape[2])]
    assert [g is None for g in got] == [e is None for e in expected]
    assert sum(e is not None for e in expected) >= 4
    for g, e in zip(got, expected):
        if e is not None:
            assert_close(g, e, atol=1e-5, rtol=1e-5)
    # and the whole stream is the clip forward, as for the eager steps
    clip = net.forward(frames)
    steps = torch.stack([g for g in got if g is not None], 2)
    assert_close(steps, clip[:, :, : steps.shape[2]], atol=1e-5, rtol=1e-5)


def test_reset_starts_a_new_stream_and_the_module_state_is_untouched(compiled):
    net, fast, frames = compiled
    net.clean_state()
    fast.reset()
    first = [fast(frames[:, :, t]) for t in range(frames.shape[2])]  # compiles every phase
    assert net.get_state() is None  # the compiled step keeps its own state
    fast.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        again = [fast(frames[:, :, t]) for t in range(frames.shape[2])]
    for a, b in zip(first, again):
        assert (a is None and b is None) or torch.equal(a, b)


def test_bad_input_is_refused_with_a_clear_error(compiled):
    net, fast, frames = compiled
    expected = r"Sequential\): compiled for steps of shape \(2, 3, 6, 6\)"
    with pytest.raises(ValueError, match=expected):
        fast(frames[:1, :, 0])
    with pytest.raises(ValueError, match="train mode"):
        co.compile_step(_net().train(), frames[:, :, 0])
    with pytest.raises(TypeError, match="continual module"):
        co.compile_step(nn.ReLU(), frames[:, :, 0])
    with pytest.raises(ValueError, match="mode must be 'auto', 'steady' or 'tensor', got 'fast'"):
        co.compile_step(net, frames[:, :, 0], mode="fast")


def test_frames_take_the_layout_the_module_steps_in():
    frame = torch.randn(2, 3, 6, 6)
    assert co.compile_step(_net(), frame).frame_format is torch.channels_last
    net = _net()
    net.step_memory_format = torch.contiguous_format  # as a zoo model may be told
    assert co.compile_step(net, frame).frame_format is torch.contiguous_format
    flat = co.Sequential(co.Conv1d(3, 4, 3)).eval()  # (B, C) frames: nothing to choose
    assert co.compile_step(flat, torch.randn(2, 3)).frame_format is torch.contiguous_format


def test_every_compiled_step_has_graphs_of_its_own():
    # Dynamo keeps at most `recompile_limit` (8) graphs per code object; if the steady steps
    # of different CompiledSteps shared one, each new one would be a recompilation (and the
    # ninth in a process would run eagerly).
    def small() -> co.Sequential:
        return co.Sequential(co.Conv3d(3, 4, 3, padding=(1, 1, 1)), nn.ReLU()).eval()

    frame = torch.randn(1, 3, 5, 5)
    first = co.compile_step(small(), frame)
    while first.warming_up:
        first(frame)
    first(frame)  # compiled
    second = co.compile_step(small(), frame)
    while second.warming_up:
        second(frame)
    with torch._dynamo.config.patch(error_on_recompile=True):
        second(frame)  # a first compilation, not a recompilation of `first`'s graph
        assert not second.warming_up and not first.warming_up
        first(frame)


class _CountingForever(co.CoModule):
    """A state whose bookkeeping never repeats: a step count with no saturation."""

    def _step(self, x, state, valid=True):
        return x, valid, (0 if state is None else state) + 1


def test_steady_form_is_refused_for_a_state_that_never_settles():
    frame = torch.randn(1, 3)
    with pytest.raises(ValueError, match="does not settle into a cycle .* use mode='tensor'"):
        co.compile_step(_CountingForever().eval(), frame, mode="steady")
