"""State handling of the continual convolutions.

update_state=False, snapshots (get_state/set_state), per-stream clean_state, shape checks,
dtype conversion of a live state, warm_up and the functional ``_forward_step``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from cozoo import co
from cozoo.co import StepShapeError

NN = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CO = {1: co.Conv1d, 2: co.Conv2d, 3: co.Conv3d}
SPATIAL_SIZE = {1: (), 2: (6,), 3: (5, 4)}
DIMS = [1, 2, 3]
TOL = dict(atol=1e-6, rtol=1e-6)


def make_conv(dims, k=3, s=1, p=0, d=1, cin=4, cout=5, **kw):
    n = dims - 1
    return CO[dims](
        cin, cout, (k,) + (3,) * n, stride=(s,) + (1,) * n, padding=(p,) + (1,) * n,
        dilation=(d,) + (1,) * n, **kw,
    )  # fmt: skip


def make_clip(dims, batch=2, channels=4, steps=12, spatial=None, dtype=None):
    spatial = SPATIAL_SIZE[dims] if spatial is None else spatial
    return torch.randn((batch, channels, steps) + tuple(spatial), dtype=dtype)


def frame_index(t, module):
    return (t - module.delay) // module.stride[0]


def same_output(a, b):
    """Both None, or bit-identical tensors."""
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a, b)


CASES = [dict(k=3, p=1), dict(k=3, s=2), dict(k=4, s=3, p=2), dict(k=3, d=2, p=1), dict(k=1, s=2)]


def _case_id(case):
    return "-".join(f"{k}{v}" for k, v in case.items())


# --------------------------------------------------------------------------------------------
# Fresh module, clean_state, state_dict
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", DIMS)
def test_fresh_module_and_clean_state(dims, run_steps, pattern_of, expected_pattern):
    m = make_conv(dims, k=3, s=2, p=1)
    assert m.get_state() is None
    m.clean_state()  # harmless on a fresh module
    m.clean_state(streams=[1])
    assert m.get_state() is None
    keys = list(m.state_dict().keys())
    x = make_clip(dims)
    first = run_steps(m, x)
    assert m.get_state() is not None
    assert list(m.state_dict().keys()) == keys  # the stream state is not a parameter/buffer
    m.clean_state()
    assert m.get_state() is None
    again = run_steps(m, x)  # starts over: same pattern, same outputs
    assert pattern_of(again) == expected_pattern(x.shape[2], m.delay, 2)
    assert all(same_output(a, b) for a, b in zip(first, again))


# --------------------------------------------------------------------------------------------
# update_state=False
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_forward_step_without_update_state(dims, case, clone_state, assert_state_equal):
    m = make_conv(dims, **case)
    twin = copy.deepcopy(m)
    x = make_clip(dims)
    for t in range(x.shape[2]):
        before = m.get_state()
        saved = clone_state(before)
        peek = m.forward_step(x[:, :, t], update_state=False)
        assert m.get_state() is before
        assert_state_equal(m.get_state(), saved)
        assert same_output(peek, twin.forward_step(x[:, :, t]))
        assert same_output(peek, m.forward_step(x[:, :, t]))
    assert_state_equal(m.get_state(), twin.get_state())


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_forward_steps_without_update_state(dims, case, clone_state, assert_state_equal):
    m = make_conv(dims, **case)
    twin = copy.deepcopy(m)
    x = make_clip(dims, steps=14)
    for lo, hi in [(0, 1), (1, 4), (4, 9), (9, 14)]:
        for pad_end in (False, True):
            before = m.get_state()
            saved = clone_state(before)
            peek = m.forward_steps(x[:, :, lo:hi], pad_end=pad_end, update_state=False)
            assert m.get_state() is before
            assert_state_equal(m.get_state(), saved)
            assert same_output(peek, copy.deepcopy(twin).forward_steps(x[:, :, lo:hi], pad_end))
        assert same_output(m.forward_steps(x[:, :, lo:hi]), twin.forward_steps(x[:, :, lo:hi]))


@pytest.mark.parametrize("dims", DIMS)
def test_update_state_false_on_fresh_module_keeps_it_fresh(dims):
    m = make_conv(dims, k=3, p=2)  # delay 0: the first step already outputs
    x = make_clip(dims)
    y = m.forward_step(x[:, :, 0], update_state=False)
    assert y is not None and m.get_state() is None
    ys = m.forward_steps(x, pad_end=True, update_state=False)
    assert m.get_state() is None
    assert_close(ys, m.forward(x), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_zero_step_without_update_state_is_the_padded_last_output(dims):
    """``forward_step(zeros, update_state=False)`` equals the zero-padded last output."""
    m = make_conv(dims, k=3, p=1)
    x = make_clip(dims)
    m.forward_steps(x)
    y = m.forward_step(torch.zeros_like(x[:, :, 0]), update_state=False)
    assert_close(y, m.forward(x)[:, :, -1], **TOL)
    # the stream goes on from the stored state
    nxt = make_clip(dims, steps=1)
    assert_close(m.forward_step(nxt[:, :, 0]), m.forward(torch.cat([x, nxt], 2))[:, :, -2], **TOL)


# --------------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------------
def _continue(m, x):
    """A mix of forward_steps and forward_step calls over ``x``; all outputs, in order."""
    outs = [m.forward_steps(x[:, :, :3])]
    outs += [m.forward_step(x[:, :, t]) for t in range(3, 6)]
    outs.append(m.forward_steps(x[:, :, 6:], pad_end=True))
    return outs


@pytest.mark.parametrize("grad_mode", ["train", "eval", "no_grad", "inference_mode"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_snapshot_and_restore(dims, case, grad_mode, clone_state, assert_state_equal):
    m = make_conv(dims, **case)
    m.train(grad_mode == "train")
    x = make_clip(dims, steps=15)
    ctx = {
        "no_grad": torch.no_grad,
        "inference_mode": torch.inference_mode,
    }.get(grad_mode, torch.enable_grad)
    with ctx():
        m.forward_steps(x[:, :, :2])
        m.forward_step(x[:, :, 2])
        snap = m.get_state()
        saved = clone_state(snap)
        first = _continue(m, x[:, :, 3:])
        # stepping on did not alter the snapshot
        assert_state_equal(snap, saved)
        m.set_state(snap)
        second = _continue(m, x[:, :, 3:])
        assert all(same_output(a, b) for a, b in zip(first, second))
        # a snapshot moves to another module with the same weights
        other = copy.deepcopy(m)
        other.clean_state()
        other.set_state(snap)
        third = _continue(other, x[:, :, 3:])
        assert all(same_output(a, b) for a, b in zip(first, third))


@pytest.mark.parametrize("dims", DIMS)
def test_state_does_not_alias_caller_tensors(dims):
    """Frames fed from one reused buffer (e.g. a camera frame buffer) must give the same
    outputs as fresh tensors: the state must not keep references that the caller mutates."""
    m = make_conv(dims, k=3, p=1)
    x = make_clip(dims)
    expected = [m.forward_step(x[:, :, t]) for t in range(x.shape[2])]
    m.clean_state()
    buf = torch.empty_like(x[:, :, 0])
    got = []
    for t in range(x.shape[2]):
        buf.copy_(x[:, :, t])
        got.append(m.forward_step(buf))
    assert all(same_output(a, b) for a, b in zip(got, expected))
    # the same for chunks
    m.clean_state()
    clip_buf = torch.empty_like(x[:, :, :4])
    parts = []
    for lo in range(0, 12, 4):
        clip_buf.copy_(x[:, :, lo : lo + 4])
        parts.append(m.forward_steps(clip_buf))
    assert_close(torch.cat(parts, 2), torch.stack(expected[1:], 2), **TOL)


@pytest.mark.parametrize(
    "make",
    [
        lambda: co.Delay(2),
        lambda: co.Sequential(co.Delay(1), co.Conv1d(4, 4, 3)),
        lambda: co.Residual(co.Conv1d(4, 4, 3, padding=1)),
        lambda: co.Parallel(co.Delay(2), co.Conv1d(4, 4, 3)),
    ],
    ids=["delay", "delay-then-conv", "residual", "parallel"],
)
def test_no_module_keeps_the_callers_step_buffer(make):
    """forward_step copies the caller's step once, so modules deep inside a network (which keep
    their inputs without copying them) never see a buffer the caller overwrites."""
    m, ref = make(), make()
    ref.load_state_dict(m.state_dict())
    x = torch.randn(2, 4, 9)
    parallel = type(m) is co.Parallel  # (BroadcastReduce, a subclass, takes one tensor)
    buffer = torch.empty_like(x[:, :, 0])
    outputs = 0
    for t in range(x.shape[2]):
        buffer.copy_(x[:, :, t])
        got = m.forward_step([buffer, buffer] if parallel else buffer)
        frame = x[:, :, t].clone()
        expected = ref.forward_step([frame, frame] if parallel else frame)
        for a, b in zip(got, expected) if parallel else [(got, expected)]:
            assert same_output(a, b)
            outputs += a is not None
    assert outputs > 0


@pytest.mark.parametrize("dims", DIMS)
def test_functional_forward_step_is_pure(dims, run_steps):
    m = make_conv(dims, k=3, s=2, p=1)
    x = make_clip(dims)
    expected = run_steps(copy.deepcopy(m), x)
    state = None
    for t in range(x.shape[2]):
        y, state = m._forward_step(x[:, :, t], state)
        assert m.get_state() is None
        assert same_output(y, expected[t])


# --------------------------------------------------------------------------------------------
# warm_up
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [dict(k=3), dict(k=5, p=1), dict(k=3, d=2, s=2)], ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_warm_up(dims, case):
    m = make_conv(dims, **case)
    x = make_clip(dims, steps=1)
    m.warm_up(x[:, :, 0].shape)
    y = m.forward_step(x[:, :, 0])
    assert y is not None
    padded = torch.cat([torch.zeros_like(x).expand(-1, -1, m.delay, *x.shape[3:]), x], 2)
    assert_close(y, m.forward(padded)[:, :, frame_index(m.delay, m)], **TOL)


# --------------------------------------------------------------------------------------------
# Per-stream clean_state
# --------------------------------------------------------------------------------------------
def _per_stream_expectations(m, x, resets, run_steps):
    """Expected output per step and stream: ``resets`` maps stream -> step of its reset."""
    B, T = x.shape[0], x.shape[2]
    table = []
    for b in range(B):
        single = copy.deepcopy(m)
        single.clean_state()
        start = resets.get(b, 0)
        before = run_steps(single, x[b : b + 1, :, :start])  # the stream before its reset
        single.clean_state()
        table.append(before + run_steps(single, x[b : b + 1, :, start:]))
    return [[table[b][t] for b in range(B)] for t in range(T)]


def _check_step(m, y, expected, t):
    valid = tuple(e is not None for e in expected)
    if not any(valid):
        assert y is None, f"step {t}"
        assert m.last_valid is False
    elif all(valid):
        assert m.last_valid is True, f"step {t}"
        assert not torch.isnan(y).any()
        assert_close(y, torch.cat(expected, 0), **TOL)
    else:
        assert m.last_valid == valid, f"step {t}"
        for b, e in enumerate(expected):
            if e is None:
                assert torch.isnan(y[b]).all()
            else:
                assert_close(y[b : b + 1], e, **TOL)


PER_STREAM_CASES = [
    dict(k=3),
    dict(k=3, p=1),
    dict(k=3, s=2),
    dict(k=4, s=2, p=1),
    dict(k=3, d=2, p=2, s=3),
    dict(k=3, p=2, padding_mode="replicate"),
    dict(k=1, s=2),
]


@pytest.mark.parametrize("case", PER_STREAM_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_per_stream_clean_state_with_forward_step(dims, case, run_steps):
    m = make_conv(dims, **case)
    x = make_clip(dims, batch=3, steps=16)
    resets = {1: 5}  # odd: with stride 2 the reset stream runs at the other phase
    expected = _per_stream_expectations(m, x, resets, run_steps)
    for t in range(x.shape[2]):
        if t == 5:
            m.clean_state(streams=[1])
        _check_step(m, m.forward_step(x[:, :, t]), expected[t], t)


@pytest.mark.parametrize("dims", DIMS)
def test_per_stream_resets_at_three_phases(dims, run_steps):
    m = make_conv(dims, k=3, s=3, p=1)
    x = make_clip(dims, batch=3, steps=17)
    resets = {0: 4, 2: 8}
    expected = _per_stream_expectations(m, x, resets, run_steps)
    seen_mixed = False
    for t in range(x.shape[2]):
        if t in (4, 8):
            m.clean_state(streams=[-3] if t == 4 else [2])  # negative indices count from the end
        y = m.forward_step(x[:, :, t])
        _check_step(m, y, expected[t], t)
        seen_mixed |= isinstance(m.last_valid, tuple)
    assert seen_mixed


@pytest.mark.parametrize("dims", DIMS)
def test_per_stream_forward_steps_once_back_in_phase(dims, run_steps):
    m = make_conv(dims, k=3, p=0)  # delay 2, stride 1: phases re-align after the warm-up
    x = make_clip(dims, batch=3, steps=16)
    expected = _per_stream_expectations(m, x, {1: 5}, run_steps)
    m.forward_steps(x[:, :, :5])
    m.clean_state(streams=[1])
    for t in range(5, 8):
        _check_step(m, m.forward_step(x[:, :, t]), expected[t], t)
    assert m.last_valid is True
    rest = m.forward_steps(x[:, :, 8:])
    assert_close(rest, torch.stack([torch.cat(expected[t], 0) for t in range(8, 16)], 2), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_per_stream_reset_with_zero_delay_allows_forward_steps(dims, run_steps):
    m = make_conv(dims, k=3, p=2)  # delay 0: a reset stream outputs at once
    x = make_clip(dims, batch=3, steps=10)
    expected = _per_stream_expectations(m, x, {1: 4}, run_steps)
    m.forward_steps(x[:, :, :4])
    m.clean_state(streams=[1])
    rest = m.forward_steps(x[:, :, 4:])
    assert_close(rest, torch.stack([torch.cat(expected[t], 0) for t in range(4, 10)], 2), **TOL)


@pytest.mark.parametrize("pad_end", [False, True])
@pytest.mark.parametrize("dims", DIMS)
def test_forward_steps_on_streams_at_different_phases_raises(dims, pad_end):
    m = make_conv(dims, k=3, s=2, p=1)
    x = make_clip(dims, batch=3)
    m.forward_steps(x[:, :, :5])
    m.clean_state(streams=[1])
    m.forward_step(x[:, :, 5])
    state = m.get_state()
    with pytest.raises(RuntimeError, match=f"Conv{dims}d.*forward_step"):
        m.forward_steps(x[:, :, 6:], pad_end=pad_end)
    assert m.get_state() is state  # the failed call stored nothing


def test_per_stream_clean_state_rejects_bad_index():
    m = make_conv(1)
    m.forward_step(torch.randn(3, 4))
    with pytest.raises(IndexError):
        m.clean_state(streams=[3])


# --------------------------------------------------------------------------------------------
# Shape changes mid-stream
# --------------------------------------------------------------------------------------------
def _changed_steps(dims):
    b, c, spatial = 2, 4, SPATIAL_SIZE[dims]
    yield "batch", torch.randn((3, c) + spatial)
    yield "channels", torch.randn((b, 5) + spatial)
    if dims > 1:
        yield "spatial", torch.randn((b, c) + tuple(s + 1 for s in spatial))


@pytest.mark.parametrize("method", ["forward_step", "forward_steps"])
@pytest.mark.parametrize("dims", DIMS)
def test_shape_change_mid_stream_raises(dims, method):
    m = make_conv(dims, k=3, p=1)
    x = make_clip(dims)
    m.forward_steps(x[:, :, :4])
    old = tuple(x[:, :, 0].shape)
    for what, step in _changed_steps(dims):
        state = m.get_state()
        arg = step if method == "forward_step" else step.unsqueeze(2).repeat_interleave(3, 2)
        with pytest.raises(StepShapeError) as info:
            getattr(m, method)(arg)
        msg = str(info.value)
        assert f"Conv{dims}d" in msg, what
        assert str(tuple(step.shape)) in msg and str(old) in msg, (what, msg)
        assert isinstance(info.value, RuntimeError)
        assert m.get_state() is state
    # the stream itself is intact
    assert_close(m.forward_steps(x[:, :, 4:], pad_end=True), m.forward(x)[:, :, 3:], **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_new_shape_after_clean_state(dims, run_steps):
    m = make_conv(dims, k=3, s=2, p=1)
    m.forward_steps(make_clip(dims))
    spatial = tuple(s + 2 for s in SPATIAL_SIZE[dims])
    x = make_clip(dims, batch=3, spatial=spatial)
    with pytest.raises(StepShapeError):
        m.forward_step(x[:, :, 0])
    m.clean_state()
    outs = [o for o in run_steps(m, x) if o is not None]
    assert_close(torch.stack(outs, 2), m.forward(x)[:, :, : len(outs)], **TOL)


# --------------------------------------------------------------------------------------------
# dtype / device of a live state
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", DIMS)
def test_to_float64_mid_stream_converts_the_state(dims, tensors_of):
    m = make_conv(dims, k=3, s=2, p=1, d=2)
    x = make_clip(dims, steps=14)
    m.forward_steps(x[:, :, :5])
    m.forward_step(x[:, :, 5])
    assert all(t.dtype == torch.float32 for t in tensors_of(m.get_state()))
    m.to(torch.float64)
    state = m.get_state()
    assert tensors_of(state) and all(t.dtype == torch.float64 for t in tensors_of(state))
    xd = x.double()
    y = m.forward(xd)
    assert y.dtype == torch.float64
    for t in range(6, 9):
        out = m.forward_step(xd[:, :, t])
        if out is not None:
            assert out.dtype == torch.float64
            assert_close(out, y[:, :, frame_index(t, m)], **TOL)
    rest = m.forward_steps(xd[:, :, 9:], pad_end=True)
    assert rest.dtype == torch.float64
    assert_close(rest, y[:, :, -rest.shape[2] :], **TOL)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_mid_stream_moves_the_state(tensors_of):
    m = make_conv(3, k=3, p=1)
    x = make_clip(3, steps=8)
    m.forward_steps(x[:, :, :4])
    m.to("cuda")
    assert all(t.is_cuda for t in tensors_of(m.get_state()))
    xc = x.cuda()
    assert_close(m.forward_steps(xc[:, :, 4:], pad_end=True), m.forward(xc)[:, :, 3:])


@pytest.mark.parametrize("dims", DIMS)
def test_state_bookkeeping_is_host_side(dims, tensors_of):
    """``continual-inference`` 1.2.4 keeps its step counters in 0-d int64 tensors that it reads in
    Python ``if``s (a device sync per step on GPU). Ours holds only frame tensors."""
    m = make_conv(dims, k=3, s=2, p=1)
    x = make_clip(dims, batch=3)
    m.forward_steps(x[:, :, :5])
    m.clean_state(streams=[1])
    m.forward_step(x[:, :, 5])
    for state in (m.get_state(),):
        tensors = tensors_of(state)
        assert tensors and all(t.is_floating_point() and t.dim() == x.dim() - 1 for t in tensors)


# --------------------------------------------------------------------------------------------
# forward_step works on the stored states in place (StoredStates)
# --------------------------------------------------------------------------------------------
class _FailOnStep(co.Lambda):
    """Passes frames through; raises on the step numbered ``fail_at`` (0-based)."""

    def __init__(self, fail_at):
        super().__init__(lambda x: x)
        self.fail_at, self.seen = fail_at, 0

    def _frame(self, x):
        self.seen += 1
        if self.seen - 1 == self.fail_at:
            raise RuntimeError("step failed on purpose")
        return x


def _tensors(state):
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [t for s in state for t in _tensors(s)]
    return []


@torch.no_grad()
def test_a_step_that_raises_leaves_every_state_as_it_was():
    torch.manual_seed(0)
    net = co.Sequential(
        co.Conv3d(2, 3, 3, padding=(1, 1, 1)),
        co.BroadcastReduce(co.Conv3d(3, 3, 3, padding=(1, 1, 1)), co.Delay(1)),
        _FailOnStep(fail_at=-1),
        co.Conv3d(3, 2, (2, 1, 1)),
    )
    frames = torch.randn(2, 2, 6, 4, 4)
    for t in range(4):
        net.forward_step(frames[:, :, t])
    before = net.get_state()
    net[2].fail_at = net[2].seen  # its next frame: after both convs stepped on this one
    with pytest.raises(RuntimeError, match="on purpose"):
        net.forward_step(frames[:, :, 4])
    after = net.get_state()
    assert len(_tensors(after)) == len(_tensors(before)) > 0
    assert all(a is b for a, b in zip(_tensors(after), _tensors(before)))
    assert after[0].counter == before[0].counter  # the first conv stepped, then was put back

    # stepping on from the restored state gives what a network that never failed gives
    net[2].fail_at = -1
    twin = copy.deepcopy(net)
    net.set_state(before)
    twin.set_state(before)
    assert_close(net.forward_step(frames[:, :, 4]), twin.forward_step(frames[:, :, 4]))


class _IndexingSequential(co.Sequential):
    """A subclass that overrides ``_step`` and reads its state as a tuple."""

    def _step(self, x, state, valid=True):
        if state is not None:
            assert isinstance(state, tuple) and len(state) == len(self)
        return super()._step(x, state, valid)


class _CountingState(co.Conv3d):
    """A leaf with its own ``get_state``/``set_state`` (counted)."""

    gets = sets = 0

    def get_state(self):
        type(self).gets += 1
        return super().get_state()

    def set_state(self, state):
        type(self).sets += 1
        super().set_state(state)


def test_modules_that_own_their_state_api_are_stepped_through_it():
    from cozoo.co.module import routes_child_states

    assert routes_child_states(co.Sequential) and routes_child_states(co.BroadcastReduce)
    assert not routes_child_states(_IndexingSequential)  # overrides _step, does not declare it
    torch.manual_seed(0)
    conv = _CountingState(2, 2, 3, padding=(1, 1, 1))
    reference = co.Sequential(nn.Conv3d(2, 2, 3, padding=(1, 1, 1)), nn.ReLU())
    reference[0].load_state_dict(conv.state_dict())
    net = co.Sequential(_IndexingSequential(conv, nn.ReLU()))
    clip = torch.randn(1, 2, 5, 3, 3)
    gets = type(conv).gets
    steps = [net.forward_step(clip[:, :, t]) for t in range(5)]
    assert type(conv).gets - gets == 5 and type(conv).sets == 5
    expected = reference.forward(clip)
    assert_close(torch.stack(steps[1:], 2), expected[:, :, :4])
    # update_state=False never stores anything
    sets = type(conv).sets
    net.forward_step(clip[:, :, 0], update_state=False)
    assert type(conv).sets == sets
