"""Continual multi-head attention against torch.nn.MultiheadAttention on sliding windows."""

import math

import pytest
import torch
from torch import nn

from cozoo.co.attention import RetroactiveMultiheadAttention, SingleOutputMultiheadAttention
from cozoo.co.module import StepShapeError, call_mode

E, H, L, N = 8, 2, 5, 3
T = 4 * L + 3  # several windows: the memories wrap around a few times
ATOL = 1e-5

CLASSES = [RetroactiveMultiheadAttention, SingleOutputMultiheadAttention]
LAYOUTS = ["time_first", "batch_first", "embed_dim_second"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall under CPU contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def layout_kwargs(layout):
    return {
        "time_first": dict(batch_first=False),
        "batch_first": dict(batch_first=True),
        "embed_dim_second": dict(batch_first=True, embed_dim_second=True),
    }[layout]


def to_layout(x, layout):
    """Canonical (N, T, E) -> the layout's clip."""
    if layout == "time_first":
        return x.transpose(0, 1)
    if layout == "embed_dim_second":
        return x.transpose(1, 2)
    return x


def retro_step_canonical(y, layout):
    """A retroactive step output in the layout -> (N, L, E)."""
    if layout == "time_first":
        return y.transpose(0, 1)
    if layout == "embed_dim_second":
        return y.transpose(1, 2)
    return y


def steps_canonical(y, layout, retro):
    """forward_steps output in the layout -> (N, T', L, E) (retro) or (N, T', E)."""
    if retro:
        if layout == "time_first":
            return y.permute(2, 0, 1, 3)
        if layout == "embed_dim_second":
            return y.permute(0, 2, 3, 1)
        return y
    if layout == "time_first":
        return y.transpose(0, 1)
    if layout == "embed_dim_second":
        return y.transpose(1, 2)
    return y


def make(cls, seed=0, dtype=torch.float32, **kwargs):
    """A torch MHA (batch_first) and a continual copy built from it."""
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(E, H, batch_first=True, dtype=dtype)
    return ref, cls.build_from(ref, sequence_len=kwargs.pop("sequence_len", L), **kwargs)


def windows(ref, q, k=None, v=None, seq_len=L):
    """torch outputs on every sliding window of canonical clips (N, T, E): (N, T-L+1, L, E)."""
    k = q if k is None else k
    v = q if v is None else v
    n, t, _ = q.shape
    count = t - seq_len + 1

    def cut(x):
        return x.unfold(1, seq_len, 1).permute(0, 1, 3, 2).reshape(n * count, seq_len, -1)

    with torch.no_grad():
        out, _ = ref(cut(q), cut(k), cut(v))
    return out.reshape(n, count, seq_len, -1)


def stream(seed=1, steps=T, batch=N, scale=1.0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, E, generator=gen, dtype=dtype) * scale


def query_position(query_index, seq_len=L):
    return query_index % seq_len


# --------------------------------------------------------------------------------------------
# forward is torch's
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
def test_forward_bit_equal_to_torch(batch_first):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(E, H, batch_first=batch_first)
    retro = RetroactiveMultiheadAttention.build_from(ref, sequence_len=L)
    single = SingleOutputMultiheadAttention.build_from(ref, L, single_output_forward=False)
    shape = (N, T, E) if batch_first else (T, N, E)
    q, k, v = torch.randn(shape), torch.randn(shape), torch.randn(shape)
    for module in (retro, single):
        target = ref(q, k, v)
        out = module(q, k, v)
        assert torch.equal(out[0], target[0]) and torch.equal(out[1], target[1])
        target = ref(q, q, q)
        out = module(q)  # key and value default to the query
        assert torch.equal(out[0], target[0]) and torch.equal(out[1], target[1])
        assert module.get_state() is None  # forward never touches the step state


@pytest.mark.parametrize("query_index", [-1, 2, 0, -3])
def test_single_output_forward_selects_the_query(query_index):
    ref, module = make(SingleOutputMultiheadAttention, query_index=query_index)
    x = torch.randn(N, L, E)
    target_out, target_weights = ref(x[:, [query_index]], x, x)
    out, weights = module(x)
    assert out.shape == (N, 1, E) and weights.shape == (N, 1, L)
    assert torch.equal(out, target_out) and torch.equal(weights, target_weights)
    # an attention mask's row is selected with the query
    mask = torch.randn(L, L)
    out, _ = module(x, attn_mask=mask)
    assert torch.equal(out, ref(x[:, [query_index]], x, x, attn_mask=mask[[query_index]])[0])


def test_forward_returns_attn_mask_false_and_embed_dim_second():
    ref, module = make(
        RetroactiveMultiheadAttention, embed_dim_second=True, forward_returns_attn_mask=False
    )
    x = torch.randn(N, T, E)
    out = module(x.transpose(1, 2))
    assert isinstance(out, torch.Tensor) and out.shape == (N, E, T)
    torch.testing.assert_close(out.transpose(1, 2), ref(x, x, x)[0])


def test_params_and_state_dict_equal_torch():
    ref = nn.MultiheadAttention(E, H)
    for cls in CLASSES:
        module = cls.build_from(ref, L)
        assert list(module.state_dict()) == list(ref.state_dict())
        for a, b in zip(module.parameters(), ref.parameters()):
            assert torch.equal(a, b)
        assert sum(p.numel() for p in module.parameters()) == sum(
            p.numel() for p in ref.parameters()
        )
        loaded = cls(E, H, sequence_len=L)
        loaded.load_state_dict(ref.state_dict())  # weights load either way


def test_properties():
    for cls in CLASSES:
        module = cls(E, H, sequence_len=L)
        assert module.receptive_field == L and module.delay == L - 1
        assert module.stride == (1,) and module.padding == (0,)
    # the delay is the number of leading Nones, whatever query_index is
    assert SingleOutputMultiheadAttention(E, H, sequence_len=L, query_index=1).delay == L - 1


def test_invalid_arguments():
    for cls in CLASSES:
        with pytest.raises(ValueError, match="sequence_len"):
            cls(E, H)
        with pytest.raises(ValueError, match="sequence_len"):
            cls(E, H, sequence_len=0)
        with pytest.raises(ValueError, match="batch_first"):
            cls(E, H, sequence_len=L, batch_first=False, embed_dim_second=True)
    with pytest.raises(ValueError, match="query_index"):
        SingleOutputMultiheadAttention(E, H, sequence_len=L, query_index=L)
    with pytest.raises(TypeError, match="MultiheadAttention"):
        RetroactiveMultiheadAttention.build_from(nn.Linear(E, E), L)


# --------------------------------------------------------------------------------------------
# steps equal torch on the sliding window
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "cls, query_index",
    [
        (RetroactiveMultiheadAttention, None),
        (SingleOutputMultiheadAttention, -1),
        (SingleOutputMultiheadAttention, 2),
        (SingleOutputMultiheadAttention, 0),
    ],
)
def test_steps_equal_torch_on_every_window(cls, query_index, layout):
    retro = cls is RetroactiveMultiheadAttention
    extra = {} if retro else {"query_index": query_index}
    ref, module = make(cls, **layout_kwargs(layout), **extra)
    x = stream()
    target = windows(ref, x)  # (N, T-L+1, L, E)
    if not retro:
        target = target[:, :, query_position(query_index)]
    for t in range(T):
        y = module.forward_step(x[:, t])
        if t < L - 1:
            assert y is None
            continue
        expected_shape = {"time_first": (L, N, E), "batch_first": (N, L, E)}.get(layout, (N, E, L))
        assert y.shape == (expected_shape if retro else (N, E))
        got = retro_step_canonical(y, layout) if retro else y
        assert got.shape == target[:, t - L + 1].shape
        torch.testing.assert_close(got, target[:, t - L + 1], atol=ATOL, rtol=0)

    # forward_steps on a fresh module: one output per full window, in the layout
    module.clean_state()
    y = module.forward_steps(to_layout(x, layout))
    torch.testing.assert_close(steps_canonical(y, layout, retro), target, atol=ATOL, rtol=0)

    # chained chunks of any size continue the stream
    module.clean_state()
    cuts = [0, 1, L - 1, L + 2, 2 * L + 1, T]
    parts = [module.forward_steps(to_layout(x[:, a:b], layout)) for a, b in zip(cuts, cuts[1:])]
    parts = [steps_canonical(p, layout, retro) for p in parts if p is not None]
    torch.testing.assert_close(torch.cat(parts, 1), target, atol=ATOL, rtol=0)


