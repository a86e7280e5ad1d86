"""Continual transformer encoder layers and encoders against torch.nn on sliding windows."""

import pytest
import torch
from torch import nn

from cozoo.co.container import Sequential
from cozoo.co.linear import Linear
from cozoo.co.module import StepShapeError
from cozoo.co.positional_encoding import RecyclingPositionalEncoding
from cozoo.co.transformer import (
    MhaType,
    RegularTransformerEncoderLayer,
    RetroactiveTransformerEncoderLayer,
    SingleOutputTransformerEncoderLayer,
    TransformerEncoder,
    TransformerEncoderLayerFactory,
)

E, H, L, N, FF = 8, 2, 4, 2, 16
T = 4 * L + 3  # streams several windows long: every ring wraps around
ATOL = 2e-5

VARIANTS = {
    "relu_post_norm": dict(activation="relu", norm_first=False),
    "gelu_pre_norm": dict(activation="gelu", norm_first=True),
    "gelu_module_no_bias": dict(activation=nn.GELU(), norm_first=False, bias=False),
}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall under CPU contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def perturb(module, seed=0):
    """torch deep-copies one layer num_layers times: make the layers (and norms) differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return module


def torch_layer(activation="relu", norm_first=False, bias=True, dropout=0.0):
    return nn.TransformerEncoderLayer(
        E, H, dim_feedforward=FF, dropout=dropout, activation=activation, batch_first=True,
        norm_first=norm_first, bias=bias,
    )  # fmt: skip


def torch_encoder(num_layers, final_norm=True, **variant):
    torch.manual_seed(0)
    encoder = nn.TransformerEncoder(
        torch_layer(**variant),
        num_layers,
        norm=nn.LayerNorm(E) if final_norm else None,
        enable_nested_tensor=False,
    )
    return perturb(encoder)


def stream(steps=T, batch=N, seed=1):
    return torch.randn(batch, E, steps, generator=torch.Generator().manual_seed(seed))


def cut_windows(x, seq_len=L):
    """(N, E, T) -> (N*(T-L+1), L, E) channel-last windows."""
    n, e, _ = x.shape
    return x.unfold(2, seq_len, 1).permute(0, 2, 3, 1).reshape(-1, seq_len, e)


def on_windows(module, x, seq_len=L):
    """torch ``module`` (batch first, channel last) on every window: (N, T', L, E)."""
    n = x.shape[0]
    with torch.no_grad():
        out = module(cut_windows(x, seq_len))
    return out.reshape(n, -1, seq_len, out.shape[-1])


# --------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_encoder_steps_equal_torch_on_every_window(num_layers, variant):
    ref = torch_encoder(num_layers, **VARIANTS[variant])
    co = TransformerEncoder.build_from(ref, sequence_len=L)
    x = stream()
    target = on_windows(ref, x)[:, :, -1].transpose(1, 2)  # (N, E, T-L+1): newest token

    outputs = [co.forward_step(x[:, :, t]) for t in range(T)]
    assert all(y is None for y in outputs[: L - 1])
    torch.testing.assert_close(torch.stack(outputs[L - 1 :], 2), target, atol=ATOL, rtol=0)

    co.clean_state()
    torch.testing.assert_close(co.forward_steps(x), target, atol=ATOL, rtol=0)

    co.clean_state()  # chunks of any size continue the stream
    cuts = [0, 2, L, L + 1, 3 * L, T]
    parts = [co.forward_steps(x[:, :, a:b]) for a, b in zip(cuts, cuts[1:])]
    got = torch.cat([p for p in parts if p is not None], 2)
    torch.testing.assert_close(got, target, atol=ATOL, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_encoder_forward_equals_torch(num_layers):
    ref = torch_encoder(num_layers)
    co = TransformerEncoder.build_from(ref, sequence_len=L)
    for length in (L, T):  # forward is torch's computation on the whole clip
        x = stream(steps=length)
        with torch.no_grad():
            target = ref(x.transpose(1, 2)).transpose(1, 2)
        out = co(x)
        if num_layers == 1:
            assert out.shape == (N, E, length)
            torch.testing.assert_close(out, target, atol=ATOL, rtol=0)
        else:  # two or more layers: the last token only, as in continual-inference
            assert out.shape == (N, E, 1)
            torch.testing.assert_close(out, target[:, :, -1:], atol=ATOL, rtol=0)
    assert co.get_state() is None


def test_encoder_forward_with_masks():
    ref = torch_encoder(2)
    co = TransformerEncoder.build_from(ref, sequence_len=L)
    x = stream(steps=6)
    padding = torch.tensor([[True, False, False, False, False, False]] * N)
    mask = torch.triu(torch.ones(6, 6, dtype=torch.bool), 1)  # True: not attended
    with torch.no_grad():
        target = ref(x.transpose(1, 2), mask=mask, src_key_padding_mask=padding)
    out = co(x, mask=mask, src_key_padding_mask=padding)
    torch.testing.assert_close(out[:, :, 0], target[:, -1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_step_after_warm_up_equals_forward(num_layers):
    ref = torch_encoder(num_layers, final_norm=num_layers == 1)
    co = TransformerEncoder.build_from(ref, sequence_len=L)
    x = stream(steps=L)
    last = co(x)[:, :, -1]
    assert co.forward_steps(x[:, :, :-1]) is None  # warm-up
    y = co.forward_step(x[:, :, -1], update_state=False)
    torch.testing.assert_close(y, last, atol=ATOL, rtol=0)
    y2 = co.forward_steps(x[:, :, -1:])  # the same step again, now through forward_steps
    torch.testing.assert_close(y2[:, :, 0], y, atol=ATOL, rtol=0)
    assert co.forward_steps(x[:, :, -1:], pad_end=True).shape == (N, E, 1)  # pad_end accepted


def test_state_dict_and_parameters_are_torchs():
    ref = torch_encoder(3, activation=nn.PReLU(), norm_first=True)
    co = TransformerEncoder.build_from(ref, sequence_len=L)
    assert list(co.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in co.parameters()) == sum(p.numel() for p in ref.parameters())
    for a, b in zip(co.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    # and weights load directly from torch into a factory-built encoder
    factory = TransformerEncoderLayerFactory(
        E, H, FF, dropout=0.0, activation=nn.PReLU(), sequence_len=L, norm_first=True
    )
    fresh = TransformerEncoder(factory, 3, norm=nn.LayerNorm(E))
    fresh.load_state_dict(ref.state_dict())
    x = stream()
    torch.testing.assert_close(fresh.forward_steps(x), co.forward_steps(x))


def test_gelu_string_is_gelu():
    torch.manual_seed(0)
    ref = torch_layer(activation="gelu")
    for activation in ("gelu", "GELU"):
        layer = SingleOutputTransformerEncoderLayer(
            E, H, FF, dropout=0.0, activation=activation, sequence_len=L
        )
        layer.load_state_dict(ref.state_dict())
        x = stream(steps=L)
        with torch.no_grad():
            target = ref(x.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(layer(x), target, atol=ATOL, rtol=0)
    relu = SingleOutputTransformerEncoderLayer(E, H, FF, dropout=0.0, sequence_len=L)
    relu.load_state_dict(ref.state_dict())
    assert not torch.allclose(relu(x), target, atol=1e-3)
    with pytest.raises(ValueError, match="activation"):
        SingleOutputTransformerEncoderLayer(E, H, activation="swish", sequence_len=L)


def test_properties_and_layer_plan():
    factory = TransformerEncoderLayerFactory(E, H, FF, sequence_len=L)
    for num_layers in (1, 2, 3, 5):
        co = TransformerEncoder(factory, num_layers)
        assert co.delay == L - 1 and co.receptive_field == L
        kinds = [type(layer) for layer in co.layers]
        if num_layers == 1:
            assert kinds == [SingleOutputTransformerEncoderLayer]
        else:
            assert kinds[0] is RetroactiveTransformerEncoderLayer
            assert kinds[1:-1] == [RegularTransformerEncoderLayer] * (num_layers - 2)
            assert kinds[-1] is SingleOutputTransformerEncoderLayer
            assert co.layers[-1].window_input and co.layers[-1].single_output_forward
    assert isinstance(factory("regular"), RegularTransformerEncoderLayer)
    assert isinstance(factory(MhaType.RETROACTIVE), RetroactiveTransformerEncoderLayer)
    assert factory("single_output_forward").single_output_forward
    assert not factory("single_output").single_output_forward


def test_invalid_arguments():
    with pytest.raises(ValueError, match="sequence_len"):
        TransformerEncoderLayerFactory(E, H)
    with pytest.raises(TypeError, match="build_from"):
        TransformerEncoder(torch_layer(), 2)
    with pytest.raises(ValueError, match="num_layers"):
        TransformerEncoder(TransformerEncoderLayerFactory(E, H, sequence_len=L), 0)
    with pytest.raises(TypeError, match="TransformerEncoder"):
        TransformerEncoder.build_from(torch_layer(), L)
    with pytest.raises(ValueError, match="MhaType|valid"):
        TransformerEncoderLayerFactory(E, H, sequence_len=L)("bogus")


def test_per_stream_clean_state_and_batch_change():
    ref = torch_encoder(2)
    co = TransformerEncoder.build_from(ref, sequence_len=L)
    x = stream(steps=3 * L, batch=3)
    reset_at = L + 1
    for t in range(reset_at):
        co.forward_step(x[:, :, t])
    co.clean_state(streams=[1])
    fresh = TransformerEncoder.build_from(ref, sequence_len=L)
    target = on_windows(ref, x)[:, :, -1]  # (3, T', E)
    for t in range(reset_at, 3 * L):
        y = co.forward_step(x[:, :, t])
        y_fresh = fresh.forward_step(x[1:2, :, t])
        for i in (0, 2):
            torch.testing.assert_close(y[i], target[i, t - L + 1], atol=ATOL, rtol=0)
        if y_fresh is None:
            assert torch.isnan(y[1]).all()
        else:
            torch.testing.assert_close(y[1:2], y_fresh, atol=ATOL, rtol=0)
    with pytest.raises(StepShapeError):
        co.forward_step(x[:2, :, 0])
    co.clean_state()
    co.forward_step(x[:2, :, 0])


def test_dropout_in_step_modes_needs_eval():
    co = TransformerEncoder(TransformerEncoderLayerFactory(E, H, FF, 0.1, sequence_len=L), 2)
    x = stream()
    co(x)  # training forward applies dropout like torch
    with pytest.raises(RuntimeError, match="dropout"):
        co.forward_step(x[:, :, 0])
    co.eval()
    assert co.forward_steps(x).shape == (N, E, T - L + 1)


def test_gradients_flow_through_steps():
    co = TransformerEncoder.build_from(torch_encoder(2), sequence_len=L)
    x = stream(steps=2 * L).requires_grad_()
    co.forward_steps(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert co.layers[0].self_attn.in_proj_weight.grad is not None


# --------------------------------------------------------------------------------------------
# single layers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query_index", [-1, 1])
@pytest.mark.parametrize("norm_first", [False, True])
def test_single_output_layer(query_index, norm_first):
    torch.manual_seed(0)
    ref = perturb(torch_layer(norm_first=norm_first))
    layer = SingleOutputTransformerEncoderLayer(
        E, H, FF, dropout=0.0, sequence_len=L, query_index=query_index, norm_first=norm_first
    )
    layer.load_state_dict(ref.state_dict())
    assert layer.delay == L - 1 and layer.receptive_field == L
    x = stream()
    target = on_windows(ref, x)[:, :, query_index].transpose(1, 2)  # (N, E, T')
    steps = [layer.forward_step(x[:, :, t]) for t in range(T)]
    torch.testing.assert_close(torch.stack(steps[L - 1 :], 2), target, atol=ATOL, rtol=0)
    layer.clean_state()
    torch.testing.assert_close(layer.forward_steps(x), target, atol=ATOL, rtol=0)
    # single_output_forward: forward computes only the token at query_index
    single = SingleOutputTransformerEncoderLayer(
        E, H, FF, dropout=0.0, sequence_len=L, query_index=query_index,
        norm_first=norm_first, single_output_forward=True,
    )  # fmt: skip
    single.load_state_dict(ref.state_dict())
    torch.testing.assert_close(single(x[:, :, :L]), target[:, :, :1], atol=ATOL, rtol=0)
    # as the last layer of a deep encoder: windows in, one token out
    single.window_input = True
    assert single.delay == 0
    windows = x.unfold(2, L, 1)  # (N, E, T', L)
    torch.testing.assert_close(single.forward_steps(windows), target, atol=ATOL, rtol=0)
    torch.testing.assert_close(single.forward_step(windows[:, :, 3]), target[:, :, 3])
    with pytest.raises(ValueError, match="window"):
        single.forward_step(x[:, :, 0])
    with pytest.raises(ValueError, match="window_input"):
        layer.forward_step(windows[:, :, 0])


@pytest.mark.parametrize("norm_first", [False, True])
def test_retroactive_layer_returns_the_updated_window(norm_first):
    torch.manual_seed(0)
    ref = perturb(torch_layer(activation="gelu", norm_first=norm_first))
    layer = RetroactiveTransformerEncoderLayer(
        E, H, FF, dropout=0.0, activation="gelu", sequence_len=L, norm_first=norm_first
    )
    layer.load_state_dict(ref.state_dict())
    x = stream()
    target = on_windows(ref, x).permute(0, 3, 1, 2)  # (N, E, T', L)
    steps = [layer.forward_step(x[:, :, t]) for t in range(T)]
    assert all(s is None for s in steps[: L - 1]) and steps[-1].shape == (N, E, L)
    torch.testing.assert_close(torch.stack(steps[L - 1 :], 2), target, atol=ATOL, rtol=0)
    layer.clean_state()
    torch.testing.assert_close(layer.forward_steps(x), target, atol=ATOL, rtol=0)
    with torch.no_grad():
        full = ref(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(layer(x), full, atol=ATOL, rtol=0)


def test_regular_layer_maps_windows():
    torch.manual_seed(0)
    ref = perturb(torch_layer())
    layer = RegularTransformerEncoderLayer(E, H, FF, dropout=0.0, sequence_len=L)
    layer.load_state_dict(ref.state_dict())
    assert layer.delay == 0 and layer.receptive_field == 1
    x = stream()
    windows = x.unfold(2, L, 1)
    target = on_windows(ref, x).permute(0, 3, 1, 2)
    torch.testing.assert_close(layer.forward_steps(windows), target, atol=ATOL, rtol=0)
    torch.testing.assert_close(layer.forward_step(windows[:, :, 2]), target[:, :, 2])
    with pytest.raises(ValueError, match="windows"):
        layer.forward_step(x[:, :, 0])


# --------------------------------------------------------------------------------------------
# in a network (the CoOadTR pattern) and exported
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_layers", [1, 2])
def test_in_a_network_with_recycling_positions(num_layers):
    torch.manual_seed(0)
    channels, classes, k = 5, 3, 2 * L - 1
    factory = TransformerEncoderLayerFactory(E, H, FF, 0.0, "gelu", sequence_len=L)
    net = Sequential(
        Linear(channels, E, channel_dim=1),
        RecyclingPositionalEncoding(E, k, forward_update_index_steps=0),
        TransformerEncoder(factory, num_layers, norm=nn.LayerNorm(E)),
        Linear(E, classes, channel_dim=1),
    )
    x = torch.randn(N, channels, T)
    steps = [net.forward_step(x[:, :, t]) for t in range(T)]
    pe = net[1]
    for t in range(L - 1, T):
        pe.state_index = (t - L + 1) % k  # the window's first token had this position
        target = net(x[:, :, t - L + 1 : t + 1])[:, :, -1]
        torch.testing.assert_close(steps[t], target, atol=ATOL, rtol=0)


def test_tensor_mode_step_function():
    from cozoo.co.export import StepFunction, initial_state

    co = TransformerEncoder.build_from(torch_encoder(3), sequence_len=L).eval()
    x = stream(steps=2 * L)
    expected = [co.forward_step(x[:, :, t]) for t in range(2 * L)]
    step = StepFunction(co, x[:, :, 0])
    state = initial_state(co, x[:, :, 0])
    for t in range(2 * L):
        y, valid, *state = step(x[:, :, t], *state)
        assert bool(valid.all()) == (t >= L - 1)
        if t >= L - 1:
            torch.testing.assert_close(y, expected[t])


@pytest.mark.filterwarnings("ignore")  # tracer and exporter chatter
def test_onnx_export_of_a_deep_encoder(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from cozoo.co import onnx as co_onnx

    torch.manual_seed(0)
    factory = TransformerEncoderLayerFactory(E, H, FF, 0.0, "gelu", sequence_len=L)
    net = Sequential(
        RecyclingPositionalEncoding(E, 2 * L - 1, learned=False),
        TransformerEncoder(factory, 3, norm=nn.LayerNorm(E)),
        Linear(E, 3, channel_dim=1),
    ).eval()
    x = stream(steps=2 * L)
    with torch.no_grad():
        expected = [net.forward_step(x[:, :, t]) for t in range(2 * L)]
    path = tmp_path / "encoder.onnx"
    co_onnx.export(net, x[:, :, 0], path)
    session = ort.InferenceSession(str(path))
    state = co_onnx.initial_state(net, x[:, :, 0])
    for t in range(2 * L):
        feed = {"input": x[:, :, t].numpy(), **co_onnx.state_feed(state)}
        y, valid, *state = session.run(None, feed)
        assert bool(valid.all()) == (t >= L - 1) and (t >= L - 1 or not valid.any())
        if t >= L - 1:
            torch.testing.assert_close(torch.from_numpy(y), expected[t], atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("num_layers", [1, 2])
def test_ptflops_step_is_cheaper(num_layers):
    """ptflops counts the attention with ``module.flops()`` (hooks registered for the
    continual MHAs), without functional ops; a step costs at most forward/T (one layer) or
    forward (two)."""
    ptflops = pytest.importorskip("ptflops")
    from cozoo.co.attention import RetroactiveMultiheadAttention, SingleOutputMultiheadAttention

    def attention_hook(module, inputs, output):
        module.__flops__ += int(module.flops())

    options = dict(
        as_strings=False,
        print_per_layer_stat=False,
        backend="pytorch",
        backend_specific_config={"count_functional": False},
        custom_modules_hooks={
            RetroactiveMultiheadAttention: attention_hook,
            SingleOutputMultiheadAttention: attention_hook,
        },
    )
    length = 10
    ref = nn.TransformerEncoder(
        torch_layer(), num_layers, norm=nn.LayerNorm(E), enable_nested_tensor=False
    )
    co = TransformerEncoder.build_from(ref, sequence_len=length)
    forward_flops, params = ptflops.get_model_complexity_info(co, (E, length), **options)
    co.forward_steps(torch.randn(1, E, length))
    co.call_mode = "forward_step"
    step_flops, step_params = ptflops.get_model_complexity_info(co, (E,), **options)
    assert params == step_params == sum(p.numel() for p in ref.parameters())
    assert 0 < step_flops <= (forward_flops / length if num_layers == 1 else forward_flops)
