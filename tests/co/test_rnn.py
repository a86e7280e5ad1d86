"""Continual RNN / GRU / LSTM against torch.nn, in all three modes."""

import math
from unittest import mock

import pytest
import torch
from torch import nn

from cozoo.co.module import StepShapeError, call_mode
from cozoo.co.rnn import GRU, LSTM, RNN

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

C, H, T = 3, 4, 9
TIGHT = dict(rtol=1e-12, atol=1e-12)  # float64: step-wise and clip-wise runs agree to rounding

# (id, continual class, torch class, extra constructor kwargs)
CASES = [
    ("rnn_tanh", RNN, nn.RNN, {}),
    ("rnn_relu", RNN, nn.RNN, {"nonlinearity": "relu"}),
    ("gru", GRU, nn.GRU, {}),
    ("lstm", LSTM, nn.LSTM, {}),
    ("lstm_proj", LSTM, nn.LSTM, {"proj_size": 2}),
]
IDS = [c[0] for c in CASES]


def make(case, num_layers=2, batch_first=True, dtype=torch.float64, seed=0):
    _, cls, tcls, kwargs = case
    torch.manual_seed(seed)
    ref = tcls(C, H, num_layers=num_layers, batch_first=batch_first, dtype=dtype, **kwargs)
    return ref, cls.build_from(ref)


def clip(batch=2, steps=T, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, C, steps, generator=gen, dtype=dtype)


def torch_run(ref, x, hx=None):
    """torch's (B, H_out, T) output and final hidden for a (B, C, T) clip."""
    out, hidden = ref(x.transpose(1, 2), hx)
    return out.transpose(1, 2), hidden


def as_tuple(hidden):
    return (hidden,) if isinstance(hidden, torch.Tensor) else tuple(hidden)


def assert_states_equal(a, b, exact=True):
    a, b = as_tuple(a), as_tuple(b)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        if exact:
            assert torch.equal(u, v)
        else:
            torch.testing.assert_close(u, v, **TIGHT)


def step_all(co, x, **kwargs):
    return torch.stack([co.forward_step(x[:, :, t], **kwargs) for t in range(x.shape[2])], 2)


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return request.param


# ---- equality with torch ----------------------------------------------------------------------
def test_forward_equals_torch(case):
    ref, co = make(case)
    x = clip()
    target, target_hidden = torch_run(ref, x)
    out, hidden = co.forward(x)
    assert out.shape == (2, ref.proj_size or H, T)
    assert torch.equal(out, target)
    assert_states_equal(hidden, target_hidden)
    assert co.get_state() is None  # forward never touches the state
    # with a given hidden state (torch's format)
    out2, _ = co.forward(x, target_hidden)
    assert torch.equal(out2, torch_run(ref, x, target_hidden)[0])
    assert not torch.allclose(out2, out)


def test_forward_steps_pad_end_equals_forward(case):
    ref, co = make(case)
    x = clip()
    target, target_hidden = co.forward(x)
    out = co.forward_steps(x, pad_end=True)
    torch.testing.assert_close(out, target, **TIGHT)
    assert_states_equal(co.get_state(), target_hidden, exact=False)


def test_step_by_step_equals_forward(case):
    _, co = make(case)
    x = clip()
    target, target_hidden = co.forward(x)
    torch.testing.assert_close(step_all(co, x), target, **TIGHT)
    assert_states_equal(co.get_state(), target_hidden, exact=False)


def test_chunks_and_steps_continue(case):
    _, co = make(case)
    x = clip()
    target, _ = co.forward(x)
    a = co.forward_steps(x[:, :, :4])
    b = co.forward_step(x[:, :, 4])
    c = co.forward_steps(x[:, :, 5:])
    torch.testing.assert_close(torch.cat([a, b.unsqueeze(2), c], 2), target, **TIGHT)


def test_forward_steps_is_one_torch_call(case):
    _, cls, tcls, _ = case
    _, co = make(case)
    with mock.patch.object(tcls, "forward", autospec=True, side_effect=tcls.forward) as spy:
        co.forward_steps(clip(steps=12))
    assert spy.call_count == 1


