"""RecyclingPositionalEncoding: cyclic positions in every mode, and the fixed cyclic table."""

import pytest
import torch

from cozoo.co.container import Sequential
from cozoo.co.module import StepShapeError
from cozoo.co.positional_encoding import (
    CyclicPositionalEncoding,
    RecyclingPositionalEncoding,
    cyclic_positional_table,
)

E, K, N = 6, 7, 3


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall under CPU contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def table(pe):
    return pe.pe.weight if pe.learned else pe.pe.pattern


def expected(x, pe, start):
    """x (N, E, T) plus the rows of positions start, start+1, ... (mod K)."""
    rows = (start + torch.arange(x.shape[2])) % K
    return x + table(pe)[rows].T.unsqueeze(0)


@pytest.mark.parametrize("learned", [True, False])
def test_forward_update_index_steps_zero_matches_steps(learned):
    pe = RecyclingPositionalEncoding(E, K, learned=learned, forward_update_index_steps=0)
    x = torch.randn(N, E, K)
    out = pe.forward(x)
    torch.testing.assert_close(out, expected(x, pe, 0))
    torch.testing.assert_close(pe.forward_steps(x[:, :, :-1]), out[:, :, :-1])
    torch.testing.assert_close(pe.forward_step(x[:, :, -1]), out[:, :, -1])


@pytest.mark.parametrize("learned", [True, False])
def test_forward_advances_the_offset(learned):
    pe = RecyclingPositionalEncoding(E, K, learned=learned)
    x = torch.randn(N, E, 4)
    for call in range(K + 2):  # each forward shifts the encoding by one (training augmentation)
        torch.testing.assert_close(pe(x), expected(x, pe, call % K))
    pe.clean_state()
    torch.testing.assert_close(pe(x, update_index_steps=3), expected(x, pe, 0))
    torch.testing.assert_close(pe(x), expected(x, pe, 3))
    with pytest.raises(ValueError, match="num_embeds"):
        pe(torch.randn(N, E, K + 1))


def test_steps_wrap_around_and_continue():
    pe = RecyclingPositionalEncoding(E, K)
    x = torch.randn(N, E, 3 * K + 2)  # forward_steps streams any length
    torch.testing.assert_close(pe.forward_steps(x), expected(x, pe, 0))
    pe.clean_state()
    parts = [pe.forward_steps(x[:, :, :5]), pe.forward_steps(x[:, :, 5:9])]
    parts += [pe.forward_step(x[:, :, t]).unsqueeze(2) for t in range(9, x.shape[2])]
    torch.testing.assert_close(torch.cat(parts, 2), expected(x, pe, 0))
    assert pe.delay == 0 and pe.receptive_field == 1


def test_update_state_false_and_state_index():
    pe = RecyclingPositionalEncoding(E, K)
    x = torch.randn(N, E, 4)
    pe.forward_steps(x)
    assert int(pe.state_index) == 4
    pe.forward_step(x[:, :, 0], update_state=False)
    pe.forward_steps(x, update_state=False)
    assert int(pe.state_index) == 4
    pe.state_index = 6
    torch.testing.assert_close(pe.forward_step(x[:, :, 0]), expected(x[:, :, :1], pe, 6)[:, :, 0])
    assert int(pe.state_index) == 0  # 7 mod K
    pe.clean_state()
    assert int(pe.state_index) == 0 and pe.get_state() is None


def test_per_stream_clean_state():
    pe = RecyclingPositionalEncoding(E, K)
    x = torch.randn(N, E, 8)
    pe.forward_steps(x[:, :, :5])
    pe.clean_state(streams=[1])
    y = pe.forward_step(x[:, :, 5])
    rows = table(pe)
    torch.testing.assert_close(y[0], x[0, :, 5] + rows[5])
    torch.testing.assert_close(y[1], x[1, :, 5] + rows[0])  # restarted at position 0
    torch.testing.assert_close(y[2], x[2, :, 5] + rows[5])
    y = pe.forward_steps(x[:, :, 6:8])
    torch.testing.assert_close(y[1], x[1, :, 6:8] + rows[1:3].T)
    torch.testing.assert_close(y[0], x[0, :, 6:8] + rows[[6, 0]].T)  # 7 wraps to 0
    assert pe.state_index.tolist() == [1, 3, 1]
    with pytest.raises(StepShapeError):
        pe.forward_step(x[:2, :, 0])


def test_position_is_part_of_a_network_snapshot():
    net = Sequential(RecyclingPositionalEncoding(E, K))
    x = torch.randn(N, E, 5)
    net.forward_steps(x[:, :, :3])
    snapshot = net.get_state()
    first = net.forward_steps(x[:, :, 3:])
    net.set_state(snapshot)
    assert torch.equal(net.forward_steps(x[:, :, 3:]), first)


def test_parameters_and_buffers():
    learned = RecyclingPositionalEncoding(E, K)
    assert list(learned.state_dict()) == ["pe.weight"]
    assert sum(p.numel() for p in learned.parameters()) == K * E
    fixed = RecyclingPositionalEncoding(E, K, learned=False)
    assert isinstance(fixed.pe, CyclicPositionalEncoding)
    assert list(fixed.state_dict()) == ["pe.pattern"] and not list(fixed.parameters())


def test_cyclic_table_golden_values():
    """Values measured on ``continual-inference`` 1.2.4's table of the same size."""
    big = cyclic_positional_table(127, 1024)
    for (row, col), value in {
        (0, 600): -0.879764,
        (0, 601): 0.459412,
        (0, 1023): 0.997479,
        (5, 700): -0.552607,
        (63, 1000): -0.313098,
        (126, 513): 0.996864,
    }.items():
        assert big[row, col].item() == pytest.approx(value, abs=2e-6)
    assert int((big.abs().amax(0) < 1e-6).sum()) == 6
    assert big.abs().max().item() == pytest.approx(0.9976, abs=1e-4)
    small = cyclic_positional_table(64, 1024)
    for (row, col), value in {
        (0, 600): -0.873444,
        (5, 700): -0.333652,
        (63, 1000): 0.379005,
    }.items():
        assert small[row, col].item() == pytest.approx(value, abs=2e-6)
    assert int((small.abs().amax(0) < 1e-6).sum()) == 13
    # cyclic: the last row is as close to the first as neighbours are to each other
    cos = torch.nn.functional.cosine_similarity
    assert cos(big[0], big[-1], 0) > 0.98 and cos(big[0], big[1], 0) > 0.98


def test_tensor_mode_step_function():
    from cozoo.co.export import StepFunction, initial_state

    pe = RecyclingPositionalEncoding(E, K, learned=False)
    x = torch.randn(N, E, K + 3)
    expected_steps = [pe.forward_step(x[:, :, t]) for t in range(K + 3)]
    step = StepFunction(pe, x[:, :, 0])
    state = initial_state(pe, x[:, :, 0])
    for t in range(K + 3):
        y, valid, *state = step(x[:, :, t], *state)
        assert valid.all()
        torch.testing.assert_close(y, expected_steps[t])