@pytest.mark.parametrize("cls", CLASSES)
def test_warm_up_then_steps_equal_torch(cls):
    """forward_steps(L-1) -> None, forward_steps(L) == torch, next steps == torch shifted."""
    ref, module = make(cls, batch_first=False)
    x = stream(steps=L + 2)
    retro = cls is RetroactiveMultiheadAttention
    target = windows(ref, x)
    if not retro:
        target = target[:, :, -1]

    def canonical_step(y):
        return y.transpose(0, 1) if retro else y

    assert module.forward_steps(x[:, : L - 1].transpose(0, 1)) is None
    torch.testing.assert_close(canonical_step(module.forward_step(x[:, L - 1])), target[:, 0])
    torch.testing.assert_close(canonical_step(module.forward_step(x[:, L])), target[:, 1])
    module.clean_state()
    y = module.forward_steps(x[:, :L].transpose(0, 1))  # exactly L steps: one output
    assert y.shape == ((1, L, N, E) if retro else (1, N, E))
    module.clean_state()
    module.forward_steps(x[:, : L - 1].transpose(0, 1))
    y = module.forward_steps(x[:, L - 1 :].transpose(0, 1))
    assert y.shape[0] == 3


@pytest.mark.parametrize("cls", CLASSES)
def test_separate_key_value_and_kdim_vdim(cls):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(E, H, kdim=6, vdim=3, batch_first=True)
    module = cls.build_from(ref, L, batch_first=True)
    q, k, v = torch.randn(N, T, E), torch.randn(N, T, 6), torch.randn(N, T, 3)
    target = windows(ref, q, k, v)
    if cls is SingleOutputMultiheadAttention:
        target = target[:, :, -1]
    outs = [module.forward_step(q[:, t], k[:, t], v[:, t]) for t in range(T)]
    assert all(o is None for o in outs[: L - 1])
    torch.testing.assert_close(torch.stack(outs[L - 1 :], 1), target, atol=ATOL, rtol=0)
    module.clean_state()
    torch.testing.assert_close(module.forward_steps(q, k, v), target, atol=ATOL, rtol=0)