def test_batch_size_one_and_float32(case):
    ref, co = make(case, dtype=torch.float32, num_layers=1)
    x = clip(batch=1, dtype=torch.float32)
    target, _ = torch_run(ref, x)
    torch.testing.assert_close(step_all(co, x), target, rtol=1e-5, atol=1e-6)
    assert co.get_state()[0].dtype == torch.float32


# ---- state handling ---------------------------------------------------------------------------
def test_update_state_false(case):
    _, co = make(case)
    x = clip()
    co.forward_steps(x[:, :, :3])
    before = co.get_state()
    saved = tuple(t.clone() for t in before)
    y_peek = co.forward_step(x[:, :, 3], update_state=False)
    ys_peek = co.forward_steps(x[:, :, 3:], update_state=False)
    assert co.get_state() is before
    assert_states_equal(before, saved)
    y = co.forward_step(x[:, :, 3])
    assert torch.equal(y_peek, y)
    assert not torch.equal(co.get_state()[0], saved[0])
    co.set_state(before)
    torch.testing.assert_close(co.forward_steps(x[:, :, 3:]), ys_peek, rtol=0, atol=0)


def test_update_state_false_on_fresh_module(case):
    _, co = make(case)
    x = clip()
    y = co.forward_step(x[:, :, 0], update_state=False)
    assert co.get_state() is None
    torch.testing.assert_close(y, co.forward(x)[0][:, :, 0], **TIGHT)


def test_snapshot_restore(case):
    _, co = make(case)
    x = clip()
    co.forward_steps(x[:, :, :4])
    snap = co.get_state()
    saved = tuple(t.clone() for t in snap)

    def continue_from_here():
        chunk = co.forward_steps(x[:, :, 4:7])
        return torch.cat([chunk, co.forward_step(x[:, :, 7]).unsqueeze(2)], 2)

    first = continue_from_here()
    co.set_state(snap)
    second = continue_from_here()
    assert torch.equal(first, second)
    assert_states_equal(snap, saved)  # continuing never wrote into the snapshot
    target, _ = co.forward(x)
    torch.testing.assert_close(first, target[:, :, 4:8], **TIGHT)


@pytest.mark.parametrize("mode", ["step", "steps"])
def test_per_stream_reset(case, mode):
    _, co = make(case)
    x = clip(batch=2)
    k = 4
    co.forward_steps(x[:, :, :k])
    co.clean_state(streams=[1])
    if mode == "step":
        after = step_all(co, x[:, :, k:])
    else:
        after = co.forward_steps(x[:, :, k:])
    # stream 0: as if nothing happened
    uninterrupted, _ = co.forward(x[:1])
    torch.testing.assert_close(after[:1], uninterrupted[:, :, k:], **TIGHT)
    # stream 1: a fresh stream on the frames after the reset
    fresh, fresh_hidden = co.forward(x[1:, :, k:])
    torch.testing.assert_close(after[1:], fresh, **TIGHT)
    for got, want in zip(co.get_state(), as_tuple(fresh_hidden)):
        torch.testing.assert_close(got[:, 1:], want, **TIGHT)


def test_per_stream_reset_zeroes_rows_immediately(case):
    _, co = make(case)
    co.forward_steps(clip(batch=3))
    before = co.get_state()
    co.clean_state(streams=[-1, 0])
    after = co.get_state()
    for old, new in zip(before, after):
        assert torch.count_nonzero(new[:, 0]) == 0 and torch.count_nonzero(new[:, 2]) == 0
        assert torch.equal(new[:, 1], old[:, 1])
        assert torch.count_nonzero(old[:, 0]) > 0  # the old state was not written into
    with pytest.raises(IndexError, match="out of range"):
        co.clean_state(streams=[3])


def test_clean_state_on_fresh_module(case):
    _, co = make(case)
    co.clean_state()
    co.clean_state(streams=[0])
    assert co.get_state() is None


