"""The append-only key/value window of single-output attention steps: the state's keys are
views of one buffer (no window copy per step), and snapshots stay snapshots when a restored
older state steps again (a branch), when a step peeks with ``update_state=False`` and when the
buffer fills up."""

from __future__ import annotations

import copy

import torch

from cozoo import co
from cozoo.co.attention.window_memory import CAPACITY, WindowMemory, append_to_window

L, E, HEADS = 5, 8, 2


def _attention() -> co.SingleOutputMultiheadAttention:
    torch.manual_seed(0)
    return co.SingleOutputMultiheadAttention(E, HEADS, sequence_len=L, batch_first=True).eval()


def _reference(module, tokens: torch.Tensor, t: int) -> torch.Tensor:
    """torch's attention on the window ending at step t, read at the newest token."""
    window = tokens[:, t - L + 1 : t + 1]
    out = torch.nn.MultiheadAttention.forward(module, window, window, window, need_weights=False)
    return out[0][:, -1]


def test_the_window_is_a_view_of_one_buffer_and_steps_stay_exact():
    module = _attention()
    tokens = torch.randn(3, 4 * CAPACITY * L, E)
    with torch.no_grad():
        for t in range(tokens.shape[1]):
            y = module.forward_step(tokens[:, t])
            if t >= L - 1:
                torch.testing.assert_close(y, _reference(module, tokens, t), rtol=0, atol=1e-6)
            keys = module.get_state().keys
            if t >= L:  # past the first step: every kept key is a view of one buffer
                assert len({k.untyped_storage().data_ptr() for k in keys}) == 1


def test_branches_from_a_snapshot_and_peeks_do_not_disturb_each_other():
    module = _attention()
    tokens = torch.randn(2, 60, E)
    other = torch.randn(2, 60, E)
    with torch.no_grad():
        for t in range(20):
            module.forward_step(tokens[:, t])
        snapshot = module.get_state()
        peek = module.forward_step(other[:, 20], update_state=False)
        first = [module.forward_step(tokens[:, t]) for t in range(20, 40)]
        module.set_state(snapshot)
        second = [module.forward_step(other[:, t]) for t in range(20, 40)]
        module.set_state(snapshot)
        again = [module.forward_step(tokens[:, t]) for t in range(20, 40)]
    mixed = torch.cat([tokens[:, :20], other[:, 20:40]], 1)
    torch.testing.assert_close(second[0], peek, rtol=0, atol=0)
    torch.testing.assert_close(torch.stack(again), torch.stack(first), rtol=0, atol=0)
    for t in (20, 23, 39):
        torch.testing.assert_close(second[t - 20], _reference(module, mixed, t), atol=1e-6, rtol=0)
        torch.testing.assert_close(first[t - 20], _reference(module, tokens, t), atol=1e-6, rtol=0)


def test_append_falls_back_to_stacking_for_entries_that_are_not_buffer_views():
    memory = tuple(torch.randn(2, HEADS, 4) for _ in range(L - 1))
    new = torch.randn(2, HEADS, 4)
    with torch.inference_mode():  # evaluation and the benchmark step in inference mode
        window, following = append_to_window(memory, new)
        torch.testing.assert_close(window, torch.stack(memory + (new,), 2), rtol=0, atol=0)
        assert isinstance(following, WindowMemory) and following.buffer.shape[2] == CAPACITY * L
        newer = torch.randn(2, HEADS, 4)
        window2, after = append_to_window(following, newer)
        assert after.buffer is following.buffer  # appended in place: no new buffer
        assert window2.data_ptr() == window.data_ptr() + window.stride(2) * window.element_size()
        branch, other = append_to_window(following, -newer)  # the slot is taken: a branch
        assert other.buffer is not following.buffer
        torch.testing.assert_close(window2[:, :, -1], newer, rtol=0, atol=0)
        torch.testing.assert_close(branch[:, :, -1], -newer, rtol=0, atol=0)
        torch.testing.assert_close(window2[:, :, :-1], branch[:, :, :-1], rtol=0, atol=0)
    plain = copy.deepcopy(after)  # copies and row selections rebuild plain tuples
    assert type(plain) is tuple and len(plain) == L - 1