def test_stacked_retroactive_then_single_output_equals_two_torch_mhas():
    torch.manual_seed(0)
    r1 = nn.MultiheadAttention(E, H, batch_first=True)
    r2 = nn.MultiheadAttention(E, H, batch_first=True)
    c1 = RetroactiveMultiheadAttention.build_from(
        r1, sequence_len=L, forward_returns_attn_mask=False
    )
    c2 = SingleOutputMultiheadAttention.build_from(
        r2, sequence_len=L, query_index=-1, forward_returns_attn_mask=False
    )
    x = stream()
    for t in range(T):
        window = c1.forward_step(x[:, t])  # (N, L, E): layer 1 on the window, all tokens
        if t < L - 1:
            assert window is None
            continue
        w = x[:, t - L + 1 : t + 1]
        with torch.no_grad():
            h, _ = r1(w, w, w)
            target, _ = r2(h, h, h)
        out = c2(window)  # single output forward: the last token only
        torch.testing.assert_close(out[:, 0], target[:, -1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("seq_len", [1, 2])
def test_short_windows(seq_len):
    for cls in CLASSES:
        ref, module = make(cls, sequence_len=seq_len, batch_first=True)
        x = stream(steps=7)
        target = windows(ref, x, seq_len=seq_len)
        if cls is SingleOutputMultiheadAttention:
            target = target[:, :, -1]
        y = module.forward_steps(x)
        torch.testing.assert_close(y, target, atol=ATOL, rtol=0)


# --------------------------------------------------------------------------------------------
# numerics
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_large_inputs_stay_exact(cls):
    """Inputs x10 make the attention nearly one-hot: raw exp overflows and subtracting a
    dominant leaving key cancels; the continual update must still match torch."""
    ref, module = make(cls, batch_first=True)
    x = stream(steps=6 * L, scale=10.0)
    target = windows(ref, x)
    if cls is SingleOutputMultiheadAttention:
        target = target[:, :, -1]
    y = module.forward_steps(x)
    assert not torch.isnan(y).any()
    torch.testing.assert_close(y, target, atol=1e-4, rtol=0)


def test_long_stream_does_not_drift():
    """20 000 steps of retroactive updates, fp32: every window still equals torch."""
    torch.manual_seed(0)
    e, heads, seq_len, steps = 4, 2, 4, 20_000
    ref = nn.MultiheadAttention(e, heads, batch_first=True)
    module = RetroactiveMultiheadAttention.build_from(ref, seq_len, batch_first=True)
    x = torch.randn(2, steps, e)
    with torch.no_grad():
        y = module.forward_steps(x)  # (2, steps-L+1, L, e)
        cut = x.unfold(1, seq_len, 1).permute(0, 1, 3, 2).reshape(-1, seq_len, e)
        target = ref(cut, cut, cut)[0].reshape(y.shape)
    assert (y - target).abs().max().item() < 1e-5
    assert (y[:, -100:] - target[:, -100:]).abs().max().item() < 1e-5


def test_gradients_flow_through_steps():
    ref, module = make(RetroactiveMultiheadAttention, batch_first=True)
    x = stream(steps=2 * L).requires_grad_()
    module.forward_steps(x).square().sum().backward()  # no in-place modification errors
    assert torch.isfinite(x.grad).all() and module.in_proj_weight.grad is not None


# --------------------------------------------------------------------------------------------
# state handling
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_update_state_false(cls):
    ref, module = make(cls, batch_first=True)
    x = stream(steps=2 * L)
    # on a fresh module (continual-inference raised UnboundLocalError)
    assert module.forward_step(x[:, 0], update_state=False) is None
    assert module.get_state() is None
    module.forward_steps(x[:, : 2 * L - 1])
    before = module.get_state()
    y1 = module.forward_step(x[:, -1], update_state=False)
    assert module.get_state() is before
    y2 = module.forward_steps(x[:, -1:], update_state=False)
    assert module.get_state() is before
    y3 = module.forward_step(x[:, -1])
    torch.testing.assert_close(y2[:, 0], y1)
    assert torch.equal(y1, y3)


@pytest.mark.parametrize("cls", CLASSES)
def test_snapshot_restores_the_stream(cls):
    ref, module = make(cls, batch_first=True)
    x = stream(steps=3 * L)
    module.forward_steps(x[:, :L])
    snapshot = module.get_state()
    first = module.forward_steps(x[:, L:])
    module.set_state(snapshot)
    assert torch.equal(module.forward_steps(x[:, L:]), first)


@pytest.mark.parametrize("cls", CLASSES)
def test_per_stream_clean_state(cls):
    ref, module = make(cls, batch_first=True)
    retro = cls is RetroactiveMultiheadAttention
    x = stream(steps=3 * L)
    reset_at = L + 2
    for t in range(reset_at):
        module.forward_step(x[:, t])
    module.clean_state(streams=[1])
    fresh = cls.build_from(ref, L, batch_first=True)  # what stream 1 should now behave like
    for t in range(reset_at, 3 * L):
        y = module.forward_step(x[:, t])
        y_fresh = fresh.forward_step(x[1:2, t])
        w = x[:, t - L + 1 : t + 1]
        with torch.no_grad():
            target = ref(w, w, w)[0]
        target = target if retro else target[:, -1]
        for i in (0, 2):  # the other streams continue untouched
            torch.testing.assert_close(y[i], target[i], atol=ATOL, rtol=0)
        if y_fresh is None:
            assert torch.isnan(y[1]).all()
            assert module.last_valid == (True, False, True)
        else:
            torch.testing.assert_close(y[1:2], y_fresh, atol=ATOL, rtol=0)
    with pytest.raises(IndexError):
        module.clean_state(streams=[N])


@pytest.mark.parametrize("cls", CLASSES)
def test_batch_size_change_raises(cls):
    ref, module = make(cls, batch_first=True)
    module.forward_step(torch.randn(N, E))
    with pytest.raises(StepShapeError):
        module.forward_step(torch.randn(N + 1, E))
    with pytest.raises(StepShapeError):
        module.forward_steps(torch.randn(N + 1, 2, E))
    module.clean_state()
    module.forward_step(torch.randn(N + 1, E))


@pytest.mark.parametrize("cls", CLASSES)
def test_step_modes_refuse_what_they_cannot_do(cls):
    ref, module = make(cls, batch_first=True)
    x = torch.randn(N, E)
    mask = torch.zeros(L, L)
    with pytest.raises(ValueError, match="attn_mask"):
        module.forward_step(x, attn_mask=mask)
    with pytest.raises(ValueError, match="key_padding_mask"):
        module.forward_steps(x[:, None], key_padding_mask=torch.zeros(N, 1, dtype=torch.bool))
    with pytest.raises(TypeError, match="unexpected"):
        module.forward_step(x, bogus=1)
    module.forward_step(x, need_weights=False)  # accepted: steps return no weights
    with pytest.raises(ValueError, match="query"):
        module.forward_step(torch.randn(N, 2, E))  # a clip is not a step

    with pytest.raises(NotImplementedError, match="add_zero_attn"):
        cls(E, H, sequence_len=L, add_zero_attn=True).forward_step(x)
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        cls(E, H, sequence_len=L, add_bias_kv=True).forward_steps(x[None])
    dropping = cls(E, H, dropout=0.1, sequence_len=L)
    dropping(torch.randn(T, N, E))  # forward applies it, like torch
    with pytest.raises(RuntimeError, match="dropout"):
        dropping.forward_step(x)
    dropping.eval()
    dropping.forward_step(x)


def test_forward_step_via_call_mode():
    ref, module = make(SingleOutputMultiheadAttention)
    x = stream()
    with call_mode("forward_steps"):
        y = module(x, pad_end=True)  # pad_end is accepted (no end padding for attention)
    module.clean_state()
    with call_mode("forward_step"):
        steps = [module(x[:, t]) for t in range(T)]
    torch.testing.assert_close(torch.stack(steps[L - 1 :], 1), y)


# --------------------------------------------------------------------------------------------
# reference-layout pure steps
# --------------------------------------------------------------------------------------------
def naive_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v for (B, n, d) tensors."""
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), -1)
    return weights @ v


def test_reference_retroactive_sdpa_step():
    from cozoo.co.multihead_attention.retroactive_mha import (
        _scaled_dot_product_attention_default_state,
        _scaled_dot_product_attention_step,
    )

    torch.manual_seed(0)
    b, n, e = 2, 10, 5
    q1, k1, v1 = torch.randn(b, n, e), torch.randn(b, n, e), torch.randn(b, n, e)
    q_step, k_step, v_step = torch.randn(b, e), torch.randn(b, e), torch.randn(b, e)
    q2 = torch.cat([q1[:, 1:], q_step[:, None]], 1)
    k2 = torch.cat([k1[:, 1:], k_step[:, None]], 1)
    v2 = torch.cat([v1[:, 1:], v_step[:, None]], 1)

    # a state built by hand from the full first window
    scores = torch.exp(q1 @ k1.transpose(1, 2) / math.sqrt(e))
    state = (
        scores.sum(-1, keepdim=True)[:, 1:],
        (scores @ v1)[:, 1:],
        q1[:, 1:] / math.sqrt(e),
        k1.transpose(1, 2),
        v1,
    )
    out, new_state = _scaled_dot_product_attention_step(state, q_step, k_step, v_step)
    assert [s.shape for s in new_state] == [s.shape for s in state]
    torch.testing.assert_close(out, naive_attention(q2, k2, v2))

    # from the zero state
    state = _scaled_dot_product_attention_default_state(b, n, e, 1, dtype=torch.float32)
    assert [s.shape for s in state] == [
        (b, n - 1, 1),
        (b, n - 1, e),
        (b, n - 1, e),
        (b, e, n),
        (b, n, e),
    ]
    for i in range(n):
        out, state = _scaled_dot_product_attention_step(state, q1[:, i], k1[:, i], v1[:, i])
    torch.testing.assert_close(out, naive_attention(q1, k1, v1))
    out, state = _scaled_dot_product_attention_step(state, q_step, k_step, v_step)
    torch.testing.assert_close(out, naive_attention(q2, k2, v2))

    with pytest.raises(ValueError):
        _scaled_dot_product_attention_step(state, q_step, k_step, v_step, attn_mask=torch.ones(1))
    with pytest.raises(ValueError):
        _scaled_dot_product_attention_step(state, q_step, k_step, v_step, dropout_p=0.1)


def test_reference_single_output_sdpa_step():
    from cozoo.co.multihead_attention.single_output_mha import (
        _scaled_dot_product_attention_default_state,
        _scaled_dot_product_attention_step,
    )

    torch.manual_seed(0)
    b, n, e = 2, 6, 4
    q, k, v = torch.randn(b, 2 * n, e), torch.randn(b, 2 * n, e), torch.randn(b, 2 * n, e)
    for query_index in (-1, 1):
        state = _scaled_dot_product_attention_default_state(b, n, e, 1, query_index=query_index)
        position = query_index % n
        for t in range(2 * n):
            out, state = _scaled_dot_product_attention_step(state, q[:, t], k[:, t], v[:, t])
            if t >= n - 1:
                w = slice(t - n + 1, t + 1)
                target = naive_attention(q[:, w], k[:, w], v[:, w])[:, position : position + 1]
                torch.testing.assert_close(out, target)


def test_module_paths_of_continual_inference():
    from cozoo.co import multihead_attention
    from cozoo.co.multihead_attention import retroactive_mha, single_output_mha

    assert multihead_attention.RetroactiveMultiheadAttention is RetroactiveMultiheadAttention
    assert retroactive_mha.RetroactiveMultiheadAttention is RetroactiveMultiheadAttention
    assert single_output_mha.SingleOutputMultiheadAttention is SingleOutputMultiheadAttention


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------
def test_flops_follow_the_active_mode():
    e, heads, n = 8, 2, 16
    d = e // heads
    retro = RetroactiveMultiheadAttention(e, heads, sequence_len=n)
    single = SingleOutputMultiheadAttention(e, heads, sequence_len=n)
    proj, bias, out = e * e, e, e * (e + 1)
    regular = 3 * n * (proj + bias) + heads * (2 * n * n * d + 2 * n * d) + n * out
    assert retro.flops() == regular
    assert single.flops() == (1 + 2 * n) * (proj + bias) + heads * (2 * n * d + 2 * d) + out
    retro_step = 3 * (proj + bias) + heads * (7 * n * d + 2 * n - 3 * d) + n * out
    single_step = 3 * (proj + bias) + heads * (2 * n * d + 2 * d) + out
    with call_mode("forward_step"):
        assert retro.flops() == retro_step and single.flops() == single_step
    retro.call_mode = "forward_steps"  # per step, like forward_step
    assert retro.flops() == retro_step
    with call_mode("forward"):  # the context wins over the property
        assert retro.flops() == regular
    retro.call_mode = "forward"
    # the savings the paper reports
    assert retro_step < 0.5 * regular
    assert single.flops() < 0.5 * regular
    assert single_step < 0.1 * regular
    for module in (retro, single):
        muls = module.flops()
        assert module.flops(include_muls=True, include_adds=True) > muls
        assert module.flops(include_muls=True, include_exps=True) > muls
        assert module.flops(include_muls=False, include_exps=True) == heads * (
            n * n if module is retro else n
        )


# --------------------------------------------------------------------------------------------
# export: the step as a function of tensors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_tensor_mode_step_function(cls):
    from cozoo.co.export import StepFunction, initial_state

    # export discovers the state with continual-layout clips (N, E, T): embed_dim_second
    ref, module = make(cls, batch_first=True, embed_dim_second=True)
    module.eval()
    x = stream(steps=2 * L)
    expected = [module.forward_step(x[:, t]) for t in range(2 * L)]
    step = StepFunction(module, x[:, 0])
    state = initial_state(module, x[:, 0])
    for t in range(2 * L):
        y, valid, *state = step(x[:, t], *state)
        assert bool(valid.all()) == (t >= L - 1) and not (t < L - 1 and valid.any())
        if t >= L - 1:
            torch.testing.assert_close(y, expected[t])


@pytest.mark.parametrize("cls", CLASSES)
def test_streams_without_a_frame_keep_their_state(cls):
    """Upstream modules may hand a step with per-stream validity (after a per-stream reset)."""
    ref, module = make(cls, batch_first=True)
    x = stream(steps=2 * L + 2)
    state = None
    for t in range(L + 1):
        _, _, state = module._step(x[:, t], state, True)
    _, valid, state = module._step(x[:, L + 1], state, (True, False, True))
    assert valid == (True, False, True)
    y, _, _ = module._step(x[:, L + 2], state, True)
    skipped = cls.build_from(ref, L, batch_first=True)
    target = skipped.forward_steps(torch.cat([x[1:2, : L + 1], x[1:2, L + 2 : L + 3]], 1))
    torch.testing.assert_close(y[1], target[0, -1], atol=ATOL, rtol=0)
    full = cls.build_from(ref, L, batch_first=True).forward_steps(x[:, : L + 3])
    torch.testing.assert_close(y[0], full[0, -1], atol=ATOL, rtol=0)