def test_mixed_valid_keeps_rows_of_invalid_streams(case):
    _, co = make(case)
    x = clip(batch=2)
    co.forward_steps(x[:, :, :3])
    state = co.get_state()
    y, valid, nxt = co._step(x[:, :, 3], state, (True, False))
    assert valid == (True, False)
    for old, new in zip(state, nxt):
        assert torch.equal(new[:, 1], old[:, 1])
        assert not torch.equal(new[:, 0], old[:, 0])
    _, _, full = co._step(x[:, :, 3], state, True)
    for part, new in zip(full, nxt):
        assert torch.equal(new[:, 0], part[:, 0])
    assert torch.equal(y[0], co.forward_step(x[:, :, 3])[0])
    # stepping on from a mixed state: stream 1 continues from its kept rows
    co.set_state(nxt)
    y1 = co.forward_step(x[:, :, 4])
    co.set_state(state)
    torch.testing.assert_close(y1[1], co.forward_step(x[:, :, 4])[1], **TIGHT)
    # from a fresh state, an invalid stream stays at zeros; no stream at all: nothing happens
    _, _, nxt = co._step(x[:, :, 0], None, (False, True))
    assert all(torch.count_nonzero(t[:, 0]) == 0 and torch.count_nonzero(t[:, 1]) > 0 for t in nxt)
    assert co._step(x[:, :, 0], state, False) == (None, False, state)


def test_batch_size_change_raises(case):
    _, co = make(case)
    co.forward_steps(clip(batch=2, steps=3))
    with pytest.raises(StepShapeError, match="clean_state"):
        co.forward_step(clip(batch=3)[:, :, 0])
    with pytest.raises(StepShapeError):
        co.forward_steps(clip(batch=1))
    co.clean_state()
    assert co.forward_step(clip(batch=3)[:, :, 0]).shape[0] == 3


