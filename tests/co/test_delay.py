"""Pure time shifts: ``Delay``, ``Skip`` and ``TimeShift``.

Deliberate differences from ``continual-inference`` 1.2.4 that are tested here: every mode
agrees with ``forward`` on a fresh module, so ``Delay(n, auto_shrink=True)`` and ``"centered"``
both give ``forward = x[n:-n]`` and emit from step ``2n`` (delay ``2n``); ``"lagging"`` gives
``x[:-n]`` and end padding adds nothing; ``Skip(n).delay == n`` (the steps before its first
output).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import Tensor
from torch.testing import assert_close

from cozoo import co
from cozoo.co import StepShapeError
from cozoo.co.delay import TimeShift

SHRINKS = [False, True, "centered", "lagging"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def ramp(steps: int, batch: int = 1, channels: int = 1, spatial=()) -> Tensor:
    """A clip whose value at time t is t (every batch row, channel and pixel)."""
    t = torch.arange(float(steps)).view(1, 1, steps, *([1] * len(spatial)))
    return t.expand(batch, channels, steps, *spatial).clone()


def values(y) -> list:
    """Time values of a ramp-derived clip (None stays None)."""
    if y is None:
        return None
    return y[0, 0].reshape(y.shape[2], -1)[:, 0].tolist()


def step_values(m, x) -> list:
    out = []
    for t in range(x.shape[2]):
        y = m.forward_step(x[:, :, t])
        out.append(None if y is None else y.reshape(-1)[0].item())
    return out


def tree_clone(obj):
    if isinstance(obj, Tensor):
        return obj.clone()
    if isinstance(obj, tuple):
        items = [tree_clone(o) for o in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    return obj


def assert_tree_equal(a, b):
    if isinstance(b, Tensor):
        assert isinstance(a, Tensor) and torch.equal(a, b)
    elif isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b)
        for ai, bi in zip(a, b):
            assert_tree_equal(ai, bi)
    else:
        assert a == b


def first_output_frame(steps_done: int, delay: int, stride: int = 1) -> int:
    """Index of the first ``forward`` frame that is still to come after ``steps_done`` steps."""
    return max(0, math.ceil((steps_done - delay) / stride))


def check_modes(m, x, expected):
    """forward, forward_steps(pad_end), per-step outputs and None pattern, forward_steps without
    end padding, split stepping and update_state=False, all against ``expected``."""
    T, d = x.shape[2], m.delay
    m.clean_state()
    assert torch.equal(m.forward(x), expected)
    assert m.get_state() is None
    assert m._forward_length(T) == expected.shape[2]
    assert torch.equal(m.forward_steps(x, pad_end=True), expected)

    m.clean_state()
    outs = []
    for t in range(T):
        y = m.forward_step(x[:, :, t])
        assert (y is not None) == (t >= d), f"step {t}"
        if y is not None:
            assert torch.equal(y, expected[:, :, t - d])
            outs.append(y)
    m.clean_state()
    no_pad = m.forward_steps(x)
    if outs:
        assert torch.equal(no_pad, torch.stack(outs, 2))
    else:
        assert no_pad is None

    for a in sorted({1, T // 2, T - 2}):
        m.clean_state()
        head = m.forward_steps(x[:, :, :a])
        snap = tree_clone(m.get_state())
        dry = m.forward_steps(x[:, :, a:], pad_end=True, update_state=False)
        assert_tree_equal(m.get_state(), snap)
        dry_step = m.forward_step(x[:, :, a], update_state=False)
        assert_tree_equal(m.get_state(), snap)
        mid = m.forward_step(x[:, :, a])
        assert (dry_step is None) == (mid is None)
        if mid is not None:
            assert torch.equal(dry_step, mid)
            mid = mid.unsqueeze(2)
        rest = m.forward_steps(x[:, :, a + 1 :], pad_end=True)
        parts = [p for p in (head, mid, rest) if p is not None]
        got = torch.cat(parts, 2) if parts else None
        assert torch.equal(got, expected), f"split at {a}"
        j = first_output_frame(a, d)
        assert torch.equal(dry, expected[:, :, j:])


# --------------------------------------------------------------------------------------------
# Delay(2) on the clip 0..6: each mode's values per auto_shrink, consistent across modes
# --------------------------------------------------------------------------------------------
DELAY_TABLE = {
    # auto_shrink: (steps, forward_steps, forward_steps(pad_end), forward, delay)
    False: ([None, None, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6], list(range(7)), 2),
    True: ([None] * 4 + [2, 3, 4], [2, 3, 4], [2, 3, 4], [2, 3, 4], 4),
    "centered": ([None] * 4 + [2, 3, 4], [2, 3, 4], [2, 3, 4], [2, 3, 4], 4),
    "lagging": ([None, None, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], 2),
}


@pytest.mark.parametrize("shrink", SHRINKS, ids=str)
def test_delay_table(shrink):
    steps, no_pad, padded, fwd, delay = DELAY_TABLE[shrink]
    m = co.Delay(2, auto_shrink=shrink)
    x = ramp(7)
    assert values(m.forward(x)) == fwd
    assert values(m(x)) == fwd
    assert values(m.forward_steps(x, pad_end=True)) == padded
    m.clean_state()
    assert values(m.forward_steps(x)) == no_pad
    m.clean_state()
    assert step_values(m, x) == steps
    assert m.delay == delay
    assert m.receptive_field == delay + 1
    assert m.stride == (1,)
    assert m.padding == (0,)
    assert m._forward_length(7) == len(fwd)


@pytest.mark.parametrize("shrink", SHRINKS, ids=str)
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("spatial", [(), (3,), (2, 3)], ids=["1d", "2d", "3d"])
def test_delay_all_modes(shrink, n, spatial):
    x = torch.randn((2, 3, 11) + spatial)
    m = co.Delay(n, auto_shrink=shrink)
    T = x.shape[2]
    if shrink is False:
        expected = x
    elif shrink == "lagging":
        expected = x[:, :, : T - n]
    else:
        expected = x[:, :, n : T - n]
    check_modes(m, x, expected)


def test_delay_step_outputs_are_the_input_steps_delayed():
    m = co.Delay(3)
    x = torch.randn(2, 4, 10, 3, 3)
    for t in range(10):
        y = m.forward_step(x[:, :, t])
        if t < 3:
            assert y is None
        else:
            assert torch.equal(y, x[:, :, t - 3])
            assert y.shape == (2, 4, 3, 3)


def test_delay_zero_is_identity_in_all_modes():
    m = co.Delay(0)
    x = torch.randn(2, 3, 6)
    assert m.delay == 0 and m.receptive_field == 1
    check_modes(m, x, x)
    assert all(torch.equal(m.forward_step(x[:, :, t]), x[:, :, t]) for t in range(6))
    assert repr(m) == "Delay(0)"


@pytest.mark.parametrize("shrink", [True, "centered", "lagging"], ids=str)
def test_delay_zero_with_shrink_is_identity(shrink):
    x = torch.randn(1, 2, 5)
    check_modes(co.Delay(0, auto_shrink=shrink), x, x)


def test_fill_value_is_never_emitted():
    x = torch.randn(2, 3, 8) + 5.0
    for fill in ("zeros", "replicate"):
        m = co.Delay(3, temporal_fill=fill)
        check_modes(m, x, x)
        m.clean_state()
        outs = [m.forward_step(x[:, :, t]) for t in range(8)]
        assert outs[:3] == [None] * 3


def test_delay_reprs():
    assert repr(co.Delay(2)) == "Delay(2)"
    assert repr(co.Delay(2, auto_shrink=True)) == "Delay(2, auto_shrink=True)"
    assert repr(co.Delay(2, auto_shrink="centered")) == "Delay(2, auto_shrink='centered')"
    assert repr(co.Delay(2, auto_shrink="lagging")) == "Delay(2, auto_shrink='lagging')"
    assert repr(co.Skip(2)) == "Skip(2)"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(delay=-1),
        dict(delay=2, auto_shrink="leading"),
        dict(delay=2, auto_shrink="yes"),
        dict(delay=2, temporal_fill="reflect"),
    ],
)
def test_delay_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        co.Delay(**kwargs)


def test_delay_state_lifecycle():
    m = co.Delay(2)
    assert m.get_state() is None
    m.clean_state()  # harmless on a fresh module
    x = torch.randn(1, 2, 6)
    m.forward_step(x[:, :, 0])
    assert m.get_state() is not None
    m.clean_state()
    assert m.get_state() is None
    # after clean_state the module starts over like a fresh one
    assert step_values(co.Delay(2), ramp(5)) == step_values(m, ramp(5))


def test_delay_snapshot_and_restore():
    m = co.Delay(3)
    x = torch.randn(2, 3, 12)
    m.forward_steps(x[:, :, :5])
    snap = m.get_state()
    kept = tree_clone(snap)
    first = m.forward_steps(x[:, :, 5:])
    assert_tree_equal(snap, kept)  # the snapshot is immutable
    m.set_state(snap)
    again = m.forward_steps(x[:, :, 5:])
    assert torch.equal(first, again)
    assert torch.equal(first, x[:, :, 2:9])


def test_delay_shape_change_mid_stream_raises():
    m = co.Delay(2)
    m.forward_step(torch.randn(2, 3))
    with pytest.raises(StepShapeError):
        m.forward_step(torch.randn(3, 3))
    with pytest.raises(StepShapeError):
        m.forward_steps(torch.randn(2, 4, 5))
    m.clean_state()
    assert m.forward_step(torch.randn(3, 3)) is None  # fine after clean_state


def test_delay_pad_end_does_not_touch_the_stream():
    m = co.Delay(2)
    x = torch.randn(1, 2, 10)
    y = m.forward_steps(x[:, :, :6], pad_end=True)
    assert torch.equal(y, x[:, :, :6])
    # the stream continues as if no end padding had happened
    assert torch.equal(m.forward_step(x[:, :, 6]), x[:, :, 4])
    assert torch.equal(m.forward_steps(x[:, :, 7:]), x[:, :, 5:8])


def test_delay_forward_steps_returns_none_without_outputs():
    m = co.Delay(4)
    x = torch.randn(1, 2, 5)
    assert m.forward_steps(x[:, :, :4]) is None
    assert torch.equal(m.forward_steps(x[:, :, 4:]), x[:, :, :1])
    assert co.Skip(3).forward_steps(x[:, :, :3]) is None


def test_delay_keeps_dtype_and_gradients():
    x = torch.randn(1, 2, 6, dtype=torch.float64, requires_grad=True)
    m = co.Delay(2)
    y = m.forward_steps(x, pad_end=True)
    assert y.dtype == torch.float64
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_delay_long_stream_keeps_values_exact():
    m = co.Delay(5)
    x = torch.randn(1, 1, 3000)
    y = torch.cat([m.forward_steps(x[:, :, i : i + 7]) for i in range(0, 3000, 7)], 2)
    assert torch.equal(y, x[:, :, : 3000 - 5])


# --------------------------------------------------------------------------------------------
# Per-stream reset
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shrink", SHRINKS, ids=str)
def test_delay_per_stream_reset(shrink):
    m = co.Delay(2, auto_shrink=shrink)
    x = torch.randn(2, 3, 14)
    reset_at = 5
    # stream 0 uninterrupted; stream 1 restarts at step 5 on its own data x[1, :, 5:]
    ref0 = [m.forward_step(x[:1, :, t]) for t in range(14)]
    m.clean_state()
    ref1 = [None] * reset_at + [m.forward_step(x[1:, :, t]) for t in range(reset_at, 14)]
    m.clean_state()
    saw_mixed = False
    for t in range(14):
        if t == reset_at:
            m.clean_state(streams=[1])
        y = m.forward_step(x[:, :, t])
        e0, e1 = ref0[t], ref1[t] if t >= reset_at else "any"
        if t < reset_at:
            assert (y is None) == (e0 is None)
            continue
        if e0 is None and e1 is None:
            assert y is None and m.last_valid is False
            continue
        assert y is not None
        if e1 is None:
            saw_mixed = True
            assert m.last_valid == (True, False)
            assert torch.isnan(y[1]).all()
            assert torch.equal(y[:1], e0)
        else:
            assert m.last_valid is True
            assert torch.equal(y[:1], e0)
            assert torch.equal(y[1:], e1)
    assert saw_mixed


def test_delay_per_stream_forward_steps_in_phase_again():
    m = co.Delay(2)
    x = torch.randn(2, 3, 12)
    m.forward_steps(x[:, :, :4])
    m.clean_state(streams=[0])
    for t in range(4, 6):
        y = m.forward_step(x[:, :, t])
        assert m.last_valid == (False, True)
        assert torch.isnan(y[0]).all() and torch.equal(y[1], x[1, :, t - 2])
    # both streams are warm again: chunked stepping works and stays exact
    y = m.forward_steps(x[:, :, 6:])
    assert torch.equal(y, x[:, :, 4:10])


# --------------------------------------------------------------------------------------------
# Skip
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 4])
def test_skip_all_modes(n):
    m = co.Skip(n)
    assert m.delay == n  # honest: steps before the first output
    x = torch.randn(2, 3, 9, 2)
    check_modes(m, x, x[:, :, n:])
    m.clean_state()
    outs = [m.forward_step(x[:, :, t]) for t in range(9)]
    assert outs[:n] == [None] * n
    for t in range(n, 9):
        assert torch.equal(outs[t], x[:, :, t])


def test_skip_values_on_ramp():
    m = co.Skip(2)
    x = ramp(7)
    assert values(m.forward(x)) == [2, 3, 4, 5, 6]
    assert step_values(m, x) == [None, None, 2, 3, 4, 5, 6]
    m.clean_state()
    assert values(m.forward_steps(x, pad_end=True)) == [2, 3, 4, 5, 6]


def test_skip_rejects_non_positive_steps():
    with pytest.raises(ValueError):
        co.Skip(0)


def test_skip_passes_through_after_warm_up_forever():
    m = co.Skip(3)
    x = torch.randn(1, 2, 40)
    m.forward_steps(x[:, :, :10])
    assert torch.equal(m.forward_steps(x[:, :, 10:]), x[:, :, 10:])


# --------------------------------------------------------------------------------------------
# TimeShift (the shared implementation, also the residual branch of Residual)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "lag, lead, end_pad",
    [(0, 0, 0), (1, 0, 1), (2, 1, 1), (3, 2, 0), (0, 3, 0), (2, 0, 0), (3, 1, 3)],
)
def test_time_shift_all_modes(lag, lead, end_pad):
    m = TimeShift(lag, lead, end_pad)
    assert m.delay == lag + lead
    x = torch.randn(2, 2, 12)
    T = x.shape[2]
    check_modes(m, x, x[:, :, lead : T - lag + end_pad])


@pytest.mark.parametrize("args", [(-1, 0, 0), (1, -1, 0), (1, 0, 2), (0, 0, 1)])
def test_time_shift_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        TimeShift(*args)


def test_delay_inside_sequential_with_a_conv():
    conv = co.Conv1d(2, 2, 3, padding=1)
    seq = co.Sequential(conv, co.Delay(2))
    x = torch.randn(2, 2, 9)
    expected = conv.forward(x)
    assert seq.delay == 3
    seq.clean_state()
    assert_close(seq.forward_steps(x, pad_end=True), expected, atol=1e-6, rtol=1e-6)
    seq.clean_state()
    outs = [seq.forward_step(x[:, :, t]) for t in range(9)]
    assert [o is None for o in outs] == [True] * 3 + [False] * 6
    for t in range(3, 9):
        assert_close(outs[t], expected[:, :, t - 3], atol=1e-6, rtol=1e-6)


def test_deepcopy_keeps_the_stream():
    m = co.Delay(2)
    x = torch.randn(1, 2, 8)
    m.forward_steps(x[:, :, :4])
    twin = copy.deepcopy(m)
    assert torch.equal(twin.forward_steps(x[:, :, 4:]), m.forward_steps(x[:, :, 4:]))