def test_wrong_input_layout_raises(case):
    _, co = make(case)
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        co.forward_steps(torch.randn(2, T, C, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        co.forward_step(torch.randn(2, C, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        co.forward(torch.randn(C, T, dtype=torch.float64))


def test_empty_chunk(case):
    _, co = make(case)
    co.forward_steps(clip(steps=2))
    state = co.get_state()
    assert co.forward_steps(clip(steps=0)) is None
    assert co.get_state() is state


def test_reference_api_set_state_with_hidden(case):
    """The reference suite's RNN test: build_from, forward with hidden, set_state(hidden)."""
    ref, co = make(case, num_layers=4)
    x = clip(batch=1, steps=10)
    _, hidden = torch_run(ref, x)
    target, _ = torch_run(ref, x, hidden)
    out, _ = co.forward(x, hidden)
    assert torch.equal(out, target)
    co.set_state(hidden)  # bare tensor for RNN/GRU, (h, c) for LSTM
    torch.testing.assert_close(co.forward_steps(x[:, :, :-1]), target[:, :, :-1], **TIGHT)
    torch.testing.assert_close(co.forward_step(x[:, :, -1]), target[:, :, -1], **TIGHT)
    co.clean_state()
    co.forward_steps(x)
    assert_states_equal(co.get_state(), hidden, exact=False)
    assert co.get_state()[0].shape == (4, 1, ref.proj_size or H)


def test_set_state_validation(case):
    _, co = make(case)
    n_state = 2 if case[1] is LSTM else 1
    h_out = case[3].get("proj_size") or H
    with pytest.raises(ValueError, match="num_layers"):
        co.set_state(tuple(torch.zeros(3, 1, h_out) for _ in range(n_state)))
    with pytest.raises(TypeError, match="a state is"):
        co.set_state((torch.zeros(2, 1, h_out),) * (n_state + 1))
    if case[1] is LSTM:
        with pytest.raises(TypeError, match=r"\(h, c\)"):
            co.set_state(torch.zeros(2, 1, h_out))
    co.set_state([torch.zeros(2, 1, s) for s in co._state_sizes()])
    assert isinstance(co.get_state(), tuple)


def test_explicit_state_step(case):
    """The functional ``_forward_step`` also takes a bare hidden / list state."""
    ref, co = make(case)
    x = clip(batch=1)
    _, hidden = torch_run(ref, x)
    target, _ = torch_run(ref, x[:, :, :1], hidden)
    hx = hidden if isinstance(hidden, torch.Tensor) else list(hidden)
    y, state = co._forward_step(x[:, :, 0], hx)
    torch.testing.assert_close(y, target[:, :, 0], **TIGHT)
    assert isinstance(state, tuple) and co.get_state() is None


# ---- construction -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [RNN, GRU, LSTM])
def test_refuses_bidirectional_and_batch_second(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: bidirectional=True"):
        cls(C, H, bidirectional=True)
    with pytest.raises(ValueError, match=f"{cls.__name__}: batch_first=False"):
        cls(C, H, batch_first=False)
    torch_cls = {RNN: nn.RNN, GRU: nn.GRU, LSTM: nn.LSTM}[cls]
    with pytest.raises(ValueError, match=f"{cls.__name__}.build_from: .*bidirectional"):
        cls.build_from(torch_cls(C, H, bidirectional=True))
    with pytest.raises(TypeError, match="expects an nn"):
        cls.build_from(nn.Linear(C, H))


def test_build_from_batch_second_module(case):
    ref, co = make(case, batch_first=False)
    assert co.batch_first is True
    x = clip()
    target, _ = ref(x.permute(2, 0, 1))  # (T, B, C)
    torch.testing.assert_close(co.forward(x)[0], target.permute(1, 2, 0), **TIGHT)


def test_weights_and_properties(case):
    ref, co = make(case)
    assert list(co.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.equal(co.state_dict()[key], value)
    assert co.receptive_field == math.inf
    assert co.delay == 0 and co.stride == (1,) and co.padding == (0,)
    assert "batch_first=True" in repr(co)
    # a fresh torch module loads a continual module's weights
    fresh = case[2](C, H, num_layers=2, batch_first=True, dtype=torch.float64, **case[3])
    fresh.load_state_dict(co.state_dict())
    x = clip()
    torch.testing.assert_close(torch_run(fresh, x)[0], co.forward(x)[0], rtol=0, atol=0)


def test_positional_signature_matches_reference():
    rnn = RNN(2, 3, 2, "relu", False, 0.0)
    assert (rnn.num_layers, rnn.nonlinearity, rnn.bias) == (2, "relu", False)
    lstm = LSTM(2, 3, 1, True, 0.0, 2)
    assert lstm.proj_size == 2
    gru = GRU(2, 3, 3, False)
    assert (gru.num_layers, gru.bias) == (3, False)


# ---- device / dtype / modes / autograd ----------------------------------------------------------
def test_state_follows_module_dtype_conversion(case):
    _, co = make(case)
    co.forward_steps(clip())
    co.float()
    assert all(t.dtype == torch.float32 for t in co.get_state())
    y = co.forward_step(clip(dtype=torch.float32)[:, :, 0])
    assert y.dtype == torch.float32


def test_call_mode_dispatch(case):
    _, co = make(case)
    x = clip()
    target, _ = co.forward(x)
    with call_mode("forward_steps"):
        a = co(x[:, :, :5])
    co.call_mode = "forward_step"
    b = co(x[:, :, 5])
    torch.testing.assert_close(torch.cat([a, b.unsqueeze(2)], 2), target[:, :, :6], **TIGHT)


def test_backward_through_steps(case):
    _, co = make(case)
    x = clip().requires_grad_()
    y = co.forward_steps(x[:, :, :5])
    z = co.forward_step(x[:, :, 5])
    (y.sum() + z.sum()).backward()
    assert x.grad is not None and torch.count_nonzero(x.grad[:, :, :6]) > 0
    assert torch.count_nonzero(x.grad[:, :, 6:]) == 0


# ---- inside containers --------------------------------------------------------------------------
def test_in_sequential_with_conv(case):
    from cozoo.co.container import Sequential
    from cozoo.co.conv import Conv1d

    _, co = make(case)
    torch.manual_seed(2)
    conv = Conv1d(C, C, 3, padding=1, dtype=torch.float64)
    net = Sequential(conv, co)
    x = clip()
    target = co.forward(conv.forward(x))[0]
    torch.testing.assert_close(net.forward(x), target, **TIGHT)
    torch.testing.assert_close(net.forward_steps(x, pad_end=True), target, **TIGHT)
    net.clean_state()
    outs = [net.forward_step(x[:, :, t]) for t in range(T)]
    assert outs[0] is None  # the conv's delay of 1 step
    torch.testing.assert_close(torch.stack(outs[1:], 2), target[:, :, :-1], **TIGHT)


def test_in_broadcast_reduce_with_conv():
    from cozoo.co.container import BroadcastReduce
    from cozoo.co.conv import Conv1d

    net = BroadcastReduce(GRU(C, C), Conv1d(C, C, 3, padding=1), reduce="sum")
    x = clip(dtype=torch.float32)
    assert net.forward(x).shape == (2, C, T)
